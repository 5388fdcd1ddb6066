"""Tables and messages: values are shown as text, never read as rich markup or emoji codes; the
width and styles follow the output (pipe, COLUMNS, terminal)."""

from __future__ import annotations

import io
import sys

import pytest

from shardctl import output

HEADER = ["#", "tables", "physical database"]
ROWS: list[list[object]] = [[0, "users_000 posts_000", "/srv/a.db"], [12, "users_012", None]]
TITLE = "shardctl map · develop"
CAPTION = "2 entries over 1 physical database(s)"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("COLUMNS", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TERM"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def drawn(capsys: pytest.CaptureFixture[str], rows: list[list[object]] = ROWS) -> str:
    output.print_table(HEADER, rows, title=TITLE, caption=CAPTION, justify={"#": "right"},
                       row_styles=["cyan"] * len(rows))  # fmt: skip
    return capsys.readouterr().out


def test_piped_table_is_plain_and_pipe_wide(capsys, environment):
    lines = drawn(capsys).splitlines()
    assert "\x1b" not in "".join(lines)
    assert lines[1] == "┏━━━━┳" + "━" * 21 + "┳" + "━" * 19 + "┓"
    assert "│ 12 │ users_012           │                   │" in lines
    assert max(len(line) for line in lines) <= output.PIPE_WIDTH


def test_columns_narrows_the_table_and_folds_cells_instead_of_cutting(capsys, environment):
    environment.setenv("COLUMNS", "30")
    text = drawn(capsys)
    assert max(len(line) for line in text.splitlines()) <= 30
    assert "…" not in text and "/srv/a.db" in text.replace("\n", "").replace("│", "")


def test_forced_colour_styles_header_and_rows(capsys, environment):
    environment.setenv("FORCE_COLOR", "1")
    text = drawn(capsys)
    assert "\x1b[1m" in text and "\x1b[36m" in text  # bold header, cyan rows


def test_cells_are_text_never_markup_or_emoji(capsys, environment):
    """A value like ``[/]`` is data: as markup rich would drop it, or fail on it."""
    values = ["[bold]x[/]", "[/]", ":smile:", r"C:\[x]"]
    text = drawn(capsys, [["", value, ""] for value in values])
    assert all(f"│ {value} " in text for value in values), text


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_messages_are_text_on_a_terminal_too(environment):
    """rich's markup would drop the backslash of ``\\[`` and turn ``:x:`` into an emoji."""
    text = r"C:\[x] :x: [bold]y[/]"
    environment.setattr(sys, "stderr", io.StringIO())
    output.message(text, style="bold red")
    assert sys.stderr.getvalue() == text + "\n"
    environment.setattr(sys, "stderr", Terminal())
    output.message(text, style="bold red")
    assert sys.stderr.getvalue() == f"\x1b[1;31m{text}\x1b[0m\n"


def test_a_title_wider_than_its_table_stays_on_one_line(capsys, environment):
    """The table widens to its title or caption (up to the output's width) instead of
    wrapping ``entries 1, 2`` across two lines."""
    title = "/srv/data/develop/sharding_db_1.db (sqlite3) · entries 1, 2"
    output.print_table(["entry"], [["1"]], title=title, caption="migrated · 0.18 s")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == title
    assert lines[-1].strip() == "migrated · 0.18 s"
    environment.setenv("COLUMNS", "30")  # narrower than the title: the output's width wins
    output.print_table(["entry"], [["1"]], title=title)
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 30
