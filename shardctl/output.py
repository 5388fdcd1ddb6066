"""One place that writes: data to stdout (table, json, jsonl, csv), messages to stderr.

Tables and styled messages look exactly as rich draws them, and are drawn here without importing
rich (60–120 ms of start-up); rich draws what would not come out the same: tables too wide for
their output (it folds their cells), characters not one cell wide, environments only rich can
judge (see ``_look``). Machine formats stream row by row.
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
# What the table drawer handles exactly as rich does: characters rich measures as one cell (its
# `cells._SINGLE_CELL_UNICODE_RANGES`) that no wrapping treats as white space, except the space,
# plus the newline between the lines of a cell. Anything else is left to rich.
_ONE_CELL_TEXT = "[\n -~\xa1-\xac\xae-\u02ff\u0370-\u0482\u2500-\u25fc]*"
# rich's standard colours: SGR 30-37, 90-97 for the bright_ ones (the same in every colour system)
_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
# SGR parameters of rich's styles for the header (bold), title (italic), caption (dim italic)
_HEADER, _TITLE, _CAPTION = "1", "3", "2;3"


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
    folded when the table is too wide; ``row_styles`` colour rows on a terminal.

    Tables that fit are drawn here, character for character as rich draws them for the same
    output (:func:`_table_text`), without importing rich; rich draws the others.
    """
    header = list(columns)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    aligns = [(justify or {}).get(column, "left") for column in header]
    styles: list[str | None] = [None] * len(cells) if row_styles is None else list(row_styles)
    look = _look(sys.stdout)
    drawn = None if look is None else _table_text(header, cells, aligns, styles, title, caption,
                                                    _width(sys.stdout), *look)  # fmt: skip
    if drawn is not None:
        sys.stdout.write(drawn)
        sys.stdout.flush()  # as rich does: stderr written next must not overtake the table
        return
    console().print(_rich_table(header, cells, aligns, styles, title, caption))


def _rich_table(
    header: list[str],
    rows: list[list[str]],
    aligns: list[str],
    row_styles: list[str | None],
    title: str | None,
    caption: str | None,
) -> Table:
    """The rich Table :func:`print_table` draws when it cannot draw it itself."""
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
    for row, style in zip(rows, row_styles, strict=True):
        table.add_row(*map(Text, row), style=style)
    return table


def _look(stream: IO[str]) -> tuple[bool, bool] | None:
    """Whether rich would write styles to ``stream``, and colours, deciding as its Console does
    (``TTY_COMPATIBLE``, ``FORCE_COLOR``, a terminal, ``NO_COLOR``); ``None`` where only rich
    knows: an encoding other than UTF-8, Windows, Jupyter, IDLE or a dumb terminal."""
    import builtins
    import os

    encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
    if (
        not encoding.startswith("utf")
        or sys.platform == "win32"
        or hasattr(builtins, "get_ipython")
        or getattr(sys.stdin, "__module__", "").startswith("idlelib")
    ):
        return None
    compatible, force_color = os.environ.get("TTY_COMPATIBLE", ""), os.environ.get("FORCE_COLOR")
    if compatible in ("0", "1"):
        terminal = compatible == "1"
    elif force_color is not None:
        terminal = force_color != ""
    else:
        terminal = stream.isatty()
    if not terminal:
        return False, False
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    return True, os.environ.get("NO_COLOR", "") == ""


def _width(stream: IO[str]) -> int:
    """The width :func:`console` draws at on ``stream``: ``PIPE_WIDTH`` off a terminal unless
    ``COLUMNS`` is set, else ``COLUMNS`` or the terminal's width as rich finds it."""
    import os

    columns = os.environ.get("COLUMNS")
    if not columns and not stream.isatty():
        return PIPE_WIDTH
    if columns and columns.isascii() and columns.isdigit():
        return int(columns)
    for descriptor in (0, 1, 2):  # rich asks stdin first
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _table_text(
    header: list[str],
    rows: list[list[str]],
    aligns: list[str],
    row_styles: list[str | None],
    title: str | None,
    caption: str | None,
    width: int,
    styled: bool,
    coloured: bool,
) -> str | None:
    """The table as rich draws it ``width`` columns wide (heavy head box, one space of padding,
    header bottom-aligned, title and caption word-wrapped and centred), with rich's escape codes
    when ``styled`` (and ``coloured``); or ``None`` when only rich can draw it: a justification
    other than left or right, a row style other than a standard colour, a character outside
    ``_ONE_CELL_TEXT``, a row of another length than the header (rich pads or adds columns),
    or a table too wide for ``width`` (rich would fold cells)."""
    import itertools
    import re

    grid = [header, *rows]
    texts = itertools.chain([title or "", caption or ""], *grid)
    codes = [_style_code(style, coloured) for style in row_styles]
    if not header or any(a not in ("left", "right") for a in aligns) or None in codes:
        return None
    if any(len(row) != len(header) for row in rows):
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
    header_code, title_code, caption_code = (_HEADER, _TITLE, _CAPTION) if styled else ("",) * 3
    row_codes = [header_code, *(c if styled and c else "" for c in codes)]
    lines = [_sgr(title_code, line) for line in _centred(title or "", table_width)]
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    for index, (row, code) in enumerate(zip(cells, row_codes, strict=True)):
        # rich draws nothing in a column of no width, not even the line breaks of its cells,
        # and a row of nothing as one unstyled blank line
        row = [cell if w > 2 else [] for cell, w in zip(row, widths, strict=True)]
        height = max(map(len, row))
        if not height:
            code, height = "", 1
        bar = "│" if index else "┃"
        blocks = [
            _cell_lines(cell, w - 2, align, height, code, bottom=index == 0)
            for cell, w, align in zip(row, widths, aligns, strict=True)
        ]
        lines.extend(bar + bar.join(parts) + bar for parts in zip(*blocks, strict=True))
        if index == 0:
            lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    lines += [_sgr(caption_code, line) for line in _centred(caption or "", table_width)]
    return "\n".join(lines) + "\n"


def _style_code(style: str | None, coloured: bool) -> str | None:
    """SGR parameters rich writes for a style of an optional ``bold`` and an optional standard
    colour (the colour only when ``coloured``); ``None`` for any other style."""
    words = (style or "").split()
    bold = words[:1] == ["bold"]
    colours = words[bold:]
    if len(colours) > 1:
        return None
    codes = ["1"] if bold else []
    for colour in colours:
        base = colour.removeprefix("bright_")
        if base not in _COLOURS:
            return None
        if coloured:
            codes.append(str(_COLOURS.index(base) + (30 if base == colour else 90)))
    return ";".join(codes)


def _sgr(code: str, text: str) -> str:
    """``text`` with a style as rich writes it (nothing for no style or no text)."""
    return f"\x1b[{code}m{text}\x1b[0m" if code and text else text


def _cell_lines(
    lines: list[str], width: int, align: str, height: int, code: str, *, bottom: bool
) -> list[str]:
    """One cell's lines padded to ``width`` (right-aligned lines lose trailing spaces) between
    two spaces, and blank lines to ``height`` below, or above for the header; each part styled
    on its own, as rich writes it."""
    padded = [
        _sgr(code, " ")
        + _sgr(code, line.ljust(width) if align == "left" else line.rstrip().rjust(width))
        + _sgr(code, " ")
        for line in lines
    ]
    blank = [_sgr(code, " " * (width + 2))] * (height - len(padded))
    return blank + padded if bottom else padded + blank


def _centred(text: str, width: int) -> list[str]:
    """``text`` word-wrapped to ``width`` and centred, every line ``width`` long (no line for
    no text), as rich centres a table's title and caption."""
    lines = []
    for line in _wrapped(text, width) if text else []:
        line = line.rstrip()[:width]
        left = (width - len(line)) // 2
        lines.append(" " * left + line + " " * (width - left - len(line)))
    return lines


def _wrapped(text: str, width: int) -> list[str]:
    """The lines of ``text`` word-wrapped to ``width``, words longer than that folded, spaces
    kept where a line breaks: rich's ``Text.wrap`` (``divide_line``) for one-cell characters."""
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
        lines += [paragraph[a:b] for a, b in itertools.pairwise([0, *breaks, len(paragraph)])]
    return lines


def message(text: str, *, style: str | None = None) -> None:
    """A line for the user on stderr, styled when stderr is a terminal (word-wrapped to its
    width there, as rich does)."""
    if not style or not sys.stderr.isatty():
        sys.stderr.write(text + "\n")
        return
    styled = _styled_message(text, style)
    if styled is None:
        from rich.markup import escape

        console(stderr=True).print(f"[{style}]{escape(text)}[/]")
    else:
        sys.stderr.write(styled)
        sys.stderr.flush()


def _styled_message(text: str, style: str) -> str | None:
    """``text`` as rich prints it in ``style`` on stderr, or ``None`` when only rich can: a
    character outside ``_ONE_CELL_TEXT``, a style :func:`_style_code` does not know, or an
    environment :func:`_look` leaves to rich."""
    import re

    look = _look(sys.stderr)
    if look is None or not re.fullmatch(_ONE_CELL_TEXT, text):
        return None
    styled, coloured = look
    code = _style_code(style, coloured)
    if code is None:
        return None
    width = _width(sys.stderr)
    lines = []
    for line in _wrapped(text, width):
        spaces = len(line) - len(line.rstrip())  # rich drops spaces past the width only
        line = line[: len(line) - min(spaces, max(0, len(line) - width))][:width]
        lines.append(_sgr(code if styled else "", line))
    return "\n".join(lines) + "\n"
