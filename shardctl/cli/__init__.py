"""Command-line interface: ``shardctl`` and ``python -m shardctl``.

Importing this package registers every command on :data:`app` (docs/cli.md is generated from it:
``typer shardctl.cli utils docs --name shardctl --output docs/cli.md``).
"""

from shardctl.cli import commands  # noqa: F401  (registers the commands on `app`)
from shardctl.cli.app import app, main

__all__ = ["app", "main"]
