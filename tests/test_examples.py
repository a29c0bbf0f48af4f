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


TESTED = {"quickstart_gapdemo"}


def test_every_example_script_has_a_test():
    """A new script in examples/ fails here until a test above runs it."""
    assert {p.stem for p in EXAMPLES.glob("*.py")} == TESTED
