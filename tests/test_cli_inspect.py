"""validate / map / route through the real entry point, on the shipped and generated configs."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_cli
from conftest import REPO, tiled_entries, write_config

SENTINEL = "S3ntinel-Pa55word-9f1c"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the shipped config directory under tmp_path (so data paths land there)."""
    target = tmp_path / "app" / "config"
    shutil.copytree(REPO / "config", target)
    return target


def test_validate_shipped_develop_is_clean(capsys: pytest.CaptureFixture[str], config_dir: Path):
    run = run_cli(capsys, "validate", "--config-dir", config_dir)
    assert run.code == 0, run.err
    assert "8 entries over 4 physical database(s), 32 table numbers" in run.err


def test_validate_all_envs_agree_and_json_shape(capsys, config_dir):
    run = run_cli(capsys, "validate", "--all-envs", "--strict", "-f", "json", "--config-dir",
                  config_dir)  # fmt: skip
    assert run.code == 0, run.out
    report = json.loads(run.out)
    assert report["ok"] is True
    assert {e["env"] for e in report["envs"]} == {"develop", "test", "staging", "production"}
    assert all(set(p) == {"severity", "code", "message", "file", "line"}
               for p in report["problems"])  # fmt: skip
    # production/staging secrets are unset in CI: warnings, not errors
    assert {p["code"] for p in report["problems"]} == {"unset-variable"}


def test_all_envs_drift_is_warning_then_error_with_strict(capsys, tmp_path):
    dsns = [str(tmp_path / "a.db"), str(tmp_path / "b.db")]
    write_config(tmp_path, tiled_entries(32, 8, dsns, "sqlite3"), env="develop")
    moved = tiled_entries(32, 8, dsns, "sqlite3")
    moved[0]["table_range"], moved[1]["table_range"] = [0, 4], [5, 7]
    write_config(tmp_path, moved, env="staging")
    loose = run_cli(capsys, "validate", "--all-envs", "--config-dir", tmp_path)
    assert loose.code == 0
    assert "warning [env-drift-mapping]" in loose.out and "table numbers 4 " in loose.out
    strict = run_cli(capsys, "validate", "--all-envs", "--strict", "--config-dir", tmp_path)
    assert strict.code == 1
    assert "error [env-drift-mapping]" in strict.out


def test_validate_reports_every_problem_with_file_and_line(capsys, tmp_path):
    entries = tiled_entries(32, 4, [str(tmp_path / "x.db")], "sqlite3")
    entries[1]["table_range"] = [9, 14]  # 8 is uncovered
    entries[2]["table_range"] = [14, 23]  # 14 is claimed twice
    entries[3]["driver"] = "oracle"
    path = write_config(tmp_path, entries)
    run = run_cli(capsys, "validate", "--config-dir", tmp_path, "-f", "github")
    assert run.code == 1
    lines = run.out.splitlines()
    assert any(line.startswith(f"::error file={path},line=") and "range-gap" in line
               and "Table number 8 is served by no entry" in line for line in lines)  # fmt: skip
    assert any("range-overlap" in line and "'2'" in line and "'3'" in line for line in lines)
    assert any("unknown-driver" in line for line in lines)


def test_missing_env_is_usage_error(capsys, config_dir):
    run = run_cli(capsys, "map", "--env", "nope", "--config-dir", config_dir)
    assert run.code == 2
    assert "nope/database.yaml not found" in run.err and "develop" in run.err
    assert "Traceback" not in run.err


def test_invalid_config_blocks_map_and_route(capsys, tmp_path):
    entries = tiled_entries(32, 2, [str(tmp_path / "x.db")], "sqlite3")
    entries[1]["table_range"] = [17, 31]
    write_config(tmp_path, entries)
    for command in (["map"], ["route", "16"]):
        run = run_cli(capsys, *command, "--config-dir", tmp_path)
        assert run.code == 1
        assert "range-gap" in run.err and "16" in run.err
        assert "Traceback" not in run.err


def test_map_json_resolves_sqlite_paths_against_config_parent(capsys, config_dir, monkeypatch,
                                                               tmp_path):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # not the config's parent: must not matter
    run = run_cli(capsys, "map", "-f", "json", "--config-dir", config_dir)
    assert run.code == 0
    rows = json.loads(run.out)
    assert [r["table_number"] for r in rows] == list(range(32))
    assert rows[5]["entry_id"] == "2"
    assert rows[5]["tables"] == {"users": "users_005", "posts": "posts_005"}
    assert rows[5]["database"] == str(config_dir.parent / "data/develop/sharding_db_1.db")
    assert rows[31]["database"] == str(config_dir.parent / "data/develop/sharding_db_4.db")


def test_map_by_database_and_csv(capsys, config_dir):
    run = run_cli(capsys, "map", "--by", "database", "-f", "json", "--config-dir", config_dir)
    databases = json.loads(run.out)
    assert len(databases) == 4
    assert [e["entry_id"] for e in databases[1]["entries"]] == ["3", "4"]
    assert databases[1]["table_count"] == 8
    run = run_cli(capsys, "map", "-f", "csv", "--config-dir", config_dir)
    lines = run.out.splitlines()
    assert lines[0] == "table_number,entry_id,database,users,posts,readers,reader_policy"
    assert len(lines) == 33


def test_map_table_shows_master_and_summary(capsys, config_dir):
    run = run_cli(capsys, "map", "--config-dir", config_dir)
    assert run.code == 0
    assert "users_031 posts_031" in run.out
    assert "8 entries over 4 physical database(s)" in run.out
    assert "master" in run.out and "master.db" in run.out


@pytest.mark.parametrize(("suffix_count", "databases"), [(8, 1), (64, 2), (1024, 8)])
def test_route_matches_map_for_any_topology(capsys, tmp_path, suffix_count, databases):
    dsns = [str(tmp_path / f"db{i}.db") for i in range(databases)]
    write_config(tmp_path, tiled_entries(suffix_count, databases * 2, dsns, "sqlite3"),
                 suffix_count=suffix_count)  # fmt: skip
    mapping = json.loads(run_cli(capsys, "map", "-f", "json", "--config-dir", tmp_path).out)
    ids = [0, 1, suffix_count - 1, suffix_count, 1234567, 2**63 - 1]
    run = run_cli(capsys, "route", *map(str, ids), "-f", "json", "--config-dir", tmp_path)
    assert run.code == 0
    for record, id_ in zip(json.loads(run.out), ids, strict=True):
        row = mapping[id_ % suffix_count]
        assert record["table_number"] == id_ % suffix_count
        assert record["entry_id"] == row["entry_id"] and record["database"] == row["database"]
        assert record["tables"] == row["tables"]
    width = max(3, len(str(suffix_count - 1)))
    assert mapping[-1]["tables"]["users"] == f"users_{suffix_count - 1:0{width}d}"


def test_route_table_number(capsys, config_dir):
    run = run_cli(capsys, "route", "--table-number", "17", "-f", "json", "--config-dir",
                  config_dir)  # fmt: skip
    (record,) = json.loads(run.out)
    assert record["entry_id"] == "5" and record["tables"]["posts"] == "posts_017"
    run = run_cli(capsys, "route", "--table-number", "32", "--config-dir", config_dir)
    assert run.code == 1 and "suffix_count is 32" in run.err


@pytest.mark.parametrize(
    ("value", "needle"),
    [("-7", "negative"), ("9223372036854775808", "2^63"), ("12a", "not an integer"),
     ("1.5", "not an integer"), ("", "not an integer")],
)  # fmt: skip
def test_route_rejects_bad_ids(capsys, config_dir, value, needle):
    run = run_cli(capsys, "route", "--config-dir", config_dir, "--", value)
    assert run.code == 1
    assert needle in run.err and "Traceback" not in run.err


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_route_stdin_equals_route_arguments(capsys, config_dir, monkeypatch, fmt):
    ids = [0, 5, 31, 32, 1234567, 2**63 - 1, 99]
    _stdin(monkeypatch, ("\n".join(map(str, ids)) + "\n\n").encode())
    streamed = run_cli(capsys, "route", "--stdin", "-f", fmt, "--config-dir", config_dir)
    direct = run_cli(capsys, "route", *map(str, ids), "-f", fmt, "--config-dir", config_dir)
    assert streamed.code == direct.code == 0
    if fmt == "csv":
        assert streamed.out == direct.out
    elif fmt == "json":
        assert json.loads(streamed.out) == json.loads(direct.out)
    else:
        parse = [json.loads(line) for line in streamed.out.splitlines()]
        assert parse == [json.loads(line) for line in direct.out.splitlines()]


def test_route_stdin_error_names_line(capsys, config_dir, monkeypatch):
    _stdin(monkeypatch, b"1\n2\n3\n-4\n5\n")
    run = run_cli(capsys, "route", "--stdin", "--config-dir", config_dir)
    assert run.code == 1
    assert "stdin line 4" in run.err and "-4" in run.err


def test_route_stdin_handles_large_input_in_chunks(capsys, config_dir, monkeypatch):
    count = 300_000  # more than one 1 MiB chunk
    _stdin(monkeypatch, "".join(f"{i}\n" for i in range(count)).encode())
    run = run_cli(capsys, "route", "--stdin", "-f", "csv", "--config-dir", config_dir)
    lines = run.out.splitlines()
    assert len(lines) == count + 1
    assert lines[-1].startswith(f"{count - 1},{(count - 1) % 32},")


def test_secrets_never_printed(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SHARD_PW", SENTINEL)
    entries = tiled_entries(32, 4, ["x"], "postgres")
    entries[0]["dsn"] = f"host=db1 user=app password={SENTINEL} dbname=a"
    entries[1]["dsn"] = f"postgres://app:{SENTINEL}@db2:5432/b"
    entries[2]["dsn"] = "host=db3 user=app password=${SHARD_PW} dbname=c"
    entries[3].pop("dsn")
    entries[3].update(host="db4", name="d", user="app", password=SENTINEL,
                      reader_dsns=[f"postgres://ro:{SENTINEL}@r1/d"])  # fmt: skip
    write_config(tmp_path, entries)
    runs = [run_cli(capsys, "--debug", "validate", "-f", f, "--config-dir", tmp_path)
            for f in ("text", "json", "github")]  # fmt: skip
    runs += [run_cli(capsys, "map", "-f", f, "--by", by, "--config-dir", tmp_path)
             for f in ("table", "json", "csv") for by in ("table", "database")]  # fmt: skip
    runs += [run_cli(capsys, "route", "1", "9", "25", "-f", f, "--config-dir", tmp_path)
             for f in ("table", "json", "jsonl", "csv")]  # fmt: skip
    for run in runs:
        assert run.code == 0, run.err
        assert SENTINEL not in run.out + run.err
    assert "***" in runs[-1].out


def _write_yaml(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))


def test_installed_console_script_and_module(tmp_path, config_dir):
    exe = Path(sys.executable).parent / "shardctl"
    env = {**os.environ, "SHARDCTL_CONFIG_DIR": str(config_dir)}
    for command in ([str(exe)], [sys.executable, "-m", "shardctl"]):
        done = subprocess.run([*command, "route", "1234567", "-f", "csv"], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[1].startswith("1234567,7,users_007,posts_007,2,")


def test_offline_commands_do_not_import_database_libraries(config_dir):
    probe = (
        "import sys\n"
        "from shardctl.cli import main\n"
        "config = sys.argv[1]\n"
        "for argv in (['route','1','-f','jsonl'], ['map','-f','json'], ['validate','-f','json'],\n"
        "             ['validate']):\n"
        "    sys.argv = ['shardctl', *argv, '--config-dir', config]\n"
        "    try: main()\n"
        "    except SystemExit as e: assert not e.code, e.code\n"
        "heavy = [m for m in ('sqlalchemy','sqlglot','psycopg','pymysql') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'rich' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(config_dir)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "HEAVY [] False" in done.stdout  # json/text formats draw no table: no rich either


def test_cli_reference_is_current(tmp_path):
    generated = tmp_path / "cli.md"
    typer_exe = Path(sys.executable).parent / "typer"
    subprocess.run([str(typer_exe), "shardctl.cli.reference", "utils", "docs", "--name", "shardctl",
                    "--output", str(generated)], check=True, capture_output=True)  # fmt: skip
    assert generated.read_text() == (REPO / "docs/cli.md").read_text(), (
        "docs/cli.md is stale: run `.venv/bin/typer shardctl.cli.reference utils docs "
        "--name shardctl --output docs/cli.md`"
    )


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci/run").read_text()
    test_command = ci.strip().splitlines()[-1]
    assert test_command in readme


def test_validate_live_reports_drift_until_migrated(capsys, config_dir):
    before = run_cli(capsys, "validate", "--live", "-f", "json", "--config-dir", config_dir)
    assert before.code == 1
    report = json.loads(before.out)
    assert report["ok"] is False and report["problems"] == []
    assert report["live"]["summary"]["pending"] == 64  # 32 numbers × users, posts
    assert run_cli(capsys, "migrate", "--yes", "--config-dir", config_dir).code == 0
    after = run_cli(capsys, "validate", "--live", "--config-dir", config_dir)
    assert after.code == 0, after.err
    assert "in sync" in after.err
    import sqlite3

    stray = sqlite3.connect(config_dir.parent / "data/develop/sharding_db_1.db")
    stray.execute("CREATE TABLE users_012 (id BIGINT PRIMARY KEY)")  # owned by entry 4 (db 2)
    stray.close()
    drift = run_cli(capsys, "validate", "--live", "--config-dir", config_dir)
    assert drift.code == 1
    assert "users_012" in drift.out and "4" in drift.out
