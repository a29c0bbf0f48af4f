"""Finding, reading and strictly loading ViCLIP checkpoints.

Published files (``torch.save`` of a dict whose ``model`` entry is the state dict):

* ``ViClip-InternVid-10M-FLT.pth`` - ViCLIP-L/14 trained on InternVid-10M-FLT, in the gated Hub
  repo ``OpenGVLab/ViCLIP`` (accept the terms on the model page and log in once); the same
  file is mirrored in ``OpenGVLab/VBench_Used_Models``. The default.
* ``ViCLIP-L_InternVid-FLT-10M.pth`` (``OpenGVLab/ViCLIP``, ~4 GB, a training checkpoint with the
  same ``model`` entry), ``ViCLIP-B_InternVid-FLT-10M.pth`` and ``ViCLIP-B_InternVid-200M.pth``
  (ViCLIP-B/16, OneDrive links in the InternVid README) - pass them as local files or
  ``hf://org/repo/file`` names.

The training checkpoints also pickle their training config as an ``EasyDict``, which
``torch.load(weights_only=True)`` refuses. This module never unpickles arbitrary objects: it
reads with ``weights_only=True`` and maps only config-container classes (``EasyDict`` and the
like, found by :func:`torch.serialization.get_unsafe_globals_in_checkpoint`) to an inert
stand-in that yields a plain ``OrderedDict``. Everything else a checkpoint might pickle stays
refused. The extracted state dict is then converted once to safetensors under
``$TEXTME_HOME/viclip/`` and read from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from textme_sdk.checkpoints import load_strict
from textme_sdk.errors import EncoderLoadError

__all__ = [
    "DEFAULT_CHECKPOINTS",
    "HUB_SCHEME",
    "KNOWN_CHECKPOINTS",
    "ViCLIPLoadError",
    "checkpoint_cache_dir",
    "extract_state_dict",
    "load_state_dict",
    "read_checkpoint",
    "resolve_checkpoint",
]

logger = logging.getLogger(__name__)

HUB_SCHEME = "hf://"
#: Where each variant's default weights come from (``None``: no Hub copy with a verified
#: layout; pass a local file).
DEFAULT_CHECKPOINTS: dict[str, str | None] = {
    "ViCLIP-L-14": "hf://OpenGVLab/ViCLIP/ViClip-InternVid-10M-FLT.pth",
    "ViCLIP-B-16": None,
}
#: Published checkpoint files per variant (for messages and docs).
KNOWN_CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "ViCLIP-L-14": ("hf://OpenGVLab/ViCLIP/ViClip-InternVid-10M-FLT.pth",
                    "hf://OpenGVLab/VBench_Used_Models/ViClip-InternVid-10M-FLT.pth",
                    "hf://OpenGVLab/ViCLIP/ViCLIP-L_InternVid-FLT-10M.pth"),
    "ViCLIP-B-16": ("ViCLIP-B_InternVid-FLT-10M.pth (OneDrive link in the InternVid README)",
                    "ViCLIP-B_InternVid-200M.pth (OneDrive link in the InternVid README)"),
}
#: Classes that training scripts pickle as their config; read as plain dicts, never executed.
_CONFIG_CLASSES = frozenset({"EasyDict", "AttrDict", "ConfigDict", "Namespace"})
_STATE_KEYS = ("model", "state_dict", "module")
_PREFIXES = ("module.", "model.")


class ViCLIPLoadError(EncoderLoadError):
    """A ViCLIP checkpoint could not be found, read safely, or loaded strictly."""


# -- where the file is ---------------------------------------------------------------------
def parse_hub_name(spec: str) -> tuple[str, str]:
    """``"hf://org/repo/path/file.pth"`` -> ``("org/repo", "path/file.pth")``."""
    parts = spec[len(HUB_SCHEME):].strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise ViCLIPLoadError(
            f"{spec!r} is not a Hub file name; write hf://ORG/REPO/FILE, e.g. "
            f"{DEFAULT_CHECKPOINTS['ViCLIP-L-14']}"
        )
    return "/".join(parts[:2]), "/".join(parts[2:])


def resolve_checkpoint(spec: str, revision: str | None = None, cache_dir: str | None = None,
                       local_files_only: bool = False, token: str | bool | None = None) -> str:
    """A local path for ``spec``: a file as is, or an ``hf://`` file from the Hub cache.

    ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) never touches the network.

    Raises:
        ViCLIPLoadError: no such file, or the Hub file is unavailable (offline and not cached,
            gated without a token, wrong name).
    """
    if spec.startswith(HUB_SCHEME):
        repo_id, filename = parse_hub_name(spec)
        from huggingface_hub import constants, hf_hub_download

        offline = bool(local_files_only or constants.HF_HUB_OFFLINE)
        try:
            return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                   local_files_only=offline, token=token)
        except Exception as exc:  # offline, gated, missing file, network...
            how = ("it is not in the Hugging Face cache and downloads are off "
                   "(HF_HUB_OFFLINE / local_files_only)" if offline else
                   "the download failed")
            raise ViCLIPLoadError(
                f"could not get {filename!r} from the Hub repo {repo_id!r}: {how} "
                f"({type(exc).__name__}: {str(exc).strip()[:300]}). OpenGVLab/ViCLIP is gated: "
                "accept its terms on huggingface.co and run `hf auth login` once, download "
                "with network access, or pass checkpoint='/path/to/file.pth'"
            ) from exc
    path = os.path.expanduser(spec)
    if not os.path.isfile(path):
        raise ViCLIPLoadError(
            f"ViCLIP checkpoint file not found: {spec!r}; check the path, or use a Hub file "
            f"such as {DEFAULT_CHECKPOINTS['ViCLIP-L-14']}"
        )
    return path


# -- reading -------------------------------------------------------------------------------
class _InertConfig:
    """Stand-in for a pickled config class: unpickles to an empty ``OrderedDict`` that the
    weights-only unpickler then fills with plain data (items and attributes)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


def _numpy_safe_globals() -> list[Any]:
    """numpy scalar and dtype reconstructors (harmless; training configs often hold them)."""
    import numpy as np

    found: list[Any] = [np.dtype]
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            found.append(importlib.import_module(name).scalar)
        except (ImportError, AttributeError):
            continue
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return found


def _config_stand_ins(path: str) -> list[tuple[Any, str]]:
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (ValueError, RuntimeError, OSError):  # legacy (non-zip) or corrupt files: the
        return []  # weights-only loader below still guards (and reports) them
    return [(_InertConfig, name) for name in unsafe
            if name.rsplit(".", 1)[-1] in _CONFIG_CLASSES]


def read_checkpoint(path: str) -> Any:
    """Read a checkpoint file without executing pickled code (safetensors or weights-only).

    Raises:
        ViCLIPLoadError: the file is corrupt, or pickles something other than tensors,
            containers, numpy scalars and config dicts.
    """
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:
            raise ViCLIPLoadError(
                f"could not read safetensors file {path!r} ({type(exc).__name__}: {exc}); it is "
                "corrupt or truncated - download it again"
            ) from exc
    allowed = _numpy_safe_globals() + _config_stand_ins(path)
    try:
        with torch.serialization.safe_globals(allowed):
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):  # only legacy (non-zip) files cannot be mmapped
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ViCLIPLoadError(
            f"could not read checkpoint {path!r} safely ({type(exc).__name__}: "
            f"{str(exc).strip()[:500]}). It is corrupt, or it pickles objects other than "
            "tensors and plain containers. If you trust the file, convert it once yourself: "
            "sd = torch.load(path, weights_only=False)['model']; "
            "safetensors.torch.save_file(sd, 'viclip.safetensors')"
        ) from exc


def extract_state_dict(raw: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model's tensors from a loaded checkpoint: the ``model`` (or ``state_dict`` /
    ``module``) entry when present, with a ``module.`` / ``model.`` prefix shared by every
    key removed.

    Raises:
        ViCLIPLoadError: no state dict in it.
    """
    state = raw
    if isinstance(raw, Mapping):
        for key in _STATE_KEYS:
            inner = raw.get(key)
            if isinstance(inner, Mapping) and inner:
                state = inner
                break
    if not isinstance(state, Mapping) or not state:
        raise ViCLIPLoadError(f"{source} holds no state dict (expected {{'model': {{...}}}})")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ViCLIPLoadError(f"{source} holds no tensors under {list(state)[:5]}")
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
                changed = True
    return tensors


# -- the safetensors cache -----------------------------------------------------------------
def checkpoint_cache_dir() -> Path:
    """``$TEXTME_HOME/viclip`` (default ``~/.cache/textme/viclip``)."""
    root = os.environ.get("TEXTME_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "textme")
    return Path(root) / "viclip"


def _cache_path(path: str, cache_dir: Path) -> Path:
    real = os.path.realpath(path)
    st = os.stat(real)
    key = hashlib.sha256(f"{real}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return cache_dir / f"{Path(path).stem}-{key}.safetensors"


def load_state_dict_file(path: str, cache: bool = True,
                         cache_dir: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict in ``path``; a ``.pth`` is converted to safetensors once (``cache``) and
    read from the converted file afterwards (keyed by real path, size and mtime)."""
    if path.endswith(".safetensors") or not cache:
        return extract_state_dict(read_checkpoint(path), repr(path))
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    target = _cache_path(path, Path(cache_dir) if cache_dir else checkpoint_cache_dir())
    if target.is_file():
        try:
            return load_file(str(target))
        except (SafetensorError, OSError):  # a damaged cache entry: rebuild it below
            logger.warning("viclip: rebuilding damaged converted checkpoint %s", target)
    state = extract_state_dict(read_checkpoint(path), repr(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in state.items()}, tmp,
                      metadata={"source": os.path.realpath(path), "format": "viclip-state-dict"})
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        logger.info("viclip: converted %s to %s", path, target)
    except OSError as exc:  # a read-only cache must not stop loading
        logger.warning("viclip: could not cache %s as safetensors (%s)", path, exc)
    return state


# -- loading -------------------------------------------------------------------------------
def load_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                    variant_hint: str = "") -> None:
    """Copy ``state`` into ``model`` strictly (``assign=True``, so a meta-device model takes the
    tensors as they are).

    Raises:
        ViCLIPLoadError: missing, unexpected or differently shaped keys, listed by name.
    """
    proj = state.get("vision_encoder.proj")
    guess = ""
    if proj is not None and proj.ndim == 2:
        guess = (f"The checkpoint's vision_encoder.proj is {tuple(proj.shape)}: "
                 "(1024, 768) is ViCLIP-L-14, (768, 512) is ViCLIP-B-16. ")
    load_strict(model, state, f"{source} ({variant_hint or 'requested'} architecture)",
                hint=guess + "Choose the matching model=... (and arch=... for custom sizes).",
                error=ViCLIPLoadError, assign=True, examples=4)
