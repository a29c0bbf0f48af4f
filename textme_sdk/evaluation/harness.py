"""Evaluate a bundle the way the paper does: every system side by side on the same data.

For one modality of a :class:`~textme_sdk.TextME` bundle and one dataset
(:class:`~textme_sdk.evaluation.RetrievalSet` or :class:`~textme_sdk.evaluation.ClassificationSet`):

* **pretrained** - the encoder alone: its text branch against its modal branch, no projector;
* **textme** - the bundle: ``P(E(x) - mu_modal)`` against anchor embeddings of the texts;
* **textme (text via encoder)** - the same items, but texts embedded through the modality's own
  text encoder + projector (the paper's LanguageBind-style text path), when asked for;
* **no_offsets** - a bundle trained without offsets (``textme train --no-offsets``), when given;
* **naive** - the bundle's projector on modal embeddings that are not centred.

PPR = textme / pretrained x 100 per metric. The raw encoder embeddings of the items are computed
once per dataset (and cached on disk), then reused by every system.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..encoders import ModalityEncoder
from ..engine.cache import EmbeddingCache
from ..errors import InvalidInputError, UnknownModalityError
from .metrics import (
    auroc,
    average_precision,
    caption_retrieval,
    f1_binary,
    ppr,
    relevance_retrieval,
    topk_accuracy,
)
from .zeroshot import prompt_prototypes, zero_shot_predict

__all__ = ["EvalReport", "evaluate", "item_embeddings", "SYSTEM_LABELS"]

SYSTEM_LABELS = {
    "pretrained": "pretrained encoder",
    "textme": "TextME",
    "textme_via_encoder": "TextME (text via encoder)",
    "no_offsets": "TextME w/o offsets",
    "naive": "naive (no centring)",
}


@dataclass
class EvalReport:
    """Metrics of every system on one dataset, with PPR.

    Attributes:
        task: dataset name.
        kind: ``"retrieval"`` or ``"classification"``.
        modality: the bundle modality evaluated.
        n_items: items evaluated.
        n_texts: captions (retrieval) or classes (classification).
        metrics: ``{system: {metric: value}}`` (percent).
        ppr: ``{metric: textme / pretrained x 100}``.
        notes: how the numbers were obtained (templates, text path, skipped systems).
        seconds: wall time.
        fewshot: ``{K: {method: {"mean", "std", "runs"}}}`` of ``textme eval --shots``
            (:mod:`textme_sdk.evaluation.fewshot`); empty otherwise.
    """

    task: str
    kind: str
    modality: str
    n_items: int
    n_texts: int
    metrics: dict[str, dict[str, float]]
    ppr: dict[str, float]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    fewshot: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON (also written to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def metric_names(self) -> list[str]:
        return list(next(iter(self.metrics.values())).keys()) if self.metrics else []

    def to_markdown(self) -> str:
        """A markdown block (table + notes) for a model card or a report."""
        names = self.metric_names()
        lines = [f"**{self.task}** ({self.kind}, {self.modality}: {self.n_items} items, "
                 f"{self.n_texts} {'captions' if self.kind == 'retrieval' else 'classes'})", "",
                 "| system | " + " | ".join(names) + " |",
                 "|---|" + "---:|" * len(names)]
        for system, values in self.metrics.items():
            lines.append(f"| {SYSTEM_LABELS.get(system, system)} | "
                         + " | ".join(f"{values[n]:.1f}" for n in names) + " |")
        lines.append("| **PPR (%)** | " + " | ".join(f"{self.ppr[n]:.1f}" for n in names) + " |")
        if self.fewshot:
            from .fewshot import format_fewshot_markdown

            lines += ["", format_fewshot_markdown(self.fewshot).rstrip("\n")]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_rich_table(self) -> Any:
        """A ``rich.table.Table`` of the same numbers."""
        from rich.table import Table

        names = self.metric_names()
        table = Table(title=f"{self.task} ({self.modality}, {self.n_items} items)")
        table.add_column("system")
        for n in names:
            table.add_column(n, justify="right")
        for system, values in self.metrics.items():
            table.add_row(SYSTEM_LABELS.get(system, system), *[f"{values[n]:.1f}" for n in names])
        table.add_row("[bold]PPR (%)[/bold]", *[f"{self.ppr[n]:.1f}" for n in names])
        return table


# ------------------------------------------------------------------------- item embeddings
def _identity(item: Any) -> str | None:
    """A cache identity for an item: file path + size + mtime, string, or array content hash."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        try:
            st = path.stat()
        except (OSError, ValueError):
            return "str:" + str(item)
        if path.is_file():
            return f"file:{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        return "str:" + str(item)
    if isinstance(item, (np.ndarray, torch.Tensor)):
        arr = np.ascontiguousarray(item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item)
        return f"array:{arr.dtype}:{arr.shape}:{hashlib.sha256(arr.tobytes()).hexdigest()}"
    return None


def item_embeddings(
    encoder: ModalityEncoder, items: Sequence[Any], cache: EmbeddingCache | str | os.PathLike | bool | None = None,
    batch_size: int = 32, show_progress_bar: bool | None = None,
) -> torch.Tensor:
    """Normalised modal-branch embeddings of ``items``, cached on disk.

    Items are identified by file path, size and modification time (files), by value (strings
    such as SMILES) or by content hash (arrays); anything else is embedded without caching.
    ``cache=False`` disables the cache.
    """
    items = list(items)
    if cache is False:
        return encoder.encode_modal(items, batch_size, show_progress_bar)
    ids = [_identity(it) for it in items]
    if any(i is None for i in ids):
        return encoder.encode_modal(items, batch_size, show_progress_bar)
    store = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(None if cache is True else cache)
    lookup = dict(zip(ids, items))
    key = {"kind": "encoder-modal", "plugin": encoder.name, "config": encoder.config()}
    return store.get_or_compute(
        key, ids, lambda chunk: encoder.encode_modal([lookup[i] for i in chunk], batch_size, False),
        chunk_size=2048, show_progress_bar=show_progress_bar,
        description=f"{encoder.name} item embeddings").float()


# ------------------------------------------------------------------------------- evaluate
def _resolve_modality(model: Any, data: Any, modality: str | None) -> str:
    if modality is not None:
        if modality not in model.modalities:
            raise UnknownModalityError(f"modality {modality!r} is not in the bundle; it has "
                                       f"{model.modalities}")
        return modality
    if data.modality in model.modalities:
        return data.modality
    if len(model.modalities) == 1:
        return model.modalities[0]
    raise InvalidInputError(
        f"the dataset holds {data.modality!r} items and the bundle has {model.modalities}; "
        "pass modality=... (--modality) to say which one to evaluate")


def evaluate(
    model: Any,
    data: Any,
    modality: str | None = None,
    text_via: str = "anchor",
    ablation: Any = None,
    templates: Sequence[str] | None = None,
    batch_size: int = 32,
    cache: EmbeddingCache | str | os.PathLike | bool | None = None,
    show_progress_bar: bool | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> EvalReport:
    """Evaluate one bundle modality on a dataset against the pretrained encoder and ablations.

    Args:
        model: a :class:`~textme_sdk.TextME` bundle.
        data: a :class:`RetrievalSet` or :class:`ClassificationSet` (see
            :func:`~textme_sdk.evaluation.load_task`).
        modality: the bundle modality (default: the dataset's, or the bundle's only one).
        text_via: ``"anchor"`` (texts through the anchor), ``"encoder"`` (through the encoder's
            text branch + projector) or ``"both"`` (report both rows).
        ablation: a bundle with the same modality trained without offsets, for the
            ``no_offsets`` row (omitted when ``None``).
        templates: zero-shot prompt templates, each with one ``{}`` (default: the dataset's
            own ``prompts`` when it has them, else the dataset domain's templates,
            :func:`~textme_sdk.evaluation.get_templates`).
        batch_size: inputs per encoder call.
        cache: item-embedding cache (default ``$TEXTME_HOME/embeddings``; ``False`` disables).
        show_progress_bar: progress bars while embedding.
        ks: R@K values for retrieval.

    Retrieval uses each caption's own item (:func:`~textme_sdk.evaluation.caption_retrieval`),
    or the dataset's ``relevant`` matrix when it has one
    (:func:`~textme_sdk.evaluation.relevance_retrieval`); zero-shot classification builds class
    prototypes with :func:`~textme_sdk.evaluation.prompt_prototypes` from every system's text path.

    Returns:
        An :class:`EvalReport`.
    """
    if text_via not in ("anchor", "encoder", "both"):
        raise InvalidInputError(f"text_via must be 'anchor', 'encoder' or 'both', got {text_via!r}")
    if not data.items:
        raise InvalidInputError(f"dataset {data.name!r} has no items")
    start = time.perf_counter()
    m = _resolve_modality(model, data, modality)
    entry = model.entry(m)
    enc = entry.encoder
    notes = [f"texts through the anchor ({model.anchor.name}, document role)"
             if text_via != "encoder" else f"texts through the {enc.name} text encoder + projector"]
    raw = item_embeddings(enc, data.items, cache, batch_size, show_progress_bar)
    items = {"pretrained": raw, "textme": model.project(raw, m),
             "naive": model.project(raw, m, use_offsets=False)}
    if text_via == "both":
        items["textme_via_encoder"] = items["textme"]
    if ablation is not None:
        abl_m = m if m in ablation.modalities else _resolve_modality(ablation, data, None)
        same_encoder = ablation.entry(abl_m).encoder.config() == enc.config() and \
            ablation.entry(abl_m).encoder.name == enc.name
        abl_raw = raw if same_encoder else item_embeddings(ablation.entry(abl_m).encoder, data.items,
                                                           cache, batch_size, show_progress_bar)
        items["no_offsets"] = ablation.project(abl_raw, abl_m)
    else:
        notes.append("no_offsets not evaluated: pass a bundle trained with `textme train "
                     "--no-offsets` as ablation= (--ablation)")
    order = [s for s in SYSTEM_LABELS if s in items]

    main_path = "via" if text_via == "encoder" else "anchor"
    path_of = {"pretrained": "encoder", "textme": main_path, "naive": main_path,
               "textme_via_encoder": "via", "no_offsets": "ablation"}
    if ablation is not None and ablation.anchor.config() == model.anchor.config() \
            and ablation.anchor.name == model.anchor.name and main_path == "anchor":
        path_of["no_offsets"] = "anchor"  # same anchor, same text embeddings
    embedders = {
        "encoder": lambda t: enc.encode_text(t, batch_size, show_progress_bar),
        "anchor": lambda t: model.embed(t, "text", batch_size, show_progress_bar,
                                        convert_to_tensor=True),
        "via": lambda t: model.embed(t, "text", batch_size, show_progress_bar,
                                     convert_to_tensor=True, via=m),
        "ablation": lambda t: ablation.embed(t, "text", batch_size, show_progress_bar,
                                             convert_to_tensor=True),
    }
    text_cache: dict[str, torch.Tensor] = {}

    def texts_for(system: str, texts: list[str]) -> torch.Tensor:
        path = path_of[system]
        if path not in text_cache:  # systems on the same text path share one embedding pass
            text_cache[path] = F.normalize(torch.as_tensor(embedders[path](texts)).float(), dim=-1)
        return text_cache[path]

    metrics: dict[str, dict[str, float]] = {}
    if hasattr(data, "captions"):
        kind, n_texts = "retrieval", len(data.captions)
        relevant = getattr(data, "relevant", None)
        if relevant is not None:
            notes.append(f"relevance: the dataset's matrix ({int(relevant.sum())} relevant "
                         "caption-item pairs), in both directions")
        for s in order:
            q, x = texts_for(s, list(data.captions)), F.normalize(items[s], dim=-1)
            metrics[s] = (caption_retrieval(q, x, data.caption_item, ks) if relevant is None
                          else relevance_retrieval(q, x, relevant, ks))
    else:
        kind, n_texts = "classification", len(data.class_names)
        prompts = _class_prompts(data, templates)
        if templates is None and getattr(data, "prompts", None):
            counts = sorted({len(p) for p in prompts})
            notes.append(f"zero-shot prompts: the dataset's own, {'-'.join(map(str, counts))} per "
                         f"class x {n_texts} classes, embeddings averaged and re-normalised")
        else:
            notes.append(f"zero-shot prompts: {len(prompts[0])} templates x {n_texts} classes, "
                         "embeddings averaged and re-normalised")
        for s in order:
            protos = prompt_prototypes(lambda p, s=s: texts_for(s, p), prompts)
            metrics[s] = _classification_metrics(zero_shot_predict(items[s], protos), data)
    report = EvalReport(
        task=data.name, kind=kind, modality=m, n_items=len(data.items), n_texts=n_texts,
        metrics=metrics,
        ppr={k: ppr(metrics["textme"][k], metrics["pretrained"][k]) for k in metrics["textme"]},
        notes=notes, seconds=round(time.perf_counter() - start, 2))
    return report


def _class_prompts(data: Any, templates: Sequence[str] | None) -> list[list[str]]:
    """The zero-shot prompts per class: ``templates`` filled with each class name, else the
    dataset's own ``prompts``, else its domain's templates."""
    if templates is None and getattr(data, "prompts", None):
        return [list(p) for p in data.prompts]
    if templates is None:
        from .templates import get_templates

        templates = get_templates(data.domain)
    templates = list(templates)
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise InvalidInputError(f"templates need exactly one '{{}}' each; bad: {bad[:3]}")
    return [[t.format(c) for t in templates] for c in data.class_names]


def _classification_metrics(logits: torch.Tensor, data: Any) -> dict[str, float]:
    if data.multilabel:
        ap = average_precision(logits, data.labels)
        return {"mAP": float(torch.nanmean(ap) * 100)}
    labels = torch.as_tensor(data.labels, dtype=torch.long)
    if logits.shape[1] == 2:  # binary (e.g. RSNA pneumonia): class 1 is the positive one
        score = logits[:, 1] - logits[:, 0]
        out = topk_accuracy(logits, labels, (1,))
        if 0 < int(labels.sum()) < len(labels):
            out["AUROC"] = auroc(score, labels) * 100
        out["F1"] = f1_binary(score > 0, labels == 1)
        return out
    return topk_accuracy(logits, labels, (1, 5))
