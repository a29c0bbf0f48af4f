"""End to end through textme-sdk with the tiny Uni3D and the real MiniLM anchor:
compute_offsets -> train_projector -> TextME.add_modality -> embed files -> save_pretrained ->
from_pretrained (the encoder rebuilt from the bundle's config) -> the same embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from uni3d_testdata import TINY_ARCH

import textme_sdk as tm
from textme_sdk.errors import EmptyInputError, InvalidInputError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220),
           "yellow": (230, 220, 40)}
SHAPES = ("sphere", "box", "cylinder", "cone")


def make_mesh(shape: str):
    import trimesh

    if shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=2)
    if shape == "box":
        return trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    if shape == "cylinder":
        return trimesh.creation.cylinder(radius=0.3, height=1.2, sections=24)
    return trimesh.creation.cone(radius=0.5, height=1.0, sections=24)


def write_shapes(folder, n: int) -> list:
    """``n`` coloured shapes as .ply point clouds, .obj meshes, .npy and .npz arrays."""
    import trimesh

    paths = []
    names = list(COLOURS)
    for i in range(n):
        colour, shape = names[i % len(names)], SHAPES[(i // len(names)) % len(SHAPES)]
        mesh = make_mesh(shape)
        rgb = np.array(COLOURS[colour], np.uint8)
        mesh.visual.vertex_colors = np.tile(np.append(rgb, 255), (len(mesh.vertices), 1))
        kind = ("ply", "obj", "npy", "npz")[i % 4]
        path = folder / f"shape{i:02d}.{kind}"
        if kind == "obj":
            mesh.export(path)
        else:
            pts = trimesh.sample.sample_surface(mesh, 300 + 50 * (i % 3), seed=i)[0]
            pts = pts * (1 + 0.1 * (i % 5))
            if kind == "ply":
                rgba = np.tile(np.append(rgb, 255), (len(pts), 1))
                trimesh.PointCloud(pts, colors=rgba).export(path)
            elif kind == "npy":
                np.save(path, np.concatenate([pts, np.tile(rgb / 255.0, (len(pts), 1))], 1))
            else:
                np.savez(path, xyz=pts, rgb=np.tile(rgb, (len(pts), 1)))
        paths.append(path)
    return paths


def captions(n: int) -> list[str]:
    places = ("on a table", "in a 3D scan", "seen from above", "in a room")
    out = [f"a {c} {s} {p}" for p in places for s in SHAPES for c in COLOURS]
    return out[:n]


@pytest.fixture(scope="module")
def anchor():
    """The real all-MiniLM-L6-v2 anchor (384-d, offline)."""
    return tm.get_anchor("minilm")


def test_trains_end_to_end_and_reloads_from_the_bundle(tiny_clip, clip_weights, uni3d_checkpoint,
                                                       anchor, tmp_path):
    enc = tm.get_encoder("uni3d", model="tiny", arch=TINY_ARCH, checkpoint=str(uni3d_checkpoint),
                         clip_model=tiny_clip, clip_pretrained=str(clip_weights[1]), device="cpu")
    assert enc.embedding_dim == 32 and not enc.is_loaded
    files = write_shapes(tmp_path, 24)
    texts = captions(40)  # unpaired: the captions do not describe these files one to one
    offsets = tm.compute_offsets(enc, texts, files)
    assert offsets.n_text == 40 and offsets.n_modal == 24 and offsets.dim == 32
    cfg = tm.TrainConfig(epochs=2, batch_size=16, seed=0)
    projector = tm.train_projector(enc, anchor, texts, offsets, cfg, cache=tmp_path / "cache")
    model = tm.TextME(anchor, device="cpu").add_modality(enc, projector, offsets)

    emb = model.embed(files[:8], modality="3d")
    assert emb.shape == (8, 384) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert model.embed(files[0], modality="3d").shape == (384,)

    bundle = model.save_pretrained(tmp_path / "bundle")
    stored = json.loads((bundle / "config.json").read_text())["modalities"]["3d"]["encoder"]
    assert stored == enc.config()
    assert stored["checkpoint"] == str(uni3d_checkpoint) and stored["arch"] == TINY_ARCH
    loaded = tm.TextME.from_pretrained(bundle, device="cpu")
    reloaded = loaded.entry("3d").encoder
    assert reloaded is not enc and not reloaded.is_loaded  # a fresh encoder, built from config
    reloaded.load("cpu")
    np.testing.assert_allclose(loaded.embed(files[:8], modality="3d"), emb, atol=1e-6)
    np.testing.assert_allclose(
        loaded.embed(["a red sphere"], modality="text", via="3d"),
        model.embed(["a red sphere"], modality="text", via="3d"), atol=1e-6)

    # bad inputs surface as typed errors through the top-level API too
    with pytest.raises(EmptyInputError):
        loaded.embed([], modality="3d")
    with pytest.raises(InvalidInputError, match="not found"):
        loaded.embed([tmp_path / "gone.ply"], modality="3d")
