"""Search benchmark: exact, FAISS and Milvus Lite side by side through ``textme_sdk.Index``.

For each dimension (384 = MiniLM, 1024 = Qwen3-Embedding-0.6B), in one run:

* exact search (chunked torch matmul) over ``--exact-n`` items (default 100K);
* FAISS over ``--faiss-n`` items (default 1M), index type chosen by
  :func:`textme_sdk.search.backends.choose_faiss_key` (autofaiss under an 8 GB budget), built
  by streaming chunks (the vectors are never all in memory twice); recall@10 against exact
  top-10 computed in the same pass;
* Milvus Lite over ``--milvus-n`` items (default 100K; FLAT index), recall@10 vs exact.

Reported per backend: build time (training and adding: ``build_s``; making the synthetic data
and the exact reference top-k are the benchmark's own costs, reported apart as ``data_s`` and
``reference_s``; ``first_add_s`` includes IVF training), memory (growth of the process's
resident memory while building, and the index's own size), per-query latency at batch 1
(median of single queries) and at batch 256 (wall time / queries), recall@10 vs exact on 1,024
held-out queries. For exact search also its memory-bandwidth floor at batch 1 (the matrix's
bytes over the streaming bandwidth measured on it); for Milvus Lite also pymilvus's own search
call timed alongside ``Index.search`` (what Milvus Lite takes, apart from this library).

Data: synthetic *clustered* embeddings, as real text/image embeddings are (random Gaussian
vectors are the worst case for approximate search and unlike any embedding model's output).
Each item is ``normalise(0.6 c + normalise(B (t_z + 0.8 e)) + 0.35 n)``: a shared unit direction
``c`` (the embeddings of one model sit in a cone: mean pairwise cosine ~0.3), a topic centre
``t_z`` of 2,000 topics with Zipf-like sizes in a 64-d latent space mapped by a fixed random
``B`` (64 x d), within-topic latent noise ``e`` and isotropic noise ``n`` (norm ~1). Queries are
fresh draws from the same distribution (never indexed). Everything is seeded.

Run: ``python benchmarks/bench_search.py [--json out.json] [--quick] [--threads 2]``
(``--quick``: 20K exact, 100K FAISS, 20K Milvus, for a smoke run in a few minutes;
``--faiss-n 0`` / ``--milvus-n 0`` leave those backends out). The full
default run (both dimensions, exact 100K, FAISS 1M, Milvus Lite 100K) takes about 20 minutes
on 2 CPU cores; most of it is adding 1M vectors to the IVF lists and the exact reference.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from typing import Any

import numpy as np

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)

CHUNK = 65536
LATENT = 64
TOPICS = 2000


def unit_norms(x: np.ndarray) -> np.ndarray:
    """Row norms ``[n, 1]`` without an ``x * x`` temporary."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]


class Space:
    """A seeded generator of clustered unit embeddings of dimension ``d``."""

    def __init__(self, d: int, seed: int = 0):
        rng = np.random.default_rng([seed, d])
        self.d = d
        self.basis = (rng.standard_normal((LATENT, d)) / np.sqrt(LATENT)).astype(np.float32)
        common = rng.standard_normal(d)
        self.common = (common / np.linalg.norm(common)).astype(np.float32)
        self.topics = rng.standard_normal((TOPICS, LATENT)).astype(np.float32)
        w = 1.0 / np.arange(1, TOPICS + 1) ** 0.7
        self.weights = w / w.sum()
        self.seed = seed

    def draw(self, stream: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.d, stream])
        z = rng.choice(TOPICS, size=n, p=self.weights)
        latent = self.topics[z] + 0.8 * rng.standard_normal((n, LATENT), dtype=np.float32)
        topic = latent @ self.basis
        topic /= unit_norms(topic)
        x = rng.standard_normal((n, self.d), dtype=np.float32)  # the noise, then the item
        x *= np.float32(0.35 / np.sqrt(self.d))
        x += topic
        x += np.float32(0.6) * self.common
        x /= unit_norms(x)  # in place throughout: this is a third of a 1M-item run otherwise
        return x

    def items(self, n: int):
        """``n`` items in chunks of :data:`CHUNK` (chunk ``i`` is always the same)."""
        for i, start in enumerate(range(0, n, CHUNK)):
            yield self.draw(1000 + i, min(CHUNK, n - start))

    def queries(self, n: int) -> np.ndarray:
        return self.draw(7, n)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class TopK:
    """Exact top-k of queries over streamed chunks (the recall reference)."""

    def __init__(self, q: np.ndarray, k: int = 10):
        import torch

        self.torch, self.q, self.k = torch, torch.from_numpy(q), k
        self.scores = self.labels = None
        self.seen = 0

    def update(self, chunk: np.ndarray) -> None:
        torch = self.torch
        s = self.q @ torch.from_numpy(chunk).T
        top = s.topk(min(self.k, s.shape[1]), dim=1)
        sc, lab = top.values, top.indices + self.seen
        if self.scores is not None:
            sc, lab = torch.cat([self.scores, sc], 1), torch.cat([self.labels, lab], 1)
            t = sc.topk(self.k, dim=1)
            sc, lab = t.values, lab.gather(1, t.indices)
        self.scores, self.labels = sc, lab
        self.seen += len(chunk)

    def ids(self) -> list[list[str]]:
        return [[str(i) for i in row] for row in self.labels.tolist()]


def recall_at(ref: list[list[str]], got: list[list[str]], k: int = 10) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ref, got)]))


def latencies(index: Any, q: np.ndarray, n_single: int) -> dict[str, float]:
    index.search(q[:2], k=10)  # warm-up
    single = []
    for i in range(n_single):
        t0 = time.perf_counter()
        index.search(q[i:i + 1], k=10)
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for start in range(0, len(q), 256):
        index.search(q[start:start + 256], k=10)
    batch = (time.perf_counter() - t0) / len(q)
    return {"batch1_ms": 1000 * float(np.median(single)), "batch256_ms_per_query": 1000 * batch}


def build(space: Space, n: int, backend: str, ref: TopK | None, **opts: Any) -> tuple[Any, dict]:
    from textme_sdk import Index

    gc.collect()
    r0 = rss()
    peak = r0
    t0 = time.perf_counter()
    index = Index(space.d, backend=backend, **opts)
    pending: list[np.ndarray] = []
    # IVF trains on the first batch added: give it 4 chunks (a sample of 64 points per list)
    first = 4 if backend == "faiss" else 1
    # where the build time goes: making the data and the exact reference are the benchmark's
    # own costs, counted apart from the index's (the first add includes IVF training)
    spent = {"data_s": 0.0, "reference_s": 0.0, "first_add_s": 0.0, "add_s": 0.0}
    items = space.items(n)
    i = 0
    while True:
        t = time.perf_counter()
        chunk = next(items, None)
        spent["data_s"] += time.perf_counter() - t
        if chunk is None:
            break
        if ref is not None:
            t = time.perf_counter()
            ref.update(chunk)
            spent["reference_s"] += time.perf_counter() - t
        pending.append(chunk)
        i += 1
        if i < first and len(index) + sum(map(len, pending)) < n:
            continue
        batch = np.concatenate(pending) if len(pending) > 1 else pending[0]
        pending = []
        start = len(index)
        t = time.perf_counter()
        index.add_embeddings(batch, ids=[str(start + j) for j in range(len(batch))])
        spent["first_add_s" if start == 0 else "add_s"] += time.perf_counter() - t
        peak = max(peak, rss())
    seconds = time.perf_counter() - t0
    gc.collect()
    return index, {"n": n, "build_s": seconds - spent["data_s"] - spent["reference_s"],
                   "wall_s": seconds, **spent, "rss_growth_gb": (rss() - r0) / 2**30,
                   "peak_rss_gb": peak / 2**30}


def bandwidth_floor(index: Any, repeats: int = 20) -> dict[str, float]:
    """The memory-bandwidth floor of a batch-1 exact query: it reads the whole float32 matrix
    once, so it cannot beat ``matrix bytes / streaming bandwidth``; the bandwidth is measured
    here by summing the same matrix (median of ``repeats``)."""
    import torch

    x = index._backend.vectors
    x.sum()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    nbytes = x.numel() * x.element_size()
    return {"bandwidth_gb_s": nbytes / seconds / 1e9, "floor_ms": 1000 * seconds,
            "matrix_gb": nbytes / 2**30, "threads": torch.get_num_threads()}


def milvus_client_latency(index: Any, q: np.ndarray, n_single: int) -> dict[str, float]:
    """Batch-1 medians of ``Index.search`` and of pymilvus's own ``search`` call on the same
    collection, alternated query by query (so that a change of load hits both): the second is
    what Milvus Lite itself takes, the difference is this library's wrapper."""
    backend = index._backend
    client = backend.client()
    params = {"metric_type": "IP", "params": backend.search_params}
    ours, theirs = [], []
    for i in range(n_single):
        t0 = time.perf_counter()
        index.search(q[i:i + 1], k=10)
        t1 = time.perf_counter()
        client.search(backend.collection, data=q[i:i + 1].tolist(), limit=10, filter="",
                      search_params=params, output_fields=[])
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    return {"index_batch1_ms": 1000 * float(np.median(ours)),
            "client_batch1_ms": 1000 * float(np.median(theirs))}


def run_dim(d: int, args: argparse.Namespace, log) -> dict[str, Any]:
    space = Space(d)
    q = space.queries(args.queries)
    out: dict[str, Any] = {}
    sample = space.queries(2000)
    sims = sample[:1000] @ sample[1000:].T
    out["data"] = {"mean_pair_cosine": float(sims.mean()),
                   "mean_top1_cosine_in_2000": float(np.sort(sample @ sample.T, 1)[:, -2].mean())}

    # exact at --exact-n (also the recall reference for Milvus at the same items)
    ref_small = TopK(q)
    exact, info = build(space, args.exact_n, "exact", ref_small)
    info.update(latencies(exact, q, args.single))
    info["index_gb"] = args.exact_n * d * 4 / 2**30
    info["bandwidth"] = bandwidth_floor(exact)
    out["exact"] = info
    log(f"d={d} exact {args.exact_n}: {info}")
    del exact
    gc.collect()

    if args.faiss_n:
        out["faiss"] = run_faiss(space, q, args, log)
        gc.collect()

    # Milvus Lite at --milvus-n (same first items as exact when the sizes agree)
    if args.milvus_n:
        ref_m = ref_small if args.milvus_n == args.exact_n else TopK(q)
        m, info = build(space, args.milvus_n, "milvus", None if ref_m is ref_small else ref_m)
        info.update(latencies(m, q, min(args.single, 100)))
        info["wrapper"] = milvus_client_latency(m, q, min(args.single, 50))
        info["recall@10"] = recall_at(ref_m.ids(), m.search(q, k=10).ids)
        out["milvus"] = info
        log(f"d={d} milvus {args.milvus_n}: {info}")
        m.close()
    return out


def run_faiss(space: Space, q: np.ndarray, args: argparse.Namespace, log) -> dict[str, Any]:
    """FAISS at ``--faiss-n`` items, recall against exact top-10 computed while building."""
    import tempfile

    from textme_sdk.search.backends import choose_faiss_key

    d = space.d
    key = choose_faiss_key(args.faiss_n, d, max_memory=args.max_memory)
    ref = TopK(q)
    index, info = build(space, args.faiss_n, "faiss", ref, index_key=key)
    backend = index._backend
    info["index_key"] = key
    info["nprobe"] = backend.nprobe
    ivf = backend._ivf(backend.index)
    if ivf is not None:  # 1 = lists of equal length; a query's cost grows with it
        info["list_imbalance"] = float(ivf.invlists.imbalance_factor())
    info["ef_search"] = backend.ef_search
    info.update(latencies(index, q, args.single))
    got = index.search(q, k=10)
    info["recall@10"] = recall_at(ref.ids(), got.ids)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        index.save(os.path.join(tmp, "idx"))
        info["save_s"] = time.perf_counter() - t0
        info["index_gb"] = folder_bytes(os.path.join(tmp, "idx")) / 2**30
    sweep = []
    for factor in (0.5, 2.0):  # the recall/latency trade-off around the default
        if backend.nprobe:
            backend.nprobe = max(1, int(info["nprobe"] * factor))
        elif backend.ef_search:
            backend.ef_search = max(16, int(info["ef_search"] * factor))
        else:
            break
        r = recall_at(ref.ids(), index.search(q, k=10).ids)
        lat = latencies(index, q[:256], min(args.single, 50))
        sweep.append({"nprobe": backend.nprobe, "ef_search": backend.ef_search, "recall@10": r, **lat})
    info["sweep"] = sweep
    log(f"d={d} faiss {args.faiss_n}: {info}")
    return info


def checks(results: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []

    def add(what: str, value: float, unit: str, target: str, met: bool | None) -> None:
        rows.append({"what": what, "value": round(float(value), 4), "unit": unit, "target": target,
                     "met": met})

    for d, r in results["dims"].items():
        e = r["exact"]
        ne = f"{e['n'] // 1000}K"
        add(f"exact d={d} {ne}: latency batch 1", e["batch1_ms"], "ms/query", "< 20",
            e["batch1_ms"] < 20)
        if "bandwidth" in e:
            bw = e["bandwidth"]
            add(f"exact d={d} {ne}: memory-bandwidth floor of batch 1 ({bw['matrix_gb']:.2f} GB "
                f"at {bw['bandwidth_gb_s']:.1f} GB/s)", bw["floor_ms"], "ms/query", "-", None)
            add(f"exact d={d} {ne}: batch-1 latency over its bandwidth floor",
                e["batch1_ms"] / bw["floor_ms"], "x", "-", None)
        add(f"exact d={d} {ne}: latency batch 256", e["batch256_ms_per_query"], "ms/query", "-", None)
        if "faiss" in r:
            f = r["faiss"]
            nf = f"{f['n'] // 10**6}M" if f["n"] >= 10**6 else f"{f['n'] // 1000}K"
            add(f"faiss d={d} {nf} ({f['index_key']}): recall@10 vs exact", f["recall@10"], "",
                ">= 0.95", f["recall@10"] >= 0.95)
            add(f"faiss d={d} {nf}: latency batch 1", f["batch1_ms"], "ms/query", "< 10",
                f["batch1_ms"] < 10)
            add(f"faiss d={d} {nf}: latency batch 256", f["batch256_ms_per_query"], "ms/query", "-",
                None)
            add(f"faiss d={d} {nf}: build time (training and adding)", f["build_s"], "s", "-", None)
            add(f"faiss d={d} {nf}: peak memory", f["peak_rss_gb"], "GB", "<= 8",
                f["peak_rss_gb"] <= 8)
            add(f"faiss d={d}: batch-1 speed-up over exact per item searched",
                (e["batch1_ms"] / e["n"]) / (f["batch1_ms"] / f["n"]), "x", "-", None)
        if "milvus" in r:
            m = r["milvus"]
            nm = f"{m['n'] // 1000}K"
            add(f"milvus lite d={d} {nm}: recall@10 vs exact", m["recall@10"], "", "reported", None)
            add(f"milvus lite d={d} {nm}: latency batch 1", m["batch1_ms"], "ms/query", "reported", None)
            if "wrapper" in m:
                w = m["wrapper"]
                add(f"milvus lite d={d} {nm}: batch 1 of pymilvus's own search call",
                    w["client_batch1_ms"], "ms/query", "reported", None)
                add(f"milvus lite d={d} {nm}: Index.search over pymilvus's call, batch 1",
                    w["index_batch1_ms"] / w["client_batch1_ms"], "x", "reported", None)
            add(f"milvus lite d={d} {nm}: latency batch 256", m["batch256_ms_per_query"], "ms/query",
                "reported", None)
            add(f"milvus lite d={d} {nm}: build time", m["build_s"], "s", "reported", None)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="20K exact, 100K FAISS, 20K Milvus")
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    ap.add_argument("--exact-n", type=int)
    ap.add_argument("--faiss-n", type=int, help="0: no FAISS")
    ap.add_argument("--milvus-n", type=int)
    ap.add_argument("--queries", type=int, default=1024, help="held-out queries (recall, batch 256)")
    ap.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-memory", default="8G", help="memory budget of the FAISS index choice")
    ap.add_argument("--tmp", default=None, help="where the FAISS index is saved for its size")
    args = ap.parse_args()
    big = (20_000, 100_000, 20_000) if args.quick else (100_000, 1_000_000, 100_000)
    args.exact_n = args.exact_n or big[0]
    args.faiss_n = big[1] if args.faiss_n is None else args.faiss_n
    args.milvus_n = big[2] if args.milvus_n is None else args.milvus_n

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    results: dict[str, Any] = {
        "threads": args.threads, "cpu_count": os.cpu_count(), "queries": args.queries,
        "sizes": {"exact": args.exact_n, "faiss": args.faiss_n, "milvus": args.milvus_n},
        "faiss_version": faiss.__version__, "torch_version": torch.__version__, "dims": {},
    }
    t0 = time.perf_counter()
    for d in args.dims:
        results["dims"][str(d)] = run_dim(d, args, lambda m: print(m, flush=True))
        if args.json:  # what is finished survives an interrupted run
            with open(args.json, "w") as f:
                json.dump({**results, "partial": True}, f, indent=2)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["checks"] = checks(results, args)
    emit(results, args.json)


if __name__ == "__main__":
    main()
