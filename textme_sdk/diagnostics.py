"""Geometry of an encoder's modality gap: is a single offset enough to bridge it?

TextME relies on the gap between an encoder's text and modal embeddings being (nearly) one
constant vector. Four properties make that precise (after the paper's Table 2). With paired,
L2-normalised embeddings ``t_i`` (text) and ``x_i`` (modal), per-pair gaps ``g_i = x_i - t_i``
and the mean gap ``g = mean(g_i)``:

* **gap consistency** - ``mean_i cos(g_i, g)``: near 1 when every pair is displaced the same
  way, so one offset characterises the gap.
* **bounded deviation** - ``mean_i ||g_i - g|| / ||g||``: how far individual gaps stray from
  the mean, relative to its size (small is good).
* **gap-content orthogonality** - ``mean_i |cos(g, t_i - mu_text)|`` (and the modal analogue):
  near 0 when the gap direction carries no content, so centring removes no semantics.
* **intra-modal independence** - agreement of the offset estimated from two disjoint halves
  of *unpaired* samples, ``cos(mu_x^A - mu_t^A, mu_x^B - mu_t^B)``, and of the unpaired
  estimate with the paired mean gap: the centroids depend on the modality, not on which
  samples are drawn, which is what lets offsets come from unpaired data.

The paper's exact formulas were not available to us; these are our definitions, chosen to test
the same claims. Thresholds for the verdict are documented in :func:`verdict`.

Two simpler statistics show how separate the modalities are: the **cross cosine** (mean cosine
of a text and a modal embedding that do not describe each other; below both intra-modal cosines
when the modalities sit apart) and the **gap-direction accuracy** (share of embeddings that the
single direction ``mu_text - mu_modal`` puts on their own modality's side of the midpoint between
the centroids; 1.0 = a clean gap).

Without pairs (:func:`unpaired_geometry`), only what needs no pairing is measured: the gap
between the centroids, its split-half agreement, the intra-modal and cross cosines, the
gap-direction accuracy and the standard error of the offset estimate; consistency, deviation
and orthogonality need pairs and are ``nan``.
:func:`diagnose` embeds texts and inputs with an encoder and picks the right one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from .errors import DimensionMismatchError, EmptyInputError

__all__ = ["GapReport", "gap_geometry", "unpaired_geometry", "diagnose", "verdict"]


@dataclass
class GapReport:
    """The four gap properties of one encoder, with spreads, the cross cosine and gap-direction
    accuracy (see the module docstring), and a verdict."""

    gap_norm: float
    gap_consistency: float
    gap_consistency_std: float
    bounded_deviation: float
    bounded_deviation_std: float
    orthogonality_text: float
    orthogonality_modal: float
    independence_split_half: float
    independence_vs_paired: float
    paired_cosine: float
    intra_text_cosine: float
    intra_modal_cosine: float
    n_pairs: int
    warnings: list[str] = field(default_factory=list)
    n_text: int = 0
    n_modal: int = 0
    se_text: float = float("nan")
    se_modal: float = float("nan")
    cross_cosine: float = float("nan")
    gap_direction_accuracy: float = float("nan")

    @property
    def paired(self) -> bool:
        """Whether the paired-only properties were measured."""
        return self.n_pairs > 0

    @property
    def offset_relative_error(self) -> float:
        """Standard error of the estimated gap ``mu_modal - mu_text`` relative to its norm."""
        return float(math.hypot(self.se_text, self.se_modal) / max(self.gap_norm, 1e-12))

    @property
    def recommendation(self) -> str:
        """``"use offsets"``, ``"compare with and without offsets"`` or ``"offsets matter little"``."""
        if self.gap_norm < 0.1:
            return "offsets matter little"
        if self.paired and self.gap_consistency < 0.9:
            return "compare with and without offsets"
        return "use offsets"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(paired=self.paired, offset_relative_error=self.offset_relative_error,
                   recommendation=self.recommendation)
        return out


def _mean_offdiag(x: torch.Tensor) -> float:
    sim = x @ x.T
    n = len(x)
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def _cross_cosine(t: torch.Tensor, x: torch.Tensor, paired: bool) -> float:
    """Mean cosine of text/modal pairs that do not describe each other (paired: off-diagonal)."""
    sim = t @ x.T
    if not paired:
        return float(sim.mean())
    n = len(t)
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def _direction_accuracy(t: torch.Tensor, x: torch.Tensor) -> float:
    """Share of embeddings on their own side of the centroids' midpoint along ``mu_t - mu_x``."""
    mu_t, mu_x = t.mean(0), x.mean(0)
    direction = F.normalize(mu_t - mu_x, dim=0)
    threshold = (mu_t + mu_x) @ direction / 2
    right = torch.cat([t @ direction > threshold, x @ direction <= threshold])
    return float(right.double().mean())


def gap_geometry(text: torch.Tensor, modal: torch.Tensor) -> GapReport:
    """Measure the gap properties from paired embeddings ``text[i] <-> modal[i]``.

    Both inputs are re-normalised; at least 4 pairs are needed (more than 500 for stable
    numbers). The split-half independence uses the two halves as if they were unpaired.
    """
    if text.shape != modal.shape or text.ndim != 2:
        raise DimensionMismatchError(f"text {tuple(text.shape)} and modal {tuple(modal.shape)} "
                                     "must be paired [N, d] embeddings of the same encoder")
    if len(text) < 4:
        raise EmptyInputError(f"gap_geometry needs at least 4 pairs, got {len(text)}")
    t = F.normalize(text.double(), dim=-1)
    x = F.normalize(modal.double(), dim=-1)
    g_i = x - t
    g = g_i.mean(0)
    cons = F.cosine_similarity(g_i, g.expand_as(g_i), dim=-1)
    dev = (g_i - g).norm(dim=-1) / g.norm()
    mu_t, mu_x = t.mean(0), x.mean(0)
    orth_t = F.cosine_similarity(t - mu_t, g.expand_as(t), dim=-1).abs().mean()
    orth_x = F.cosine_similarity(x - mu_x, g.expand_as(x), dim=-1).abs().mean()
    # split-half: text centroid from one half, modal from the other -> unpaired estimates
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))
    a, b = perm[: len(t) // 2], perm[len(t) // 2 :]
    gap_ab = x[b].mean(0) - t[a].mean(0)
    gap_ba = x[a].mean(0) - t[b].mean(0)
    report = GapReport(
        gap_norm=float(g.norm()),
        gap_consistency=float(cons.mean()), gap_consistency_std=float(cons.std()),
        bounded_deviation=float(dev.mean()), bounded_deviation_std=float(dev.std()),
        orthogonality_text=float(orth_t), orthogonality_modal=float(orth_x),
        independence_split_half=float(F.cosine_similarity(gap_ab, gap_ba, dim=0)),
        independence_vs_paired=float(F.cosine_similarity(gap_ab, g, dim=0)),
        paired_cosine=float((t * x).sum(-1).mean()),
        intra_text_cosine=_mean_offdiag(t), intra_modal_cosine=_mean_offdiag(x),
        n_pairs=len(t), n_text=len(t), n_modal=len(x),
        se_text=_standard_error(t), se_modal=_standard_error(x),
        cross_cosine=_cross_cosine(t, x, paired=True), gap_direction_accuracy=_direction_accuracy(t, x),
    )
    report.warnings = verdict(report)
    return report


def _standard_error(x: torch.Tensor) -> float:
    """Standard error of the centroid of ``x`` (L2 norm over dimensions)."""
    return float(torch.sqrt(x.var(0, unbiased=True).sum() / len(x))) if len(x) > 1 else float("nan")


def unpaired_geometry(text: torch.Tensor, modal: torch.Tensor) -> GapReport:
    """The gap properties that need no pairs, from unpaired embeddings of one encoder.

    ``text [n_t, d]`` and ``modal [n_m, d]`` need not describe each other (at least 4 of
    each). Consistency, deviation, orthogonality and the paired cosine come back as ``nan``.
    """
    if text.ndim != 2 or modal.ndim != 2 or text.shape[1] != modal.shape[1]:
        raise DimensionMismatchError(f"text {tuple(text.shape)} and modal {tuple(modal.shape)} "
                                     "must be [n, d] embeddings of the same encoder")
    if min(len(text), len(modal)) < 4:
        raise EmptyInputError(f"unpaired_geometry needs at least 4 texts and 4 inputs, got "
                              f"{len(text)} and {len(modal)}")
    t = F.normalize(text.double(), dim=-1)
    x = F.normalize(modal.double(), dim=-1)
    g = x.mean(0) - t.mean(0)
    gen = torch.Generator().manual_seed(0)
    pt, px = torch.randperm(len(t), generator=gen), torch.randperm(len(x), generator=gen)
    half_t, half_x = len(t) // 2, len(x) // 2
    gap_a = x[px[:half_x]].mean(0) - t[pt[:half_t]].mean(0)
    gap_b = x[px[half_x:]].mean(0) - t[pt[half_t:]].mean(0)
    nan = float("nan")
    report = GapReport(
        gap_norm=float(g.norm()), gap_consistency=nan, gap_consistency_std=nan,
        bounded_deviation=nan, bounded_deviation_std=nan, orthogonality_text=nan,
        orthogonality_modal=nan,
        independence_split_half=float(F.cosine_similarity(gap_a, gap_b, dim=0)),
        independence_vs_paired=nan, paired_cosine=nan,
        intra_text_cosine=_mean_offdiag(t), intra_modal_cosine=_mean_offdiag(x),
        n_pairs=0, n_text=len(t), n_modal=len(x),
        se_text=_standard_error(t), se_modal=_standard_error(x),
        cross_cosine=_cross_cosine(t, x, paired=False), gap_direction_accuracy=_direction_accuracy(t, x),
    )
    report.warnings = verdict(report)
    return report


def diagnose(encoder: Any, texts: Iterable[str], inputs: Iterable[Any], paired: bool = False,
             batch_size: int = 64, show_progress_bar: bool | None = None) -> GapReport:
    """Embed ``texts`` and ``inputs`` with ``encoder`` and measure its gap geometry.

    Args:
        encoder: a :class:`~textme_sdk.ModalityEncoder`.
        texts: descriptions; with ``paired=True`` ``texts[i]`` describes ``inputs[i]``.
        inputs: modal inputs of the kind ``encoder.input_spec`` describes.
        paired: measure every property (needs pairs) or only the unpaired ones.
        batch_size: inputs per encoder call.
        show_progress_bar: progress bars while embedding.
    """
    texts, inputs = list(texts), list(inputs)
    if paired and len(texts) != len(inputs):
        raise DimensionMismatchError(f"paired diagnosis needs one text per input, got {len(texts)} "
                                     f"texts and {len(inputs)} inputs")
    t = encoder.encode_text(texts, batch_size, show_progress_bar)
    x = encoder.encode_modal(inputs, batch_size, show_progress_bar)
    return gap_geometry(t, x) if paired else unpaired_geometry(t, x)


def verdict(r: GapReport) -> list[str]:
    """Reasons to doubt that a single offset bridges this encoder's gap (empty = looks fine).

    Properties that need pairs are only checked on a paired report.

    * gap consistency < 0.9: per-pair gaps point different ways; one offset will not
      characterise the gap (the paper's MoleculeSTM case, where offsets hurt) - compare with
      training without offsets.
    * bounded deviation > 1: individual gaps vary more than the gap itself.
    * orthogonality > 0.3: the gap direction carries content; centring removes semantics.
    * split-half independence < 0.95: offsets depend on the sample drawn; use more samples.
    * standard error of the offset > 10% of the gap: too few samples for a stable estimate.
    * gap norm < 0.1: there is hardly a gap; offsets matter little.
    """
    out = []
    if r.paired and r.gap_consistency < 0.9:
        out.append(f"gap consistency {r.gap_consistency:.2f} < 0.9: a single offset may not characterise "
                   "the gap; also train without offsets (`textme train --no-offsets`, or "
                   "Offsets.zeros) and compare")
    if r.paired and r.bounded_deviation > 1.0:
        out.append(f"bounded deviation {r.bounded_deviation:.2f} > 1: per-pair gaps vary more than the gap")
    if r.paired and max(r.orthogonality_text, r.orthogonality_modal) > 0.3:
        out.append("the gap direction is correlated with content (orthogonality "
                   f"{max(r.orthogonality_text, r.orthogonality_modal):.2f} > 0.3): centring removes semantics")
    if r.independence_split_half < 0.95:
        out.append(f"offsets from disjoint samples agree only to cos {r.independence_split_half:.2f}: "
                   "estimate them from more samples")
    if r.gap_norm >= 0.1 and r.offset_relative_error > 0.1:
        out.append(f"the offset estimate's standard error is {100 * r.offset_relative_error:.0f}% of "
                   f"the gap ({r.n_text} texts / {r.n_modal} inputs): use more samples (the paper "
                   "uses 5,000 of each)")
    if r.gap_norm < 0.1:
        out.append(f"gap norm {r.gap_norm:.3f} is tiny: this encoder has almost no modality gap")
    return out
