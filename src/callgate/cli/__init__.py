"""The ``callgate`` command (see :mod:`callgate.cli.app`)."""

from callgate.cli.app import app, main

__all__ = ["app", "main"]
