"""The one way CLI tests invoke ``textme``: in process, through Typer's runner."""

from typer.testing import CliRunner

from textme_sdk.cli import get_app

runner = CliRunner()


def run(*args, ok=True):
    """Invoke ``textme ARGS...``; with ``ok`` (default) assert it exited 0, showing the output."""
    res = runner.invoke(get_app(), [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output + repr(res.exception)
    return res
