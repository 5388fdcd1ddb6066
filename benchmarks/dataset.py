"""The query-all data set: users and posts, generated once, loaded into any layout with COPY.

Rows are deterministic (seeded): user ids 1…N; ``created_at`` spread over 2024 in an order
unrelated to the id; about one post per user (a user has 0–2), each post in its user's table
number, titled from a small vocabulary (so GROUP BY title has a few hundred groups), created
within 30 days of its user. A *layout* is a set of PostgreSQL databases and a shardctl config:
the tables come from ``shardctl migrate --sql`` (the product's own DDL), are filled with COPY
and indexed afterwards (faster than loading into indexed tables), then analyzed.
"""

from __future__ import annotations

import math
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pg
from harness import BENCH_ENV, REPO, SHARDCTL

SCHEMA = REPO / "config" / "schema.yaml"
ENV = "bench"
TITLES = 300
START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 366 * 24 * 3600
COPY_BATCH = 1 << 20  # characters per COPY write
USER_COLUMNS = "id, name, email, created_at, updated_at"
POST_COLUMNS = "id, user_id, title, content, created_at, updated_at"


@dataclass
class Rows:
    """COPY text lines with the shard key of each line."""

    users: list[str]
    user_keys: list[int]
    posts: list[str]
    post_keys: list[int]


def generate(users: int, seed: int = 42) -> Rows:
    rng = random.Random(seed)
    stride = _coprime_stride(users)
    step = YEAR_SECONDS // users
    stamp = _Timestamps()
    user_lines, user_keys, post_lines, post_keys = [], [], [], []
    post_id = 0
    posts_per_user = rng.choices((0, 1, 1, 2), k=users)
    for index in range(users):
        user_id = index + 1
        created = ((index * stride) % users) * step
        user_lines.append(
            f"{user_id}\tuser {user_id}\tuser{user_id}@example.com\t{stamp(created)}\t"
            f"{stamp(created + 3600)}\n"
        )
        user_keys.append(user_id)
        for _ in range(posts_per_user[index]):
            post_id += 1
            posted = stamp(created + int(rng.random() * 30 * 86400))
            post_lines.append(
                f"{post_id}\t{user_id}\ttopic {post_id * 7919 % TITLES}\t"
                f"{'x' * (20 + post_id * 104729 % 380)}\t{posted}\t{posted}\n"
            )
            post_keys.append(user_id)
    return Rows(user_lines, user_keys, post_lines, post_keys)


class _Timestamps:
    """Seconds after START → PostgreSQL timestamptz text, from lookup tables (fast)."""

    def __init__(self) -> None:
        self.days = [(START + timedelta(days=d)).strftime("%Y-%m-%d ") for d in range(400)]
        self.times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(86400)]

    def __call__(self, seconds: int) -> str:
        return self.days[seconds // 86400] + self.times[seconds % 86400]


def _coprime_stride(n: int) -> int:
    stride = int(n * 0.618) | 1
    while math.gcd(stride, n) != 1:
        stride += 2
    return stride


@dataclass
class Layout:
    """A loaded set of databases and the config that describes them."""

    config_dir: Path
    databases: list[str]
    suffix_count: int


def load_sharded(rows: Rows, workdir: Path, databases: list[str], suffix_count: int,
                 entries: int) -> Layout:  # fmt: skip
    """Create the suffix tables with the product's DDL and fill them (databases in parallel)."""
    pg.write_config(workdir, ENV, databases, suffix_count=suffix_count, entries=entries)
    scripts = offline_ddl(workdir, databases)
    users = _buckets(rows.users, rows.user_keys, suffix_count)
    posts = _buckets(rows.posts, rows.post_keys, suffix_count)
    width = max(3, len(str(suffix_count - 1)))

    def fill(name: str) -> None:
        tables, indexes = _split_ddl(scripts[name])
        numbers = sorted({int(n) for n in re.findall(r"CREATE TABLE users_(\d+)", tables)})
        with pg.connect(name) as connection:
            connection.execute(tables.encode())
            for number in numbers:
                suffix = f"{number:0{width}d}"
                _copy(connection, f"users_{suffix}", USER_COLUMNS, users[number])
                _copy(connection, f"posts_{suffix}", POST_COLUMNS, posts[number])
            connection.execute(indexes.encode())
            connection.execute("ANALYZE")

    with ThreadPoolExecutor(len(databases)) as pool:
        list(pool.map(fill, databases))
    return Layout(workdir, databases, suffix_count)


def load_single(rows: Rows, workdir: Path, database: str) -> None:
    """All rows in one ``users`` and one ``posts`` table (the same DDL, suffix removed)."""
    pg.write_config(workdir, ENV, [database], suffix_count=1, entries=1)
    tables, indexes = _split_ddl(offline_ddl(workdir, [database])[database])
    rename = re.compile(r"\b(users|posts)_000\b")
    with pg.connect(database) as connection:
        connection.execute(rename.sub(r"\1", tables).encode())
        _copy(connection, "users", USER_COLUMNS, rows.users)
        _copy(connection, "posts", POST_COLUMNS, rows.posts)
        connection.execute(rename.sub(r"\1", indexes).encode())
        connection.execute("ANALYZE")


def offline_ddl(config_dir: Path, names: list[str]) -> dict[str, str]:
    """``shardctl migrate --sql`` for a config, split per database (keyed by database name)."""
    done = subprocess.run([SHARDCTL, "migrate", "--sql", "--config-dir", str(config_dir), "-e",
                           ENV, "--schema", str(SCHEMA)], capture_output=True, text=True,
                          check=True, env=BENCH_ENV)  # fmt: skip
    parts = re.split(r"^-- database \S+/(\w+) .*$", done.stdout, flags=re.M)
    scripts = dict(zip(parts[1::2], parts[2::2], strict=True))
    if sorted(scripts) != sorted(names):
        raise RuntimeError(f"migrate --sql named {sorted(scripts)}, expected {names}")
    return scripts


def _split_ddl(script: str) -> tuple[str, str]:
    """(CREATE TABLE statements, CREATE INDEX statements) of one database's script."""
    statements = [s.strip() for s in script.split(";\n") if s.strip().startswith("CREATE")]
    tables = [s for s in statements if s.startswith("CREATE TABLE")]
    indexes = [s for s in statements if not s.startswith("CREATE TABLE")]
    return ";\n".join(tables) + ";", ";\n".join(indexes) + ";"


def _buckets(lines: list[str], keys: list[int], suffix_count: int) -> list[list[str]]:
    buckets: list[list[str]] = [[] for _ in range(suffix_count)]
    for line, key in zip(lines, keys, strict=True):
        buckets[key % suffix_count].append(line)
    return buckets


def _copy(connection: pg.psycopg.Connection, table: str, columns: str, lines: list[str]) -> None:
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        batch: list[str] = []
        size = 0
        for line in lines:
            batch.append(line)
            size += len(line)
            if size >= COPY_BATCH:
                copy.write("".join(batch))
                batch, size = [], 0
        if batch:
            copy.write("".join(batch))
