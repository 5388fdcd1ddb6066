"""The Typer application, its shared options and the one place errors become exit codes.

Commands live in sibling modules (``inspect``: validate/map/route, ``migrate``, ``query``); they
parse arguments, call a service and render its result, nothing more.
"""

# No `from __future__ import annotations` (see cli/inspect.py): Typer reads these signatures.
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import ClickException  # Typer ≥ 0.29 vendors Click

from shardctl import __version__
from shardctl.errors import ConfigError, ExitCode, ShardctlError
from shardctl.output import message
from shardctl.problems import Problem

app = typer.Typer(
    name="shardctl",
    help="Validate, map, route, migrate and query suffix-sharded tables "
    "(users_000 … users_NNN) spread over SQLite, PostgreSQL and MySQL databases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


class RunState:
    """What the error handler needs to know about the current run."""

    def __init__(self) -> None:
        self.debug = False
        self.secrets: set[str] = set()


STATE = RunState()


def _debug_from_environment() -> bool:
    return os.environ.get("SHARDCTL_DEBUG", "") not in ("", "0")


EnvOption = Annotated[
    str,
    typer.Option(
        "--env",
        "-e",
        envvar=["SHARDCTL_ENV", "APP_ENV"],
        help="Environment: reads CONFIG_DIR/ENV/database.yaml.",
        show_envvar=True,
    ),
]
ConfigDirOption = Annotated[
    Path,
    typer.Option(
        "--config-dir",
        envvar="SHARDCTL_CONFIG_DIR",
        help="Directory holding one sub-directory per environment. Relative SQLite paths "
        "resolve against its parent.",
        show_envvar=True,
        file_okay=False,
    ),
]
SchemaOption = Annotated[
    Path | None,
    typer.Option(
        "--schema",
        help="Schema definition to use (default: CONFIG_DIR/schema.yaml).",
        dir_okay=False,
    ),
]
DEFAULT_ENV = "develop"
DEFAULT_CONFIG_DIR = Path("config")


def _version(value: bool) -> None:
    if value:
        print(f"shardctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show a (redacted) traceback for unexpected errors."),
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Exit codes: 0 ok · 1 problems found or an operation failed · 2 usage error or
    unreadable file · 130 interrupted."""
    STATE.debug = debug or _debug_from_environment()


def format_problem(problem: Problem) -> str:
    return f"{problem.file}:{problem.line}: {problem.severity} [{problem.code}] {problem.message}"


def report_warnings(problems: list[Problem]) -> None:
    """Warnings on stderr for commands that are not `validate`; unset variables as one line."""
    unset = [p for p in problems if p.code == "unset-variable" and not p.is_error]
    for problem in problems:
        if not problem.is_error and problem not in unset:
            message(format_problem(problem), style="yellow")
    if unset:
        names = ", ".join(p.message.split()[2] for p in unset)
        message(
            f"warning: {len(unset)} environment variable(s) not set, shown as placeholders: "
            f"{names}",
            style="yellow",
        )


def _redacted(text: str) -> str:
    """``text`` without this run's secrets and password-shaped values (imported on the way
    out: only failures need the patterns)."""
    from shardctl.redact import scrub

    return scrub(text, STATE.secrets)


def _fail(error: ShardctlError) -> int:
    problems: list[Problem] = getattr(error, "problems", [])
    for problem in problems:
        message(
            _redacted(format_problem(problem)),
            style="red" if problem.is_error else "yellow",
        )
    message(f"Error: {_redacted(str(error))}", style="bold red")
    if STATE.debug:
        message(_redacted(traceback.format_exc()))
    return int(error.exit_code)


def main() -> None:
    """Console-script entry point: runs the app and maps every failure to an exit code."""
    from shardctl.cli.commands import register

    register(sys.argv[1:])
    try:
        result = app(standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
        if code == ExitCode.INTERRUPTED:  # Typer turns KeyboardInterrupt into Exit(130)
            message("Interrupted.")
    except ShardctlError as error:
        code = _fail(error)
    except KeyboardInterrupt:
        message("Interrupted.")
        code = int(ExitCode.INTERRUPTED)
    except typer.Abort:
        message("Interrupted.")
        code = int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `shardctl route --stdin … | head`
        sys.stderr.close()
        code = 0
    except ClickException as error:  # usage errors: Click's own message, exit 2
        error.show()
        code = int(error.exit_code)
    except Exception as error:  # noqa: BLE001 - last line of defence: no raw traceback
        message(_redacted(f"Internal error: {type(error).__name__}: {error}"))
        if STATE.debug:
            message(_redacted(traceback.format_exc()))
        else:
            message("This is a bug in shardctl; run again with --debug for details.")
        code = int(ExitCode.INTERNAL)
    sys.exit(code)


__all__ = ["ConfigError", "app", "main"]
