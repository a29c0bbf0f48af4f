"""Few-shot heads in the reference world: how much unpaired text adds to a handful of shots (UML).

For each modality (image, audio) and K in {1, 2, 4, 8, 16} shots per class, over several seeds
(shots drawn anew per seed), every method is scored on the same held-out samples (the demo's
evaluation items, ``split="eval"``, seed 0):

* **zero-shot** - the initial head: normalised class means of the anchor embeddings of the texts;
* **probe (anchor)** - a linear probe on the shots' anchor embeddings only (random init, no text);
* **UML (anchor)** - one head on shots + class-labelled text in the anchor space, text init;
* **UML (encoder, offsets)** - the same in the encoder's own space, text and modal embeddings
  centred with the bundle's offsets;
* **UML (encoder, no offsets)** - the same without centring;
* **probe (encoder)** - the pretrained encoder's own linear probe (raw modal embeddings);
* **cross-modal** - a head fitted on the *other* modality's shots + its text (anchor space),
  applied to this modality (e.g. audio classified by a head fitted on image shots);
* **UML (anchor) + other modality** - this modality's shots plus the other's plus text.

The text is the world's class prompts (3 per class) plus unpaired labelled captions of the
modality's domain (``sample_items(..., split="corpus")``, captions only). ``alpha`` (the text
weight) and the number of steps are tuned per method, modality and K on a separate validation
set (``split="eval"``, seed 202) with separate tuning shot seeds (100, 101); the reported seeds
(0..n-1) and the held-out items are never used for tuning.

Run: ``textme demo --fewshot`` or ``python -m textme_reference.fewshot`` (writes
``fewshot.md`` and ``fewshot.json``); the bundle is the demo's (same settings, so its cached
projectors are reused). Everything goes through textme-sdk's public API
(``TextME``, ``textme_sdk.heads``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from textme_sdk import HeadConfig, Offsets, TextME, TrainConfig, compute_offsets, get_anchor, get_encoder
from textme_sdk.heads import fit_head_on_embeddings

from . import world
from .demo import DemoConfig, _projector

logger = logging.getLogger(__name__)

__all__ = ["FewShotConfig", "run_fewshot", "format_fewshot", "METHODS"]

METHODS = ("zero-shot", "probe (anchor)", "UML (anchor)", "UML (encoder, offsets)",
           "UML (encoder, no offsets)", "probe (encoder)", "cross-modal (other shots + text)",
           "UML (anchor) + other modality")
#: method -> (space, uses text, init)
_SPEC = {
    "probe (anchor)": ("anchor", False, "random"),
    "UML (anchor)": ("anchor", True, "text"),
    "UML (encoder, offsets)": ("centred", True, "text"),
    "UML (encoder, no offsets)": ("raw", True, "text"),
    "probe (encoder)": ("raw", False, "random"),
}


@dataclass
class FewShotConfig:
    """Scale of the few-shot study.

    Attributes:
        shots: K values (shots per class).
        seeds: reported shot draws per K (seeds 0..seeds-1).
        tune_seeds: shot draws used for tuning on the validation items.
        pool_items: labelled training samples the shots are drawn from.
        val_items, test_items: validation (tuning) and held-out (reported) samples.
        captions_per_class: labelled unpaired captions per class (besides the 3 prompts).
        alphas, steps: the tuning grid of the text weight and of the training steps.
        lr: AdamW learning rate of every head.
        demo: the bundle's scale (offsets, projector training; projectors are cached).
    """

    shots: tuple[int, ...] = (1, 2, 4, 8, 16)
    seeds: int = 5
    tune_seeds: tuple[int, ...] = (100, 101)
    pool_items: int = 1200
    val_items: int = 480
    test_items: int = 1000
    captions_per_class: int = 20
    alphas: tuple[float, ...] = (0.2, 0.5, 1.0, 1.5)
    steps: tuple[int, ...] = (30, 100, 300)
    lr: float = 1e-3
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(plots=False, out_dir=None))

    @classmethod
    def quick(cls, **overrides: Any) -> "FewShotConfig":
        """A small run for tests (two K, two seeds, a tiny grid)."""
        base: dict[str, Any] = dict(shots=(1, 4), seeds=2, tune_seeds=(100,), pool_items=400,
                                    val_items=120, test_items=240, captions_per_class=4,
                                    alphas=(0.5, 1.0), steps=(30,), demo=DemoConfig.quick())
        base.update(overrides)
        return cls(**base)


def _bundle(cfg: DemoConfig, log: Callable[[str], None]) -> TextME:
    """The demo's bundle with both modalities (projectors reused from the demo's cache)."""
    anchor = get_anchor(cfg.anchor)
    model = TextME(anchor)
    for m in ("image", "audio"):
        enc = get_encoder(f"ref-{m}")
        offsets = compute_offsets(
            enc, world.caption_corpus(m, cfg.offset_samples, seed=cfg.seed + 1),
            [it.data for it in world.sample_items(m, cfg.offset_samples, cfg.seed, "unpaired")])
        tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                           input_noise=cfg.input_noise, hidden_dim=cfg.hidden_dim)
        texts = world.caption_corpus(m, cfg.train_texts, seed=cfg.seed + 2)
        projector, reused = _projector(enc, anchor, texts, offsets, tcfg, cfg.reuse_projectors)
        log(f"[{m}] projector {'reused' if reused else 'trained'}")
        model.add_modality(enc, projector, offsets)
    return model


def _views(model: TextME, m: str, raw: torch.Tensor, branch: str) -> dict[str, torch.Tensor]:
    """One set of embeddings in the three spaces: anchor, centred encoder, raw encoder."""
    o: Offsets = model.entry(m).offsets
    centred = o.centre_text(raw) if branch == "text" else o.centre_modal(raw)
    return {"anchor": model.project(raw, m, branch=branch), "centred": centred, "raw": raw}


def _embed(model: TextME, m: str, cfg: FewShotConfig) -> dict[str, Any]:
    enc = model.entry(m).encoder
    classes = world.class_names()
    sets = {"pool": world.sample_items(m, cfg.pool_items, 101, "eval"),
            "val": world.sample_items(m, cfg.val_items, 202, "eval"),
            "test": world.sample_items(m, cfg.test_items, 0, "eval")}
    out: dict[str, Any] = {}
    for name, items in sets.items():
        raw = enc.encode_modal([it.data for it in items])
        out[name] = (_views(model, m, raw, "modal"),
                     torch.tensor([it.label_index for it in items]))
    prompts = [(p, i) for i, c in enumerate(classes) for p in world.prompts_for(m, c)]
    per_class = {i: [] for i in range(len(classes))}
    corpus = world.sample_items(m, cfg.captions_per_class * len(classes) * 3, 303, "corpus")
    for it in corpus:
        if len(per_class[it.label_index]) < cfg.captions_per_class:
            per_class[it.label_index].append(it.caption)
    captions = [(t, i) for i, ts in per_class.items() for t in ts]
    texts = prompts + captions
    t_raw = enc.encode_text([t for t, _ in texts])
    t_views = _views(model, m, t_raw, "text")
    t_views["anchor"] = model.embed([t for t, _ in texts], "text", convert_to_tensor=True)
    out["text"] = (t_views, torch.tensor([i for _, i in texts]))
    out["n_prompts"] = len(prompts)
    out["n_captions"] = len(captions)
    return out


def _draw(labels: torch.Tensor, k: int, seed: int, code: int) -> torch.Tensor:
    """Indices of ``k`` pool samples per class (all classes), drawn by ``seed``."""
    rng = np.random.default_rng([seed, k, code])
    idx = []
    for c in range(int(labels.max()) + 1):
        members = (labels == c).nonzero().flatten().numpy()
        if len(members) < k:
            raise ValueError(f"the pool has {len(members)} samples of class {c}, fewer than {k}; "
                             "raise pool_items")
        idx += rng.choice(members, k, replace=False).tolist()
    return torch.tensor(idx)


def _accuracy(head: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((head.logits(x).argmax(-1) == y).float().mean() * 100)


def _fit(data: dict[str, dict[str, Any]], m: str, method: str, k: int, seed: int, alpha: float,
         steps: int, cfg: FewShotConfig, other: str | None) -> Any:
    """One head of ``method`` on modality ``m``'s shots (``seed``, ``k``)."""
    classes = world.class_names()
    code = {"image": 1, "audio": 2}
    if method.startswith("cross-modal"):
        src = other
        assert src is not None
        views, labels = data[src]["pool"]
        idx = _draw(labels, k, seed, code[src])
        tv, tl = data[src]["text"]
        shots = {src: (views["anchor"][idx], labels[idx])}
        n = data[src]["n_prompts"]
        return fit_head_on_embeddings(shots, (tv["anchor"], tl), classes, alpha,
                                      HeadConfig(steps=steps, lr=cfg.lr, seed=seed),
                                      init_text=(tv["anchor"][:n], tl[:n]))
    views, labels = data[m]["pool"]
    idx = _draw(labels, k, seed, code[m])
    tv, tl = data[m]["text"]
    n = data[m]["n_prompts"]
    if method == "UML (anchor) + other modality":
        assert other is not None
        ov, ol = data[other]["pool"]
        oidx = _draw(ol, k, seed, code[other])
        otv, otl = data[other]["text"]
        shots = {m: (views["anchor"][idx], labels[idx]), other: (ov["anchor"][oidx], ol[oidx])}
        text = (torch.cat([tv["anchor"], otv["anchor"]]), torch.cat([tl, otl]))
        return fit_head_on_embeddings(shots, text, classes, alpha,
                                      HeadConfig(steps=steps, lr=cfg.lr, seed=seed),
                                      init_text=(tv["anchor"][:n], tl[:n]))
    space, uses_text, init = _SPEC[method]
    shots = {m: (views[space][idx], labels[idx])}
    text = (tv[space], tl) if uses_text else None
    return fit_head_on_embeddings(shots, text, classes, alpha if uses_text else 0.0,
                                  HeadConfig(steps=steps, lr=cfg.lr, seed=seed, init=init),
                                  init_text=(tv[space][:n], tl[:n]))


def _space_of(method: str) -> str:
    return _SPEC[method][0] if method in _SPEC else "anchor"


def _tune(data, m, method, k, cfg, other) -> tuple[float, int, float]:
    """Best (alpha, steps) on the validation items with the tuning seeds; and its accuracy."""
    alphas = cfg.alphas if (method not in _SPEC or _SPEC[method][1]) else (0.0,)
    space = _space_of(method)
    vx, vy = data[m]["val"]
    best = (-1.0, 0.0, 0)
    for alpha in alphas:
        for steps in cfg.steps:
            acc = float(np.mean([_accuracy(_fit(data, m, method, k, s, alpha, steps, cfg, other),
                                           vx[space], vy) for s in cfg.tune_seeds]))
            if acc > best[0]:
                best = (acc, alpha, steps)
    return best[1], best[2], best[0]


def run_fewshot(cfg: FewShotConfig | None = None, log: Callable[[str], None] = print,
                out_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the study; returns ``{"results": {modality: {method: {K: {mean, std, runs}}}}, ...}``."""
    cfg = cfg or FewShotConfig()
    torch.set_num_threads(1)  # tiny problems: threads only add overhead on a shared machine
    t0 = time.perf_counter()
    model = _bundle(cfg.demo, log)
    mods = ("image", "audio")
    data = {m: _embed(model, m, cfg) for m in mods}
    log(f"embedded pool/val/test and {data['image']['n_prompts']} prompts + "
        f"{data['image']['n_captions']} captions per modality ({time.perf_counter() - t0:.0f}s)")
    classes = world.class_names()
    results: dict[str, Any] = {}
    tuned: dict[str, Any] = {}
    for m in mods:
        other = [o for o in mods if o != m][0]
        tx, ty = data[m]["test"]
        tv, tl = data[m]["text"]
        n = data[m]["n_prompts"]
        zs = fit_head_on_embeddings({m: (tv["anchor"][:1], tl[:1])}, (tv["anchor"], tl), classes,
                                    1.0, HeadConfig(steps=0), init_text=(tv["anchor"][:n], tl[:n]))
        zs_acc = _accuracy(zs, tx["anchor"], ty)
        results[m] = {"zero-shot": {str(k): {"mean": zs_acc, "std": 0.0, "runs": [zs_acc]}
                                    for k in cfg.shots}}
        tuned[m] = {}
        for method in METHODS[1:]:
            results[m][method] = {}
            tuned[m][method] = {}
            for k in cfg.shots:
                alpha, steps, val_acc = _tune(data, m, method, k, cfg, other)
                runs = [_accuracy(_fit(data, m, method, k, s, alpha, steps, cfg, other),
                                  tx[_space_of(method)], ty) for s in range(cfg.seeds)]
                results[m][method][str(k)] = {"mean": float(np.mean(runs)),
                                              "std": float(np.std(runs)), "runs": runs}
                tuned[m][method][str(k)] = {"alpha": alpha, "steps": steps, "val_accuracy": val_acc}
            r1 = results[m][method][str(cfg.shots[0])]
            log(f"[{m}] {method}: K={cfg.shots[0]} {r1['mean']:.1f} +- {r1['std']:.1f} "
                f"({time.perf_counter() - t0:.0f}s)")
    out = {"config": {**{k: v for k, v in asdict(cfg).items() if k != "demo"},
                      "demo": asdict(cfg.demo)},
           "results": results, "tuned": tuned, "checks": _checks(results, cfg),
           "texts": {m: {"prompts": data[m]["n_prompts"], "captions": data[m]["n_captions"]}
                     for m in mods},
           "seconds": round(time.perf_counter() - t0, 1)}
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "fewshot.json").write_text(json.dumps(out, indent=2) + "\n")
        (folder / "fewshot.md").write_text(format_fewshot(out) + "\n")
        out["report"] = str(folder / "fewshot.md")
    return out


def _checks(results: dict[str, Any], cfg: FewShotConfig) -> list[dict[str, Any]]:
    """The targets: UML 1-shot >= probe 1-shot + 5 points and >= zero-shot, per modality."""
    k = str(cfg.shots[0])
    rows = []
    for m, r in results.items():
        uml, probe, zs = (r[x][k]["mean"] for x in ("UML (anchor)", "probe (anchor)", "zero-shot"))
        rows.append({"what": f"{m}: UML (anchor) - probe (anchor), K={k}", "value": uml - probe,
                     "unit": "points", "target": ">= 5", "met": uml - probe >= 5})
        rows.append({"what": f"{m}: UML (anchor) - zero-shot, K={k}", "value": uml - zs,
                     "unit": "points", "target": ">= 0", "met": uml - zs >= 0})
    return rows


def format_fewshot(out: dict[str, Any]) -> str:
    """The results as markdown: one table per modality, methods x K (mean +- std, %)."""
    shots = [str(k) for k in out["config"]["shots"]]
    lines = []
    for m, r in out["results"].items():
        other = "audio" if m == "image" else "image"
        lines += [f"### {m} (top-1 %, mean ± std over {out['config']['seeds']} seeds)", "",
                  "| method | " + " | ".join(f"K={k}" for k in shots) + " |",
                  "|---|" + "---:|" * len(shots)]
        for method in METHODS:
            label = method.replace("other", other) if "other" in method else method
            cells = [f"{r[method][k]['mean']:.1f} ± {r[method][k]['std']:.1f}" for k in shots]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        t = out["tuned"][m]
        lines.append("Tuned on the validation split (alpha / steps per K): " + "; ".join(
            f"{meth}: " + ", ".join(f"{t[meth][k]['alpha']:g}/{t[meth][k]['steps']}" for k in shots)
            for meth in t) + ".")
        lines.append("")
    lines += ["| check | value | target | met |", "|---|---:|---|---|"]
    lines += [f"| {c['what']} | {c['value']:+.1f} {c['unit']} | {c['target']} | "
              f"{'yes' if c['met'] else 'no'} |" for c in out["checks"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m textme_reference.fewshot [--quick] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (for tests)")
    parser.add_argument("--out", default="textme-report", help="folder of fewshot.md / .json")
    args = parser.parse_args(argv)
    cfg = FewShotConfig.quick() if args.quick else FewShotConfig()
    out = run_fewshot(cfg, out_dir=args.out)
    print(format_fewshot(out))
    print(f"report: {out['report']} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
