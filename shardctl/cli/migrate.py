"""``shardctl migrate``: parse options, call :mod:`shardctl.migrate`, render its results.

SQLAlchemy is imported inside the command, so loading this module costs ``route``/``map``/
``validate`` nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from itertools import groupby
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardctl.cli.app import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_ENV,
    ConfigDirOption,
    EnvOption,
    SchemaOption,
    app,
    report_warnings,
)
from shardctl.cli.inspect import load
from shardctl.errors import ExitCode, UsageError
from shardctl.output import console, dumps, message, print_table

if TYPE_CHECKING:
    from shardctl.migrate import DatabaseOutcome, MigrateResult, SqlScript, Step
    from shardctl.routing import Topology
    from shardctl.schema import Schema


class MigrateFormat(StrEnum):
    table = "table"
    json = "json"


@app.command("migrate")
def migrate_command(
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database",
            "-d",
            metavar="NAME",
            help="Only this physical database (repeatable): an entry id (or master id) selects "
            "its database; any other NAME selects every database whose path or redacted DSN "
            "contains it (case-insensitive).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
    ] = False,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the DDL that creates each database from empty, in its own dialect, "
            "without connecting (for a DBA; like alembic's offline mode).",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Drift check: change nothing; exit 1 when a database lacks an owned table, "
            "column or index, or holds a suffix table it does not own.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Apply without asking. Without it, a terminal asks for confirmation before "
            "anything is created; when stdin is not a terminal (CI, pipes) migrate proceeds.",
        ),
    ] = False,
    schema_file: SchemaOption = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option(
            "--lock-timeout",
            min=0,
            help="Seconds to wait for another migrate (or a lock on a table being changed) on "
            "the same database before giving up on it (default: 60).",
        ),
    ] = None,
    fmt: Annotated[
        MigrateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = MigrateFormat.table,
) -> int:
    """Create on every physical database exactly the suffix tables it owns, from the one schema
    definition: missing tables (with their indexes), missing indexes, and missing nullable or
    defaulted columns. Never drops or alters anything; drift is reported. Exit 0 ok, 1 a
    database failed (or drift, with --check), 2 usage error."""
    if dry_run + sql + check > 1:
        raise UsageError("--dry-run, --sql and --check are alternatives; give one of them.")
    from shardctl import migrate
    from shardctl.schema import load_schema, schema_path

    topology = load(env, config_dir, connecting=not sql)
    schema, schema_warnings = load_schema(schema_file or schema_path(config_dir))
    report_warnings(schema_warnings)
    names = tuple(database or ())
    if sql:
        _print_sql(migrate.offline_sql(topology, schema, databases=names), fmt)
        return int(ExitCode.OK)
    total = len(migrate.select_targets(topology, schema, names))
    if check or dry_run:
        result = inspect_databases(topology, schema, names, drift=check)
        render(result, fmt, plans=True)
        return int(ExitCode.OK if result.ok else ExitCode.FAILURE)
    timeout = migrate.LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    shown = False
    if not yes and sys.stdin.isatty():
        with _progress(total, "plan") as tick:
            preview = migrate.plan(topology, schema, databases=names, on_database=tick)
        if preview.pending:  # else: apply below finds nothing to do and says so
            if fmt is MigrateFormat.table:
                _print_plans(preview)
            message(_summary(preview))
            if not typer.confirm(f"Apply {preview.pending} change(s)?", err=True):
                message("Nothing applied.")
                return int(ExitCode.FAILURE)
            shown = True
    with _progress(total, "migrate") as tick:
        result = migrate.apply(
            topology, schema, databases=names, on_database=tick, lock_timeout=timeout
        )
    render(result, fmt, plans=not shown)
    return int(ExitCode.OK if result.ok else ExitCode.FAILURE)


def inspect_databases(
    topology: Topology, schema: Schema, names: tuple[str, ...] = (), *, drift: bool
) -> MigrateResult:
    """Connect read-only and plan (``drift=False``) or check for drift, with a progress bar on
    a terminal. Also behind ``shardctl validate --live``."""
    from shardctl import migrate

    run = migrate.check if drift else migrate.plan
    total = len(migrate.select_targets(topology, schema, names))
    with _progress(total, "check" if drift else "plan") as tick:
        return run(topology, schema, databases=names, on_database=tick)


@contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[[DatabaseOutcome], None] | None]:
    """A bar across databases on a terminal (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        f"[bold]{what}[/]",
        BarColumn(),
        MofNCompleteColumn(),
        "databases",
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(what, total=total)
        yield lambda _outcome: progress.advance(task)


def render(result: MigrateResult, fmt: MigrateFormat, *, plans: bool) -> None:
    """Plans (tables) or the JSON document on stdout; warnings, errors, summary on stderr."""
    if fmt is MigrateFormat.json:
        print(dumps(result_json(result)))
    elif plans:
        _print_plans(result)
    for warning in result.warnings:
        message(f"warning: {warning}", style="yellow")
    for outcome in result.failed:
        message(f"Error: {outcome.error}", style="bold red")
    message(_summary(result), style="green" if result.ok else "bold red")


def _print_plans(result: MigrateResult) -> None:
    """A table per database that has changes or drift (the summary line covers the rest)."""
    for outcome in result.databases:
        plan = outcome.plan
        if plan is None or not (plan.steps or plan.drift):
            continue
        rows: list[list[Any]] = []
        styles: list[str | None] = []
        for (action, entry, _, detail), steps in groupby(plan.steps, _step_group):
            tables = [step.table for step in steps]
            span = tables[0] if len(tables) == 1 else f"{tables[0]} … {tables[-1]} ({len(tables)})"
            verb = f"missing {action.split()[1]}" if result.mode == "check" else action
            rows.append([span, entry, verb, detail])
            styles.append("red" if result.mode == "check" else "green")
        for finding in plan.drift:
            rows.append([finding.table, finding.entry_id or "none", finding.code, finding.message])
            styles.append("yellow")
        if plan.up_to_date:
            rows.append([f"{len(plan.up_to_date)} table(s)", "", "up to date", ""])
            styles.append("dim")
        entries = ", ".join(outcome.target.entry_ids)
        print_table(
            ["tables", "entry", "change", "detail"],
            rows,
            title=f"{outcome.target.label} ({outcome.target.driver}) · entries {entries}",
            caption=f"{outcome.status} · {outcome.seconds:.2f} s",
            row_styles=styles,
        )


def _step_group(step: Step) -> tuple[str, str, str, str]:
    """Consecutive steps that read the same (``users_000 … users_003``) share this key: action,
    entry, logical table, and the column or index (short name) made."""
    from shardctl.schema import index_name

    detail = ""
    if step.action == "create index":
        detail = step.name.removeprefix(index_name(step.table, ""))
    elif step.action == "add column":
        detail = step.name
    return step.action, step.entry_id, step.logical, detail


def _summary(result: MigrateResult) -> str:
    count = len(result.databases)
    parts = [f"{result.mode}: {count} database(s)"]
    if result.mode == "apply":
        made = [
            f"{result.applied('create table')} table(s) created",
            f"{result.applied('create index')} index(es) created",
            f"{result.applied('add column')} column(s) added",
        ]
        if any(result.applied(a) for a in ("create table", "create index", "add column")):
            parts.append(", ".join(made))
        elif not result.failed:
            parts.append(f"nothing to do, all {result.up_to_date} table(s) up to date")
    elif result.mode == "dry-run":
        parts.append(
            f"{result.pending} change(s) to apply, {result.up_to_date} table(s) up to date, "
            "nothing changed"
        )
    else:
        parts.append(
            f"{result.pending} missing, {result.drift} drift" if not result.ok else "in sync"
        )
    if result.drift and result.mode != "check":
        parts.append(f"{result.drift} drift finding(s) reported, not applied")
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    parts.append(f"{result.seconds:.2f} s")
    return " · ".join(parts)


def result_json(result: MigrateResult) -> dict[str, Any]:
    """The JSON document of ``--format json`` (documented in docs/Sharding.md)."""

    def step_json(step: Step) -> dict[str, Any]:
        return {"action": step.action, "table": step.table, "name": step.name,
                "entry_id": step.entry_id}  # fmt: skip

    return {
        "mode": result.mode,
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "summary": {
            "databases": len(result.databases),
            "failed": len(result.failed),
            "tables_created": result.applied("create table"),
            "indexes_created": result.applied("create index"),
            "columns_added": result.applied("add column"),
            "pending": result.pending,
            "up_to_date": result.up_to_date,
            "drift": result.drift,
        },
        "databases": [
            {
                "database": outcome.target.label,
                "driver": outcome.target.driver,
                "entries": list(outcome.target.entry_ids),
                "status": outcome.status,
                "steps": [step_json(s) for s in outcome.plan.steps] if outcome.plan else [],
                "applied": [step_json(s) for s in outcome.applied],
                "findings": [vars(f) for f in outcome.plan.findings] if outcome.plan else [],
                "up_to_date": len(outcome.plan.up_to_date) if outcome.plan else 0,
                "error": str(outcome.error) if outcome.error else None,
                "seconds": round(outcome.seconds, 3),
            }
            for outcome in result.databases
        ],
        "warnings": result.warnings,
    }


def _print_sql(scripts: list[SqlScript], fmt: MigrateFormat) -> None:
    if fmt is MigrateFormat.json:
        print(dumps([
            {"database": s.target.label, "driver": s.target.driver, "dialect": s.dialect,
             "entries": list(s.target.entry_ids), "statements": list(s.statements)}
            for s in scripts
        ]))  # fmt: skip
        return
    out = sys.stdout
    out.write("-- shardctl migrate --sql: DDL that creates each database from empty\n")
    for script in scripts:
        target = script.target
        out.write(
            f"\n-- database {target.label} ({script.dialect}) · entries "
            f"{', '.join(target.entry_ids)} · {len(target.tables)} table(s)\n\n"
        )
        out.writelines(f"{statement};\n\n" for statement in script.statements)
