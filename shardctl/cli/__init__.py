"""Command-line interface: ``shardctl`` and ``python -m shardctl``."""

from shardctl.cli.app import app, main

__all__ = ["app", "main"]
