"""Offline commands: ``validate``, ``map`` and ``route``. They never import a database driver."""

# No `from __future__ import annotations` in the command modules: Typer would evaluate each
# command's string annotations twice on every start (≈ 4 % of `shardctl route 1 -f json`).
import re
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardctl.cli.app import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_ENV,
    STATE,
    ConfigDirOption,
    EnvOption,
    app,
    format_problem,
    report_warnings,
)
from shardctl.config import Database
from shardctl.errors import ExitCode, UsageError
from shardctl.output import Format, dumps, print_table, stream_records
from shardctl.problems import Problem
from shardctl.routing import InvalidId, Topology, check_id, parse_id, span
from shardctl.validate import Report, load_topology, validate_all, validate_env

if TYPE_CHECKING:
    from shardctl.migrate import MigrateResult

DATABASE_COLOURS = ("cyan", "green", "magenta", "yellow", "blue", "red", "bright_cyan",
                    "bright_green", "bright_magenta", "bright_yellow", "bright_blue")  # fmt: skip


def load(env: str, config_dir: Path, *, connecting: bool = False) -> Topology:
    """The validated topology for a command; warnings go to stderr, errors raise ConfigError."""
    topology, warnings = load_topology(config_dir, env, connecting=connecting)
    STATE.secrets |= topology.secrets
    report_warnings(warnings)
    return topology


def summary(topology: Topology) -> str:
    names = ", ".join(topology.table_names)
    return (
        f"{len(topology.entries)} entries over {len(topology.databases)} physical database(s), "
        f"{topology.suffix_count} table numbers × {len(topology.tables)} logical table(s) "
        f"({names}) · env {topology.env} · {topology.file}"
    )


# --- validate ------------------------------------------------------------------------------


class ValidateFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def _github_escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _github_line(problem: Problem) -> str:
    title = _github_escape(f"shardctl {problem.code}", property_value=True)
    file = _github_escape(problem.file, property_value=True)
    return (
        f"::{problem.severity} file={file},line={problem.line},title={title}::"
        f"{_github_escape(problem.message)}"
    )


@app.command()
def validate(
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    all_envs: Annotated[
        bool,
        typer.Option("--all-envs", help="Validate every environment and compare topologies."),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="With --all-envs: topology differences are errors."),
    ] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also connect to every physical database and check it holds exactly the "
            "tables, columns and indexes it owns (same as `shardctl migrate --check`).",
        ),
    ] = False,
    fmt: Annotated[
        ValidateFormat,
        typer.Option(
            "--format",
            "-f",
            help="text for people, json for scripts, github for GitHub Actions annotations.",
        ),
    ] = ValidateFormat.text,
) -> int:
    """Check config files: YAML, keys and types, DSNs, and that table_range values tile
    0 … suffix_count-1 exactly. Collects every problem. Exit 0 clean (warnings allowed),
    1 errors, 2 unreadable file or bad usage."""
    if all_envs and live:
        raise UsageError("--live checks one environment's databases; drop --all-envs.")
    if all_envs:
        reports = validate_all(config_dir, strict=strict)
        if not reports:
            raise UsageError(
                f"No environments found under {config_dir} (expected {config_dir}/ENV/"
                "database.yaml). Pass --config-dir."
            )
    else:
        # --live connects, so an unset ${VAR} is an error here, as for every connecting command
        reports = [validate_env(config_dir, env, connecting=live)]
    problems = [p for report in reports for p in report.problems]
    ok = all(report.ok for report in reports)
    topology = reports[0].topology
    live_result = _live_check(topology, config_dir) if live and topology is not None else None
    if fmt is ValidateFormat.json:
        document: dict[str, Any] = {
            "ok": ok and (live_result is None or live_result.ok),
            "problems": [p.as_dict() for p in problems],
            "envs": [{"env": r.env, "file": r.file, "ok": r.ok} for r in reports],
        }
        if live_result is not None:
            from shardctl.cli.migrate import result_json

            document["live"] = result_json(live_result)
        print(dumps(document))
    elif fmt is ValidateFormat.github:
        for problem in problems:
            print(_github_line(problem))
    else:
        _print_reports(reports)
    if live_result is not None:
        if fmt is not ValidateFormat.json:
            from shardctl.cli.migrate import MigrateFormat, render

            render(live_result, MigrateFormat.table, plans=True)
        ok = live_result.ok
    return int(ExitCode.OK if ok else ExitCode.FAILURE)


def _live_check(topology: Topology, config_dir: Path) -> "MigrateResult":
    """``migrate --check`` for ``validate --live``, on the topology just validated (its
    warnings are already in the report: the file is not read again)."""
    from shardctl.cli.migrate import inspect_databases
    from shardctl.schema import load_schema, schema_path

    STATE.secrets |= topology.secrets
    schema, schema_warnings = load_schema(schema_path(config_dir))
    report_warnings(schema_warnings)
    return inspect_databases(topology, schema, drift=True)


def _print_reports(reports: list[Report]) -> None:
    from shardctl.output import message

    for report in reports:
        for problem in report.problems:
            print(format_problem(problem))
        errors = sum(p.is_error for p in report.problems)
        warnings = len(report.problems) - errors
        if report.topology is not None:
            verdict = f"OK ({warnings} warning(s)): {summary(report.topology)}"
            message(verdict, style="green")
        else:
            message(f"{report.file}: {errors} error(s), {warnings} warning(s)", style="bold red")


# --- map -----------------------------------------------------------------------------------


class MapFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class MapBy(StrEnum):
    table = "table"
    database = "database"


def _readers(topology: Topology, table_number: int) -> list[str]:
    return [dsn.redacted() for dsn in topology.entry_for(table_number).readers]


def _reader_places(database: Database) -> str:
    """Readers for a table cell: one ``host:port/db`` per line, or ``(writer)``."""
    return "\n".join(dsn.place for dsn in database.readers) or "(writer)"


def map_rows(topology: Topology) -> Iterator[dict[str, Any]]:
    """One record per table number, in order."""
    for number in range(topology.suffix_count):
        entry = topology.entry_for(number)
        yield {
            "table_number": number,
            "entry_id": entry.id,
            "database": topology.database_for(number).label,
            "tables": {name: topology.suffix_table(name, number) for name in topology.table_names},
            "readers": _readers(topology, number),
            "reader_policy": entry.reader_policy,
        }


def database_rows(topology: Topology) -> list[dict[str, Any]]:
    """One record per physical database with its entries and their ranges."""
    return [
        {
            "database": db.label,
            "driver": db.driver,
            "entries": [
                {
                    "entry_id": e.id,
                    "table_range": list(e.table_range),
                    "readers": [r.redacted() for r in e.readers],
                    "reader_policy": e.reader_policy,
                }
                for e in db.entries
            ],  # fmt: skip
            "table_count": len(db.table_numbers),
        }
        for db in topology.databases
    ]


@app.command("map")
def map_(
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    by: Annotated[
        MapBy,
        typer.Option("--by", help="One row per table number, or grouped per physical database."),
    ] = MapBy.table,
    fmt: Annotated[MapFormat, typer.Option("--format", "-f", help="Output format.")] = (
        MapFormat.table
    ),
) -> None:
    """Show which entry and physical database serve every table number (passwords redacted,
    SQLite paths resolved), plus the master databases."""
    topology = load(env, config_dir)
    if by is MapBy.database:
        rows = database_rows(topology)
        if fmt is MapFormat.json:
            print(dumps(rows))
        elif fmt is MapFormat.csv:
            stream_records(
                ["database", "driver", "entry_id", "table_range", "readers", "reader_policy"],
                ([db["database"], db["driver"], e["entry_id"], span(*e["table_range"]),
                  " ".join(e["readers"]), e["reader_policy"]]
                 for db in rows for e in db["entries"]),
                Format.csv,
            )  # fmt: skip
        else:
            _print_by_database(topology)
        return
    if fmt is MapFormat.json:
        print(dumps(list(map_rows(topology))))
    elif fmt is MapFormat.csv:
        names = list(topology.table_names)
        stream_records(
            ["table_number", "entry_id", "database", *names, "readers", "reader_policy"],
            ([r["table_number"], r["entry_id"], r["database"], *r["tables"].values(),
              " ".join(r["readers"]), r["reader_policy"]] for r in map_rows(topology)),
            Format.csv,
        )  # fmt: skip
    else:
        _print_map(topology)


def _colour(topology: Topology, table_number: int) -> str:
    return DATABASE_COLOURS[topology.database_for(table_number).index % len(DATABASE_COLOURS)]


def _print_map(topology: Topology) -> None:
    rows = list(map_rows(topology))
    print_table(
        ["#", "tables", "entry", "physical database", "readers", "policy"],
        (
            [
                r["table_number"],
                " ".join(r["tables"].values()),
                r["entry_id"],
                r["database"],
                "\n".join(r["readers"]) or "(writer)",
                r["reader_policy"],
            ]
            for r in rows
        ),  # fmt: skip
        title=f"shardctl map · {topology.env}",
        caption=summary(topology),
        row_styles=(_colour(topology, r["table_number"]) for r in rows),
        justify={"#": "right"},
    )
    _print_master(topology)


def _print_by_database(topology: Topology) -> None:
    rows: list[list[Any]] = []
    styles: list[str] = []
    for db in topology.databases:
        for position, entry in enumerate(db.entries):
            lo, hi = entry.table_range
            first = position == 0
            rows.append([
                db.label if first else "", db.driver if first else "", entry.id, span(lo, hi),
                hi - lo + 1, _reader_places(entry),
            ])  # fmt: skip
            styles.append(DATABASE_COLOURS[db.index % len(DATABASE_COLOURS)])
    print_table(
        ["physical database", "driver", "entry", "table numbers", "tables", "readers"],
        rows,
        title=f"shardctl map --by database · {topology.env}",
        caption=summary(topology),
        row_styles=styles,
        justify={"tables": "right"},
    )
    _print_master(topology)


def _print_master(topology: Topology) -> None:
    if not topology.master:
        return
    print_table(
        ["master database", "driver", "writer", "readers", "policy"],
        (
            [
                m.id,
                m.driver,
                m.writer.redacted(),
                "\n".join(r.redacted() for r in m.readers) or "(writer)",
                m.reader_policy,
            ]
            for m in topology.master
        ),  # fmt: skip
        title="unsharded (master group)",
    )


# --- route ---------------------------------------------------------------------------------

STDIN_CHUNK = 1 << 16  # bytes of stdin per batch (bigger blocks cost page faults, not less)
# A run of lines that are each a canonical id (digits, no sign or leading zero, < 20 digits):
# such lines can be copied to the output as they are; anything else takes the checked path.
_CANONICAL_IDS = re.compile(rb"(?:(?:0|[1-9][0-9]{0,18})\n)*")


def route_record(topology: Topology, table_number: int) -> dict[str, Any]:
    """Everything about one table number except the id (shared by every id routed to it)."""
    entry = topology.entry_for(table_number)
    return {
        "table_number": table_number,
        "tables": {
            name: topology.suffix_table(name, table_number) for name in topology.table_names
        },
        "entry_id": entry.id,
        "database": topology.database_for(table_number).label,
        "writer": entry.writer.redacted(),
        "readers": [dsn.redacted() for dsn in entry.readers],
        "reader_policy": entry.reader_policy,
    }


def route_columns(topology: Topology) -> list[str]:
    return ["id", "table_number", *topology.table_names, "entry_id", "database", "writer",
            "readers", "reader_policy"]  # fmt: skip


def _flat(record: dict[str, Any]) -> list[Any]:
    return [record["table_number"], *record["tables"].values(), record["entry_id"],
            record["database"], record["writer"], " ".join(record["readers"]),
            record["reader_policy"]]  # fmt: skip


def _stdin_ids(stream: Any) -> Iterator[tuple[list[bytes], list[int]]]:
    """Batches of ids from a binary stream, one id per line (blank lines skipped), each batch
    as (decimal text of every id, the ids).

    Fast path: a chunk of canonical lines is split and converted with ``map(int, lines)``; any
    other chunk (blanks, signs, spaces, bad values) is read line by line so an error names the
    value and its line number.
    """
    carry = b""
    line_no = 0
    while chunk := stream.read(STDIN_CHUNK):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        data, carry = data[:cut], data[cut:]
        if data:
            yield _parse_batch(data, line_no)
            line_no += data.count(b"\n")
    if carry.strip():
        yield _parse_batch(carry + b"\n", line_no)


def _parse_batch(data: bytes, first_line: int) -> tuple[list[bytes], list[int]]:
    """The ids in ``data`` (whole lines, each ending in a newline) and their decimal text."""
    lines = data.split(b"\n")
    lines.pop()
    if _CANONICAL_IDS.fullmatch(data):
        ids = list(map(int, lines))
        if max(ids) >> 63 == 0:
            return lines, ids
    ids = []
    for offset, raw in enumerate(lines):
        text = raw.decode("utf-8", "replace")
        if not text.strip():
            continue
        try:
            ids.append(parse_id(text))
        except InvalidId as error:
            raise InvalidId(f"stdin line {first_line + offset + 1}: {error.message}") from None
    return [b"%d" % i for i in ids], ids


def _route_stream(
    topology: Topology, batches: Iterable[tuple[list[bytes], list[int]]], fmt: Format
) -> None:
    """Route many ids with one precomputed tail per table number: per id a modulo, a list
    lookup and a bytes concatenation, written as bytes (text encoding once, for the tails)."""
    count = topology.suffix_count
    records = [route_record(topology, n) for n in range(count)]
    if fmt is Format.csv:
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(_flat(r) for r in records)
        texts = ["," + line + "\n" for line in buffer.getvalue().splitlines()]
        head, start = ",".join(route_columns(topology)) + "\n", b""
    else:
        texts = ["," + dumps(r)[1:] + "\n" for r in records]
        head, start = "", b'{"id":'
    sys.stdout.write(head)
    sys.stdout.flush()
    tails = [text.encode(sys.stdout.encoding) for text in texts]
    write = sys.stdout.buffer.write
    glue = b"," if fmt is Format.json else b""  # json: one array, items separated by commas
    before = b"[\n" if fmt is Format.json else b""
    for lines, ids in batches:
        if ids:
            items = [start + line + tails[i % count] for line, i in zip(lines, ids, strict=True)]
            write(before)  # separately: a concatenated copy of the block costs page faults
            write(glue.join(items))
            before = glue
    if fmt is Format.json:
        write(b"[]\n" if before == b"[\n" else b"]\n")


@app.command()
def route(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids to route (0 ≤ id < 2^63).", show_default=False)
    ] = None,
    env: EnvOption = DEFAULT_ENV,
    config_dir: ConfigDirOption = DEFAULT_CONFIG_DIR,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read ids from standard input, one per line.")
    ] = False,
    table_number: Annotated[
        int | None,
        typer.Option(
            "--table-number", "-t", help="Answer for a table number instead of an id.", min=0
        ),
    ] = None,  # fmt: skip
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Say where rows live: table number (id % suffix_count), suffix table of each logical
    table, entry, physical database, writer and readers (passwords redacted)."""
    given = sum([bool(ids), stdin, table_number is not None])
    if given != 1:
        raise UsageError("Give ids as arguments, or --stdin, or --table-number N (exactly one).")
    topology = load(env, config_dir)
    if table_number is not None:
        if table_number >= topology.suffix_count:
            raise InvalidId(
                f"Table number {table_number} does not exist: suffix_count is "
                f"{topology.suffix_count} (numbers 0-{topology.suffix_count - 1})."
            )
        record = route_record(topology, table_number)
        _emit([record], route_columns(topology)[1:], fmt, topology, with_id=False)
        return
    if stdin:
        if fmt is Format.table:
            fmt = Format.jsonl  # a table of a million rows helps nobody
        _route_stream(topology, _stdin_ids(sys.stdin.buffer), fmt)
        return
    values = [parse_id(text) for text in ids or []]
    for value in values:
        check_id(value)
    records = [{"id": v, **route_record(topology, topology.table_number(v))} for v in values]
    _emit(records, route_columns(topology), fmt, topology, with_id=True)


def _emit(records: list[dict[str, Any]], columns: list[str], fmt: Format, topology: Topology,
          *, with_id: bool) -> None:  # fmt: skip
    def flat(record: dict[str, Any]) -> list[Any]:
        return ([record["id"]] if with_id else []) + _flat(record)

    if fmt is Format.table:
        print_table(
            (["id"] if with_id else []) + ["#", "suffix tables", "entry", "writer", "readers"],
            (
                ([r["id"]] if with_id else [])
                + [
                    r["table_number"],
                    " ".join(r["tables"].values()),
                    r["entry_id"],
                    r["writer"],
                    "\n".join(r["readers"]) + f"\n({r['reader_policy']})"
                    if r["readers"]
                    else "(writer)",
                ]
                for r in records
            ),  # fmt: skip
            title=f"shardctl route · {topology.env}",
            row_styles=(_colour(topology, r["table_number"]) for r in records),
            justify={"#": "right", "id": "right"},
        )
    elif fmt is Format.json:
        print(dumps(records))
    elif fmt is Format.jsonl:
        for record in records:
            print(dumps(record))
    else:
        stream_records(columns, (flat(r) for r in records), Format.csv)
