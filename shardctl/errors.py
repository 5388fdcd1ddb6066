"""The tool's own error types and the exit codes they map to.

Every failure a user can cause (bad config, bad arguments, unreachable database) is raised as a
:class:`ShardctlError`; the CLI turns it into one paragraph on stderr and its ``exit_code``.
Anything else escaping is a bug in shardctl.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, docs/cli.md)."""

    OK = 0
    FAILURE = 1  # problems found, invalid config, a database failed, drift, refused query
    USAGE = 2  # bad arguments, unreadable or missing file
    INTERNAL = 3  # a bug in shardctl (message asks for --debug)
    INTERRUPTED = 130  # Ctrl-C / SIGINT


class ShardctlError(Exception):
    """An expected failure with a message for the user.

    ``file``/``line`` point at the offending config node when known; ``hint`` says how to fix it.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" {self.hint}"
        return text


class UsageError(ShardctlError):
    """Bad command-line arguments or an input file that cannot be read at all."""

    exit_code = ExitCode.USAGE


class ConfigError(ShardctlError):
    """The configuration is readable but invalid (see ``problems``)."""


class DatabaseError(ShardctlError):
    """A physical database could not be reached or refused an operation."""
