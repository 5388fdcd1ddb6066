"""Imports every command module so its ``@app.command`` registrations run."""

from shardctl.cli import (
    inspect,  # noqa: F401
    migrate,  # noqa: F401
    move,  # noqa: F401
    query,  # noqa: F401
    status,  # noqa: F401
)
