"""Published CXR-CLIP checkpoints: safe reading, one-time conversion to safetensors, caching.

The released files (``r50_m.tar`` ... ``swint_mcc.tar``) are ``torch.save`` dicts written by
kakaobrain/cxr-clip's trainer::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "config": cfg,
     "epoch": int, "train_loss": float}

``cfg`` is the Hydra config after ``convert_dictconfig_to_dict``, which turns ``DictConfig``
nodes into dicts but leaves ``ListConfig`` values (and, through their ``_parent`` links, the
whole original OmegaConf tree) in place. A plain ``torch.load(weights_only=True)`` therefore
refuses the file, and a plain unpickle would execute whatever the file names.

:func:`read_upstream_checkpoint` uses torch's restricted ``weights_only`` unpickler and admits
exactly the OmegaConf names such a config contains, mapped to inert stand-ins defined here
(they only store the state they are given; nothing from OmegaConf is imported or run). Every
other global - ``os.system``, ``builtins.eval``, any class - is refused. The stand-ins are
then turned into plain dicts and lists.

:func:`convert_checkpoint` keeps only the model weights and writes a ``.safetensors`` file
whose metadata carries the architecture and the upstream training config; everything later
loads from that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .architecture import Architecture, architecture_from_state
from .errors import ArchitectureError, CheckpointError, CheckpointMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "PUBLISHED",
    "CheckpointError",
    "PublishedCheckpoint",
    "cache_root",
    "convert_checkpoint",
    "load_converted",
    "read_converted_architecture",
    "read_upstream_checkpoint",
    "resolve_published",
    "save_converted",
]

#: Value of the ``format`` metadata entry of converted files.
FORMAT = "textme-cxr-clip"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One released checkpoint (kakaobrain/cxr-clip README, "Pre-trained model checkpoint").

    Attributes:
        name: the file stem, e.g. ``"swint_mcc"``.
        family: ``"r50"`` (ResNet-50) or ``"swint"`` (Swin-Tiny).
        data: the pre-training data: M = MIMIC-CXR, C = CheXpert, C14 = ChestX-ray14.
        url: where the README links it.
    """

    name: str
    family: str
    data: str
    url: str


_CDN = "https://twg.kakaocdn.net/brainrepo/models/cxr-clip"
_RELEASES = (  # name, family, data, CDN folder
    ("r50_m", "r50", "M", "f982386ef38aa3ecd6ce1f8f928e8aa8"),
    ("r50_mc", "r50", "M,C", "f7ebbe4ad815868905d0820dbbde3662"),
    ("r50_mcc", "r50", "M,C,C14", "de4b5e4ae2047c1fb7960ddcd8d861cb"),
    ("swint_m", "swint", "M", "a21ef120894e072ae77434daf6b98b72"),
    ("swint_mc", "swint", "M,C", "97cbbdfb347d22ea44e95a70c7b0520a"),
    ("swint_mcc", "swint", "M,C,C14", "a25ce760064591c899f67c97ed7790de"),
)
PUBLISHED: dict[str, PublishedCheckpoint] = {
    name: PublishedCheckpoint(name, family, data, f"{_CDN}/{folder}/{name}.tar")
    for name, family, data, folder in _RELEASES
}


# -- inert stand-ins for the OmegaConf objects inside ``config`` ------------------------------
class _Inert:
    """Base of the stand-ins: built with ``object.__new__`` and filled by ``__setstate__``."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def __reduce__(self) -> Any:  # never re-pickle a stand-in
        raise TypeError(f"{type(self).__name__} is a read-only stand-in")


class _DictConfig(_Inert):
    """Stands in for ``omegaconf.DictConfig``: its ``_content`` maps keys to nodes."""


class _ListConfig(_Inert):
    """Stands in for ``omegaconf.ListConfig``: its ``_content`` is a list of nodes."""


class _ValueNode(_Inert):
    """Stands in for the ``omegaconf.nodes.*Node`` leaves: the value is in ``_val``."""


class _Wrapper(_Inert):
    """Stands in for ``omegaconf.UnionNode``: ``_content`` is one node."""


class _Metadata(_Inert):
    """Stands in for ``omegaconf.base.(Container)Metadata``: dropped on conversion."""


class _TypeReference:
    """An inert token for a type a config names (``typing.Any``, ``builtins.dict`` ...).

    Instances are not callable, so a pickle cannot use them to construct anything.
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<type {self.name}>"


def _empty_dict(*_args: Any) -> dict:
    """Stands in for ``collections.defaultdict`` (OmegaConf's ``resolver_cache``): a plain dict."""
    return {}


_VALUE_NODES = ("AnyNode", "AnyValueNode", "StringNode", "IntegerNode", "FloatNode",
                "BooleanNode", "BytesNode", "PathNode", "EnumNode", "LiteralNode",
                "InterpolationResultNode", "NoneNode")
_TYPE_NAMES = ("typing.Any", "typing.Dict", "typing.List", "typing.Tuple", "typing.Optional",
               "typing.Union", "builtins.dict", "builtins.list", "builtins.tuple",
               "builtins.int", "builtins.float", "builtins.str", "builtins.bool",
               "builtins.bytes", "builtins.object", "pathlib.Path")


def _safe_globals(inert_names: Sequence[str] = ()) -> list[tuple[Any, str]]:
    """(stand-in, pickled name) pairs for ``torch.serialization.safe_globals``."""
    pairs: list[tuple[Any, str]] = [
        (_DictConfig, "omegaconf.dictconfig.DictConfig"),
        (_ListConfig, "omegaconf.listconfig.ListConfig"),
        (_Metadata, "omegaconf.base.Metadata"),
        (_Metadata, "omegaconf.base.ContainerMetadata"),
        (_Wrapper, "omegaconf.base.UnionNode"),
        (_empty_dict, "collections.defaultdict"),
    ]
    pairs += [(_ValueNode, f"omegaconf.nodes.{name}") for name in _VALUE_NODES]
    pairs += [(_TypeReference(name), name) for name in (*_TYPE_NAMES, *inert_names)]
    return pairs


def _plain(obj: Any) -> Any:
    """Replace the stand-ins by plain Python values (dict / list / scalars)."""
    if isinstance(obj, (_DictConfig, _ListConfig, _Wrapper)):
        return _plain(obj.state.get("_content"))
    if isinstance(obj, _ValueNode):
        return _plain(obj.state.get("_val"))
    if isinstance(obj, _Metadata):
        return None
    if isinstance(obj, _TypeReference):
        return obj.name
    if isinstance(obj, Mapping):
        return {k if isinstance(k, (str, int, float, bool)) else str(k): _plain(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def read_upstream_checkpoint(path: str | os.PathLike, inert_names: Sequence[str] = ()
                             ) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a cxr-clip ``.tar`` checkpoint **without executing pickled code**.

    Args:
        path: the ``torch.save`` file (``r50_mcc.tar`` ...).
        inert_names: further ``module.Name`` globals to admit as inert, non-callable tokens
            (e.g. a type a config refers to that this list does not know). They can never
            construct or call anything; a file that tries fails. Modules torch blocks (``os``,
            ``sys``, ``posix``, ``nt``) stay blocked.

    Returns:
        ``(state_dict, config)``: the model weights (``module.`` prefixes stripped) and the
        training config as plain dicts/lists (``{}`` when absent).

    Raises:
        CheckpointError: missing file, a global outside the allowlist (the message names it),
            or no model weights in the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path!r}")
    try:
        with torch.serialization.safe_globals(_safe_globals(inert_names)):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, TypeError, AttributeError, ValueError, KeyError,
            EOFError, RuntimeError, OSError) as exc:
        raise CheckpointError(
            f"refused to read {path!r}: {_refusal(exc)}. Only tensors, plain containers and "
            "the OmegaConf config objects of kakaobrain/cxr-clip checkpoints are allowed; the "
            "file is corrupt or references code that will not be run (a harmless type a config "
            "merely names can be admitted as an inert token: inert_names=['module.Name'])"
        ) from exc
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path!r} holds a {type(raw).__name__}, not a checkpoint dict")
    state = raw.get("model", raw.get("state_dict"))
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(
            f"{path!r} has no 'model' state dict (keys: {sorted(map(str, raw))[:8]}); is it a "
            "kakaobrain/cxr-clip checkpoint?"
        )
    tensors = {str(k): v for k, v in state.items()}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path!r}: model entry {bad[0]!r} is not a tensor")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    try:
        config = _plain(raw.get("config") or {})
    except RecursionError as exc:  # a self-referencing container: not a real config
        raise CheckpointError(f"{path!r}: the config refers to itself; refusing it") from exc
    return tensors, config if isinstance(config, dict) else {}


def _refusal(exc: BaseException) -> str:
    """The specific reason inside torch's long ``weights_only`` message (whose generic advice
    to retry with ``weights_only=False`` is exactly what must not be done here)."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it references {found.group(1)}, which is not on the allowlist"
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    generic = ("Weights only load failed", "weights_only", "Check the documentation")
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not any(g in ln for g in generic)]
    return f"{type(exc).__name__}: {lines[0] if lines else text.strip()[:200]}"


# -- converted files ---------------------------------------------------------------------------
def _config_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of the training config that describe the model (kept in the metadata)."""
    return {k: config[k] for k in ("model", "tokenizer", "base", "transform") if k in config}


def save_converted(state: Mapping[str, torch.Tensor], arch: Architecture,
                   dst: str | os.PathLike, upstream_config: Mapping[str, Any] | None = None,
                   source: str | None = None) -> Path:
    """Write weights + architecture as one ``.safetensors`` file, atomically.

    Args:
        state: the model state dict (upstream key names).
        arch: its architecture (stored as JSON metadata).
        dst: the output file.
        upstream_config: the checkpoint's training config (stored for reference).
        source: name of the original file (stored for reference).
    """
    from safetensors.torch import save_file

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(arch.to_dict()),
        "upstream_config": json.dumps(_config_summary(upstream_config or {}), default=str),
        "source": source or "",
    }
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None,
                       inert_names: Sequence[str] = (), **overrides: Any) -> Path:
    """Convert a cxr-clip ``.tar`` checkpoint into a self-describing ``.safetensors`` file.

    Reads ``src`` with :func:`read_upstream_checkpoint` (no code executed), reads the
    architecture off its tensors and config, checks that the weights load strictly into that
    architecture, and writes the weights only (no optimizer state).

    Args:
        src: the ``.tar`` file.
        dst: output path (default: ``src`` with the suffix ``.safetensors``).
        inert_names: see :func:`read_upstream_checkpoint`.
        **overrides: Architecture fields to set explicitly (rarely needed).

    Returns:
        The written path.

    Raises:
        CheckpointError: unreadable, refused, or not a CXR-CLIP checkpoint.
    """
    from .model import build_model, load_weights

    src = Path(src)
    dst = Path(dst) if dst is not None else src.with_suffix(".safetensors")
    state, config = read_upstream_checkpoint(src, inert_names)
    try:
        arch = architecture_from_state(state, config, **overrides)
        load_weights(build_model(arch, device="meta"), _on_meta(state))
    except (ArchitectureError, CheckpointMismatchError) as exc:
        raise CheckpointError(f"{src}: {exc}") from exc
    written = save_converted(state, arch, dst, config, source=src.name)
    logger.info("cxr_clip: converted %s -> %s (%s, %d tensors)", src, written,
                arch.image_encoder, len(state))
    return written


def _on_meta(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Shape-only copies, to check a state dict against a meta-device model for free."""
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state.items()}


def read_converted_architecture(path: str | os.PathLike) -> Architecture | None:
    """The architecture stored in a converted file's header (cheap; ``None`` if absent)."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"could not read the safetensors header of {path!r}: {exc}") from exc
    if meta.get("format") != FORMAT or "architecture" not in meta:
        return None
    try:
        return Architecture.from_dict(json.loads(meta["architecture"]))
    except (ValueError, ArchitectureError) as exc:
        raise CheckpointError(f"{path!r} has an invalid architecture entry: {exc}") from exc


def load_converted(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], Architecture]:
    """Weights and architecture of a ``.safetensors`` file.

    Files written by :func:`convert_checkpoint` describe themselves; for other safetensors
    files holding a CXR-CLIP state dict the architecture is read off the tensors.

    Raises:
        CheckpointError: unreadable file or not a CXR-CLIP state dict.
    """
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path!r}")
    arch = read_converted_architecture(path)
    try:
        state = load_file(path)
    except Exception as exc:
        raise CheckpointError(f"could not read {path!r} as safetensors: {exc}") from exc
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    if arch is None:
        try:
            arch = architecture_from_state(state)
        except ArchitectureError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
    return state, arch


# -- the cache ---------------------------------------------------------------------------------
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted checkpoints live: ``cache_dir``, else ``$TEXTME_HOME/cxr_clip``, else
    ``~/.cache/textme/cxr_clip``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    home = os.environ.get("TEXTME_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache", "textme")
    return Path(home) / "cxr_clip"


def converted_path_for(src: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache location of the conversion of a local ``.tar`` (keyed by path, size and mtime)."""
    src = Path(src).resolve()
    st = src.stat()
    key = hashlib.sha256(f"{src}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "converted" / f"{src.stem}-{key}.safetensors"


def ensure_converted(src: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A converted copy of a local ``.tar`` in the cache (converted on first use only)."""
    dst = converted_path_for(src, cache_dir)
    if not dst.is_file():
        logger.warning("cxr_clip: converting %s to safetensors once (cached at %s)", src, dst)
        convert_checkpoint(src, dst)
    return dst


def _offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TEXTME_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def resolve_published(name: str, cache_dir: str | os.PathLike | None = None,
                      download: bool = True) -> Path:
    """Path of the converted ``.safetensors`` of a published checkpoint, fetching it if needed.

    Order: ``<cache>/<name>.safetensors``; else ``<cache>/<name>.tar`` (converted, then kept);
    else download the ``.tar`` from the URL of the upstream README, convert it and delete the
    download. Nothing is downloaded when ``HF_HUB_OFFLINE`` or ``TEXTME_OFFLINE`` is set.

    Raises:
        CheckpointError: unknown name, offline without a cached copy, or a failed download.
    """
    if name not in PUBLISHED:
        raise CheckpointError(
            f"{name!r} is not a published CXR-CLIP checkpoint; choose one of {sorted(PUBLISHED)} "
            "or pass checkpoint='/path/to/file.tar'"
        )
    root = cache_root(cache_dir)
    converted, tar = root / f"{name}.safetensors", root / f"{name}.tar"
    if converted.is_file():
        return converted
    if tar.is_file():
        return convert_checkpoint(tar, converted)
    url = PUBLISHED[name].url
    if not download or _offline():
        raise CheckpointError(
            f"the CXR-CLIP checkpoint {name!r} is not in the cache ({root}) and downloads are "
            f"off (offline). Download {url} on a machine with network access and either put it "
            f"at {tar} or pass checkpoint='/path/to/{name}.tar'"
        )
    root.mkdir(parents=True, exist_ok=True)
    _download(url, tar)
    try:
        return convert_checkpoint(tar, converted)
    finally:
        if converted.is_file() and tar.is_file():
            tar.unlink()  # only our own download; the converted file has everything needed


def _download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` atomically (a ``.part`` file renamed when complete)."""
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    part = dst.with_suffix(dst.suffix + ".part")
    logger.warning("cxr_clip: downloading %s (CC BY-NC-SA 4.0 weights) to %s", url, dst)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dst.name, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, dst)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CheckpointError(
            f"could not download {url} ({exc}); download it yourself and pass "
            f"checkpoint='/path/to/{dst.name}'"
        ) from exc
    finally:
        if part.exists():
            part.unlink()
