"""One place that writes: data to stdout (table, json, jsonl, csv), messages to stderr.

Tables look like rich's. rich itself is imported only to style a table or a message for a
terminal, or to wrap a table too wide for its output: ``--format json|jsonl|csv`` and tables
written whole to a file or pipe never pay for it. Machine formats stream row by row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


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
# What the plain-text table drawer handles exactly as rich does: characters rich measures as one
# cell (its `cells._SINGLE_CELL_UNICODE_RANGES`) that no wrapping treats as white space, except
# the space, plus the newline between the lines of a cell. Anything else is left to rich.
_ONE_CELL_TEXT = "[\n -~\xa1-\xac\xae-\u02ff\u0370-\u0482\u2500-\u25fc]*"


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
    """Draw a table on stdout; cells are plain text (never markup, ``None`` as an empty cell),
    folded when the table is too wide.

    When stdout takes no styles (see :func:`_plain_width`) and the table fits, it is drawn here
    character for character as rich would draw it, without importing rich.
    """
    header = list(columns)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    aligns = [(justify or {}).get(column, "left") for column in header]
    width = _plain_width()
    drawn = _plain_table(header, cells, aligns, title, caption, width) if width else None
    if drawn is not None:
        sys.stdout.write(drawn)
        sys.stdout.flush()  # as rich does: stderr written next must not overtake the table
        return
    console().print(_rich_table(header, cells, aligns, row_styles, title, caption))


def _rich_table(
    header: list[str],
    rows: list[list[str]],
    aligns: list[str],
    row_styles: Iterable[str | None] | None,
    title: str | None,
    caption: str | None,
) -> Table:
    """The rich Table :func:`print_table` draws when it cannot draw it in plain text."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title, style="table.title") if title else None,
        caption=Text(caption, style="table.caption") if caption else None,
        show_lines=False,
        header_style="bold",
    )
    for column, align in zip(header, aligns, strict=True):
        table.add_column(
            Text(column),
            justify=align,  # type: ignore[arg-type]
            overflow="fold",  # never cut a path or DSN short: wrap it
        )
    styles = iter(row_styles) if row_styles is not None else None
    for row in rows:
        style = next(styles) if styles is not None else None
        table.add_row(*map(Text, row), style=style)
    return table


def _plain_width() -> int | None:
    """The width rich would draw stdout's tables at when it cannot style them: stdout is not a
    terminal, nothing in the environment says it is (``FORCE_COLOR``, ``TTY_COMPATIBLE``), it
    encodes UTF-8 and this is not Windows or Jupyter. ``None`` when rich has to decide."""
    import builtins
    import os

    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
    if (
        stream.isatty()
        or "FORCE_COLOR" in os.environ
        or "TTY_COMPATIBLE" in os.environ
        or not encoding.startswith("utf")
        or sys.platform == "win32"
        or hasattr(builtins, "get_ipython")
    ):
        return None
    columns = os.environ.get("COLUMNS")
    if not columns:
        return PIPE_WIDTH
    return int(columns) if columns.isascii() and columns.isdigit() else None


def _plain_table(
    header: list[str],
    rows: list[list[str]],
    aligns: list[str],
    title: str | None,
    caption: str | None,
    width: int,
) -> str | None:
    """The table as rich draws it unstyled at ``width`` columns (heavy head box, one space of
    padding, header bottom-aligned, title and caption word-wrapped and centred), or ``None``
    when only rich can draw it: a justification other than left or right, a character outside
    ``_ONE_CELL_TEXT``, or a table too wide for ``width`` (rich would wrap cells)."""
    import itertools
    import re

    grid = [header, *rows]
    texts = itertools.chain([title or "", caption or ""], *grid)
    if not header or any(a not in ("left", "right") for a in aligns):
        return None
    if not all(re.fullmatch(_ONE_CELL_TEXT, text) for text in texts):
        return None
    cells = [[text.split("\n") for text in row] for row in grid]
    widths = [
        2 + max(len(line) for cell in column for line in cell)
        for column in zip(*cells, strict=True)
    ]
    table_width = sum(widths) + len(widths) + 1
    if table_width > width:
        return None
    lines = _centred(title, table_width) if title else []
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    for index, row in enumerate(cells):
        # rich draws nothing in a column of no width, not even the line breaks of its cells
        row = [cell if w > 2 else [] for cell, w in zip(row, widths, strict=True)]
        height = max(1, *map(len, row))
        bar = "│" if index else "┃"
        blocks = [
            _cell_lines(cell, w - 2, align, height, bottom=index == 0)
            for cell, w, align in zip(row, widths, aligns, strict=True)
        ]
        lines.extend(bar + bar.join(parts) + bar for parts in zip(*blocks, strict=True))
        if index == 0:
            lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    if caption:
        lines.extend(_centred(caption, table_width))
    return "\n".join(lines) + "\n"


def _cell_lines(
    lines: list[str], width: int, align: str, height: int, *, bottom: bool
) -> list[str]:
    """One cell's lines padded to ``width`` (right-aligned lines lose trailing spaces) with a
    space either side, and blank lines to ``height`` below, or above for the header."""
    padded = [
        f" {line.ljust(width) if align == 'left' else line.rstrip().rjust(width)} "
        for line in lines
    ]
    blank = [" " * (width + 2)] * (height - len(padded))
    return blank + padded if bottom else padded + blank


def _centred(text: str, width: int) -> list[str]:
    """``text`` word-wrapped to ``width`` (words longer than that folded) and centred, every
    line ``width`` long: rich's ``Text.wrap`` with ``divide_line`` for one-cell characters."""
    import itertools
    import re

    lines = []
    for paragraph in text.split("\n"):
        breaks: list[int] = []
        offset = 0  # cells used on the current line
        for word in re.finditer(r"\s*\S+\s*", paragraph):
            start, length = word.start(), len(word.group().rstrip())
            if width - offset >= length:
                offset += len(word.group())
            elif length > width:  # folded into pieces of ``width``
                for piece_start in range(start, word.end(), width):
                    if piece_start:
                        breaks.append(piece_start)
                    offset = min(width, word.end() - piece_start)
            elif offset and start:
                breaks.append(start)
                offset = len(word.group())
        for a, b in itertools.pairwise([0, *breaks, len(paragraph)]):
            line = paragraph[a:b].rstrip()[:width]
            left = (width - len(line)) // 2
            lines.append(" " * left + line + " " * (width - left - len(line)))
    return lines


def message(text: str, *, style: str | None = None) -> None:
    """A line for the user on stderr (styled only when stderr is a terminal)."""
    if style and sys.stderr.isatty():
        from rich.markup import escape

        console(stderr=True).print(f"[{style}]{escape(text)}[/]")
    else:
        sys.stderr.write(text + "\n")
