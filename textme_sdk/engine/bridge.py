"""EmergentBridge, text only: a noisy bridge anchor and an alignment orthogonal to the anchor.

When modality B's projector is trained, an already-trained modality A can act as a *bridge*
(after EmergentBridge, Xie et al. 2026, arXiv 2604.11043, of which only the abstract is
public; this is the SDK's reading of it, with text only, like TextME):

* :class:`BridgeMapping` ``g_A`` maps an anchor embedding ``z'`` of a text onto A's projected
  text path ``P_A(E_t^A(t) - mu_text^A)`` of the same text. It is a ridge regression fitted on
  texts only (no modal sample, no pair between modalities).
* During B's training the *noisy bridge anchor* of a text is ``normalize(g_A(z') + sigma * eps)``
  (:func:`noisy_proxy`) and :func:`bridge_loss` pulls B's projected embedding ``z`` towards it.
  In ``"orthogonal"`` mode both are first stripped of their component along ``z'``
  (``v - (v . z') z'``), so the bridge never pushes along the anchor-alignment direction and
  does not fight the InfoNCE term; ``"full"`` aligns the whole vectors (the ablation).
  :func:`bridge_loss` is the squared-distance (cosine) form, optionally on batch-centred
  vectors and/or on directions only; :func:`contrastive_bridge_loss` is an InfoNCE form in
  which the batch's other proxies are the negatives (``TrainConfig.bridge_loss``).
* :func:`bridge_term` is what the trainer adds to its loss: ``lambda * mean_A L_bridge(A)``.

A second lever lives here too: :class:`AnchorRecentring`, the residual modality gap that a
projector leaves *in the anchor space*, estimated from unpaired samples (centroid of projected
modal embeddings vs centroid of anchor text embeddings) and removed at embedding time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from .trainer import TrainConfig

__all__ = [
    "BRIDGE_LOSSES",
    "BRIDGE_MODES",
    "AnchorRecentring",
    "BridgeMapping",
    "bridge_loss",
    "bridge_term",
    "contrastive_bridge_loss",
    "noisy_proxy",
]

BridgeMode = Literal["orthogonal", "full"]
#: The values :attr:`TrainConfig.bridge_mode` accepts.
BRIDGE_MODES: tuple[str, ...] = ("orthogonal", "full")
#: The values :attr:`TrainConfig.bridge_loss` accepts.
BRIDGE_LOSSES: tuple[str, ...] = ("cosine", "centred", "angular", "angular-centred", "contrastive")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def _check_mode(mode: str) -> None:
    if mode not in BRIDGE_MODES:
        raise ValueError(f"mode must be one of {BRIDGE_MODES}, got {mode!r}")


def _float_inputs(embeddings: torch.Tensor, anchors: torch.Tensor, proxies: torch.Tensor):
    """``z`` in float32, unit anchors ``[B, d]`` and unit proxies ``[B, k, d]`` (the bridge
    losses' common start)."""
    p = _unit(proxies)
    return embeddings.float(), _unit(anchors), (p.unsqueeze(1) if p.ndim == 2 else p)


def _reject(v: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``v - (v . a) a`` per row, for unit rows ``a`` (broadcast over a middle axis)."""
    return v - (v * direction).sum(-1, keepdim=True) * direction


def _direction(v: torch.Tensor) -> torch.Tensor:
    """``v / ||v||`` per row, with the gradient of ``normalize`` scaled back by ``||v||``: the
    backward pass only removes the radial part (bounded however short ``v`` is)."""
    n = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    u = v / n
    return u.detach() + (u - u.detach()) * n.detach()


def bridge_loss(
    embeddings: torch.Tensor,
    anchors: torch.Tensor,
    proxies: torch.Tensor,
    mode: BridgeMode = "orthogonal",
    centred: bool = False,
    angular: bool = False,
) -> torch.Tensor:
    """``L_bridge``: squared distance between ``z`` and the bridge proxy (in float32).

    ``L = mean_i ||r(z_i) - r(p_i)||^2`` with unit ``p_i`` and ``r(v) = v - (v . a_i) a_i`` for
    the unit anchor ``a_i = z'_i`` in ``"orthogonal"`` mode, so that ``dL/dz_i`` has no
    component along ``z'_i`` (the InfoNCE term alone decides how far ``z`` moves towards its
    anchor); ``r(v) = v`` in ``"full"`` mode (``= 2 - 2 cos(z_i, p_i)`` for unit ``z_i``).

    ``centred=True`` subtracts the batch means first:
    ``L = mean_i ||(r(z_i) - mean_j r(z_j)) - (r(p_i) - mean_j r(p_j))||^2``. The bridge then
    only aligns how the texts differ from one another, never their common direction: the
    per-sample gradients sum to zero, so it cannot shift all of ``z`` towards the proxies'
    centroid (what the uncentred form does; in the reference world that common shift is what
    lowers retrieval *from* the bridged modality). Orthogonality is kept: ``dL/dz_i`` is
    ``r_i`` applied to the centred residual.

    Args:
        embeddings: ``[B, d]`` projected embeddings ``z``, unit rows as the projector returns
            them (not re-normalised here, so the gradient is exactly the one above).
        anchors: ``[B, d]`` anchor embeddings ``z'`` of the same texts.
        proxies: ``[B, d]`` or ``[B, k, d]`` bridge anchors (one per bridge modality); the loss
            is averaged over the ``k`` bridges.
        mode: ``"orthogonal"`` (EmergentBridge) or ``"full"`` (ablation).
        centred: compare batch-centred vectors (``TrainConfig.bridge_loss="centred"``).
        angular: compare the directions ``r(v) / ||r(v)||`` only (``"angular"`` and
            ``"angular-centred"``); the gradient is then tangent to the sphere at ``z_i`` as
            well as orthogonal to ``z'_i``, so ``cos(z_i, z'_i)`` does not change to first
            order. Applied before the centring.

    Returns:
        A scalar tensor, differentiable w.r.t. ``embeddings``.
    """
    _check_mode(mode)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        z, a, p = _float_inputs(embeddings, anchors, proxies)
        z, a = z.unsqueeze(1), a.unsqueeze(1)  # [B, 1, d] against [B, k, d]
        if mode == "orthogonal":
            z, p = _reject(z, a), _reject(p, a)
        if angular:
            z, p = _direction(z), _unit(p)
        if centred:
            z, p = z - z.mean(0, keepdim=True), p - p.mean(0, keepdim=True)
        return (z - p).pow(2).sum(-1).mean()


def contrastive_bridge_loss(
    embeddings: torch.Tensor,
    anchors: torch.Tensor,
    proxies: torch.Tensor,
    mode: BridgeMode = "orthogonal",
    temperature: float = 0.07,
) -> torch.Tensor:
    """``L_bridge`` as an InfoNCE over the batch (in float32): proxy ``p_i`` is the positive of
    ``z_i`` and the other texts' proxies ``p_j`` are its negatives.

    ``L = mean_i [logsumexp_j(s_ij / tau) - s_ii / tau]`` with
    ``s_ij = r_i(z_i) . r_i(p_j) / ||r_i(p_j)||`` and ``r_i(v) = v - (v . a_i) a_i`` in
    ``"orthogonal"`` mode (every candidate is seen through query ``i``'s own orthogonal
    projection, so ``dL/dz_i`` has no component along ``z'_i``), ``s_ij = z_i . p_j`` in
    ``"full"`` mode. ``r_i(z_i)`` is not re-normalised: when ``z_i`` is close to its anchor its
    orthogonal part is short, and normalising it would blow its gradient up by
    ``1 / ||r_i(z_i)||`` (measured: that version wrecks the anchor alignment). A component shared by all proxies adds the
    same amount to a row's logits, so unlike :func:`bridge_loss` this form does not pull ``z``
    towards the proxies' common direction, only towards what tells one proxy from another.
    Rows whose anchors coincide (the same text twice in a batch) are not negatives of each
    other. Computed without a ``[B, B, d]`` temporary: for unit ``p_j``,
    ``r_i(p_j) . r_i(z_i) = p_j . r_i(z_i)`` and ``||r_i(p_j)||^2 = 1 - (p_j . a_i)^2``.

    Args:
        embeddings: ``[B, d]`` projected embeddings ``z``.
        anchors: ``[B, d]`` anchor embeddings ``z'`` of the same texts.
        proxies: ``[B, d]`` or ``[B, k, d]`` bridge anchors; the loss is averaged over the ``k``
            bridges (each bridge's negatives are its own proxies).
        mode: ``"orthogonal"`` (EmergentBridge) or ``"full"`` (ablation).
        temperature: softmax temperature ``tau``.

    Returns:
        A scalar tensor, differentiable w.r.t. ``embeddings``.
    """
    _check_mode(mode)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        z, a, p = _float_inputs(embeddings, anchors, proxies)
        if mode == "orthogonal":
            z = _reject(z, a)
        u = z  # [B, d]: r_i(z_i), not re-normalised
        with torch.no_grad():
            same = (a @ a.T) >= 1 - 1e-6
            same.fill_diagonal_(False)
        losses = []
        for k in range(p.shape[1]):
            pk = p[:, k]  # [B, d]
            sim = u @ pk.T  # [B, B]: u_i . p_j
            if mode == "orthogonal":
                along = a @ pk.T  # a_i . p_j
                sim = sim * torch.rsqrt((1 - along.pow(2)).clamp_min(1e-6))
            logits = (sim / temperature).masked_fill(same, float("-inf"))
            losses.append((torch.logsumexp(logits, dim=1) - logits.diagonal()).mean())
        return torch.stack(losses).mean()


def noisy_proxy(clean: torch.Tensor, noise: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The noisy bridge anchor ``normalize(g_A(z') + noise * eps)``, ``eps ~ N(0, I)`` per coordinate."""
    if noise:
        clean = clean.float() + noise * torch.randn(clean.shape, generator=generator,
                                                    device=clean.device)
    return _unit(clean)


def bridge_term(
    embeddings: torch.Tensor,
    anchors: torch.Tensor,
    proxies: torch.Tensor,
    config: "TrainConfig",
    step: int,
) -> torch.Tensor:
    """``bridge_weight * L_bridge`` of one training step (what the trainer adds to its loss).

    The noise is drawn from a generator seeded by ``(config.seed, step)``, so a resumed run
    sees the same proxies as an uninterrupted one.

    Args:
        embeddings: ``[B, d]`` projected embeddings of the batch.
        anchors: ``[B, d]`` their anchor embeddings ``z'``.
        proxies: ``[B, k, d]`` clean bridge anchors ``g_A(z')`` of the batch.
        config: its ``bridge_weight``, ``bridge_noise``, ``bridge_mode``, ``bridge_loss``
            (``"cosine"``: :func:`bridge_loss`; ``"centred"``: the same, batch-centred;
            ``"contrastive"``:
            :func:`contrastive_bridge_loss` at ``temperature``) and ``seed`` are used.
        step: the global optimiser step (seeds the noise).
    """
    gen = None
    if config.bridge_noise:
        gen = torch.Generator(device=proxies.device).manual_seed(
            config.seed * 2_000_003 + step + 7)
    noisy = noisy_proxy(proxies, config.bridge_noise, gen)
    if config.bridge_loss == "contrastive":
        loss = contrastive_bridge_loss(embeddings, anchors, noisy, config.bridge_mode,
                                       config.temperature)
    else:
        loss = bridge_loss(embeddings, anchors, noisy, config.bridge_mode,
                           centred=config.bridge_loss in ("centred", "angular-centred"),
                           angular=config.bridge_loss in ("angular", "angular-centred"))
    return config.bridge_weight * loss


# ----------------------------------------------------------------------------- g_A
@dataclass
class BridgeMapping:
    """``g_A``: anchor space -> the projected space of modality ``source`` (an affine map).

    Attributes:
        source: the bridge modality ``A`` (its name in the bridge model).
        weight: ``[d_out, d_in]``; ``bias``: ``[d_out]``. The output is L2-normalised.
        fit_cosine: mean cosine between ``g_A(z')`` and A's text path on the fitting texts.
        n_texts: how many texts it was fitted on.
    """

    source: str
    weight: torch.Tensor
    bias: torch.Tensor
    fit_cosine: float = float("nan")
    n_texts: int = 0

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bridge mapping {self.source!r}: weight must be [d_out, d_in] and "
                             f"bias [d_out], got {tuple(self.weight.shape)} and "
                             f"{tuple(self.bias.shape)}")

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def fit(cls, source: str, anchors: torch.Tensor, targets: torch.Tensor,
            ridge: float = 1e-2) -> "BridgeMapping":
        """Least squares with a ridge penalty (float64, closed form, deterministic).

        Args:
            source: the bridge modality's name.
            anchors: ``[N, d]`` anchor embeddings ``z'`` of the fitting texts.
            targets: ``[N, d']`` A's projected text path of the same texts.
            ridge: L2 penalty on the weight (relative to the mean diagonal of ``X^T X``).
        """
        if anchors.ndim != 2 or targets.ndim != 2 or len(anchors) != len(targets) or len(anchors) < 2:
            raise ValueError(f"fit needs [N, d] anchors and targets with the same N >= 2, got "
                             f"{tuple(anchors.shape)} and {tuple(targets.shape)}")
        x, y = anchors.double(), targets.double()
        mx, my = x.mean(0), y.mean(0)
        xc, yc = x - mx, y - my
        gram = xc.T @ xc
        gram += torch.eye(gram.shape[0], dtype=gram.dtype) * (ridge * gram.diagonal().mean() + 1e-12)
        w = torch.linalg.solve(gram, xc.T @ yc).T  # [d', d]
        b = my - w @ mx
        mapping = cls(source, w.float().contiguous(), b.float().contiguous(), n_texts=len(x))
        mapping.fit_cosine = float((mapping(anchors) * _unit(targets)).sum(-1).mean())
        return mapping

    def __call__(self, anchors: torch.Tensor) -> torch.Tensor:
        """``g_A(z')``, L2-normalised."""
        w = self.weight.to(anchors.device)
        return _unit(anchors.float() @ w.T + self.bias.to(anchors.device))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {f"{prefix}weight": self.weight.detach().cpu().float().contiguous(),
                f"{prefix}bias": self.bias.detach().cpu().float().contiguous()}


# ------------------------------------------------------------------ anchor-space re-centring
@dataclass
class AnchorRecentring:
    """The residual modality gap in the anchor space, and its removal.

    ``mu_modal`` is the centroid of projected modal embeddings ``P(E_x(x) - mu_modal)``, and
    ``mu_text`` the centroid of anchor text embeddings, both from unpaired samples.
    :meth:`apply` moves projected modal embeddings by ``mu_text - mu_modal`` and
    re-normalises them.
    """

    mu_modal: torch.Tensor
    mu_text: torch.Tensor
    n_modal: int = 0
    n_text: int = 0

    def __post_init__(self) -> None:
        if self.mu_modal.ndim != 1 or self.mu_modal.shape != self.mu_text.shape:
            raise ValueError(f"re-centring centroids must be two 1-D tensors of one size, got "
                             f"{tuple(self.mu_modal.shape)} and {tuple(self.mu_text.shape)}")

    @property
    def dim(self) -> int:
        return int(self.mu_modal.shape[0])

    @property
    def gap(self) -> float:
        """``||mu_modal - mu_text||``: the residual gap norm in the anchor space."""
        return float((self.mu_modal - self.mu_text).norm())

    @classmethod
    def from_embeddings(cls, projected_modal: torch.Tensor, anchor_text: torch.Tensor) -> "AnchorRecentring":
        """Centroids of unit-normalised ``[N, d]`` projected modal and anchor text embeddings."""
        if projected_modal.ndim != 2 or anchor_text.ndim != 2 or \
                projected_modal.shape[1] != anchor_text.shape[1]:
            raise ValueError("projected modal and anchor text embeddings must be [N, d] of one d")
        if not len(projected_modal) or not len(anchor_text):
            raise ValueError("re-centring needs unpaired modal samples and texts (got none)")
        return cls(_unit(projected_modal).double().mean(0).float(),
                   _unit(anchor_text).double().mean(0).float(),
                   len(projected_modal), len(anchor_text))

    def apply(self, projected: torch.Tensor) -> torch.Tensor:
        """``normalize(z - mu_modal + mu_text)``."""
        shift = (self.mu_text - self.mu_modal).to(projected.device)
        return _unit(projected.float() + shift)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mu_modal": self.mu_modal.detach().cpu().float().contiguous(),
                "mu_text": self.mu_text.detach().cpu().float().contiguous(),
                "n_modal": torch.tensor([self.n_modal], dtype=torch.int64),
                "n_text": torch.tensor([self.n_text], dtype=torch.int64)}

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "AnchorRecentring":
        return cls(sd["mu_modal"].float(), sd["mu_text"].float(), int(sd["n_modal"][0]),
                   int(sd["n_text"][0]))
