"""Section 5: ``shardctl migrate`` on PostgreSQL, fresh and no-op, at 32 and 512 suffixes.

2 logical tables (the shipped config/schema.yaml: users with a unique index, posts with two
indexes) × N table numbers, 8 entries over 4 physical databases. Each round recreates the
databases, then times ``shardctl migrate --yes`` twice (fresh, then the no-op re-run). The
baselines are what any tool must pay: the DDL that ``migrate --sql`` prints, executed with
psycopg in one transaction per database, the 4 databases in parallel; reading the catalog
(tables and indexes) of the 4 databases; and importing SQLAlchemy and psycopg.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dataset
import pg
from harness import (
    PYTHON,
    SHARDCTL,
    Context,
    SectionResult,
    Stats,
    Verdict,
    log,
    mark,
    ratio,
    table,
    time_command,
    timed,
)

DATABASES = 4
ENTRIES = 8
FRESH_TARGET = 2.0
NOOP_TARGET = 1.0
SCHEMA = dataset.SCHEMA
ENV = dataset.ENV


def run(ctx: Context) -> SectionResult:
    sizes = [(32, ctx.repeats(5, 2)), (512, ctx.repeats(3, 1))]
    rows = []
    verdicts = []
    data = {}
    for suffix_count, repeats in sizes:
        log(f"migrate: {suffix_count} suffixes × 2 tables over {DATABASES} databases, "
            f"{repeats} rounds")  # fmt: skip
        stats = _measure(ctx.workdir / f"s{suffix_count}", suffix_count, repeats)
        data[str(suffix_count)] = {k: s.as_dict() for k, s in stats.items()}
        floor = stats["import"].median
        for name, label, baseline, limit in (
            ("fresh", "fresh run", "ddl", FRESH_TARGET),
            ("noop", "no-op re-run", "catalog", NOOP_TARGET),
        ):
            wall = stats[name].median
            tables = 2 * suffix_count
            checked = suffix_count == 32  # the targets are set for the reference size
            met = wall < limit
            rows.append([
                f"{tables} tables: `shardctl migrate` {label}", stats[name].ms(),
                f"< {limit:.0f} s" if checked else "", mark(met) if checked else "",
                ratio(wall, stats[baseline].median), ratio(wall, floor + stats[baseline].median),
            ])  # fmt: skip
            if checked:
                verdicts.append(Verdict("migrate", f"{label} ({tables} tables) < {limit:.0f} s",
                                        f"{wall:.2f} s", met))  # fmt: skip
        rows.append([f"{2 * suffix_count} tables: raw DDL via psycopg (parallel, 1 tx per db)",
                     stats["ddl"].ms(), "", "", "1.00×", ""])  # fmt: skip
        rows.append([f"{2 * suffix_count} tables: read the catalog of {DATABASES} databases",
                     stats["catalog"].ms(), "", "", "", ""])  # fmt: skip
    rows.append(["`python -c \"import sqlalchemy, psycopg\"` (last size's rounds)",
                 stats["import"].ms(), "", "", "", ""])  # fmt: skip
    body = table(["what", "wall ms: median (IQR)", "target", "", "× raw baseline",
                  "× (import floor + raw baseline)"], rows)  # fmt: skip
    note = (
        f"{DATABASES} fresh PostgreSQL databases per round, {ENTRIES} entries, schema "
        "`config/schema.yaml` (per table number: users + unique index, posts + 2 indexes). Raw "
        "baseline for a fresh run = executing `shardctl migrate --sql`'s DDL with psycopg; for "
        "the no-op = listing tables and indexes from pg_catalog. Both baselines run in this "
        "process (no interpreter start or imports), so the last column adds the import floor."
    )
    return SectionResult(f"{note}\n\n{body}", verdicts, data)


def _measure(workdir: Path, suffix_count: int, repeats: int) -> dict[str, Stats]:
    samples: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("fresh", "noop", "ddl", "catalog", "import")
    }
    with (
        pg.scratch_databases("migrate", DATABASES) as cli_dbs,
        pg.scratch_databases("ddl", DATABASES) as raw_dbs,
    ):
        cli_dir, raw_dir = workdir / "cli", workdir / "raw"
        for config_dir, names in ((cli_dir, cli_dbs), (raw_dir, raw_dbs)):
            pg.write_config(config_dir, ENV, names, suffix_count=suffix_count, entries=ENTRIES)
        ddl = dataset.offline_ddl(raw_dir, raw_dbs)
        migrate = [SHARDCTL, "migrate", "--yes", "--config-dir", str(cli_dir), "-e", ENV,
                   "--schema", str(SCHEMA), "-f", "json"]  # fmt: skip
        for _ in range(repeats + 1):  # the first round warms caches and is not counted
            pg.create_databases(cli_dbs + raw_dbs)
            fresh = time_command(migrate)
            _check_tables(cli_dbs, 2 * suffix_count)
            noop = time_command(migrate)
            raw = timed(lambda: _parallel(_execute, ddl.items()))()
            _check_tables(raw_dbs, 2 * suffix_count)
            catalog = timed(lambda: _parallel(_read_catalog, [(n, "") for n in cli_dbs]))()
            floor = time_command([PYTHON, "-c", "import sqlalchemy, psycopg"])
            for key, sample in zip(samples, (fresh, noop, raw, catalog, floor), strict=True):
                samples[key].append(sample)
    return {
        key: Stats(tuple(w for w, _ in values[1:]), tuple(c for _, c in values[1:]))
        for key, values in samples.items()
    }


def _parallel(function, items) -> None:  # type: ignore[no-untyped-def]
    items = list(items)
    with ThreadPoolExecutor(len(items)) as pool:
        list(pool.map(lambda item: function(*item), items))


def _execute(name: str, script: str) -> None:
    with pg.connect(name) as connection, connection.transaction():
        connection.execute(script.encode())


def _read_catalog(name: str, _: str) -> None:
    with pg.connect(name) as connection:
        connection.execute(
            "SELECT c.relname, a.attname, a.atttypid, a.attnotnull FROM pg_class c JOIN "
            "pg_attribute a ON a.attrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0"
        ).fetchall()
        connection.execute("SELECT tablename, indexname, indexdef FROM pg_indexes "
                           "WHERE schemaname = 'public'").fetchall()  # fmt: skip


def _check_tables(names: list[str], expected: int) -> None:
    found = 0
    for name in names:
        with pg.connect(name) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()
            found += row[0] if row else 0
    if found != expected:
        raise RuntimeError(f"expected {expected} tables after migrate, found {found}")
