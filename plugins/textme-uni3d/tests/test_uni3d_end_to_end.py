"""End to end through textme-sdk with the tiny Uni3D and the real MiniLM anchor
(:func:`textme_sdk.testing.check_encoder`): compute_offsets -> train_projector ->
TextME.add_modality -> embed files -> save_pretrained -> from_pretrained (the encoder rebuilt
from the bundle's config) -> the same embeddings."""

from __future__ import annotations

import json

import numpy as np
from uni3d_testdata import TINY_ARCH

import textme_sdk as tm
from textme_sdk.errors import MissingInputFileError
from textme_sdk.testing import check_encoder

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


def test_trains_end_to_end_and_reloads_from_the_bundle(tiny_clip, clip_weights, uni3d_checkpoint,
                                                       tmp_path):
    enc = tm.get_encoder("uni3d", model="tiny", arch=TINY_ARCH, checkpoint=str(uni3d_checkpoint),
                         clip_model=tiny_clip, clip_pretrained=str(clip_weights[1]), device="cpu")
    assert enc.embedding_dim == 32 and not enc.is_loaded
    # unpaired: the captions do not describe these files one to one
    result = check_encoder(enc, captions(40), write_shapes(tmp_path, 24), tmp_path, atol=1e-6,
                           bad_inputs=[(tmp_path / "gone.ply", MissingInputFileError)])
    stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["3d"]
    assert stored["encoder"] == {
        "model": "tiny", "checkpoint": str(uni3d_checkpoint), "arch": TINY_ARCH,
        "clip_model": tiny_clip, "clip_pretrained": str(clip_weights[1]), "random_init": False,
        "sampling": "random", "seed": 0, "embedding_dim": 32}
    # a config stored by earlier versions (defaults left out) rebuilds the same encoder
    old = {key: stored["encoder"][key] for key in ("model", "checkpoint", "arch", "clip_model",
                                                   "clip_pretrained", "embedding_dim")}
    assert tm.get_encoder("uni3d", **old).config() == stored["encoder"]
