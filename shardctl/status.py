"""``shardctl status``: live row counts per suffix table, entry and physical database, and skew.

Counts are the engine's fast estimates unless ``exact`` is asked for:

* PostgreSQL: ``pg_stat_user_tables.n_live_tup`` (kept current by the statistics system), or
  ``pg_class.reltuples`` (last ANALYZE/VACUUM) when the former is zero;
* MySQL/MariaDB: ``information_schema.TABLES.TABLE_ROWS`` (exact for MyISAM, an estimate for
  InnoDB);
* SQLite keeps no statistics: always an exact ``COUNT(*)``.

Exact counts are one ``COUNT(*)`` per table, a batch of tables per statement (``UNION ALL``).
Databases are queried in parallel, at most ``jobs`` at a time. A missing suffix table is
reported (``rows`` is ``None``), and so is a database that cannot be reached; neither stops
the others. A missing SQLite file is reported as such, never created. The driver is imported
only when counting starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardctl.dsn import Driver
from shardctl.errors import ShardctlError
from shardctl.routing import PhysicalDatabase, Topology

DEFAULT_JOBS = 8  # databases queried at once (one connection each)
COUNT_BATCH = 100  # tables counted per UNION ALL statement

_ESTIMATES: dict[Driver, str] = {
    "postgres": """
        SELECT c.relname,
               COALESCE(NULLIF(s.n_live_tup, 0), GREATEST(c.reltuples, 0)::bigint)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
    """,
    "mysql": """
        SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'
    """,
}
_TABLES: dict[Driver, str] = {  # the base tables of the default schema
    "sqlite3": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgres": "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
    "mysql": "SELECT TABLE_NAME FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
}


@dataclass(frozen=True)
class TableCount:
    """One suffix table; ``rows`` is ``None`` when the table (or its database) is missing."""

    name: str
    logical: str
    table_number: int
    rows: int | None
    estimated: bool


@dataclass(frozen=True)
class EntryCount:
    entry_id: str
    table_range: tuple[int, int]
    tables: tuple[TableCount, ...]

    @property
    def rows(self) -> int:
        return _total(t.rows for t in self.tables)


@dataclass(frozen=True)
class DatabaseCount:
    """One physical database; ``error`` (password-free) when it could not be queried."""

    index: int
    label: str
    driver: Driver
    entries: tuple[EntryCount, ...]
    estimated: bool
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.entries)

    @property
    def missing(self) -> list[str]:
        """Suffix tables this database should hold but does not (none listed when it failed)."""
        if self.error is not None:
            return []
        return [t.name for e in self.entries for t in e.tables if t.rows is None]


@dataclass(frozen=True)
class Skew:
    """Largest member / mean of one level (``ratio`` is ``None`` when every member is empty)."""

    level: str
    largest: str
    largest_rows: int
    mean: float

    @property
    def ratio(self) -> float | None:
        return self.largest_rows / self.mean if self.mean else None


@dataclass(frozen=True)
class StatusReport:
    env: str
    exact: bool
    databases: tuple[DatabaseCount, ...]

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.databases)

    @property
    def ok(self) -> bool:
        """Every database answered and holds every table it should."""
        return all(d.error is None and not d.missing for d in self.databases)

    @property
    def skews(self) -> list[Skew]:
        """Skew per level: databases, entries, then each logical table's suffix tables.
        Databases that failed are left out."""
        answered = [d for d in self.databases if d.error is None]
        entries = [e for d in answered for e in d.entries]
        tables = [t for e in entries for t in e.tables if t.rows is not None]
        levels = [
            _skew("database", [(d.label, d.rows) for d in answered]),
            _skew("entry", [(e.entry_id, e.rows) for e in entries]),
        ]
        for logical in dict.fromkeys(t.logical for t in tables):
            members = [(t.name, t.rows or 0) for t in tables if t.logical == logical]
            levels.append(_skew(f"table {logical}", members))
        return [s for s in levels if s is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "exact": self.exact,
            "rows": self.rows,
            "ok": self.ok,
            "databases": [
                {
                    "database": d.label,
                    "driver": d.driver,
                    "rows": d.rows,
                    "estimated": d.estimated,
                    "error": d.error,
                    "missing": d.missing,
                    "entries": [
                        {
                            "entry_id": e.entry_id,
                            "table_range": list(e.table_range),
                            "rows": e.rows,
                            "tables": [
                                {
                                    "table": t.name,
                                    "logical": t.logical,
                                    "table_number": t.table_number,
                                    "rows": t.rows,
                                    "estimated": t.estimated,
                                }
                                for t in e.tables
                            ],
                        }
                        for e in d.entries
                    ],
                }
                for d in self.databases
            ],
            "skew": [
                {
                    "level": s.level,
                    "largest": s.largest,
                    "largest_rows": s.largest_rows,
                    "mean": s.mean,
                    "ratio": s.ratio,
                }
                for s in self.skews
            ],
        }


def _total(values: Iterable[int | None]) -> int:
    return sum(v for v in values if v is not None)


def _skew(level: str, members: Sequence[tuple[str, int]]) -> Skew | None:
    if not members:
        return None
    largest, rows = max(members, key=lambda m: m[1])
    return Skew(level, largest, rows, sum(m[1] for m in members) / len(members))


def collect_status(
    topology: Topology, *, exact: bool = False, jobs: int = DEFAULT_JOBS
) -> StatusReport:
    """Count every suffix table of every physical database (see the module docstring)."""
    workers = max(1, min(jobs, len(topology.databases)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="status") as pool:
        counts = list(pool.map(lambda db: _database(topology, db, exact), topology.databases))
    return StatusReport(topology.env, exact, tuple(counts))


def _database(topology: Topology, db: PhysicalDatabase, exact: bool) -> DatabaseCount:
    estimated = not exact and db.driver in _ESTIMATES
    try:
        found = _query(topology, db, exact=not estimated)
        error = None
    except ShardctlError as exc:
        found, error = {}, str(exc)
    entries = tuple(
        EntryCount(
            entry.id,
            entry.table_range,
            tuple(
                TableCount(name, logical, number, found.get(name), estimated)
                for number in range(entry.table_range[0], entry.table_range[1] + 1)
                for logical in topology.table_names
                for name in [topology.suffix_table(logical, number)]
            ),
        )
        for entry in db.entries
    )
    return DatabaseCount(db.index, db.label, db.driver, entries, estimated, error)


def _query(topology: Topology, db: PhysicalDatabase, *, exact: bool) -> dict[str, int]:
    """Row counts of the database's own suffix tables that exist (absent: missing)."""
    from shardctl.drivers import connect, database_error, driver_error, quote_identifier

    if db.driver == "sqlite3" and not Path(db.writer.database).exists():
        raise ShardctlError(f"SQLite file {db.label} does not exist (run `shardctl migrate`).")
    wanted = {
        topology.suffix_table(logical, number)
        for number in db.table_numbers
        for logical in topology.table_names
    }
    connection = None
    try:
        connection = connect(db.writer)
        cursor = connection.cursor()
        if not exact:  # the catalog lists only the tables that exist
            cursor.execute(_ESTIMATES[db.driver])
            return {name: int(n or 0) for name, n in cursor.fetchall() if name in wanted}
        cursor.execute(_TABLES[db.driver])
        present = sorted(wanted & {str(name) for (name,) in cursor.fetchall()})
        backticks = db.driver == "mysql"
        counts: dict[str, int] = {}
        for start in range(0, len(present), COUNT_BATCH):
            cursor.execute(" UNION ALL ".join(
                f"SELECT '{name}', COUNT(*) FROM {quote_identifier(name, backticks=backticks)}"
                for name in present[start : start + COUNT_BATCH]
            ))  # fmt: skip
            counts.update((name, int(n)) for name, n in cursor.fetchall())
        return counts
    except driver_error(db.driver) as exc:
        raise database_error(exc, db.label, topology.secrets) from None
    finally:
        if connection is not None:
            connection.close()
