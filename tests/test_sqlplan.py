"""The query-all planner and merger without databases: refusals, rewriting, merge semantics."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, mysql_dsn, pg_dsn, tiled_entries, write_config
from hypothesis import given, settings
from hypothesis import strategies as st

from shardctl.merge import (
    AggregateSlot,
    Comparison,
    GroupMerge,
    Junction,
    KeyColumn,
    MergeError,
    Negation,
    NullTest,
    Operand,
    PadWeight,
    RowMerge,
    SortSpec,
    StreamInfo,
    average,
    value_key,
)
from shardctl.routing import ID_LIMIT, Topology
from shardctl.schema import load_schema
from shardctl.sqlplan import (
    InvalidQuery,
    Pruning,
    QueryRefused,
    default_shard_keys,
    plan_query,
    shard_keys_of,
)
from shardctl.validate import load_topology

DSNS = {
    "sqlite3": lambda i: f"shard_{i}.db",
    "postgres": lambda i: pg_dsn(f"db{i}"),
    "mysql": lambda i: mysql_dsn(f"db{i}"),
}
DIALECT_OF = {"sqlite3": "sqlite", "postgres": "postgres", "mysql": "mysql"}


def topology(
    tmp_path: Path, driver: str = "sqlite3", suffix_count: int = 8, databases: int = 4
) -> Topology:
    config = tmp_path / f"{driver}-{suffix_count}-{databases}"
    dsns = [DSNS[driver](i) for i in range(databases)]
    write_config(config, tiled_entries(suffix_count, suffix_count, dsns, driver),
                 suffix_count=suffix_count)  # fmt: skip
    return load_topology(config, "develop")[0]


def refusal(tmp_path: Path, driver: str, sql: str, *, allow_write: bool = False) -> str:
    with pytest.raises((QueryRefused, InvalidQuery)) as caught:
        plan_query(sql, topology(tmp_path, driver), allow_write=allow_write)
    assert caught.value.exit_code == 1
    return str(caught.value)


# --- writes are refused in every form ------------------------------------------------------

WRITES = [
    ("sqlite3", "INSERT INTO users (id) VALUES (1)", "INSERT statement"),
    ("sqlite3", "REPLACE INTO users (id) VALUES (1)", "REPLACE statement"),
    ("sqlite3", "UPDATE users SET name = 'x'", "UPDATE statement"),
    ("sqlite3", "DELETE FROM users", "DELETE statement"),
    ("sqlite3", "CREATE TABLE x (a INT)", "CREATE statement"),
    ("sqlite3", "DROP TABLE users", "DROP statement"),
    ("sqlite3", "ALTER TABLE users ADD COLUMN c INT", "ALTER statement"),
    ("sqlite3", "PRAGMA query_only = 0", "PRAGMA statement"),
    ("sqlite3", "ATTACH 'x.db' AS x", "ATTACH statement"),
    ("sqlite3", "VACUUM", "VACUUM statement"),
    ("sqlite3", "SELECT id FROM users; DROP TABLE users", "2 stacked statements (SELECT, DROP)"),
    ("sqlite3", "SELECT id FROM users -- x\n; DELETE FROM users", "stacked statements"),
    ("sqlite3", "SELECT id FROM users /* ; */ ; DELETE FROM users", "stacked statements"),
    ("sqlite3", "WITH d AS (DELETE FROM users RETURNING id) SELECT id FROM d",
     "data-modifying WITH"),
    ("postgres", "WITH d AS (UPDATE users SET name = 'x' RETURNING id) SELECT id FROM d",
     "data-modifying WITH (UPDATE"),
    ("postgres", "SELECT * INTO copy_of_users FROM users", "SELECT … INTO"),
    ("postgres", "COPY users TO '/tmp/users.csv'", "COPY statement"),
    ("postgres", "SELECT * FROM users FOR UPDATE", "locking clause"),
    ("postgres", "SELECT * FROM users FOR SHARE", "locking clause"),
    ("postgres", "TRUNCATE users", "TRUNCATE statement"),
    ("postgres", "MERGE INTO users AS u USING posts AS p ON u.id = p.user_id "
                 "WHEN MATCHED THEN DELETE", "MERGE statement"),
    ("postgres", "SET statement_timeout = 0", "SET statement"),
    ("postgres", "CALL refresh()", "CALL statement"),
    ("postgres", "DO $$ BEGIN END $$", "DO statement"),
    ("postgres", "EXPLAIN ANALYZE DELETE FROM users", "EXPLAIN statement"),
    ("postgres", "LOCK TABLE users", "LOCK statement"),
    ("postgres", "GRANT ALL ON users TO someone", "GRANT statement"),
    ("postgres", "BEGIN", "statement"),
    ("mysql", "SELECT * FROM users LOCK IN SHARE MODE", "locking clause"),
    ("mysql", "SELECT * FROM users FOR UPDATE", "locking clause"),
    ("mysql", "SELECT * FROM users INTO OUTFILE '/tmp/x'", "SELECT … INTO"),
    ("mysql", "SELECT id FROM users INTO @x", "SELECT … INTO"),
    ("mysql", "SELECT /*!50000 1; DROP TABLE users; SELECT */ id FROM users", "executable comment"),
    ("mysql", "SELECT id FROM users /*M! , sleep(1) */", "executable comment"),
    ("mysql", "LOAD DATA INFILE 'x' INTO TABLE users", "LOAD statement"),
    ("mysql", "HANDLER users OPEN", "HANDLER statement"),
    ("mysql", "DO SLEEP(1)", "DO statement"),
    ("mysql", "SELECT @x := id FROM users", "session variable"),
]  # fmt: skip


@pytest.mark.parametrize(("driver", "sql", "fragment"), WRITES)
def test_writes_are_refused_in_every_form(
    tmp_path: Path, driver: str, sql: str, fragment: str
) -> None:
    assert fragment in refusal(tmp_path, driver, sql)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("INSERT INTO users (id) VALUES (1)", "INSERT even with --write"),
        ("DROP TABLE users", "DROP even with --write"),
        ("UPDATE users SET id = id + 1", "UPDATE … SET id"),
        ("UPDATE posts SET user_id = 3 WHERE id = 7", "UPDATE … SET user_id"),
        ("UPDATE users SET name = 'x' WHERE id IN (SELECT user_id FROM posts)", "subquery"),
        ("DELETE FROM users WHERE id = 1; DELETE FROM posts", "stacked statements"),
        ("UPDATE users SET name = 'x' ORDER BY id LIMIT 3", "UPDATE with ORDER"),
    ],
)
def test_even_allowed_writes_refuse_what_cannot_run_per_table(
    tmp_path: Path, sql: str, fragment: str
) -> None:
    assert fragment in refusal(tmp_path, "mysql", sql, allow_write=True)


def test_allowed_writes_run_once_per_suffix_table(tmp_path: Path) -> None:
    plan = plan_query(
        "UPDATE users AS u SET name = UPPER(u.name) WHERE u.id > 10",
        topology(tmp_path, "postgres", suffix_count=8, databases=2),
        allow_write=True,
    )
    assert plan.kind == "write" and plan.merge is None
    first = plan.statements[0]
    assert first.statements == tuple(
        f"UPDATE users_{n:03d} SET name = UPPER(name) WHERE id > 10" for n in range(4)
    )


# --- what cannot be merged exactly is refused, naming the construct ------------------------

UNMERGEABLE = [
    ("postgres", "SELECT id, ROW_NUMBER() OVER (ORDER BY id) FROM users", "window function"),
    ("postgres", "SELECT id FROM users WHERE id IN (SELECT user_id FROM posts)", "subquery"),
    ("postgres", "SELECT (SELECT MAX(id) FROM posts) FROM users", "subquery"),
    ("postgres", "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM posts p "
                 "WHERE p.user_id = u.id)", "subquery"),
    ("postgres", "WITH x AS (SELECT id FROM users) SELECT id FROM x", "WITH (common table"),
    ("postgres", "SELECT id FROM users UNION SELECT user_id FROM posts", "UNION between SELECTs"),
    ("postgres", "SELECT STRING_AGG(name, ',') FROM users", "aggregate"),
    ("postgres", "SELECT ARRAY_AGG(id ORDER BY id) FROM users", "aggregate"),
    ("postgres", "SELECT BOOL_AND(id > 1) FROM users", "aggregate"),
    ("mysql", "SELECT GROUP_CONCAT(name ORDER BY name) FROM users", "aggregate GROUP_CONCAT"),
    ("sqlite3", "SELECT TOTAL(id) FROM users", "aggregate TOTAL"),
    ("postgres", "SELECT SUM(DISTINCT id) FROM users", "SUM(DISTINCT id)"),
    ("postgres", "SELECT AVG(DISTINCT id) FROM users", "AVG(DISTINCT id)"),
    ("postgres", "SELECT COUNT(DISTINCT name), COUNT(DISTINCT email) FROM users",
     "COUNT(DISTINCT …) over two different expressions"),
    ("postgres", "SELECT COUNT(*) + 1 FROM users", "over aggregates"),
    ("postgres", "SELECT COALESCE(SUM(id), 0) FROM users", "over aggregates"),
    ("postgres", "SELECT name, email, COUNT(*) FROM users GROUP BY name",
     "email in the select list"),
    ("postgres", "SELECT DISTINCT ON (name) name, id FROM users", "DISTINCT ON"),
    ("postgres", "SELECT name, COUNT(*) FROM users GROUP BY ROLLUP (name)", "ROLLUP"),
    ("mysql", "SELECT name, COUNT(*) FROM users GROUP BY name WITH ROLLUP", "ROLLUP"),
    ("postgres", "SELECT COUNT(*) FILTER (WHERE id > 3) FROM users", "FILTER"),
    ("postgres", "SELECT id FROM users ORDER BY name COLLATE \"C\"", "COLLATE"),
    ("postgres", "SELECT id FROM users WHERE id = $1", "placeholder"),
    ("mysql", "SELECT id FROM users WHERE id = ?", "placeholder"),
    ("mysql", "SELECT @@version, id FROM users", "session variable"),
    ("postgres", "SELECT u.id FROM users u JOIN posts p ON p.title = u.name",
     "does not match rows on their routing keys"),
    ("postgres", "SELECT u.id FROM users u JOIN posts p ON p.id = u.id", "routing keys"),
    ("postgres", "SELECT u.id FROM users u CROSS JOIN posts p", "routing keys"),
    ("postgres", "SELECT u.id FROM users u, posts p", "routing keys"),
    ("postgres", "SELECT u.id FROM users u JOIN posts p ON p.user_id = u.id OR p.id = 1",
     "routing keys"),
    ("postgres", "SELECT id FROM accounts", "table 'accounts'"),
    ("postgres", "SELECT id FROM public.users", "schema-qualified table"),
    ("postgres", "SELECT 1", "without FROM"),
    ("postgres", "SELECT u.id FROM users u, LATERAL (SELECT 1) x", "LATERAL"),
    ("postgres", "SELECT * FROM users TABLESAMPLE SYSTEM (10)", "table options"),
    ("postgres", "SELECT *, id FROM users ORDER BY 1", "pointing at *"),
    ("postgres", "SELECT name, COUNT(*) AS n FROM users GROUP BY name HAVING n > 1",
     "n in HAVING"),
    ("postgres", "SELECT name FROM users GROUP BY name HAVING MAX(name) > 'k'", "text literal"),
    ("postgres", "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) * 2 > 3",
     "COUNT(*) * 2 over aggregates in HAVING"),
    ("postgres", "SELECT name FROM users WHERE COUNT(*) > 1", "aggregate in WHERE"),
    ("postgres", "SELECT id FROM users LIMIT 10 + 1", "LIMIT"),
    ("postgres", "SELECT id FROM users FETCH FIRST 5 ROWS WITH TIES", "WITH TIES"),
    ("postgres", "SELECT DISTINCT * FROM users", "* with GROUP BY, DISTINCT"),
    ("postgres", "SELECT DISTINCT name, COUNT(*) FROM users GROUP BY name",
     "SELECT DISTINCT together with GROUP BY"),
    ("postgres", "SELECT DISTINCT name FROM users ORDER BY id", "id in ORDER BY"),
    ("postgres", "SELECT LOWER(name) AS name, COUNT(*) FROM users GROUP BY name",
     "both an output alias and a column"),
    ("mysql", "SELECT id FROM users ORDER BY name NULLS LAST", "NULLS LAST"),
    ("postgres", "SELECT id FROM users ORDER BY COUNT(*)", "aggregate in ORDER BY"),
]  # fmt: skip


@pytest.mark.parametrize(("driver", "sql", "fragment"), UNMERGEABLE)
def test_what_cannot_be_merged_exactly_is_refused(
    tmp_path: Path, driver: str, sql: str, fragment: str
) -> None:
    assert fragment in refusal(tmp_path, driver, sql)


def test_sql_that_does_not_parse_says_where(tmp_path: Path) -> None:
    message = refusal(tmp_path, "postgres", "SELECT id FROM users WHERE (id > 1")
    assert message.startswith("The SQL does not parse as postgres:") and "line 1" in message


def test_a_topology_mixing_engines_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mixed"
    entries = tiled_entries(4, 2, ["a.db"], "sqlite3")
    entries[1].update(driver="postgres", dsn=pg_dsn("x"))
    write_config(config, entries, suffix_count=4)
    with pytest.raises(QueryRefused, match="mixes drivers"):
        plan_query("SELECT id FROM users", load_topology(config, "develop")[0])


# --- rewriting ----------------------------------------------------------------------------


def test_joined_tables_take_the_same_suffix_and_keep_their_aliases(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT u.name, p.title FROM users u JOIN posts p ON p.user_id = u.id",
        topology(tmp_path, "postgres", suffix_count=8, databases=2),
    )
    sql = plan.statements[1].sql
    for number in range(4, 8):
        assert f"FROM users_{number:03d} AS u JOIN posts_{number:03d} AS p ON" in sql
    assert "users_003" not in sql and sql.count("UNION ALL") == 3


def test_unaliased_tables_keep_their_logical_name_for_qualified_columns(tmp_path: Path) -> None:
    plan = plan_query("SELECT users.id FROM users", topology(tmp_path, databases=1))
    assert "SELECT users.id FROM users_000 AS users" in plan.statements[0].sql


@pytest.mark.parametrize("kind", ["rows", "groups", "write"])
def test_text_that_looks_like_the_suffix_marker_is_left_alone(tmp_path: Path, kind: str) -> None:
    """Branches are generated once with a marker for the suffix; a query that contains the
    marker's text itself gets another marker, so its literals come through unchanged."""
    literal = "'shardctl0suffix shardctl1suffix'"
    sql = {
        "rows": f"SELECT id, {literal} AS tag FROM users",
        "groups": f"SELECT name, COUNT(*) FROM users WHERE email <> {literal} GROUP BY name",
        "write": f"UPDATE users SET name = {literal} WHERE id > 5",
    }[kind]
    plan = plan_query(sql, topology(tmp_path, "postgres", databases=2), allow_write=True)
    statements = [s for statement in plan.statements for s in statement.statements]
    text = "\n".join(statements)
    assert text.count(literal) == 8  # once per suffix table
    assert [n for n in range(8) if f"users_{n:03d}" in text] == list(range(8))


def test_limit_offset_is_pushed_down_as_limit_plus_offset(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT id FROM users ORDER BY id DESC LIMIT 10 OFFSET 5",
        topology(tmp_path, "mysql", databases=2),
    )
    sql = plan.statements[0].sql
    assert sql.count("LIMIT 15") == 5  # four branches and the database's union
    assert isinstance(plan.merge, RowMerge)
    assert (plan.merge.offset, plan.merge.limit) == (5, 10)


def test_sqlite_sorts_the_union_instead_of_parenthesised_branches(tmp_path: Path) -> None:
    plan = plan_query("SELECT id FROM users ORDER BY id LIMIT 3", topology(tmp_path, databases=2))
    sql = plan.statements[0].sql
    assert "(" not in sql and sql.endswith("ORDER BY _k0 LIMIT 3")


def test_a_sort_key_not_selected_travels_as_a_hidden_column(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT id FROM users ORDER BY created_at DESC", topology(tmp_path, "postgres")
    )
    assert "created_at AS _k0" in plan.statements[0].sql
    assert plan.columns == ("id",)
    assert isinstance(plan.merge, RowMerge) and plan.merge.hidden == 1
    assert plan.merge.order == (SortSpec(-1, descending=True, nulls_first=True),)


def test_avg_travels_as_sum_and_count(tmp_path: Path) -> None:
    plan = plan_query("SELECT AVG(id) FROM users", topology(tmp_path, "mysql", databases=2))
    sql = plan.statements[0].sql
    assert "SUM(id) AS _a0, COUNT(id) AS _a0_n" in sql
    assert "SUM(_a0) AS _a0, SUM(_a0_n) AS _a0_n" in sql
    assert plan.columns == ("AVG(id)",)


def test_postgres_aggregates_the_raw_union_to_keep_result_types(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT name, SUM(id) FROM users GROUP BY name", topology(tmp_path, "postgres", databases=2)
    )
    sql = plan.statements[0].sql
    assert sql.startswith("SELECT _g0, SUM(_x0) AS _a0 FROM (\nSELECT name AS _g0, id AS _x0")
    assert plan.columns == ("name", "sum")


def test_mysql_compares_text_by_collation_weights(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT name, MIN(email) FROM users GROUP BY name", topology(tmp_path, "mysql", databases=2)
    )
    statement = plan.statements[0]
    assert "WEIGHT_STRING(_g0) AS _w0, WEIGHT_STRING(MIN(_a0)) AS _w1" in statement.sql
    assert statement.probe is not None and statement.probe.endswith("WHERE FALSE")
    assert "WEIGHT_STRING(CONCAT(COALESCE(MIN(email), ''), ' '))" in statement.probe


def test_count_distinct_groups_each_database_by_the_argument(tmp_path: Path) -> None:
    plan = plan_query(
        "SELECT COUNT(DISTINCT name) FROM users", topology(tmp_path, "postgres", databases=1)
    )
    assert plan.statements[0].sql.endswith("GROUP BY _g0, _d".replace("_g0, ", ""))
    assert isinstance(plan.merge, GroupMerge) and plan.merge.scalar


@settings(max_examples=40, deadline=None)
@given(
    suffix_count=st.integers(1, 40),
    entries=st.integers(1, 8),
    databases=st.integers(1, 8),
    driver=st.sampled_from(sorted(DSNS)),
)
def test_every_table_number_is_read_exactly_once(
    tmp_path_factory: pytest.TempPathFactory,
    suffix_count: int,
    entries: int,
    databases: int,
    driver: str,
) -> None:
    entries = min(entries, suffix_count)
    config = tmp_path_factory.mktemp("any")
    dsns = [DSNS[driver](i) for i in range(databases)]
    write_config(config, tiled_entries(suffix_count, entries, dsns, driver),
                 suffix_count=suffix_count)  # fmt: skip
    layout = load_topology(config, "develop")[0]
    plan = plan_query("SELECT u.id FROM users u JOIN posts p ON p.user_id = u.id", layout)
    tables = [table for statement in plan.statements for table in statement.tables]
    assert sorted(tables) == sorted(
        layout.suffix_table(name, n) for n in range(suffix_count) for name in ("users", "posts")
    )
    for statement in plan.statements:
        assert statement.table_numbers == tuple(statement.database.table_numbers)
        for table in statement.tables:
            assert table in statement.sql


def test_default_routing_keys_follow_the_application_convention(tmp_path: Path) -> None:
    assert default_shard_keys(topology(tmp_path)) == {"users": "id", "posts": "user_id"}


# --- routing keys from the schema, and pruning by them -------------------------------------

AUTHOR_SCHEMA = """
sharding:
  users:
    shard_key: id
    columns: {id: {type: bigint, primary_key: true}, name: text}
  posts:
    shard_key: author_id
    columns: {id: {type: bigint, primary_key: true}, author_id: bigint, user_id: bigint}
  tags:
    columns: {id: {type: bigint, primary_key: true}}
"""


def test_routing_keys_come_from_the_schema(tmp_path: Path) -> None:
    layout = topology(tmp_path)
    path = tmp_path / "schema.yaml"
    path.write_text(AUTHOR_SCHEMA)
    keys = shard_keys_of(layout, load_schema(path)[0])
    assert keys == {"users": "id", "posts": "author_id"}
    assert shard_keys_of(layout, None) == default_shard_keys(layout)
    join = "SELECT u.name FROM users u JOIN posts p ON p.{} = u.id WHERE p.{} = 9"
    plan = plan_query(join.format("author_id", "author_id"), layout, shard_keys=keys)
    assert plan.pruning is not None and plan.pruning.table_numbers == (1,)
    assert str(plan.pruning) == "pruned to 1 of 8 table numbers by posts.author_id = 9"
    with pytest.raises(QueryRefused, match=r"routing keys \(u.id = p.author_id\)"):
        plan_query(join.format("user_id", "user_id"), layout, shard_keys=keys)


@settings(max_examples=60, deadline=None)
@given(
    suffix_count=st.integers(1, 64),
    databases=st.integers(1, 6),
    ids=st.lists(
        st.one_of(st.integers(0, ID_LIMIT - 1), st.integers(-(2**70), 2**70)),
        min_size=1,
        max_size=5,
    ),
    joined=st.booleans(),
)
def test_pruning_reads_exactly_the_table_numbers_the_ids_route_to(
    tmp_path_factory: pytest.TempPathFactory,
    suffix_count: int,
    databases: int,
    ids: list[int],
    joined: bool,
) -> None:
    config = tmp_path_factory.mktemp("prune")
    dsns = [DSNS["sqlite3"](i) for i in range(databases)]
    write_config(config, tiled_entries(suffix_count, min(suffix_count, databases), dsns,
                                       "sqlite3"), suffix_count=suffix_count)  # fmt: skip
    layout = load_topology(config, "develop")[0]
    values = ", ".join(map(str, ids))
    sql = (
        f"SELECT u.id FROM users u JOIN posts p ON p.user_id = u.id WHERE u.name > 'a' AND "
        f"(p.user_id IN ({values}))"
        if joined
        else f"SELECT COUNT(*) FROM users WHERE {values.split(', ')[0]} = id AND id IN ({values})"
    )
    plan = plan_query(sql, layout)
    routed = {i % suffix_count for i in ids if 0 <= i < ID_LIMIT}
    if not joined:
        routed &= {ids[0] % suffix_count} if 0 <= ids[0] < ID_LIMIT else set()
    read = [n for statement in plan.statements for n in statement.table_numbers]
    if len(routed) == suffix_count:
        assert plan.pruning is None and sorted(read) == list(range(suffix_count))
        return
    assert plan.pruning is not None and plan.pruning.matched == len(routed)
    assert sorted(read) == sorted(routed or {0})  # an impossible id still reads one table
    for statement in plan.statements:
        assert set(statement.table_numbers) <= set(statement.database.table_numbers)
        assert statement.table_numbers  # a database with nothing to read is not contacted
        for table in statement.tables:
            assert table in statement.sql


@pytest.mark.parametrize(
    "where",
    [
        "id = 1 OR id = 2",
        "NOT id = 1",
        "id NOT IN (1, 2)",
        "id <> 1",
        "id > 1 AND id < 3",
        "id = '1'",
        "id = 1.0",
        "id IN (1, NULL)",
        "id IN (1, 2 + 1)",
        "id = name",
        "name = 1",
        "(id = 1 OR name IS NULL) AND email = 'x'",
        "CASE WHEN id = 1 THEN 1 END = 1",
    ],
)
def test_only_plain_key_equalities_in_top_level_and_prune(tmp_path: Path, where: str) -> None:
    plan = plan_query(f"SELECT id FROM users WHERE {where}", topology(tmp_path))
    assert plan.pruning is None and len(plan.statements) == 4


def test_an_unqualified_or_non_key_column_of_a_join_does_not_prune(tmp_path: Path) -> None:
    join = "SELECT u.id FROM users u JOIN posts p ON p.user_id = u.id WHERE "
    for where in ("user_id = 3", "p.id = 3", "u.user_id = 3", "x.id = 3"):
        assert plan_query(join + where, topology(tmp_path)).pruning is None, where
    both = plan_query(join + "u.id = 3 AND p.user_id = 11", topology(tmp_path)).pruning
    assert both == Pruning((3,), 1, 8, ("users.id = 3", "posts.user_id = 11"))


def test_writes_are_pruned_too(tmp_path: Path) -> None:
    plan = plan_query(
        "DELETE FROM posts WHERE user_id = 13 AND title IS NULL",
        topology(tmp_path, "postgres", suffix_count=8, databases=2),
        allow_write=True,
    )
    assert [(s.table_numbers, s.statements) for s in plan.statements] == [
        ((5,), ("DELETE FROM posts_005 WHERE user_id = 13 AND title IS NULL",))
    ]


def test_cli_modules_do_not_load_sqlglot_or_sqlalchemy() -> None:
    code = (
        "import sys; import shardctl.cli.commands; "
        "print(sorted(m for m in ('sqlglot', 'sqlalchemy') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert output.stdout.strip() == "[]"


# --- merging ------------------------------------------------------------------------------


def general_ci(text: str) -> PadWeight:
    """MariaDB utf8mb4_general_ci weights for ASCII: upper-cased code units, 2 bytes each."""
    return PadWeight(b"".join(ord(c.upper()).to_bytes(2, "big") for c in text), b"\x00\x20")


def test_pad_space_weights_compare_like_the_server() -> None:
    assert general_ci("a") == general_ci("A ") == general_ci("a  ")
    assert hash(general_ci("a")) == hash(general_ci("A "))
    assert general_ci("a\t") < general_ci("a") < general_ci("a b") < general_ci("ab")
    assert not general_ci("a") < general_ci("a ")
    no_pad = PadWeight(b"\x00a", None)
    assert no_pad < PadWeight(b"\x00a\x00 ", None)


@pytest.mark.parametrize(
    ("dialect", "nulls_first", "expected"),
    [("sqlite", True, [None, 1, 2, 3]), ("postgres", False, [1, 2, 3, None])],
)
def test_ordered_streams_merge_with_the_engines_null_order(
    dialect: str, nulls_first: bool, expected: list[int | None]
) -> None:
    merge = RowMerge(dialect, hidden=1, order=(SortSpec(-1, False, nulls_first),))  # type: ignore[arg-type]
    first = [(v, v) for v in expected if v in (None, 2)]
    second = [(v, v) for v in expected if v not in (None, 2)]
    rows = list(merge.merge([first, second], [StreamInfo(), StreamInfo()]))
    assert rows == [(v,) for v in expected]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-5, 5), st.text("ab ", max_size=3)),
                    max_size=30),
    streams=st.integers(1, 5),
    descending=st.booleans(),
    offset=st.integers(0, 5),
    limit=st.one_of(st.none(), st.integers(0, 10)),
)  # fmt: skip
def test_sqlite_merge_equals_one_sort(
    values: list[int | str | None], streams: int, descending: bool, offset: int, limit: int | None
) -> None:
    """SQLite: NULL < numbers < text; the merge of sorted streams equals sorting everything."""

    def rank(value: int | str | None) -> tuple[int, int | str]:
        return (0, 0) if value is None else (1, value) if isinstance(value, int) else (2, value)

    def ordered(items: list[int | str | None]) -> list[int | str | None]:
        nulls = [v for v in items if v is None]
        rest = sorted((v for v in items if v is not None), key=rank, reverse=descending)
        return rest + nulls if descending else nulls + rest

    chunks = [ordered(values[i::streams]) for i in range(streams)]
    merge = RowMerge("sqlite", order=(SortSpec(0, descending, not descending),),
                     offset=offset, limit=limit)  # fmt: skip
    merged = [row[0] for row in merge.merge([[(v,) for v in c] for c in chunks],
                                            [StreamInfo()] * streams)]  # fmt: skip
    whole = ordered(values)[offset:]
    expected = whole if limit is None else whole[:limit]
    assert [rank(v) for v in merged] == [rank(v) for v in expected]


def test_postgres_sorts_nan_above_every_number() -> None:
    keys: list[Any] = [value_key("postgres", v, StreamInfo()) for v in (float("nan"), 1e308, -1.0)]
    assert sorted(keys) == [keys[2], keys[1], keys[0]]


def test_text_that_cannot_be_ordered_exactly_is_refused() -> None:
    info = StreamInfo(text_exact=False, why_inexact="database x sorts text by en_US.")
    with pytest.raises(MergeError, match="en_US"):
        value_key("postgres", "abc", info)


@pytest.mark.parametrize(
    ("dialect", "total", "count", "expected"),
    [
        ("postgres", 3, 2, Decimal("1.5000000000000000")),
        ("postgres", 10, 3, Decimal("3.3333333333333333")),
        ("postgres", 30000, 2, Decimal("15000.000000000000")),
        ("postgres", Decimal("2.50"), 4, Decimal("0.62500000000000000000")),
        ("postgres", -5, 3, Decimal("-1.6666666666666667")),
        ("mysql", 10, 3, Decimal("3.3333")),
        ("mysql", Decimal("2.50"), 4, Decimal("0.625000")),
        ("mysql", -5, 3, Decimal("-1.6667")),
        ("sqlite", 10, 4, 2.5),
        ("postgres", None, 0, None),
        ("postgres", 1.5, 2, 0.75),
    ],
)
def test_average_has_the_engines_type_and_rounding(
    dialect: str, total: object, count: int, expected: object
) -> None:
    result = average(dialect, total, count, StreamInfo())  # type: ignore[arg-type]
    assert result == expected and str(result) == str(expected)


def grouped(**fields: object) -> GroupMerge:
    defaults: dict[str, object] = {
        "dialect": "sqlite",
        "keys": (),
        "aggregates": (AggregateSlot("count", 0), AggregateSlot("sum", 1)),
        "outputs": (Operand("agg", 0), Operand("agg", 1)),
        "scalar": True,
    }
    return GroupMerge(**{**defaults, **fields})  # type: ignore[arg-type]


def test_aggregates_of_no_rows_are_count_zero_and_sum_null() -> None:
    assert list(grouped().merge([], [])) == [(0, None)]
    assert list(grouped().merge([(0, [(0, None)]), (1, [(0, None)])], [StreamInfo()] * 2)) == [
        (0, None)
    ]


def test_having_uses_three_valued_logic() -> None:
    over_two = Comparison(">", Operand("agg", 0), Operand("const", 2))
    sum_is_null = NullTest(Operand("agg", 1))
    merge = grouped(
        keys=(KeyColumn(2),),
        outputs=(Operand("key", 0), Operand("agg", 0)),
        having=Junction("or", (over_two, Negation(sum_is_null))),
        scalar=False,
    )
    batches: list[tuple[int, list[tuple[Any, ...]]]] = [
        (0, [(1, None, "a"), (2, 5, "b"), (3, None, "c")]),
        (1, [(0, None, "b")]),
    ]
    rows = list(merge.merge(batches, [StreamInfo()] * 2))
    assert rows == [("b", 2), ("c", 3)]


def test_sum_beyond_64_bits_fails_like_the_engine() -> None:
    batches = [(0, [(1, 2**62)]), (1, [(1, 2**62)])]
    with pytest.raises(MergeError, match="64-bit"):
        list(grouped(dialect="postgres").merge(batches, [StreamInfo()] * 2))
    assert list(grouped(dialect="mysql").merge(batches, [StreamInfo()] * 2)) == [(2, 2**63)]


def test_dialects_map_from_config_drivers(tmp_path: Path) -> None:
    for driver, dialect in DIALECT_OF.items():
        assert plan_query("SELECT id FROM users", topology(tmp_path, driver)).dialect == dialect
