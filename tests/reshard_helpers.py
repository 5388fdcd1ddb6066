"""Shared by the status and move tests: a schema with every portable type, deterministic rows
written where the config routes them, and a snapshot of everything the config can reach."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shardctl import migrate
from shardctl.checksum import normalize
from shardctl.db import make_engine
from shardctl.routing import Topology
from shardctl.schema import Schema, build_table, load_schema
from shardctl.validate import load_topology

SCHEMA = """\
sharding:
  users:
    shard_key: id
    columns:
      id: {type: bigint, primary_key: true}
      name: text
      email: string(255)
      balance: {type: "numeric(12,2)", nullable: true}
      score: {type: double, nullable: true}
      active: boolean
      born: {type: date, nullable: true}
      created_at: timestamp
      profile: {type: json, nullable: true}
      avatar: {type: binary, nullable: true}
    indexes:
      email: {columns: [email], unique: true}
  posts:
    shard_key: user_id
    columns:
      id: {type: bigint, primary_key: true}
      user_id: bigint
      title: {type: text, nullable: true}
      created_at: {type: timestamp, nullable: true}
    indexes:
      user_id: [user_id]
"""
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
POSTS_PER_USER = 2


def write_schema(config_dir: Path) -> Path:
    path = config_dir / "schema.yaml"
    path.write_text(SCHEMA)
    return path


def user_row(id_: int) -> dict[str, Any]:
    """Every type, NULLs, non-ASCII text, a trailing space, microseconds, a nested JSON value."""
    return {
        "id": id_,
        "name": f"user {id_} ü" + (" " if id_ % 5 == 0 else ""),
        "email": f"u{id_}@example.com",
        "balance": None if id_ % 7 == 0 else Decimal(id_ * 137 % 100000) / 100,
        "score": None if id_ % 11 == 0 else id_ / 3,
        "active": id_ % 2 == 0,
        "born": dt.date(1980, 1, 1) + dt.timedelta(days=id_),
        "created_at": EPOCH + dt.timedelta(seconds=id_ * 3601, microseconds=id_),
        "profile": None if id_ % 3 == 0 else {"z": id_, "a": [1, "x", None]},
        "avatar": None if id_ % 4 == 0 else bytes([id_ % 256, 0, 255]),
    }


def post_rows(user_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": user_id * POSTS_PER_USER + k,
            "user_id": user_id,
            "title": None if k else f"post of {user_id}",
            "created_at": None if k else EPOCH + dt.timedelta(days=user_id),
        }
        for k in range(POSTS_PER_USER)
    ]


def load(config_dir: Path, env: str = "develop") -> tuple[Topology, Schema]:
    topology, _ = load_topology(config_dir, env, connecting=True)
    schema, _ = load_schema(config_dir / "schema.yaml")
    return topology, schema


def seed(config_dir: Path, user_ids: range, env: str = "develop") -> None:
    """Create every database's tables (migrate) and write users and their posts where the
    config routes them (a post goes to its user's table number)."""
    topology, schema = load(config_dir, env)
    result = migrate.apply(topology, schema)
    assert result.ok, [str(d.error) for d in result.failed]
    batches: dict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for id_ in user_ids:
        number = topology.table_number(id_)
        db = topology.database_for(number).index
        batches[db, "users", topology.suffix_table("users", number)].append(user_row(id_))
        batches[db, "posts", topology.suffix_table("posts", number)].extend(post_rows(id_))
    for database in topology.databases:
        engine = make_engine(database.writer)
        metadata = sa.MetaData()
        with engine.begin() as connection:
            for (index, logical, name), rows in batches.items():
                if index == database.index:
                    definition = schema.sharded(logical)
                    assert definition is not None
                    table = build_table(metadata, definition, name, database.driver)
                    connection.execute(table.insert(), rows)
        engine.dispose()


def snapshot(config_dir: Path, env: str = "develop") -> dict[str, list[tuple[bytes, ...]]]:
    """Every row of every logical table, read from where the config says it lives, normalized
    like the move checksums and sorted: equal snapshots mean the same data is reachable."""
    topology, schema = load(config_dir, env)
    rows: dict[str, list[tuple[bytes, ...]]] = {name: [] for name in topology.table_names}
    for database in topology.databases:
        engine = make_engine(database.writer)
        metadata = sa.MetaData()
        with engine.connect() as connection:
            for number in database.table_numbers:
                for logical in topology.table_names:
                    definition = schema.sharded(logical)
                    assert definition is not None
                    name = topology.suffix_table(logical, number)
                    table = build_table(metadata, definition, name, database.driver)
                    for row in connection.execute(sa.select(table)):
                        assert row.id is not None
                        rows[logical].append(tuple(normalize(v) for v in row))
        engine.dispose()
    return {name: sorted(values) for name, values in rows.items()}


def table_names(dsn: Any) -> set[str]:
    """The tables a database holds (``dsn`` parsed, as in ``topology.entries[i].writer``)."""
    engine = make_engine(dsn)
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


QUERIES = (
    "SELECT id, name, email, balance, score, active, born, created_at FROM users ORDER BY id",
    "SELECT COUNT(*), SUM(balance), MIN(created_at), MAX(id), AVG(score) FROM users",
    "SELECT u.id, COUNT(p.id) AS posts, MAX(p.title) FROM users u JOIN posts p "
    "ON u.id = p.user_id GROUP BY u.id ORDER BY u.id",
    "SELECT user_id, title FROM posts WHERE title IS NOT NULL ORDER BY user_id DESC LIMIT 25",
)


def query_all_results(config_dir: Path, env: str = "develop") -> list[list[tuple[Any, ...]]]:
    """The answers of ``shardctl query-all`` to :data:`QUERIES` (rows, columns, merges).

    Floats are rounded to 6 places: SQLite sums NUMERIC as REAL, and a different grouping of
    tables per database adds the same values in a different order."""
    from shardctl.query import query_all

    topology, _ = load(config_dir, env)
    answers = []
    for sql in QUERIES:
        with query_all(topology, sql) as result:
            answers.append(
                [tuple(round(v, 6) if isinstance(v, float) else v for v in row)
                 for row in result.rows]
            )  # fmt: skip
    return answers
