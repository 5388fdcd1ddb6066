"""Which module defines each command, so a run imports only the one it needs.

Typer builds a Click command for every registered function on every start (≈ 3 ms each) and the
modules import their own dependencies; ``shardctl route 1`` should pay for ``route`` alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

from shardctl.cli.app import app

COMMAND_MODULES = {
    "validate": "inspect",
    "map": "inspect",
    "route": "inspect",
    "migrate": "migrate",
    "query-all": "query",
    "status": "status",
    "move": "move",
}


def register(argv: Sequence[str]) -> typer.Typer:
    """Register the command named in ``argv`` (the first word that is not an option), or every
    command when there is none or it is unknown (``--help``, typos: Click lists them all)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    modules = [COMMAND_MODULES[word]] if word in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(modules):
        importlib.import_module(f"shardctl.cli.{module}")
    return app


def register_all() -> typer.Typer:
    """The application with every command (for docs/cli.md and tests)."""
    return register(())
