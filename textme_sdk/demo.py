"""The offline demo: text-only modality expansion end to end in the reference world.

For each modality of the reference world (images and sounds, each with its own small
contrastive "pretrained" encoder): offsets from unpaired samples, a projector trained on text
descriptions only (never a modal sample), then evaluation on held-out data against

* **pretrained** - the encoder alone: its own text branch vs its modal branch;
* **TextME** - ``P(E_x(x) - mu_modal)`` against anchor embeddings of the texts;
* **no offsets** - projector trained and applied without centring (paper Table 3);
* **naive** - the TextME projector applied to modal embeddings without centring them (the gap
  left in place, as when offsets are not applied at inference).

Text->X retrieval counts a retrieved sample as a hit when the query caption truly describes it:
same class, equal on every attribute the caption states
(:func:`textme_sdk.reference.world.caption_relevance`). The stricter exact-caption protocol,
where only samples whose own caption is the identical string count, is reported beside it, and
so is X->T retrieval (each sample ranks the held-out captions; its own caption is the hit).

It also measures emergent image<->audio retrieval (never trained on pairs) and each encoder's
gap geometry, and writes a markdown report with JSON and PNG plots. Everything goes through
the public API (``get_encoder``, ``compute_offsets``, ``train_projector``, ``TextME``).
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
from torch.nn import functional as F

from . import TextME, TrainConfig, compute_offsets, get_anchor, get_encoder, train_projector
from .diagnostics import gap_geometry
from .engine.offsets import Offsets
from .engine.projector import Projector
from .engine.trainer import TrainResult
from .evaluation import ppr, recall_at_k, topk_accuracy
from .evaluation.metrics import relevance_from_labels

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


def _world():
    from .reference import world

    return world


def _modality_run(m: str, cfg: DemoConfig, anchor, log: Callable[[str], None]) -> dict[str, Any]:
    world = _world()
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
    data = [it.data for it in items]
    captions = [it.caption for it in items]
    labels = torch.tensor([it.label_index for it in items])
    classes = world.class_names()

    def templates_of(c: str) -> list[str]:
        return world.prompts_for(m, c)

    n_t = len(templates_of(classes[0]))
    prompts = [p for c in classes for p in templates_of(c)]

    def protos(embed: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        e = F.normalize(torch.as_tensor(embed(prompts)).float(), dim=-1)
        return F.normalize(e.reshape(len(classes), n_t, -1).mean(1), dim=-1)

    # -- embeddings of every method on the same data
    x_raw = enc.encode_modal(data)
    t_raw = enc.encode_text(captions)
    anchor_caps = model.embed(captions, modality="text", convert_to_tensor=True)
    anchor_protos = protos(lambda p: model.embed(p, modality="text", convert_to_tensor=True))
    x = {
        "pretrained": x_raw,
        "textme": model.embed(data, modality=m, convert_to_tensor=True),
        "no_offsets": ablation.embed(data, modality=m, convert_to_tensor=True),
        "naive": model.embed(data, modality=m, convert_to_tensor=True, use_offsets=False),
    }
    queries = {"pretrained": t_raw}
    class_emb = {"pretrained": protos(enc.encode_text)}
    for k in ("textme", "no_offsets", "naive"):
        queries[k], class_emb[k] = anchor_caps, anchor_protos

    # retrieval relevance: a caption is relevant to every sample it truly describes (same class,
    # and equal on each attribute it states); the stricter "exact caption" protocol counts only
    # samples whose own caption is the identical string, however well another sample fits
    relevance = torch.from_numpy(world.caption_relevance(items, items))
    caption_index = {c: i for i, c in enumerate(captions)}  # one id per distinct caption
    caption_ids = [caption_index[c] for c in captions]
    exact = relevance_from_labels(caption_ids, caption_ids)
    metrics = {}
    for k in METHODS:
        sim = queries[k] @ x[k].T
        r, e = recall_at_k(sim, relevance, (1, 5)), recall_at_k(sim, exact, (1, 5))
        # each sample ranks the captions; exact relevance, because under "truly describes" a
        # vague caption ("a photo of a dog") is right for every dog and would reward vagueness
        back = recall_at_k(sim.T, exact, (1, 5))
        z = topk_accuracy(x[k] @ class_emb[k].T, labels, (1,))
        metrics[k] = {"T->X R@1": r["R@1"], "T->X R@5": r["R@5"], "exact R@1": e["R@1"],
                      "exact R@5": e["R@5"], "X->T R@1": back["R@1"], "X->T R@5": back["R@5"],
                      "zero-shot top-1": z["top1"]}
    geometry = gap_geometry(t_raw, x_raw)
    log(f"[{m}] evaluated on {len(items)} held-out samples")
    return {
        "model": model, "offsets": offsets, "metrics": metrics, "geometry": geometry,
        "embeddings": {"text": t_raw, "modal": x_raw, "textme": x["textme"], "anchor_text": anchor_caps},
        "labels": labels, "encoder_dim": enc.embedding_dim,
    }


def _projector_path(enc, anchor, texts: list[str], offsets: Offsets, tcfg: TrainConfig) -> Path:
    """Where a trained projector is kept: keyed by everything that determines it."""
    from .engine.cache import content_key, default_cache_dir
    from .extraction import cache_key

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

    from .engine.cache import atomic_save

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
        n = min(400, len(e["text"]))
        panels = [("encoder space (raw)", e["text"][:n], e["modal"][:n]),
                  ("after centring (offsets)", o.centre_text(e["text"][:n]), o.centre_modal(e["modal"][:n])),
                  ("anchor space (TextME)", e["anchor_text"][:n], e["textme"][:n])]
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
