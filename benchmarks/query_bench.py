"""Section 3: ``query-all`` on PostgreSQL against the same rows in one table, and against the
application's old approach (a loop querying the suffix tables one at a time).

Three ways to answer each query, all in this process, each run opening its own connections:

* **one table**: the logical SQL on one database holding every row in ``users`` / ``posts``
  (same DDL and indexes) — the target is query-all ≤ 1.5× this;
* **query-all**: :func:`shardctl.query.query_all` on 32 suffix tables over 4 databases (plan with
  sqlglot, one statement per database, databases in parallel, exact merge);
* **sequential loop**: one psycopg connection per database, then the query on each suffix table
  in turn and the merge in Python (counts summed, top-N re-sorted, LIMIT+OFFSET per table,
  groups re-aggregated) — the target is query-all ≥ 5× faster.

The CLI's wall time (``shardctl query-all … -f json``) is shown too; it adds the interpreter and
the SQLAlchemy/sqlglot imports. Every query-all result is compared with the one-table result.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any

import dataset
import pg
from harness import (
    PYTHON,
    SHARDCTL,
    Context,
    Job,
    SectionResult,
    Stats,
    Verdict,
    interleaved,
    log,
    mark,
    table,
    time_command,
    timed,
)

DATABASES = 4
ENTRIES = 8
SUFFIX_COUNT = 32
ONE_TABLE_LIMIT = 1.5
LOOP_SPEEDUP = 5.0
Rows = list[tuple[Any, ...]]
DAY = "p.created_at >= '2024-06-01' AND p.created_at < '2024-06-02'"


@dataclass(frozen=True)
class Query:
    """A logical query, its per-suffix-table form for the loop and the loop's merge."""

    name: str
    sql: str
    per_table: str  # {n} is the suffix
    merge: Callable[[list[Rows]], Rows]


def _sum_counts(parts: list[Rows]) -> Rows:
    return [(sum(rows[0][0] for rows in parts),)]


def _sorted(key: Callable[[tuple[Any, ...]], Any], reverse: bool = False, skip: int = 0,
            limit: int | None = None) -> Callable[[list[Rows]], Rows]:  # fmt: skip
    def merge(parts: list[Rows]) -> Rows:
        merged = heapq.merge(*parts, key=key, reverse=reverse)
        return list(islice(merged, skip, None if limit is None else skip + limit))

    return merge


def _groups(parts: list[Rows]) -> Rows:
    totals: dict[str, list[int]] = {}
    for rows in parts:
        for title, count, length in rows:
            total = totals.setdefault(title, [0, 0])
            total[0] += count
            total[1] += length
    groups = [(title, n, Decimal(length) / n) for title, (n, length) in totals.items()]
    return sorted(groups, key=lambda g: (-g[1], g[0]))[:20]


def _close(a: Rows, b: Rows) -> bool:
    """Equal rows, numbers compared to 12 significant digits (the loop's AVG is computed in
    Python, not with PostgreSQL's numeric scale)."""
    return len(a) == len(b) and all(
        len(x) == len(y) and all(_close_value(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _close_value(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


QUERIES = [
    Query("COUNT(*)", "SELECT COUNT(*) FROM users",
          "SELECT COUNT(*) FROM users_{n}", _sum_counts),
    Query("ORDER BY id DESC LIMIT 20",
          "SELECT id, name, email, created_at FROM users ORDER BY id DESC LIMIT 20",
          "SELECT id, name, email, created_at FROM users_{n} ORDER BY id DESC LIMIT 20",
          _sorted(lambda r: r[0], reverse=True, limit=20)),
    Query("ORDER BY created_at LIMIT 20 OFFSET 1000",
          "SELECT id, name, created_at FROM users ORDER BY created_at LIMIT 20 OFFSET 1000",
          "SELECT id, name, created_at FROM users_{n} ORDER BY created_at LIMIT 1020",
          _sorted(lambda r: r[2], skip=1000, limit=20)),
    Query("GROUP BY title: COUNT, AVG",
          "SELECT title, COUNT(*) AS posts, AVG(LENGTH(content)) AS avg_length FROM posts "
          "GROUP BY title ORDER BY posts DESC, title LIMIT 20",
          "SELECT title, COUNT(*), SUM(LENGTH(content)) FROM posts_{n} GROUP BY title",
          _groups),
    Query("users JOIN posts, one day",
          f"SELECT p.id, u.name, p.title, p.created_at FROM posts p JOIN users u "
          f"ON u.id = p.user_id WHERE {DAY} ORDER BY p.id",
          f"SELECT p.id, u.name, p.title, p.created_at FROM posts_{{n}} p JOIN users_{{n}} u "
          f"ON u.id = p.user_id WHERE {DAY} ORDER BY p.id",
          _sorted(lambda r: r[0])),
]  # fmt: skip


def run(ctx: Context) -> SectionResult:
    from shardctl.query import query_all
    from shardctl.routing import suffix_width
    from shardctl.validate import load_topology

    users = 100_000 if ctx.quick else 1_000_000
    repeats = ctx.repeats(7, 3)
    log(f"query-all: generating {users:,} users")
    rows, generate = _timed_once(lambda: dataset.generate(users))
    with (
        pg.scratch_databases("query", DATABASES) as sharded,
        pg.scratch_databases("single", 1) as (single,),
    ):
        log(f"query-all: loading {len(rows.users):,} users and {len(rows.posts):,} posts twice")
        layout, load_sharded = _timed_once(lambda: dataset.load_sharded(
            rows, ctx.workdir / "sharded", sharded, SUFFIX_COUNT, ENTRIES))  # fmt: skip
        _, load_single = _timed_once(lambda: dataset.load_single(rows, ctx.workdir / "one",
                                                                 single))  # fmt: skip
        topology, _ = load_topology(layout.config_dir, dataset.ENV, connecting=True)
        width = suffix_width(SUFFIX_COUNT)
        placement = [(topology.database_for(n).writer.database, f"{n:0{width}d}")
                     for n in range(SUFFIX_COUNT)]  # fmt: skip

        def sharded_rows(sql: str) -> Rows:
            result = query_all(topology, sql)
            with result:
                return [tuple(row) for row in result.rows]

        cli = [SHARDCTL, "query-all", "--config-dir", str(layout.config_dir), "-e",
               dataset.ENV, "-f", "json"]  # fmt: skip
        jobs: dict[str, Job] = {}
        checks = []
        for query in QUERIES:
            expected = one_table_rows(single, query.sql)
            got = sharded_rows(query.sql)
            looped = _loop(placement, query)
            checks.append((query.name, got == expected, _close(looped, expected), len(expected)))
            jobs[f"{query.name}|one"] = timed(lambda q=query: one_table_rows(single, q.sql))
            jobs[f"{query.name}|all"] = timed(lambda q=query: sharded_rows(q.sql))
            jobs[f"{query.name}|loop"] = timed(lambda q=query: _loop(placement, q))
            jobs[f"{query.name}|cli"] = lambda q=query: time_command([*cli, q.sql])
        jobs["floor"] = lambda: time_command([PYTHON, "-c", "import typer, sqlglot, psycopg"])
        log(f"query-all: {len(jobs)} jobs × {repeats} runs, interleaved")
        stats = interleaved(jobs, repeats)
    return _report(users, len(rows.posts), repeats, stats, checks,
                   (generate, load_sharded, load_single))  # fmt: skip


def _report(users: int, posts: int, repeats: int, stats: dict[str, Stats],
            checks: list[tuple[str, bool, bool, int]],
            setup: tuple[float, float, float]) -> SectionResult:  # fmt: skip
    rows = []
    verdicts = []
    for (name, same, loop_same, count), query in zip(checks, QUERIES, strict=True):
        one, every, loop = (stats[f"{name}|{k}"] for k in ("one", "all", "loop"))
        slower = every.median / one.median
        faster = loop.median / every.median
        rows.append([
            f"`{query.sql}`", f"{count:,}", one.ms(), every.ms(), loop.ms(),
            f"**{slower:.2f}×** {mark(slower <= ONE_TABLE_LIMIT)}",
            f"**{faster:.1f}×** {mark(faster >= LOOP_SPEEDUP)}",
            stats[f"{name}|cli"].ms(), "✓" if same else "**differs**",
        ])  # fmt: skip
        verdicts.append(Verdict("query", f"{name}: query-all ≤ 1.5× one table",
                                f"{slower:.2f}×", slower <= ONE_TABLE_LIMIT))  # fmt: skip
        verdicts.append(Verdict("query", f"{name}: ≥ 5× faster than the loop",
                                f"{faster:.1f}×", faster >= LOOP_SPEEDUP))  # fmt: skip
        if not (same and loop_same):
            verdicts.append(Verdict("query", f"{name}: same rows as one table",
                                    f"query-all {same}, loop {loop_same}", False))  # fmt: skip
    body = table(["query", "rows out", "one table ms", "query-all ms", "sequential loop ms",
                  "query-all ÷ one table (≤ 1.5×)", "loop ÷ query-all (≥ 5×)",
                  "CLI wall ms", "same rows"], rows)  # fmt: skip
    generate, load_sharded, load_single = setup
    note = (
        f"{users:,} users and {posts:,} posts; sharded: {SUFFIX_COUNT} table numbers, "
        f"{ENTRIES} entries over {DATABASES} PostgreSQL databases on the local server; one "
        "table: the same rows in one database. Times are median (IQR) of "
        f"{repeats} interleaved runs after a warm-up round, each run connecting afresh. Data "
        f"generation took {generate:.1f} s, loading (COPY, then indexes and ANALYZE) "
        f"{load_sharded:.1f} s sharded and {load_single:.1f} s as one table. CLI floor "
        f'(`python -c "import typer, sqlglot, psycopg"`): {stats["floor"].ms()} ms.'
    )
    data = {k: s.as_dict() for k, s in stats.items()} | {"users": users, "posts": posts}
    return SectionResult(f"{note}\n\n{body}", verdicts, data)


def _timed_once(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def one_table_rows(database: str, sql: str) -> Rows:
    with pg.connect(database) as connection:
        return connection.execute(sql).fetchall()


def _loop(placement: Sequence[tuple[str, str]], query: Query) -> Rows:
    """The old approach: every suffix table in turn, one connection per database."""
    connections: dict[str, Any] = {}
    try:
        parts = []
        for database, suffix in placement:
            if database not in connections:
                connections[database] = pg.connect(database)
            cursor = connections[database].execute(query.per_table.format(n=suffix))
            parts.append(cursor.fetchall())
        return query.merge(parts)
    finally:
        for connection in connections.values():
            connection.close()
