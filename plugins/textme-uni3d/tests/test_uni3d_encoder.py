"""The ``uni3d`` encoder: registration, both branches (text equal to open_clip's own
``encode_text``), preprocessing (normalisation, colours, deterministic resampling, files written
here: .ply, .npy, .npz, .obj), and typed errors for bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from textme_uni3d import CheckpointError, Uni3DEncoder, Uni3DLoadError
from textme_uni3d.points import (
    DEFAULT_RGB,
    PointParams,
    pc_normalize,
    read_points,
    resample,
    to_model_input,
)
from uni3d_testdata import TINY_ARCH, TINY_CLIP_ROOT

from textme_sdk import errors as core_errors
from textme_sdk.testing import check_registration
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)

N = TINY_ARCH["npoints"]  # 256


def cloud(n: int = N, seed: int = 0, rgb: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 7.0]
    return np.concatenate([xyz, rng.random((n, 3))], 1) if rgb else xyz


# -- registration and configuration ----------------------------------------------------------
def test_registered_without_importing_heavy_libraries():
    info = check_registration("uni3d", heavy=("timm", "open_clip", "trimesh"))
    assert info["modality"] == "3d" and info["metadata"]["extra"] == "3d"
    assert "MIT" in info["metadata"]["license"] and "not stated" in info["metadata"]["license"]
    assert (info["class"], info["embedding_dim"], info["config"]["model"]) == (
        "Uni3DEncoder", 1024, "uni3d-g")


def test_construction_is_cheap_and_config_round_trips(tmp_path):
    enc = Uni3DEncoder()
    assert not enc.is_loaded and enc.embedding_dim == 1024 and enc.modality == "3d"
    cfg = enc.config()
    assert cfg == {"model": "uni3d-g", "clip_model": "EVA02-E-14-plus",
                   "clip_pretrained": "laion2b_s9b_b144k", "random_init": False,
                   "sampling": "random", "seed": 0, "embedding_dim": 1024}
    assert "micro_batch" not in Uni3DEncoder(micro_batch=2, cache_dir=str(tmp_path)).config()
    assert Uni3DEncoder(**cfg).config() == cfg
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    custom = Uni3DEncoder("base", checkpoint=str(ckpt), sampling="fps", seed=3).config()
    assert custom["checkpoint"] == str(ckpt) and custom["sampling"] == "fps" and custom["seed"] == 3
    json.dumps(custom)
    with pytest.raises(InvalidInputError, match="without released weights.*checkpoint="):
        Uni3DEncoder("base")
    with pytest.raises(InvalidInputError, match="sampling must be one of"):
        Uni3DEncoder("uni3d-b", sampling="nearest")
    with pytest.raises(InvalidInputError, match="clip_pretrained is needed"):
        Uni3DEncoder("uni3d-b", clip_pretrained=None)


# -- both branches ---------------------------------------------------------------------------
def test_shapes_normalisation_and_determinism(tiny_encoder):
    text = tiny_encoder.encode_text(["a wooden chair", "a red mug", "x"])
    assert text.shape == (3, 32) and text.dtype == torch.float32
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    items = [cloud(seed=1), cloud(seed=2, rgb=False), cloud(1000, seed=3), cloud(40, seed=4)]
    out = tiny_encoder.encode_modal(items)
    assert out.shape == (4, 32) and torch.isfinite(out).all()
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-5)
    again = tiny_encoder.encode_modal(items[::-1], batch_size=1).flip(0)
    assert torch.allclose(again, out, atol=1e-5)  # no dependence on batch or order
    tiny_encoder.micro_batch = 1
    try:
        assert torch.allclose(tiny_encoder.encode_modal(items), out, atol=1e-5)
    finally:
        tiny_encoder.micro_batch = 8
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_text_tower_equals_open_clips_encode_text(tiny_encoder, clip_weights):
    model, _ = clip_weights
    import open_clip

    texts = ["a wooden chair", "an airplane with two engines", "a potted plant " * 30]
    tokens = open_clip.get_tokenizer("uni3d-test-tiny-clip")(texts)
    assert tokens.shape == (3, 77)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    assert torch.allclose(tiny_encoder.encode_text(texts), expected, atol=1e-6)


def test_classic_clip_checkpoint_layout_loads(tiny_clip, uni3d_checkpoint, tmp_path):
    """Root-level text keys (non custom-text open_clip models) load into the same tower."""
    import open_clip

    torch.manual_seed(4)
    model = open_clip.create_model(TINY_CLIP_ROOT, pretrained=None).eval()
    path = tmp_path / "root.bin"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    enc = Uni3DEncoder("tiny", arch=TINY_ARCH, checkpoint=str(uni3d_checkpoint),
                       clip_model=TINY_CLIP_ROOT, clip_pretrained=str(path), device="cpu")
    tokens = open_clip.get_tokenizer(TINY_CLIP_ROOT)(["a chair"])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    assert torch.allclose(enc.encode_text(["a chair"]), expected, atol=1e-6)


def test_text_tower_checkpoint_problems(tiny_clip, clip_weights, uni3d_checkpoint, tmp_path):
    model, _ = clip_weights
    partial = {k: v for k, v in model.state_dict().items() if "ln_final" not in k}
    torch.save(partial, tmp_path / "partial.bin")

    def load(clip_pretrained, clip_model=tiny_clip):
        Uni3DEncoder("tiny", arch=TINY_ARCH, checkpoint=str(uni3d_checkpoint),
                     clip_model=clip_model, clip_pretrained=clip_pretrained).load("cpu")

    with pytest.raises(CheckpointError, match="text tower.*2 missing.*ln_final"):
        load(str(tmp_path / "partial.bin"))
    with pytest.raises(Uni3DLoadError, match="neither a file nor a pretrained tag"):
        load("no-such-tag")
    with pytest.raises(Uni3DLoadError, match="unknown open_clip model"):
        load(str(tmp_path / "partial.bin"), clip_model="no-such-clip")


def test_unavailable_text_weights_fail_fast_offline(monkeypatch, tmp_path, tiny_clip,
                                                    uni3d_checkpoint):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    enc = Uni3DEncoder("tiny", arch={**TINY_ARCH, "embed_dim": 32},
                       checkpoint=str(uni3d_checkpoint), clip_model="EVA02-E-14-plus",
                       cache_dir=str(tmp_path))
    with pytest.raises(Uni3DLoadError, match="EVA02-E-14-plus:laion2b_s9b_b144k.*offline"):
        enc.load("cpu")


def test_requested_dimension_is_checked(tiny_clip):
    with pytest.raises(EncoderLoadError, match="produces 32-d embeddings, but embedding_dim=64"):
        Uni3DEncoder("tiny", arch=TINY_ARCH, clip_model=tiny_clip, random_init=True,
                     embedding_dim=64).load("cpu")
    assert issubclass(Uni3DLoadError, EncoderLoadError)
    assert issubclass(CheckpointError, Uni3DLoadError)
    assert issubclass(CheckpointError, core_errors.CheckpointError)
    with pytest.raises(Uni3DLoadError, match="text tower .* 32-d .* point encoder 48-d"):
        Uni3DEncoder("tiny", arch={**TINY_ARCH, "embed_dim": 48}, clip_model=tiny_clip,
                     random_init=True).load("cpu")


# -- preprocessing -----------------------------------------------------------------------------
def test_normalisation_and_default_colour():
    params = PointParams(N)
    pts = cloud(rgb=False)
    x = to_model_input(pts, params)
    assert x.shape == (N, 6) and x.dtype == torch.float32
    xyz = x[:, :3].double()
    assert torch.allclose(xyz.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert abs(float(xyz.norm(dim=1).max()) - 1.0) < 1e-6
    assert torch.all(x[:, 3:] == torch.tensor(DEFAULT_RGB))
    # upstream pc_normalize: minus centroid, divided by the largest norm
    centred = pts - pts.mean(0)
    np.testing.assert_allclose(pc_normalize(pts), centred / np.linalg.norm(centred, axis=1).max())
    # scale and translation do not matter
    assert torch.allclose(to_model_input(pts * 37.0 - 5.0, params), x, atol=1e-6)


def test_colours_float_uint8_and_rgba():
    params = PointParams(N)
    pts = cloud()
    as_uint8 = np.rint(pts[:, 3:] * 255).astype(np.uint8)
    x = to_model_input(pts, params)
    assert torch.allclose(x[:, 3:], torch.from_numpy(pts[:, 3:]).float())
    y = to_model_input({"xyz": pts[:, :3], "rgb": as_uint8}, params)
    assert torch.allclose(y[:, 3:], torch.from_numpy(as_uint8 / 255.0).float())
    rgba = np.concatenate([as_uint8, np.full((N, 1), 255, np.uint8)], 1)
    assert torch.equal(to_model_input({"xyz": pts[:, :3], "colors": rgba}, params), y)
    assert torch.equal(to_model_input(torch.from_numpy(pts), params), x)


def test_resampling_is_deterministic_and_keeps_real_points():
    params = PointParams(N, seed=0)
    big = cloud(1000, seed=7)
    xyz, rgb = resample(big[:, :3], big[:, 3:], params)
    assert xyz.shape == (N, 3) and rgb.shape == (N, 3)
    rows = {tuple(r) for r in big}
    assert all(tuple(r) in rows for r in np.concatenate([xyz, rgb], 1))
    assert len({tuple(r) for r in xyz}) == N  # without replacement
    again, _ = resample(big[:, :3], big[:, 3:], params)
    np.testing.assert_array_equal(xyz, again)
    other, _ = resample(big[:, :3], None, PointParams(N, seed=1))
    assert not np.array_equal(xyz, other)
    small = cloud(40, seed=8, rgb=False)
    padded, _ = resample(small, None, params)
    assert padded.shape == (N, 3) and {tuple(r) for r in padded} == {tuple(r) for r in small}
    np.testing.assert_array_equal(padded[:40], small)  # every point kept, in order
    exact = cloud(N, seed=9, rgb=False)
    assert resample(exact, None, params)[0] is exact  # already npoints: untouched


def test_fps_resampling_spreads_points():
    params = PointParams(64, sampling="fps")
    rng = np.random.default_rng(0)
    dense = np.concatenate([rng.normal(scale=0.01, size=(900, 3)), rng.normal(size=(100, 3)) + 5])
    fps, _ = resample(dense, None, params)
    rand, _ = resample(dense, None, PointParams(64))
    assert (fps[:, 0] > 2).sum() > (rand[:, 0] > 2).sum()  # FPS reaches the sparse cluster
    np.testing.assert_array_equal(fps[0], dense[0])  # starts at index 0


def write_clouds(folder) -> dict[str, object]:
    """The same coloured cloud as .npy, .npz (two forms), .ply; a mesh as .obj and .ply."""
    import trimesh

    pts = cloud(seed=11).astype(np.float32)
    colours = np.rint(pts[:, 3:] * 255).astype(np.uint8)
    np.save(folder / "c.npy", pts)
    np.savez(folder / "c.npz", xyz=pts[:, :3], rgb=pts[:, 3:])
    np.savez(folder / "single.npz", pts)
    trimesh.PointCloud(pts[:, :3], colors=colours).export(folder / "c.ply")
    trimesh.PointCloud(pts[:, :3]).export(folder / "grey.ply")
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.export(folder / "box.obj")
    red = trimesh.creation.icosphere(subdivisions=2)
    red.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(red.vertices), 1)).astype(np.uint8)
    red.export(folder / "red.ply")
    return {"pts": pts, "colours": colours}


def test_files_written_here_are_read_like_arrays(tmp_path):
    data = write_clouds(tmp_path)
    pts, colours = data["pts"], data["colours"]
    params = PointParams(N)
    reference = to_model_input(pts, params)
    for name in ("c.npy", "c.npz", "single.npz"):
        assert torch.equal(to_model_input(tmp_path / name, params), reference), name
    ply = to_model_input(str(tmp_path / "c.ply"), params)
    assert torch.allclose(ply[:, :3], reference[:, :3], atol=1e-6)
    assert torch.allclose(ply[:, 3:], torch.from_numpy(colours / 255.0).float())
    grey = to_model_input(tmp_path / "grey.ply", params)
    assert torch.allclose(grey[:, :3], reference[:, :3], atol=1e-6)
    assert torch.all(grey[:, 3:] == torch.tensor(DEFAULT_RGB))


def test_meshes_are_sampled_on_the_surface_with_their_colour(tmp_path):
    write_clouds(tmp_path)
    params = PointParams(N, seed=0)
    xyz, rgb = read_points(tmp_path / "box.obj", params)
    assert xyz.shape == (N, 3) and rgb is None  # no colour in the file: 0.4 later
    half = np.array([1.0, 0.5, 0.25])
    on_face = np.isclose(np.abs(xyz), half, atol=1e-6).any(axis=1)
    assert on_face.all() and (np.abs(xyz) <= half + 1e-6).all()
    again, _ = read_points(tmp_path / "box.obj", params)
    np.testing.assert_array_equal(xyz, again)  # seeded surface sampling
    sphere, colour = read_points(tmp_path / "red.ply", params)
    assert sphere.shape == (N, 3)
    np.testing.assert_allclose(colour, np.tile([1.0, 0.0, 0.0], (N, 1)))
    x = to_model_input(tmp_path / "box.obj", params)
    assert torch.all(x[:, 3:] == torch.tensor(DEFAULT_RGB))


def test_encoder_reads_files(tiny_encoder, tmp_path):
    write_clouds(tmp_path)
    names = ["c.npy", "c.npz", "c.ply", "grey.ply", "box.obj", "red.ply"]
    out = tiny_encoder.encode_modal([tmp_path / n for n in names])
    assert out.shape == (6, 32) and torch.isfinite(out).all()
    assert torch.allclose(out[0], out[1], atol=1e-6)  # the same points


# -- bad inputs ----------------------------------------------------------------------------------
def test_bad_inputs_raise_typed_errors(tiny_encoder, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "pts.xyz").write_text("0 0 0\n")
    (tmp_path / "broken.ply").write_bytes(b"ply\nformat nonsense\n")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "objects.npy", np.array([{"xyz": np.zeros((3, 3))}], dtype=object),
            allow_pickle=True)
    np.savez(tmp_path / "nokeys.npz", a=np.zeros((4, 3)), b=np.zeros(4))
    np.savez(tmp_path / "objects.npz", xyz=np.array([None, 1], dtype=object))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated zip")
    flat = cloud(rgb=False)
    cases = [
        ("cloud.ply", InvalidInputError, "wrap it in a list"),
        (42, InvalidInputError, "expects a list"),
        ([], EmptyInputError, "no inputs"),
        ([42], InvalidInputError, "cannot read a point cloud from a int"),
        ([None], InvalidInputError, "from a NoneType"),
        ([b"ply"], InvalidInputError, "from a bytes"),
        ([tmp_path / "missing.ply"], MissingInputFileError, "not found.*check the path"),
        ([folder], InvalidInputError, "is a folder.*ply"),
        ([tmp_path / "pts.xyz"], InvalidInputError, "cannot read .xyz files"),
        ([tmp_path / "broken.ply"], InvalidInputError, "could not read .*corrupt"),
        ([tmp_path / "broken.npy"], InvalidInputError, "could not read .* numpy"),
        ([tmp_path / "objects.npy"], InvalidInputError, "pickled Python object.*allow_pickle"),
        ([tmp_path / "nokeys.npz"], InvalidInputError, "no coordinates.*'xyz'"),
        ([tmp_path / "objects.npz"], InvalidInputError, "pickled Python object"),
        ([tmp_path / "broken.npz"], InvalidInputError, "could not read .* numpy.*corrupt"),
        ([np.zeros((10, 4))], InvalidInputError, r"N x 3 .* or N x 6 .*\(10, 4\)"),
        ([np.zeros((3, 50))], InvalidInputError, r"channels first\? .*arr\.T"),
        ([np.zeros((2, 50, 3))], InvalidInputError, "a batch.*list"),
        ([np.zeros((0, 3))], InvalidInputError, "no points"),
        ([np.ones((20, 3))], InvalidInputError, "all points .* coincide"),
        ([np.full((20, 3), np.nan)], InvalidInputError, "NaN/inf coordinates"),
        ([np.concatenate([flat, np.full((N, 3), 200.0)], 1)], InvalidInputError,
         r"\[0, 1\].*divide 0..255"),
        ([np.concatenate([flat, -np.ones((N, 3))], 1)], InvalidInputError, "look like normals"),
        ([np.zeros((10, 3), dtype=bool)], InvalidInputError, "unsupported dtype bool"),
        ([{"points": flat, "rgb": np.zeros((5, 3))}], InvalidInputError, "N = 256"),
        ([{"normals": flat}], InvalidInputError, "no coordinates"),
    ]
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            tiny_encoder.encode_modal(inputs)
    import trimesh

    flat_mesh = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2]])
    flat_mesh.export(tmp_path / "flat.obj")
    with pytest.raises(InvalidInputError, match="zero surface area"):
        tiny_encoder.encode_modal([tmp_path / "flat.obj"])
    assert tiny_encoder.encode_modal([flat]).shape == (1, 32)  # good input next to them works
