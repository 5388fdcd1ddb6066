"""``query-all``: one SELECT over every suffix table on every physical database, merged.

sqlglot and SQLAlchemy are imported inside the command, so other commands never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardctl.cli.app import DEFAULT_CONFIG_DIR, DEFAULT_ENV, ConfigDirOption, EnvOption, app
from shardctl.cli.inspect import load
from shardctl.errors import UsageError
from shardctl.output import Format, dumps, message, print_table, stream_records

if TYPE_CHECKING:
    from shardctl.query import QueryResult
    from shardctl.sqlplan import QueryPlan


@app.command("query-all")
def query_all(
    sql: Annotated[
        str,
        typer.Argument(
            help="One SELECT naming logical tables (users, posts …), in the databases' dialect.",
            show_default=False,
        ),
    ],
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Print the SQL each physical database would run; connect to none."
        ),
    ] = False,
    writer: Annotated[
        bool, typer.Option("--writer", help="Read from the writers instead of the readers.")
    ] = False,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="When a database fails, print the others' result and a warning naming the "
            "failed databases and the table numbers not covered.",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds each database may take.", show_default=False),
    ] = None,
    stats: Annotated[
        bool, typer.Option("--stats", help="Per-database rows and milliseconds on stderr.")
    ] = False,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Allow UPDATE/DELETE, run on every suffix table (needs --yes)."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm --write.")] = False,
    schema_file: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            help="Schema definition naming each table's shard_key, which joins must equate and "
            "WHERE may pin (default: CONFIG_DIR/schema.yaml; without it, users.id and "
            "<table>.user_id).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run one SELECT across every suffix table on every physical database and merge the
    results exactly as one table holding all rows would answer: ORDER BY, LIMIT/OFFSET,
    COUNT/SUM/MIN/MAX/AVG, GROUP BY/HAVING, DISTINCT. What cannot be merged exactly, and any
    write without --write --yes, is refused (exit 1). A WHERE that pins the routing key
    (id = 7, user_id IN (3, 11)) reads only the table numbers that can hold its rows."""
    from shardctl.query import run_plan, schema_shard_keys
    from shardctl.schema import schema_path
    from shardctl.sqlplan import QueryRefused, plan_query

    if yes and not write:
        raise UsageError("--yes only confirms --write.")
    if write and allow_partial:
        raise UsageError("--allow-partial cannot be combined with --write: a write is all or none.")
    if write and not (yes or explain):
        raise QueryRefused(
            "query-all refuses to write without confirmation: --write changes every suffix "
            "table on every database. Add --yes (try --explain first)."
        )
    topology = load(env, config_dir, connecting=not explain)
    keys = schema_shard_keys(
        topology, schema_file or schema_path(config_dir), required=schema_file is not None
    )
    plan = plan_query(sql, topology, allow_write=write, shard_keys=keys)
    if explain:
        _explain(plan, fmt)
        return
    result = run_plan(topology, plan, writer=writer, allow_partial=allow_partial, timeout=timeout)
    with result:
        if fmt is Format.table:
            print_table(result.columns, result.rows)
        else:
            stream_records(result.columns, result.rows, fmt)
    _report(result, stats)


def _explain(plan: QueryPlan, fmt: Format) -> None:
    records: list[dict[str, Any]] = [
        {
            "database": statement.database.label,
            "entries": [entry.id for entry in statement.database.entries],
            "table_numbers": list(statement.table_numbers),
            "sql": statement.sql,
            "probe": statement.probe,
            "pruning": str(plan.pruning) if plan.pruning else None,
        }
        for statement in plan.statements
    ]
    if fmt is Format.table:
        if plan.pruning:
            print(f"-- {plan.pruning}\n")
        for record in records:
            print(
                f"-- {record['database']} · entries {', '.join(record['entries'])} · "
                f"{len(record['table_numbers'])} table number(s)"
            )
            if record["probe"]:
                print(f"-- first, the collation probe:\n{record['probe']};")
            print(f"{record['sql']};\n")
    elif fmt is Format.json:
        print(dumps(records))
    else:
        columns = list(records[0])
        stream_records(columns, ([r[c] for c in columns] for r in records), fmt)


def _report(result: QueryResult, stats: bool) -> None:
    for warning in result.warnings:
        message(f"warning: {warning}", style="yellow")
    if stats:
        for item in result.stats:
            outcome = f"failed: {item.error}" if item.error else f"{item.rows} row(s)"
            message(f"stats: {item.database}: {outcome}, {item.ms:g} ms")
