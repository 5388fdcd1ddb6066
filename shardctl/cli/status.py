"""``shardctl status``: parse options, call :mod:`shardctl.status`, render its report.

The service imports SQLAlchemy only when it starts counting, so loading this module costs
``route``/``map``/``validate`` nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from shardctl.cli.app import DEFAULT_CONFIG_DIR, DEFAULT_ENV, ConfigDirOption, EnvOption, app
from shardctl.cli.inspect import DATABASE_COLOURS, load
from shardctl.errors import ExitCode
from shardctl.output import dumps, message, print_table
from shardctl.status import DEFAULT_JOBS, StatusReport, collect_status

BAR_WIDTH = 30  # characters of the longest bar


class StatusFormat(StrEnum):
    table = "table"
    json = "json"


@app.command()
def status(
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Real COUNT(*) per table instead of the engine's estimates (PostgreSQL "
            "statistics, MySQL information_schema; SQLite is always exact).",
        ),
    ] = False,
    tables: Annotated[
        bool,
        typer.Option("--tables", help="Table view: also list every suffix table's count."),
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Databases queried at once.")
    ] = DEFAULT_JOBS,
    fmt: Annotated[
        StatusFormat, typer.Option("--format", "-f", help="Output format.")
    ] = StatusFormat.table,
) -> int:
    """Row counts per suffix table, entry and physical database, with the skew (largest /
    mean) of each level. Exit 0 ok, 1 a database failed or lacks suffix tables it owns (the
    others are still counted), 2 usage error."""
    topology = load(env, config_dir, connecting=True)
    report = collect_status(topology, exact=exact, jobs=jobs)
    if fmt is StatusFormat.json:
        print(dumps(report.as_dict()))
    else:
        _render(report, tables)
    for database in report.databases:
        if database.error is not None:
            message(f"error: {database.error}", style="bold red")
        elif database.missing:
            message(
                f"error: {database.label} lacks {len(database.missing)} suffix table(s) it owns: "
                f"{', '.join(database.missing)} (run `shardctl migrate`).",
                style="bold red",
            )
    return int(ExitCode.OK if report.ok else ExitCode.FAILURE)


def _count(rows: int | None, estimated: bool, failed: bool = False) -> str:
    if failed:
        return "failed"
    if rows is None:
        return "missing"
    return f"~{rows:,}" if estimated else f"{rows:,}"


def _bar(rows: int, largest: int) -> str:
    filled = round(BAR_WIDTH * rows / largest) if largest else 0
    return "█" * filled + "·" * (BAR_WIDTH - filled)


def _render(report: StatusReport, tables: bool) -> None:
    estimated = any(d.estimated for d in report.databases)
    kind = "~ marks the engine's estimates (--exact counts)" if estimated else "exact counts"
    colours = [DATABASE_COLOURS[d.index % len(DATABASE_COLOURS)] for d in report.databases]
    if tables:
        print_table(
            ["table", "#", "entry", "rows", "physical database"],
            [
                [
                    t.name,
                    t.table_number,
                    e.entry_id,
                    _count(t.rows, t.estimated, bool(d.error)),
                    d.label,
                ]
                for d in report.databases
                for e in d.entries
                for t in e.tables
            ],
            title=f"shardctl status · {report.env} · suffix tables",
            row_styles=[
                c
                for d, c in zip(report.databases, colours, strict=True)
                for e in d.entries
                for _ in e.tables
            ],  # fmt: skip
            justify={"#": "right", "rows": "right"},
        )
    print_table(
        ["entry", "table numbers", "rows", "physical database"],
        [
            [
                e.entry_id,
                f"{e.table_range[0]}-{e.table_range[1]}",
                _count(e.rows, d.estimated),
                d.label,
            ]
            for d in report.databases
            for e in d.entries
        ],  # fmt: skip
        title=f"shardctl status · {report.env} · entries",
        row_styles=[c for d, c in zip(report.databases, colours, strict=True) for _ in d.entries],
        justify={"rows": "right"},
    )
    largest = max((d.rows for d in report.databases), default=0)
    total = report.rows
    print_table(
        ["physical database", "driver", "entries", "rows", "share", ""],
        [
            [
                d.label,
                d.driver,
                ", ".join(e.entry_id for e in d.entries),
                _count(d.rows, d.estimated, bool(d.error)),
                f"{d.rows / total:.1%}" if total and not d.error else "",
                "" if d.error else _bar(d.rows, largest),
            ]
            for d in report.databases
        ],
        title=f"shardctl status · {report.env} · physical databases",
        caption=f"{total:,} rows · {kind} · skew (largest / mean): "
        + "; ".join(
            f"{s.level} {s.ratio:.2f} ({s.largest})"
            if s.ratio is not None
            else f"{s.level} - (empty)"
            for s in report.skews
        ),  # fmt: skip
        row_styles=colours,
        justify={"rows": "right", "share": "right"},
    )
