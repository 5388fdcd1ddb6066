"""Imports every command module so its ``@app.command`` registrations run."""

from shardctl.cli import inspect  # noqa: F401
from shardctl.cli import migrate  # noqa: F401
