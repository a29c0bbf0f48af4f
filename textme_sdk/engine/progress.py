"""Progress-bar policy shared by every long loop."""

from __future__ import annotations

import sys


def auto_progress(show: bool | None, long_run: bool) -> bool:
    """Resolve ``show_progress_bar=None``: on for long runs when stderr is a terminal.

    Logs of CI jobs and pipes stay free of carriage-return noise; pass ``True`` to force a bar.
    """
    if show is not None:
        return show
    return long_run and sys.stderr.isatty()
