"""``shardctl move``: parse options, call :mod:`shardctl.move`, draw progress and verification.

SQLAlchemy and ruamel.yaml are imported inside the command, so loading this module costs
``route``/``map``/``validate`` nothing.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardctl.cli.app import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_ENV,
    STATE,
    ConfigDirOption,
    EnvOption,
    SchemaOption,
    app,
)
from shardctl.dsn import DRIVERS
from shardctl.errors import ExitCode, UsageError
from shardctl.output import console, message, print_table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from shardctl.move import MovePlan, TableCheck

DriverChoice = StrEnum("DriverChoice", {name: name for name in DRIVERS})  # type: ignore[misc]
PHASE_TITLES = {
    "compare": "comparing rows already on the target",
    "copy": "copying",
    "verify": "verifying",
}


@app.command()
def move(
    entry: Annotated[str, typer.Option("--entry", metavar="ID", help="Id of the entry to move.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="DSN",
            help="The new database, as it should appear in the config. Quote ${VAR} references "
            "on the command line ('password=${DB_PW}'): they are written as given and expanded "
            "only to connect. A relative SQLite path resolves against the parent of the config "
            "directory, like the config's own.",
        ),
    ],
    driver: Annotated[
        DriverChoice | None,
        typer.Option("--driver", help="Driver of the new database (default: the entry's)."),
    ] = None,
    reader: Annotated[
        list[str] | None,
        typer.Option(
            "--reader",
            metavar="DSN",
            help="A reader (replica) of the new database, repeatable; becomes the entry's "
            "reader_dsns. Without it the entry has no readers (the old ones replicate the old "
            "database) and reads go to the writer.",
        ),
    ] = None,
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    schema_file: SchemaOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show what would be copied and the config diff; connect to nothing."
        ),
    ] = False,
    drop_source: Annotated[
        bool,
        typer.Option(
            "--drop-source",
            help="After a verified copy and the config switch (in this same run), drop the "
            "entry's suffix tables on the old database.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Do not ask for confirmation (required when stdin is not a terminal).",
        ),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Rows per copy batch, one transaction each (default 2000)."
        ),
    ] = None,
) -> int:
    """Move one entry's suffix tables to another database: create them there (migrate's
    schema), copy the rows in key order, verify row counts and checksums of every table on
    both sides, then rewrite only that entry's dsn / writer_dsn / reader_dsns in the config
    (comments and layout kept). Freeze writes to the entry first (docs/Resharding.md). An
    interrupted move resumes where it stopped. Exit 0 moved, 1 conflict, verification or
    database failure (config unchanged), 2 usage error, 130 interrupted (run again to resume)."""
    from shardctl.move import DEFAULT_BATCH_SIZE, plan_move, run_move

    plan = plan_move(
        config_dir, env, entry, to, driver=driver and driver.value, readers=reader or (),
        schema_file=schema_file, connecting=not dry_run,
    )  # fmt: skip
    STATE.secrets |= plan.secrets
    for warning in plan.warnings:
        message(f"warning: {warning}", style="yellow")
    if plan.already_there:
        message(
            f"Entry {plan.entry.id} already uses {plan.target.redacted()}; nothing to move. "
            "Tables left on its old database show as stray-table in `shardctl migrate --check`."
        )
        return int(ExitCode.OK)
    _print_plan(plan, drop_source)
    if dry_run:
        sys.stdout.write(plan.diff())
        return int(ExitCode.OK)
    _confirm(plan, drop_source, yes)
    listener = _ProgressBar()
    try:
        with listener:
            result = run_move(plan, batch_size=batch_size or DEFAULT_BATCH_SIZE,
                              drop_source=drop_source, listener=listener)  # fmt: skip
    except KeyboardInterrupt:
        message("Interrupted: the config is unchanged; run the same command again to resume.")
        raise
    except Exception as error:
        checks: list[TableCheck] | None = getattr(error, "checks", None)
        if checks is not None:
            _print_checks(checks)
        raise
    _print_checks(result.checks)
    copied = sum(result.copied.values())
    resumed = sum(result.resumed.values())
    message(
        f"Entry {plan.entry.id}: {len(result.created)} table(s) created, {copied:,} row(s) copied"
        + (f" ({resumed:,} were already there)" if resumed else "")
        + f", {len(result.checks)} table(s) verified; {plan.config_file} now points it at "
        f"{plan.target.redacted()}. Deploy the config, then lift the write freeze.",
        style="green",
    )
    if result.dropped:
        message(f"Dropped {len(result.dropped)} table(s) on {plan.source.redacted()}.")
    elif plan.source.identity != plan.target.identity:
        message(
            f"The old tables are still on {plan.source.redacted()}; once the new config is "
            "deployed, drop them (move --drop-source next time, or by hand).",
        )
    return int(ExitCode.OK)


def _print_plan(plan: MovePlan, drop_source: bool) -> None:
    names = [t.name for t in plan.tables]
    message(
        f"Move entry {plan.entry.id} (table numbers {plan.entry.table_range[0]}-"
        f"{plan.entry.table_range[1]}, {len(names)} table(s): {names[0]} … {names[-1]})\n"
        f"  from {plan.source.redacted()} ({plan.source.driver})\n"
        f"  to   {plan.target.redacted()} ({plan.target.driver})\n"
        f"  then rewrite {plan.config_file}"
        + (" and drop the tables on the source" if drop_source else "")
    )


def _confirm(plan: MovePlan, drop_source: bool, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "move copies data and rewrites the config; pass --yes to run it without a terminal."
        )
    what = "copy, verify, rewrite the config" + (
        " and DROP the source tables" if drop_source else ""
    )
    if not typer.confirm(f"Go ahead ({what})?", err=True):
        raise typer.Abort()


def _print_checks(checks: list[TableCheck]) -> None:
    print_table(
        ["table", "source rows", "target rows", "source checksum", "target checksum", "result"],
        (
            [
                c.table,
                f"{c.source_rows:,}",
                f"{c.target_rows:,}",
                c.source_checksum[:16],
                c.target_checksum[:16],
                "ok" if c.ok else f"MISMATCH: {c.first_difference or 'checksums differ'}",
            ]
            for c in checks
        ),
        title="verification",
        row_styles=(None if c.ok else "bold red" for c in checks),
        justify={"source rows": "right", "target rows": "right"},
    )


class _ProgressBar:
    """A rich progress bar on stderr, one bar per phase."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.title = ""

    def __enter__(self) -> _ProgressBar:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=False,
        )
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.progress is not None
        self.progress.stop()

    def phase(self, name: str, total: int) -> None:
        assert self.progress is not None
        self.title = PHASE_TITLES[name]
        self.task = self.progress.add_task(self.title, total=total, visible=total > 0)

    def advance(self, table: str, rows: int) -> None:
        assert self.progress is not None and self.task is not None
        self.progress.update(self.task, advance=rows, description=f"{self.title} {table}")
