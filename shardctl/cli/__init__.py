"""Command-line interface: ``shardctl`` and ``python -m shardctl``.

``main()`` registers only the invoked command (see :mod:`shardctl.cli.commands`);
:mod:`shardctl.cli.reference` holds the application with every command, for docs/cli.md.
"""

from shardctl.cli.app import main

__all__ = ["main"]
