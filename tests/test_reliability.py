"""Every command that reads config refuses every broken file of the corpus the same way: exit 1
(2 when the file cannot be read at all), each error as ``FILE:LINE: error [code] …`` on stderr,
nothing on stdout, never a traceback; and random mutations of valid configs through the real
entry point end in an exit code, never an internal error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config_corpus import BROKEN, ENVIRON, expectations, install

COMMANDS: dict[str, tuple[str, ...]] = {
    "map": ("map",),
    "route": ("route", "1"),
    "migrate-dry-run": ("migrate", "--dry-run"),
    "migrate-sql": ("migrate", "--sql"),
    "query-all-explain": ("query-all", "--explain", "SELECT COUNT(*) FROM users"),
    "status": ("status",),
    "move-dry-run": ("move", "--dry-run", "--entry", "1", "--to", "x.db"),
    "validate-live": ("validate", "--live"),
}
CONNECTING = {"migrate-dry-run", "status", "validate-live"}


def _one_file_per_kind() -> list[Path]:
    """The first refused file for each distinct code of its first error, plus files whose
    trouble is the bytes themselves (empty, tab-indented, unterminated variable)."""
    by_code: dict[str, Path] = {}
    for path in BROKEN:
        errors = [e for e in expectations(path)[0] if e.severity != "warning"]
        if errors:
            by_code.setdefault(errors[0].code, path)
    extra = {"empty", "yaml_tab_indentation", "unterminated_variable", "top_level_list"}
    return sorted({*by_code.values(), *(p for p in BROKEN if p.stem in extra)})


REFUSED = _one_file_per_kind()


@pytest.fixture(autouse=True)
def corpus_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)


def test_the_sample_is_wide() -> None:
    kinds = {e.code for path in REFUSED for e in expectations(path)[0]}
    assert len(kinds) >= 20


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: p.stem)
def test_every_command_refuses_a_broken_config_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path: Path
) -> None:
    expected, connecting_only = expectations(path)
    config_dir, env = install(path, tmp_path)
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    file = config_dir / env / "database.yaml"
    usage = expected[0].severity == "usage"
    errors = [e for e in expected if e.severity != "warning"]
    for name, args in COMMANDS.items():
        if connecting_only and name not in CONNECTING:
            continue  # an unset variable is only a warning for offline commands
        run = run_cli(capsys, *args, "--env", env, "--config-dir", config_dir)
        context = f"{name}: {run.err}"
        assert run.code == (2 if usage else 1), context
        assert "Traceback" not in run.err and "Internal error" not in run.err, context
        shown = run.err
        if name == "validate-live":  # validate's report is its output
            shown += run.out
        else:
            assert run.out == "", context
            if not usage:
                assert f"run 'shardctl validate --env {env}'" in run.err, context
        for error in errors:
            assert f"{file}:{error.line}" in shown, context


# --- random mutations through the CLI ----------------------------------------------------------

BASE = (REPO / "config" / "develop" / "database.yaml").read_text().splitlines()
MUTATIONS = [
    "", "\t", "- ", ": ", "[", "{", "${", "${UNSET_VAR}", "~", "-1", "0", "1e999", "'",
    "table_range: [3, 1]", "suffix_count: 0", "driver: oracle", "dsn: ''", "id: 1",
    "  - {id: 9, driver: sqlite3, dsn: x.db, table_range: [0, 99]}", "password: [1]",
]  # fmt: skip


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(BASE) - 1),
            st.sampled_from(MUTATIONS),
            st.sampled_from(["replace", "append", "insert"]),
        ),
        min_size=1,
        max_size=3,
    ),
    command=st.sampled_from(["map", "route-json", "migrate-sql", "query-all-explain"]),
)
def test_mutated_configs_end_in_an_exit_code_never_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, edits: list[tuple[int, str, str]],
    command: str,
) -> None:  # fmt: skip
    lines = list(BASE)
    for index, text, how in edits:
        if how == "replace":
            lines[index] = text
        elif how == "append":
            lines[index] += text
        else:
            lines.insert(index, text)
    config_dir = tmp_path / "cli-fuzz" / "config"
    (config_dir / "develop").mkdir(parents=True, exist_ok=True)
    (config_dir / "develop" / "database.yaml").write_text("\n".join(lines))
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    args = {"route-json": ("route", "1", "7", "-f", "json")}.get(command, COMMANDS.get(command))
    assert args is not None
    run = run_cli(capsys, *args, "--config-dir", config_dir)
    assert run.code in (0, 1, 2), run.err
    assert "Traceback" not in run.err and "Internal error" not in run.err, run.err
    if run.code == 1:
        assert f"{config_dir / 'develop' / 'database.yaml'}:" in run.err, run.err
