"""Environment fix: let ``import torchvision`` work next to a CPU-only torch.

The only torchvision wheel matching torch 2.13.0 here is a CUDA build whose compiled
ops cannot load, and its import then fails with
``RuntimeError: operator torchvision::nms does not exist``. Defining the two op
schemas before torchvision loads makes every import work (transforms and models do;
the compiled detection ops stay unusable). ``make`` installs this as a ``.pth`` hook in
the virtual environment only when the native ops fail to load. It is not library code.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_DONE = False


def _define_schemas() -> None:
    global _DONE
    if _DONE:
        return
    _DONE = True
    try:
        import torch

        lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 - must stay alive
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define(
            "qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor"
        )
        sys.modules[__name__]._lib = lib  # keep a reference
    except Exception:  # pragma: no cover - already defined or torch missing
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: D401
        if fullname == "torchvision" and not _DONE:
            _define_schemas()
        return None


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
