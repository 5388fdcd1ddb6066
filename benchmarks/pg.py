"""PostgreSQL fixtures for the benchmarks: scratch databases and the configs that point at them.

The server is the machine's own (127.0.0.1:5432, user postgres, trust). Every database made here
is named ``shardctl_bench_…`` and dropped when its ``scratch_databases`` block ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def connect(dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(**SERVER, dbname=dbname, autocommit=True, **kwargs)  # type: ignore[arg-type]


def dsn(name: str) -> str:
    return f"host={SERVER['host']} port={SERVER['port']} user={SERVER['user']} dbname={name}"


def create_databases(names: Sequence[str]) -> None:
    with connect() as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')


def drop_databases(names: Sequence[str]) -> None:
    with connect() as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_databases(label: str, count: int) -> Iterator[list[str]]:
    """``count`` empty databases, dropped afterwards (also when the benchmark fails)."""
    run = uuid.uuid4().hex[:6]
    names = [f"shardctl_bench_{label}_{run}_{i + 1}" for i in range(count)]
    create_databases(names)
    try:
        yield names
    finally:
        drop_databases(names)


def write_config(config_dir: Path, env: str, databases: Sequence[str], *, suffix_count: int,
                 entries: int, tables: Sequence[str] = ("users", "posts")) -> Path:  # fmt: skip
    """A config like the reference layout: ``entries`` entries splitting the table numbers
    evenly, in contiguous blocks over ``databases`` (2 entries per database for 8 over 4)."""
    per_entry = suffix_count // entries
    per_database = -(-entries // len(databases))
    lines = ["database:", "  groups:", "    sharding:", "      tables:"]
    lines += [f"        - {{name: {t}, suffix_count: {suffix_count}}}" for t in tables]
    lines.append("      databases:")
    for index in range(entries):
        lo = index * per_entry
        hi = suffix_count - 1 if index == entries - 1 else lo + per_entry - 1
        database = databases[min(index // per_database, len(databases) - 1)]
        lines += [
            f"        - id: {index + 1}",
            "          driver: postgres",
            f"          dsn: {dsn(database)}",
            f"          table_range: [{lo}, {hi}]",
        ]
    path = config_dir / env / "database.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def server_ready() -> bool:
    try:
        with connect(connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False
