"""Command line: ``python -m textme_cxr_clip convert SRC [DST]``.

Converts a kakaobrain/cxr-clip ``.tar`` checkpoint into a self-describing ``.safetensors`` file
without executing any code from the file (see :mod:`textme_cxr_clip.checkpoint`).
"""

from __future__ import annotations

import argparse
import sys

from .checkpoint import convert_checkpoint
from .errors import CXRClipLoadError


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m textme_cxr_clip")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert an upstream .tar to .safetensors")
    convert.add_argument("src", help="the kakaobrain/cxr-clip checkpoint (r50_mcc.tar ...)")
    convert.add_argument("dst", nargs="?", help="output file (default: SRC with .safetensors)")
    convert.add_argument("--inert-name", action="append", default=[], metavar="MODULE.NAME",
                         help="admit a type the config merely names as an inert token")
    args = parser.parse_args(argv)
    try:
        out = convert_checkpoint(args.src, args.dst, inert_names=args.inert_name)
    except CXRClipLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
