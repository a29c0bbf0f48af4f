"""The offline demo: text-only modality expansion end to end in the reference world.

For each modality of the reference world (images and sounds, each with its own small
contrastive "pretrained" encoder): offsets from unpaired samples, a projector trained on text
descriptions only (never a modal sample), then evaluation on held-out data against

* **pretrained** - the encoder alone: its own text branch vs its modal branch;
* **TextME** - ``P(E_x(x) - mu_modal)`` against anchor embeddings of the texts;
* **no offsets** - projector trained and applied without centring (paper Table 3);
* **naive** - the TextME projector applied to modal embeddings without centring them (the gap
  left in place, as when offsets are not applied at inference).

The held-out samples become evaluation datasets (:mod:`textme_reference.datasets`) and every
number comes from textme-sdk's evaluation harness (:func:`textme_sdk.evaluation.evaluate`), the
same code that scores public benchmarks. Text->X retrieval counts a retrieved sample as a hit
when the query caption truly describes it: same class, equal on every attribute the caption
states (:func:`textme_reference.world.caption_relevance`). The stricter exact-caption protocol,
where only samples whose own caption is the identical string count, is reported beside it, and
so is X->T retrieval (each sample ranks the held-out captions; its own caption, or the same
string, is the hit).

It also measures emergent image<->audio retrieval (never trained on pairs) and each encoder's
gap geometry, and writes a markdown report with JSON and PNG plots. Everything goes through
textme-sdk's API (``get_encoder``, ``compute_offsets``, ``train_projector``, ``TextME``,
``evaluation.evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from textme_sdk import (
    Offsets,
    Projector,
    TextME,
    TrainConfig,
    TrainResult,
    compute_offsets,
    get_anchor,
    get_encoder,
    train_projector,
)
from textme_sdk.diagnostics import gap_geometry
from textme_sdk.evaluation import evaluate, ppr, recall_at_k, relevance_from_labels

from . import world
from .datasets import classification_set, retrieval_set

logger = logging.getLogger(__name__)

__all__ = ["DemoConfig", "run_demo", "METHODS"]

METHODS = ("pretrained", "textme", "no_offsets", "naive")


@dataclass
class DemoConfig:
    """Scale of the demo. The defaults take a few minutes on 2 CPU cores.

    Attributes:
        modalities: reference-world modalities to expand.
        offset_samples: unpaired texts and modal samples per centroid (paper: 5,000).
        train_texts: text descriptions the projector is trained on.
        eval_items: held-out labelled samples per modality.
        epochs, batch_size: projector training.
        hidden_dim: projector width. The paper uses the encoder's dimension (``None``); the
            reference encoders are only 48-64-d, too narrow a hidden layer for a 384-d anchor,
            so the demo widens it to 512.
        input_noise: training-input noise (see :class:`TrainConfig`); the reference world's
            templated captions need it, real caption corpora usually do not.
        seed: seeds data generation and training.
        anchor: anchor name.
        out_dir: where the report goes (``None`` = no files).
        plots: draw PNG maps (needs matplotlib).
        reuse_projectors: reuse projectors an earlier run trained on exactly the same encoder,
            anchor, texts, offsets and settings (kept in the textme cache, ``TEXTME_HOME``);
            ``False`` trains them again.
    """

    modalities: tuple[str, ...] = ("image", "audio")
    offset_samples: int = 5000
    train_texts: int = 20000
    eval_items: int = 1000
    epochs: int = 30
    batch_size: int = 512
    input_noise: float = 0.035
    hidden_dim: int | None = 512
    seed: int = 0
    anchor: str = "minilm"
    out_dir: str | None = "textme-report"
    plots: bool = True
    reuse_projectors: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> "DemoConfig":
        """A scaled-down run for tests (~1 minute)."""
        base = dict(offset_samples=600, train_texts=4000, eval_items=300, epochs=20,
                    batch_size=256, plots=False, out_dir=None)
        base.update(overrides)
        return cls(**base)


#: Held-out samples per modality drawn in the PCA plots of the report.
PLOT_POINTS = 400


def _modality_run(m: str, cfg: DemoConfig, anchor, log: Callable[[str], None]) -> dict[str, Any]:
    enc = get_encoder(f"ref-{m}")
    t0 = time.perf_counter()
    offsets = compute_offsets(
        enc, world.caption_corpus(m, cfg.offset_samples, seed=cfg.seed + 1),
        [it.data for it in world.sample_items(m, cfg.offset_samples, cfg.seed, "unpaired")])
    log(f"[{m}] offsets from {offsets.n_text} texts / {offsets.n_modal} unpaired samples: "
        f"gap {offsets.gap:.3f}")
    texts = world.caption_corpus(m, cfg.train_texts, seed=cfg.seed + 2)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                       input_noise=cfg.input_noise, hidden_dim=cfg.hidden_dim)
    no_offsets = Offsets.zeros(enc.embedding_dim)
    projector, reused = _projector(enc, anchor, texts, offsets, tcfg, cfg.reuse_projectors)
    projector0, reused0 = _projector(enc, anchor, texts, no_offsets, tcfg, cfg.reuse_projectors)
    how = "reused from the cache" if reused and reused0 else "trained"
    log(f"[{m}] projectors {how} ({len(texts)} texts only, "
        f"{time.perf_counter() - t0:.0f}s so far)")

    model = TextME(anchor).add_modality(enc, projector, offsets, info={
        "training": {**projector.training_result.summary(), "n_texts": len(texts)}})
    ablation = TextME(anchor).add_modality(enc, projector0, no_offsets)
    items = world.sample_items(m, cfg.eval_items, cfg.seed, "eval")
    metrics = _evaluate(model, ablation, items)

    # paired embeddings for the gap geometry, the plots and emergent retrieval
    x_raw = enc.encode_modal([it.data for it in items])
    t_raw = enc.encode_text([it.caption for it in items])
    log(f"[{m}] evaluated on {len(items)} held-out samples")
    return {
        "model": model, "offsets": offsets, "metrics": metrics, "geometry": gap_geometry(t_raw, x_raw),
        "embeddings": {"text": t_raw, "modal": x_raw, "textme": model.project(x_raw, m)},
        "captions": [it.caption for it in items[:PLOT_POINTS]],
        "labels": torch.tensor([it.label_index for it in items]), "encoder_dim": enc.embedding_dim,
    }


def _evaluate(model: TextME, ablation: TextME, items: list[world.Item]) -> dict[str, dict[str, float]]:
    """The demo's columns for every method, from the evaluation harness on three datasets.

    T->X under "truly describes" relevance; exact-caption T->X and X->T (each sample ranks the
    captions with exact relevance, because under "truly describes" a vague caption such as "a
    photo of a dog" is right for every dog and would reward vagueness); zero-shot top-1 with the
    world's prompts.
    """
    describes, exact, classes = (
        evaluate(model, data, ablation=ablation, cache=False, ks=(1, 5)).metrics
        for data in (retrieval_set(items, "describes"), retrieval_set(items, "exact"),
                     classification_set(items)))
    return {k: {"T->X R@1": describes[k]["T->X R@1"], "T->X R@5": describes[k]["T->X R@5"],
                "exact R@1": exact[k]["T->X R@1"], "exact R@5": exact[k]["T->X R@5"],
                "X->T R@1": exact[k]["X->T R@1"], "X->T R@5": exact[k]["X->T R@5"],
                "zero-shot top-1": classes[k]["top1"]} for k in METHODS}


def _projector_path(enc, anchor, texts: list[str], offsets: Offsets, tcfg: TrainConfig) -> Path:
    """Where a trained projector is kept: keyed by everything that determines it."""
    from textme_sdk.engine.cache import content_key, default_cache_dir
    from textme_sdk.extraction import cache_key

    h = hashlib.sha256()
    for t in (offsets.mu_text, offsets.mu_modal):
        h.update(t.numpy().tobytes())
    key = content_key({"kind": "demo-projector", "encoder": cache_key(enc), "anchor": cache_key(anchor),
                       "offsets": h.hexdigest(), "train": tcfg.to_dict(),
                       "torch": torch.__version__}, texts)
    return default_cache_dir() / "projectors" / f"{key}.safetensors"


def _projector(enc, anchor, texts: list[str], offsets: Offsets, tcfg: TrainConfig,
               reuse: bool) -> tuple[Projector, bool]:
    """A projector trained on ``texts``; reused from the cache when an identical one exists."""
    from safetensors import SafetensorError, safe_open
    from textme_sdk.engine.cache import atomic_save

    path = _projector_path(enc, anchor, texts, offsets, tcfg)
    if reuse and path.is_file():
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            projector = Projector.from_config(json.loads(meta["config"]))
            projector.load_state_dict(tensors, strict=True)
            result = TrainResult(projector, **json.loads(meta["result"]))
            projector.eval().training_result = result  # type: ignore[attr-defined]
            return projector, True
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:  # damaged: retrain
            logger.warning("ignoring cached projector %s: %s", path, exc)
    projector = train_projector(enc, anchor, texts, offsets, tcfg)
    r = projector.training_result  # type: ignore[attr-defined]
    result = {"history": r.history, "best_epoch": r.best_epoch, "steps": r.steps,
              "seconds": r.seconds, "samples_per_second": r.samples_per_second}
    atomic_save(projector.state_dict(), path,
                {"config": json.dumps(projector.config()), "result": json.dumps(result)})
    return projector, False


def _emergent(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """X->X retrieval between two modalities in the anchor space, by concept."""
    (a, ra), (b, rb) = list(runs.items())[:2]
    xa, xb = ra["embeddings"]["textme"], rb["embeddings"]["textme"]
    rel = relevance_from_labels(ra["labels"], rb["labels"])
    ab = recall_at_k(xa @ xb.T, rel, (1, 5))
    ba = recall_at_k(xb @ xa.T, rel.T, (1, 5))
    chance = float(rel.float().mean() * 100)
    return {"pair": f"{a}->{b}", f"{a}->{b} R@1": ab["R@1"], f"{a}->{b} R@5": ab["R@5"],
            f"{b}->{a} R@1": ba["R@1"], f"{b}->{a} R@5": ba["R@5"], "chance R@1": chance}


def run_demo(cfg: DemoConfig | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns metrics, PPRs, emergent retrieval and gap geometry as a dict."""
    cfg = cfg or DemoConfig()
    t0 = time.perf_counter()
    anchor = get_anchor(cfg.anchor)
    runs = {m: _modality_run(m, cfg, anchor, log) for m in cfg.modalities}
    results: dict[str, Any] = {"config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
                               "modalities": {}}
    for m, run in runs.items():
        met = run["metrics"]
        results["modalities"][m] = {
            "metrics": met,
            "ppr": {k: ppr(met["textme"][k], met["pretrained"][k]) for k in met["textme"]},
            "geometry": run["geometry"].to_dict(),
            "offsets": {"gap": run["offsets"].gap, "n_text": run["offsets"].n_text,
                        "n_modal": run["offsets"].n_modal},
        }
    if len(runs) >= 2:
        results["emergent"] = _emergent(runs)
        from .search_demo import search_section  # one index over both modalities' held-out samples

        results["search"] = search_section(runs, anchor, log)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    if cfg.out_dir:
        _write_report(Path(cfg.out_dir), results, runs, cfg)
        results["report"] = str(Path(cfg.out_dir) / "report.md")
    return results


# ------------------------------------------------------------------------------------ report
def format_tables(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    lines = [("T->X (caption -> sample): a caption is relevant to every held-out sample it truly "
              "describes (same class, equal on each attribute it states); exact: only to samples "
              "whose own caption is the same string. X->T (sample -> caption): the sample's own "
              "caption (or the same string) is the relevant one."), ""]
    for m, r in results["modalities"].items():
        cols = list(r["metrics"]["textme"])
        lines += [f"### {m}", "", "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for k in METHODS:
            v = r["metrics"][k]
            lines.append(f"| {k} | " + " | ".join(f"{v[c]:.2f}" for c in cols) + " |")
        p = r["ppr"]
        lines.append("| **PPR (TextME / pretrained, %)** | " + " | ".join(f"{p[c]:.1f}" for c in cols) + " |")
        g = r["geometry"]
        lines += ["", f"Gap geometry (paired held-out samples): gap norm {g['gap_norm']:.3f}, "
                  f"consistency {g['gap_consistency']:.3f} (sd {g['gap_consistency_std']:.3f}), "
                  f"bounded deviation {g['bounded_deviation']:.3f}, orthogonality text/modal "
                  f"{g['orthogonality_text']:.3f}/{g['orthogonality_modal']:.3f}, independence "
                  f"(split-half) {g['independence_split_half']:.3f}, paired cosine "
                  f"{g['paired_cosine']:.3f} vs intra-text {g['intra_text_cosine']:.3f} / "
                  f"intra-modal {g['intra_modal_cosine']:.3f}.", ""]
        if g["warnings"]:
            lines += [f"- warning: {w}" for w in g["warnings"]] + [""]
    if "emergent" in results:
        e = results["emergent"]
        keys = [k for k in e if k != "pair"]
        lines += ["### emergent retrieval (no paired data between the two modalities)", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
                  "| " + " | ".join(f"{e[k]:.2f}" for k in keys) + " |", ""]
    return "\n".join(lines)


def _write_report(out: Path, results: dict[str, Any], runs: dict[str, dict[str, Any]],
                  cfg: DemoConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    images = []
    if cfg.plots:
        try:
            images = _plots(out, runs)
        except ImportError:
            logger.warning("matplotlib is not installed; the report has no plots")
    md = ["# TextME reference-world report", "",
          f"Anchor `{cfg.anchor}`; {cfg.offset_samples} unpaired samples per centroid; projectors "
          f"trained on {cfg.train_texts} text descriptions only; {cfg.eval_items} held-out samples "
          f"per modality; {results['seconds']} s in all.", "", format_tables(results)]
    if "search" in results:
        from .search_demo import format_search

        md.append(format_search(results["search"]))
    md += [f"![{p.stem}]({p.name})" for p in images]
    (out / "report.md").write_text("\n".join(md) + "\n")
    for m, run in runs.items():
        run["model"].save_pretrained(out / "bundles" / m)


def _pca2(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(0)
    _, _, v = torch.pca_lowrank(x, q=2, center=False)
    return x @ v[:, :2]


def _plots(out: Path, runs: dict[str, dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for m, run in runs.items():
        e, o = run["embeddings"], run["offsets"]
        n = len(run["captions"])
        anchor_text = run["model"].embed(run["captions"], modality="text", convert_to_tensor=True)
        panels = [("encoder space (raw)", e["text"][:n], e["modal"][:n]),
                  ("after centring (offsets)", o.centre_text(e["text"][:n]), o.centre_modal(e["modal"][:n])),
                  ("anchor space (TextME)", anchor_text, e["textme"][:n])]
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        for ax, (title, t, x) in zip(axes, panels):
            p = _pca2(torch.cat([t, x]).float())
            ax.scatter(p[:n, 0], p[:n, 1], s=6, alpha=0.6, label="text")
            ax.scatter(p[n:, 0], p[n:, 1], s=6, alpha=0.6, label=m)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0].legend(loc="best")
        fig.suptitle(f"{m}: 2-D PCA of text and {m} embeddings")
        fig.tight_layout()
        path = out / f"gap_{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
