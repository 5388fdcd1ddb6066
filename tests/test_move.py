"""shardctl move on real databases: split 4→8 and merge 8→4 with query-all answers unchanged,
SQLite→PostgreSQL→MariaDB→PostgreSQL copies, resume after an interruption, conflicting
targets, checksum mismatches, the config rewrite and password handling."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import run_cli
from conftest import REPO, mysql_dsn, pg_dsn, tiled_entries, write_config
from reshard_helpers import (
    load,
    query_all_results,
    seed,
    snapshot,
    table_names,
    write_schema,
)

from shardctl.checksum import Checksum, normalize, row_digest
from shardctl.config_edit import ConfigEditError, EntryConnection, rewrite_entry
from shardctl.db import make_engine
from shardctl.dsn import Dsn
from shardctl.move import VerificationFailed, plan_move, run_move

SENTINEL = "S3ntinel-Pa55word-move"
USERS = range(0, 300, 1)  # ids 0-299: ~10 users and 20 posts per table number


@pytest.fixture
def develop(tmp_path: Path) -> Path:
    """The shipped develop config (8 entries over 4 SQLite files, with its comments), seeded."""
    config_dir = tmp_path / "app" / "config"
    shutil.copytree(REPO / "config" / "develop", config_dir / "develop")
    write_schema(config_dir)
    seed(config_dir, USERS)
    return config_dir


def move(capsys: pytest.CaptureFixture[str], config_dir: Path, entry: str, to: str, *extra: str):
    return run_cli(capsys, "move", "--entry", entry, "--to", to, "--yes",
                   "--config-dir", config_dir, *extra)  # fmt: skip


def execute(dsn: Dsn, sql: str) -> list[tuple[object, ...]]:
    engine = make_engine(dsn)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


class Listener:
    """Calls ``action`` once, when ``phase`` has advanced by at least ``after`` rows."""

    def __init__(self, phase: str, after: int, action: Callable[[], None]) -> None:
        self.wanted, self.after, self.action = phase, after, action
        self.current, self.seen, self.done = "", 0, False

    def phase(self, name: str, total: int) -> None:
        self.current = name
        if name == self.wanted and self.after == 0:
            self.done = True
            self.action()

    def advance(self, table: str, rows: int) -> None:
        if self.current == self.wanted and not self.done:
            self.seen += rows
            if self.seen >= self.after:
                self.done = True
                self.action()


# --- split and merge -------------------------------------------------------------------------


def test_split_4_to_8_then_merge_back_on_sqlite_keeps_data_and_comments(capsys, develop):
    config = develop / "develop" / "database.yaml"
    original = config.read_text()
    before, answers = snapshot(develop), query_all_results(develop)
    for entry, n in (("2", 5), ("4", 6), ("6", 7), ("8", 8)):
        run = move(capsys, develop, entry, f"./data/develop/sharding_db_{n}.db", "--drop-source")
        assert run.code == 0, run.err
        assert "verification" in run.out and "MISMATCH" not in run.out
    topology, _ = load(develop)
    assert len(topology.databases) == 8
    assert all(len(db.entries) == 1 for db in topology.databases)
    assert snapshot(develop) == before
    assert query_all_results(develop) == answers
    old_db1 = topology.entries[0].writer
    assert not any(name.endswith(("_004", "_007")) for name in table_names(old_db1))
    changed = [line for line in config.read_text().splitlines() if line not in original]
    assert len(changed) == 8  # dsn + writer_dsn of four entries; every comment kept
    assert all(line.lstrip().startswith(("dsn:", "writer_dsn:")) for line in changed)

    status = run_cli(capsys, "status", "--config-dir", develop, "-f", "json")
    assert status.code == 0 and '"rows": 900' in status.out  # 300 users + 600 posts

    for entry, home in (("2", 1), ("4", 2), ("6", 3), ("8", 4)):
        run = move(capsys, develop, entry, f"./data/develop/sharding_db_{home}.db", "--drop-source")
        assert run.code == 0, run.err
    assert config.read_text() == original
    assert snapshot(develop) == before
    assert query_all_results(develop) == answers


@pytest.mark.postgres
def test_split_4_to_8_on_postgres(capsys, tmp_path, pg_databases):
    old = [pg_databases() for _ in range(4)]
    write_config(tmp_path, tiled_entries(8, 8, [pg_dsn(n) for n in old], "postgres"),
                 suffix_count=8)  # fmt: skip
    write_schema(tmp_path)
    seed(tmp_path, USERS)
    before, answers = snapshot(tmp_path), query_all_results(tmp_path)
    for entry in ("2", "4", "6", "8"):
        run = move(capsys, tmp_path, entry, pg_dsn(pg_databases()), "--drop-source")
        assert run.code == 0, run.err
    assert snapshot(tmp_path) == before
    assert query_all_results(tmp_path) == answers
    topology, _ = load(tmp_path)
    assert [len(db.entries) for db in topology.databases] == [1] * 8
    status = run_cli(capsys, "status", "--config-dir", tmp_path, "--exact", "-f", "json")
    assert status.code == 0, status.err
    check = run_cli(capsys, "migrate", "--check", "--config-dir", tmp_path, "--schema",
                    tmp_path / "schema.yaml")  # fmt: skip
    assert check.code == 0, check.out + check.err  # no stray tables left on the old databases


@pytest.mark.mysql
def test_merge_8_to_4_on_mariadb(capsys, tmp_path, mysql_databases):
    names = [mysql_databases() for _ in range(8)]
    write_config(tmp_path, tiled_entries(8, 8, [mysql_dsn(n) for n in names], "mysql"),
                 suffix_count=8)  # fmt: skip
    write_schema(tmp_path)
    seed(tmp_path, USERS)
    before, answers = snapshot(tmp_path), query_all_results(tmp_path)
    for entry, home in (("2", 0), ("4", 2), ("6", 4), ("8", 6)):
        run = move(capsys, tmp_path, entry, mysql_dsn(names[home]), "--drop-source")
        assert run.code == 0, run.err
    assert snapshot(tmp_path) == before
    assert query_all_results(tmp_path) == answers
    topology, _ = load(tmp_path)
    assert [[e.id for e in db.entries] for db in topology.databases] == [
        ["1", "2"], ["3", "4"], ["5", "6"], ["7", "8"]
    ]  # fmt: skip


# --- across engines --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.mysql
def test_sqlite_to_postgres_to_mariadb_and_back(capsys, develop, pg_databases, mysql_databases):
    before = snapshot(develop)
    source_nulls = execute(load(develop)[0].entries[1].writer,
                           "SELECT COUNT(*) FROM users_004 WHERE profile IS NULL")  # fmt: skip
    hops = [(pg_dsn(pg_databases()), "postgres"), (mysql_dsn(mysql_databases()), "mysql"),
            (pg_dsn(pg_databases()), "postgres")]  # fmt: skip
    for to, driver in hops:
        run = move(capsys, develop, "2", to, "--driver", driver, "--drop-source")
        assert run.code == 0, run.err
        assert snapshot(develop) == before
        target = load(develop)[0].entries[1].writer
        assert target.driver == driver
        # SQL NULL stays SQL NULL in JSON columns (not the JSON text 'null')
        nulls = execute(target, "SELECT COUNT(*) FROM users_004 WHERE profile IS NULL")
        assert nulls == source_nulls and nulls[0][0] > 0


# --- safety ----------------------------------------------------------------------------------


def test_interrupted_move_resumes_and_verifies(capsys, develop):
    config = develop / "develop" / "database.yaml"
    original = config.read_text()
    before = snapshot(develop)
    plan = plan_move(develop, "develop", "2", "./data/develop/sharding_db_5.db")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_move(plan, batch_size=4, listener=Listener("copy", 30, interrupt))
    assert config.read_text() == original
    run = move(capsys, develop, "2", "./data/develop/sharding_db_5.db", "--batch-size", "4")
    assert run.code == 0, run.err
    assert "0 table(s) created, 90 row(s) copied (30 were already there)" in run.err
    assert snapshot(develop) == before and config.read_text() != original
    rerun = move(capsys, develop, "2", "./data/develop/sharding_db_5.db")
    assert rerun.code == 0 and "already uses" in rerun.err


def test_conflicting_rows_on_the_target_stop_the_move(capsys, develop):
    config = develop / "develop" / "database.yaml"
    original = config.read_text()
    plan = plan_move(develop, "develop", "2", "./data/develop/sharding_db_5.db")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_move(plan, batch_size=4, listener=Listener("copy", 12, interrupt))
    # the target now holds users_004 and the first 4 rows of posts_004 (ids 8, 9, 72, 73)
    execute(plan.target, "UPDATE posts_004 SET title = 'changed' WHERE id = 8")
    run = move(capsys, develop, "2", "./data/develop/sharding_db_5.db")
    assert run.code == 1
    assert "posts_004 that are not a copy of the source's: id=8 differs" in run.err
    assert config.read_text() == original

    execute(plan.target, "DELETE FROM posts_004 WHERE id = 8")  # now a row only on the source
    run = move(capsys, develop, "2", "./data/develop/sharding_db_5.db")
    assert run.code == 1 and "id=8 is only on the source" in run.err


def test_target_table_with_another_shape_stops_the_move(capsys, develop):
    target = develop.parent / "data" / "develop" / "sharding_db_5.db"
    with sqlite3.connect(target) as connection:
        connection.execute(
            "CREATE TABLE users_005 (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email "
            "VARCHAR(255) NOT NULL, balance NUMERIC(12, 2), score FLOAT, active BOOLEAN NOT NULL, "
            "born DATE, created_at DATETIME NOT NULL, profile JSON, avatar BLOB, note TEXT)"
        )
    run = move(capsys, develop, "2", "./data/develop/sharding_db_5.db")
    assert run.code == 1
    assert "The target tables of entry 2 do not match the schema" in run.err
    assert "users_005.note is not in the schema" in run.err
    assert (
        "dsn: ./data/develop/sharding_db_1.db"
        in (develop / "develop" / "database.yaml").read_text()
    )


def test_checksum_mismatch_fails_verification_and_keeps_everything(capsys, develop):
    config = develop / "develop" / "database.yaml"
    original = config.read_text()
    plan = plan_move(develop, "develop", "4", "./data/develop/sharding_db_6.db")

    def corrupt() -> None:  # after the copy, before verification: one cent on one row
        execute(plan.target, "UPDATE users_013 SET balance = balance + 0.01 WHERE id = 13")

    with pytest.raises(VerificationFailed) as failure:
        run_move(plan, drop_source=True, listener=Listener("verify", 0, corrupt))
    bad = [c for c in failure.value.checks if not c.ok]
    assert [(c.table, c.first_difference) for c in bad] == [("users_013", "id=13 differs")]
    assert (
        bad[0].source_rows == bad[0].target_rows
        and bad[0].source_checksum != bad[0].target_checksum
    )
    assert len(failure.value.checks) == 8 and config.read_text() == original
    assert "users_013" in table_names(plan.source)  # --drop-source did nothing


def test_dry_run_shows_the_diff_and_changes_nothing(capsys, develop):
    config = develop / "develop" / "database.yaml"
    original = config.read_text()
    run = run_cli(capsys, "move", "--entry", "6", "--to", "./data/develop/sharding_db_7.db",
                  "--config-dir", develop, "--dry-run")  # fmt: skip
    assert run.code == 0, run.err
    assert run.out.splitlines()[2:] == [
        "@@ -72,8 +72,8 @@",
        "       # entry 6: tables 20-23 on physical database 3",
        "       - id: 6",
        "         driver: sqlite3",
        "-        dsn: ./data/develop/sharding_db_3.db",
        "-        writer_dsn: ./data/develop/sharding_db_3.db",
        "+        dsn: ./data/develop/sharding_db_7.db",
        "+        writer_dsn: ./data/develop/sharding_db_7.db",
        "         reader_dsns: []",
        "         reader_policy: random",
        "         max_connections: 5",
    ]
    assert config.read_text() == original
    assert not (develop.parent / "data" / "develop" / "sharding_db_7.db").exists()
    assert not list(develop.glob(".shardctl-move-*"))  # the scratch copy is gone


@pytest.mark.postgres
def test_password_variables_are_kept_and_never_printed(capsys, develop, pg_databases, monkeypatch):
    monkeypatch.setenv("SHARDCTL_MOVE_PW", SENTINEL)  # trust auth: any password is accepted
    name = pg_databases()
    to = f"host=127.0.0.1 port=5432 user=postgres password=${{SHARDCTL_MOVE_PW}} dbname={name}"
    run = move(capsys, develop, "8", to, "--driver", "postgres")
    assert run.code == 0, run.err
    text = (develop / "develop" / "database.yaml").read_text()
    assert f"dsn: {to}\n" in text and SENTINEL not in text
    literal = to.replace("${SHARDCTL_MOVE_PW}", SENTINEL)
    dry = run_cli(capsys, "move", "--entry", "6", "--to", literal, "--driver", "postgres",
                  "--config-dir", develop, "--dry-run")  # fmt: skip
    assert dry.code == 0, dry.err
    assert "literal password" in dry.err and "password=***" in dry.out
    for output in (run.out, run.err, dry.out, dry.err):
        assert SENTINEL not in output


def test_usage_errors(capsys, develop):
    unknown = move(capsys, develop, "9", "./x.db")
    assert unknown.code == 2 and "No entry '9'" in unknown.err and "1, 2, 3" in unknown.err
    unset = move(capsys, develop, "2", "host=h password=${SHARDCTL_UNSET_PW} dbname=x",
                 "--driver", "postgres")  # fmt: skip
    assert unset.code == 1 and "SHARDCTL_UNSET_PW is not set" in unset.err
    no_tty = run_cli(capsys, "move", "--entry", "2", "--to", "./x.db", "--config-dir", develop)
    assert no_tty.code == 2 and "--yes" in no_tty.err


# --- config rewrite and checksums (no database) ---------------------------------------------

FIELDS_CONFIG = """\
database:
  groups:
    sharding:
      tables: [{name: users, suffix_count: 4}]
      databases:
        - id: 1   # first
          driver: postgres
          host: old-host   # separate fields
          port: 5432
          name: app
          user: app
          password: ${PW}
          reader_dsns: [host=old-replica dbname=app]
          table_range: [0, 1]
        - id: 2
          driver: postgres
          dsn: &shared host=b dbname=app
          table_range: [2, 2]
        - id: 3
          driver: postgres
          dsn: *shared
          table_range: [3, 3]
"""


def test_rewrite_replaces_fields_and_readers_in_place():
    connection = EntryConnection("mysql", "app:${PW}@tcp(db5:3306)/app", ("yes", "r: 2"))
    new = rewrite_entry(FIELDS_CONFIG, "f.yaml", "1", connection)
    assert new.splitlines()[5:11] == [
        "        - id: 1   # first",
        "          driver: mysql",
        "          dsn: app:${PW}@tcp(db5:3306)/app",
        "          reader_dsns:",
        "            - 'yes'",  # plain `yes` would read back as a boolean
        "            - 'r: 2'",
    ]
    assert new.splitlines()[11] == "          table_range: [0, 1]"


def test_rewrite_refuses_values_shared_through_anchors():
    for entry in ("2", "3"):
        with pytest.raises(ConfigEditError, match="'dsn' is a YAML anchor or alias"):
            rewrite_entry(FIELDS_CONFIG, "f.yaml", entry, EntryConnection("postgres", "host=c"))
    merged = FIELDS_CONFIG.replace("dsn: *shared", "<<: {host: c, name: app}")
    with pytest.raises(ConfigEditError, match="anchors or merge keys"):  # host stays inherited
        rewrite_entry(merged, "f.yaml", "3", EntryConnection("postgres", "host=d dbname=x"))


def test_checksum_normalizes_engine_representations_but_not_data():
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive_utc = dt.datetime(2024, 1, 1, 10)
    assert normalize(aware) == normalize(naive_utc)
    assert normalize(Decimal("1.50")) == normalize(Decimal("1.5"))
    assert normalize({"b": 1, "a": 2}) == normalize({"a": 2, "b": 1})
    assert normalize(True) != normalize(1)
    assert normalize("a ") != normalize("a")
    assert row_digest(["ab", "c"]) != row_digest(["a", "bc"])
    rows = [row_digest([i, f"r{i}"]) for i in range(5)]
    forward, backward = Checksum(), Checksum()
    for digest in rows:
        forward.add(digest)
    for digest in reversed(rows):
        backward.add(digest)
    assert forward == backward and forward.rows == 5
    backward.add(rows[0])
    assert backward.hex != forward.hex
