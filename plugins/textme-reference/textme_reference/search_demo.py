"""The demo's closing section: one search index over the held-out images and sounds together.

Both modalities' held-out samples, already embedded into the anchor space by their bridged
encoders, go into one :class:`textme_sdk.Index` (exact backend); a text query, an audio->image
query and an image->audio query show their hits. A hit is counted right when its class is the
query's (the text query's class is the one it names). No pair of image and sound was ever
seen together: audio->image and image->audio are emergent.
"""

from __future__ import annotations

from typing import Any, Callable

from textme_sdk import Index, TextME

from . import world

__all__ = ["search_section", "format_search", "TEXT_QUERY"]

TEXT_QUERY = ("a dog barking", "dog")
HITS = 5


def _combined(runs: dict[str, dict[str, Any]], anchor: Any) -> TextME:
    model = TextME(anchor)
    for m, run in runs.items():
        entry = run["model"].entry(m)
        model.add_modality(entry.encoder, entry.projector, entry.offsets, name=m)
    return model


def search_section(runs: dict[str, dict[str, Any]], anchor: Any,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Index every modality's held-out samples together and run the three example queries."""
    names = world.class_names()
    model = _combined(runs, anchor)
    index = Index(int(anchor.embedding_dim), backend="exact")
    labels: dict[str, list[str]] = {}
    for m, run in runs.items():
        labels[m] = [names[int(i)] for i in run["labels"]]
        index.add_embeddings(run["embeddings"]["textme"], modality=m, model=model,
                             ids=[f"{m}-{i:04d}" for i in range(len(labels[m]))],
                             metadata=[{"label": lab} for lab in labels[m]])
    (a, b) = list(runs)[:2]
    # the first held-out sample of each modality whose class the other modality also has
    qa = next(i for i, lab in enumerate(labels[a]) if lab in labels[b])
    qb = next(i for i, lab in enumerate(labels[b]) if lab in labels[a])
    queries = [
        (f'text "{TEXT_QUERY[0]}"', [TEXT_QUERY[0]], "text", None, TEXT_QUERY[1]),
        (f"{a}->{b} ({a}-{qa:04d}, a {labels[a][qa]})", runs[a]["embeddings"]["textme"][qa:qa + 1],
         "embedding", b, labels[a][qa]),
        (f"{b}->{a} ({b}-{qb:04d}, a {labels[b][qb]})", runs[b]["embeddings"]["textme"][qb:qb + 1],
         "embedding", a, labels[b][qb]),
    ]
    out = {"items": dict(index.modalities), "queries": []}
    for title, q, modality, only, want in queries:
        res = index.search(q, k=HITS, modality=modality, filter_modality=only, model=model)
        hits = [{"id": i, "modality": m, "label": md["label"], "score": round(float(s), 4)}
                for i, m, md, s in zip(res.ids[0], res.modalities[0], res.metadata[0], res.scores[0])]
        right = sum(h["label"] == want for h in hits)
        out["queries"].append({"query": title, "class": want, "hits": hits,
                               "right": f"{right}/{len(hits)}"})
    log(f"search: {len(index)} held-out items in one index ("
        + ", ".join(f"{m}={n}" for m, n in index.modalities.items()) + "); "
        + "; ".join(f"{q['query']}: {q['right']} hits of its class" for q in out["queries"]))
    return out


def format_search(section: dict[str, Any]) -> str:
    """The search section as markdown."""
    items = ", ".join(f"{n} {m}" for m, n in section["items"].items())
    lines = ["### search (one index, both modalities)", "",
             f"The held-out samples ({items}) in one `textme_sdk.Index`; top-{HITS} hits per "
             "query (a hit is right when its class is the query's).", ""]
    for q in section["queries"]:
        hits = ", ".join(f"{h['id']} {h['label']} ({h['score']:.2f})" for h in q["hits"])
        lines.append(f"- **{q['query']}** -> {q['right']} right: {hits}")
    return "\n".join(lines) + "\n"
