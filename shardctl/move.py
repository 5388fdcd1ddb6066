"""``shardctl move``: put one entry's suffix tables on another database, safely.

:func:`plan_move` works offline: it rewrites the config text (:mod:`shardctl.config_edit`),
validates the result and resolves the target DSN exactly as the application will read it.
:func:`run_move` then

1. checks the entry's source tables against the schema (``migrate`` check) and creates them on
   the target (``migrate`` apply of the new layout, limited to the target database);
2. per table, compares what the target already holds with the source's first rows (a resumed
   move): any row that differs, or that only one side has, stops the move (:class:`MoveConflict`);
3. copies the remaining rows in primary-key order, in batches (keyset pagination, one committed
   transaction per batch, so an interrupted run resumes from the highest copied key);
4. verifies every table: row count and an order-independent checksum (:mod:`shardctl.checksum`)
   read back from both sides; any mismatch raises :class:`VerificationFailed` and nothing else
   happens;
5. writes the new config atomically (refusing if the file changed meanwhile);
6. with ``drop_source``, drops the entry's suffix tables on the source, only after 4 and 5
   succeeded in this same run and only if their row counts have not changed since 4.

Every session reads and writes timestamps in UTC, so naive values (MySQL ``DATETIME``, SQLite)
and PostgreSQL ``timestamptz`` values keep their instant. Primary keys must be integers: the
copy and the row-by-row comparison walk both sides in key order, which only integers sort the
same way on every engine.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import SQLAlchemyError

from shardctl import migrate
from shardctl.checksum import Checksum, row_digest
from shardctl.config import CONFIG_FILE_NAME, Entry, read_config_text
from shardctl.config_edit import EntryConnection, rewrite_entry, unified_diff, write_atomically
from shardctl.db import make_engine
from shardctl.drivers import database_error
from shardctl.dsn import DRIVERS, Driver, Dsn, DsnError, parse_dsn
from shardctl.errors import ConfigError, DatabaseError, ShardctlError, UsageError
from shardctl.problems import Problem
from shardctl.redact import scrub
from shardctl.routing import Topology
from shardctl.schema import Schema, TableDef, build_table, load_schema, schema_path
from shardctl.validate import load_topology

DEFAULT_BATCH_SIZE = 2000
INTEGER_TYPES = ("bigint", "integer", "smallint")
Key = tuple[int, ...]


class MoveConflict(ShardctlError):
    """The target holds rows of a table that are not an exact copy of the source's."""


class VerificationFailed(ShardctlError):
    """Counts or checksums differ after the copy; ``checks`` holds every table's result."""

    def __init__(self, message: str, checks: list[TableCheck]) -> None:
        super().__init__(message)
        self.checks = checks


class MoveListener(Protocol):
    """Progress callbacks (the CLI draws a bar; tests use them to interfere at known points).

    ``phase`` is ``"compare"`` (rows already on the target), ``"copy"`` or ``"verify"``; its
    ``total`` is the number of source rows the phase will go through."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, table: str, rows: int) -> None: ...


@dataclass(frozen=True)
class MoveTable:
    """One suffix table of the entry: physical name, definition, primary-key columns."""

    name: str
    definition: TableDef

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.definition.columns if c.primary_key)


@dataclass(frozen=True)
class MovePlan:
    """Everything decided before touching a database. ``new_text`` is the config to write."""

    config_dir: Path
    env: str
    config_file: Path
    topology: Topology = field(repr=False)
    new_topology: Topology = field(repr=False)
    entry: Entry
    target: Dsn
    schema: Schema = field(repr=False)
    tables: tuple[MoveTable, ...]
    old_text: str = field(repr=False)
    new_text: str = field(repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def source(self) -> Dsn:
        return self.entry.writer

    @property
    def secrets(self) -> frozenset[str]:
        return self.topology.secrets | self.new_topology.secrets

    @property
    def already_there(self) -> bool:
        """The entry's writer already is the target: nothing to copy."""
        return self.source.identity == self.target.identity

    def diff(self) -> str:
        """The unified diff of the config file, passwords removed."""
        return scrub(
            unified_diff(self.old_text, self.new_text, str(self.config_file)), self.secrets
        )


@dataclass(frozen=True)
class TableCheck:
    """Verification of one table: counts and checksums of both sides, and the first key where
    they differ (``None`` when they agree row for row)."""

    table: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str
    first_difference: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.first_difference is None
            and self.source_rows == self.target_rows
            and self.source_checksum == self.target_checksum
        )


@dataclass
class MoveResult:
    plan: MovePlan
    created: list[str] = field(default_factory=list)  # tables created on the target
    resumed: dict[str, int] = field(default_factory=dict)  # rows already on the target
    copied: dict[str, int] = field(default_factory=dict)  # rows copied by this run
    checks: list[TableCheck] = field(default_factory=list)
    config_written: bool = False
    dropped: list[str] = field(default_factory=list)


# --- planning --------------------------------------------------------------------------------


def plan_move(
    config_dir: Path,
    env: str,
    entry_id: str,
    to: str,
    *,
    driver: str | None = None,
    readers: Sequence[str] = (),
    schema_file: Path | None = None,
    connecting: bool = True,
) -> MovePlan:
    """Decide the move of entry ``entry_id`` to the database ``to`` (a DSN as it should appear in
    the config, ``${VAR}`` references kept; a relative SQLite path resolves like the config's).

    ``readers`` become the entry's ``reader_dsns`` (none: reads go to the writer). With
    ``connecting`` (the default), every ``${VAR}`` must be set. Raises :class:`UsageError` for an
    unknown entry or driver, :class:`ConfigError` when the rewritten config would be invalid."""
    topology, problems = load_topology(config_dir, env, connecting=connecting)
    entry = next((e for e in topology.entries if e.id == entry_id), None)
    if entry is None:
        ids = ", ".join(e.id for e in topology.entries)
        raise UsageError(f"No entry '{entry_id}' in {topology.file} (entries: {ids}).")
    if driver is not None and driver not in DRIVERS:
        raise UsageError(f"Unknown driver '{driver}'; use one of: {', '.join(DRIVERS)}.")
    new_driver = driver or entry.driver
    path, old_text = read_config_text(config_dir, env)
    connection = EntryConnection(new_driver, to, tuple(readers))
    new_text = rewrite_entry(old_text, topology.file, entry.id, connection)
    new_topology = _load_text(config_dir, topology.file, new_text, connecting=connecting)
    target = next(e for e in new_topology.entries if e.id == entry.id).writer
    schema, schema_warnings = load_schema(schema_file or schema_path(config_dir))
    tables = _tables(topology, schema, entry)
    warnings = [f"{p.file}:{p.line}: {p.message}" for p in (*problems, *schema_warnings)]
    if _literal_password(new_driver, to, config_dir):
        warnings.append(
            f"The target DSN holds a literal password; it is written into {topology.file} as "
            "given. Prefer password=${VAR} (quoted on the command line) and export VAR."
        )
    return MovePlan(
        config_dir,
        env,
        path,
        topology,
        new_topology,
        entry,
        target,
        schema,
        tables,
        old_text,
        new_text,
        tuple(warnings),
    )


def _literal_password(driver: Driver, to: str, config_dir: Path) -> bool:
    """Whether ``to`` spells out a password rather than referencing a ``${VAR}``."""
    try:
        raw = parse_dsn(driver, to, sqlite_base=config_dir.resolve().parent)  # not expanded
    except DsnError:
        return False
    return bool(raw.password) and "${" not in (raw.password or "")


def _load_text(config_dir: Path, file: str, text: str, *, connecting: bool) -> Topology:
    """Validate ``text`` as if it were the config: it is written to a scratch environment
    directory inside ``config_dir`` so relative SQLite paths resolve exactly as they will."""
    scratch = Path(tempfile.mkdtemp(dir=config_dir, prefix=".shardctl-move-"))
    try:
        (scratch / CONFIG_FILE_NAME).write_text(text, encoding="utf-8")
        try:
            topology, _ = load_topology(config_dir, scratch.name, connecting=connecting)
        except ConfigError as error:
            problems: list[Problem] = getattr(error, "problems", [])
            invalid = ConfigError(
                "The config after the move would be invalid (problems below, with their line "
                "in the rewritten file); nothing was changed.",
                file=file,
            )
            invalid.problems = [replace(p, file=file) for p in problems]  # type: ignore[attr-defined]
            raise invalid from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return topology


def _tables(topology: Topology, schema: Schema, entry: Entry) -> tuple[MoveTable, ...]:
    """The entry's suffix tables, by table number, then in config order of logical tables."""
    tables: list[TableDef] = []
    for name in topology.table_names:
        definition = schema.sharded(name)
        if definition is None:
            raise ConfigError(
                f"Logical table '{name}' has no definition in {schema.file}; move creates the "
                "target tables from it. Add the definition (see docs/Sharding.md).",
                file=schema.file,
            )
        key = [c for c in definition.columns if c.primary_key]
        if any(c.type.name not in INTEGER_TYPES for c in key):
            raise ConfigError(
                f"Table '{name}' has a primary key ({', '.join(c.name for c in key)}) that is not "
                "made of integer columns; move copies and compares rows in key order, which only "
                "integers sort identically on every engine. Copy this table by other means.",
                file=schema.file,
                line=definition.line,
            )
        tables.append(definition)
    lo, hi = entry.table_range
    return tuple(
        MoveTable(topology.suffix_table(d.name, n), d) for n in range(lo, hi + 1) for d in tables
    )


# --- running ---------------------------------------------------------------------------------


def run_move(
    plan: MovePlan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    drop_source: bool = False,
    listener: MoveListener | None = None,
) -> MoveResult:
    """Copy, verify, switch the config and (optionally) drop the source; see the module
    docstring. Raises :class:`MoveConflict`, :class:`VerificationFailed` or
    :class:`~shardctl.errors.DatabaseError`; the config is only written after a full
    verification, the source only dropped after that."""
    if plan.already_there:
        raise UsageError(f"Entry {plan.entry.id} already uses {plan.target.redacted()}.")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    report = listener or _Silent()
    result = MoveResult(plan)
    result.created = _prepare_target(plan)
    metadata = sa.MetaData()
    tables = [
        (t, build_table(metadata, t.definition, t.name, plan.target.driver)) for t in plan.tables
    ]
    with (
        _Side(plan.source, "source", plan.secrets) as source,
        _Side(plan.target, "target", plan.secrets) as target,
    ):
        pending: dict[str, tuple[Key | None, int]] = {}
        report.phase("compare", sum(target.count(table) for _, table in tables))
        for move_table, table in tables:
            last = target.last_key(table, move_table.key)
            if last is not None:
                _check_prefix(source, target, table, move_table.key, last, batch_size, report)
            result.resumed[table.name] = target.count(table)
            pending[table.name] = (last, source.count(table, move_table.key, after=last))
        report.phase("copy", sum(rows for _, rows in pending.values()))
        for move_table, table in tables:
            last = pending[table.name][0]
            result.copied[table.name] = _copy(
                source, target, table, move_table.key, last, batch_size, report
            )
        report.phase("verify", sum(source.count(table) for _, table in tables))
        result.checks = [
            _compare(source, target, table, move_table.key, batch_size, report)
            for move_table, table in tables
        ]
        failed = [c.table for c in result.checks if not c.ok]
        if failed:
            raise VerificationFailed(
                f"Verification failed for {len(failed)} table(s) ({', '.join(failed)}); the "
                f"config was not changed and nothing was dropped. Were writes to entry "
                f"{plan.entry.id} frozen? Find the cause, then run the move again: it resumes "
                "and verifies again (rows the target holds that differ from the source stop it "
                "with their key).",
                result.checks,
            )
        write_atomically(plan.config_file, plan.new_text, expected_current=plan.old_text)
        result.config_written = True
        if drop_source:
            result.dropped = _drop_source(source, tables, result.checks, plan.entry.id)
    return result


class _Silent:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, table: str, rows: int) -> None:
        pass


def _prepare_target(plan: MovePlan) -> list[str]:
    """Check the source's tables against the schema, then create the target's with migrate
    (the new layout's target database); either side drifting for the entry's tables stops the
    move. Returns the tables created."""
    names = {t.name for t in plan.tables}
    source = migrate.check(plan.topology, plan.schema, databases=[plan.entry.id])
    _refuse_drift(
        plan,
        source,
        names,
        "source",
        complete=True,
        hint="run `shardctl migrate` for the source first, or fix its tables",
    )
    target = migrate.apply(plan.new_topology, plan.schema, databases=[plan.entry.id])
    _refuse_drift(
        plan,
        target,
        names,
        "target",
        complete=False,
        hint="fix or drop those tables on the target (never on the source)",
    )
    return [
        step.table
        for database in target.databases
        for step in database.applied
        if step.action == "create table" and step.table in names
    ]


def _refuse_drift(
    plan: MovePlan,
    outcome: migrate.MigrateResult,
    names: set[str],
    side: str,
    *,
    complete: bool,
    hint: str,
) -> None:
    """Raise the first database error, or the drift found in the entry's tables (``complete``:
    missing tables, columns and indexes count too)."""
    for database in outcome.databases:
        if database.error is not None:
            raise database.error
        assert database.plan is not None  # planned whenever there is no error
        findings = database.plan.findings if complete else database.plan.drift
        relevant = [f.message for f in findings if f.table in names]
        if relevant:
            raise DatabaseError(
                f"The {side} tables of entry {plan.entry.id} do not match the schema "
                f"({database.target.label}): {' '.join(relevant)} Nothing was copied; {hint}."
            )


class _Side:
    """One end of the move: a connection whose every statement commits (no long snapshot, so
    verification sees writes made during the copy) and whose errors name the database."""

    def __init__(self, dsn: Dsn, role: str, secrets: frozenset[str]) -> None:
        self.dsn = dsn
        self.label = f"{role} {dsn.redacted()}"
        self.secrets = secrets
        self.engine: Engine | None = None
        self.connection: Connection | None = None

    def __enter__(self) -> _Side:
        self.engine = make_engine(self.dsn)
        if self.dsn.driver != "sqlite3":
            event.listen(self.engine, "connect", _utc_session)
        with self.errors():
            self.connection = self.engine.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.engine is not None:
            self.engine.dispose()

    @contextmanager
    def errors(self) -> Iterator[None]:
        assert self.engine is not None
        driver_error = self.engine.dialect.loaded_dbapi.Error  # raised by COPY, used directly
        try:
            yield
        except (SQLAlchemyError, driver_error) as exc:
            if self.connection is not None:
                with suppress(SQLAlchemyError):  # a dead connection has nothing to roll back
                    self.connection.rollback()
            raise database_error(exc, self.label, self.secrets) from None

    def execute(self, statement: Any, parameters: Any = None) -> list[Any]:
        assert self.connection is not None
        with self.errors():
            result = self.connection.execute(statement, parameters)
            rows = list(result.all()) if result.returns_rows else []
            self.connection.commit()
        return rows

    def insert(self, table: sa.Table, rows: Sequence[Any]) -> None:
        """Insert and commit one batch: ``COPY … FROM STDIN`` on PostgreSQL (values go through
        the same SQLAlchemy bind processing as an INSERT), a multi-row INSERT elsewhere."""
        if self.dsn.driver != "postgres":
            self.execute(table.insert(), [row._asdict() for row in rows])
            return
        assert self.connection is not None
        dialect = self.connection.dialect
        processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns]
        quote = dialect.identifier_preparer.quote
        columns = ", ".join(quote(c.name) for c in table.columns)
        with self.errors(), self.connection.begin():
            driver_connection = self.connection.connection.driver_connection
            assert driver_connection is not None
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(
                        [v if p is None else p(v) for p, v in zip(processors, row, strict=True)]
                    )

    def count(self, table: sa.Table, key: Sequence[str] = (), after: Key | None = None) -> int:
        statement = sa.select(sa.func.count()).select_from(table)
        if after is not None:
            statement = statement.where(_after(table, key, after))
        return int(self.execute(statement)[0][0])

    def last_key(self, table: sa.Table, key: Sequence[str]) -> Key | None:
        columns = [table.c[k] for k in key]
        rows = self.execute(sa.select(*columns).order_by(*(c.desc() for c in columns)).limit(1))
        return tuple(rows[0]) if rows else None

    def batches(
        self,
        table: sa.Table,
        key: Sequence[str],
        size: int,
        *,
        after: Key | None,
        upto: Key | None = None,
    ) -> Iterator[list[Any]]:
        """Rows in key order, ``size`` at a time, after ``after`` and up to ``upto``."""
        columns = [table.c[k] for k in key]
        positions = [list(table.c.keys()).index(k) for k in key]
        while True:
            statement = sa.select(table).order_by(*columns).limit(size)
            if after is not None:
                statement = statement.where(_after(table, key, after))
            if upto is not None:
                statement = statement.where(sa.not_(_after(table, key, upto)))
            rows = self.execute(statement)
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = tuple(rows[-1][p] for p in positions)


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    is_postgres = type(dbapi_connection).__module__.startswith("psycopg")
    cursor.execute("SET TIME ZONE 'UTC'" if is_postgres else "SET time_zone = '+00:00'")
    cursor.close()
    dbapi_connection.commit()


def _after(table: sa.Table, key: Sequence[str], values: Key) -> sa.ColumnElement[bool]:
    """Rows whose key sorts after ``values``: ``(a, b) > (x, y)`` spelled out, which every
    engine evaluates (and uses the primary-key index for)."""
    columns = [table.c[k] for k in key]
    clauses = [
        sa.and_(
            *(c == v for c, v in zip(columns[:i], values[:i], strict=True)), columns[i] > values[i]
        )
        for i in range(len(columns))
    ]
    return sa.or_(*clauses)


def _copy(
    source: _Side,
    target: _Side,
    table: sa.Table,
    key: Sequence[str],
    last: Key | None,
    size: int,
    report: MoveListener,
) -> int:
    copied = 0
    for rows in source.batches(table, key, size, after=last):
        target.insert(table, rows)
        copied += len(rows)
        report.advance(table.name, len(rows))
    return copied


def _digests(
    side: _Side,
    table: sa.Table,
    key: Sequence[str],
    size: int,
    report: MoveListener | None,
    upto: Key | None = None,
) -> Iterator[tuple[Key, bytes]]:
    positions = [list(table.c.keys()).index(k) for k in key]
    for rows in side.batches(table, key, size, after=None, upto=upto):
        for row in rows:
            yield tuple(row[p] for p in positions), row_digest(row)
        if report is not None:
            report.advance(table.name, len(rows))


def _compare(
    source: _Side,
    target: _Side,
    table: sa.Table,
    key: Sequence[str],
    size: int,
    report: MoveListener,
    upto: Key | None = None,
) -> TableCheck:
    """Walk both sides in key order (up to ``upto``): counts, checksums and the first key
    where they differ."""
    sums = Checksum(), Checksum()
    first: str | None = None
    left = _digests(source, table, key, size, report, upto)
    right = _digests(target, table, key, size, None, upto)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            first = first or f"{_key_text(key, a[0])} is only on the source"
            sums[0].add(a[1])
            a = next(left, None)
        elif a is None or b[0] < a[0]:
            first = first or f"{_key_text(key, b[0])} is only on the target"
            sums[1].add(b[1])
            b = next(right, None)
        else:
            if a[1] != b[1]:
                first = first or f"{_key_text(key, a[0])} differs"
            sums[0].add(a[1])
            sums[1].add(b[1])
            a, b = next(left, None), next(right, None)
    return TableCheck(table.name, sums[0].rows, sums[1].rows, sums[0].hex, sums[1].hex, first)


def _key_text(key: Sequence[str], values: Key) -> str:
    if len(key) == 1:
        return f"{key[0]}={values[0]}"
    return f"({', '.join(key)})=({', '.join(map(str, values))})"


def _check_prefix(
    source: _Side,
    target: _Side,
    table: sa.Table,
    key: Sequence[str],
    last: Key,
    size: int,
    report: MoveListener,
) -> None:
    check = _compare(source, target, table, key, size, report, upto=last)
    if not check.ok:
        raise MoveConflict(
            f"{target.label} already holds rows in {table.name} that are not a copy of the "
            f"source's: {check.first_difference} (comparing keys up to {_key_text(key, last)}; "
            "a resumed move expects the target to hold exactly the source's first rows). The "
            "target may belong to something else, or hold rows of an earlier move that changed "
            f"since. Nothing was copied. Inspect {table.name} on the target; if it is only a "
            "stale copy, drop it there (never on the source) and run the move again."
        )


def _drop_source(
    source: _Side,
    tables: Sequence[tuple[MoveTable, sa.Table]],
    checks: Sequence[TableCheck],
    entry_id: str,
) -> list[str]:
    verified = {c.table: c.source_rows for c in checks}
    changed = [t.name for _, t in tables if source.count(t) != verified[t.name]]
    if changed:
        raise DatabaseError(
            f"The config now points entry {entry_id} at the target, but {', '.join(changed)} "
            f"on the {source.label} changed since verification (writes still arrive there), "
            "so nothing was dropped. Stop those writers, copy the missing rows (run the move with "
            "the old config again), then drop the tables by hand."
        )
    for _, table in tables:
        source.execute(sa.schema.DropTable(table, if_exists=True))
    return [table.name for _, table in tables]
