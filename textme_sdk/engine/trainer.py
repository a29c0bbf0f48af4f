"""Projector training on cached text embeddings (paper Sec. 3.3, App. C.2, Table 11).

Inputs are the centred encoder-text embeddings ``E_t(t_i) - mu_text`` and targets the anchor
embeddings ``E_LLM(t_i)`` of the same texts: both precomputed, so a step is one MLP forward
and backward plus the loss. AdamW, cosine schedule with linear warm-up, gradient clipping,
fp16 autocast + GradScaler on CUDA, a held-out text split for model selection, and checkpoints
that resume bit-for-bit after an interruption (SIGINT/SIGTERM save state before stopping).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from safetensors import SafetensorError, safe_open

from ..errors import (
    DimensionMismatchError,
    EmptyInputError,
    InvalidEmbeddingError,
    InvalidInputError,
    TrainingCheckpointError,
    TrainingDivergedError,
    TrainingInterrupted,
)
from .bridge import BRIDGE_LOSSES, BRIDGE_MODES, bridge_term
from .cache import atomic_save
from .losses import hard_negative_infonce
from .numerics import all_finite, nonfinite_rows
from .progress import auto_progress
from .projector import Projector

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "fit_projector", "DEFAULT_LOSS"]

Precision = Literal["auto", "fp32", "fp16", "bf16"]
LossFn = Callable[[torch.Tensor, torch.Tensor, "TrainConfig"], torch.Tensor]

#: The paper's loss (Eq. 4), what ``TrainConfig.loss`` names by default.
DEFAULT_LOSS = "hard_negative_infonce"


@dataclass
class TrainConfig:
    """Hyper-parameters of projector training; defaults are the paper's (Table 11).

    Attributes:
        epochs: passes over the training texts.
        batch_size: texts per step (the InfoNCE batch).
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        temperature: InfoNCE temperature ``tau``.
        window: hard-negative window ``(low, high)`` as fractions of the positive similarity.
        warmup_ratio: fraction of the steps spent in linear warm-up.
        min_lr_ratio: the cosine schedule decays to ``lr * min_lr_ratio``.
        grad_clip: max gradient norm (``0`` disables clipping).
        precision: ``"auto"`` = fp16 autocast on CUDA, fp32 on CPU; or force one.
        seed: seeds initialisation, the validation split and the batch order.
        val_fraction: share of texts held out for model selection (0 = none).
        hidden_dim, num_layers, dropout: projector shape (``None`` hidden = ``d_m``).
        checkpoint_every: save a checkpoint every N steps (0 = at each epoch end only).
        select_best: return the epoch with the best held-out R@1 rather than the last.
        input_noise: std of Gaussian noise added to each (centred) input during training
            (0 = the paper's recipe). Text embeddings of templated captions form a discrete
            set that modal embeddings never hit exactly; a little noise (CapDec-style) keeps
            the projector smooth between them. Deterministic per (seed, step).
        loss: name of the training loss in the loss registry (``textme_sdk.list_losses()``;
            plugins add more through ``register_losses``). Default: the paper's Eq. 4.
        bridge_weight: ``lambda`` of the EmergentBridge term (:mod:`textme_sdk.engine.bridge`);
            0 = plain TextME (the bridge code never runs).
        bridge_noise: std of the Gaussian noise added per coordinate to the bridge anchor.
        bridge_mode: ``"orthogonal"`` (align only orthogonally to ``z'``) or ``"full"``.
        bridge_loss: ``"cosine"`` (squared distance to the proxy), ``"centred"`` (the same on
            batch-centred vectors), ``"angular"`` / ``"angular-centred"`` (on the directions of
            the orthogonal parts) or ``"contrastive"`` (InfoNCE against the batch's proxies);
            left out of :meth:`to_dict` at its default (:mod:`textme_sdk.engine.bridge`).
        device: ``None`` = CUDA when available.

    Every field is checked (:meth:`validate`) when the config is built and again before
    training, so a bad value fails before any embedding work.
    """

    epochs: int = 50
    batch_size: int = 512
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    temperature: float = 0.07
    window: tuple[float, float] = (0.1, 0.9)
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    precision: Precision = "auto"
    seed: int = 0
    val_fraction: float = 0.05
    hidden_dim: int | None = None
    num_layers: int = 2
    dropout: float = 0.0
    checkpoint_every: int = 0
    select_best: bool = True
    input_noise: float = 0.0
    loss: str = DEFAULT_LOSS
    device: str | None = None
    bridge_weight: float = 0.0
    bridge_noise: float = 0.0
    bridge_mode: str = "orthogonal"
    bridge_loss: str = "cosine"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise :class:`InvalidInputError` naming the first field that is out of range."""

        def bad(name: str, rule: str) -> InvalidInputError:
            return InvalidInputError(
                f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        def number(name: str, low: float, high: float = math.inf, low_open: bool = False,
                   high_open: bool = False, rule: str = "") -> None:
            v = getattr(self, name)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  and (v > low if low_open else v >= low)
                  and (v < high if high_open else v <= high))
            if not ok:
                raise bad(name, rule)

        def integer(name: str, low: int, rule: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise bad(name, rule)

        integer("epochs", 1, "an integer >= 1")
        integer("batch_size", 2, "an integer >= 2 (a batch of one has no negatives)")
        number("lr", 0, 1e3, low_open=True, rule="a finite number in (0, 1000]")
        number("weight_decay", 0, rule="a finite number >= 0")
        number("temperature", 0, low_open=True, rule="a finite number > 0")
        number("warmup_ratio", 0, 1, high_open=True, rule="in [0, 1)")
        number("min_lr_ratio", 0, 1, rule="in [0, 1]")
        number("grad_clip", 0, rule="a finite number >= 0 (0 disables clipping)")
        number("val_fraction", 0, 1, high_open=True, rule="in [0, 1)")
        number("dropout", 0, 1, high_open=True, rule="in [0, 1)")
        number("input_noise", 0, rule="a finite number >= 0")
        integer("seed", 0, "an integer >= 0")
        integer("num_layers", 1, "an integer >= 1")
        integer("checkpoint_every", 0, "an integer >= 0 (0 = at each epoch end only)")
        if self.hidden_dim is not None:
            integer("hidden_dim", 1, "None or an integer >= 1")
        for name, pair, rule in (
            ("betas", self.betas, "two numbers in [0, 1)"),
            ("window", self.window, "(low, high) with 0 <= low < high <= 1"),
        ):
            try:
                a, b = (float(x) for x in pair)
            except (TypeError, ValueError):
                raise bad(name, rule) from None
            ok = (0 <= a < 1 and 0 <= b < 1) if name == "betas" else (0 <= a < b <= 1)
            if not ok:
                raise bad(name, rule)
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise bad("precision", "one of 'auto', 'fp32', 'fp16', 'bf16'")
        if not isinstance(self.loss, str) or not self.loss:
            raise bad("loss", "the name of a registered loss")
        number("bridge_weight", 0, rule="a finite number >= 0 (0 = no bridge)")
        number("bridge_noise", 0, rule="a finite number >= 0")
        if self.bridge_mode not in BRIDGE_MODES:
            raise bad("bridge_mode", " or ".join(repr(m) for m in BRIDGE_MODES))
        if self.bridge_loss not in BRIDGE_LOSSES:
            raise bad("bridge_loss", " or ".join(repr(m) for m in BRIDGE_LOSSES))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the bridge fields only when a bridge is used, so that configs without
        one keep the keys they always had (checkpoints and caches keyed on them stay valid)."""
        d = asdict(self)
        d["betas"], d["window"] = list(self.betas), list(self.window)
        if not self.bridge_weight:
            for k in _BRIDGE_FIELDS:
                if d[k] == _BRIDGE_DEFAULTS[k]:
                    del d[k]
        if d["bridge_loss"] == _BRIDGE_LOSS_DEFAULT:  # a later field: keys of older runs stay
            del d["bridge_loss"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        for k in ("betas", "window"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown TrainConfig fields: {sorted(unknown)}; the "
                                    f"fields are {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


_BRIDGE_FIELDS = ("bridge_weight", "bridge_noise", "bridge_mode")
_BRIDGE_DEFAULTS = {k: TrainConfig.__dataclass_fields__[k].default for k in _BRIDGE_FIELDS}
_BRIDGE_LOSS_DEFAULT = TrainConfig.__dataclass_fields__["bridge_loss"].default


@dataclass
class TrainResult:
    """What :func:`fit_projector` returns.

    Attributes:
        projector: the selected projector (best held-out epoch, or the last), on CPU, eval mode.
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_r1``, ``lr``).
        best_epoch: the epoch the projector comes from.
        steps: optimiser steps taken in total.
        seconds: wall time of this call's training loop.
        samples_per_second: training throughput of this call.
    """

    projector: Projector
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0
    seconds: float = 0.0
    samples_per_second: float = 0.0

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        best = next((h for h in self.history if h["epoch"] == self.best_epoch), last)
        return {
            "epochs": len(self.history),
            "steps": self.steps,
            "best_epoch": self.best_epoch,
            "final_train_loss": last.get("train_loss"),
            "best_val_loss": best.get("val_loss"),
            "best_val_r1": best.get("val_r1"),
            "seconds": round(self.seconds, 2),
        }


# --------------------------------------------------------------------------------- helpers
def _amp(precision: Precision, device: torch.device) -> tuple[bool, torch.dtype | None]:
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return False, None
    if precision == "fp16" and device.type != "cuda":
        raise InvalidInputError("precision='fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    return True, torch.float16 if precision == "fp16" else torch.bfloat16


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``lr * min_lr_ratio``."""
    warm = int(cfg.warmup_ratio * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _split(n: int, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=_generator(cfg.seed))
    n_val = int(round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
    n_val = min(n_val, n - 2)
    return perm[n_val:], perm[:n_val]


def _epoch_order(train_idx: torch.Tensor, epoch: int, cfg: TrainConfig) -> list[torch.Tensor]:
    perm = train_idx[torch.randperm(len(train_idx), generator=_generator(cfg.seed * 100_003 + epoch + 1))]
    batches = list(perm.split(cfg.batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()  # a batch of one has no negatives
    return batches


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Turn SIGINT/SIGTERM into a flag checked after each step (main thread only)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        flag.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


# ------------------------------------------------------------------------------ checkpoints
def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {f"opt.{pid}.{k}": v for pid, st in sd["state"].items() for k, v in st.items()}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, groups


def _optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def save_checkpoint(path: Path, projector: Projector, opt: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, state: dict[str, Any],
                    best: dict[str, torch.Tensor] | None) -> None:
    """Everything needed to resume, as safetensors + JSON (never pickle); atomic per file."""
    path.mkdir(parents=True, exist_ok=True)
    opt_t, groups = _optimizer_to_tensors(opt)
    tensors = {f"model.{k}": v.detach().cpu() for k, v in projector.state_dict().items()}
    tensors.update({k: v.detach().cpu() for k, v in opt_t.items()})
    if best is not None:
        tensors.update({f"best.{k}": v for k, v in best.items()})
    meta = json.dumps(dict(state, param_groups=groups, scaler=scaler.state_dict()), indent=1)
    # The state travels inside the safetensors file: weights and step counters are replaced in
    # one rename, so a kill between two writes cannot pair new weights with an old step.
    atomic_save(tensors, path / "state.safetensors", metadata={_STATE_KEY: meta})
    tmp = path / ".trainer_state.json.tmp"  # a readable copy; resuming reads the file above
    tmp.write_text(meta)
    os.replace(tmp, path / "trainer_state.json")


_STATE_KEY = "textme_trainer_state"


def _load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training checkpoint; a damaged one raises :class:`TrainingCheckpointError`."""
    try:
        with safe_open(str(path / "state.safetensors"), framework="pt") as f:
            embedded = (f.metadata() or {}).get(_STATE_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        # checkpoints written before the state was embedded keep it only in the JSON file
        state = json.loads(embedded if embedded is not None
                           else (path / "trainer_state.json").read_text())
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise TrainingCheckpointError(
            f"the training checkpoint in {path} is damaged or incomplete ({type(exc).__name__}: "
            f"{exc}); delete that folder to start again, or train without resume"
        ) from exc
    if not isinstance(state, dict) or "step" not in state:
        raise TrainingCheckpointError(
            f"{path / 'trainer_state.json'} is not a textme training state; delete the folder "
            "or choose another checkpoint_dir")
    return tensors, state


def data_fingerprint(inputs: torch.Tensor, targets: torch.Tensor, *more: torch.Tensor) -> str:
    """sha256 of the exact training data (inputs, targets and any more tensors: the input
    offset, bridge targets), recorded in checkpoints. Hashed in place, chunk by chunk (no copy
    of the data)."""
    h = hashlib.sha256()
    for t in (inputs, targets, *more):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        flat = t.reshape(-1).view(torch.uint8) if t.numel() else t.new_empty(0, dtype=torch.uint8)
        for part in flat.split(1 << 26):
            h.update(part.numpy().data)
    return h.hexdigest()


# ------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def _evaluate(projector: Projector, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
              device: torch.device, loss_fn: LossFn,
              x_off: torch.Tensor | None = None) -> tuple[float, float]:
    """Held-out loss (batched like training) and R@1 of projected text -> anchor of the same text.

    Works block by block (a block of projected rows against blocks of anchors, with a running
    best match), so memory stays a few blocks whatever the size of the held-out set; ``x`` may
    be raw stored rows with ``x_off`` subtracted as each block is used.
    """
    projector.eval()
    block = cfg.batch_size * max(1, 1024 // cfg.batch_size)  # whole training-size batches
    losses: list[float] = []
    hits = 0
    for start in range(0, len(x), block):
        xb = x[start : start + block].to(device).float()
        if x_off is not None:
            xb = xb - x_off
        z = projector(xb).float()
        yb = y[start : start + block].to(device).float()
        losses += [loss_fn(zc, yc, cfg).item()
                   for zc, yc in zip(z.split(cfg.batch_size), yb.split(cfg.batch_size))
                   if len(zc) > 1]
        best = torch.full((len(z),), -math.inf, device=device)
        arg = torch.zeros(len(z), dtype=torch.long, device=device)
        for ystart in range(0, len(y), block):
            yn = torch.nn.functional.normalize(y[ystart : ystart + block].to(device).float(), dim=-1)
            value, where = (z @ yn.T).max(dim=1)
            better = value > best  # strict: the first of equal matches wins, as argmax does
            best = torch.where(better, value, best)
            arg = torch.where(better, where + ystart, arg)
        hits += (arg.cpu() == torch.arange(start, start + len(z))).sum().item()
    projector.train()
    return (sum(losses) / len(losses) if losses else float("nan")), hits / len(x)


# ---------------------------------------------------------------------------------- the loop
def fit_projector(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    config: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    show_progress_bar: bool | None = None,
    on_step: Callable[[int, float], None] | None = None,
    loss_fn: LossFn | None = None,
    fingerprint: dict[str, Any] | None = None,
    input_offset: torch.Tensor | None = None,
    bridge_targets: torch.Tensor | None = None,
) -> TrainResult:
    """Train a :class:`Projector` mapping ``inputs`` rows onto ``targets`` rows.

    Args:
        inputs: ``[N, d_m]`` centred encoder-text embeddings (any float dtype; kept on CPU).
        targets: ``[N, d_anchor]`` anchor embeddings of the same texts.
        config: hyper-parameters (default: the paper's).
        checkpoint_dir: where to save resumable state (every ``checkpoint_every`` steps, at
            every epoch end, and on SIGINT/SIGTERM). ``None`` keeps nothing on disk.
        resume: continue from the state in ``checkpoint_dir`` if there is one.
        show_progress_bar: tqdm bar with the loss (default: on for runs over 50 steps).
        on_step: called as ``on_step(global_step, loss)`` after each optimiser step.
        loss_fn: ``loss(queries, keys, config)``; default the paper's hard-negative InfoNCE.
            :func:`textme_sdk.train_projector` resolves ``config.loss`` in the loss registry.
        fingerprint: what the data is (texts hash, encoder and anchor keys...), recorded in
            the checkpoint beside a hash of the data itself; resuming on other data is refused.
        input_offset: ``[d_m]`` subtracted (in float32) from each input row as it is used, so
            ``inputs`` can stay the cache's raw float16 rows (memory-mapped) instead of a
            centred float32 copy; the same numbers as passing ``inputs.float() - input_offset``.
        bridge_targets: ``[N, k, d_anchor]`` clean bridge anchors ``g_A(z')`` of each text for
            ``k`` bridge modalities; used when ``config.bridge_weight > 0`` (then required).

    Raises:
        TrainingInterrupted: after a signal; the state is saved when ``checkpoint_dir`` is set.
        TrainingDivergedError: the loss or the weights became NaN/inf; nothing is saved.
        TrainingCheckpointError: ``resume`` on a damaged checkpoint or on another run's one.
    """
    cfg = (config or TrainConfig()).validate()
    if loss_fn is None:
        if cfg.loss != DEFAULT_LOSS:
            raise InvalidInputError(
                f"fit_projector got TrainConfig.loss={cfg.loss!r} but no loss_fn; pass "
                "loss_fn=textme_sdk.plugins.get_loss(name), or train with train_projector")
        loss_fn = _default_loss
    if inputs.ndim != 2 or targets.ndim != 2 or len(inputs) != len(targets):
        raise DimensionMismatchError(
            f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must be [N, d] "
            "with the same N (one anchor embedding per training text)"
        )
    if len(inputs) < 2:
        raise EmptyInputError(f"need at least 2 training texts, got {len(inputs)}")
    if input_offset is not None and (input_offset.shape != (inputs.shape[1],)
                                     or not all_finite(input_offset)):
        raise DimensionMismatchError(
            f"input_offset must be a finite [{inputs.shape[1]}] vector (one value per input "
            f"dimension), got shape {tuple(input_offset.shape)}")
    bridged = (bridge_targets,) if cfg.bridge_weight else ()
    if cfg.bridge_weight and (bridge_targets is None or bridge_targets.ndim != 3
                              or bridge_targets.shape[0] != len(targets)
                              or bridge_targets.shape[2] != targets.shape[1]):
        raise DimensionMismatchError(
            f"bridge_weight={cfg.bridge_weight} needs bridge_targets of shape [N={len(targets)}, "
            f"k, {targets.shape[1]}], got "
            f"{None if bridge_targets is None else tuple(bridge_targets.shape)}; pass bridge= to "
            "train_projector, or set bridge_weight=0")
    for what, t in (("inputs", inputs), ("targets", targets), *(("bridge targets", b) for b in bridged)):
        # reductions only: no temporary the size of the (memory-mapped) training data
        rows = nonfinite_rows(t).tolist()
        if rows:
            raise InvalidEmbeddingError(
                f"the training {what} hold NaN/inf in {len(rows)} rows (first: {rows[:5]}); "
                "re-embed those texts (a damaged cache entry can be deleted) before training")
    device = torch.device(cfg.device) if cfg.device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    use_amp, amp_dtype = _amp(cfg.precision, device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None

    train_idx, val_idx = _split(len(inputs), cfg)
    x_dev = inputs.to(device)
    y_dev = targets.to(device)
    x_off = input_offset.to(device, torch.float32) if input_offset is not None else None
    b_dev = bridge_targets.to(device) if bridged else None
    steps_per_epoch = len(_epoch_order(train_idx, 0, cfg))
    total_steps = steps_per_epoch * cfg.epochs

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        projector = Projector(inputs.shape[1], targets.shape[1], cfg.hidden_dim,
                              cfg.num_layers, cfg.dropout)
    projector.to(device).train()
    opt = torch.optim.AdamW(projector.parameters(), lr=cfg.lr, betas=cfg.betas,
                            weight_decay=cfg.weight_decay, **_adamw_kernel(device))
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)

    offset = (input_offset,) if input_offset is not None else ()
    data = ({"sha256": data_fingerprint(inputs, targets, *offset, *bridged), **(fingerprint or {})}
            if ckpt else {})
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [],
                             "best_epoch": -1, "best_r1": -1.0, "best_loss": math.inf,
                             "epoch_loss_sum": 0.0, "epoch_loss_n": 0, "config": cfg.to_dict(),
                             "data": data}
    best: dict[str, torch.Tensor] | None = None
    if resume and ckpt is not None and any(
            (ckpt / name).exists() for name in ("state.safetensors", "trainer_state.json")):
        tensors, saved = _load_checkpoint(ckpt)
        if saved.get("config") != cfg.to_dict():
            changed = sorted(k for k, v in cfg.to_dict().items()
                             if (saved.get("config") or {}).get(k) != v)
            raise TrainingCheckpointError(
                f"the checkpoint in {ckpt} was written with a different TrainConfig "
                f"(differs in: {', '.join(changed)}); resume with the same config or use a new "
                "checkpoint_dir")
        if saved.get("data", {}).get("sha256") != data["sha256"]:
            was = {k: v for k, v in saved.get("data", {}).items() if k != "sha256"}
            raise TrainingCheckpointError(
                f"the checkpoint in {ckpt} was trained on other data ({was or 'unrecorded'}; "
                f"now: {({k: v for k, v in data.items() if k != 'sha256'}) or 'other tensors'}): "
                "resuming would mix two runs; use a new checkpoint_dir or the same texts, "
                "offsets, encoder and anchor")
        projector.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                                  strict=True)
        opt.load_state_dict(_optimizer_from_tensors(tensors, saved.pop("param_groups")))
        scaler.load_state_dict(saved.pop("scaler"))
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        state = saved
        logger.info("resuming at epoch %d batch %d (step %d)", state["epoch"], state["batch"], state["step"])

    def checkpoint() -> None:
        if ckpt is not None:
            save_checkpoint(ckpt, projector, opt, scaler, state, best)

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=state["step"], desc="training projector",
               disable=not auto_progress(show_progress_bar, total_steps > 50))
    t0, steps_here = time.perf_counter(), 0
    with _stop_on_signals() as stop:
        while state["epoch"] < cfg.epochs:
            batches = _epoch_order(train_idx, state["epoch"], cfg)
            while state["batch"] < len(batches):
                idx = batches[state["batch"]].to(device)
                for group in opt.param_groups:
                    group["lr"] = lr_at(state["step"], total_steps, cfg)
                xb = x_dev[idx].float()
                if x_off is not None:
                    xb = xb - x_off
                if cfg.input_noise:
                    noise_gen = torch.Generator(device=device).manual_seed(
                        cfg.seed * 1_000_003 + state["step"])
                    xb = xb + cfg.input_noise * torch.randn(xb.shape, generator=noise_gen, device=device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    z = projector(xb)
                loss = loss_fn(z, y_dev[idx], cfg)
                if cfg.bridge_weight:
                    loss = loss + bridge_term(z, y_dev[idx], b_dev[idx], cfg, state["step"])
                loss_v = loss.item()  # the step's one host sync (finiteness check and history)
                if not math.isfinite(loss_v):
                    bar.close()
                    raise TrainingDivergedError(
                        f"training diverged at step {state['step'] + 1}: the loss is "
                        f"{loss_v} (lr={cfg.lr}); nothing was saved. Lower the learning "
                        "rate or use precision='fp32'")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(projector.parameters(), cfg.grad_clip,
                                                   foreach=True)
                scaler.step(opt)
                scaler.update()
                state["epoch_loss_sum"] += loss_v
                state["epoch_loss_n"] += 1
                state["batch"] += 1
                state["step"] += 1
                steps_here += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_v:.4f}", epoch=state["epoch"])
                if on_step is not None:
                    on_step(state["step"], loss_v)
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    checkpoint()
                if stop.is_set():
                    checkpoint()
                    bar.close()
                    raise TrainingInterrupted(
                        f"training interrupted at step {state['step']}"
                        + (f"; resume with resume=True and checkpoint_dir={str(ckpt)!r}" if ckpt
                           else "; pass checkpoint_dir=... to make runs resumable"),
                        str(ckpt) if ckpt else None, state["step"],
                    )
            _check_finite(projector, state["step"], cfg)
            best = _end_epoch(projector, x_dev, y_dev, val_idx, cfg, device, state, opt, best,
                              loss_fn, x_off)
            checkpoint()
    bar.close()
    seconds = time.perf_counter() - t0
    if cfg.select_best and best is not None:
        projector.load_state_dict(best, strict=True)
    projector.cpu().eval()
    return TrainResult(
        projector=projector, history=state["history"], steps=state["step"], seconds=seconds,
        best_epoch=state["best_epoch"] if cfg.select_best and best is not None else state["epoch"] - 1,
        samples_per_second=steps_here * cfg.batch_size / seconds if seconds > 0 else 0.0,
    )


def _adamw_kernel(device: torch.device) -> dict[str, bool]:
    """The fused AdamW kernel (one pass over all parameters) where this torch has one for the
    device, else the multi-tensor one: the same update as the per-parameter loop, fewer passes."""
    if device.type in ("cpu", "cuda"):
        return {"fused": True}
    return {"foreach": True}


def _default_loss(queries: torch.Tensor, keys: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return hard_negative_infonce(queries, keys, cfg.temperature, cfg.window)


def _check_finite(projector: Projector, step: int, cfg: TrainConfig) -> None:
    """Refuse to go on (and so to checkpoint or return) with NaN/inf weights."""
    if not all(all_finite(p.detach()) for p in projector.parameters()):
        raise TrainingDivergedError(
            f"training diverged by step {step}: the projector weights hold NaN/inf (lr={cfg.lr}); "
            "nothing was saved. Lower the learning rate or use precision='fp32'")


def _end_epoch(projector, x_dev, y_dev, val_idx, cfg, device, state, opt, best, loss_fn,
               x_off=None):
    """Record the epoch, evaluate on the held-out texts, keep the best weights."""
    record = {"epoch": state["epoch"],
              "train_loss": state["epoch_loss_sum"] / max(1, state["epoch_loss_n"]),
              "lr": opt.param_groups[0]["lr"]}
    if len(val_idx) >= 2:
        vloss, r1 = _evaluate(projector, x_dev[val_idx.to(device)], y_dev[val_idx.to(device)],
                              cfg, device, loss_fn, x_off)
        record.update(val_loss=vloss, val_r1=r1)
        better = r1 > state["best_r1"] or (r1 == state["best_r1"] and vloss < state["best_loss"])
        if better:
            state.update(best_r1=r1, best_loss=vloss, best_epoch=state["epoch"])
            best = {k: v.detach().cpu().clone() for k, v in projector.state_dict().items()}
    state["history"].append(record)
    state.update(epoch=state["epoch"] + 1, batch=0, epoch_loss_sum=0.0, epoch_loss_n=0)
    return best
