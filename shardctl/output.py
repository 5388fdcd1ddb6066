"""One place that writes: data to stdout (rich table, json, jsonl, csv), messages to stderr.

rich is imported only when a table is drawn or a styled message is shown on a terminal, so
``--format json|jsonl|csv`` never pays for it; ``json`` and ``csv`` are imported by the format
that uses them. Machine formats stream row by row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)  # Decimal, datetime, UUID …: their canonical text


def dumps(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=_json_default)


def write_json(value: Any, out: IO[str] | None = None) -> None:
    import json

    out = out or sys.stdout
    out.write(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default) + "\n")


def stream_records(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    fmt: Format,
    out: IO[str] | None = None,
) -> int:
    """Write rows as json (one array), jsonl (one object per line) or csv; return the count.

    Nothing is buffered beyond one row, so a large result streams in constant memory.
    """
    out = out or sys.stdout
    count = 0
    if fmt is Format.csv:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else _csv_cell(v) for v in row])
            count += 1
        return count
    separator = "[\n" if fmt is Format.json else ""
    for row in rows:
        line = dumps(dict(zip(columns, row, strict=True)))
        out.write(f"{separator}  {line}" if fmt is Format.json else line + "\n")
        if fmt is Format.json:
            separator = ",\n"
        count += 1
    if fmt is Format.json:
        out.write("[]\n" if count == 0 else "\n]\n")
    return count


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return dumps(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


PIPE_WIDTH = 160  # columns used when writing a table to a file or pipe (COLUMNS overrides)


def console(stderr: bool = False) -> Console:
    """A rich console; off a terminal it is wide enough for DSNs unless ``COLUMNS`` is set."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    row_styles: Iterable[str | None] | None = None,
    justify: Mapping[str, str] | None = None,
) -> None:
    """Draw a rich table on stdout. Cells are plain text, never rich markup (a value such as
    ``[/]`` is data), ``None`` an empty cell; cells too wide for the output are folded, never
    cut short; ``row_styles`` colour rows on a terminal."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title, style="table.title") if title else None,
        caption=Text(caption, style="table.caption") if caption else None,
        show_lines=False,
        header_style="bold",
        min_width=max(len(title or ""), len(caption or "")) + 4,  # keep them on one line
    )
    for column in columns:
        table.add_column(
            Text(column),
            justify=(justify or {}).get(column, "left"),  # type: ignore[arg-type]
            overflow="fold",  # never cut a path or DSN short: wrap it
        )
    styles = iter(row_styles) if row_styles is not None else None
    for row in rows:
        style = next(styles) if styles is not None else None
        table.add_row(*(Text("" if v is None else str(v)) for v in row), style=style)
    console().print(table)


def message(text: str, *, style: str | None = None) -> None:
    """A line for the user on stderr, printed as written (never read as markup or emoji codes);
    styled, and word-wrapped by rich, only when stderr is a terminal."""
    if style and sys.stderr.isatty():
        from rich.text import Text

        console(stderr=True).print(Text(text, style=style))
    else:
        sys.stderr.write(text + "\n")
