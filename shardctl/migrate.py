"""``shardctl migrate``: every physical database gets exactly the tables it owns.

For each physical database (grouped as ``map`` groups them) the desired state is every logical
table × every table number owned by an entry on it, plus the ``master`` tables on master
databases. The database is inspected (SQLAlchemy inspector) and compared with it:

* applied: create missing tables (with their indexes), missing indexes, and missing columns that
  are nullable or have a default;
* reported as drift, never applied: everything destructive or ambiguous — suffix tables the
  database does not own (naming the entry that does, or none when numbered ≥ suffix_count),
  extra columns and indexes, differing types, nullability or primary keys, columns that cannot
  be added (NOT NULL without a default). Nothing is ever dropped or altered.

Transactions and locks, per engine:

* SQLite: ``BEGIN IMMEDIATE`` (waits for other writers up to the lock timeout), then plan, apply,
  commit: all or nothing.
* PostgreSQL: one transaction holding ``pg_advisory_xact_lock`` (released at commit), with
  ``lock_timeout`` set: all or nothing. Steps are sent :data:`STEPS_PER_ROUND_TRIP` at a time.
* MySQL/MariaDB: DDL commits per statement, so the run holds ``GET_LOCK`` and every step is
  idempotent (``CREATE TABLE IF NOT EXISTS``; an index or column that already exists counts as
  done). A run killed half-way leaves a prefix of the steps; the next run plans the rest.

The plan is always made again after the lock is taken, so concurrent runs both succeed and the
second finds nothing to do. Databases are processed in parallel; one that fails is reported
and the others still run. These functions never print: they return result objects.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import ReflectedColumn, ReflectedIndex
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.types import TypeEngine

from shardctl.db import make_engine, sqlalchemy_url
from shardctl.drivers import database_error
from shardctl.dsn import Driver, Dsn
from shardctl.errors import DatabaseError, UsageError
from shardctl.routing import Topology
from shardctl.schema import (
    CURRENT_TIMESTAMP,
    ColumnDef,
    ColumnType,
    Schema,
    TableDef,
    build_table,
    check_against,
    index_name,
    raise_errors,
)

Mode = Literal["apply", "dry-run", "check"]
Action = Literal["create table", "create index", "add column"]
LOCK_TIMEOUT = 60.0  # seconds a run waits for another migrate (or a DDL lock) on one database
MAX_PARALLEL_DATABASES = 16  # databases worked on at once (one connection each)
STEPS_PER_ROUND_TRIP = 16  # PostgreSQL steps per round trip (one statement each: 1.6× the CPU)
# PostgreSQL advisory lock key (per database) held by every migrate; see mysql_lock_name
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"shardctl migrate").digest()[:8], "big", signed=True
)
_MYSQL_ALREADY_DONE = {1060, 1061}  # duplicate column name, duplicate key name
_MISSING_CODE: dict[Action, str] = {
    "create table": "missing-table",
    "create index": "missing-index",
    "add column": "missing-column",
}
_SQLITE_HEADER = b"SQLite format 3\x00"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesiredTable:
    """A physical table a database must hold: ``name`` (``users_007``), its definition, and the
    entry that owns it (the master database's id for master tables)."""

    name: str
    definition: TableDef
    entry_id: str


@dataclass(frozen=True)
class Target:
    """One physical database and every table it must hold (``sharded``: it holds suffix tables,
    so unowned suffix tables on it are reported)."""

    index: int
    label: str
    driver: Driver
    writer: Dsn = field(repr=False)
    entry_ids: tuple[str, ...]
    tables: tuple[DesiredTable, ...] = field(repr=False)
    sharded: bool


@dataclass(frozen=True)
class Step:
    """One change: create a table (with its indexes), create an index, or add a column.
    ``name`` is the table, index or column created; ``logical`` the table's definition."""

    action: Action
    table: str
    name: str
    entry_id: str
    logical: str
    elements: tuple[ExecutableDDLElement, ...] = field(repr=False, compare=False)

    def sql(self, dialect: Dialect) -> list[str]:
        """The statements, compiled for ``dialect`` without a connection."""
        return [str(element.compile(dialect=dialect)).strip() for element in self.elements]

    def as_finding(self) -> Finding:
        what = {"create table": "table", "create index": "index", "add column": "column"}
        subject = self.table if self.action == "create table" else f"{self.table}.{self.name}"
        return Finding(
            _MISSING_CODE[self.action],
            self.table,
            self.entry_id,
            f"{what[self.action]} {subject} is missing (owned by entry {self.entry_id}).",
        )


@dataclass(frozen=True)
class Finding:
    """Drift: ``code`` is stable (docs/Sharding.md); ``entry_id`` is the entry that owns the
    table's number, ``None`` when no entry does."""

    code: str
    table: str
    entry_id: str | None
    message: str


@dataclass
class DatabasePlan:
    """What one database needs (``steps``), what is wrong but never applied (``drift``), and
    the desired tables that are complete (``up_to_date``)."""

    steps: list[Step] = field(default_factory=list)
    drift: list[Finding] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """Everything ``--check`` reports: missing objects first, then drift."""
        return [step.as_finding() for step in self.steps] + self.drift


@dataclass
class DatabaseOutcome:
    """One database's result. ``plan`` is the one made under the lock when applying (``None``
    when the database failed before it could be planned); ``applied`` the steps that took
    effect (none after a rollback)."""

    target: Target
    mode: Mode
    plan: DatabasePlan | None = None
    applied: list[Step] = field(default_factory=list)
    error: DatabaseError | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.error is not None or self.plan is None:
            return "failed"
        if self.mode == "check":
            return "drift" if self.plan.findings else "in sync"
        if self.mode == "dry-run":
            return "changes pending" if self.plan.steps else "up to date"
        return "migrated" if self.applied else "up to date"


@dataclass
class MigrateResult:
    mode: Mode
    databases: list[DatabaseOutcome]
    warnings: list[str]
    seconds: float

    @property
    def failed(self) -> list[DatabaseOutcome]:
        return [d for d in self.databases if d.status == "failed"]

    def applied(self, action: Action) -> int:
        return sum(step.action == action for d in self.databases for step in d.applied)

    @property
    def pending(self) -> int:
        """Steps planned but not applied (dry-run, check, or a database that failed)."""
        return sum(len(d.plan.steps) - len(d.applied) for d in self.databases if d.plan)

    @property
    def drift(self) -> int:
        return sum(len(d.plan.drift) for d in self.databases if d.plan)

    @property
    def up_to_date(self) -> int:
        return sum(len(d.plan.up_to_date) for d in self.databases if d.plan)

    @property
    def ok(self) -> bool:
        """No database failed; with ``check``, nothing is missing and nothing drifted."""
        if self.failed:
            return False
        return self.mode != "check" or not (self.pending or self.drift)


@dataclass(frozen=True)
class SqlScript:
    target: Target
    dialect: str
    statements: tuple[str, ...]


# --- commands --------------------------------------------------------------------------------


def apply(
    topology: Topology,
    schema: Schema,
    *,
    databases: Sequence[str] = (),
    on_database: Callable[[DatabaseOutcome], None] | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> MigrateResult:
    """Bring every selected database to the desired state (see the module docstring).

    ``databases`` selects by entry id or part of the label (:func:`select_targets`);
    ``on_database`` is called (in the caller's thread) as each database finishes."""
    return _run(topology, schema, databases, "apply", on_database, lock_timeout)


def plan(
    topology: Topology,
    schema: Schema,
    *,
    databases: Sequence[str] = (),
    on_database: Callable[[DatabaseOutcome], None] | None = None,
) -> MigrateResult:
    """What :func:`apply` would do, changing nothing (a missing SQLite file is not created)."""
    return _run(topology, schema, databases, "dry-run", on_database, LOCK_TIMEOUT)


def check(
    topology: Topology,
    schema: Schema,
    *,
    databases: Sequence[str] = (),
    on_database: Callable[[DatabaseOutcome], None] | None = None,
) -> MigrateResult:
    """Drift detection: like :func:`plan`, but ``ok`` is false when anything is missing or has
    drifted. ``warnings`` also names SQLite files in the data directories that hold suffix
    tables but belong to no entry."""
    return _run(topology, schema, databases, "check", on_database, LOCK_TIMEOUT)


def offline_sql(
    topology: Topology, schema: Schema, *, databases: Sequence[str] = ()
) -> list[SqlScript]:
    """The DDL that creates each selected database from empty, compiled for its own dialect
    without connecting (like alembic's offline mode). The text is what a SQL client runs:
    ``%`` is not doubled as it is for drivers that take ``%s`` parameters."""
    scripts = []
    for target in select_targets(topology, schema, databases):
        dialect_class: Any = sqlalchemy_url(target.writer).get_dialect()  # DefaultDialect's
        dialect: Dialect = dialect_class(paramstyle="named")
        steps = _plan(topology, target, _Existing(), dialect).steps
        statements = tuple(sql for step in steps for sql in step.sql(dialect))
        scripts.append(SqlScript(target, dialect.name, statements))
    return scripts


# --- targets ---------------------------------------------------------------------------------


def targets(topology: Topology, schema: Schema) -> list[Target]:
    """Every physical database with its desired tables: the sharding databases in ``map``
    order, then master databases (merged into a sharding database with the same identity).
    Master databases are left out when the schema defines no master tables. Raises
    :class:`~shardctl.errors.ConfigError` when the schema does not fit the topology."""
    raise_errors(check_against(schema, topology), schema.file)
    result: list[Target] = []
    by_identity: dict[str, int] = {}
    for db in topology.databases:
        tables = tuple(
            DesiredTable(topology.suffix_table(name, n), definition, entry.id)
            for entry in db.entries
            for name in topology.table_names
            if (definition := schema.sharded(name)) is not None
            for n in range(entry.table_range[0], entry.table_range[1] + 1)
        )
        by_identity[db.identity] = len(result)
        entry_ids = tuple(e.id for e in db.entries)
        result.append(Target(len(result), db.label, db.driver, db.writer, entry_ids, tables, True))
    masters: set[str] = set()
    for database in topology.master if schema.master else ():
        identity = database.writer.identity
        tables = tuple(DesiredTable(d.name, d, database.id) for d in schema.master)
        if identity in masters:
            tables = ()  # a second master entry for the same database: the tables are there
        masters.add(identity)
        if identity in by_identity:
            known = result[by_identity[identity]]
            result[known.index] = replace(
                known, entry_ids=(*known.entry_ids, database.id), tables=known.tables + tables
            )
            continue
        by_identity[identity] = len(result)
        result.append(
            Target(
                len(result),
                database.writer.redacted(),
                database.driver,
                database.writer,
                (database.id,),
                tables,
                False,
            )
        )
    return result


def select_targets(topology: Topology, schema: Schema, names: Sequence[str] = ()) -> list[Target]:
    """The databases ``names`` select (all when empty), in topology order. A name selects the
    database of the entry (or master database) with that id; otherwise every database whose
    label (resolved SQLite path, or redacted DSN) contains it, ignoring case."""
    every = targets(topology, schema)
    if not names:
        return every
    chosen: set[int] = set()
    for name in names:
        matches = [t.index for t in every if name in t.entry_ids] or [
            t.index for t in every if name.lower() in t.label.lower()
        ]
        if not matches:
            ids = ", ".join(i for t in every for i in t.entry_ids)
            raise UsageError(
                f"--database '{name}' matches no physical database. Give an entry id ({ids}) "
                "or part of a database's path or DSN as `shardctl map --by database` shows it."
            )
        chosen.update(matches)
    return [t for t in every if t.index in chosen]


# --- running ---------------------------------------------------------------------------------


def _run(
    topology: Topology,
    schema: Schema,
    names: Sequence[str],
    mode: Mode,
    on_database: Callable[[DatabaseOutcome], None] | None,
    lock_timeout: float,
) -> MigrateResult:
    started = time.perf_counter()
    chosen = select_targets(topology, schema, names)
    warnings = [
        f"{p.file}:{p.line}: {p.message}" for p in check_against(schema, topology) if not p.is_error
    ]
    outcomes: dict[int, DatabaseOutcome] = {}
    workers = max(1, min(MAX_PARALLEL_DATABASES, len(chosen)))
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate") as pool:
        futures = {
            pool.submit(_run_target, topology, target, mode, lock_timeout, stop): target
            for target in chosen
        }
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.target.index] = outcome
                if on_database is not None:
                    on_database(outcome)
        except BaseException:  # Ctrl-C: running databases stop before their next batch of
            stop.set()  # steps and roll back (SQLite/PostgreSQL) or keep the steps done (MySQL)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    warnings += stray_sqlite_files(topology, chosen)
    return MigrateResult(
        mode,
        [outcomes[t.index] for t in chosen],
        warnings,
        time.perf_counter() - started,
    )


class _Stopped(Exception):
    """Raised in a worker between two steps once the run is interrupted."""


def _run_target(
    topology: Topology, target: Target, mode: Mode, lock_timeout: float, stop: threading.Event
) -> DatabaseOutcome:
    started = time.perf_counter()
    outcome = DatabaseOutcome(target, mode)
    executed: list[Step] = []
    try:
        if target.driver == "sqlite3":
            path = Path(target.writer.database)
            if mode != "apply" and not path.exists():  # never create a file just to look
                dialect = sqlalchemy_url(target.writer).get_dialect()()
                outcome.plan = _plan(topology, target, _Existing(), dialect)
                return outcome
            if mode == "apply":
                _prepare_sqlite_file(path)
        engine = _engine(target, mode, lock_timeout)
        try:
            with _session(engine, target, mode, lock_timeout) as connection:
                outcome.plan = _plan(topology, target, _inspect(connection, target), engine.dialect)
                if mode == "apply":
                    for batch in _batches(outcome.plan.steps, target.driver):
                        if stop.is_set():
                            raise _Stopped
                        _execute(connection, batch, target.driver)
                        executed += batch
                    if stop.is_set():  # interrupted during the last batch: no commit
                        raise _Stopped
            outcome.applied = executed
        finally:
            engine.dispose()
    except DatabaseError as error:
        outcome.error = error
    except (SQLAlchemyError, OSError) as exc:
        outcome.error = _lock_timeout_error(exc, target, lock_timeout) or database_error(
            exc, target.label, topology.secrets
        )
    finally:
        if outcome.error is not None and target.driver == "mysql":
            outcome.applied = executed  # MySQL DDL is not rolled back
        outcome.seconds = time.perf_counter() - started
    return outcome


def _prepare_sqlite_file(path: Path) -> None:
    """Create the data directory; an unusable path is an error naming it (SQLite's own message
    is only "unable to open database file")."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"SQLite database {path}: cannot create its directory {path.parent} "
            f"({exc.strerror or exc}). Create it, or point the entry's dsn at a writable place."
        ) from None
    if path.is_dir():
        raise DatabaseError(f"SQLite database {path} is a directory, not a file. Fix the dsn.")
    blocker = path if path.exists() else path.parent
    if not os.access(blocker, os.W_OK):
        raise DatabaseError(
            f"SQLite database {path}: {blocker} is not writable by this user. Fix its "
            "permissions, or point the entry's dsn at a writable place."
        )


def _engine(target: Target, mode: Mode, lock_timeout: float) -> Engine:
    engine = make_engine(target.writer)
    if target.driver == "sqlite3" and mode == "apply":
        # pysqlite would start transactions only before DML; take control so DDL is
        # transactional and the write lock is taken up front (BEGIN IMMEDIATE).
        @event.listens_for(engine, "connect")
        def _explicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute(f"PRAGMA busy_timeout = {round(lock_timeout * 1000)}")

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _session(
    engine: Engine, target: Target, mode: Mode, lock_timeout: float
) -> Iterator[Connection]:
    """A connection to plan (and apply) on; when applying, holding the migrate lock and, on
    SQLite/PostgreSQL, inside the one transaction that commits every step."""
    if mode != "apply":
        with engine.connect() as connection:
            yield connection
    elif target.driver == "mysql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            # whole seconds, at least 1 (MySQL's minimum); GET_LOCK takes fractions, 0 = no wait
            connection.exec_driver_sql(f"SET lock_wait_timeout = {max(1, math.ceil(lock_timeout))}")
            name = mysql_lock_name(target.writer.database)
            got = connection.scalar(sa.select(sa.func.get_lock(name, lock_timeout)))
            if got != 1:
                raise _lock_wait_error(target, lock_timeout)
            try:
                yield connection
            finally:
                with suppress(SQLAlchemyError):  # a dead session has released it already
                    connection.scalar(sa.select(sa.func.release_lock(name)))
    else:
        with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE (see _engine)
            if target.driver == "postgres":
                # milliseconds, at least 1: PostgreSQL reads 0 as "wait forever"
                timeout_ms = max(1, round(lock_timeout * 1000))
                connection.exec_driver_sql(  # one round trip
                    f"SET LOCAL lock_timeout = {timeout_ms}; "
                    f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"
                )
            yield connection


def mysql_lock_name(database: str) -> str:
    """The ``GET_LOCK`` name a migrate holds on a MySQL database (server-wide namespace, at most
    64 characters, so the database name is hashed)."""
    return "shardctl.migrate." + hashlib.sha1(database.encode()).hexdigest()


def _batches(steps: Sequence[Step], driver: Driver) -> Iterator[Sequence[Step]]:
    """The steps in the groups :func:`_execute` sends at once: on PostgreSQL up to
    :data:`STEPS_PER_ROUND_TRIP`; elsewhere one, as MySQL needs each statement's error code (an
    index that exists is done) and SQLite's driver runs one statement per call."""
    size = STEPS_PER_ROUND_TRIP if driver == "postgres" else 1
    for start in range(0, len(steps), size):
        yield steps[start : start + size]


def _execute(connection: Connection, steps: Sequence[Step], driver: Driver) -> None:
    """Run the statements of ``steps``. PostgreSQL gets them in one round trip (its simple query
    protocol runs several statements in order; the open transaction still decides for all)."""
    if driver == "postgres":
        connection.exec_driver_sql(
            ";\n".join(sql for step in steps for sql in step.sql(connection.dialect))
        )
        return
    for element in (element for step in steps for element in step.elements):
        try:
            connection.execute(element)
        except DBAPIError as exc:
            code = getattr(exc.orig, "args", (None,))[0]
            if driver == "mysql" and code in _MYSQL_ALREADY_DONE:
                continue  # made by a concurrent client outside shardctl: the step is done
            raise


def _lock_wait_error(target: Target, seconds: float) -> DatabaseError:
    return DatabaseError(
        f"Database {target.label}: waited {seconds:g} s for a lock held by another migrate "
        "(or a long transaction on a table being changed). Nothing was changed here; run "
        "again when it has finished, or raise --lock-timeout."
    )


def _lock_timeout_error(exc: BaseException, target: Target, seconds: float) -> DatabaseError | None:
    orig = getattr(exc, "orig", None)
    timed_out = (
        getattr(orig, "sqlstate", None) == "55P03"  # PostgreSQL lock_not_available
        or (target.driver == "mysql" and getattr(orig, "args", (None,))[0] == 1205)
        or (target.driver == "sqlite3" and "database is locked" in str(orig))
    )
    return _lock_wait_error(target, seconds) if timed_out else None


# --- inspecting and planning -----------------------------------------------------------------


@dataclass
class _Existing:
    """What a database holds (only the desired tables are inspected in detail; ``views`` only
    when a desired table is missing, the one case where a view can be in the way)."""

    tables: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    columns: dict[str, list[ReflectedColumn]] = field(default_factory=dict)
    indexes: dict[str, list[ReflectedIndex]] = field(default_factory=dict)
    primary_keys: dict[str, list[str]] = field(default_factory=dict)


def _inspect(connection: Connection, target: Target) -> _Existing:
    inspector = sa.inspect(connection)
    existing = _Existing(set(inspector.get_table_names()))
    present = [t.name for t in target.tables if t.name in existing.tables]
    if len(present) < len(target.tables):  # a missing table's name may be taken by a view
        existing.views = set(inspector.get_view_names())
    if present:
        # a database holding only wanted tables (the usual shard) is reflected whole: the same
        # result, without PostgreSQL's catalog queries each taking every name as a parameter
        names = None if len(present) == len(existing.tables) else present
        columns = inspector.get_multi_columns(filter_names=names)
        indexes = inspector.get_multi_indexes(filter_names=names)
        keys = inspector.get_multi_pk_constraint(filter_names=names)
        existing.columns = {name: value for (_, name), value in columns.items()}
        existing.indexes = {name: value for (_, name), value in indexes.items()}
        existing.primary_keys = {
            name: list(value["constrained_columns"]) for (_, name), value in keys.items()
        }
    return existing


def _plan(
    topology: Topology, target: Target, existing: _Existing, dialect: Dialect
) -> DatabasePlan:
    result = DatabasePlan()
    metadata = sa.MetaData()
    for desired in target.tables:
        # building a Table costs ~1.6 ms: only for tables that get a change
        table = functools.cache(
            functools.partial(
                build_table, metadata, desired.definition, desired.name, target.driver
            )
        )
        before = (len(result.steps), len(result.drift))
        if desired.name in existing.views:
            result.drift.append(
                Finding(
                    "view-in-the-way",
                    desired.name,
                    desired.entry_id,
                    f"{desired.name} is a view, not a table (owned by entry {desired.entry_id}); "
                    "drop or rename the view by hand.",
                )
            )
        elif desired.name not in existing.tables:
            result.steps.append(_create_table(desired, table(), target.driver))
        else:
            _compare_table(desired, table, existing, target.driver, result)
        if (len(result.steps), len(result.drift)) == before:
            result.up_to_date.append(desired.name)
    if target.sharded:
        result.drift.extend(_unowned_tables(topology, target, existing))
    return result


def _ordered_indexes(table: sa.Table, definition: TableDef) -> list[sa.Index]:
    by_name = {str(index.name): index for index in table.indexes}
    return [by_name[index_name(table.name, i.name)] for i in definition.indexes]


def _create_table(desired: DesiredTable, table: sa.Table, driver: Driver) -> Step:
    elements: list[ExecutableDDLElement] = [CreateTable(table, if_not_exists=driver == "mysql")]
    elements += [CreateIndex(i) for i in _ordered_indexes(table, desired.definition)]
    return _step("create table", desired, desired.name, *elements)


def _step(
    action: Action, desired: DesiredTable, name: str, *elements: ExecutableDDLElement
) -> Step:
    return Step(action, desired.name, name, desired.entry_id, desired.definition.name, elements)


def _compare_table(
    desired: DesiredTable,
    table: Callable[[], sa.Table],
    existing: _Existing,
    driver: Driver,
    plan: DatabasePlan,
) -> None:
    name, entry = desired.name, desired.entry_id

    def drift(code: str, message: str) -> None:
        plan.drift.append(Finding(code, name, entry, f"{message} (owned by entry {entry})."))

    found = {c["name"]: c for c in existing.columns.get(name, [])}
    for column in desired.definition.columns:
        if column.name not in found:
            reason = _not_addable(column, driver)
            if reason is None:
                add = AddColumn(table().c[column.name])
                plan.steps.append(_step("add column", desired, column.name, add))
            else:
                drift("missing-column", f"{name}.{column.name} is missing and {reason}")
            continue
        difference = _column_difference(column, found[column.name], driver)
        if difference:
            drift("column-differs", f"{name}.{column.name} {difference}")
    wanted = {c.name for c in desired.definition.columns}
    for extra in sorted(found.keys() - wanted):
        drift("extra-column", f"{name}.{extra} is not in the schema; it is left alone")
    key = [c.name for c in desired.definition.columns if c.primary_key]
    actual_key = existing.primary_keys.get(name, [])
    if actual_key != key:
        drift(
            "primary-key-differs",
            f"{name} has primary key ({', '.join(actual_key) or 'none'}), the schema says "
            f"({', '.join(key)})",
        )
    _compare_indexes(desired, table, existing.indexes.get(name, []), plan, drift)


def _compare_indexes(
    desired: DesiredTable,
    table: Callable[[], sa.Table],
    found: list[ReflectedIndex],
    plan: DatabasePlan,
    drift: Callable[[str, str], None],
) -> None:
    def shape(columns: Sequence[str | None], unique: bool) -> str:
        return f"{'unique ' if unique else ''}({', '.join(c or '<expression>' for c in columns)})"

    by_name = {i["name"]: i for i in found}
    matched: set[str | None] = set()
    for index in desired.definition.indexes:
        name = index_name(desired.name, index.name)
        want = shape(index.columns, index.unique)
        same = by_name.get(name)
        if same is not None:
            matched.add(same["name"])
            have = shape(same["column_names"], bool(same["unique"]))
            if have != want:
                drift("index-differs", f"index {name} is {have}, the schema says {want}")
            continue
        twin = next(
            (
                i
                for i in found
                if i["name"] not in matched and shape(i["column_names"], bool(i["unique"])) == want
            ),
            None,
        )
        if twin is not None:
            matched.add(twin["name"])
            drift("index-renamed", f"index {name} {want} exists as {twin['name']}")
        else:
            create = CreateIndex(next(i for i in table().indexes if i.name == name))
            plan.steps.append(_step("create index", desired, name, create))
    for extra in found:
        if extra["name"] not in matched:
            have = shape(extra["column_names"], bool(extra["unique"]))
            drift("extra-index", f"index {extra['name']} {have} is not in the schema; left alone")


def _not_addable(column: ColumnDef, driver: Driver) -> str | None:
    """Why a missing column cannot be added automatically, or ``None`` when it can."""
    if column.primary_key:
        return "part of the primary key; rebuild the table by hand"
    if not column.nullable and column.default is None:
        return (
            "NOT NULL without a default, which existing rows cannot satisfy; add it by hand "
            "with a value for them, or give it a default in the schema"
        )
    if driver == "sqlite3" and column.default == CURRENT_TIMESTAMP:
        return "SQLite cannot add a column whose default is CURRENT_TIMESTAMP; add it by hand"
    return None


def _column_difference(column: ColumnDef, found: ReflectedColumn, driver: Driver) -> str | None:
    actual = reflected_type(found["type"])
    same_type = actual == column.type or (
        driver == "mysql" and column.type.name == "json" and actual.name == "text"
    )  # MariaDB stores JSON as LONGTEXT with a check
    problems = []
    if not same_type:
        problems.append(f"has type {actual}, the schema says {column.type}")
    if bool(found["nullable"]) != column.nullable:
        problems.append(
            "allows NULL, the schema says NOT NULL"
            if found["nullable"]
            else "is NOT NULL, the schema allows NULL"
        )
    return " and ".join(problems) or None


def reflected_type(found: TypeEngine[Any]) -> ColumnType:
    """The portable type a reflected column type corresponds to (unknown types keep their
    SQLAlchemy class name, lower-cased, so they differ from every portable type)."""
    # MySQL BOOL is TINYINT(1); a MySQL type implies its dialect module is loaded, so SQLite and
    # PostgreSQL runs need not import it (~40 ms)
    mysql = sys.modules.get("sqlalchemy.dialects.mysql")
    if isinstance(found, sa.Boolean) or (mysql is not None and isinstance(found, mysql.TINYINT)):
        return ColumnType("boolean")
    for sa_type, name in (
        (sa.BigInteger, "bigint"),
        (sa.SmallInteger, "smallint"),
        (sa.Integer, "integer"),
        (sa.JSON, "json"),
        (sa.DateTime, "timestamp"),
        (sa.Date, "date"),
        (sa.Float, "double"),
        (sa.LargeBinary, "binary"),
        (sa.types._Binary, "binary"),
    ):
        if isinstance(found, sa_type):
            return ColumnType(name)
    if isinstance(found, sa.Numeric):
        return ColumnType("numeric", found.precision, found.scale)
    if isinstance(found, sa.String):
        length = found.length
        if isinstance(found, sa.Text) or length is None:
            return ColumnType("text")
        return ColumnType("string", length)
    return ColumnType(type(found).__name__.lower())


def _unowned_tables(topology: Topology, target: Target, existing: _Existing) -> list[Finding]:
    """Suffix tables on this database that it does not own: another entry's (left over after a
    move) or numbered ≥ suffix_count (no entry)."""
    desired = {t.name for t in target.tables}
    pattern = _suffix_pattern(topology)
    findings = []
    for name in sorted(existing.tables - desired):
        match = pattern.fullmatch(name)
        if match is None:
            continue  # not a suffix table: the application's own business
        logical, number = match.group(1), int(match.group(2))
        if number < topology.suffix_count and name == topology.suffix_table(logical, number):
            owner = topology.entry_for(number)
            place = topology.database_of(owner).label
            findings.append(
                Finding(
                    "stray-table",
                    name,
                    owner.id,
                    f"{name} belongs to entry {owner.id} on {place}, not to this database (left "
                    "over after the entry moved?). Not dropped: check its rows, then drop it by "
                    "hand.",
                )
            )
        else:
            reason = (
                f"table number {number} is ≥ suffix_count {topology.suffix_count}"
                if number >= topology.suffix_count
                else f"the suffix is not {topology.width} digits wide"
            )
            findings.append(
                Finding(
                    "unowned-table",
                    name,
                    None,
                    f"{name}: {reason}, so no entry owns it and nothing routes to it. Not "
                    "dropped: check its rows, then drop it by hand.",
                )
            )
    return findings


def _suffix_pattern(topology: Topology) -> re.Pattern[str]:
    names = "|".join(re.escape(n) for n in sorted(topology.table_names, key=len, reverse=True))
    return re.compile(rf"({names})_(\d+)")


def stray_sqlite_files(topology: Topology, chosen: Sequence[Target]) -> list[str]:
    """SQLite files in the data directories of ``chosen`` that hold suffix tables but are no
    entry's (or master database's) writer or reader, e.g. ``sharding_db_5.db`` left behind."""
    known = {
        dsn.database
        for database in (*topology.entries, *topology.master)
        for dsn in (database.writer, *database.readers)
        if dsn.driver == "sqlite3"
    }
    directories = sorted({Path(t.writer.database).parent for t in chosen if t.driver == "sqlite3"})
    pattern = _suffix_pattern(topology)
    warnings = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if str(path) in known or not path.is_file() or not _looks_like_sqlite(path):
                continue
            suffix_tables = [n for n in _sqlite_tables(path) if pattern.fullmatch(n)]
            if suffix_tables:
                warnings.append(
                    f"{path} looks like a shard database ({len(suffix_tables)} suffix tables, "
                    f"e.g. {suffix_tables[0]}) but no entry uses it: a leftover from an earlier "
                    "layout? migrate never deletes it."
                )
    return warnings


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _sqlite_tables(path: Path) -> list[str]:
    import sqlite3  # only for SQLite layouts: PostgreSQL/MySQL runs need not load it

    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return sorted(row[0] for row in rows)
        finally:
            connection.close()
    except sqlite3.Error:  # locked, corrupt: not ours to judge here
        return []


# --- DDL that SQLAlchemy Core lacks ----------------------------------------------------------


class AddColumn(ExecutableDDLElement):
    """``ALTER TABLE t ADD COLUMN <column>``; the column clause is SQLAlchemy's own per-dialect
    rendering (the same as inside CREATE TABLE)."""

    inherit_cache = False

    def __init__(self, column: sa.Column[Any]) -> None:
        self.column = column


@compiles(AddColumn)
def _compile_add_column(element: AddColumn, compiler: DDLCompiler, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.column.table)
    return f"ALTER TABLE {table} ADD COLUMN {compiler.process(CreateColumn(element.column), **kw)}"
