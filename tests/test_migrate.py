"""`shardctl migrate` on real SQLite files, PostgreSQL and MariaDB databases.

After every migrate the tables of each database are listed and compared with exactly the set it
owns. PostgreSQL databases are few per test: dropping one costs a checkpoint (~1 s).
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy as sa
from cli_helpers import run_cli
from conftest import MYSQL, PG, REPO, mysql_dsn, pg_dsn, tiled_entries, write_config
from sqlalchemy.schema import DropIndex, DropTable

from shardctl import drivers, migrate
from shardctl.db import make_engine
from shardctl.dsn import Dsn
from shardctl.routing import PhysicalDatabase, Topology
from shardctl.schema import Schema, build_table, load_schema
from shardctl.validate import load_topology

SCHEMA_FILE = REPO / "config" / "schema.yaml"
SCHEMA: Schema = load_schema(SCHEMA_FILE)[0]


# --- helpers -----------------------------------------------------------------------------------


@dataclass
class Backend:
    """Makes fresh, empty databases of one driver (DSN text as written in database.yaml)."""

    driver: str
    new: Callable[[], str]


@pytest.fixture(
    params=[
        "sqlite3",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    driver: str = request.param
    if driver == "postgres":
        pg_factory = request.getfixturevalue("pg_databases")
        return Backend(driver, lambda: pg_dsn(pg_factory()))
    if driver == "mysql":
        mysql_factory = request.getfixturevalue("mysql_databases")
        return Backend(driver, lambda: mysql_dsn(mysql_factory()))
    files = iter(range(1 << 20))
    return Backend(driver, lambda: str(tmp_path / "data" / f"shard_{next(files)}.db"))


def write_files(
    config_dir: Path,
    entries: list[dict[str, object]],
    *,
    suffix_count: int,
    tables: tuple[str, ...] = ("users", "posts"),
    schema_text: str | None = None,
) -> Path:
    """Write database.yaml (env develop) and schema.yaml under ``config_dir``."""
    write_config(config_dir, entries, suffix_count=suffix_count, tables=tables)
    schema_path = config_dir / "schema.yaml"
    if schema_text is None:
        shutil.copy(SCHEMA_FILE, schema_path)
    else:
        schema_path.write_text(schema_text)
    return config_dir


def configure(config_dir: Path, entries: list[dict[str, object]], **options: Any) -> Topology:
    """:func:`write_files`, then the loaded topology."""
    write_files(config_dir, entries, **options)
    return load_topology(config_dir, "develop", connecting=True)[0]


def tiled(backend: Backend, config_dir: Path, databases: int, *, entries: int = 8,
          suffix_count: int = 32) -> Topology:  # fmt: skip
    dsns = [backend.new() for _ in range(databases)]
    return configure(config_dir, tiled_entries(suffix_count, entries, dsns, backend.driver),
                     suffix_count=suffix_count)  # fmt: skip


@contextmanager
def connect(dsn: Dsn) -> Iterator[sa.Connection]:
    engine = make_engine(dsn)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def tables_in(db: PhysicalDatabase) -> set[str]:
    with connect(db.writer) as connection:
        return set(sa.inspect(connection).get_table_names())


def owned(topology: Topology, db: PhysicalDatabase) -> set[str]:
    return {topology.suffix_table(t, n) for t in topology.table_names for n in db.table_numbers}


def assert_exactly_owned(topology: Topology) -> None:
    for db in topology.databases:
        assert tables_in(db) == owned(topology, db), db.label


def assert_rerun_changes_nothing(topology: Topology, schema: Schema = SCHEMA) -> None:
    again = migrate.apply(topology, schema)
    assert again.ok and again.pending == 0 and not any(d.applied for d in again.databases)
    assert {d.status for d in again.databases} == {"up to date"}


def assert_in_sync(topology: Topology, schema: Schema = SCHEMA) -> None:
    checked = migrate.check(topology, schema)
    assert checked.ok, [f for d in checked.databases for f in d.plan.findings]


def snapshot(dsn: Dsn) -> dict[str, Any]:
    """Tables, columns (type, nullability, default), indexes and keys as the inspector sees
    them: equal snapshots mean equal schemas."""
    with connect(dsn) as connection:
        inspector = sa.inspect(connection)
        return {
            name: (
                [(c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                 for c in inspector.get_columns(name)],
                sorted((i["name"], tuple(i["column_names"]), i["unique"])
                       for i in inspector.get_indexes(name)),
                inspector.get_pk_constraint(name)["constrained_columns"],
            )
            for name in inspector.get_table_names()
        }  # fmt: skip


def drop_everything(dsn: Dsn) -> None:
    with connect(dsn) as connection:
        metadata = sa.MetaData()
        metadata.reflect(connection)
        metadata.drop_all(connection)


def cli_config(tmp_path: Path, entries: list[dict[str, object]], suffix_count: int) -> Path:
    return write_files(tmp_path / "config", entries, suffix_count=suffix_count)


def copy_shipped_config(tmp_path: Path) -> Path:
    """config/ (develop, schema.yaml, …) under tmp_path: develop's data lands in tmp_path/data."""
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    return config_dir


# --- every physical database gets exactly the tables it owns -------------------------------------


@pytest.mark.parametrize("databases", [1, 2, 4, 8])
def test_sqlite_topologies_get_exactly_their_tables(tmp_path: Path, databases: int):
    dsns = [str(tmp_path / f"db{i}.db") for i in range(databases)]
    topology = configure(tmp_path, tiled_entries(32, 8, dsns, "sqlite3"), suffix_count=32)
    result = migrate.apply(topology, SCHEMA)
    assert result.ok and len(result.databases) == databases
    assert result.applied("create table") == topology.suffix_count * len(topology.tables)
    assert result.applied("create index") == 0  # indexes come with their table
    assert_exactly_owned(topology)
    assert_rerun_changes_nothing(topology)
    assert_in_sync(topology)


@pytest.mark.mysql
def test_mariadb_topologies_get_exactly_their_tables(tmp_path: Path, mysql_databases):
    for databases in (1, 2, 4, 8):  # fresh databases: DROP DATABASE is cheap on MariaDB
        backend = Backend("mysql", lambda: mysql_dsn(mysql_databases()))
        topology = tiled(backend, tmp_path / str(databases), databases, suffix_count=8)
        assert migrate.apply(topology, SCHEMA).ok
        assert_exactly_owned(topology)
        assert_rerun_changes_nothing(topology)


@pytest.mark.postgres
def test_postgres_topologies_get_exactly_their_tables(tmp_path: Path, pg_databases):
    names = [pg_databases() for _ in range(4)]  # reused: each DROP DATABASE costs a checkpoint
    for databases in (1, 2, 4):
        backend = Backend("postgres", iter([pg_dsn(n) for n in names[:databases]]).__next__)
        topology = tiled(backend, tmp_path / str(databases), databases, suffix_count=8)
        assert migrate.apply(topology, SCHEMA).ok
        assert_exactly_owned(topology)
        assert_rerun_changes_nothing(topology)
        for db in topology.databases:
            drop_everything(db.writer)


def test_shipped_develop_config_through_the_cli(capsys, tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    first = run_cli(capsys, "migrate", "--config-dir", config_dir)  # stdin is not a terminal
    assert first.code == 0, first.err
    topology = load_topology(config_dir, "develop", connecting=True)[0]
    assert all(Path(db.writer.database).parent == tmp_path / "data" / "develop"
               for db in topology.databases)  # fmt: skip
    assert_exactly_owned(topology)
    total = topology.suffix_count * len(topology.tables)
    assert f"{total} table(s) created" in first.err
    assert "users_000 … users_003 (4)" in first.out  # the plan table, grouped per entry
    again = run_cli(capsys, "migrate", "--config-dir", config_dir)
    assert again.code == 0 and again.out == ""
    assert f"nothing to do, all {total} table(s) up to date" in again.err
    check = run_cli(capsys, "migrate", "--check", "--config-dir", config_dir, "-f", "json")
    assert check.code == 0 and json.loads(check.out)["ok"] is True


def test_json_format_reports_every_database(capsys, tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    run = run_cli(capsys, "migrate", "--config-dir", config_dir, "--format", "json")
    assert run.code == 0, run.err
    document = json.loads(run.out)
    topology = load_topology(config_dir, "develop")[0]
    assert document["ok"] is True and document["mode"] == "apply"
    assert document["summary"]["tables_created"] == topology.suffix_count * len(topology.tables)
    assert [d["database"] for d in document["databases"]] == [db.label for db in topology.databases]
    first = document["databases"][0]
    assert first["entries"] == [e.id for e in topology.databases[0].entries]
    assert first["status"] == "migrated" and first["error"] is None
    assert first["applied"] == first["steps"] and first["steps"][0] == {
        "action": "create table", "table": "users_000", "name": "users_000", "entry_id": "1"
    }  # fmt: skip


# --- dry run, selection, offline SQL -----------------------------------------------------------


def test_dry_run_and_check_create_no_file(capsys, tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    dry = run_cli(capsys, "migrate", "--dry-run", "--config-dir", config_dir)
    assert dry.code == 0 and "create table" in dry.out and "nothing changed" in dry.err
    check = run_cli(capsys, "migrate", "--check", "--config-dir", config_dir)
    assert check.code == 1 and "missing table" in check.out
    assert not (tmp_path / "data").exists()


def test_database_option_selects_by_entry_id_or_path(capsys, tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    topology = load_topology(config_dir, "develop")[0]
    run = run_cli(capsys, "migrate", "--config-dir", config_dir, "-d", "3", "-d", "db_4.db")
    assert run.code == 0, run.err
    made = {db.index for db in topology.databases if Path(db.writer.database).exists()}
    assert made == {topology.database_of(topology.entries[2]).index, topology.databases[3].index}
    unknown = run_cli(capsys, "migrate", "--config-dir", config_dir, "-d", "nowhere")
    assert unknown.code == 2 and "--database 'nowhere' matches no physical database" in unknown.err


def test_exclusive_modes_are_a_usage_error(capsys, tmp_path: Path):
    run = run_cli(capsys, "migrate", "--sql", "--check", "--config-dir", tmp_path)
    assert run.code == 2 and "alternatives" in run.err


@pytest.mark.parametrize("driver", ["sqlite3", pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("mysql", marks=pytest.mark.mysql)])  # fmt: skip
def test_offline_sql_builds_the_same_database_as_migrate(
    capsys, tmp_path: Path, driver: str, request: pytest.FixtureRequest
):
    """--sql output executed on a fresh database ≡ what migrate creates (inspector snapshot)."""
    if driver == "sqlite3":
        dsns = [str(tmp_path / "offline.db")]
    else:
        factory = request.getfixturevalue("pg_databases" if driver == "postgres" else
                                          "mysql_databases")  # fmt: skip
        dsns = [(pg_dsn if driver == "postgres" else mysql_dsn)(factory())]
    config_dir = cli_config(tmp_path, tiled_entries(8, 2, dsns, driver), 8)
    topology = load_topology(config_dir, "develop")[0]
    dsn = topology.databases[0].writer
    run = run_cli(capsys, "migrate", "--sql", "--config-dir", config_dir, "-f", "json")
    assert run.code == 0, run.err
    [script] = json.loads(run.out)
    assert script["dialect"] == {"sqlite3": "sqlite", "postgres": "postgresql"}.get(driver, driver)
    if driver == "sqlite3":  # the text form, as a DBA would feed it to sqlite3
        text = run_cli(capsys, "migrate", "--sql", "--config-dir", config_dir).out
        assert text.startswith("-- shardctl migrate --sql")
        with sqlite3.connect(dsn.database) as connection:
            connection.executescript(text)
    else:
        with connect(dsn) as connection:
            for statement in script["statements"]:
                connection.exec_driver_sql(statement)
    offline = snapshot(dsn)
    assert set(offline) == owned(topology, topology.databases[0])
    assert migrate.check(topology, SCHEMA).ok
    drop_everything(dsn)
    assert migrate.apply(topology, SCHEMA).ok
    assert snapshot(dsn) == offline


# --- drift ---------------------------------------------------------------------------------------


def test_drift_is_reported_never_applied(capsys, monkeypatch, tmp_path: Path, backend: Backend):
    """A database (any engine) beside a SQLite one; each owns two entries of 8 table numbers."""
    monkeypatch.setenv("COLUMNS", "300")  # rich tables: no wrapping inside the words checked
    sqlite_dsn = str(tmp_path / "neighbour.db")
    entries = tiled_entries(8, 4, [backend.new(), sqlite_dsn], backend.driver)
    entries[2]["driver"] = entries[3]["driver"] = "sqlite3"
    config_dir = cli_config(tmp_path, entries, 8)
    topology = load_topology(config_dir, "develop", connecting=True)[0]
    assert migrate.apply(topology, SCHEMA).ok
    first, neighbour = topology.databases
    with connect(first.writer) as connection:
        metadata = sa.MetaData()
        metadata.reflect(connection, only=["users_001", "posts_002", "users_000"])
        users_001 = metadata.tables["users_001"]
        connection.execute(DropIndex(next(iter(users_001.indexes))))  # idx_users_001_email
        connection.execute(DropTable(metadata.tables["posts_002"]))
        stray = sa.MetaData()
        build_table(stray, SCHEMA.sharding[0], "users_005", first.driver).create(connection)
        build_table(stray, SCHEMA.sharding[0], "users_040", first.driver).create(connection)
        extra = sa.Column("legacy", sa.Integer, nullable=True)
        metadata.tables["users_000"].append_column(extra)
        connection.execute(migrate.AddColumn(extra))

    checked = run_cli(capsys, "migrate", "--check", "--config-dir", config_dir, "-f", "json")
    assert checked.code == 1
    report = json.loads(checked.out)
    findings = {(f["code"], f["table"], f["entry_id"]) for f in report["databases"][0]["findings"]}
    owner_of = {n: topology.entry_for(n).id for n in range(topology.suffix_count)}
    assert findings == {
        ("missing-index", "users_001", owner_of[1]),
        ("missing-table", "posts_002", owner_of[2]),
        ("stray-table", "users_005", owner_of[5]),
        ("unowned-table", "users_040", None),
        ("extra-column", "users_000", owner_of[0]),
    }
    assert report["databases"][0]["database"] == first.label
    assert report["databases"][1]["findings"] == [] and report["summary"]["drift"] == 3
    stray_message = next(f["message"] for f in report["databases"][0]["findings"]
                         if f["code"] == "stray-table")  # fmt: skip
    assert neighbour.label in stray_message  # where users_005 belongs

    text = run_cli(capsys, "migrate", "--check", "--config-dir", config_dir)
    assert text.code == 1 and "missing index" in text.out and "stray-table" in text.out

    fixed = run_cli(capsys, "migrate", "--config-dir", config_dir, "-f", "json")
    assert fixed.code == 0, fixed.err
    applied = json.loads(fixed.out)["databases"][0]["applied"]
    assert {(s["action"], s["table"]) for s in applied} == {
        ("create index", "users_001"), ("create table", "posts_002")
    }  # fmt: skip
    assert tables_in(first) == owned(topology, first) | {"users_005", "users_040"}  # not dropped
    after = migrate.check(topology, SCHEMA)
    assert not after.ok and after.pending == 0 and after.drift == 3


def test_a_view_in_the_way_is_reported_and_the_rest_created(tmp_path: Path, backend: Backend):
    """Views are looked at only when a table is missing: a view named users_001 is drift on the
    first run and on every run after, when all the other tables exist."""
    topology = configure(tmp_path, tiled_entries(4, 2, [backend.new()], backend.driver),
                         suffix_count=4)  # fmt: skip
    [db] = topology.databases
    if backend.driver == "sqlite3":
        Path(db.writer.database).parent.mkdir()
    with connect(db.writer) as connection:
        connection.exec_driver_sql("CREATE VIEW users_001 AS SELECT 1 AS id")
    for result in (migrate.apply(topology, SCHEMA), migrate.check(topology, SCHEMA)):
        [outcome] = result.databases
        assert outcome.plan is not None and outcome.status != "failed"
        assert [(f.code, f.table) for f in outcome.plan.drift] == [("view-in-the-way", "users_001")]
    assert tables_in(db) == owned(topology, db) - {"users_001"}


def test_stray_sqlite_files_in_the_data_directory_are_warned_about(capsys, tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    assert run_cli(capsys, "migrate", "--config-dir", config_dir).code == 0
    data = tmp_path / "data" / "develop"
    shutil.copy(data / "sharding_db_1.db", data / "sharding_db_5.db")
    (data / "notes.db").write_bytes(b"not a database")
    with sqlite3.connect(data / "cache.db") as connection:
        connection.execute("CREATE TABLE sessions (id INTEGER)")
    run = run_cli(capsys, "migrate", "--check", "--config-dir", config_dir)
    assert run.code == 0  # a warning, not drift
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(data / "sharding_db_5.db") in warnings[0]
    assert "16 suffix tables" in warnings[0]


# --- schema evolution and every portable type ----------------------------------------------------

EVERY_TYPE = """\
sharding:
  items:
    shard_key: id
    columns:
      id: {type: bigint, primary_key: true}
      small: smallint
      amount: {type: integer, default: 0}
      flag: {type: boolean, default: false}
      code: {type: string(40), default: '50% o''k \\ new'}
      body: {type: text, nullable: true}
      price: {type: 'numeric(12,2)', default: 0}
      ratio: {type: double, nullable: true}
      seen_at: {type: timestamp, default: current_timestamp}
      born_on: {type: date, nullable: true}
      meta: {type: json, nullable: true}
      raw: {type: binary, nullable: true}
    indexes:
      code: {columns: [code, small], unique: true}
"""
EVOLVED = EVERY_TYPE.replace("    indexes:\n", """\
      note: {type: string(100), nullable: true}
      priority: {type: integer, default: 7}
      touched_at: {type: timestamp, default: current_timestamp}
      owner: bigint
    indexes:
      note: [note]
""")  # fmt: skip


def test_offline_sql_run_as_is_builds_the_same_defaults(tmp_path: Path, backend: Backend):
    """``migrate --sql`` is for a SQL client: run statement by statement without parameters,
    a default with ``%``, a quote and a backslash is stored as written (not ``%%``)."""
    entries = tiled_entries(4, 2, [backend.new()], backend.driver)
    topology = configure(tmp_path, entries, suffix_count=4, tables=("items",),
                         schema_text=EVERY_TYPE)  # fmt: skip
    (script,) = migrate.offline_sql(topology, load_schema(tmp_path / "schema.yaml")[0])
    writer = topology.databases[0].writer
    Path(writer.database).parent.mkdir(parents=True, exist_ok=True)  # SQLite: the file's folder
    connection = drivers.connect(writer)
    try:
        cursor = connection.cursor()
        for statement in script.statements:
            cursor.execute(statement)
        cursor.execute("INSERT INTO items_001 (id, small) VALUES (1, 2)")
        cursor.execute("SELECT code FROM items_001")
        assert list(cursor.fetchall()) == [("50% o'k \\ new",)]
    finally:
        connection.close()


def test_every_type_round_trips_and_columns_are_added(tmp_path: Path, backend: Backend):
    entries = tiled_entries(4, 2, [backend.new()], backend.driver)
    topology = configure(tmp_path, entries, suffix_count=4, tables=("items",),
                         schema_text=EVERY_TYPE)  # fmt: skip
    every_type = load_schema(tmp_path / "schema.yaml")[0]
    assert migrate.apply(topology, every_type).ok
    assert_in_sync(topology, every_type)  # reflection agrees with every portable type
    with connect(topology.databases[0].writer) as connection:
        connection.exec_driver_sql("INSERT INTO items_001 (id, small) VALUES (1, 2)")
        code = connection.exec_driver_sql("SELECT code FROM items_001").scalar_one()
    assert code == "50% o'k \\ new"  # the literal default, whatever the DDL's quoting

    (tmp_path / "schema.yaml").write_text(EVOLVED)
    evolved = load_schema(tmp_path / "schema.yaml")[0]
    result = migrate.apply(topology, evolved)
    assert result.ok
    [outcome] = result.databases
    added = {(s.action, s.name) for s in outcome.applied if s.table == "items_001"}
    expected = {
        ("add column", "note"),
        ("add column", "priority"),
        ("create index", "idx_items_001_note"),
    }
    if backend.driver != "sqlite3":  # SQLite cannot add a CURRENT_TIMESTAMP default
        expected.add(("add column", "touched_at"))
    assert added == expected
    drift = {(f.code, f.table) for f in outcome.plan.drift if f.table == "items_001"}
    assert ("missing-column", "items_001") in drift  # owner: NOT NULL without a default
    with connect(topology.databases[0].writer) as connection:
        row = connection.exec_driver_sql("SELECT priority, note FROM items_001 WHERE id = 1").one()
    assert tuple(row) == (7, None)  # the existing row got the default
    remaining = migrate.check(topology, evolved)
    codes = {f.code for d in remaining.databases for f in d.plan.findings}
    assert not remaining.ok and codes == {"missing-column"}


def test_master_tables_go_to_master_databases(tmp_path: Path):
    write_config(tmp_path, tiled_entries(4, 2, [str(tmp_path / "s.db")], "sqlite3"),
                 suffix_count=4)  # fmt: skip
    path = tmp_path / "develop" / "database.yaml"
    path.write_text(path.read_text().replace(
        "database:\n  groups:\n",
        f"database:\n  groups:\n    master:\n    - id: main\n      driver: sqlite3\n"
        f"      dsn: {tmp_path / 'master.db'}\n",
    ))  # fmt: skip
    schema_text = SCHEMA_FILE.read_text().replace(
        "master: {}",
        "master:\n  settings:\n    columns:\n      key: {type: string(191), primary_key: true}\n"
        "      value: {type: json, nullable: true}\n",
    )
    (tmp_path / "schema.yaml").write_text(schema_text)
    schema = load_schema(tmp_path / "schema.yaml")[0]
    topology = load_topology(tmp_path, "develop", connecting=True)[0]
    result = migrate.apply(topology, schema, databases=["main"])
    assert result.ok and [d.target.entry_ids for d in result.databases] == [("main",)]
    engine = make_engine(topology.master[0].writer)
    with engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == ["settings"]
    engine.dispose()
    assert not (tmp_path / "s.db").exists()


# --- failures: unwritable paths, unreachable servers, rollback ----------------------------------


def test_unwritable_sqlite_path_is_named_and_others_still_migrate(capsys, tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    bad, good = blocker / "data" / "shard.db", tmp_path / "ok.db"
    config_dir = cli_config(tmp_path, tiled_entries(8, 2, [str(bad), str(good)], "sqlite3"), 8)
    run = run_cli(capsys, "migrate", "--config-dir", config_dir)
    assert run.code == 1
    assert f"SQLite database {bad}: cannot create its directory {bad.parent}" in run.err
    assert "Traceback" not in run.err and "1 failed" in run.err
    topology = load_topology(config_dir, "develop")[0]
    assert tables_in(topology.databases[1]) == owned(topology, topology.databases[1])


def test_unreachable_databases_are_named_redacted_and_others_still_migrate(capsys, tmp_path):
    secret = "S3cret-pw-for-migrate"
    dsns = [str(tmp_path / "a.db"), str(tmp_path / "b.db"), "x", "y"]
    entries = tiled_entries(8, 4, dsns, "sqlite3")
    entries[2].update(driver="postgres", dsn=f"postgres://app:{secret}@127.0.0.1:1/pg_nowhere")
    entries[3].update(driver="mysql", dsn=f"app:{secret}@tcp(127.0.0.1:1)/my_nowhere")
    config_dir = cli_config(tmp_path, entries, 8)
    run = run_cli(capsys, "migrate", "--config-dir", config_dir, "--lock-timeout", "5")
    assert run.code == 1
    assert "Database postgres://app:***@127.0.0.1:1/pg_nowhere:" in run.err
    assert "Database mysql://app:***@127.0.0.1:1/my_nowhere:" in run.err
    assert secret not in run.err + run.out and "2 failed" in run.err
    topology = load_topology(config_dir, "develop")[0]
    for db in topology.databases[:2]:
        assert tables_in(db) == owned(topology, db)
    as_json = run_cli(capsys, "migrate", "--config-dir", config_dir, "-f", "json")
    statuses = [d["status"] for d in json.loads(as_json.out)["databases"]]
    assert statuses == ["up to date", "up to date", "failed", "failed"]


def test_unset_password_variable_is_refused_before_connecting(capsys, tmp_path: Path):
    entries = tiled_entries(8, 1, ["postgres://app:${NO_SUCH_PW_VAR}@127.0.0.1:1/x"], "postgres")
    config_dir = cli_config(tmp_path, entries, 8)
    run = run_cli(capsys, "migrate", "--config-dir", config_dir)
    assert run.code == 1 and "NO_SUCH_PW_VAR is not set" in run.err


@pytest.mark.parametrize(
    "driver", ["sqlite3", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_failing_step_rolls_the_whole_database_back(
    tmp_path: Path, driver: str, request: pytest.FixtureRequest
):
    """Index names are per schema on SQLite/PostgreSQL: a table already using the name of
    users_001's index makes that step fail half-way through the database's plan."""
    dsn = (str(tmp_path / "one.db") if driver == "sqlite3"
           else pg_dsn(request.getfixturevalue("pg_databases")()))  # fmt: skip
    entries = tiled_entries(8, 2, [dsn, str(tmp_path / "other.db")], driver)
    entries[1]["driver"] = "sqlite3"
    topology = configure(tmp_path, entries, suffix_count=8)
    first, other = topology.databases
    with connect(first.writer) as connection:
        connection.exec_driver_sql("CREATE TABLE decoy (email VARCHAR(10))")
        connection.exec_driver_sql("CREATE INDEX idx_users_001_email ON decoy (email)")
    result = migrate.apply(topology, SCHEMA)
    failed, fine = result.databases
    assert failed.status == "failed" and failed.applied == [] and fine.status == "migrated"
    assert first.label in str(failed.error) and "idx_users_001_email" in str(failed.error)
    assert tables_in(first) == {"decoy"}  # users_000 etc. were rolled back with the failure
    assert tables_in(other) == owned(topology, other)
    with connect(first.writer) as connection:
        connection.exec_driver_sql("DROP TABLE decoy")
    assert migrate.apply(topology, SCHEMA).ok
    assert_exactly_owned(topology)


@pytest.mark.parametrize(
    "driver", ["sqlite3", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_interrupt_during_the_last_step_commits_nothing(
    tmp_path: Path, driver: str, request: pytest.FixtureRequest
):
    """Ctrl-C sets the run's stop event. A database that sees it only once its last steps are
    sent (PostgreSQL sends up to STEPS_PER_ROUND_TRIP steps at once: here all 16) rolls back
    instead of committing."""
    dsn = (str(tmp_path / "one.db") if driver == "sqlite3"
           else pg_dsn(request.getfixturevalue("pg_databases")()))  # fmt: skip
    topology = configure(tmp_path, tiled_entries(8, 2, [dsn], driver), suffix_count=8)
    [db] = topology.databases
    [target] = migrate.select_targets(topology, SCHEMA)
    last = target.tables[-1].name
    stop = threading.Event()

    def interrupt_at_last_step(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if f"CREATE TABLE {last} " in statement:
            stop.set()

    sa.event.listen(sa.Engine, "before_cursor_execute", interrupt_at_last_step)
    try:
        with pytest.raises(migrate._Stopped):
            migrate._run_target(topology, target, "apply", migrate.LOCK_TIMEOUT, stop)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", interrupt_at_last_step)
    assert stop.is_set() and tables_in(db) == set()


@pytest.mark.mysql
def test_mysql_run_killed_half_way_is_completed(tmp_path: Path, mysql_databases):
    """MySQL commits each DDL statement: state after a kill between two statements (tables
    without their index, others missing) is finished by the next run, nothing duplicated."""
    topology = configure(tmp_path, tiled_entries(8, 2, [mysql_dsn(mysql_databases())], "mysql"),
                         suffix_count=8)  # fmt: skip
    [db] = topology.databases
    plan = migrate.plan(topology, SCHEMA).databases[0].plan
    assert plan is not None
    done = plan.steps[:3]
    with connect(db.writer) as connection:
        for step in done:
            connection.execute(step.elements[0])  # CREATE TABLE only: its indexes never came
    result = migrate.apply(topology, SCHEMA)
    assert result.ok
    indexes = sum(len(s.elements) - 1 for s in done)
    assert result.applied("create index") == indexes > 0
    assert result.applied("create table") == len(plan.steps) - len(done)
    assert_exactly_owned(topology)
    assert_in_sync(topology)


# --- locks and concurrency ---------------------------------------------------------------------


@contextmanager
def lock_held_elsewhere(driver: str, dsn: Dsn) -> Iterator[None]:
    """Hold the lock a migrate takes, from another connection (another migrate, in effect)."""
    if driver == "sqlite3":
        Path(dsn.database).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(dsn.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
    elif driver == "postgres":
        with psycopg.connect(**PG, dbname=dsn.database, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (migrate.ADVISORY_LOCK_KEY,))
            yield
    else:
        connection = pymysql.connect(**MYSQL, database=dsn.database, autocommit=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (migrate.mysql_lock_name(dsn.database),))
            assert cursor.fetchone() == (1,)
            yield
        connection.close()


def test_the_lock_makes_runs_wait_for_each_other(tmp_path: Path, backend: Backend):
    """A lock held elsewhere: migrate waits, gives up naming the database, changes nothing.
    Two runs started together: the lock serializes them and the second plans again under it,
    so both succeed and every table is created exactly once in total."""
    topology = tiled(backend, tmp_path, 1, entries=4, suffix_count=16)
    [db] = topology.databases
    with lock_held_elsewhere(backend.driver, db.writer):
        [outcome] = migrate.apply(topology, SCHEMA, lock_timeout=0.5).databases
    assert outcome.status == "failed" and "waited 0.5 s for a lock" in str(outcome.error)
    assert db.label in str(outcome.error) and tables_in(db) == set()

    barrier = threading.Barrier(2)
    results: list[migrate.MigrateResult] = []

    def run() -> None:
        barrier.wait()
        results.append(migrate.apply(topology, SCHEMA))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.ok for r in results] == [True, True], [
        str(d.error) for r in results for d in r.databases
    ]
    created = sum(r.applied("create table") for r in results)
    assert created == topology.suffix_count * len(topology.tables)
    assert_exactly_owned(topology)


def test_two_concurrent_processes_on_the_develop_config(tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    command = [sys.executable, "-m", "shardctl", "migrate", "--yes", "-f", "json",
               "--config-dir", str(config_dir)]  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    created = sum(json.loads(out)["summary"]["tables_created"] for out, _ in outputs)
    topology = load_topology(config_dir, "develop")[0]
    assert created == topology.suffix_count * len(topology.tables)
    assert_exactly_owned(topology)


# --- the terminal: confirmation and progress -----------------------------------------------------


def _run_on_terminal(config_dir: Path, answer: bytes) -> tuple[int, str]:
    """Run migrate with stdin/stdout/stderr on a pseudo-terminal, answer its question."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "shardctl", "migrate", "--config-dir", str(config_dir)],
        stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    os.close(terminal)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"[y/N]" in output:
            os.write(controller, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(controller)
    return process.wait(timeout=60), output.decode(errors="replace")


def test_a_terminal_is_asked_before_anything_is_created(tmp_path: Path):
    config_dir = copy_shipped_config(tmp_path)
    topology = load_topology(config_dir, "develop")[0]
    changes = topology.suffix_count * len(topology.tables)
    code, output = _run_on_terminal(config_dir, b"n\n")
    assert code == 1 and f"Apply {changes} change(s)?" in output and "Nothing applied." in output
    assert not (tmp_path / "data").exists()
    code, output = _run_on_terminal(config_dir, b"y\n")
    assert code == 0, output
    assert_exactly_owned(topology)
