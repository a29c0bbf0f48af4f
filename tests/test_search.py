"""textme_sdk.Index: exact / FAISS / Milvus Lite agree, persist, refuse what they must."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import textme_sdk as tm
from textme_sdk.search import EmptyIndexError, ForeignBundleError, IndexFormatError, Query
from textme_sdk.search.backends import (
    HNSW_LIMIT,
    TWO_LEVEL_MIN_NLIST,
    FaissBackend,
    choose_faiss_key,
)

pytest.importorskip("faiss")


def clustered(n, d=32, seed=0, clusters=20):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


X = clustered(2000)
Q = clustered(25, seed=1)
IDS = [f"item-{i}" for i in range(len(X))]

# exhaustive settings: every backend must then return exactly the exact backend's hits
EXHAUSTIVE = {
    "faiss-flat": ("faiss", {"index_key": "Flat"}),
    "faiss-ivf": ("faiss", {"index_key": "IVF16,Flat", "nprobe": 16}),
    "faiss-hnsw": ("faiss", {"index_key": "HNSW16", "ef_search": 2000}),
    "milvus": ("milvus", {}),
}


def recall(ref, got):
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ref.ids, got.ids)]))


@pytest.fixture(scope="module")
def exact():
    return tm.Index.from_embeddings(X, ids=IDS, backend="exact")


@pytest.mark.parametrize("name", list(EXHAUSTIVE))
def test_backends_agree_with_exact_search_under_exhaustive_parameters(exact, name):
    backend, opts = EXHAUSTIVE[name]
    index = tm.Index.from_embeddings(X, ids=IDS, backend=backend, **opts)
    ref, got = exact.search(Q, k=10), index.search(Q, k=10)
    assert recall(ref, got) == 1.0
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    index.close()


def test_auto_backend_and_faiss_key_choice():
    small = tm.Index.from_embeddings(X[:100])
    assert small.backend == "exact"
    assert choose_faiss_key(500, 384) == "Flat"
    assert choose_faiss_key(50_000, 384).startswith("HNSW")
    key = choose_faiss_key(HNSW_LIMIT * 5, 1024, max_memory="8G")
    assert key.startswith("IVF") and key.endswith(",Flat") and int(key[3:key.index(",")]) <= 4096
    assert "PQ" in choose_faiss_key(HNSW_LIMIT * 5, 1024, max_memory="1G")  # does not fit: quantised


def test_single_query_scan_split_between_threads_matches_the_batched_scan(monkeypatch):
    from textme_sdk.search import backends

    monkeypatch.setattr(backends, "SPLIT_MIN_ROWS", 300)  # split even this small matrix
    x = torch.from_numpy(X)
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2, 3):
            torch.set_num_threads(n_threads)
            got = backends.matvec(x, torch.from_numpy(Q[0]))
            np.testing.assert_allclose(got.numpy(), X @ Q[0], atol=1e-5)
        torch.set_num_threads(2)
        index = tm.Index.from_embeddings(X, ids=IDS, backend="exact")
        index.remove(IDS[::3])
        batched = index.search(Q, k=10, filter_modality="embedding")  # the chunked matmul path
        for i in range(len(Q)):
            one = index.search(Q[i], k=10)
            assert one.ids[0] == batched.ids[i]
            np.testing.assert_allclose(one.scores[0], batched.scores[i], atol=1e-5)
            assert not set(one.ids[0]) & set(IDS[::3])
    finally:
        torch.set_num_threads(threads)


def test_many_list_ivf_trains_by_two_level_kmeans_and_stays_exhaustive(monkeypatch):
    import faiss.contrib.clustering as fcc

    calls = []
    real = fcc.two_level_clustering

    import faiss

    def spy(xt, nc1, nc2, **kw):
        calls.append((len(xt), nc1, nc2))
        assert faiss.omp_get_max_threads() == 1  # small k-means: one thread
        return real(xt, nc1, nc2, **kw)

    monkeypatch.setattr(fcc, "two_level_clustering", spy)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        two = tm.Index.from_embeddings(X, ids=IDS, backend="faiss", index_key="IVF64,Flat",
                                       two_level=True, nprobe=64)
        assert faiss.omp_get_max_threads() == 2  # restored
    finally:
        faiss.omp_set_num_threads(threads)
    assert calls == [(len(X), 8, 64)]
    quantizer = two._backend._ivf(two._backend.index).quantizer
    assert quantizer.ntotal == 64
    centroids = quantizer.reconstruct_n(0, 64)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-4)  # spherical
    exact = tm.Index.from_embeddings(X, ids=IDS, backend="exact")
    ref, got = exact.search(Q, k=10), two.search(Q, k=10)
    assert recall(ref, got) == 1.0
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    # a usual probe count finds nearly everything on clustered data
    two._backend.nprobe = 8
    assert recall(ref, two.search(Q, k=10)) >= 0.9
    # the automatic choice: two-level from TWO_LEVEL_MIN_NLIST lists on, plain k-means below
    calls.clear()
    tm.Index.from_embeddings(X, backend="faiss", index_key="IVF16,Flat")
    assert calls == []
    tm.Index.from_embeddings(X, backend="faiss", index_key=f"IVF{TWO_LEVEL_MIN_NLIST},Flat")
    assert calls == [(len(X), round(TWO_LEVEL_MIN_NLIST ** 0.5), TWO_LEVEL_MIN_NLIST)]
    assert FaissBackend(32, two_level=False).config()["two_level"] is False


@pytest.mark.parametrize("backend,opts", [("exact", {}),
                                          ("faiss", {"index_key": "IVF16,Flat", "nprobe": 16}),
                                          ("milvus", {})])
def test_modality_filter_follows_adds_removes_and_reloads(tmp_path, backend, opts):
    # the per-filter item mask is cached between queries: it must never go stale
    index = tm.Index.from_embeddings(X[:1000], ids=IDS[:1000], backend=backend, modality="image",
                                     **opts)
    index.add_embeddings(X[1000:1500], ids=IDS[1000:1500], modality="audio")
    res = index.search(Q, k=2000, filter_modality="audio")
    assert all(m == "audio" for row in res.modalities for m in row)
    assert all(len(row) == 500 for row in res.ids)
    index.add_embeddings(X[1500:], ids=IDS[1500:], modality="audio")  # after a filtered query
    res = index.search(Q, k=2000, filter_modality=["audio"])
    assert all(len(row) == 1000 for row in res.ids) and set(res.ids[0]) == set(IDS[1000:])
    index.remove(IDS[1000:1100])
    res = index.search(Q, k=2000, filter_modality="audio")
    assert all(len(row) == 900 for row in res.ids) and set(res.ids[0]) == set(IDS[1100:])
    both = index.search(Q, k=5, filter_modality=("image", "audio"))
    np.testing.assert_array_equal(both.scores, index.search(Q, k=5).scores)
    index.save(tmp_path / "idx")
    loaded = tm.Index.load(tmp_path / "idx")
    again = loaded.search(Q, k=2000, filter_modality="audio")
    assert again.ids == res.ids
    loaded.add_embeddings(X[:3], ids=["new-0", "new-1", "new-2"], modality="audio")
    assert all(len(row) == 903 for row in loaded.search(Q, k=2000, filter_modality="audio").ids)
    index.close()
    loaded.close()


@pytest.mark.parametrize("backend,opts", [("exact", {}), ("faiss", {"index_key": "IVF16,Flat"}),
                                          ("faiss", {"index_key": "HNSW16"}), ("milvus", {})])
def test_save_load_returns_identical_results(tmp_path, backend, opts):
    meta = [{"n": i} for i in range(len(X))]
    index = tm.Index.from_embeddings(X, ids=IDS, metadata=meta, backend=backend, **opts)
    index.remove(IDS[:50])
    before = index.search(Q, k=7)
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert manifest["count"] == len(X) - 50 and manifest["backend"] == backend
    assert not list(tmp_path.glob("**/*.pkl")) and not list(tmp_path.glob("**/*.pickle"))
    loaded = tm.Index.load(tmp_path / "idx")
    after = loaded.search(Q, k=7)
    assert after.ids == before.ids and after.modalities == before.modalities
    assert after.metadata == before.metadata
    np.testing.assert_array_equal(after.scores, before.scores)
    assert len(loaded) == len(index) and loaded.backend == backend
    index.close()
    loaded.close()


@pytest.mark.parametrize("backend,opts", [("exact", {}), ("faiss", {"index_key": "HNSW16"}),
                                          ("milvus", {})])
def test_removed_ids_never_come_back(tmp_path, backend, opts):
    index = tm.Index.from_embeddings(X, ids=IDS, backend=backend, **opts)
    gone = set(IDS[::2])
    assert index.remove(sorted(gone) + ["no-such-id"]) == len(gone)
    assert len(index) == len(X) - len(gone) and IDS[0] not in index
    for res in (index.search(X[::2][:50], k=20), index.search(Q, k=len(X))):
        assert not gone & {i for row in res.ids for i in row}
    index.save(tmp_path / "idx")
    index.close()
    loaded = tm.Index.load(tmp_path / "idx")
    res = loaded.search(X[::2][:50], k=20)
    assert not gone & {i for row in res.ids for i in row}
    loaded.add_embeddings(X[:1], ids=[IDS[0]])  # a removed id may be reused for a new item
    assert loaded.search(X[:1], k=1).ids == [[IDS[0]]]
    loaded.close()


def test_k_larger_than_the_index_returns_every_item(exact):
    res = exact.search(Q[:3], k=len(X) + 50)
    assert res.scores.shape == (3, len(X)) and all(len(r) == len(X) for r in res.ids)
    assert np.all(np.diff(res.scores, axis=1) <= 1e-6)  # best first


def test_typed_errors_for_bad_queries_and_embeddings(exact):
    with pytest.raises(tm.DimensionMismatchError, match="32-d"):
        exact.search(np.ones((1, 16), np.float32))
    bad = Q.copy()
    bad[2, 3] = np.nan
    with pytest.raises(tm.InvalidEmbeddingError, match=r"NaN/inf.*\[2\]"):
        exact.search(bad)
    with pytest.raises(tm.InvalidEmbeddingError, match="NaN"):
        tm.Index.from_embeddings(np.where(np.eye(4, 32) > 0, np.nan, 1.0))
    with pytest.raises(tm.InvalidInputError, match="positive integer"):
        exact.search(Q, k=0)
    with pytest.raises(tm.InvalidInputError, match="unique"):
        exact.add_embeddings(X[:1], ids=[IDS[5]])
    with pytest.raises(tm.DimensionMismatchError):
        exact.add_embeddings(np.ones((2, 8)))
    empty = tm.Index(32)
    with pytest.raises(EmptyIndexError):
        empty.search(Q)
    one = tm.Index.from_embeddings(X[:2], ids=["a", "b"])
    one.remove(["a", "b"])
    with pytest.raises(EmptyIndexError):
        one.search(Q)
    with pytest.raises(tm.InvalidInputError, match="unknown backend"):
        tm.Index(32, backend="annoy")
    assert isinstance(EmptyIndexError("x"), tm.TextMEError)


def test_load_refuses_damage_and_non_index_folders(tmp_path, exact):
    with pytest.raises(tm.MissingFileError):
        tm.Index.load(tmp_path)
    exact.save(tmp_path / "idx")
    with open(tmp_path / "idx" / "vectors.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(IndexFormatError, match="hash"):
        tm.Index.load(tmp_path / "idx")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(tm.OutputExistsError):
        exact.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failed_save_leaves_the_previous_index(tmp_path, monkeypatch):
    first = tm.Index.from_embeddings(X[:100], ids=IDS[:100])
    first.save(tmp_path / "idx")
    second = tm.Index.from_embeddings(X, ids=IDS)

    def crash(folder):
        (folder / "vectors.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(second._backend, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path / "idx")
    assert sorted(os.listdir(tmp_path)) == ["idx"]  # no half-written sibling
    assert len(tm.Index.load(tmp_path / "idx")) == 100
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["idx"]  # no index at all, nothing half-written


KILL_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, textme_sdk as tm
    x = np.random.default_rng(0).standard_normal((20000, 64)).astype(np.float32)
    index = tm.Index.from_embeddings(x, backend="exact")
    print("ready", flush=True)
    while True:
        index.save(sys.argv[1])
""")


def test_killed_saves_leave_the_old_or_the_new_index(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(KILL_SCRIPT)
    dest = tmp_path / "out" / "idx"
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(dest)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if dest.exists():  # either a complete index or none at all
            assert len(tm.Index.load(dest)) == 20000
    tm.Index.from_embeddings(X[:10]).save(dest)  # the next save cleans up what the kills left
    assert os.listdir(dest.parent) == ["idx"]


@pytest.fixture
def bundle(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    torch.manual_seed(0)
    offsets = tm.Offsets.from_embeddings(torch.randn(8, 16), torch.randn(8, 16))
    model = tm.TextME(minilm)
    model.add_modality(enc, tm.Projector(16, 384), offsets)
    model.add_modality(tm.get_encoder("gapdemo", dim=16, seed=1), tm.Projector(16, 384), offsets,
                       name="other")
    return model


ITEMS = [f"{c}#{i}" for c in ("dog", "cat", "car", "tree") for i in range(5)]


def test_build_mixed_modalities_and_query_by_text_item_and_composition(bundle, tmp_path):
    index = tm.Index.build(bundle, ITEMS, "gapdemo", metadata=[{"c": s[:3]} for s in ITEMS],
                           cache=tmp_path / "cache")
    index.add(ITEMS[:10], "other", model=bundle, ids=[f"o-{s}" for s in ITEMS[:10]])
    assert index.modalities == {"gapdemo": 20, "other": 10} and "dog#0" in index
    hits = index.search(["a dog"], k=5)
    assert hits.scores.shape == (1, 5) and set(hits.modalities[0]) <= {"gapdemo", "other"}
    only = index.search(["a dog"], k=50, filter_modality="other")
    assert only.scores.shape == (1, 10) and set(only.modalities[0]) == {"other"}
    item = index.search(["dog#0"], modality="gapdemo", k=1, filter_modality="gapdemo")
    assert item.ids == [["dog#0"]] and item.metadata == [[{"c": "dog"}]]
    np.testing.assert_allclose(item.scores, 1.0, atol=1e-5)
    # composed: the item's own embedding plus a text, weighted; equals the normalised sum
    composed = index.search(Query([("dog#0", "gapdemo", 1.0), ("a car", "text", 0.5)]), k=3)
    e = bundle.embed(["dog#0"], modality="gapdemo") + 0.5 * bundle.embed(["a car"], role="query")
    assert composed.ids == index.search(e, k=3).ids


def test_build_is_resumable_through_the_embedding_cache(bundle, tmp_path, monkeypatch):
    tm.Index.build(bundle, ITEMS, "gapdemo", cache=tmp_path / "cache")
    enc = bundle.entry("gapdemo").encoder
    calls = []
    monkeypatch.setattr(enc, "encode_modal", lambda *a, **k: calls.append(1))
    again = tm.Index.build(bundle, ITEMS, "gapdemo", cache=tmp_path / "cache")
    assert not calls and len(again) == len(ITEMS)


def test_queries_from_another_bundle_are_refused(bundle, minilm, tmp_path):
    index = tm.Index.build(bundle, ITEMS, "gapdemo", cache=False)
    other = tm.TextME(minilm).add_modality(tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384),
                                          bundle.entry("gapdemo").offsets)
    fp_index, fp_other = tm.bundle_fingerprint(bundle)["id"], tm.bundle_fingerprint(other)["id"]
    assert fp_index != fp_other
    with pytest.raises(ForeignBundleError, match=f"{fp_index}.*{fp_other}"):
        index.search(["dog#1"], modality="gapdemo", model=other)
    with pytest.raises(ForeignBundleError):
        index.add(["dog#9"], "gapdemo", model=other)
    index.save(tmp_path / "idx")
    with pytest.raises(ForeignBundleError, match="projector"):
        tm.Index.load(tmp_path / "idx", model=other)
    # the same weights saved and reloaded are the same bundle
    bundle.save_pretrained(tmp_path / "bundle")
    again = tm.TextME.from_pretrained(tmp_path / "bundle", anchor=minilm)
    assert tm.bundle_fingerprint(again)["id"] == fp_index
    assert tm.Index.load(tmp_path / "idx", model=again).search(["a dog"], k=2).scores.shape == (1, 2)


def test_the_index_reloads_its_bundle_for_raw_queries(bundle, minilm, tmp_path):
    bundle.save_pretrained(tmp_path / "bundle")
    model = tm.TextME.from_pretrained(tmp_path / "bundle", anchor=minilm)
    tm.Index.build(model, ITEMS, "gapdemo", cache=False).save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert manifest["fingerprint"]["source"] == str(tmp_path / "bundle")
    loaded = tm.Index.load(tmp_path / "idx")
    assert loaded.search(["cat#2"], modality="gapdemo", k=1).ids == [["cat#2"]]
    bare = tm.Index.from_embeddings(X)
    with pytest.raises(tm.InvalidInputError, match="model="):
        bare.search(["a dog"])


def test_importing_the_sdk_does_not_import_search_libraries():
    code = ("import sys, textme_sdk; print(sorted(m for m in ('faiss', 'pymilvus', 'autofaiss') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
