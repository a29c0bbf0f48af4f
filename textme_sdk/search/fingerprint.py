"""The fingerprint of a bundle: what an index records so that foreign queries are refused.

Two embeddings are comparable only when they come from the same anchor and, for a modality,
from the same projector and offsets. :func:`bundle_fingerprint` hashes exactly that: the
anchor's name, dimension and config, and every modality's projector and offset tensors.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from .errors import ForeignBundleError

__all__ = ["bundle_fingerprint", "check_compatible"]


def _tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def bundle_fingerprint(model: Any) -> dict[str, Any]:
    """A JSON-able fingerprint of a :class:`~textme_sdk.TextME` model.

    Returns ``{"id", "anchor": {"name", "embedding_dim", "config_sha256"}, "modalities":
    {name: {"encoder", "projector_sha256", "offsets_sha256"}}, "source"}``; ``id`` is a short
    hash of everything but ``source`` (the folder the bundle was loaded from, if any).
    Identical weights give identical fingerprints, wherever the bundle is stored.
    """
    anchor = model.anchor
    config = json.dumps(anchor.config(), sort_keys=True, default=str)
    fp: dict[str, Any] = {
        "anchor": {"name": anchor.name, "embedding_dim": int(anchor.embedding_dim or 0),
                   "config_sha256": hashlib.sha256(config.encode()).hexdigest()},
        "modalities": {},
    }
    for name in model.modalities:
        entry = model.entry(name)
        fp["modalities"][name] = {
            "encoder": entry.encoder.name,
            "projector_sha256": _tensors_sha256(entry.projector.state_dict()),
            "offsets_sha256": _tensors_sha256(
                {k: v for k, v in entry.offsets.state_dict().items() if v.is_floating_point()}),
        }
    fp["id"] = _fingerprint_id(fp)
    source = getattr(model, "source", None)
    fp["source"] = str(source) if source is not None else None
    return fp


def _fingerprint_id(fp: dict[str, Any]) -> str:
    body = json.dumps({"anchor": fp["anchor"], "modalities": fp["modalities"]}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _describe(fp: dict[str, Any]) -> str:
    where = f" from {fp['source']}" if fp.get("source") else ""
    mods = ", ".join(fp["modalities"]) or "text only"
    return (f"bundle {fp['id']}{where} (anchor {fp['anchor']['name']} "
            f"{fp['anchor']['embedding_dim']}-d; {mods})")


def check_compatible(index_fp: dict[str, Any], query_fp: dict[str, Any],
                     modalities: list[str] | None = None) -> None:
    """Refuse embeddings of ``query_fp``'s bundle in an index built by ``index_fp``'s.

    Compatible means: the same anchor (name, dimension, config) and, for every modality both
    record (or only those in ``modalities``), the same projector and offsets.

    Raises:
        ForeignBundleError: naming both bundles and what differs.
    """
    differs = []
    if index_fp["anchor"] != query_fp["anchor"]:
        differs.append("the anchor")
    shared = set(index_fp["modalities"]) & set(query_fp["modalities"])
    if modalities is not None:
        shared &= set(modalities)
    for m in sorted(shared):
        if index_fp["modalities"][m] != query_fp["modalities"][m]:
            differs.append(f"the {m!r} projector/offsets")
    if differs:
        raise ForeignBundleError(
            f"the index was built with {_describe(index_fp)} but the queries come from "
            f"{_describe(query_fp)}; {' and '.join(differs)} differ: search with the bundle that "
            "built the index, or rebuild the index with this one")


def merge(index_fp: dict[str, Any] | None, other: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of an index after adding items embedded by ``other`` (checked first)."""
    if index_fp is None:
        return json.loads(json.dumps(other))
    check_compatible(index_fp, other)
    out = json.loads(json.dumps(index_fp))
    for m, v in other["modalities"].items():
        out["modalities"].setdefault(m, v)
    out["id"] = _fingerprint_id(out)
    return out
