"""Tables: the plain-text drawer is rich's drawing character for character, and rich draws
whatever the plain one cannot (terminals, forced colour, tables too wide, wide characters)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from shardctl import output

# spaces, newlines, characters one cell wide (ASCII, Latin-1, box drawing) and markup brackets
texts = st.text(alphabet=st.sampled_from(list("ab  \n-x/:·×█é[]")), max_size=30)
long_words = st.text(alphabet=st.sampled_from(list("abcdefghij ")), min_size=20, max_size=90)


def rich_drawing(
    header: list[str],
    rows: list[list[str]],
    aligns: list[str],
    title: str | None,
    caption: str | None,
    width: int,
) -> str:
    """What rich prints for print_table's Table on an unstyled output ``width`` columns wide."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, highlight=False, soft_wrap=False)
    console.print(output._rich_table(header, rows, aligns, None, title, caption))
    return buffer.getvalue()


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], list[str]]:
    count = draw(st.integers(1, 5))
    header = draw(st.lists(texts, min_size=count, max_size=count))
    rows = draw(st.lists(st.lists(texts, min_size=count, max_size=count), max_size=4))
    aligns = draw(st.lists(st.sampled_from(["left", "right"]), min_size=count, max_size=count))
    return header, rows, aligns


@settings(max_examples=400, deadline=None)
@given(
    table=tables(),
    title=st.none() | texts | long_words,
    caption=st.none() | texts | long_words,
    width=st.integers(4, 120),
)
def test_plain_drawing_is_rich_drawing(
    table: tuple[list[str], list[list[str]], list[str]],
    title: str | None,
    caption: str | None,
    width: int,
) -> None:
    header, rows, aligns = table
    plain = output._plain_table(header, rows, aligns, title, caption, width)
    if plain is not None:  # None: too wide, rich wraps the cells
        assert plain == rich_drawing(header, rows, aligns, title, caption, width)


HEADER = ["#", "tables", "physical database"]
ROWS = [[0, "users_000 posts_000", "/srv/a.db"], [12, "users_012\nposts_012", None]]
TEXT_ROWS = [["0", "users_000 posts_000", "/srv/a.db"], ["12", "users_012\nposts_012", ""]]
ALIGNS = ["right", "left", "left"]
TITLE = "shardctl map · develop"
CAPTION = "2 entries over 1 physical database(s), 32 table numbers × 2 logical table(s)"


def print_table(rows: list[list[object]] = ROWS) -> None:
    output.print_table(HEADER, rows, title=TITLE, caption=CAPTION, justify={"#": "right"},
                       row_styles=["cyan"] * len(rows))  # fmt: skip


def test_piped_table_is_drawn_plain_at_pipe_width(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    print_table()
    out = capsys.readouterr().out
    assert out == output._plain_table(HEADER, TEXT_ROWS, ALIGNS, TITLE, CAPTION, 160)
    assert out == rich_drawing(HEADER, TEXT_ROWS, ALIGNS, TITLE, CAPTION, output.PIPE_WIDTH)
    assert " 12 │ users_012           │" in out and "\n┃  # ┃ tables" in out


@pytest.mark.parametrize("columns", ["70", "30"])
def test_columns_sets_the_width_and_too_narrow_tables_are_folded_by_rich(
    capsys, monkeypatch, columns
):
    monkeypatch.setenv("COLUMNS", columns)
    print_table()
    assert capsys.readouterr().out == rich_drawing(
        HEADER, TEXT_ROWS, ALIGNS, TITLE, CAPTION, int(columns)
    )


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_output_declared_a_terminal_gets_rich_styles(capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    print_table()
    out = capsys.readouterr().out
    assert "\x1b[36m" in out and "\x1b[1m" in out  # cyan rows, bold header


def test_cells_are_text_never_markup_or_emoji(capsys, monkeypatch):
    """A value like ``[/]`` is data (rich markup would drop or reject it), drawn alike by
    both drawers; the wide character makes the second drawing rich's."""
    monkeypatch.delenv("COLUMNS", raising=False)
    values = ["[bold]x[/]", "[/]", ":smile:"]
    for extra in ("", "表"):
        print_table([["", value, extra] for value in values])
        out = capsys.readouterr().out
        assert all(f"│ {value} " in out for value in values), out
