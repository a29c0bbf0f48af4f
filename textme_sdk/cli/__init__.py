"""The ``textme`` command line (typer). ``textme --help`` lists the commands."""

from .app import app, get_app, main

__all__ = ["app", "get_app", "main"]
