"""Faults on real servers and files: a ``shardctl migrate`` process killed (SIGKILL) or
interrupted (SIGINT) half-way, Ctrl-C during a running ``query-all``, SQLite files in a
read-only directory, missing, or holding garbage.

The processes are real (``python -m shardctl``) and are stopped only once the catalog shows them
mid-run (PostgreSQL: relation locks held by the open migrate transaction; MariaDB: some tables
already there), so the kill lands half-way without any sleep-and-hope. After every fault the
catalog (tables and indexes) is compared with exactly what the database should own.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql
import pytest
from cli_helpers import run_cli
from conftest import MYSQL, PG, REPO, mysql_dsn, pg_dsn, tiled_entries, write_config

from shardctl.routing import PhysicalDatabase, Topology
from shardctl.schema import index_name, load_schema
from shardctl.validate import load_topology

SCHEMA = load_schema(REPO / "config" / "schema.yaml")[0]
SUFFIX_COUNT = 64  # 2 databases × 32 table numbers × 2 tables: slow enough to stop half-way
Catalog = tuple[frozenset[str], frozenset[str]]  # (tables, secondary indexes)


@dataclass
class Engine:
    driver: str
    dsn: Callable[[str], str]
    catalog: Callable[[str], Catalog]
    busy: Callable[[str], bool]  # True once a migrate is visibly half-way through `name`


def _pg_catalog(name: str) -> Catalog:
    with psycopg.connect(**PG, dbname=name, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        indexes = connection.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND indexname NOT LIKE '%\\_pkey'"
        ).fetchall()
    return frozenset(t for (t,) in tables), frozenset(i for (i,) in indexes)


def _pg_busy(name: str) -> bool:
    """The migrate transaction holds exclusive locks on ≥ 10 tables it created (uncommitted,
    so invisible in pg_tables)."""
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE a.datname = %s AND l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'",
            (name,),
        ).fetchone()
    return row is not None and row[0] >= 10


def _mysql_query(sql: str, name: str) -> list[tuple[object, ...]]:
    connection = pymysql.connect(**MYSQL, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, (name,))
            return list(cursor.fetchall())
    finally:
        connection.close()


def _mysql_catalog(name: str) -> Catalog:
    tables = _mysql_query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", name
    )
    indexes = _mysql_query(
        "SELECT DISTINCT index_name FROM information_schema.statistics "
        "WHERE table_schema = %s AND index_name <> 'PRIMARY'",
        name,
    )
    return frozenset(str(t) for (t,) in tables), frozenset(str(i) for (i,) in indexes)


def _mysql_busy(name: str) -> bool:
    return len(_mysql_catalog(name)[0]) >= 10


ENGINES = {
    "postgres": Engine("postgres", pg_dsn, _pg_catalog, _pg_busy),
    "mysql": Engine("mysql", mysql_dsn, _mysql_catalog, _mysql_busy),
}


def desired(topology: Topology, db: PhysicalDatabase) -> Catalog:
    tables, indexes = set(), set()
    for logical in topology.table_names:
        definition = SCHEMA.sharded(logical)
        assert definition is not None
        for number in db.table_numbers:
            table = topology.suffix_table(logical, number)
            tables.add(table)
            indexes |= {index_name(table, index.name) for index in definition.indexes}
    return frozenset(tables), frozenset(indexes)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Engine, Path, list[str]]:
    """Two empty databases of one engine, four entries over them; (engine, config dir, names)."""
    engine = ENGINES[request.param]
    factory = request.getfixturevalue("pg_databases" if engine.driver == "postgres"
                                      else "mysql_databases")  # fmt: skip
    names = [factory(), factory()]
    config_dir = tmp_path / "config"
    entries = tiled_entries(SUFFIX_COUNT, 4, [engine.dsn(n) for n in names], engine.driver)
    write_config(config_dir, entries, suffix_count=SUFFIX_COUNT)
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    return engine, config_dir, names


def spawn(config_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shardctl", *args, "--config-dir", str(config_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll until ``ready()``; fail if the process ends first (it was too fast to stop)."""
    deadline = time.monotonic() + 60
    while not ready():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the process ended before {what}: {process.returncode} {out} {err}")
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


@contextmanager
def stopped(process: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def states(engine: Engine, topology: Topology, names: list[str]) -> list[str]:
    """Per database: 'empty', 'done' or 'partial' (compared with what it must own)."""
    found = []
    for name, db in zip(names, topology.databases, strict=True):
        tables, indexes = engine.catalog(name)
        want_tables, want_indexes = desired(topology, db)
        assert tables <= want_tables and indexes <= want_indexes  # never anything extra
        complete = (tables, indexes) == (want_tables, want_indexes)
        found.append("done" if complete else "partial" if tables else "empty")
    return found


def assert_desired(engine: Engine, topology: Topology, names: list[str]) -> None:
    for name, db in zip(names, topology.databases, strict=True):
        assert engine.catalog(name) == desired(topology, db), db.label


# --- SIGKILL and SIGINT during migrate -------------------------------------------------------


def test_migrate_killed_half_way_then_rerun_ends_exactly_desired(
    cluster: tuple[Engine, Path, list[str]],
) -> None:
    """PostgreSQL: each database is all or nothing (its transaction died with the process).
    MariaDB: DDL commits per statement, so a prefix survives; the re-run completes it."""
    engine, config_dir, names = cluster
    topology = load_topology(config_dir, "develop")[0]
    process = spawn(config_dir, "migrate", "--yes")
    with stopped(process):
        wait_until(lambda: any(engine.busy(n) for n in names), process, "a half-way migrate")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    after_kill = states(engine, topology, names)
    if engine.driver == "postgres":
        assert "partial" not in after_kill and "empty" in after_kill, after_kill
    else:
        assert "partial" in after_kill or after_kill.count("done") < len(names), after_kill
    rerun = spawn(config_dir, "migrate", "--yes", "--lock-timeout", "30")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert_desired(engine, topology, names)
    check = spawn(config_dir, "migrate", "--check")
    assert check.wait(timeout=60) == 0, check.communicate()


@pytest.mark.postgres
def test_ctrl_c_during_migrate_exits_130_and_leaves_no_half_applied_database(
    tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    name = pg_databases()
    config_dir = tmp_path / "config"
    write_config(config_dir, tiled_entries(SUFFIX_COUNT, 2, [pg_dsn(name)], "postgres"),
                 suffix_count=SUFFIX_COUNT)  # fmt: skip
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    topology = load_topology(config_dir, "develop")[0]
    process = spawn(config_dir, "migrate", "--yes")
    with stopped(process):
        wait_until(lambda: _pg_busy(name), process, "a half-way migrate")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "Interrupted." and "Traceback" not in err, err
    assert states(ENGINES["postgres"], topology, [name]) == ["empty"]  # rolled back


@pytest.mark.postgres
def test_ctrl_c_during_query_all_exits_130_and_cancels_the_statement(
    tmp_path: Path, pg_databases: Callable[[], str]
) -> None:
    name = pg_databases()
    config_dir = tmp_path / "config"
    write_config(config_dir, tiled_entries(2, 1, [pg_dsn(name)], "postgres"), suffix_count=2)
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    assert spawn(config_dir, "migrate", "--yes").wait(timeout=60) == 0
    with psycopg.connect(**PG, dbname=name, autocommit=True) as connection:
        connection.execute("INSERT INTO users_000 VALUES (0, 'a', 'a@x', now(), now())")

    def sleeping() -> list[tuple[object, ...]]:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as connection:
            return connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active'",
                (name,),  # query-all reads through a server-side cursor: the text is a FETCH
            ).fetchall()

    process = spawn(config_dir, "query-all", "SELECT COUNT(*) FROM users WHERE "
                    "pg_sleep(30) IS NOT NULL")  # fmt: skip
    with stopped(process):
        wait_until(lambda: bool(sleeping()), process, "the running query")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert err.strip() == "Interrupted." and out == ""
    deadline = time.monotonic() + 20
    while sleeping():  # the server-side statement is cancelled, not left running 30 s
        assert time.monotonic() < deadline, "the query kept running on the server"
        time.sleep(0.05)


# --- SQLite files that cannot be used ----------------------------------------------------------


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Config with two SQLite entries, a.db and b.db, in ``tmp_path/data``; both migrated."""
    data = tmp_path / "data"
    config_dir = tmp_path / "config"
    dsns = [str(data / "a.db"), str(data / "b.db")]
    write_config(config_dir, tiled_entries(4, 2, dsns, "sqlite3"), suffix_count=4)
    shutil.copyfile(REPO / "config" / "schema.yaml", config_dir / "schema.yaml")
    assert spawn(config_dir, "migrate", "--yes").wait(timeout=60) == 0
    return config_dir, data / "a.db", data / "b.db"


COMMANDS = {
    "migrate": ("migrate", "--yes"),
    "query-all": ("query-all", "SELECT COUNT(*) FROM users"),
    "status": ("status",),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_sqlite_file_that_is_not_a_database(
    capsys: pytest.CaptureFixture[str], sqlite_pair: tuple[Path, Path, Path], command: str
) -> None:
    config_dir, garbage, _ = sqlite_pair
    garbage.write_bytes(b"not a database, just bytes\x00\xff" * 200)
    before = garbage.read_bytes()
    run = run_cli(capsys, *COMMANDS[command], "--config-dir", config_dir)
    assert run.code == 1, run.err
    assert f"{garbage}: file is not a database" in run.err and "Traceback" not in run.err
    assert garbage.read_bytes() == before  # nothing written into it


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_sqlite_file_is_named_and_never_created_by_readers(
    capsys: pytest.CaptureFixture[str], sqlite_pair: tuple[Path, Path, Path], command: str
) -> None:
    config_dir, missing, _ = sqlite_pair
    missing.unlink()
    run = run_cli(capsys, *COMMANDS[command], "--config-dir", config_dir)
    assert "Traceback" not in run.err
    if command == "migrate":  # the one command that creates databases
        assert run.code == 0 and missing.exists(), run.err
    else:
        assert run.code == 1 and f"{missing}" in run.err and "does not exist" in run.err
        assert "shardctl migrate" in run.err and not missing.exists()


@contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """``chattr +i``: even root can create no file in it (root ignores permission bits)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip(f"chattr +i is not supported on {directory}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sqlite_in_a_read_only_directory(
    capsys: pytest.CaptureFixture[str], sqlite_pair: tuple[Path, Path, Path], command: str
) -> None:
    """a.db is there (migrated), b.db is not and cannot be created: every command names b.db
    and fails; readers still read a.db, migrate still checks it."""
    config_dir, present, absent = sqlite_pair
    absent.unlink()
    with immutable(present.parent):
        run = run_cli(capsys, *COMMANDS[command], "--config-dir", config_dir)
    assert run.code == 1 and "Traceback" not in run.err, run.err
    assert str(absent) in run.err and not absent.exists()
    if command == "migrate":
        assert f"{absent.parent} is not writable" in run.err
    else:
        assert "does not exist" in run.err


def test_sqlite_under_a_regular_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Without chattr: a path whose 'directory' is a regular file cannot be created even by
    root; query-all and status name it, like migrate does (tests/test_migrate.py)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    config_dir = tmp_path / "config"
    write_config(config_dir, tiled_entries(4, 1, [str(blocker / "a.db")], "sqlite3"),
                 suffix_count=4)  # fmt: skip
    for command in ("query-all", "status"):
        run = run_cli(capsys, *COMMANDS[command], "--config-dir", config_dir)
        assert run.code == 1 and str(blocker / "a.db") in run.err, run.err
        assert "Traceback" not in run.err and blocker.is_file()


# --- read-only transactions -------------------------------------------------------------------

SNEAKY = {
    "postgres": "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE AS "
    "'INSERT INTO audit VALUES (1); SELECT 1'",
    "mysql": "CREATE FUNCTION sneaky() RETURNS INT MODIFIES SQL DATA "
    "BEGIN INSERT INTO audit VALUES (1); RETURN 1; END",
}


def _execute(engine: Engine, name: str, *statements: str) -> list[tuple[object, ...]]:
    """Run the statements in order; the rows of the last one."""
    if engine.driver == "postgres":
        with psycopg.connect(**PG, dbname=name, autocommit=True) as connection:
            cursor = connection.cursor()
            for sql in statements:
                cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
    connection = pymysql.connect(**MYSQL, database=name, autocommit=True)
    try:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def test_a_read_cannot_write_through_a_function_with_side_effects(
    capsys: pytest.CaptureFixture[str], cluster: tuple[Engine, Path, list[str]]
) -> None:
    """query-all accepts the SELECT (it cannot see inside a function), but the read-only
    transaction refuses the function's INSERT on the server."""
    engine, config_dir, names = cluster
    assert run_cli(capsys, "migrate", "--yes", "--config-dir", config_dir).code == 0
    topology = load_topology(config_dir, "develop")[0]
    for name, db in zip(names, topology.databases, strict=True):
        table = topology.suffix_table("users", db.table_numbers[0])
        row = f"({db.table_numbers[0]}, 'a', 'a@x', '2024-01-01', '2024-01-01')"
        setup = (
            "CREATE TABLE audit (n INT)",
            SNEAKY[engine.driver],
            f"INSERT INTO {table} VALUES {row}",
        )
        _execute(engine, name, *setup)
    run = run_cli(capsys, "query-all", "SELECT COUNT(*) FROM users WHERE sneaky() = 1",
                  "--config-dir", config_dir)  # fmt: skip
    assert run.code == 1 and "read-only" in run.err.lower().replace("read only", "read-only")
    for name in names:
        assert _execute(engine, name, "SELECT COUNT(*) FROM audit") == [(0,)]
