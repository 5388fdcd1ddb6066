"""Shared fixtures: real PostgreSQL / MariaDB databases made per test and dropped after it.

The servers are the machine's own (PostgreSQL 127.0.0.1:5432 user postgres, trust auth; MariaDB
127.0.0.1:3306 root, empty password). A server that is down is started once per session; when it
still cannot be reached, tests that need it fail under ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent


def _start_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions and shutil.which("pg_ctlcluster"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip


def _start_mariadb() -> None:
    if shutil.which("start-stop-daemon") and os.path.exists("/usr/sbin/mariadbd"):
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background",
             "--exec", "/usr/sbin/mariadbd"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip


def _pg_connect(dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(**PG, dbname=dbname, autocommit=True, connect_timeout=5)


def _mysql_connect() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**MYSQL, connect_timeout=5, autocommit=True)


def _ensure_server(name: str, connect: Callable[[], object], start: Callable[[], None]) -> None:
    error: Exception | None = None
    for attempt in range(20):
        try:
            connection = connect()
            connection.close()  # type: ignore[attr-defined]
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable yet"
            error = exc
            if attempt == 0:
                start()
            time.sleep(1)
    message = f"{name} server is not reachable and could not be started: {error}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> None:
    _ensure_server("PostgreSQL", _pg_connect, _start_postgres)


@pytest.fixture(scope="session")
def mysql_server() -> None:
    _ensure_server("MariaDB", _mysql_connect, _start_mariadb)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_databases(postgres_server: None) -> Iterator[Callable[[], str]]:
    """A factory: each call creates an empty PostgreSQL database and returns its name."""
    created: list[str] = []

    def create() -> str:
        name = _unique("shardctl_t")
        with _pg_connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield create
    with _pg_connect() as connection:
        for name in created:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mysql_databases(mysql_server: None) -> Iterator[Callable[[], str]]:
    """A factory: each call creates an empty MariaDB database and returns its name."""
    created: list[str] = []

    def create() -> str:
        name = _unique("shardctl_t")
        connection = _mysql_connect()
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        connection.close()
        created.append(name)
        return name

    yield create
    connection = _mysql_connect()
    with connection.cursor() as cursor:
        for name in created:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    connection.close()


def pg_dsn(name: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={name}"


def mysql_dsn(name: str) -> str:
    return f"root@tcp(127.0.0.1:3306)/{name}?charset=utf8mb4&parseTime=true"


def write_config(
    config_dir: Path,
    entries: list[dict[str, object]],
    *,
    env: str = "develop",
    tables: tuple[str, ...] = ("users", "posts"),
    suffix_count: int = 32,
) -> Path:
    """Write ``config_dir/env/database.yaml`` for the given entries (each a dict of fields)."""
    import yaml

    document = {
        "database": {
            "groups": {
                "sharding": {
                    "tables": [{"name": t, "suffix_count": suffix_count} for t in tables],
                    "databases": entries,
                }
            }
        }
    }
    path = config_dir / env / "database.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def tiled_entries(
    suffix_count: int, entry_count: int, dsns: list[str], driver: str
) -> list[dict[str, object]]:
    """``entry_count`` entries splitting ``0..suffix_count-1`` evenly, spread round the DSNs in
    contiguous blocks (entries 1-2 on dsns[0], … like the reference layout)."""
    per_entry = suffix_count // entry_count
    per_db = max(1, entry_count // len(dsns))
    entries: list[dict[str, object]] = []
    for index in range(entry_count):
        lo = index * per_entry
        hi = suffix_count - 1 if index == entry_count - 1 else lo + per_entry - 1
        entries.append(
            {"id": index + 1, "driver": driver, "dsn": dsns[min(index // per_db, len(dsns) - 1)],
             "table_range": [lo, hi]}
        )  # fmt: skip
    return entries
