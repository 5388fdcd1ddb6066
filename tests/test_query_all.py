"""query-all against real SQLite, PostgreSQL and MariaDB databases, checked against an oracle.

The oracle is the same rows in one un-sharded ``users``/``posts`` pair on the same engine: every
query's merged result must equal running it once there (in order when the ORDER BY is total,
as a multiset otherwise). Each engine gets eight physical databases, used as 1, 4 and 8-database
layouts of 8 table numbers (8, 2 and 1 suffix tables per database), plus hypothesis-generated
queries from the supported grammar. Text data mixes case, accents, trailing spaces and tabs so
MariaDB's case-insensitive PAD SPACE collation and PostgreSQL's NULL ordering are exercised.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_helpers import run_cli
from conftest import mysql_dsn, pg_dsn, tiled_entries, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardctl.cli.app import STATE
from shardctl.db import make_engine
from shardctl.dsn import parse_dsn
from shardctl.errors import DatabaseError
from shardctl.merge import MergeError, StreamInfo, average
from shardctl.query import Connections, MissingTable, query_all
from shardctl.routing import ID_LIMIT, Topology
from shardctl.sqlplan import plan_query
from shardctl.validate import load_topology

SUFFIX_COUNT = 8
LAYOUTS = (1, 4, 8)
NAMES = [
    "alice",
    "Alice",
    "ALICE ",
    "bob",
    "bob\t",
    "Bob",
    "carol",
    "Émile",
    "emile",
    "zoë",
    "",
    None,
]
TITLES = ["hello", "Hello", "news", "News ", "zzz", "", None]
BASE_TIME = datetime(2024, 1, 1)
DRIVERS = [
    "sqlite3",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


# --- data and databases --------------------------------------------------------------------


def define_tables(metadata: sa.MetaData, suffix: str = "") -> tuple[sa.Table, sa.Table]:
    """users/posts as the application defines them (plain SQLAlchemy Core, no shardctl)."""
    users = sa.Table(
        f"users{suffix}",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64)),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    posts = sa.Table(
        f"posts{suffix}",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("content", sa.Text),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    return users, posts


def dataset(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """160 users and 320 posts (a few for users that do not exist), with NULLs everywhere."""
    rng = random.Random(seed)

    def moment() -> datetime | None:
        return None if rng.random() < 0.2 else BASE_TIME + timedelta(minutes=rng.randrange(9999))

    ids = rng.sample(range(1, 90_000), 160)
    users = [
        {"id": i, "name": rng.choice(NAMES), "email": f"user{i}@example.com",
         "created_at": moment(), "updated_at": moment()}
        for i in ids
    ]  # fmt: skip

    def author() -> int:
        return rng.choice(ids) if rng.random() < 0.9 else rng.randrange(90_000, 99_999)

    posts = [
        {"id": post_id, "user_id": author(), "title": rng.choice(TITLES),
         "content": rng.choice(["", "lorem", "ipsum", None]),
         "created_at": moment(), "updated_at": moment()}
        for post_id in rng.sample(range(1, 900_000), 320)
    ]  # fmt: skip
    return users, posts


@dataclass
class Cluster:
    """Eight physical databases holding the suffix tables of every layout, and an oracle."""

    driver: str
    root: Path
    oracle: sa.Engine
    topologies: dict[int, Topology] = field(default_factory=dict)
    engines: dict[str, sa.Engine] = field(default_factory=dict)
    connections: Connections = field(default_factory=Connections)
    oracle_connection: sa.Connection | None = None

    def close(self) -> None:
        if self.oracle_connection is not None:
            self.oracle_connection.close()
        self.connections.close()
        self.oracle.dispose()
        for engine in self.engines.values():
            engine.dispose()


def build_cluster(driver: str, new_dsn: Callable[[], str], root: Path) -> Cluster:
    """The oracle's un-suffixed users/posts live in the first database, beside suffix tables."""
    dsns = [new_dsn() for _ in range(max(LAYOUTS))]
    users, posts = dataset()
    cluster = Cluster(driver, root, oracle_engine(driver, dsns[0], root))
    loaded: set[tuple[str, int]] = set()
    for count in LAYOUTS:
        config_dir = root / f"layout{count}"
        write_config(config_dir, tiled_entries(SUFFIX_COUNT, SUFFIX_COUNT, dsns[:count], driver),
                     suffix_count=SUFFIX_COUNT)  # fmt: skip
        topology, _ = load_topology(config_dir, "develop", connecting=True)
        cluster.topologies[count] = topology
        for database in topology.databases:
            engine = cluster.engines.get(database.identity)
            if engine is None:
                engine = cluster.engines[database.identity] = make_engine(database.writer)
            for number in database.table_numbers:
                if (database.identity, number) in loaded:
                    continue
                loaded.add((database.identity, number))
                suffix = "_" + topology.suffix_table("x", number).rsplit("_", 1)[1]
                load(engine, suffix, [u for u in users if u["id"] % SUFFIX_COUNT == number],
                     [p for p in posts if p["user_id"] % SUFFIX_COUNT == number])  # fmt: skip
    load(cluster.oracle, "", users, posts)
    return cluster


def oracle_engine(driver: str, dsn: str, root: Path) -> sa.Engine:
    return make_engine(parse_dsn(driver, dsn, sqlite_base=root))  # type: ignore[arg-type]


def load(
    engine: sa.Engine, suffix: str, users: list[dict[str, Any]], posts: list[dict[str, Any]]
) -> None:
    metadata = sa.MetaData()
    user_table, post_table = define_tables(metadata, suffix)
    with engine.begin() as connection:
        metadata.create_all(connection)
        for table, rows in ((user_table, users), (post_table, posts)):
            if rows:
                connection.execute(table.insert(), rows)


@pytest.fixture(params=DRIVERS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    driver: str = request.param
    if driver == "postgres":
        factory = request.getfixturevalue("pg_databases")
        new_dsn: Callable[[], str] = lambda: pg_dsn(factory())  # noqa: E731
    elif driver == "mysql":
        factory = request.getfixturevalue("mysql_databases")
        new_dsn = lambda: mysql_dsn(factory())  # noqa: E731
    else:
        files = iter(range(100))
        new_dsn = lambda: str(tmp_path / f"shard_{next(files)}.db")  # noqa: E731
    built = build_cluster(driver, new_dsn, tmp_path)
    yield built
    built.close()


# --- comparing with the oracle ---------------------------------------------------------------


def fold(text: str) -> str:
    """MariaDB utf8mb4_general_ci equality for the test alphabet: case and accents ignored,
    trailing spaces ignored (PAD SPACE), tabs significant."""
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    return stripped.casefold().rstrip(" ")


def normalize(value: Any, driver: str) -> Any:
    if isinstance(value, str) and driver == "mysql":
        return ("text", fold(value))
    if isinstance(value, Decimal):
        return ("decimal", str(value))  # the scale must match too (AVG rounding)
    if isinstance(value, float):
        return ("float", repr(value))
    return value


def run_oracle(cluster: Cluster, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if cluster.oracle_connection is None:
        cluster.oracle_connection = cluster.oracle.connect()
    result = cluster.oracle_connection.exec_driver_sql(
        sql, execution_options={"no_parameters": True}
    )
    rows = [tuple(row) for row in result]
    cluster.oracle_connection.rollback()
    return list(result.keys()), rows


def run_sharded(cluster: Cluster, layout: int, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with query_all(cluster.topologies[layout], sql, connections=cluster.connections) as result:
        rows = list(result.rows)
        assert not result.warnings
        return result.columns, rows


def mismatch(cluster: Cluster, layout: int, sql: str, ordered: bool) -> str | None:
    """A description of how the sharded result differs from the oracle's, or ``None``."""
    columns, expected = run_oracle(cluster, sql)
    got_columns, got = run_sharded(cluster, layout, sql)
    left = [tuple(normalize(v, cluster.driver) for v in row) for row in expected]
    right = [tuple(normalize(v, cluster.driver) for v in row) for row in got]
    same = left == right if ordered else Counter(left) == Counter(right)
    if same and columns == got_columns:
        return None
    return (
        f"[{cluster.driver}, {layout} db] {sql}\n  oracle  {columns} {expected[:8]} "
        f"({len(expected)} rows)\n  sharded {got_columns} {got[:8]} ({len(got)} rows)"
    )


# ORDER BY is total (or one row): compared in order
ORDERED = [
    "SELECT COUNT(*) FROM users",
    "SELECT COUNT(*), COUNT(name), SUM(id), MIN(id), MAX(id), AVG(id) FROM users",
    "SELECT COUNT(*), SUM(id), MIN(name), MAX(name), AVG(id) FROM users WHERE id < 0",
    "SELECT SUM(CASE WHEN id < 0 THEN id END), COUNT(*) FROM users",
    "SELECT SUM(user_id), AVG(user_id), MIN(title), MAX(content) FROM posts WHERE title IS NULL",
    "SELECT name, COUNT(*), SUM(id), MIN(email), MAX(created_at), AVG(id) FROM users "
    "GROUP BY name ORDER BY name",
    "SELECT name, COUNT(*) AS n FROM users GROUP BY name HAVING COUNT(*) > 10 "
    "ORDER BY n DESC, name",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING MIN(id) BETWEEN 1 AND 50000 "
    "AND NOT COUNT(*) IN (1, 2) OR MAX(created_at) IS NULL ORDER BY name",
    "SELECT id, name, email FROM users ORDER BY name, id LIMIT 10",
    "SELECT id, name FROM users ORDER BY name DESC, id DESC LIMIT 7 OFFSET 13",
    "SELECT id, created_at FROM users ORDER BY created_at, id LIMIT 20 OFFSET 5",
    "SELECT id, created_at FROM users ORDER BY created_at DESC, id LIMIT 20",
    "SELECT email FROM users ORDER BY updated_at, id",
    "SELECT DISTINCT name FROM users ORDER BY name",
    "SELECT COUNT(DISTINCT name) FROM users",
    "SELECT COUNT(DISTINCT name), COUNT(*), MAX(id) FROM users WHERE id > 1000",
    "SELECT u.name, COUNT(p.id), COUNT(DISTINCT p.title) FROM users AS u "
    "LEFT JOIN posts AS p ON p.user_id = u.id GROUP BY u.name ORDER BY u.name",
    "SELECT u.id, u.name, p.title FROM users AS u JOIN posts AS p ON p.user_id = u.id "
    "WHERE p.title IS NOT NULL ORDER BY u.id, p.id LIMIT 25",
    "SELECT p.id, u.name FROM posts AS p LEFT JOIN users AS u ON u.id = p.user_id "
    "ORDER BY u.name, p.id",
    "SELECT name, email FROM users WHERE created_at IS NULL ORDER BY email LIMIT 5",
    "SELECT COUNT(*) FROM users AS u JOIN posts AS p ON u.id = p.user_id WHERE u.name IS NOT NULL",
    "SELECT 'total' AS label, COUNT(*) AS n FROM posts",
    "SELECT name, MIN(id) AS first_id FROM users GROUP BY 1 ORDER BY 2 DESC LIMIT 5 OFFSET 1",
    "SELECT LOWER(name) AS lname, COUNT(*) AS n FROM users GROUP BY LOWER(name) ORDER BY lname",
    "SELECT user_id, COUNT(*) AS n FROM posts GROUP BY user_id HAVING COUNT(*) >= 2 "
    "ORDER BY COUNT(*) DESC, user_id LIMIT 10",
    "SELECT title, COUNT(*) AS n, MIN(content) AS c FROM posts GROUP BY title ORDER BY title",
    "SELECT id FROM users ORDER BY id LIMIT 0",
    "SELECT AVG(id) AS a FROM users WHERE name IS NULL",
    "SELECT u.name, AVG(p.user_id) AS a FROM posts AS p JOIN users AS u ON u.id = p.user_id "
    "GROUP BY u.name ORDER BY u.name",
    "SELECT name FROM users GROUP BY name HAVING COUNT(*) > 100",
    "SELECT COUNT(*) AS n FROM users HAVING COUNT(*) > 1000",
    "SELECT a.id, b.email FROM users AS a JOIN users AS b ON a.id = b.id ORDER BY a.id LIMIT 3",
]
# WHERE pins the routing key: only the routed table numbers are read (ids from the data set,
# an id no user has, and ids that cannot exist: negative, >= 2**63, contradictory)
USER_IDS = sorted(u["id"] for u in dataset()[0])
AUTHOR_IDS = sorted({p["user_id"] for p in dataset()[1]})
A, B, C = USER_IDS[3], USER_IDS[40], USER_IDS[41]
PRUNED = [
    f"SELECT id, name, email FROM users WHERE id = {A}",
    f"SELECT id, name FROM users WHERE id IN ({A}, {B}, {C}, 123456789) ORDER BY id",
    "SELECT COUNT(*), COUNT(name), SUM(id), MIN(name), AVG(id) FROM users WHERE id = 123456789",
    "SELECT COUNT(*), SUM(id), MAX(email), AVG(id) FROM users WHERE id = -5",
    f"SELECT COUNT(*) FROM users WHERE id = {A} AND id = {B}",
    f"SELECT id FROM users WHERE id IN (-1, {ID_LIMIT}) ORDER BY id",
    f"SELECT name, COUNT(*) AS n FROM users WHERE id IN ({A}, {B}, {C}) AND name IS NOT NULL "
    "GROUP BY name ORDER BY name",
    f"SELECT user_id, COUNT(*), MIN(title) FROM posts WHERE user_id = {AUTHOR_IDS[5]} "
    "GROUP BY user_id",
    f"SELECT u.id, p.id AS post_id, p.title FROM users AS u JOIN posts AS p ON p.user_id = u.id "
    f"WHERE p.user_id IN ({AUTHOR_IDS[0]}, {AUTHOR_IDS[7]}, {A}) ORDER BY p.id LIMIT 5 OFFSET 1",
    f"SELECT u.name, COUNT(p.id) FROM users AS u LEFT JOIN posts AS p ON p.user_id = u.id "
    f"WHERE {B} = u.id GROUP BY u.name ORDER BY u.name",
    f"SELECT DISTINCT name FROM users WHERE id IN ({A}, {B}) ORDER BY name",
    f"SELECT id FROM users WHERE id = {A} OR id = {B} ORDER BY id",  # OR: not pruned
]
# no total order: compared as multisets
UNORDERED = [
    "SELECT * FROM users WHERE id = -1",
    f"SELECT * FROM posts WHERE user_id IN ({AUTHOR_IDS[1]}, {AUTHOR_IDS[2]})",
    "SELECT DISTINCT name, LOWER(title) AS t FROM users AS u JOIN posts AS p ON p.user_id = u.id",
    "SELECT id FROM users WHERE name LIKE 'a%'",
    "SELECT * FROM posts WHERE user_id < 20000",
    "SELECT id, name FROM users WHERE id > 50000",
]
FIXED = [(sql, True) for sql in ORDERED + PRUNED] + [(sql, False) for sql in UNORDERED]


# --- hypothesis: queries from the supported grammar ---------------------------------------

PREDICATES = ["id > 30000", "id % 3 = 0", "name IS NULL", "name IS NOT NULL", "name < 'c'",
              "created_at IS NULL", "email LIKE 'user1%'", "id BETWEEN 1000 AND 60000"]  # fmt: skip
AGGREGATES = ["COUNT(*)", "COUNT(name)", "SUM(id)", "MIN(name)", "MAX(email)", "AVG(id)",
              "MIN(created_at)", "MAX(id)", "COUNT(DISTINCT name)"]  # fmt: skip
SORT_KEYS = ["name", "email", "created_at", "name DESC", "created_at DESC", "updated_at"]
GROUP_KEYS = ["name", "LOWER(name)", "created_at"]


def _pin(draw: st.DrawFn, column: str = "id") -> str | None:
    """Sometimes a condition that pins the routing key (an id that may not exist)."""
    ids = st.one_of(st.sampled_from(USER_IDS), st.integers(-3, 100_000))
    form = draw(st.sampled_from([None, None, "=", "IN"]))
    if form == "=":
        return f"{column} = {draw(ids)}"
    if form == "IN":
        return f"{column} IN ({', '.join(map(str, draw(st.lists(ids, min_size=1, max_size=4))))})"
    return None


def _where(draw: st.DrawFn) -> str:
    predicate = draw(st.one_of(st.none(), st.sampled_from(PREDICATES)))
    conditions = [c for c in (predicate, _pin(draw)) if c]
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _limit(draw: st.DrawFn) -> str:
    limit = draw(st.one_of(st.none(), st.integers(0, 25)))
    if limit is None:
        return ""
    offset = draw(st.integers(0, 15))
    return f" LIMIT {limit}" + (f" OFFSET {offset}" if offset else "")


@st.composite
def row_queries(draw: st.DrawFn) -> tuple[str, bool]:
    columns = draw(st.lists(st.sampled_from(["id", "name", "email", "created_at"]), min_size=1,
                            max_size=4, unique=True))  # fmt: skip
    keys = draw(st.lists(st.sampled_from(SORT_KEYS), max_size=2, unique_by=lambda k: k.split()[0]))
    limit = _limit(draw)
    ordered = bool(keys or limit)
    order = f" ORDER BY {', '.join([*keys, 'id'])}" if ordered else ""
    return f"SELECT {', '.join(columns)} FROM users{_where(draw)}{order}{limit}", ordered


@st.composite
def group_queries(draw: st.DrawFn) -> tuple[str, bool]:
    key = draw(st.one_of(st.none(), st.sampled_from(GROUP_KEYS)))
    aggregates = draw(st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=3, unique=True))
    conditions = ["COUNT(*) > 3", "MIN(id) < 20000", "SUM(id) >= 100000", "AVG(id) > 45000.5"]
    having = draw(st.one_of(st.none(), st.sampled_from(conditions)))
    items = ([key] if key else []) + aggregates
    sql = f"SELECT {', '.join(items)} FROM users{_where(draw)}"
    if key:
        sql += f" GROUP BY {key}"
    if having:
        sql += f" HAVING {having}"
    if key:
        direction = draw(st.sampled_from(["", " DESC"]))
        sql += f" ORDER BY {key}{direction}{_limit(draw)}"
    return sql, True


@st.composite
def distinct_queries(draw: st.DrawFn) -> tuple[str, bool]:
    columns = draw(st.lists(st.sampled_from(["name", "LOWER(name)", "created_at IS NULL"]),
                            min_size=1, max_size=2, unique=True))  # fmt: skip
    positions = ", ".join(str(i + 1) for i in range(len(columns)))
    sql = f"SELECT DISTINCT {', '.join(columns)} FROM users{_where(draw)}"
    return f"{sql} ORDER BY {positions}{_limit(draw)}", True


@st.composite
def join_queries(draw: st.DrawFn) -> tuple[str, bool]:
    side = draw(st.sampled_from(["", "LEFT "]))
    base = f"FROM users AS u {side}JOIN posts AS p ON p.user_id = u.id"
    pin = _pin(draw, draw(st.sampled_from(["u.id", "p.user_id"])))
    base += f" WHERE {pin}" if pin else ""
    if draw(st.booleans()):
        order = f"ORDER BY p.title, u.id, p.id{_limit(draw)}"
        return f"SELECT u.id, p.id AS post_id, p.title {base} {order}", True
    return (f"SELECT u.name, COUNT(p.id), MAX(p.title), AVG(p.user_id) {base} GROUP BY u.name "
            f"ORDER BY u.name"), True  # fmt: skip


QUERIES = st.one_of(row_queries(), group_queries(), distinct_queries(), join_queries())


# --- the oracle tests ----------------------------------------------------------------------


def test_results_equal_the_single_table_oracle(cluster: Cluster) -> None:
    """Every fixed query and generated ones, on 1, 4 and 8 physical databases (one set of
    databases, three configs)."""
    failures = [
        problem
        for layout in LAYOUTS
        for sql, ordered in FIXED
        if (problem := mismatch(cluster, layout, sql, ordered))
    ]
    assert not failures, "\n".join(failures)
    pruned = [plan_query(sql, cluster.topologies[8]).pruning is not None for sql in PRUNED]
    assert pruned == [True] * (len(PRUNED) - 1) + [False]

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(QUERIES, st.sampled_from(LAYOUTS))
    def generated(query: tuple[str, bool], layout: int) -> None:
        problem = mismatch(cluster, layout, *query)
        assert problem is None, problem

    generated()


# --- failures, partial results, timeouts, writes, readers ----------------------------------

UNREACHABLE: dict[str, Callable[[Path], str]] = {
    "sqlite3": lambda root: str(root / "no" / "such" / "directory" / "shard.db"),
    "postgres": lambda _: "host=127.0.0.1 port=1 user=app password=s3cr3t-pw dbname=gone",
    "mysql": lambda _: "app:s3cr3t-pw@tcp(127.0.0.1:1)/gone",
}
SMALL_SUFFIX_COUNT = 4


@dataclass
class Small:
    """Two physical databases with four table numbers (entries 1-2 on the first)."""

    driver: str
    root: Path
    dsns: list[str]
    users: list[dict[str, Any]]

    def topology(self, dsns: list[str] | None = None, name: str = "config") -> Topology:
        config = self.root / name
        entries = tiled_entries(SMALL_SUFFIX_COUNT, SMALL_SUFFIX_COUNT, dsns or self.dsns,
                                self.driver)  # fmt: skip
        write_config(config, entries, suffix_count=SMALL_SUFFIX_COUNT)
        return load_topology(config, "develop", connecting=True)[0]

    def count(self, sql: str) -> int:
        with query_all(self.topology(), sql) as result:
            return int(next(result.rows)[0])


def make_small(driver: str, dsns: list[str], root: Path) -> Small:
    users, posts = dataset(seed=11)
    users, posts = users[:40], posts[:80]
    for index, dsn in enumerate(dsns):
        engine = make_engine(parse_dsn(driver, dsn, sqlite_base=root))  # type: ignore[arg-type]
        for number in (2 * index, 2 * index + 1):
            load(engine, f"_{number:03d}",
                 [u for u in users if u["id"] % SMALL_SUFFIX_COUNT == number],
                 [p for p in posts if p["user_id"] % SMALL_SUFFIX_COUNT == number])  # fmt: skip
        engine.dispose()
    return Small(driver, root, dsns, users)


@pytest.fixture(params=DRIVERS)
def small(request: pytest.FixtureRequest, tmp_path: Path) -> Small:
    driver: str = request.param
    if driver == "sqlite3":
        return make_small(driver, [str(tmp_path / f"small_{i}.db") for i in range(2)], tmp_path)
    factory = request.getfixturevalue("pg_databases" if driver == "postgres" else "mysql_databases")
    make = pg_dsn if driver == "postgres" else mysql_dsn
    return make_small(driver, [make(factory()) for _ in range(2)], tmp_path)


def test_a_missing_suffix_table_is_named_with_its_entry_database_and_the_fix(small: Small) -> None:
    topology = small.topology()
    database = topology.databases[1]
    engine = make_engine(database.writer)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE users_003")
    engine.dispose()
    with pytest.raises(MissingTable) as caught:
        query_all(topology, "SELECT COUNT(*) FROM users")
    message = str(caught.value)
    assert message == (
        f"Table users_003 (table number 3, entry 4) does not exist on database {database.label}. "
        "Run 'shardctl migrate --env develop' to create the suffix tables."
    )
    assert small.count("SELECT COUNT(*) FROM posts") == 80  # posts_003 is still there


def test_an_unreachable_database_is_named_without_its_password(small: Small) -> None:
    down = UNREACHABLE[small.driver](small.root)
    topology = small.topology([small.dsns[0], down], name="down")
    failing = topology.databases[1]
    with pytest.raises(DatabaseError) as caught:
        query_all(topology, "SELECT COUNT(*) FROM users")
    message = str(caught.value)
    assert message.startswith(f"Database {failing.label}:")
    assert "s3cr3t" not in message and "s3cr3t" not in repr(caught.value.__cause__ or "")


def test_allow_partial_returns_the_others_and_names_what_is_missing(small: Small) -> None:
    topology = small.topology([small.dsns[0], UNREACHABLE[small.driver](small.root)], "down")
    with query_all(topology, "SELECT COUNT(*), MIN(id) FROM users", allow_partial=True) as result:
        rows = list(result.rows)
    expected = [u["id"] for u in small.users if u["id"] % SMALL_SUFFIX_COUNT < 2]
    assert rows == [(len(expected), min(expected))]
    (warning,) = result.warnings
    assert warning.startswith(f"Partial result: database {topology.databases[1].label} failed (")
    assert warning.endswith("table numbers 2-3 (entries 3, 4) are not covered.")
    assert "s3cr3t" not in warning
    assert [s.error is None for s in result.stats] == [True, False]


SLOW = {
    # SQLite: already late at the first progress check (every 1,000 virtual-machine steps)
    "sqlite3": ("SELECT COUNT(*) FROM users WHERE email LIKE '%@example.com'", 1e-6),
    "postgres": ("SELECT id FROM users WHERE pg_sleep(0.2)::text = ''", 0.1),
    "mysql": ("SELECT id FROM users WHERE SLEEP(0.2) = 0", 0.1),
}


def test_timeout_cancels_a_database_and_says_so(small: Small) -> None:
    sql, timeout = SLOW[small.driver]
    topology = small.topology()
    if small.driver == "sqlite3":  # enough rows for thousands of steps
        engine = make_engine(topology.databases[0].writer)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users_000 (id, email) VALUES "
                + ", ".join(f"({n}, '{n}@example.com')" for n in range(10**6, 10**6 + 4000, 4))
            )
        engine.dispose()
    with pytest.raises(DatabaseError, match="did not finish within --timeout") as caught:
        with query_all(topology, sql, timeout=timeout) as result:
            list(result.rows)
    assert caught.value.hint == "Raise --timeout, or narrow the query with WHERE."


def test_writes_run_on_every_suffix_table_in_one_transaction_per_database(small: Small) -> None:
    topology = small.topology()
    before = small.count("SELECT COUNT(*) FROM users WHERE name IS NULL")
    targets = [u for u in small.users if u["id"] % 3 == 0 and u["name"] is not None]
    with query_all(topology, "UPDATE users SET name = NULL WHERE id % 3 = 0 AND name IS NOT NULL",
                   allow_write=True) as result:  # fmt: skip
        rows = list(result.rows)
    assert result.columns == ["database", "table_numbers", "rows_affected"]
    assert [row[1] for row in rows] == ["0-1", "2-3"]
    assert sum(row[2] for row in rows) == len(targets)
    assert small.count("SELECT COUNT(*) FROM users WHERE name IS NULL") == before + len(targets)
    with query_all(topology, "DELETE FROM posts WHERE user_id % 2 = 1", allow_write=True) as result:
        deleted = sum(row[2] for row in result.rows)
    assert small.count("SELECT COUNT(*) FROM posts") == 80 - deleted


def test_a_failing_write_changes_nothing_anywhere(small: Small) -> None:
    topology = small.topology()
    engine = make_engine(topology.databases[1].writer)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE posts_003")
        connection.exec_driver_sql("ALTER TABLE posts_002 RENAME TO posts_003")
    engine.dispose()
    with pytest.raises(MissingTable):
        query_all(topology, "DELETE FROM posts", allow_write=True)
    assert small.count("SELECT COUNT(*) FROM users") == 40


def test_reads_go_to_a_reader_unless_writer_is_asked_for(tmp_path: Path) -> None:
    writer, reader = str(tmp_path / "writer.db"), str(tmp_path / "reader.db")
    for path, rows in ((writer, 3), (reader, 1)):
        engine = make_engine(parse_dsn("sqlite3", path, sqlite_base=tmp_path))
        load(
            engine,
            "_000",
            [
                {
                    "id": i * 2,
                    "name": "x",
                    "email": f"{i}@x",
                    "created_at": None,
                    "updated_at": None,
                }
                for i in range(rows)
            ],
            [],
        )
        load(engine, "_001", [], [])
        engine.dispose()  # fmt: skip
    entries = tiled_entries(2, 1, [writer], "sqlite3")
    entries[0]["reader_dsns"] = [reader]
    write_config(tmp_path / "config", entries, suffix_count=2)
    topology = load_topology(tmp_path / "config", "develop", connecting=True)[0]
    for writer_flag, expected in ((False, 1), (True, 3)):
        with query_all(topology, "SELECT COUNT(*) FROM users", writer=writer_flag) as result:
            assert list(result.rows) == [(expected,)]


def test_closing_a_result_early_releases_every_database(small: Small) -> None:
    with query_all(small.topology(), "SELECT * FROM posts") as result:
        first = next(result.rows)
    assert len(first) == len(result.columns) == 6
    assert small.count("SELECT COUNT(*) FROM posts") == 80


@pytest.mark.postgres
def test_postgres_averages_are_reproduced_digit_for_digit(pg_databases: Callable[[], str]) -> None:
    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_databases()}")
    numbers = st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.one_of(numbers, st.integers(-10**12, 10**12).map(Decimal)), min_size=1,
                    max_size=12))  # fmt: skip
    def check(values: list[Decimal]) -> None:
        query = sa.text("SELECT avg(x) FROM unnest(CAST(:xs AS numeric[])) AS x")
        with engine.connect() as connection:
            expected = connection.execute(query, {"xs": values}).scalar_one()
        total = sum(values[1:], values[0])
        got = average("postgres", total, len(values), StreamInfo())
        assert str(got) == str(expected)

    check()
    engine.dispose()


@pytest.mark.mysql
def test_mysql_averages_are_reproduced_digit_for_digit(mysql_databases: Callable[[], str]) -> None:
    engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:3306/{mysql_databases()}")
    with engine.connect() as connection:
        increment = connection.exec_driver_sql("SELECT @@div_precision_increment").scalar_one()
    info = StreamInfo(div_precision_increment=int(increment))
    numbers = st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False)

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(st.lists(numbers, min_size=1, max_size=8))
    def check(values: list[Decimal]) -> None:
        union = " UNION ALL ".join(f"SELECT CAST({v} AS DECIMAL(12, 2)) AS x" for v in values)
        with engine.connect() as connection:
            expected = connection.exec_driver_sql(f"SELECT AVG(x) FROM ({union}) AS t").scalar_one()
        total = sum(values[1:], values[0]).quantize(Decimal("0.01"))
        assert str(average("mysql", total, len(values), info)) == str(expected)

    check()
    engine.dispose()


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_small(tmp_path: Path) -> Small:
    small = make_small("sqlite3", [str(tmp_path / f"small_{i}.db") for i in range(2)], tmp_path)
    small.topology()  # writes tmp_path/config/develop/database.yaml
    return small


@pytest.fixture(autouse=True)
def no_debug_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps --debug in a module-level state that earlier in-process runs may have set."""
    monkeypatch.setattr(STATE, "debug", False)


def shardctl(capsys: pytest.CaptureFixture[str], small: Small, *args: str) -> Any:
    return run_cli(capsys, "query-all", *args, "--config-dir", small.root / "config")


def test_the_command_prints_every_format(
    capsys: pytest.CaptureFixture[str], sqlite_small: Small
) -> None:
    sql = "SELECT id, name FROM users ORDER BY id LIMIT 3"
    first = sorted(sqlite_small.users, key=lambda u: u["id"])[:3]
    expected = [{"id": u["id"], "name": u["name"]} for u in first]
    run = shardctl(capsys, sqlite_small, sql, "--format", "json")
    assert run.code == 0 and json.loads(run.out) == expected
    run = shardctl(capsys, sqlite_small, sql, "-f", "jsonl")
    assert [json.loads(line) for line in run.out.splitlines()] == expected
    run = shardctl(capsys, sqlite_small, sql, "-f", "csv")
    assert run.out.splitlines()[0] == "id,name" and len(run.out.splitlines()) == 4
    run = shardctl(capsys, sqlite_small, sql)
    assert run.code == 0 and "id" in run.out and str(first[0]["id"]) in run.out


def test_stats_go_to_stderr_per_database(
    capsys: pytest.CaptureFixture[str], sqlite_small: Small
) -> None:
    run = shardctl(capsys, sqlite_small, "SELECT COUNT(*) FROM users", "-f", "json", "--stats")
    assert json.loads(run.out) == [{"COUNT(*)": 40}]
    lines = run.err.splitlines()
    assert len(lines) == 2 and all(line.startswith("stats: ") and " ms" in line for line in lines)
    assert lines[0].startswith(f"stats: {sqlite_small.dsns[0]}: 1 row(s), ")


def test_explain_prints_each_databases_sql_without_connecting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dsns = [
        UNREACHABLE["postgres"](tmp_path),
        UNREACHABLE["postgres"](tmp_path).replace("gone", "g2"),
    ]
    write_config(tmp_path / "config", tiled_entries(4, 4, dsns, "postgres"), suffix_count=4)
    small = Small("postgres", tmp_path, dsns, [])
    run = shardctl(capsys, small, "SELECT COUNT(*) FROM users", "--explain")
    assert run.code == 0 and "s3cr3t" not in run.out
    assert run.out.startswith("-- postgres://app:***@127.0.0.1:1/gone · entries 1, 2 · ")
    assert "FROM users_000 AS users\nUNION ALL\n" in run.out and "users_003" in run.out
    run = shardctl(capsys, small, "SELECT COUNT(*) FROM users", "--explain", "-f", "json")
    records = json.loads(run.out)
    assert [r["table_numbers"] for r in records] == [[0, 1], [2, 3]]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["DELETE FROM users"], 1, "Error: query-all refuses a DELETE statement"),
        (["DELETE FROM users", "--write"], 1, "Add --yes"),
        (["SELECT id FROM users", "--yes"], 2, "--yes only confirms --write"),
        (["SELECT id FROM users", "--timeout", "0"], 2, "--timeout must be a positive number"),
        (["SELECT id FROM users WHERE"], 1, "Error: The SQL does not parse as sqlite"),
        (["SELECT id, ROW_NUMBER() OVER () FROM users"], 1, "window function"),
        (["UPDATE users SET name = 'x'", "--write", "--yes", "--allow-partial"], 2,
         "--allow-partial cannot be combined with --write"),
    ],
)  # fmt: skip
def test_refusals_and_bad_options_exit_with_their_code(
    capsys: pytest.CaptureFixture[str],
    sqlite_small: Small,
    args: list[str],
    code: int,
    fragment: str,
) -> None:
    run = shardctl(capsys, sqlite_small, *args)
    assert (run.code, run.out) == (code, "")
    assert fragment in run.err and "Traceback" not in run.err


def test_write_with_yes_reports_rows_per_database(
    capsys: pytest.CaptureFixture[str], sqlite_small: Small
) -> None:
    run = shardctl(capsys, sqlite_small, "DELETE FROM posts WHERE user_id % 2 = 0",
                   "--write", "--yes", "-f", "json")  # fmt: skip
    records = json.loads(run.out)
    assert [r["table_numbers"] for r in records] == ["0-1", "2-3"]
    assert sqlite_small.count("SELECT COUNT(*) FROM posts") == 80 - sum(
        r["rows_affected"] for r in records
    )


def test_a_failing_database_fails_the_command_unless_partial_is_allowed(
    capsys: pytest.CaptureFixture[str], sqlite_small: Small
) -> None:
    dsns = [sqlite_small.dsns[0], UNREACHABLE["sqlite3"](sqlite_small.root)]
    sqlite_small.topology(dsns)
    run = shardctl(capsys, sqlite_small, "SELECT COUNT(*) AS n FROM users", "-f", "json")
    assert run.code == 1 and run.err.startswith("Error: Database ")
    run = shardctl(capsys, sqlite_small, "SELECT COUNT(*) AS n FROM users", "-f", "json",
                   "--allow-partial")  # fmt: skip
    assert run.code == 0 and json.loads(run.out)[0]["n"] < 40
    assert run.err.startswith("warning: Partial result: database ")
    assert "table numbers 2-3 (entries 3, 4) are not covered" in run.err


def test_a_sqlite_database_with_more_tables_than_one_union_allows(tmp_path: Path) -> None:
    """SQLite takes 500 terms per compound SELECT: 1,100 suffix tables nest in groups."""
    count, path = 1100, tmp_path / "big.db"
    write_config(tmp_path / "config", tiled_entries(count, 1, [str(path)], "sqlite3"),
                 suffix_count=count)  # fmt: skip
    topology = load_topology(tmp_path / "config", "develop", connecting=True)[0]
    with sqlite3.connect(path) as connection:
        for number in range(count):
            table = topology.suffix_table("users", number)
            connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
            connection.execute(
                f"INSERT INTO {table} VALUES (?, ?)", (number + count, f"n{number % 3}")
            )
    connection.close()
    for sql, expected in [
        ("SELECT COUNT(*) FROM users", [(count,)]),
        ("SELECT id FROM users ORDER BY id DESC LIMIT 2", [(2 * count - 1,), (2 * count - 2,)]),
        ("SELECT name, COUNT(*) FROM users GROUP BY name ORDER BY name",
         [("n0", 367), ("n1", 367), ("n2", 366)]),
    ]:  # fmt: skip
        with query_all(topology, sql) as result:
            assert list(result.rows) == expected, sql


def test_explain_names_the_pruning_and_the_schema_decides_the_routing_keys(
    capsys: pytest.CaptureFixture[str], sqlite_small: Small
) -> None:
    join = "SELECT u.id FROM users AS u JOIN posts AS p ON p.{0} = u.id WHERE p.{0} = 6"
    run = shardctl(capsys, sqlite_small, join.format("user_id"), "--explain")
    assert run.code == 0 and run.out.startswith(
        "-- pruned to 1 of 4 table numbers by posts.user_id = 6\n\n"
        f"-- {sqlite_small.dsns[1]} · entries 3, 4 · 1 table number(s)\n"
    )
    assert "FROM users_002 AS u JOIN posts_002 AS p" in run.out and "_003" not in run.out
    schema = sqlite_small.root / "config" / "schema.yaml"  # CONFIG_DIR/schema.yaml by default
    schema.write_text(
        "sharding:\n"
        "  users: {shard_key: id, columns: {id: {type: bigint, primary_key: true}}}\n"
        "  posts:\n"
        "    shard_key: author_id\n"
        "    columns: {id: {type: bigint, primary_key: true}, author_id: bigint}\n"
    )
    run = shardctl(capsys, sqlite_small, join.format("user_id"), "--explain")
    assert run.code == 1 and "(u.id = p.author_id)" in run.err
    run = shardctl(capsys, sqlite_small, join.format("author_id"), "--explain", "-f", "json")
    assert run.code == 0 and [(r["table_numbers"], r["pruning"]) for r in json.loads(run.out)] == [
        ([2], "pruned to 1 of 4 table numbers by posts.author_id = 6")
    ]
    moved = schema.rename(sqlite_small.root / "elsewhere.yaml")
    run = shardctl(capsys, sqlite_small, join.format("author_id"), "--explain", "--schema", moved)
    assert run.code == 0
    run = shardctl(capsys, sqlite_small, "SELECT id FROM users", "--schema", schema)
    assert run.code == 2 and "Schema file" in run.err and "not found" in run.err


INEXACT_COLUMN = {
    "sqlite3": ("ALTER TABLE users_003 ADD COLUMN tag TEXT COLLATE NOCASE", "COLLATE NOCASE"),
    "postgres": ("CREATE TYPE mood AS ENUM ('sad', 'ok'); ALTER TABLE users_003 ADD COLUMN tag "
                 "mood", "enum, citext or non-C collated columns"),
    "mysql": ("ALTER TABLE users_003 ADD COLUMN tag ENUM('sad', 'ok')", "ENUM/SET columns"),
}  # fmt: skip


def test_text_a_database_does_not_compare_by_code_point_is_not_merged(small: Small) -> None:
    """A column whose order Python cannot reproduce (collation, enum) on one database: text
    merged in Python is refused naming it; numbers still merge."""
    topology = small.topology()
    ddl, why = INEXACT_COLUMN[small.driver]
    engine = make_engine(topology.databases[1].writer)
    with engine.begin() as connection:
        for statement in ddl.split("; "):
            connection.exec_driver_sql(statement)
    engine.dispose()
    with pytest.raises(MergeError, match=re.escape(why)):
        with query_all(topology, "SELECT name FROM users ORDER BY name") as result:
            list(result.rows)
    with query_all(topology, "SELECT id FROM users ORDER BY id DESC LIMIT 3") as result:
        assert [row[0] for row in result.rows] == sorted(u["id"] for u in small.users)[:-4:-1]
