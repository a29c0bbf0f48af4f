"""Emergent image<->audio retrieval with EmergentBridge and anchor-space re-centring.

The reference world has two modalities that never meet: images and sounds, each with its own
small contrastive encoder. Plain TextME trains each projector towards the anchor alone; here
the audio projector is also trained with the image modality as a *bridge*
(:mod:`textme_sdk.engine.bridge`), and (``both_ways``, the default) the image projector with
the audio modality, each through the other's plain projector, in the orthogonal mode and in
the full mode (ablation), and
both modalities can have their residual gap in the anchor space removed
(:func:`textme_sdk.fit_recentring`). Everything goes through textme-sdk's public API
(``compute_offsets``, ``train_projector(..., bridge=...)``, ``fit_recentring``, ``TextME``).

Data, per seed ``s`` (the demo's own streams, so the plain row is the demo's model):

* offsets and re-centring: the demo's unpaired samples and texts;
* training texts: the demo's caption corpus (texts only, for both the plain and bridged runs);
* **test** (the reported numbers): the first ``eval_items`` of the ``"eval"`` stream of seed
  ``s``, exactly the demo's held-out items;
* **validation** (to choose the form of ``L_bridge``, ``lambda`` and the noise): the next
  ``eval_items`` items of the same stream (disjoint from the test items), seed 0 only.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from textme_sdk import (
    TextME,
    TrainConfig,
    compute_offsets,
    fit_recentring,
    get_anchor,
    get_encoder,
    train_projector,
)
from textme_sdk.evaluation import (
    prompt_prototypes,
    recall_at_k,
    relevance_from_labels,
    topk_accuracy,
    zero_shot_predict,
)

from . import world
from .demo import DemoConfig, _projector

__all__ = ["BridgeStudyConfig", "VARIANTS", "run_bridge_study", "format_bridge_table", "tune_bridge", "sweep_bridge", "asymmetry",
           "residual_gap"]

#: The rows of the table.
VARIANTS = ("plain", "orthogonal", "full", "recentring", "both")

#: The form of ``L_bridge``, ``lambda`` and noise chosen on the validation split (see
#: docs/bridging.md).
DEFAULT_BRIDGE_LOSS = "centred"
DEFAULT_BRIDGE_WEIGHT = 1.0  # chosen on validation with 10-epoch projectors
#: ``lambda`` chosen on validation per training length (epochs): longer-trained projectors
#: fit the anchor better and a strong bridge pulls them off it (docs/bridging.md)
BRIDGE_WEIGHT_BY_EPOCHS = {10: DEFAULT_BRIDGE_WEIGHT, 30: 0.3}
DEFAULT_BRIDGE_NOISE = 0.1
DEFAULT_BOTH_WAYS = True


@dataclass
class BridgeStudyConfig:
    """What the study runs.

    Attributes:
        seeds: world seeds (each trains its own projectors).
        bridged: the modality trained with a bridge; ``through``: the bridge modality.
        bridge_weight, bridge_noise: ``lambda`` and the proxy noise of both bridge rows;
            ``bridge_weight=None`` takes the value chosen on validation for the demo's number of
            epochs (:data:`BRIDGE_WEIGHT_BY_EPOCHS`, the nearest measured length).
        bridge_loss: the form of ``L_bridge`` (:attr:`TrainConfig.bridge_loss`) of both rows.
        both_ways: also train ``through``'s projector again with ``bridged`` as its bridge
            (each bridged through the *plain* projector of the other), instead of retraining
            ``bridged`` alone.
        split: ``"test"`` (reported) or ``"validation"`` (model selection).
        demo: the scale (texts, epochs, offsets samples, held-out items...) of the demo.
        variants: which rows to compute.
        recentring_samples: unpaired samples and texts (the first of the offsets' ones) that
            estimate the re-centring (1,000 already give stable offsets, paper Table 13).
    """

    seeds: tuple[int, ...] = (0, 1)
    bridged: str = "audio"
    through: str = "image"
    bridge_weight: float | None = None
    bridge_noise: float = DEFAULT_BRIDGE_NOISE
    bridge_loss: str = DEFAULT_BRIDGE_LOSS
    both_ways: bool = DEFAULT_BOTH_WAYS
    split: Literal["test", "validation"] = "test"
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(out_dir=None, plots=False))
    variants: tuple[str, ...] = VARIANTS
    recentring_samples: int = 1000


def study_weight(cfg: BridgeStudyConfig) -> float:
    """``cfg.bridge_weight``, or when it is ``None`` the ``lambda`` chosen on validation for the
    measured training length nearest to ``cfg.demo.epochs``."""
    if cfg.bridge_weight is not None:
        return cfg.bridge_weight
    epochs = min(BRIDGE_WEIGHT_BY_EPOCHS, key=lambda e: (abs(e - cfg.demo.epochs), e))
    return BRIDGE_WEIGHT_BY_EPOCHS[epochs]


def _items(m: str, seed: int, cfg: BridgeStudyConfig) -> list[world.Item]:
    n = cfg.demo.eval_items
    if cfg.split == "test":
        return world.sample_items(m, n, seed, "eval")
    if cfg.split == "validation":
        return world.sample_items(m, 2 * n, seed, "eval")[n:]
    raise ValueError(f"split must be 'test' or 'validation', got {cfg.split!r}")


def _train_config(cfg: BridgeStudyConfig, seed: int, **bridge: Any) -> TrainConfig:
    d = cfg.demo
    return TrainConfig(epochs=d.epochs, batch_size=d.batch_size, seed=seed,
                       input_noise=d.input_noise, hidden_dim=d.hidden_dim, **bridge)


def _world_parts(m: str, seed: int, cfg: BridgeStudyConfig, anchor) -> dict[str, Any]:
    """Encoder, offsets, training texts and the plain projector (the demo's, cached)."""
    d = cfg.demo
    enc = get_encoder(f"ref-{m}")
    unpaired_texts = world.caption_corpus(m, d.offset_samples, seed=seed + 1)
    unpaired = [it.data for it in world.sample_items(m, d.offset_samples, seed, "unpaired")]
    offsets = compute_offsets(enc, unpaired_texts, unpaired)
    texts = world.caption_corpus(m, d.train_texts, seed=seed + 2)
    projector, _ = _projector(enc, anchor, texts, offsets, _train_config(cfg, seed), d.reuse_projectors)
    k = cfg.recentring_samples
    return {"encoder": enc, "offsets": offsets, "texts": texts, "projector": projector,
            "unpaired": unpaired[:k], "unpaired_texts": unpaired_texts[:k]}


def _model(anchor, parts: dict[str, dict[str, Any]], projectors: dict[str, Any],
           recentring: dict[str, Any] | None = None) -> TextME:
    model = TextME(anchor)
    for m, p in parts.items():
        model.add_modality(p["encoder"], projectors.get(m, p["projector"]), p["offsets"],
                           recentring=(recentring or {}).get(m))
    return model


def _recentred(anchor, parts, projectors) -> tuple[TextME, dict[str, Any]]:
    base = _model(anchor, parts, projectors)
    fitted = {m: fit_recentring(base, m, p["unpaired"], p["unpaired_texts"]) for m, p in parts.items()}
    return _model(anchor, parts, projectors, fitted), fitted


def _metrics(model: TextME, data: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Zero-shot top-1 and text->X R@1 per modality, emergent R@1/R@5 both ways (percent)."""
    out: dict[str, float] = {}
    proj = {}
    for m, d in data.items():
        x = model.project(d["raw"], m)
        proj[m] = x
        logits = zero_shot_predict(x, d["prototypes"])
        out[f"{m} zero-shot top-1"] = topk_accuracy(logits, d["labels"], (1,))["top1"]
        out[f"{m} T->X R@1"] = recall_at_k(d["captions"] @ x.T, d["describes"], (1,))["R@1"]
    (a, da), (b, db) = list(data.items())[:2]
    rel = relevance_from_labels(da["labels"], db["labels"])
    ab = recall_at_k(proj[a] @ proj[b].T, rel, (1, 5))
    ba = recall_at_k(proj[b] @ proj[a].T, rel.T, (1, 5))
    out.update({f"{a}->{b} R@1": ab["R@1"], f"{a}->{b} R@5": ab["R@5"],
                f"{b}->{a} R@1": ba["R@1"], f"{b}->{a} R@5": ba["R@5"]})
    return out


def _eval_data(model: TextME, parts, seed: int, cfg: BridgeStudyConfig) -> dict[str, dict[str, Any]]:
    """Held-out items embedded once: raw encoder embeddings, anchor captions and prompts."""
    data = {}
    for m, p in parts.items():
        items = _items(m, seed, cfg)
        embed = lambda t: model.embed(t, "text", convert_to_tensor=True)  # noqa: E731
        data[m] = {
            "raw": p["encoder"].encode_modal([it.data for it in items]),
            "labels": torch.tensor([it.label_index for it in items]),
            "captions": embed([it.caption for it in items]),
            "describes": torch.from_numpy(world.caption_relevance(items, items)),
            "prototypes": prompt_prototypes(embed, [world.prompts_for(m, c) for c in world.class_names()]),
        }
    return data


def _seed_rows(seed: int, cfg: BridgeStudyConfig, anchor, log: Callable[[str], None],
               settings: list[tuple[float, float]] | None = None) -> dict[str, dict[str, float]]:
    t0 = time.perf_counter()
    ms = (cfg.through, cfg.bridged)
    parts = {m: _world_parts(m, seed, cfg, anchor) for m in ms}
    plain = _model(anchor, parts, {})
    data = _eval_data(plain, parts, seed, cfg)
    rows: dict[str, dict[str, float]] = {}
    if "plain" in cfg.variants:
        rows["plain"] = _metrics(plain, data)
    b = parts[cfg.bridged]

    def bridged(mode: str, weight: float, noise: float, loss: str, both_ways: bool,
                fit: str = "trained") -> dict[str, Any]:
        """The retrained projector(s), by modality; each bridged through the plain model."""
        tcfg = _train_config(cfg, seed, bridge_weight=weight, bridge_noise=noise, bridge_mode=mode,
                             bridge_loss=loss)
        pairs = [(cfg.bridged, cfg.through)] + ([(cfg.through, cfg.bridged)] if both_ways else [])
        if fit == "trained":  # g_A fitted on the trained modality's texts (train_projector)
            return {m: train_projector(parts[m]["encoder"], anchor, parts[m]["texts"],
                                       parts[m]["offsets"], tcfg, bridge=plain,
                                       bridge_modalities=[other])
                    for m, other in pairs}
        return {m: _fit_on_other_texts(parts, m, other, plain, anchor, tcfg, fit) for m, other in pairs}

    if settings is not None:  # validation sweep
        for loss, mode, weight, noise, both_ways, fit in settings:
            model = _model(anchor, parts, bridged(mode, weight, noise, loss, both_ways, fit))
            name = (f"{mode} {loss} w={weight:g} noise={noise:g}" + (" both ways" if both_ways else "")
                    + ("" if fit == "trained" else f" g fitted on {fit} texts"))
            rows[name] = _metrics(model, data)
            log(f"[seed {seed}] {name}: {_short(rows, -1)}")
        if "recentring" in cfg.variants:
            rows["recentring"] = _metrics(_recentred(anchor, parts, {})[0], data)
            log(f"[seed {seed}] recentring: {_short(rows, -1)}")
        return rows
    trained = {}
    for mode in ("orthogonal", "full"):
        if mode in cfg.variants or (mode == "orthogonal" and "both" in cfg.variants):
            trained[mode] = bridged(mode, study_weight(cfg), cfg.bridge_noise, cfg.bridge_loss,
                                    cfg.both_ways)
            if mode in cfg.variants:
                rows[mode] = _metrics(_model(anchor, parts, trained[mode]), data)
    if "recentring" in cfg.variants:
        model, fitted = _recentred(anchor, parts, {})
        rows["recentring"] = _metrics(model, data)
        rows["recentring"].update({f"{m} residual gap": r.gap for m, r in fitted.items()})
    if "both" in cfg.variants:
        model, _ = _recentred(anchor, parts, trained["orthogonal"])
        rows["both"] = _metrics(model, data)
    log(f"[seed {seed}] {len(rows)} rows in {time.perf_counter() - t0:.0f}s")
    return rows


def _short(rows: dict[str, dict[str, float]], i: int) -> str:
    r = list(rows.values())[i]
    return ", ".join(f"{k} {v:.1f}" for k, v in r.items())


def run_bridge_study(cfg: BridgeStudyConfig | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """The table of ``docs/bridging.md``: per seed, one row per variant (numbers in percent)."""
    cfg = cfg or BridgeStudyConfig()
    anchor = get_anchor(cfg.demo.anchor)
    results = {"config": {"seeds": list(cfg.seeds), "bridged": cfg.bridged, "through": cfg.through,
                          "bridge_weight": study_weight(cfg), "bridge_noise": cfg.bridge_noise,
                          "bridge_loss": cfg.bridge_loss, "both_ways": cfg.both_ways,
                          "split": cfg.split, "train_texts": cfg.demo.train_texts,
                          "epochs": cfg.demo.epochs, "eval_items": cfg.demo.eval_items},
               "seeds": {}}
    for seed in cfg.seeds:
        results["seeds"][seed] = _seed_rows(seed, cfg, anchor, log)
    return results


def tune_bridge(weights: tuple[float, ...], noises: tuple[float, ...], cfg: BridgeStudyConfig | None = None,
                log: Callable[[str], None] = print, losses: tuple[str, ...] = ("cosine",),
                modes: tuple[str, ...] = ("orthogonal",),
                both_ways: tuple[bool, ...] = (False,)) -> dict[str, Any]:
    """Sweep form x mode x ``lambda`` x noise x direction of the bridge on the validation
    split (first seed of ``cfg``), beside plain TextME and the re-centring."""
    cfg = dataclasses.replace(cfg or BridgeStudyConfig(), split="validation",
                              variants=("plain", "recentring"))
    anchor = get_anchor(cfg.demo.anchor)
    settings = [(loss, m, w, n, bw, "trained") for bw in both_ways for loss in losses for m in modes
                for w in weights for n in noises]
    return {"seed": cfg.seeds[0], "rows": _seed_rows(cfg.seeds[0], cfg, anchor, log, settings)}


def sweep_bridge(specs: list[str], cfg: BridgeStudyConfig | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Validation rows (first seed of ``cfg``) for settings written ``form:mode:lambda:noise``
    with optional ``:both`` (both ways) and ``:fit=own`` / ``:fit=both`` (``g_A`` fitted on
    the bridge modality's own training texts, or on both modalities' ones, instead of the
    trained modality's), e.g. ``"centred:full:1:0.1:both"``. Plain TextME and the
    re-centring come with them."""
    settings = []
    for spec in specs:
        loss, mode, weight, noise, *rest = spec.split(":")
        opts = dict(o.split("=", 1) if "=" in o else (o, "1") for o in rest)
        fit = {"own": "bridge modality's own", "both": "both modalities'"}.get(opts.get("fit", ""), "trained")
        settings.append((loss, mode, float(weight), float(noise), "both" in opts, fit))
    cfg = dataclasses.replace(cfg or BridgeStudyConfig(), split="validation",
                              variants=("plain", "recentring"))
    anchor = get_anchor(cfg.demo.anchor)
    return {"seed": cfg.seeds[0], "rows": _seed_rows(cfg.seeds[0], cfg, anchor, log, settings)}


def _fit_on_other_texts(parts, m: str, other: str, plain: TextME, anchor, tcfg: TrainConfig,
                        fit: str):
    """``m``'s projector bridged through ``other`` with ``g`` fitted on ``other``'s training
    texts (``fit`` names which); the rest as :func:`textme_sdk.train_projector` does it."""
    from textme_sdk.engine.trainer import fit_projector
    from textme_sdk.training import anchor_embeddings, encoder_text_embeddings, fit_bridge_mapping

    p = parts[m]
    fit_texts = parts[other]["texts"] + (p["texts"] if fit.startswith("both") else [])
    g = fit_bridge_mapping(plain, other, fit_texts,
                           anchor_embeddings(anchor, fit_texts, "document", None).float())
    x = encoder_text_embeddings(p["encoder"], p["texts"], None, dtype=None)
    y = anchor_embeddings(anchor, p["texts"], "document", None, dtype=None)
    return fit_projector(x, y, tcfg, input_offset=p["offsets"].mu_text,
                         bridge_targets=g(y.float()).unsqueeze(1)).projector


def format_bridge_table(results: dict[str, Any]) -> str:
    """The study as one markdown table (a row per seed and variant)."""
    first = next(iter(results["seeds"].values()))
    cols = [c for c in next(iter(first.values())) if "residual gap" not in c]
    lines = ["| seed | variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for seed, rows in results["seeds"].items():
        for name, r in rows.items():
            lines.append(f"| {seed} | {name} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |")
    return "\n".join(lines)


def residual_gap(cfg: BridgeStudyConfig | None = None) -> dict[str, Any]:
    """The residual modality gap of plain TextME in the anchor space (first seed of ``cfg``).

    Per modality: the gap norm from the unpaired samples (what the re-centring removes), the
    gap norm and consistency of projected held-out items vs the anchor embeddings of their own
    captions (:func:`textme_sdk.diagnostics.gap_geometry`), and the cosine between the two
    modalities' residual directions.
    """
    from textme_sdk.diagnostics import gap_geometry

    cfg = cfg or BridgeStudyConfig()
    seed = cfg.seeds[0]
    anchor = get_anchor(cfg.demo.anchor)
    parts = {m: _world_parts(m, seed, cfg, anchor) for m in (cfg.through, cfg.bridged)}
    model, fitted = _recentred(anchor, parts, {})
    out: dict[str, Any] = {}
    for m, p in parts.items():
        items = _items(m, seed, cfg)
        text = model.embed([it.caption for it in items], "text", convert_to_tensor=True)
        modal = model.project(p["encoder"].encode_modal([it.data for it in items]), m, recentre=False)
        g = gap_geometry(text, modal)
        out[m] = {"residual gap (unpaired)": fitted[m].gap, "gap norm (held-out pairs)": g.gap_norm,
                  "consistency": g.gap_consistency}
    a, b = (fitted[m].mu_modal - fitted[m].mu_text for m in parts)
    out["residual direction cosine"] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return out


def asymmetry(specs: list[str], cfg: BridgeStudyConfig | None = None) -> dict[str, dict[str, float]]:
    """Why a bridge can help image->audio and hurt audio->image (validation, first seed).

    Per setting (as :func:`sweep_bridge` writes them; ``"plain"`` is plain TextME): the norm
    of the centroid of the projected sounds (how concentrated they are), how far the bridge
    moved that centroid, the hub skew of the images retrieved at rank 1 by sounds, the mean
    cosine between each class's sound centroid and its image centroid, and audio->image /
    image->audio R@1 as measured and after moving the sounds' centroid back onto plain
    TextME's one (a shift shared by all sounds cannot change image->audio rankings, only
    audio->image ones).
    """
    cfg = dataclasses.replace(cfg or BridgeStudyConfig(), split="validation")
    seed, anchor = cfg.seeds[0], get_anchor(cfg.demo.anchor)
    parts = {m: _world_parts(m, seed, cfg, anchor) for m in (cfg.through, cfg.bridged)}
    plain = _model(anchor, parts, {})
    data = _eval_data(plain, parts, seed, cfg)
    a, b = cfg.bridged, cfg.through
    rel = relevance_from_labels(data[b]["labels"], data[a]["labels"])  # [through, bridged]
    base = plain.project(data[a]["raw"], a).mean(0)
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        if spec == "plain":
            model = plain
        else:
            loss, mode, weight, noise, *rest = spec.split(":")
            tcfg = _train_config(cfg, seed, bridge_weight=float(weight), bridge_noise=float(noise),
                                 bridge_mode=mode, bridge_loss=loss)
            pairs = [(a, b)] + ([(b, a)] if "both" in rest else [])
            model = _model(anchor, parts, {m: train_projector(
                parts[m]["encoder"], anchor, parts[m]["texts"], parts[m]["offsets"], tcfg,
                bridge=plain, bridge_modalities=[o]) for m, o in pairs})
        xa, xb = model.project(data[a]["raw"], a), model.project(data[b]["raw"], b)
        la, lb = data[a]["labels"], data[b]["labels"]
        classes = sorted(set(la.tolist()) & set(lb.tolist()))
        ca = torch.nn.functional.normalize(torch.stack([xa[la == c].mean(0) for c in classes]), dim=-1)
        cb = torch.nn.functional.normalize(torch.stack([xb[lb == c].mean(0) for c in classes]), dim=-1)
        occ = torch.bincount((xa @ xb.T).argmax(1), minlength=len(xb)).float()
        moved = torch.nn.functional.normalize(xa - xa.mean(0) + base, dim=-1)
        out[spec] = {
            f"{a} centroid norm": float(xa.mean(0).norm()),
            f"{a} centroid shift": float((xa.mean(0) - base).norm()),
            f"{a}->{b} rank-1 hub skew": float(((occ - occ.mean()) ** 3).mean() / occ.std() ** 3),
            "class centroid cosine": float((ca * cb).sum(-1).mean()),
            f"{a}->{b} R@1": recall_at_k(xa @ xb.T, rel.T, (1,))["R@1"],
            f"{b}->{a} R@1": recall_at_k(xb @ xa.T, rel, (1,))["R@1"],
            f"{a}->{b} R@1, plain centroid": recall_at_k(moved @ xb.T, rel.T, (1,))["R@1"],
            f"{b}->{a} R@1, plain centroid": recall_at_k(xb @ moved.T, rel, (1,))["R@1"],
        }
    return out
