"""The application with every command registered, for the generated CLI reference::

.venv/bin/typer shardctl.cli.reference utils docs --name shardctl --output docs/cli.md
"""

from shardctl.cli.commands import register_all

app = register_all()
