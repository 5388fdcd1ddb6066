"""shardctl status on real databases: exact counts on SQLite, estimates and --exact on
PostgreSQL and MariaDB, missing tables and unreachable databases reported (not fatal)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import REPO, mysql_dsn, pg_dsn, tiled_entries, write_config
from reshard_helpers import POSTS_PER_USER, load, seed, write_schema

from shardctl.db import make_engine
from shardctl.routing import Topology
from shardctl.status import collect_status

SENTINEL = "S3ntinel-Pa55word-status"


@pytest.fixture
def develop(tmp_path: Path) -> Path:
    config_dir = tmp_path / "app" / "config"
    shutil.copytree(REPO / "config" / "develop", config_dir / "develop")
    write_schema(config_dir)
    seed(config_dir, range(100))  # table numbers 0-3 hold 4 users, the others 3
    return config_dir


def test_sqlite_counts_per_table_entry_and_database_with_skew(capsys, develop):
    run = run_cli(capsys, "status", "--config-dir", develop, "-f", "json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["rows"] == 100 * (1 + POSTS_PER_USER) and report["ok"] is True
    first = report["databases"][0]
    assert [e["entry_id"] for e in first["entries"]] == ["1", "2"]
    tables = {t["table"]: t for e in first["entries"] for t in e["tables"]}
    assert tables["users_000"] == {"table": "users_000", "logical": "users", "table_number": 0,
                                   "rows": 4, "estimated": False}  # fmt: skip
    assert tables["posts_007"]["rows"] == 3 * POSTS_PER_USER
    assert first["rows"] == 3 * (4 * 4 + 4 * 3)  # entry 1: 4 users per table, entry 2: 3
    skew = {s["level"]: s for s in report["skew"]}
    assert skew["entry"]["largest"] == "1"
    assert skew["entry"]["ratio"] == pytest.approx(48 / 37.5)  # entry 1 vs the mean of 300/8
    assert skew["database"]["ratio"] == pytest.approx(84 / 75)  # database 1 vs 300/4
    assert skew["table users"]["ratio"] == pytest.approx(4 / (100 / 32))


def test_table_view_has_bars_and_every_suffix_table(capsys, develop, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # long tmp paths: keep one database per line
    run = run_cli(capsys, "status", "--config-dir", develop, "--tables")
    assert run.code == 0, run.out
    assert "users_031" in run.out and "posts_000" in run.out
    bars = [line for line in run.out.splitlines() if "sharding_db_" in line and "█" in line]
    assert len(bars) == 4
    assert "█" * 30 in bars[0]  # the largest database gets the full bar
    assert "skew (largest / mean)" in run.out


def test_missing_tables_and_files_are_reported_not_fatal(capsys, develop):
    data = develop.parent / "data" / "develop"
    with sqlite3.connect(data / "sharding_db_2.db") as connection:
        connection.execute("DROP TABLE posts_009")
    (data / "sharding_db_4.db").unlink()
    run = run_cli(capsys, "status", "--config-dir", develop, "-f", "json")
    assert run.code == 1
    report = json.loads(run.out)
    second, fourth = report["databases"][1], report["databases"][3]
    assert second["missing"] == ["posts_009"] and second["rows"] == 72 - 3 * POSTS_PER_USER
    assert "does not exist" in fourth["error"] and fourth["rows"] == 0
    assert not (data / "sharding_db_4.db").exists()  # never created just to look
    assert report["databases"][0]["rows"] == 84  # the others are still counted
    assert "lacks 1 suffix table(s) it owns: posts_009" in run.err


def analyze(topology: Topology, statements: Callable[[list[int]], list[str]]) -> None:
    """Refresh the engine's statistics (committed) so its estimates are current."""
    for database in topology.databases:
        engine = make_engine(database.writer)
        with engine.begin() as connection:
            for statement in statements(database.table_numbers):
                connection.exec_driver_sql(statement)
        engine.dispose()


@pytest.mark.postgres
def test_postgres_estimates_exact_and_unreachable_database(capsys, tmp_path, pg_databases):
    names = [pg_databases(), pg_databases()]
    entries = tiled_entries(8, 4, [pg_dsn(n) for n in names], "postgres")
    write_config(tmp_path, entries, suffix_count=8)
    write_schema(tmp_path)
    seed(tmp_path, range(40))  # 5 users and 10 posts per table number
    topology, _ = load(tmp_path)
    analyze(topology, lambda numbers: ["ANALYZE"])
    estimated = collect_status(topology)
    assert all(t.estimated and t.rows == (5 if t.logical == "users" else 10)
               for d in estimated.databases for e in d.entries for t in e.tables)  # fmt: skip
    assert estimated.rows == 8 * 15

    entries[3]["dsn"] = f"host=127.0.0.1 port=1 user=app password={SENTINEL} dbname=nowhere"
    broken = tmp_path / "broken"
    write_config(broken, entries, suffix_count=8)
    run = run_cli(capsys, "status", "--config-dir", broken, "--exact", "-f", "json")
    assert run.code == 1
    report = json.loads(run.out)
    assert [d["rows"] for d in report["databases"]] == [60, 30, 0]
    assert all(not t["estimated"] for t in report["databases"][0]["entries"][0]["tables"])
    failed = report["databases"][2]
    assert failed["error"].startswith("Database postgres://app:***@127.0.0.1:1/nowhere")
    assert SENTINEL not in run.out + run.err


@pytest.mark.mysql
def test_mariadb_estimates_and_exact(capsys, tmp_path, mysql_databases):
    names = [mysql_databases(), mysql_databases()]
    write_config(tmp_path, tiled_entries(4, 2, [mysql_dsn(n) for n in names], "mysql"),
                 suffix_count=4)  # fmt: skip
    write_schema(tmp_path)
    seed(tmp_path, range(40))  # 10 users and 20 posts per table number
    topology, _ = load(tmp_path)
    analyze(topology, lambda numbers: [f"ANALYZE TABLE users_{n:03d}, posts_{n:03d}"
                                       for n in numbers])  # fmt: skip
    estimated = collect_status(topology)
    assert all(d.estimated for d in estimated.databases)
    assert estimated.rows == pytest.approx(4 * 30, rel=0.5)  # InnoDB samples: an estimate
    exact = run_cli(capsys, "status", "--config-dir", tmp_path, "--exact", "-f", "json")
    assert exact.code == 0, exact.err
    assert [d["rows"] for d in json.loads(exact.out)["databases"]] == [60, 60]
