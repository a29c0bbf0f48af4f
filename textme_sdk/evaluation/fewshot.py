"""The few-shot protocol of ``textme eval --shots K``: heads fitted on K shots per class.

For each K and each seed, K shots per class are drawn from the *training* pool, and these heads
are scored (top-1, %) on the evaluated items:

* ``zero-shot`` - the initial head: class prototypes from the prompts through the anchor;
* ``probe`` - a linear probe on the shots' anchor embeddings only (no text);
* ``uml`` - one head on the shots and the class prompts (UML), in the anchor space;
* ``pretrained probe`` - a linear probe on the encoder's own (raw) embeddings.

The pool: the task's ``train`` split (ModelNet40, ScanObjectNN); for ESC-50, the other folds
(each fold in turn when no ``fold`` is given: 5-fold cross-validation); for a task with only a
test split (RSNA), shots are drawn from the items and that seed's shots are left out of its
test items. Results are the mean and standard deviation over the seeds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from ..heads import HeadConfig, fit_head_on_embeddings

__all__ = ["fewshot_scores", "fewshot_protocol", "FEWSHOT_METHODS", "format_fewshot_markdown"]

FEWSHOT_METHODS = ("zero-shot", "probe", "uml", "pretrained probe")


def _draw(labels: torch.Tensor, k: int, num_classes: int, rng: np.random.Generator) -> torch.Tensor:
    """Up to ``k`` indices per class (all of a class's items when it has fewer)."""
    idx: list[int] = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten().numpy()
        if len(members):
            idx += rng.choice(members, min(k, len(members)), replace=False).tolist()
    return torch.tensor(idx, dtype=torch.long)


def fewshot_scores(
    model: Any,
    modality: str,
    pool: Any,
    test: Any | None,
    shots: Sequence[int],
    seeds: int = 5,
    text_weight: float = 1.0,
    config: HeadConfig | None = None,
    templates: Sequence[str] | None = None,
    batch_size: int = 32,
    cache: Any = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Few-shot top-1 of every method on ``test`` with shots from ``pool``.

    Args:
        model: a :class:`~textme_sdk.TextME` bundle with ``modality``.
        pool: a :class:`~textme_sdk.evaluation.ClassificationSet` the shots are drawn from.
        test: the evaluated set (same classes); ``None`` draws the shots from ``pool`` and tests
            on the rest of it.
        shots: the K values.
        seeds: shot draws per K (seeds ``0..seeds-1``).
        text_weight: ``alpha`` of the UML head.
        config: the heads' :class:`~textme_sdk.HeadConfig` (default: 200 steps, lr 1e-3).
        templates: prompt templates (default: as :func:`~textme_sdk.evaluation.evaluate`).

    Returns:
        ``{str(K): {method: {"mean", "std", "runs"}}}`` (percent).

    Raises:
        InvalidInputError: a multi-label set, different class lists, or K < 1.
    """
    from .harness import _class_prompts, item_embeddings

    if any(int(k) < 1 for k in shots) or not shots:
        raise InvalidInputError(f"--shots needs K >= 1 shots per class, got {list(shots)}")
    if seeds < 1:
        raise InvalidInputError(f"seeds must be >= 1, got {seeds}")
    for ds in (pool, test):
        if ds is not None and ds.multilabel:
            raise InvalidInputError(f"{ds.name} is multi-label; the few-shot protocol needs one "
                                    "class per item (drop --shots for this task)")
    if test is not None and list(test.class_names) != list(pool.class_names):
        raise InvalidInputError("the shot pool and the test set have different classes; load "
                                "both from the same task")
    cfg = config or HeadConfig()
    entry = model.entry(modality)
    classes = list(pool.class_names)
    prompts = _class_prompts(pool, templates)
    flat = [p for per in prompts for p in per]
    t_lab = torch.tensor([c for c, per in enumerate(prompts) for _ in per])
    t_anchor = torch.as_tensor(model.embed(flat, "text", batch_size, convert_to_tensor=True))

    def views(ds: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raw = item_embeddings(entry.encoder, ds.items, cache, batch_size)
        return raw, model.project(raw, modality), torch.as_tensor(ds.labels, dtype=torch.long)

    p_raw, p_anc, p_lab = views(pool)
    if test is not None:
        x_raw, x_anc, x_lab = views(test)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    C = len(classes)
    zs = fit_head_on_embeddings({modality: (t_anchor[:1], t_lab[:1])}, (t_anchor, t_lab), classes,
                                1.0, HeadConfig(steps=0))
    for k in shots:
        runs: dict[str, list[float]] = {m: [] for m in FEWSHOT_METHODS}
        for seed in range(seeds):
            rng = np.random.default_rng([seed, int(k)])
            idx = _draw(p_lab, int(k), C, rng)
            if test is None:
                keep = torch.ones(len(p_lab), dtype=torch.bool)
                keep[idx] = False
                tr, ta, tl = p_raw[keep], p_anc[keep], p_lab[keep]
            else:
                tr, ta, tl = x_raw, x_anc, x_lab
            if not len(tl):
                raise InvalidInputError("no items left to test on after drawing the shots; use "
                                        "fewer shots or a larger set")
            s_cfg = HeadConfig(**{**cfg.to_dict(), "seed": seed})
            r_cfg = HeadConfig(**{**cfg.to_dict(), "seed": seed, "init": "random"})
            heads = {
                "zero-shot": (zs, ta),
                "probe": (fit_head_on_embeddings({modality: (p_anc[idx], p_lab[idx])}, None,
                                                 classes, 0.0, r_cfg), ta),
                "uml": (fit_head_on_embeddings({modality: (p_anc[idx], p_lab[idx])},
                                               (t_anchor, t_lab), classes, text_weight, s_cfg), ta),
                "pretrained probe": (fit_head_on_embeddings(
                    {modality: (p_raw[idx], p_lab[idx])}, None, classes, 0.0, r_cfg), tr),
            }
            for name, (head, x) in heads.items():
                runs[name].append(float((head.logits(x).argmax(-1) == tl).float().mean() * 100))
        out[str(k)] = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v}
                       for m, v in runs.items()}
    return out


def _merge(parts: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Pool the runs of several folds: mean and std over every (fold, seed) run."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for k in parts[0]:
        out[k] = {}
        for m in parts[0][k]:
            runs = [r for p in parts for r in p[k][m]["runs"]]
            out[k][m] = {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": runs}
    return out


def fewshot_protocol(
    model: Any,
    task: str,
    path: str | os.PathLike,
    modality: str,
    shots: Sequence[int],
    seeds: int = 5,
    split: str = "test",
    limit: int | None = None,
    options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, dict[str, dict[str, Any]]], str]:
    """Load the task's shot pool and test items and run :func:`fewshot_scores`.

    Returns the scores and a note saying where the shots came from.
    """
    from .datasets import TASKS, load_task

    options = dict(options or {})
    info = TASKS.get(task)
    if info is None or info.kind != "classification":
        raise InvalidInputError(f"--shots applies to classification tasks (esc50, modelnet40, "
                                f"scanobjectnn, rsna), not {task!r}")
    if task == "esc50":
        fold = options.pop("fold", None)
        folds = sorted({int(f) for f in str(fold).split(",")}) if fold is not None else [1, 2, 3, 4, 5]
        parts = []
        for f in folds:
            test = load_task(task, path, split="test", limit=limit, fold=f, **options)
            pool = load_task(task, path, split="test", fold=[g for g in range(1, 6) if g != f],
                             **options)
            parts.append(fewshot_scores(model, modality, pool, test, shots, seeds, **kwargs))
        return _merge(parts), (f"few-shot: shots from the other folds, tested on fold(s) {folds} "
                               f"in turn; {seeds} seeds each")
    if "train" in info.splits:
        pool = load_task(task, path, split="train", **options)
        test = load_task(task, path, split=split, limit=limit, **options)
        return (fewshot_scores(model, modality, pool, test, shots, seeds, **kwargs),
                f"few-shot: shots from the train split; {seeds} seeds")
    pool = load_task(task, path, split=split, limit=limit, **options)
    return (fewshot_scores(model, modality, pool, None, shots, seeds, **kwargs),
            f"few-shot: {task} has no train split, so each seed's shots are drawn from the items "
            f"and left out of its test items; {seeds} seeds")


def format_fewshot_markdown(scores: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A methods x K table of mean +- std top-1 (%)."""
    ks = list(scores)
    lines = ["| few-shot top-1 | " + " | ".join(f"K={k}" for k in ks) + " |",
             "|---|" + "---:|" * len(ks)]
    for m in FEWSHOT_METHODS:
        lines.append(f"| {m} | " + " | ".join(
            f"{scores[k][m]['mean']:.1f} ± {scores[k][m]['std']:.1f}" for k in ks) + " |")
    return "\n".join(lines) + "\n"

