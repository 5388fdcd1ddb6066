"""Command-line interface: ``shardctl`` and ``python -m shardctl``.

Importing this package registers every command on :data:`app` (docs/cli.md is generated from it:
``typer shardctl.cli utils docs --name shardctl --output docs/cli.md``).
"""

from shardctl.cli.app import app, main
from shardctl.cli import commands  # noqa: E402,F401,I001  (registers the commands on `app`)

__all__ = ["app", "main"]
