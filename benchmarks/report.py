"""What every benchmark script does with its result: print it as JSON and, with ``--json PATH``,
write it there too (``run_all.py`` collects them under ``benchmarks/results/``)."""

from __future__ import annotations

import json
from typing import Any


def emit(result: dict[str, Any], path: str | None) -> None:
    """Print ``result`` as indented JSON; also write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
