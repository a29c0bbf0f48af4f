"""The Uni3D port itself: FPS against a sequential loop and a block-reduction model of the
pointnet2_ops kernel (equal without ties, documented differences with ties), kNN
grouping, the forward pass against a literal re-statement of upstream's steps, the key layouts
of every released size (meta device) against a fixture derived from the upstream source, the
EVA02-E-14-plus text tower layout, and strict checkpoint loading in upstream's layout."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from textme_uni3d import CheckpointError, Uni3DEncoder, Uni3DLoadError
from textme_uni3d.arch import RELEASED, SIZES, resolve_model
from textme_uni3d.checkpoint import read_state_dict
from textme_uni3d.model import Encoder, Group, build_uni3d, farthest_point_sample, knn_point
from textme_uni3d.text import build_text_tower
from uni3d_testdata import TINY_ARCH

from textme_sdk.errors import InvalidInputError

LAYOUTS = json.loads((Path(__file__).parent / "fixtures" / "uni3d_layouts.json").read_text())


# -- farthest-point sampling ---------------------------------------------------------------
def fps_loop_reference(points: np.ndarray, m: int) -> list[int]:
    """pointnet2_ops ``furthest_point_sampling_kernel`` as one sequential loop, in float32:
    start at 0, temp = 1e10, skip points with |p|^2 <= 1e-3, strict '>' keeps the first max
    (so exact ties go to the lowest index, unlike the kernel's parallel reduction: see
    :func:`fps_block_reference`)."""
    pts = points.astype(np.float32)
    temp = [np.float32(1e10)] * len(pts)
    chosen, old = [0], 0
    for _ in range(1, m):
        best, besti = np.float32(-1), 0
        x1, y1, z1 = pts[old]
        for k, (x2, y2, z2) in enumerate(pts):
            if x2 * x2 + y2 * y2 + z2 * z2 <= np.float32(1e-3):
                continue
            d = (x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1) + (z2 - z1) * (z2 - z1)
            temp[k] = min(d, temp[k])
            if temp[k] > best:
                best, besti = temp[k], k
        old = besti
        chosen.append(old)
    return chosen


def fps_block_reference(points: np.ndarray, m: int) -> list[int]:
    """The kernel's selection as it runs on the GPU, in numpy: one block of
    ``T = min(2**floor(log2 N), 512)`` threads; thread ``t`` scans points ``t, t + T, ...`` and
    keeps its first strict maximum (best starts at -1, index 0); then slots ``p`` and ``p + s``
    are merged for ``s = T/2, ..., 1``, the higher value winning and slot ``p`` on ties. Float32
    arithmetic without fused multiply-adds."""
    pts = points.astype(np.float32)
    n = len(pts)
    threads = max(min(1 << int(np.log(n) / np.log(2.0)), 512), 1)
    rows = -(-n // threads)
    x, y, z = pts.T
    eligible = (x * x + y * y + z * z).astype(np.float64) > 1e-3
    temp = np.full(n, 1e10, dtype=np.float32)
    chosen, old = [0], 0
    for _ in range(1, m):
        x1, y1, z1 = pts[old]
        d = (x - x1) * (x - x1) + (y - y1) * (y - y1) + (z - z1) * (z - z1)
        temp = np.where(eligible, np.minimum(d, temp), temp)
        grid = np.full(rows * threads, -np.inf, dtype=np.float64)
        grid[:n] = np.where(eligible, temp, -np.inf)
        grid = grid.reshape(rows, threads)  # grid[i, t] is point i * T + t, scanned by thread t
        first = grid.argmax(axis=0)  # the first maximum of each thread
        best = grid[first, np.arange(threads)]
        besti = np.where(best > -1, first * threads + np.arange(threads), 0)
        best = np.maximum(best, -1.0)
        step = threads // 2
        while step >= 1:
            take = best[step:2 * step] > best[:step]
            besti[:step] = np.where(take, besti[step:2 * step], besti[:step])
            best[:step] = np.maximum(best[:step], best[step:2 * step])
            step //= 2
        old = int(besti[0])
        chosen.append(old)
    return chosen


def is_farthest_point_sequence(points: np.ndarray, picks: list[int]) -> bool:
    """Each pick after the first is at the largest distance from the earlier picks (eligible
    points only, float32 like the kernel): a valid FPS path, whichever way ties went."""
    pts = points.astype(np.float32)
    eligible = (pts ** 2).sum(-1).astype(np.float64) > 1e-3
    nearest = np.full(len(pts), np.inf, dtype=np.float32)
    for prev, pick in zip(picks, picks[1:]):
        nearest = np.minimum(nearest, ((pts - pts[prev]) ** 2).sum(-1))
        if not eligible[pick] or nearest[pick] < nearest[eligible].max():
            return False
    return True


def fps_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    near_origin = rng.normal(size=(80, 3)).astype(np.float32)
    near_origin[[0, 5, 17, 40]] = rng.normal(scale=0.005, size=(4, 3))  # |p|^2 < 1e-3
    duplicates = np.repeat(rng.normal(size=(10, 3)), 4, axis=0)        # exact ties
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3), -1).reshape(-1, 3)  # many ties
    # a cluster away from the origin plus points at the origin: plain FPS would pick those
    # second, the kernel never does
    far_cluster = rng.normal(scale=0.1, size=(60, 3)) + 3.0
    far_cluster[[10, 30]] = rng.normal(scale=0.01, size=(2, 3))
    return [rng.normal(size=(64, 3)), rng.uniform(-1, 1, size=(200, 3)), near_origin,
            duplicates, grid, far_cluster]


@pytest.mark.parametrize("case", range(6))
def test_fps_equals_the_kernel_loop_reference(case):
    cloud = fps_cases()[case]
    for m in (1, 7, 24, min(40, len(cloud))):
        got = farthest_point_sample(torch.from_numpy(cloud).float()[None], m)[0].tolist()
        assert got == fps_loop_reference(cloud, m), (case, m)


def test_fps_is_batched_and_keeps_the_kernel_quirks():
    clouds = [c for c in fps_cases() if len(c) >= 40]
    batch = torch.stack([torch.from_numpy(c[:40]).float() for c in clouds])
    got = farthest_point_sample(batch, 12)
    assert got.shape == (len(clouds), 12) and got.dtype == torch.long
    for row, cloud in zip(got, clouds):
        assert row.tolist() == fps_loop_reference(cloud[:40], 12)
    near = fps_cases()[2]
    picked = farthest_point_sample(torch.from_numpy(near)[None], 76)[0].tolist()
    assert picked[0] == 0  # index 0 starts even though it lies at the origin
    assert not {5, 17, 40} & set(picked)  # the other near-origin points are never picked
    plain = farthest_point_sample(torch.from_numpy(near)[None], 80, min_squared_norm=None)[0]
    assert sorted(plain.tolist()) == list(range(80))  # plain FPS: a permutation
    cluster = torch.from_numpy(fps_cases()[5]).float()[None]
    assert not {10, 30} & set(farthest_point_sample(cluster, 50)[0].tolist())
    assert farthest_point_sample(cluster, 2, min_squared_norm=None)[0, 1].item() in (10, 30)
    with pytest.raises(ValueError, match="npoint"):
        farthest_point_sample(batch, 41)


def test_fps_equals_the_kernels_block_reduction_when_nothing_ties():
    """Without ties the kernel's parallel selection, the sequential loop and the port agree,
    from tiny clouds (few threads) to Uni3D's 10,000 points and 512 groups (512 threads)."""
    rng = np.random.default_rng(7)
    no_ties = [c for i, c in enumerate(fps_cases()) if i not in (3, 4)]
    for cloud in [*no_ties, rng.normal(size=(5, 3)), rng.normal(size=(1000, 3))]:
        for m in (1, 5, min(64, len(cloud))):
            got = farthest_point_sample(torch.from_numpy(cloud).float()[None], m)[0].tolist()
            assert got == fps_block_reference(cloud, m) == fps_loop_reference(cloud, m), m
    big = rng.normal(size=(10_000, 3))
    got = farthest_point_sample(torch.from_numpy(big).float()[None], 512)[0].tolist()
    assert got == fps_block_reference(big, 512)


def test_fps_ties_break_differently_but_stay_valid():
    """Exact ties: the port takes the lowest index, the kernel its reduction's winner. The
    indices then differ, yet both paths are valid FPS; copies of one position give the same
    coordinates; and past the last distinct position both repeat index 0."""
    small = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    assert farthest_point_sample(torch.from_numpy(small)[None], 4)[0].tolist() == [0, 1, 3, 0]
    assert fps_block_reference(small, 4) == [0, 2, 3, 0]  # the docs' example
    grid = fps_cases()[4]  # a 4 x 4 x 4 grid
    duplicates = np.tile(np.random.default_rng(5).normal(size=(10, 3)), (4, 1))  # i, i+10, ...
    port = farthest_point_sample(torch.from_numpy(duplicates).float()[None], 40)[0].tolist()
    kernel = fps_block_reference(duplicates, 40)
    assert port[:10] != kernel[:10]  # different copies were picked ...
    np.testing.assert_array_equal(duplicates[port], duplicates[kernel])  # ... of the same points
    assert len(set(port[:10])) == len(set(kernel[:10])) == 10  # every position exactly once
    assert len({tuple(p) for p in duplicates[port[:10]]}) == 10
    assert port[10:] == kernel[10:] == [0] * 30  # nothing left at a positive distance
    assert is_farthest_point_sequence(duplicates, port)
    assert is_farthest_point_sequence(duplicates, kernel)

    port = farthest_point_sample(torch.from_numpy(grid).float()[None], 40)[0].tolist()
    kernel = fps_block_reference(grid, 40)
    assert port != kernel  # the grid's ties send the two along different paths
    assert is_farthest_point_sequence(grid, port) and is_farthest_point_sequence(grid, kernel)
    assert len(set(port)) == len(set(kernel)) == 40  # distinct while distances stay positive


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fps_and_grouping_on_cuda_match_cpu():
    cloud = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3000, 3))).float()
    cpu = farthest_point_sample(cloud, 128)
    assert torch.equal(farthest_point_sample(cloud.cuda(), 128).cpu(), cpu)
    colors = torch.rand_like(cloud)
    a = Group(128, 16)(cloud, colors)
    b = Group(128, 16)(cloud.cuda(), colors.cuda())
    assert torch.equal(a[1], b[1].cpu())
    assert torch.allclose(a[2].sort(dim=2).values, b[2].cpu().sort(dim=2).values, atol=1e-6)


# -- grouping and the patch encoder --------------------------------------------------------
def test_knn_grouping_shapes_centring_and_members():
    rng = np.random.default_rng(0)
    xyz = torch.from_numpy(rng.normal(size=(2, 300, 3))).float()
    rgb = torch.rand(2, 300, 3, generator=torch.Generator().manual_seed(0))
    neighborhood, center, features = Group(num_group=20, group_size=9)(xyz, rgb)
    assert neighborhood.shape == (2, 20, 9, 3) and center.shape == (2, 20, 3)
    assert features.shape == (2, 20, 9, 6)
    for b in range(2):
        fps = fps_loop_reference(xyz[b].numpy(), 20)
        assert torch.equal(center[b], xyz[b, fps])
        for g in range(20):
            dist = ((xyz[b] - center[b, g]) ** 2).sum(-1)
            nearest = torch.argsort(dist)[:9]
            members = knn_point(9, xyz[b:b + 1], center[b:b + 1, g:g + 1])[0, 0]
            assert set(members.tolist()) == set(nearest.tolist())
            assert torch.allclose(neighborhood[b, g], xyz[b, members] - center[b, g])
            assert torch.equal(features[b, g, :, 3:], rgb[b, members])
            assert torch.equal(features[b, g, :, :3], neighborhood[b, g])
    # the centre is its own nearest neighbour: one member of each patch sits at 0
    assert (neighborhood.norm(dim=-1).min(dim=-1).values < 1e-6).all()


def test_patch_encoder_shapes_and_permutation_invariance():
    torch.manual_seed(0)
    enc = Encoder(encoder_channel=48).eval()
    groups = torch.randn(2, 5, 7, 6)
    out = enc(groups)
    assert out.shape == (2, 5, 48)
    perm = torch.randperm(7)
    assert torch.allclose(enc(groups[:, :, perm]), out, atol=1e-5)
    names = [n for n, _ in enc.named_parameters()]
    assert names[:2] == ["first_conv.0.weight", "first_conv.0.bias"]
    assert enc.first_conv[0].in_channels == 6 and enc.first_conv[3].out_channels == 256
    assert enc.second_conv[0].in_channels == 512 and enc.second_conv[3].out_channels == 48


def upstream_forward(model, pc: torch.Tensor) -> torch.Tensor:
    """Upstream ``PointcloudEncoder.forward`` step by step, with upstream's flattened-index
    gather (``idx + arange(B) * N``), FPS from the loop reference and kNN from the sorted
    distances."""
    pe = model.point_encoder
    xyz, color = pc[:, :, :3].contiguous(), pc[:, :, 3:].contiguous()
    b, n, _ = xyz.shape
    g, k = pe.num_group, pe.group_size
    fps = torch.tensor([fps_loop_reference(xyz[i].numpy(), g) for i in range(b)])
    center = torch.stack([xyz[i, fps[i]] for i in range(b)])
    dists = ((center[:, :, None, :] - xyz[:, None, :, :]) ** 2).sum(-1)
    idx = dists.argsort(dim=-1)[:, :, :k] + torch.arange(b).view(-1, 1, 1) * n
    neighborhood = xyz.view(b * n, -1)[idx.view(-1)].view(b, g, k, 3) - center.unsqueeze(2)
    colors = color.view(b * n, -1)[idx.view(-1)].view(b, g, k, 3)
    tokens = pe.encoder2trans(pe.encoder(torch.cat((neighborhood, colors), dim=-1)))
    x = torch.cat((pe.cls_token.expand(b, -1, -1), tokens), dim=1)
    x = x + torch.cat((pe.cls_pos.expand(b, -1, -1), pe.pos_embed(center)), dim=1)
    for blk in pe.visual.blocks:
        x = blk(x)
    return pe.trans2embed(pe.visual.fc_norm(pe.visual.norm(x[:, 0, :])))


def test_forward_matches_upstream_steps(tiny_uni3d):
    pc = torch.cat([torch.randn(2, 256, 3, generator=torch.Generator().manual_seed(2)),
                    torch.rand(2, 256, 3, generator=torch.Generator().manual_seed(3))], dim=-1)
    with torch.no_grad():
        got = tiny_uni3d.encode_pc(pc)
        expected = upstream_forward(tiny_uni3d, pc)
    assert got.shape == (2, 32)
    assert torch.allclose(got, expected, atol=1e-5)
    assert isinstance(tiny_uni3d.point_encoder.patch_dropout, torch.nn.Identity)
    with pytest.raises(ValueError, match=r"\[B, N, 6\]"):
        tiny_uni3d.encode_pc(pc[..., :3])


# -- key layouts of the released sizes ------------------------------------------------------
def meta_layout(size: str) -> dict[str, list[int]]:
    model = build_uni3d(SIZES[size], device="meta")
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_uni3d_b_matches_the_released_key_layout():
    got, expected = meta_layout("base"), LAYOUTS["uni3d-b"]
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert len(got) == 265


@pytest.mark.parametrize("size", ["tiny", "small", "large", "giant"])
def test_other_sizes_match_their_layout_summaries(size):
    got = meta_layout(size)
    want = LAYOUTS["summaries"][size]
    prefix = "point_encoder.visual.blocks."
    assert len(got) == want["n_keys"]
    assert sum(math.prod(s) for s in got.values()) == want["n_values"]
    assert {k: s for k, s in got.items() if not k.startswith(prefix)} == want["other"]
    for i in range(want["depth"]):
        block = {k[len(f"{prefix}{i}."):]: s for k, s in got.items()
                 if k.startswith(f"{prefix}{i}.")}
        assert block == want["block0"], f"block {i}"


def test_layout_sizes_agree_with_the_published_files():
    """The checkpoints are fp16: 2 bytes per value plus a little pickle overhead. Sizes as
    shown on huggingface.co/BAAI/Uni3D (uni3d-b 178 MB, uni3d-s-no-lvis 45.7 MB, uni3d-g
    2.03 GB)."""
    for size, megabytes in (("base", 178.0), ("small", 45.7), ("giant", 2030.0)):
        fp16_mb = 2 * LAYOUTS["summaries"][size]["n_values"] / 1e6
        assert abs(fp16_mb - megabytes) / megabytes < 0.005, size


def test_every_size_outputs_1024_and_released_names_resolve():
    assert {name: arch.embed_dim for name, arch in SIZES.items()} == dict.fromkeys(SIZES, 1024)
    assert resolve_model("uni3d-g")[1] == "modelzoo/uni3d-g/model.pt"
    assert resolve_model("uni3d-b-no-lvis") == (SIZES["base"], "modelzoo/uni3d-b-no-lvis/model.pt")
    assert resolve_model("base") == (SIZES["base"], None)
    assert set(RELEASED) >= {"uni3d-b", "uni3d-l", "uni3d-g"}
    with pytest.raises(InvalidInputError, match="unknown Uni3D model.*uni3d-g"):
        resolve_model("uni3d-xl")
    with pytest.raises(InvalidInputError, match="unknown Uni3D arch fields"):
        resolve_model("tiny", {"widht": 3})


def test_eva02_e_14_plus_text_tower_layout():
    tower = build_text_tower("EVA02-E-14-plus", device="meta")
    got = {f"text.{k}": list(v.shape) for k, v in tower.state_dict().items()}
    expected = LAYOUTS["eva02_e_14_plus_text"]
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert tower.output_dim == 1024 and tower.context_length == 77


# -- checkpoints ---------------------------------------------------------------------------
def clouds(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [np.concatenate([rng.normal(size=(300, 3)), rng.random((300, 3))], 1) for _ in range(n)]


def test_upstream_checkpoint_loads_strictly_with_weights_only(tiny_encoder, tiny_uni3d,
                                                              uni3d_checkpoint):
    """``{'module': {'module.*': ...}}`` plus DeepSpeed's other entries, read with
    ``torch.load(weights_only=True)``, gives the saved weights exactly."""
    loaded = tiny_encoder._model.state_dict()
    for key, value in tiny_uni3d.state_dict().items():
        assert torch.equal(loaded[key], value), key
    state = read_state_dict(uni3d_checkpoint)
    assert set(state) == set(tiny_uni3d.state_dict())  # "module." stripped, extras ignored


def test_fp16_and_safetensors_checkpoints(tiny_uni3d, tiny_clip, clip_weights, tiny_encoder,
                                          tmp_path):
    """The released files hold fp16 weights; a flat safetensors state dict works too."""
    from safetensors.torch import save_file

    half = tmp_path / "half.pt"
    torch.save({"module": {k: (v.half() if v.is_floating_point() else v)
                           for k, v in tiny_uni3d.state_dict().items()}}, half)
    flat = tmp_path / "model.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in tiny_uni3d.state_dict().items()}, flat)
    reference = tiny_encoder.encode_modal(clouds())
    for path, atol in ((half, 5e-2), (flat, 1e-6)):
        enc = Uni3DEncoder("tiny", arch=TINY_ARCH, checkpoint=str(path), clip_model=tiny_clip,
                           clip_pretrained=str(clip_weights[1]), device="cpu")
        assert torch.allclose(enc.encode_modal(clouds()), reference, atol=atol), path.name


class _NotATensor:
    pass


def test_bad_checkpoints_raise_typed_errors(tiny_uni3d, tiny_clip, clip_weights, tmp_path):
    def encoder(path):
        return Uni3DEncoder("tiny", arch=TINY_ARCH, checkpoint=str(path), clip_model=tiny_clip,
                            clip_pretrained=str(clip_weights[1]), device="cpu")

    state = OrderedDict(tiny_uni3d.state_dict())
    missing = dict(state)
    del missing["point_encoder.trans2embed.weight"]
    torch.save({"module": missing}, tmp_path / "missing.pt")
    extra = {**state, "point_encoder.visual.head.weight": torch.zeros(3, 32)}
    torch.save({"module": extra}, tmp_path / "extra.pt")
    torch.save({"module": state, "args": _NotATensor()}, tmp_path / "pickled.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    cases = [
        ("missing.pt", "1 missing.*trans2embed.weight"),
        ("extra.pt", "1 unexpected.*visual.head.weight"),
        ("pickled.pt", "weights_only=True.*safetensors"),
        ("garbage.pt", "could not read checkpoint.*corrupt"),
        ("absent.pt", "not found"),
    ]
    for name, match in cases:
        with pytest.raises(CheckpointError, match=match):
            encoder(tmp_path / name).load()
    assert issubclass(CheckpointError, Uni3DLoadError)


def test_another_sizes_checkpoint_is_refused(tiny_uni3d, tiny_clip, clip_weights, tmp_path):
    torch.save({"module": tiny_uni3d.state_dict()}, tmp_path / "tiny.pt")
    wider = {**TINY_ARCH, "pc_feat_dim": 48,
             "timm_kwargs": {**TINY_ARCH["timm_kwargs"], "embed_dim": 48}}
    enc = Uni3DEncoder("tiny", arch=wider, checkpoint=str(tmp_path / "tiny.pt"),
                       clip_model=tiny_clip, clip_pretrained=str(clip_weights[1]))
    with pytest.raises(CheckpointError, match="other shapes.*checkpoint .* vs model"):
        enc.load("cpu")
    with pytest.raises(Uni3DLoadError, match="width 32, but pc_feat_dim is 48"):
        Uni3DEncoder("tiny", arch={**TINY_ARCH, "pc_feat_dim": 48}, random_init=True,
                     clip_model=tiny_clip).load("cpu")


def test_missing_hub_weights_fail_fast_offline(monkeypatch, tmp_path, tiny_clip):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    enc = Uni3DEncoder("uni3d-b", cache_dir=str(tmp_path))
    assert enc.embedding_dim == 1024 and not enc.is_loaded
    with pytest.raises(Uni3DLoadError, match="BAAI/Uni3D/modelzoo/uni3d-b/model.pt.*offline"):
        enc.load("cpu")
