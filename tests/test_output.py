"""Tables: the plain-text drawer is rich's drawing character for character, and rich draws
whatever the plain one cannot (terminals, forced colour, tables too wide, wide characters)."""

from __future__ import annotations

import io
import os
import sys
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markup import escape

from shardctl import output

# spaces, newlines, characters one cell wide (ASCII, Latin-1, box drawing) and markup brackets
texts = st.text(alphabet=st.sampled_from(list("ab  \n-x/:·×█é[]")), max_size=30)
long_words = st.text(alphabet=st.sampled_from(list("abcdefghij ")), min_size=20, max_size=90)


def rich_drawing(
    table: tuple[list[str], list[list[str]], list[str], list[str | None]],
    title: str | None,
    caption: str | None,
    width: int,
    look: tuple[bool, bool] = (False, False),
) -> str:
    """What rich prints for print_table's Table ``width`` columns wide, with styles and colours
    as ``look`` says (the colour system does not matter for standard colours)."""
    header, rows, aligns, styles = table
    styled, coloured = look
    terminal = {"force_terminal": True, "no_color": not coloured} if styled else {}
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, highlight=False, soft_wrap=False, **terminal)
    console.print(output._rich_table(header, rows, aligns, styles, title, caption))
    return buffer.getvalue()


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], list[str], list[str | None]]:
    count = draw(st.integers(1, 5))
    header = draw(st.lists(texts, min_size=count, max_size=count))
    rows = draw(st.lists(st.lists(texts, min_size=count, max_size=count), max_size=4))
    aligns = draw(st.lists(st.sampled_from(["left", "right"]), min_size=count, max_size=count))
    styles = [draw(st.sampled_from([None, "", "cyan", "bright_magenta", "black"])) for _ in rows]
    return header, rows, aligns, styles


@settings(max_examples=500, deadline=None)
@given(
    table=tables(),
    title=st.none() | texts | long_words,
    caption=st.none() | texts | long_words,
    width=st.integers(4, 120),
    look=st.sampled_from([(False, False), (True, False), (True, True)]),
)
def test_drawing_is_rich_drawing(
    table: tuple[list[str], list[list[str]], list[str], list[str | None]],
    title: str | None,
    caption: str | None,
    width: int,
    look: tuple[bool, bool],
) -> None:
    drawn = output._table_text(*table, title, caption, width, *look)
    if drawn is not None:  # None: too wide, rich folds the cells
        assert drawn == rich_drawing(table, title, caption, width, look)


HEADER = ["#", "tables", "physical database"]
ROWS: list[list[object]] = [
    [0, "users_000 posts_000", "/srv/a.db"],
    [12, "users_012\nposts_012", None],
]
ALIGNS = ["right", "left", "left"]
STYLES = ["cyan", "bright_green"]
TITLE = "shardctl map · develop"
CAPTION = "2 entries over 1 physical database(s), 32 table numbers × 2 logical table(s)"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable that changes how rich writes, a colour terminal type, an 87-column terminal."""
    for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=1: os.terminal_size((87, 24)))
    return monkeypatch


class Drawn(NamedTuple):
    ours: str  # what print_table wrote
    rich: str  # what rich prints for the same table in the same conditions
    by_rich: bool  # whether print_table left the drawing to rich


def drawn_both_ways(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                    rows: list[list[object]] = ROWS, styles: list[str | None] = STYLES,
                    ) -> Drawn:  # fmt: skip
    consoles = []
    rich_console = output.console
    monkeypatch.setattr(output, "console", lambda: consoles.append(1) or rich_console())
    output.print_table(HEADER, rows, title=TITLE, caption=CAPTION, justify={"#": "right"},
                       row_styles=styles)  # fmt: skip
    ours = capsys.readouterr().out
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    rich_console().print(output._rich_table(HEADER, cells, ALIGNS, styles, TITLE, CAPTION))
    return Drawn(ours, capsys.readouterr().out, bool(consoles))


def test_piped_table_is_drawn_without_rich_at_pipe_width(capsys, environment):
    drawn = drawn_both_ways(capsys, environment)
    assert drawn == Drawn(drawn.rich, drawn.rich, by_rich=False)
    assert drawn.ours.splitlines()[1] == "┏━━━━┳" + "━" * 21 + "┳" + "━" * 19 + "┓"  # 160 wide
    assert " 12 │ users_012           │" in drawn.ours and "\x1b" not in drawn.ours


@pytest.mark.parametrize(
    ("variables", "by_rich"),
    [
        ({"COLUMNS": "70"}, False),
        ({"COLUMNS": "30"}, True),  # too narrow: rich folds the cells
        ({"COLUMNS": "wide"}, False),  # not a number: the terminal's width (87)
        ({"FORCE_COLOR": "1"}, False),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # bold, italic and dim only
        ({"FORCE_COLOR": ""}, False),  # empty: not a terminal
        ({"TTY_COMPATIBLE": "1", "COLUMNS": "100"}, False),
        ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False),
        ({"FORCE_COLOR": "1", "TERM": "dumb"}, True),
    ],
)
def test_environment_decides_width_and_styles_as_for_rich(capsys, environment, variables, by_rich):
    for name, value in variables.items():
        environment.setenv(name, value)
    drawn = drawn_both_ways(capsys, environment)
    assert drawn == Drawn(drawn.rich, drawn.rich, by_rich)


@pytest.mark.parametrize("terminal_width", [87, 40])  # 40: too narrow, rich folds the cells
@pytest.mark.parametrize("columns", [None, "120"])
def test_terminal_table_is_styled_at_terminal_width(capsys, environment, terminal_width, columns):
    environment.setattr(os, "get_terminal_size", lambda fd=1: os.terminal_size((terminal_width, 9)))
    if columns:
        environment.setenv("COLUMNS", columns)
    environment.setattr(sys.stdout, "isatty", lambda: True)
    drawn = drawn_both_ways(capsys, environment)
    by_rich = terminal_width == 40 and not columns
    assert drawn == Drawn(drawn.rich, drawn.rich, by_rich)
    assert "\x1b[36m 0\x1b[0m" in drawn.ours and "\x1b[92m" in drawn.ours
    assert "\x1b[1m #\x1b[0m" in drawn.ours


def test_cells_are_text_never_markup_or_emoji(capsys, environment):
    """A value like ``[/]`` is data (rich markup would drop it or fail on it), drawn alike by
    both drawers; the wide character makes rich draw the second table."""
    values = ["[bold]x[/]", "[/]", ":smile:"]
    for extra, by_rich in (("", False), ("表", True)):
        rows: list[list[object]] = [["", value, extra] for value in values]
        drawn = drawn_both_ways(capsys, environment, rows, [None] * len(rows))
        assert drawn == Drawn(drawn.rich, drawn.rich, by_rich)
        assert all(f"│ {value} " in drawn.ours for value in values), drawn.ours


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


message_texts = st.text(alphabet=st.sampled_from(list("ab  \n-x/·×█é[]")), max_size=160)


@settings(max_examples=300, deadline=None)
@given(
    text=message_texts,
    style=st.sampled_from(["green", "yellow", "red", "bold red"]),
    width=st.integers(1, 120),
    variables=st.sampled_from([{}, {"NO_COLOR": "1"}, {"TTY_COMPATIBLE": "0"}]),
)
def test_terminal_message_is_rich_message(text, style, width, variables):
    """Styled, and word-wrapped at the terminal's width, exactly as rich prints it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("NO_COLOR", "TTY_COMPATIBLE", "FORCE_COLOR", "TERM"):
            patch.delenv(name, raising=False)
        for name, value in {**variables, "COLUMNS": str(width)}.items():
            patch.setenv(name, value)
        patch.setattr(sys, "stderr", Terminal())
        ours = output._styled_message(text, style)
        assert ours is not None
        patch.setattr(sys, "stderr", Terminal())
        output.console(stderr=True).print(f"[{style}]{escape(text)}[/]")
        assert ours == sys.stderr.getvalue()


def test_messages_are_text_on_a_terminal_too(monkeypatch, environment):
    """rich's markup would drop the backslash of ``\\[`` and turn ``:x:`` into an emoji."""
    text = r"C:\[x] :x: [bold]y[/]"
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    output.message(text, style="bold red")
    assert sys.stderr.getvalue() == text + "\n"
    monkeypatch.setattr(sys, "stderr", Terminal())
    output.message(text, style="bold red")
    assert sys.stderr.getvalue() == f"\x1b[1;31m{text}\x1b[0m\n"


def test_a_row_shorter_than_the_header_is_left_to_rich(capsys, environment):
    drawn = drawn_both_ways(capsys, environment, [[1, "users_001"]], [None])
    assert drawn == Drawn(drawn.rich, drawn.rich, by_rich=True)
    assert "│ 1 │ users_001 │                   │" in drawn.ours  # rich pads it
