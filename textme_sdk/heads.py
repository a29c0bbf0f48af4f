"""Few-shot classifier heads sharpened by unpaired text (UML, arXiv 2510.08492).

One linear head ``W [C, d]`` (no bias) is shared by the modal shots and by class-labelled
*unpaired* text: it starts as the zero-shot classifier (the normalised class means of the text
embeddings) and is trained with::

    loss = sum over shot modalities m of CE_m(s_m * norm(x) @ W.T)  +  alpha * CE_text(s_t * norm(t) @ W.T)

with AdamW, a cosine schedule with linear warm-up, and (optionally) early stopping on a
validation split of the shots. ``s`` is a fixed logit scale (100, for spaces where text and
modal embeddings are aligned) or one learnable scale per source. Each term is **class
balanced**: every class weighs the same in its term whatever its number of shots (or texts),
so a class with 16 shots does not drown a class with one.

Two spaces:

* ``space="anchor"``: TextME's anchor space. Modal shots are ``model.embed(x, modality)``, texts
  go through the anchor. Every modality of the bundle lands there, so a head fitted on image
  shots classifies audio too.
* ``space="encoder"``: the encoder's own space, centred with the offsets (texts minus
  ``mu_text``, modal embeddings minus ``mu_modal``), which makes the encoder's text and modal
  embeddings interchangeable; ``HeadConfig(use_offsets=False)`` is the uncentred ablation.

Heads are saved as ``head.safetensors`` + ``config.json`` (strict, hashed, never pickled) and
may live inside a bundle (``heads/NAME/``, see :meth:`textme_sdk.TextME.add_head`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from .errors import (
    BundleFormatError,
    BundleWriteError,
    DimensionMismatchError,
    EmptyInputError,
    HeadMismatchError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingFileError,
    NonFiniteWeightsError,
    OutputExistsError,
    TextMEError,
)

logger = logging.getLogger(__name__)

__all__ = ["HeadConfig", "ClassifierHead", "fit_head", "fit_head_on_embeddings", "load_head",
           "uml_loss", "bundle_record",
           "HEAD_FORMAT_VERSION", "SPACES"]

HEAD_FORMAT_VERSION = 1
HEAD_KIND = "textme-classifier-head"
HEAD_CONFIG = "config.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_FILES = (HEAD_CONFIG, HEAD_WEIGHTS)
SPACES = ("anchor", "encoder")
TEXT = "text"
MAX_CLASSES = 1 << 20


@dataclass
class HeadConfig:
    """How a head is trained.

    Attributes:
        steps: optimisation steps (full batch: every shot and every text in each step).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: fraction of ``steps`` with a linear warm-up before the cosine decay.
        logit_scale: fixed logit scale (UML: 100 for aligned spaces); ``None`` learns one scale
            per source (each shot modality and the text), starting at ``init_scale``.
        init_scale: the learnable scales' starting value.
        init: ``"text"`` starts from the zero-shot classifier (normalised class means of the
            text embeddings, UML); ``"random"`` from small random rows (a plain linear probe).
        val_fraction: share of each class's shots held out for early stopping (classes with
            fewer than 2 shots keep all of theirs); 0 trains for exactly ``steps``.
        eval_every: steps between validation checks when ``val_fraction > 0``.
        use_offsets: ``space="encoder"`` only: centre with the offsets (``False`` = ablation).
        seed: seeds the random init and the validation split.
    """

    steps: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.1
    logit_scale: float | None = 100.0
    init_scale: float = 100.0
    init: str = "text"
    val_fraction: float = 0.0
    eval_every: int = 10
    use_offsets: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> InvalidInputError:
            return InvalidInputError(f"HeadConfig.{name} must be {want}, got "
                                     f"{getattr(self, name)!r}; fix the config")

        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise bad("steps", "an integer >= 0")
        for name in ("lr", "init_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise bad(name, "a positive number")
        if not isinstance(self.weight_decay, (int, float)) or not 0 <= self.weight_decay < 1:
            raise bad("weight_decay", "a number in [0, 1)")
        if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
            raise bad("warmup", "a number in [0, 1)")
        if self.logit_scale is not None and (not isinstance(self.logit_scale, (int, float))
                                             or not math.isfinite(self.logit_scale)
                                             or self.logit_scale <= 0):
            raise bad("logit_scale", "a positive number or None (learnable)")
        if self.init not in ("text", "random"):
            raise bad("init", "'text' or 'random'")
        if not isinstance(self.val_fraction, (int, float)) or not 0 <= self.val_fraction < 1:
            raise bad("val_fraction", "a number in [0, 1)")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) \
                or self.eval_every < 1:
            raise bad("eval_every", "an integer >= 1")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON data."""
        return asdict(self)


# ------------------------------------------------------------------------------------ the head
class ClassifierHead:
    """A linear classifier over embeddings of one space, with its class names.

    ``logits = scale * normalize(x) @ W.T``; rows of ``W`` are the classes in :attr:`classes`.

    Args:
        weight: ``[C, d]`` class weights.
        classes: the ``C`` class names (distinct strings).
        space: ``"anchor"`` or ``"encoder"``.
        scales: logit scale per source (``"text"`` and shot modalities); ``"default"`` is used
            for a modality without its own scale.
        modality: for ``space="encoder"``, the bundle modality whose encoder it classifies.
        use_offsets: for ``space="encoder"``, whether inputs are centred with ``mu_modal``.
        bundle: what the head was fitted on (see :func:`bundle_record`).
        info: training summary and other metadata (JSON data).
    """

    def __init__(self, weight: torch.Tensor, classes: Sequence[str], space: str = "anchor",
                 scales: Mapping[str, float] | None = None, modality: str | None = None,
                 use_offsets: bool = True, bundle: Mapping[str, Any] | None = None,
                 info: Mapping[str, Any] | None = None):
        weight = torch.as_tensor(weight, dtype=torch.float32).detach().cpu().contiguous()
        classes = [str(c) for c in classes]
        if weight.ndim != 2 or weight.shape[0] != len(classes) or not classes:
            raise DimensionMismatchError(f"a head needs weight [C, d] with one row per class; got "
                                         f"{tuple(weight.shape)} for {len(classes)} classes")
        if len(set(classes)) != len(classes):
            dup = sorted({c for c in classes if classes.count(c) > 1})
            raise InvalidInputError(f"duplicate class names {dup[:3]}; give each class one name")
        if space not in SPACES:
            raise InvalidInputError(f"space must be 'anchor' or 'encoder', got {space!r}")
        if space == "encoder" and not modality:
            raise InvalidInputError("an encoder-space head needs the modality whose encoder it uses")
        if not torch.isfinite(weight).all():
            raise NonFiniteWeightsError("the head's weights hold NaN/inf (a diverged fit?); "
                                        "refit it with a lower learning rate")
        scales = {"default": 100.0} if scales is None else {str(k): float(v)
                                                            for k, v in scales.items()}
        scales.setdefault("default", next(iter(scales.values())))
        if not all(math.isfinite(v) and v > 0 for v in scales.values()):
            raise NonFiniteWeightsError(f"the head's logit scales must be positive and finite, "
                                        f"got {scales}; refit the head")
        self.weight = weight
        self.classes = classes
        self.space = space
        self.scales = scales
        self.modality = modality
        self.use_offsets = bool(use_offsets)
        self.bundle = dict(bundle or {})
        self.info = dict(info or {})

    @property
    def dim(self) -> int:
        """Width of the embeddings the head takes."""
        return int(self.weight.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        where = f"encoder:{self.modality}" if self.space == "encoder" else "anchor"
        return f"ClassifierHead({self.num_classes} classes, {self.dim}-d, space={where})"

    # ---------------------------------------------------------------------------- inference
    def _rows(self, embeddings: Any) -> tuple[torch.Tensor, bool]:
        try:
            x = torch.as_tensor(embeddings, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise InvalidInputError(f"a head takes numeric arrays or tensors, got "
                                    f"{type(embeddings).__name__}") from None
        single = x.ndim == 1
        x = x.unsqueeze(0) if single else x
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"this head takes {self.dim}-d embeddings of the {self._space_name()}, got shape "
                f"{tuple(x.shape)}; embed the inputs with the bundle it was fitted on")
        if not torch.isfinite(x).all():
            raise InvalidEmbeddingError("NaN/inf in the embeddings passed to the head; drop or "
                                        "recompute those rows")
        return x, single

    def _space_name(self) -> str:
        return (f"{self.modality!r} encoder space" if self.space == "encoder"
                else "anchor space")

    def logits(self, embeddings: Any, modality: str | None = None) -> torch.Tensor:
        """``[N, C]`` logits (``[C]`` for one 1-D embedding); ``modality`` picks its scale."""
        x, single = self._rows(embeddings)
        scale = self.scales.get(modality or "", self.scales["default"])
        out = scale * F.normalize(x, dim=-1) @ self.weight.T
        return out[0] if single else out

    def predict_proba(self, embeddings: Any, modality: str | None = None) -> torch.Tensor:
        """Class probabilities (softmax of :meth:`logits`)."""
        return self.logits(embeddings, modality).softmax(-1)

    def predict(self, embeddings: Any) -> list[str]:
        """The most likely class name of each embedding (a list, even for one row)."""
        x, _ = self._rows(embeddings)
        return [self.classes[i] for i in self.logits(x).argmax(-1).tolist()]

    def embed(self, model: Any, inputs: Any, modality: str, batch_size: int = 32) -> torch.Tensor:
        """Embed ``inputs`` of ``modality`` with ``model`` into this head's space.

        Raises:
            HeadMismatchError: ``model`` is not the bundle the head was fitted on.
            UnknownModalityError: ``model`` has no ``modality``.
        """
        self.check_model(model, modality)
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        return _embed_space(model, list(items), modality, self.space, self.modality,
                            self.use_offsets, batch_size)

    def classify(self, model: Any, inputs: Any, modality: str,
                 batch_size: int = 32) -> list[str]:
        """Embed ``inputs`` of ``modality`` with ``model`` and return their predicted classes.

        An anchor-space head classifies every modality of the bundle, also modalities it saw
        no shot of; an encoder-space head only its own modality.

        Raises:
            HeadMismatchError: ``model`` is not the bundle the head was fitted on (another
                anchor, or another projector / offsets for a modality of the same name), or
                ``modality`` is not the encoder-space head's.
        """
        return self.predict(self.embed(model, inputs, modality, batch_size))

    def check_model(self, model: Any, modality: str) -> None:
        """Raise :class:`HeadMismatchError` unless ``model`` can feed this head ``modality``."""
        model.entry(modality)  # UnknownModalityError names what the bundle has
        if self.space == "encoder" and modality != self.modality:
            raise HeadMismatchError(
                f"this head was fitted in the {self.modality!r} encoder space and cannot classify "
                f"{modality!r} inputs; fit an anchor-space head (space='anchor') to classify "
                "across modalities")
        if not self.bundle:
            return
        now = bundle_record(model, [modality])
        if now["anchor"] != self.bundle.get("anchor"):
            raise HeadMismatchError(
                f"this head was fitted on a bundle with anchor {self.bundle.get('anchor_name')!r} "
                f"(fingerprint {str(self.bundle.get('anchor'))[:12]}), not this model's "
                f"{model.anchor.name!r} ({now['anchor'][:12]}); load the bundle it was fitted on "
                "or refit the head")
        fitted = self.bundle.get("modalities", {}).get(modality)
        if fitted is not None and fitted != now["modalities"][modality]:
            raise HeadMismatchError(
                f"modality {modality!r} of this model is not the one the head was fitted with "
                "(another projector, offsets or encoder); load the bundle it was fitted on "
                f"({self.bundle.get('source') or 'see the head config'}) or refit the head")

    # ------------------------------------------------------------------------------ storage
    def _config(self) -> dict[str, Any]:
        return {"kind": HEAD_KIND, "format_version": HEAD_FORMAT_VERSION,
                "classes": list(self.classes), "dim": self.dim, "space": self.space,
                "modality": self.modality, "use_offsets": self.use_offsets,
                "scales": dict(self.scales), "bundle": self.bundle, "info": self.info}

    def write_files(self, folder: Path) -> None:
        """Write ``head.safetensors`` and ``config.json`` into the new folder ``folder``
        (created; it must not exist). Used by :meth:`save_pretrained` and bundle saves."""
        from safetensors.torch import save as safetensors_bytes

        from .bundle import _fsync_dir, _write_bytes, _write_json

        folder.mkdir(parents=True)
        blob = safetensors_bytes({"weight": self.weight.contiguous()}, metadata={"format": "pt"})
        _write_bytes(folder / HEAD_WEIGHTS, blob)
        _write_json(folder / HEAD_CONFIG,
                    {**self._config(), "sha256": {HEAD_WEIGHTS: hashlib.sha256(blob).hexdigest()}})
        _fsync_dir(folder)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write the head to ``save_directory`` crash-safely (like a bundle); returns it.

        The folder may be missing, empty, or hold a head (replaced). At every moment it holds
        the old or the new head.

        Raises:
            OutputExistsError: the folder exists and holds something other than a head.
            BundleWriteError: the disk is full or not writable (the previous head is unchanged).
        """
        from .bundle import _install, _remove, _staging, _target, _unlock, recover_interrupted_save

        dest = _target(Path(save_directory))
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BundleWriteError(f"could not create {dest.parent}: {exc.strerror or exc}; choose "
                                   "a writable folder") from exc
        recover_interrupted_save(dest)
        replace = _check_head_target(dest)
        try:
            tmp, lock = _staging(dest)
        except OSError as exc:
            raise BundleWriteError(f"could not save the head to {dest}: {exc.strerror or exc}; "
                                   "check the folder and the disk") from exc
        old = None
        try:
            staged = tmp / "head"
            self.write_files(staged)
            for name in HEAD_FILES:  # flat layout: move the files up into the staging folder
                os.replace(staged / name, tmp / name)
            staged.rmdir()
            old = _install(tmp, dest, replace=replace)
        except TextMEError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BundleWriteError(f"could not save the head to {dest}: {exc.strerror or exc}; "
                                   "free disk space or choose a writable folder and save again"
                                   ) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _unlock(lock)
        if old is not None:
            try:
                _remove(old, dest)
            except OSError as exc:  # the save itself succeeded; the next one cleans up
                logger.warning("could not remove the previous head's folder %s: %s", old, exc)
        return dest

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "ClassifierHead":
        """Load a head saved by :meth:`save_pretrained` (or a bundle's ``heads/NAME``).

        Strict: the config is validated, the weights' sha256 checked, their shape read from the
        header before loading; nothing is unpickled.

        Raises:
            MissingFileError: not a head folder.
            BundleFormatError, BundleIntegrityError, NonFiniteWeightsError: a damaged head.
        """
        return load_head(directory)


def _check_head_target(dest: Path) -> bool:
    """Whether ``dest`` holds a head to replace; refuse anything else that is there."""
    if not os.path.lexists(dest):
        return False
    if not dest.is_dir():
        raise OutputExistsError(f"{dest} exists and is not a folder; save the head elsewhere")
    if not os.listdir(dest):
        return False
    try:
        cfg = json.loads((dest / HEAD_CONFIG).read_text(encoding="utf-8"))
        if isinstance(cfg, dict) and cfg.get("kind") == HEAD_KIND \
                and set(os.listdir(dest)) <= set(HEAD_FILES):
            return True
    except (OSError, ValueError):
        pass
    raise OutputExistsError(f"{dest} exists and does not hold a classifier head; nothing was "
                            "changed: save the head to a new or empty folder")


def load_head(directory: str | os.PathLike) -> ClassifierHead:
    """Load a saved head strictly (see :meth:`ClassifierHead.from_pretrained`)."""
    from .bundle import _FLOAT_DTYPES, _check_weights_file, _header, _load, _read_json

    root = Path(directory)
    path = root / HEAD_CONFIG
    if not os.path.lexists(path):
        raise MissingFileError(f"{path} does not exist: {root} is not a classifier head (fit one "
                               "with fit_head / textme fewshot)")
    cfg = _read_json(root, HEAD_CONFIG)

    def bad(key: str, want: str) -> BundleFormatError:
        value = cfg.get(key) if isinstance(cfg, dict) else cfg
        return BundleFormatError(f"{path}: {key} must be {want}, got {str(value)[:60]}; refit or "
                                 "re-save the head")

    if not isinstance(cfg, dict) or cfg.get("kind") != HEAD_KIND:
        raise bad("kind", f"{HEAD_KIND!r}")
    version = cfg.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad("format_version", "a positive integer")
    if version > HEAD_FORMAT_VERSION:
        raise BundleFormatError(f"{path} has head format {version}, newer than this textme-sdk "
                                f"reads ({HEAD_FORMAT_VERSION}); upgrade: pip install -U textme-sdk")
    classes = cfg.get("classes")
    if not isinstance(classes, list) or not classes or len(classes) > MAX_CLASSES \
            or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise bad("classes", "a non-empty list of distinct strings")
    dim = cfg.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= (1 << 20):
        raise bad("dim", "a positive integer")
    if cfg.get("space") not in SPACES:
        raise bad("space", "'anchor' or 'encoder'")
    if cfg["space"] == "encoder" and not isinstance(cfg.get("modality"), str):
        raise bad("modality", "a modality name (encoder-space head)")
    scales = cfg.get("scales")
    if not isinstance(scales, dict) or not scales or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scales.values()):
        raise bad("scales", "an object of positive numbers")
    for key in ("bundle", "info"):
        if not isinstance(cfg.get(key, {}), dict):
            raise bad(key, "an object")
    if not isinstance(cfg.get("use_offsets", True), bool):
        raise bad("use_offsets", "true or false")
    sha = cfg.get("sha256")
    if not isinstance(sha, dict) or not isinstance(sha.get(HEAD_WEIGHTS), str):
        raise bad("sha256", f"an object with the SHA-256 of {HEAD_WEIGHTS}")
    wpath = _check_weights_file(root, HEAD_WEIGHTS, sha[HEAD_WEIGHTS])
    header = _header(wpath)
    want = {"weight": (len(classes), dim)}
    got = {k: s for k, (_, s) in header.items()}
    if got != want or header["weight"][0] not in _FLOAT_DTYPES:
        raise BundleFormatError(f"{wpath} holds {got}, but its config describes {want} (float); "
                                "refit or re-save the head")
    weight = _load(wpath)["weight"].float()
    if not torch.isfinite(weight).all():
        raise NonFiniteWeightsError(f"{wpath} holds NaN/inf weights; refit the head")
    return ClassifierHead(weight, classes, cfg["space"], scales, cfg.get("modality"),
                          cfg.get("use_offsets", True), cfg.get("bundle", {}), cfg.get("info", {}))


# ------------------------------------------------------------------------ bundle fingerprints
def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(p.detach().cpu().float().contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def bundle_record(model: Any, modalities: Sequence[str] | None = None) -> dict[str, Any]:
    """Fingerprints of ``model``'s anchor and of its modalities (encoder, projector, offsets).

    A head records them when fitted; :meth:`ClassifierHead.check_model` compares them.
    """
    anchor = model.anchor
    out: dict[str, Any] = {
        "anchor": _digest(anchor.name, anchor.config(), anchor.embedding_dim),
        "anchor_name": anchor.name,
        "modalities": {},
    }
    for m in (model.modalities if modalities is None else modalities):
        e = model.entry(m)
        sd = e.projector.state_dict()
        out["modalities"][m] = _digest(e.encoder.name, e.encoder.config(),
                                       *[sd[k] for k in sorted(sd)], e.offsets.mu_text,
                                       e.offsets.mu_modal)
    source = getattr(model, "source", None)
    if source is not None:
        out["source"] = str(source)
    return out


# -------------------------------------------------------------------------------- embeddings
def _embed_space(model: Any, items: list[Any], modality: str, space: str, owner: str | None,
                 use_offsets: bool, batch_size: int = 32) -> torch.Tensor:
    """Modal ``items`` of ``modality`` in a head's space, ``[N, d]``."""
    if space == "anchor":
        return torch.as_tensor(model.embed(items, modality, batch_size, convert_to_tensor=True))
    return _encoder_space(model, items, owner or modality, "modal", use_offsets, batch_size)


def _encoder_space(model: Any, items: list[Any], owner: str, branch: str, use_offsets: bool,
                   batch_size: int = 32) -> torch.Tensor:
    entry = model.entry(owner)
    if branch == "text":
        raw = entry.encoder.encode_text(items, batch_size)
        return entry.offsets.centre_text(raw) if use_offsets else raw
    raw = entry.encoder.encode_modal(items, batch_size)
    return entry.offsets.centre_modal(raw) if use_offsets else raw


# ----------------------------------------------------------------------------------- fitting
def _class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class-balanced CE weights: each present class weighs the same in total."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    w = torch.zeros(num_classes)
    present = counts > 0
    w[present] = 1.0 / counts[present]
    return w


def uml_loss(
    weight: torch.Tensor,
    modal: Sequence[tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor | None]],
    text: tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor | None] | None,
    text_weight: float,
) -> torch.Tensor:
    """``sum_m CE_m + text_weight * CE_text`` for a head ``weight [C, d]``.

    Each source is ``(scale, normalised embeddings [n, d], labels [n], class weights [C] or
    None)``; its logits are ``scale * x @ weight.T``. With class weights ``1 / count(c)`` (what
    the fit uses) a term is the mean over classes of each class's mean loss: class balanced.
    """
    loss = torch.zeros(())
    for scale, x, y, w in modal:
        if len(y):
            loss = loss + F.cross_entropy(scale * x @ weight.T, y, weight=w)
    if text is not None and text_weight > 0:
        scale, x, y, w = text
        loss = loss + text_weight * F.cross_entropy(scale * x @ weight.T, y, weight=w)
    return loss


def _split_val(labels: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Boolean mask of the validation shots: ``fraction`` of each class with >= 2 shots."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    if fraction <= 0:
        return mask
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        mask[idx[torch.randperm(len(idx), generator=gen)[:k]]] = True
    return mask


def _lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over ``warmup * total`` steps, then cosine decay to 0."""
    w = int(round(warmup * total))
    if step < w:
        return (step + 1) / w
    progress = (step - w) / max(1, total - w)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _as_matrix(x: Any, what: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(x, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(f"{what} must be a numeric array, got {type(x).__name__}") from None
    if t.ndim != 2:
        raise DimensionMismatchError(f"{what} must be [N, d], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InvalidEmbeddingError(f"NaN/inf in {what}; drop or recompute those rows")
    return t


def fit_head_on_embeddings(
    shots: Mapping[str, tuple[Any, Sequence[int]]],
    text: tuple[Any, Sequence[int]] | None,
    classes: Sequence[str],
    text_weight: float = 1.0,
    config: HeadConfig | None = None,
    space: str = "anchor",
    modality: str | None = None,
    init_text: tuple[Any, Sequence[int]] | None = None,
) -> ClassifierHead:
    """Fit a head on precomputed embeddings (what :func:`fit_head` runs after embedding).

    Args:
        shots: ``{modality: (embeddings [N, d], class indices [N])}``; one or more modalities.
        text: ``(embeddings [T, d], class indices [T])`` of the class-labelled texts, or
            ``None`` (a modal-only probe).
        classes: the class names; indices point into it.
        text_weight: ``alpha`` of ``CE(modal) + alpha * CE(text)`` (UML sweeps 0.2-1.5; 0 =
            modal only).
        config: a :class:`HeadConfig`.
        space: recorded on the head (``"anchor"`` or ``"encoder"``).
        modality: recorded on the head (the encoder-space head's modality).
        init_text: the texts whose class means initialise the head (default: ``text``);
            needed when ``config.init == "text"``.

    Returns:
        The fitted :class:`ClassifierHead`; ``head.info`` holds the training summary.

    Raises:
        EmptyInputError: no shots.
        InvalidInputError: a class index out of range, or a negative ``text_weight``.
        DimensionMismatchError: embeddings of different widths.
        TrainingDivergedError: the loss became NaN/inf.
    """
    from .errors import TrainingDivergedError

    cfg = config or HeadConfig()
    if not isinstance(text_weight, (int, float)) or not math.isfinite(text_weight) or text_weight < 0:
        raise InvalidInputError(f"text_weight must be a number >= 0, got {text_weight!r}")
    if not shots:
        raise EmptyInputError("no shots to fit a head on; pass at least one labelled sample")
    C = len(classes)
    sources: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for m, (emb, lab) in shots.items():
        x = _as_matrix(emb, f"the {m!r} shot embeddings")
        y = torch.as_tensor(list(lab), dtype=torch.long)
        if len(y) != len(x):
            raise InvalidInputError(f"{len(x)} {m!r} shot embeddings but {len(y)} labels")
        if len(y) == 0:
            continue
        sources[m] = (F.normalize(x, dim=-1), y)
    if not sources:
        raise EmptyInputError("no shots to fit a head on; pass at least one labelled sample")
    dims = {x.shape[1] for x, _ in sources.values()}
    t_x = t_y = None
    if text is not None and len(text[1]):
        t_x = F.normalize(_as_matrix(text[0], "the text embeddings"), dim=-1)
        t_y = torch.as_tensor(list(text[1]), dtype=torch.long)
        dims.add(t_x.shape[1])
    if len(dims) != 1:
        raise DimensionMismatchError(f"shot and text embeddings have different widths {sorted(dims)}; "
                                     "embed them all in the same space")
    d = dims.pop()
    for what, y in [*((f"{m!r} shots", y) for m, (_, y) in sources.items()),
                    *([("texts", t_y)] if t_y is not None else [])]:
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= C):
            raise InvalidInputError(f"class indices of the {what} must lie in [0, {C})")

    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.init == "text":
        ix, iy = (init_text if init_text is not None else (t_x, t_y))
        if ix is None:
            raise InvalidInputError("init='text' needs class texts; pass them or use "
                                    "HeadConfig(init='random')")
        ix = F.normalize(_as_matrix(ix, "the initial text embeddings"), dim=-1)
        iy = torch.as_tensor(list(iy), dtype=torch.long)
        missing = sorted(set(range(C)) - set(iy.tolist()))
        if missing:
            raise InvalidInputError(f"classes {[classes[i] for i in missing[:3]]} have no text to "
                                    "start from; give every class a description")
        w0 = torch.zeros(C, d).index_add_(0, iy, ix)
        w0 = F.normalize(w0, dim=-1)
    else:
        w0 = F.normalize(torch.randn(C, d, generator=gen), dim=-1) * 0.01

    val_mask = {m: _split_val(y, cfg.val_fraction, gen) for m, (_, y) in sources.items()}
    train = {m: (x[~val_mask[m]], y[~val_mask[m]]) for m, (x, y) in sources.items()}
    val = {m: (x[val_mask[m]], y[val_mask[m]]) for m, (x, y) in sources.items() if val_mask[m].any()}

    weight = torch.nn.Parameter(w0.clone())
    names = [*train, *([TEXT] if t_x is not None and text_weight > 0 else [])]
    log_scales = torch.nn.Parameter(torch.full((len(names),), math.log(cfg.init_scale)))
    params = [weight] + ([log_scales] if cfg.logit_scale is None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    cw = {m: _class_weights(y, C) for m, (_, y) in train.items()}
    t_cw = _class_weights(t_y, C) if t_y is not None else None

    def scale(i: int) -> torch.Tensor:
        if cfg.logit_scale is not None:
            return torch.tensor(float(cfg.logit_scale))
        return log_scales[i].clamp(max=math.log(1000.0)).exp()

    def val_accuracy() -> float:
        with torch.no_grad():
            hits = total = 0
            for m, (x, y) in val.items():
                hits += int(((x @ weight.T).argmax(-1) == y).sum())
                total += len(y)
            return hits / max(1, total)

    start = time.perf_counter()
    best = (-1.0, 0, weight.detach().clone(), log_scales.detach().clone())
    history: list[float] = []
    steps_run = 0
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        loss = uml_loss(weight, [(scale(i), *train[m], cw[m]) for i, m in enumerate(train)],
                        (scale(names.index(TEXT)), t_x, t_y, t_cw) if TEXT in names else None,
                        text_weight)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"the head's loss became {float(loss)} at step {step}; "
                                        "lower HeadConfig.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps_run = step + 1
        history.append(float(loss.detach()))
        if val and (steps_run % cfg.eval_every == 0 or steps_run == cfg.steps):
            acc = val_accuracy()
            if acc > best[0]:
                best = (acc, steps_run, weight.detach().clone(), log_scales.detach().clone())
    final_w, final_s, best_step = weight.detach(), log_scales.detach(), steps_run
    if val:
        _, best_step, final_w, final_s = best
    if cfg.logit_scale is not None:
        scales = {"default": float(cfg.logit_scale)}
    else:
        scales = {n: float(final_s[i].clamp(max=math.log(1000.0)).exp()) for i, n in enumerate(names)}
        scales["default"] = scales[next(iter(train))]
    info = {"config": cfg.to_dict(), "text_weight": float(text_weight),
            "shots": {m: int(len(y)) for m, (_, y) in sources.items()},
            "validation_shots": {m: int(v.sum()) for m, v in val_mask.items()},
            "texts": int(len(t_y)) if t_y is not None else 0, "best_step": int(best_step),
            "steps": int(steps_run), "final_loss": history[-1] if history else None,
            "seconds": round(time.perf_counter() - start, 4),
            "balance": "class-balanced cross-entropy (each class weighs the same per source)"}
    if val:
        info["best_val_accuracy"] = float(best[0])
    return ClassifierHead(final_w, classes, space, scales, modality,
                          cfg.use_offsets if space == "encoder" else True, None, info)


# --------------------------------------------------------------------------------- fit_head
def _shot_groups(inputs: Any, labels: Any, modality: Any) -> dict[str, tuple[list[Any], list[Any]]]:
    """Normalise the three accepted shapes of shots into ``{modality: (inputs, labels)}``."""
    if isinstance(inputs, Mapping):
        if not isinstance(labels, Mapping) or set(labels) != set(inputs):
            raise InvalidInputError("with inputs as a dict {modality: items}, labels must be a dict "
                                    "with the same modalities")
        groups = {str(m): (list(inputs[m]), list(labels[m])) for m in inputs}
    elif labels is None and modality is None:  # a list of (input, label, modality) triples
        groups = {}
        for i, triple in enumerate(inputs):
            if not isinstance(triple, (tuple, list)) or len(triple) != 3:
                raise InvalidInputError(f"shot {i} is not an (input, label, modality) triple; pass "
                                        "inputs, labels and modality separately or as triples")
            x, y, m = triple
            g = groups.setdefault(str(m), ([], []))
            g[0].append(x)
            g[1].append(y)
    else:
        if not isinstance(modality, str):
            raise InvalidInputError("modality must name one modality of the bundle (e.g. 'image') "
                                    "when inputs is a list")
        groups = {modality: (list(inputs), list(labels if labels is not None else []))}
    for m, (xs, ys) in groups.items():
        if len(xs) != len(ys):
            raise InvalidInputError(f"{len(xs)} {m!r} inputs but {len(ys)} labels; give one label "
                                    "per input")
    if not any(xs for xs, _ in groups.values()):
        raise EmptyInputError("no shots to fit a head on; pass at least one labelled sample")
    return groups


def fit_head(
    model: Any,
    inputs: Any,
    labels: Any = None,
    modality: Any = None,
    class_texts: Mapping[str, Sequence[str]] | None = None,
    texts: Sequence[tuple[str, str]] | None = None,
    text_weight: float = 1.0,
    space: str = "anchor",
    config: HeadConfig | None = None,
    batch_size: int = 32,
) -> ClassifierHead:
    """Fit a few-shot classifier head on labelled samples and class-labelled text (UML).

    Args:
        model: a :class:`~textme_sdk.TextME` bundle.
        inputs: the shots: a list of inputs of ``modality``; or ``{modality: [inputs]}`` (then
            ``labels`` is ``{modality: [labels]}``); or a list of ``(input, label, modality)``
            triples (then leave ``labels`` and ``modality`` out).
        labels: the class name of each input (any hashable; stored as strings).
        modality: the bundle modality of ``inputs`` (a list).
        class_texts: ``{label: [descriptions]}``; default: the domain templates of
            :func:`~textme_sdk.evaluation.get_templates` (by each shot modality's encoder
            modality) filled with the label names. Every class needs at least one text.
        texts: extra unpaired ``(text, label)`` pairs (captions, descriptions).
        text_weight: ``alpha`` in ``CE(modal) + alpha * CE(text)``; 0 = modal only.
        space: ``"anchor"`` (TextME's space; classifies every modality) or ``"encoder"`` (the
            encoder's own space centred with the offsets; one modality only).
        config: a :class:`HeadConfig` (steps, lr, logit scale, validation split, seed).
        batch_size: inputs per encoder call while embedding.

    Returns:
        A :class:`ClassifierHead` whose classes are the labels in sorted order, recording the
        bundle it was fitted on.

    Raises:
        EmptyInputError: no shots.
        InvalidInputError: a label of ``texts`` or ``class_texts`` that no shot has, a class with
            shots but no text, an unknown ``space``, or an encoder-space head over several
            modalities.
        UnknownModalityError: a modality the bundle does not have.
    """
    from .evaluation.templates import get_templates

    cfg = config or HeadConfig()
    if space not in SPACES:
        raise InvalidInputError(f"space must be 'anchor' or 'encoder', got {space!r}")
    groups = _shot_groups(inputs, labels, modality)
    for m in groups:
        model.entry(m)  # typed error before any work
    if space == "encoder" and len(groups) != 1:
        raise InvalidInputError(f"an encoder-space head uses one encoder, got shots of {sorted(groups)}; "
                                "use space='anchor' for shots of several modalities")
    blank = [y for _, ys in groups.values() for y in ys if not str(y).strip()]
    if blank:
        raise InvalidInputError(f"{len(blank)} shots have an empty label; give every shot a class "
                                "name")
    classes = sorted({str(y) for _, ys in groups.values() for y in ys})
    index = {c: i for i, c in enumerate(classes)}
    if class_texts is None:
        templates: list[str] = []
        for m in groups:
            domain = model.entry(m).encoder.modality
            try:
                templates += [t for t in get_templates(domain) if t not in templates]
            except InvalidInputError:
                templates += [t for t in ("a {}.", "{}") if t not in templates]
        class_texts = {c: [t.format(c) for t in templates] for c in classes}
    class_texts = {str(k): list(v) for k, v in class_texts.items()}
    unknown = sorted(set(class_texts) - set(index))
    if unknown:
        raise InvalidInputError(f"class_texts names classes without shots: {unknown[:3]}; add shots "
                                "for them or remove their texts")
    empty = [c for c in classes if not class_texts.get(c)]
    if empty:
        raise InvalidInputError(f"classes {empty[:3]} have shots but no text; give each class at "
                                "least one description in class_texts (or leave class_texts out "
                                "for the default prompts)")
    pairs = [(t, c) for c in classes for t in class_texts[c]]
    extra = []
    for i, pair in enumerate(texts or []):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str):
            raise InvalidInputError(f"texts[{i}] is not a (text, label) pair")
        if str(pair[1]) not in index:
            raise InvalidInputError(f"texts[{i}] has label {pair[1]!r}, which no shot has; known "
                                    f"labels: {classes[:5]}{'...' if len(classes) > 5 else ''}")
        extra.append((pair[0], str(pair[1])))
    all_pairs = pairs + extra
    owner = next(iter(groups))
    if space == "anchor":
        t_emb = torch.as_tensor(model.embed([t for t, _ in all_pairs], "text", batch_size,
                                            convert_to_tensor=True))
        shots = {m: (torch.as_tensor(model.embed(xs, m, batch_size, convert_to_tensor=True)),
                     [index[str(y)] for y in ys]) for m, (xs, ys) in groups.items() if xs}
    else:
        t_emb = _encoder_space(model, [t for t, _ in all_pairs], owner, "text", cfg.use_offsets,
                               batch_size)
        xs, ys = groups[owner]
        shots = {owner: (_encoder_space(model, xs, owner, "modal", cfg.use_offsets, batch_size),
                         [index[str(y)] for y in ys])}
    t_lab = [index[c] for _, c in all_pairs]
    n_prompts = len(pairs)
    head = fit_head_on_embeddings(
        shots, (t_emb, t_lab), classes, text_weight, cfg, space,
        owner if space == "encoder" else None,
        init_text=(t_emb[:n_prompts], t_lab[:n_prompts]))
    head.bundle = bundle_record(model, list(groups) if space == "anchor" else [owner])
    head.info["class_texts"] = n_prompts
    head.info["extra_texts"] = len(extra)
    return head


def load_bundle_heads(folder: Path, heads_cfg: Mapping[str, Any]) -> dict[str, ClassifierHead]:
    """The heads a bundle's ``config.json`` lists under ``heads`` (``{name: {"path": ...}}``)."""
    from .bundle import _safe_relpath

    out = {}
    for name, h in heads_cfg.items():
        rel = h.get("path") if isinstance(h, dict) else None
        if not isinstance(rel, str) or not _safe_relpath(rel):
            raise BundleFormatError(f"{folder / 'config.json'}: head {name!r} has an unsafe or "
                                    "missing path; it must stay inside the bundle (heads/NAME)")
        out[name] = load_head(folder / rel)
    return out

