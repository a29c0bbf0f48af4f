"""Every script in examples/ runs (offline, small settings)."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_gapdemo(gapdemo):
    acc = _load("quickstart_gapdemo").main(epochs=30)
    assert acc > 0.5
