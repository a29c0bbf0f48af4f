"""Turn the 3D inputs users pass into Uni3D's model input: ``[npoints, 6]`` (xyz + rgb).

What upstream (baaivision/Uni3D, ``data/datasets.py``) feeds the model at evaluation:

* clouds of exactly ``--npoints 10000`` points (the OpenShape evaluation files are stored with
  10,000 points, so upstream never resamples at evaluation);
* xyz through ``pc_normalize``: minus the centroid, divided by the largest distance to it
  (the unit sphere); no axis swap (``--openshape_setting`` is off by default), so inputs are
  expected in the training data's frame (Y up, as Objaverse / glTF);
* rgb in [0, 1] (ModelNet40's stored 0..255 values are divided by 255) and a constant 0.4
  where a cloud has no colour (ScanObjectNN; also the training-time colour drop).

For inputs that are not 10,000 points, this module resamples deterministically (a fixed seed
per item, so an embedding never depends on the batch it is in):

* more points: a random subset without replacement (upstream's ``random_sample``), or
  farthest-point sampling with ``sampling="fps"`` (slower, better coverage);
* fewer points: every point once, plus random repeats up to ``npoints`` (upstream's
  ``random_sample`` draws all points with replacement; keeping every point is a deliberate
  departure);
* meshes: ``npoints`` points sampled uniformly on the surface (area-weighted, trimesh), with
  the surface colour where the mesh has one.

Resampling happens before normalisation, as upstream normalises its stored 10,000 points.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RGB",
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
    "SAMPLING_MODES",
    "PointParams",
    "pc_normalize",
    "read_points",
    "resample",
    "to_model_input",
]

#: Constant colour of colourless clouds (upstream ScanObjectNN loader and training colour drop).
DEFAULT_RGB = 0.4
#: Files read as meshes (points sampled on the surface); ``.ply`` may hold either.
MESH_EXTENSIONS: tuple[str, ...] = (".obj", ".off", ".stl", ".glb", ".gltf")
POINT_EXTENSIONS: tuple[str, ...] = (".ply", ".npy", ".npz") + MESH_EXTENSIONS
SAMPLING_MODES = ("random", "fps")
_XYZ_KEYS = ("xyz", "points", "pos", "pc", "vertices")
_RGB_KEYS = ("rgb", "colors", "colours", "color")


@dataclass(frozen=True)
class PointParams:
    """How clouds are resampled.

    Attributes:
        npoints: points per cloud (upstream 10,000).
        sampling: ``"random"`` (seeded subset) or ``"fps"`` for clouds with more points.
        seed: seed of every random choice (the same for every item).
    """

    npoints: int = 10000
    sampling: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_MODES:
            raise InvalidInputError(
                f"sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}"
            )
        if isinstance(self.npoints, bool) or not isinstance(self.npoints, int) or self.npoints < 1:
            raise InvalidInputError(f"npoints must be a positive integer, got {self.npoints!r}")


# -- reading ---------------------------------------------------------------------------------
def read_points(item: Any, params: PointParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one input as ``(xyz [N, 3] float64, rgb [N, 3] float64 in [0, 1] or None)``.

    Meshes come back already sampled to ``params.npoints`` points.

    Raises:
        InvalidInputError: unknown type or file kind, unreadable file, bad shape or values.
    """
    if isinstance(item, (str, os.PathLike)):
        return _read_file(os.fspath(item), params)
    if isinstance(item, Mapping):
        return _from_mapping(item, "dict")
    if isinstance(item, torch.Tensor):
        arr = item.detach().cpu()
        if arr.dtype in (torch.float16, torch.bfloat16):
            arr = arr.float()
        return _from_array(arr.numpy(), "tensor")
    if isinstance(item, np.ndarray):
        return _from_array(item, "numpy array")
    raise InvalidInputError(
        f"uni3d cannot read a point cloud from a {type(item).__name__}; pass a file path "
        f"({', '.join(POINT_EXTENSIONS)}), an N x 3 / N x 6 numpy array or torch tensor, or a "
        "dict {'xyz': N x 3, 'rgb': N x 3}"
    )


def _read_file(path: str, params: PointParams) -> tuple[np.ndarray, np.ndarray | None]:
    check_input_file(path, "point cloud", "*.ply")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return _from_array(_load_numpy(path), f"{path!r}")
    if suffix == ".npz":
        data = _load_numpy(path)
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path!r} is a single .npy array, not an .npz archive; "
                                    "rename it to .npy")
        if len(data) == 1:
            return _from_array(next(iter(data.values())), f"{path!r}")
        return _from_mapping(data, f"{path!r}")
    if suffix == ".ply" or suffix in MESH_EXTENSIONS:
        return _read_trimesh(path, suffix, params)
    raise InvalidInputError(
        f"uni3d cannot read {suffix or 'extension-less'} files ({path!r}); use one of "
        f"{', '.join(POINT_EXTENSIONS)}, or load the points yourself and pass an N x 6 array"
    )


def _load_numpy(path: str) -> Any:
    """An array (.npy) or a dict of arrays (.npz), never unpickling anything."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InvalidInputError(
                f"{path!r} holds a pickled Python object (e.g. an OpenShape {{'xyz', 'rgb'}} "
                "dict), which uni3d does not unpickle. If you trust the file: d = np.load(path, "
                "allow_pickle=True).item(), then pass {'xyz': d['xyz'], 'rgb': d['rgb']}"
            ) from exc
        raise InvalidInputError(f"could not read {path!r} as numpy data ({exc})") from exc
    except Exception as exc:  # OSError, EOFError, zipfile.BadZipFile...
        raise InvalidInputError(
            f"could not read {path!r} as numpy data ({type(exc).__name__}: {exc}); the file is "
            "corrupt or not a .npy/.npz file"
        ) from exc


def _read_trimesh(path: str, suffix: str, params: PointParams
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    import trimesh

    try:
        force = "mesh" if suffix in MESH_EXTENSIONS else None
        geometry = trimesh.load(path, force=force, process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise InvalidInputError(
            f"could not read {path!r} ({type(exc).__name__}: {exc}); the file is corrupt or not "
            f"a {suffix} file - re-export it (e.g. as binary PLY)"
        ) from exc
    if isinstance(geometry, trimesh.Scene):
        geometry = geometry.to_mesh() if len(geometry.geometry) else None
    if isinstance(geometry, trimesh.PointCloud):
        xyz = np.asarray(geometry.vertices, dtype=np.float64)
        colors = np.asarray(geometry.colors)
        has_rgb = len(xyz) > 0 and len(colors) == len(xyz)
        rgb = colors[:, :3].astype(np.float64) / 255.0 if has_rgb else None
        return _check_xyz(xyz, f"{path!r}"), rgb
    if isinstance(geometry, trimesh.Trimesh):
        if len(geometry.faces) == 0:  # a PLY of vertices only, read as a mesh
            return _from_vertices(geometry, path)
        return _sample_mesh(geometry, path, params)
    raise InvalidInputError(
        f"{path!r} contains no points or triangles that uni3d can read "
        f"(trimesh returned {type(geometry).__name__})"
    )


def _from_vertices(mesh: Any, path: str) -> tuple[np.ndarray, np.ndarray | None]:
    xyz = np.asarray(mesh.vertices, dtype=np.float64)
    rgb = None
    if mesh.visual.kind == "vertex":
        rgb = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float64) / 255.0
    return _check_xyz(xyz, f"{path!r}"), rgb


def _sample_mesh(mesh: Any, path: str, params: PointParams
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    import trimesh

    if not np.isfinite(mesh.vertices).all():
        raise InvalidInputError(f"mesh {path!r} has NaN/inf vertices; repair it first")
    if not mesh.area > 0:
        raise InvalidInputError(
            f"mesh {path!r} has zero surface area, so no points can be sampled on it"
        )
    with_color = mesh.visual.kind is not None
    try:
        sampled = trimesh.sample.sample_surface(mesh, params.npoints, seed=params.seed,
                                                sample_color=with_color)
    except Exception as exc:  # texture lookups can fail on broken UVs / images
        if not with_color:
            raise InvalidInputError(f"could not sample points on {path!r} ({exc})") from exc
        logger.warning("uni3d: colours of %r could not be sampled (%s); using the constant "
                       "%.1f grey", path, exc, DEFAULT_RGB)
        with_color = False
        sampled = trimesh.sample.sample_surface(mesh, params.npoints, seed=params.seed)
    xyz = np.asarray(sampled[0], dtype=np.float64)
    rgb = np.asarray(sampled[2])[:, :3].astype(np.float64) / 255.0 if with_color else None
    return xyz, rgb


def _from_mapping(data: Mapping[str, Any], what: str) -> tuple[np.ndarray, np.ndarray | None]:
    xyz_key = next((k for k in _XYZ_KEYS if k in data), None)
    if xyz_key is None:
        raise InvalidInputError(
            f"{what} has no coordinates: expected one of the keys {list(_XYZ_KEYS)} "
            f"(found {sorted(map(str, data))})"
        )
    xyz = _as_numpy(data[xyz_key], what)
    if xyz.ndim != 2 or xyz.shape[-1] != 3:
        raise InvalidInputError(f"{what}[{xyz_key!r}] must be N x 3, got shape {xyz.shape}")
    xyz = _check_xyz(xyz, what)
    rgb_key = next((k for k in _RGB_KEYS if k in data), None)
    if rgb_key is None:
        return xyz, None
    rgb = _as_numpy(data[rgb_key], what)
    if rgb.ndim != 2 or rgb.shape[-1] not in (3, 4) or len(rgb) != len(xyz):
        raise InvalidInputError(
            f"{what}[{rgb_key!r}] must be N x 3 (or N x 4 RGBA) with N = {len(xyz)}, got shape "
            f"{rgb.shape}"
        )
    return xyz, _check_rgb(rgb[:, :3], what)


def _as_numpy(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().float().numpy()
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise InvalidInputError(f"{what}: unsupported dtype {arr.dtype}; use float or uint8 values")
    return arr


def _from_array(arr: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    arr = _as_numpy(arr, what)
    if arr.ndim == 3 and arr.shape[-1] in (3, 6):
        raise InvalidInputError(
            f"{what} has shape {arr.shape}: a batch? pass a list of clouds instead, e.g. "
            "list(batch)"
        )
    if arr.ndim != 2 or arr.shape[-1] not in (3, 6):
        hint = ""
        if arr.ndim == 2 and arr.shape[0] in (3, 6):
            hint = " (channels first? pass the transpose, e.g. arr.T)"
        elif arr.ndim == 2:
            hint = (" (columns 3-5 must be rgb; drop normals or other extra columns, e.g. "
                    "arr[:, :6] only if those are colours)")
        raise InvalidInputError(
            f"{what} must be N x 3 (xyz) or N x 6 (xyz + rgb), got shape {arr.shape}{hint}"
        )
    xyz = _check_xyz(arr[:, :3], what)
    return xyz, (_check_rgb(arr[:, 3:], what) if arr.shape[1] == 6 else None)


def _check_xyz(xyz: np.ndarray, what: str) -> np.ndarray:
    if len(xyz) == 0:
        raise InvalidInputError(f"{what} has no points; skip it")
    xyz = xyz.astype(np.float64)
    if not np.isfinite(xyz).all():
        raise InvalidInputError(
            f"{what} has NaN/inf coordinates; drop those points first (e.g. "
            "pts[np.isfinite(pts).all(1)])"
        )
    return xyz


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    rgb = rgb.astype(np.float64)
    if not np.isfinite(rgb).all():
        raise InvalidInputError(f"{what} has NaN/inf colours; replace them (np.nan_to_num)")
    lo, hi = float(rgb.min()), float(rgb.max())
    if lo < -1e-3:
        raise InvalidInputError(
            f"{what}: colours must be in [0, 1] but go down to {lo:.3g}; columns 3-5 look like "
            "normals, not rgb - pass only xyz (N x 3) or xyz + rgb"
        )
    if hi > 1 + 1e-3:
        raise InvalidInputError(
            f"{what}: float colours must be in [0, 1] but reach {hi:.3g}; divide 0..255 "
            "colours by 255 (as upstream does for ModelNet40) or pass them as uint8"
        )
    return np.clip(rgb, 0.0, 1.0)


# -- resampling and normalisation -------------------------------------------------------------
def resample(xyz: np.ndarray, rgb: np.ndarray | None, params: PointParams
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Exactly ``params.npoints`` points, deterministically (see the module docstring)."""
    n, target = len(xyz), params.npoints
    if n == target:
        return xyz, rgb
    rng = np.random.default_rng(params.seed)
    if n > target:
        if params.sampling == "fps":
            from .model import farthest_point_sample

            centred = torch.from_numpy(xyz - xyz.mean(axis=0)).float()[None]
            idx = farthest_point_sample(centred, target, min_squared_norm=None)[0].numpy()
        else:
            idx = np.sort(rng.choice(n, size=target, replace=False))
    else:
        idx = np.concatenate([np.arange(n), rng.integers(0, n, size=target - n)])
    return xyz[idx], (rgb[idx] if rgb is not None else None)


def pc_normalize(xyz: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale into the unit sphere (upstream ``pc_normalize``).

    Raises:
        InvalidInputError: all points coincide (the scale would be 0).
    """
    centred = xyz - xyz.mean(axis=0)
    radius = float(np.sqrt((centred ** 2).sum(axis=1)).max())
    if not radius > 0:
        raise InvalidInputError(
            "all points of the cloud coincide, so it cannot be scaled to the unit sphere; "
            "skip it"
        )
    return centred / radius


def to_model_input(item: Any, params: PointParams) -> torch.Tensor:
    """One input -> ``[npoints, 6]`` float32: normalised xyz + rgb in [0, 1] (0.4 if absent)."""
    xyz, rgb = read_points(item, params)
    xyz, rgb = resample(xyz, rgb, params)
    xyz = pc_normalize(xyz)
    if rgb is None:
        rgb = np.full_like(xyz, DEFAULT_RGB)
    return torch.from_numpy(np.concatenate([xyz, rgb], axis=1)).float()
