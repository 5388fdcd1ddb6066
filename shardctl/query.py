"""Run a ``query-all`` plan: one connection per physical database, databases in parallel, rows
streamed into the merge.

Reads run in read-only transactions (PostgreSQL ``SET TRANSACTION READ ONLY``, MySQL ``START
TRANSACTION READ ONLY``, SQLite ``PRAGMA query_only``), on a reader picked by the entry's
``reader_policy`` unless ``writer`` is set. Before the statement runs, every database is checked
(in parallel) for its suffix tables and for how it compares text, so a missing table or an
unreachable server is reported before any row is printed.

``timeout`` bounds each database: PostgreSQL ``statement_timeout``, MariaDB
``max_statement_time`` / MySQL ``max_execution_time``, SQLite a progress handler. Rows travel from
each database's thread in batches through bounded queues; an ordered plan k-way merges one sorted
stream per database, an unordered one passes rows on as they arrive, a grouped one keeps only the
groups. With more databases than :data:`MAX_PARALLEL`, an ordered plan buffers the streams that
wait for a thread.
"""

from __future__ import annotations

import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shardctl.drivers import (
    connect,
    database_error,
    is_mariadb,
    quote_identifier,
    sqlite_file_exists,
)
from shardctl.dsn import Dsn
from shardctl.errors import DatabaseError, ShardctlError, UsageError
from shardctl.merge import GroupMerge, Row, RowMerge, StreamInfo
from shardctl.routing import ReaderSelector, Topology, spans
from shardctl.schema import load_schema
from shardctl.sqlplan import (
    DatabaseStatement,
    QueryPlan,
    QueryRefused,
    default_shard_keys,
    plan_query,
    shard_keys_of,
)

MAX_PARALLEL = 16  # databases worked on at once
BATCH_ROWS = 500  # rows handed from a database's thread to the merge at a time
QUEUE_BATCHES = 16  # batches buffered per database before its thread waits
POLL_SECONDS = 0.1  # how often a waiting thread looks for cancellation
SQLITE_PROGRESS_STEPS = 1000  # virtual-machine steps between SQLite timeout checks
C_COLLATIONS = frozenset({"c", "posix", "c.utf8", "c.utf-8", "ucs_basic", "pg_c_utf8"})
_TIMEOUT_CODES = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time


_SQLITE_TABLES = "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'view') AND name IN "
_POSTGRES_TABLES = (
    "SELECT n, to_regclass(quote_ident(n)) IS NOT NULL, (SELECT EXISTS (SELECT 1 FROM "
    "pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_collation c ON c.oid = "
    "a.attcollation WHERE a.attrelid = ANY(ARRAY(SELECT to_regclass(quote_ident(m)) FROM "
    "unnest(CAST(%(names)s AS text[])) AS m)) AND a.attnum > 0 AND NOT a.attisdropped "
    "AND (t.typtype = 'e' OR t.typname = 'citext' OR (a.attcollation NOT IN (0, 100) "
    "AND lower(c.collname) <> ALL(CAST(%(c_like)s AS text[])))))), "
    "to_jsonb(d) ->> 'datcollate', to_jsonb(d) ->> 'datlocprovider' "
    "FROM unnest(CAST(%(names)s AS text[])) AS n "
    "JOIN pg_database d ON d.datname = current_database()"
)  # the column check runs once for all tables (per table it took ≈ 10 ms on a new
# connection); to_jsonb: datlocprovider only exists from PostgreSQL 15 on
_MYSQL_TABLES = (
    "SELECT TABLE_NAME, (SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
    "DATABASE() AND TABLE_NAME IN %(names)s AND DATA_TYPE IN ('enum', 'set')), "
    "@@div_precision_increment FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN %(names)s"
)  # constants only: a correlated subquery makes MariaDB scan every schema


class MissingTable(DatabaseError):
    """A suffix table the statement needs does not exist on its database."""


@dataclass
class DatabaseStats:
    """What one physical database did: rows it returned (or changed) and wall time."""

    database: str
    table_numbers: tuple[int, ...]
    rows: int = 0
    ms: float = 0.0
    error: str | None = None


@dataclass
class QueryResult:
    """Columns, a row iterator (consume it once), per-database stats and warnings.

    ``stats`` and ``warnings`` are complete once ``rows`` is exhausted. Close the result (or
    use it as a context manager) to release connections when not reading every row."""

    plan: QueryPlan
    columns: list[str]
    rows: Iterator[Row]
    stats: list[DatabaseStats]
    warnings: list[str] = field(default_factory=list)
    closer: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        self.closer()

    def __enter__(self) -> QueryResult:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Connections:
    """Connections kept open between queries, one per DSN, for callers that run many queries
    (tests, benchmarks, notebooks): connecting costs more than a small query. Every query still
    runs in its own (read-only) transaction. Close it when done."""

    def __init__(self) -> None:
        self.idle: dict[tuple[Dsn, str | None], list[Any]] = {}
        self.lock = threading.Lock()

    def take(self, dsn: Dsn) -> Any | None:
        with self.lock:
            idle = self.idle.get((dsn, dsn.password))
            return idle.pop() if idle else None

    def give(self, dsn: Dsn, connection: Any) -> None:
        with self.lock:
            self.idle.setdefault((dsn, dsn.password), []).append(connection)

    def close(self) -> None:
        with self.lock:
            connections = [c for idle in self.idle.values() for c in idle]
            self.idle.clear()
        for connection in connections:
            connection.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def schema_shard_keys(topology: Topology, path: Path, *, required: bool = False) -> dict[str, str]:
    """Routing column per logical table from the schema file at ``path`` (its ``shard_key``s).
    Without the file the naming convention of :func:`~shardctl.sqlplan.default_shard_keys`
    applies, unless ``required`` (a file named by ``--schema``): then it is a UsageError."""
    if not required and not path.exists():
        return default_shard_keys(topology)
    schema, _ = load_schema(path)  # its warnings concern migrate, not reading
    return shard_keys_of(topology, schema)


def query_all(
    topology: Topology,
    sql: str,
    *,
    shard_keys: Mapping[str, str] | None = None,
    writer: bool = False,
    allow_partial: bool = False,
    allow_write: bool = False,
    timeout: float | None = None,
    selector: ReaderSelector | None = None,
    max_parallel: int = MAX_PARALLEL,
    connections: Connections | None = None,
) -> QueryResult:
    """Plan ``sql`` and run it on the physical databases of ``topology`` it needs (all unless
    WHERE pins the routing key). ``shard_keys``: see :func:`schema_shard_keys`."""
    plan = plan_query(sql, topology, allow_write=allow_write, shard_keys=shard_keys)
    return run_plan(
        topology,
        plan,
        writer=writer,
        allow_partial=allow_partial,
        timeout=timeout,
        selector=selector,
        max_parallel=max_parallel,
        connections=connections,
    )


def run_plan(
    topology: Topology,
    plan: QueryPlan,
    *,
    writer: bool = False,
    allow_partial: bool = False,
    timeout: float | None = None,
    selector: ReaderSelector | None = None,
    max_parallel: int = MAX_PARALLEL,
    connections: Connections | None = None,
) -> QueryResult:
    """Run a plan. Raises :class:`~shardctl.errors.DatabaseError` (or :class:`MissingTable`)
    naming the database when one fails, unless ``allow_partial`` (reads only): then the others'
    results come back with a warning naming the failed databases and uncovered table numbers."""
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout}.")
    if plan.is_write and allow_partial:
        raise UsageError("--allow-partial cannot be combined with writes: a write is all or none.")
    selector = selector or ReaderSelector()
    links = []
    for statement in plan.statements:
        database = statement.database
        use_writer = writer or plan.is_write
        dsn = database.writer if use_writer else selector.pick(database.entries[0])
        links.append(_Link(topology, plan, statement, dsn, timeout, connections))
    run = _Run(topology, plan, links, allow_partial, max(1, max_parallel))
    return run.write() if plan.is_write else run.read()


@dataclass
class _Run:
    topology: Topology
    plan: QueryPlan
    links: list[_Link]
    allow_partial: bool
    max_parallel: int
    warnings: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    active: list[_Link] = field(default_factory=list)
    executor: ThreadPoolExecutor | None = None
    columns: list[str] | None = None
    columns_ready: threading.Condition = field(default_factory=threading.Condition)

    # --- phase 1: connect and check, every database in parallel ---------------------------

    def open_all(self) -> None:
        self.executor = ThreadPoolExecutor(
            min(self.max_parallel, len(self.links)), thread_name_prefix="shardctl"
        )
        errors = list(self.executor.map(_Link.open, self.links))
        failed = [(link, error) for link, error in zip(self.links, errors, strict=True) if error]
        self.active = [link for link, error in zip(self.links, errors, strict=True) if not error]
        if failed and (not self.allow_partial or not self.active):
            self.close()
            raise _first_error(failed)
        for link, error in failed:
            self.partial_warning(link, error)

    def partial_warning(self, link: _Link, error: ShardctlError) -> None:
        link.stats.error = error.message
        statement = link.statement
        entries = {self.topology.entry_for(n).id: None for n in statement.table_numbers}
        self.warnings.append(
            f"Partial result: database {statement.database.label} failed ({error.message}); "
            f"table numbers {spans(statement.table_numbers)} (entries "
            f"{', '.join(entries)}) are not covered."
        )

    # --- reads -----------------------------------------------------------------------------

    def read(self) -> QueryResult:
        self.open_all()
        merge = self.plan.merge
        assert isinstance(merge, RowMerge | GroupMerge)
        ordered = isinstance(merge, RowMerge) and bool(merge.order)
        shared: queue.Queue[tuple[Any, ...]] = queue.Queue(QUEUE_BATCHES * len(self.active))
        queues = [shared] * len(self.active)
        if ordered:  # the merge needs every stream at once: streams waiting for a thread buffer
            bound = QUEUE_BATCHES if len(self.active) <= self.max_parallel else 0
            queues = [queue.Queue(bound) for _ in self.active]
        assert self.executor is not None
        for index, (link, out) in enumerate(zip(self.active, queues, strict=True)):
            self.executor.submit(link.produce, index, out, self.cancel, self.announce)
        rows = self.merged(merge, queues, shared)
        columns: Sequence[str] | None = self.plan.columns
        if self.plan.kind == "rows":
            columns = self.wait_for_columns() or columns
        result = QueryResult(
            self.plan,
            list(columns or []),
            rows,
            [link.stats for link in self.links],
            self.warnings,
            self.close,
        )
        weakref.finalize(result, self.close)  # a result dropped unread still stops its threads
        return result

    def announce(self, names: list[str]) -> None:
        """Called by the first database that executes: the column names it reports."""
        with self.columns_ready:
            if self.columns is None:
                merge = self.plan.merge
                hidden = merge.hidden if isinstance(merge, RowMerge) else 0
                self.columns = names[: len(names) - hidden]
            self.columns_ready.notify_all()

    def wait_for_columns(self) -> list[str] | None:
        with self.columns_ready:
            while self.columns is None and not all(link.finished for link in self.active):
                self.columns_ready.wait(POLL_SECONDS)
            return self.columns

    def merged(
        self,
        merge: RowMerge | GroupMerge,
        queues: list[queue.Queue[tuple[Any, ...]]],
        shared: queue.Queue[tuple[Any, ...]],
    ) -> Iterator[Row]:
        infos = [link.info for link in self.active]
        try:
            if isinstance(merge, GroupMerge):
                yield from merge.merge(self.completed(shared), infos)
            elif merge.order:
                streams = [self.stream(index, out) for index, out in enumerate(queues)]
                yield from merge.merge(streams, infos)
            else:
                yield from merge.merge([self.interleaved(shared)], [StreamInfo()])
        finally:
            self.close()

    def stream(self, index: int, messages: queue.Queue[tuple[Any, ...]]) -> Iterator[Row]:
        while True:
            kind, _, payload = messages.get()
            if kind == "rows":
                yield from payload
            elif kind == "end":
                return
            else:
                self.failed(index, payload)
                return

    def interleaved(self, messages: queue.Queue[tuple[Any, ...]]) -> Iterator[Row]:
        remaining = len(self.active)
        while remaining:
            kind, index, payload = messages.get()
            if kind == "rows":
                yield from payload
                continue
            remaining -= 1
            if kind == "error":
                self.failed(index, payload, some_rows_shown=self.active[index].stats.rows > 0)

    def completed(
        self, messages: queue.Queue[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Sequence[Row]]]:
        """Batches of databases that finished; a database that fails contributes nothing."""
        pending: dict[int, list[Sequence[Row]]] = {i: [] for i in range(len(self.active))}
        while pending:
            kind, index, payload = messages.get()
            if kind == "rows":
                pending[index].append(payload)
            elif kind == "end":
                for batch in pending.pop(index):
                    yield index, batch
            else:
                pending.pop(index)
                self.failed(index, payload)

    def failed(self, index: int, error: ShardctlError, *, some_rows_shown: bool = False) -> None:
        link = self.active[index]
        if not self.allow_partial:
            raise error
        self.partial_warning(link, error)
        if some_rows_shown:
            self.warnings[-1] += " Some of its rows were already returned."

    def close(self) -> None:
        """Stop every database: running producers close their own connection when they see
        the cancellation; connections no producer has claimed yet are closed here."""
        self.cancel.set()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None
        for link in self.active:
            link.close_unclaimed()
            link.interrupt()

    # --- writes ----------------------------------------------------------------------------

    def write(self) -> QueryResult:
        self.open_all()
        assert self.executor is not None
        try:
            errors = list(self.executor.map(_Link.execute_writes, self.links))
            failed = [(link, e) for link, e in zip(self.links, errors, strict=True) if e]
            if failed:
                error = _first_error(failed)
                error.message += " Nothing was changed: every database was rolled back."
                raise error
            committed: list[str] = []
            for link in self.links:
                try:
                    link.commit()
                except ShardctlError as error:
                    error.message += (
                        f" Committed before the failure: {', '.join(committed) or 'none'}; the "
                        "remaining databases were rolled back."
                    )
                    raise
                committed.append(link.statement.database.label)
        finally:
            self.executor.shutdown()
            for link in self.links:
                link.close(abort=False)
        rows = [
            (link.stats.database, spans(link.stats.table_numbers), link.stats.rows)
            for link in self.links
        ]
        return QueryResult(
            self.plan,
            ["database", "table_numbers", "rows_affected"],
            iter(rows),
            [link.stats for link in self.links],
            self.warnings,
        )


def _first_error(failed: Sequence[tuple[_Link, ShardctlError]]) -> ShardctlError:
    link, error = failed[0]
    if len(failed) > 1:
        others = ", ".join(other.statement.database.label for other, _ in failed[1:])
        error.message += f" ({len(failed) - 1} more database(s) failed: {others}.)"
    return error


# --- one physical database -----------------------------------------------------------------


class _Link:
    """One connection to one physical database for the duration of a query."""

    def __init__(
        self,
        topology: Topology,
        plan: QueryPlan,
        statement: DatabaseStatement,
        dsn: Dsn,
        timeout: float | None,
        connections: Connections | None,
    ) -> None:
        self.connections = connections
        self.topology = topology
        self.plan = plan
        self.statement = statement
        self.dsn = dsn
        self.timeout = timeout
        self.label = statement.database.label
        self.stats = DatabaseStats(self.label, statement.table_numbers)
        self.info = StreamInfo()
        self.connection: Any = None  # the driver's DB-API connection while this link holds one
        self.started = 0.0
        self.deadline: float | None = None
        self.cancel: threading.Event | None = None
        self.finished = False
        self.claimed = False
        self.lock = threading.Lock()

    def error(self, exc: BaseException) -> ShardctlError:
        if isinstance(exc, ShardctlError):
            return exc
        original = getattr(exc, "orig", None) or exc
        code = getattr(original, "args", (None,))[0] if getattr(original, "args", None) else None
        timed_out = (
            getattr(original, "sqlstate", None) == "57014"
            or code in _TIMEOUT_CODES
            or str(original).strip() == "interrupted"
        )
        if timed_out and self.timeout is not None:
            return DatabaseError(
                f"Database {self.label}: the query did not finish within --timeout "
                f"{self.timeout:g}s and was cancelled.",
                hint="Raise --timeout, or narrow the query with WHERE.",
            )
        return database_error(exc, self.label, self.topology.secrets)

    def elapsed(self) -> None:
        self.stats.ms = round((time.perf_counter() - self.started) * 1000, 1)

    # --- phase 1 -------------------------------------------------------------------------

    def open(self) -> ShardctlError | None:
        """Connect, start a (read-only) transaction, set the timeout, check the tables and learn
        how text compares. Returns the error instead of raising (it runs in a worker thread)."""
        self.started = time.perf_counter()
        if self.timeout is not None:
            self.deadline = self.started + self.timeout
        try:
            reused = self.connections.take(self.dsn) if self.connections else None
            if not sqlite_file_exists(self.dsn):  # connecting would create an empty file
                raise DatabaseError(
                    f"Database {self.label}: the SQLite file does not exist.",
                    hint=f"Run 'shardctl migrate --env {self.topology.env}' to create it.",
                )
            self.connection = reused or connect(self.dsn, timeout=self.timeout)
            self.begin(self.connection, reused=reused is not None)
            self.inspect(self.connection)
        except Exception as exc:  # noqa: BLE001 - every failure is reported per database
            error = self.error(exc)
            self.stats.error = error.message
            self.close(abort=True)
            self.elapsed()
            return error
        return None

    def begin(self, connection: Any, *, reused: bool) -> None:
        """Read-only transaction and timeout (a reused connection gets its session reset)."""
        dialect = self.plan.dialect
        read_only = not self.plan.is_write
        milliseconds = 0 if self.timeout is None else max(1, round(self.timeout * 1000))
        if dialect == "sqlite":
            connection.set_progress_handler(self.sqlite_progress, SQLITE_PROGRESS_STEPS)
            if read_only or reused:
                _run(connection, f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
        elif dialect == "postgres":
            settings = ["SET TRANSACTION READ ONLY"] if read_only else []
            if milliseconds:
                settings.append(f"SET LOCAL statement_timeout = {milliseconds}")
            if settings:
                _run(connection, "; ".join(settings))
        else:
            if milliseconds or reused:
                _run(
                    connection,
                    f"SET SESSION max_statement_time = {milliseconds / 1000:.3f}"
                    if is_mariadb(connection)
                    else f"SET SESSION max_execution_time = {milliseconds}",
                )
            _run(connection, "START TRANSACTION READ ONLY" if read_only else "START TRANSACTION")

    def sqlite_progress(self) -> int:
        """Non-zero aborts the running SQLite statement: past the deadline, or cancelled."""
        cancelled = self.cancel is not None and self.cancel.is_set()
        late = self.deadline is not None and time.perf_counter() > self.deadline
        return int(cancelled or late)

    def inspect(self, connection: Any) -> None:
        """One metadata query: which suffix tables exist and how this database compares text;
        then (MySQL) the collation probe and, when GROUP BY used an alias, the columns."""
        dialect = self.plan.dialect
        tables = list(self.statement.tables)
        if dialect == "sqlite":
            marks = ", ".join("?" * len(tables))
            found = _run(connection, f"{_SQLITE_TABLES}({marks})", tables).fetchall()
            odd = {
                collation.lower()
                for _, sql in found
                for collation in re.findall(r"(?i)\bCOLLATE\s+[\"'`\[]?(\w+)", sql or "")
            } - {"binary"}
            existing = {str(name) for name, _ in found}
            why = (
                f"database {self.label} has a column with COLLATE {min(odd).upper()}."
                if odd
                else ""
            )
            self.info = StreamInfo(text_exact=not odd, why_inexact=why)
        elif dialect == "postgres":
            found = _run(
                connection, _POSTGRES_TABLES, {"names": tables, "c_like": sorted(C_COLLATIONS)}
            ).fetchall()
            existing = {str(name) for name, present, *_ in found if present}
            self.info = self.postgres_info(found)
        else:
            found = _run(connection, _MYSQL_TABLES, {"names": tables}).fetchall()
            existing = {str(name) for name, *_ in found}
            enums = any(row[1] for row in found)
            self.info = StreamInfo(
                text_exact=not enums,
                div_precision_increment=int(found[0][2]) if found else 4,
                max_decimal_scale=38 if is_mariadb(connection) else 30,
                why_inexact=f"database {self.label} has ENUM/SET columns, which sort by "
                "their position in the type, not by text."
                if enums
                else "",
            )
        missing = [table for table in tables if table not in existing]
        if missing:
            raise self.missing(missing)
        if self.statement.probe:
            row = _run(connection, self.statement.probe).fetchone()
            pads = tuple(
                bytes(row[i]) if row[i + 1] and row[i] is not None else None
                for i in range(0, len(row), 2)
            )
            self.info = replace(self.info, pads=pads)
        if self.plan.group_aliases:
            self.check_group_aliases(connection)

    def postgres_info(self, found: Sequence[Row]) -> StreamInfo:
        collate, provider = (found[0][3], found[0][4]) if found else ("C", "c")
        codepoint = provider == "b" or (
            provider in (None, "c") and str(collate).lower() in C_COLLATIONS
        )
        if not codepoint:
            why = (
                f"database {self.label} sorts text by collation {collate} (provider "
                f"{provider}), whose order Python cannot reproduce."
            )
        elif any(row[2] for row in found):
            why = (
                f"database {self.label} has enum, citext or non-C collated columns, which do "
                "not sort by code point."
            )
        else:
            return StreamInfo()
        return StreamInfo(text_exact=False, why_inexact=why)

    def check_group_aliases(self, connection: Any) -> None:
        first = {table.rsplit("_", 1)[0]: table for table in self.statement.tables}
        backticks = self.plan.dialect == "mysql"
        columns = {
            str(column[0]).lower()
            for table in first.values()
            for column in _run(
                connection,
                f"SELECT * FROM {quote_identifier(table, backticks=backticks)} WHERE 1 = 0",
            ).description
        }
        clash = sorted(set(self.plan.group_aliases) & columns)
        if clash:
            raise QueryRefused(
                f"query-all refuses GROUP BY {clash[0]}: '{clash[0]}' is both an output alias "
                "and a column of the table, and GROUP BY would mean the column. Rename the "
                "alias or group by the expression itself."
            )

    def missing(self, missing: list[str]) -> MissingTable:
        width = self.topology.width
        number = next(
            n for n in self.statement.table_numbers if missing[0].endswith(f"_{n:0{width}d}")
        )
        entry = self.topology.entry_for(number)
        more = (
            f" ({len(missing) - 1} more suffix table(s) missing there)" if len(missing) > 1 else ""
        )
        return MissingTable(
            f"Table {missing[0]} (table number {number}, entry {entry.id}) does not exist on "
            f"database {self.label}{more}.",
            hint=f"Run 'shardctl migrate --env {self.topology.env}' to create the suffix tables.",
        )

    # --- phase 2 -------------------------------------------------------------------------

    def produce(
        self,
        index: int,
        out: queue.Queue[tuple[Any, ...]],
        cancel: threading.Event,
        announce: Callable[[list[str]], None],
    ) -> None:
        """Run the statement and hand rows over in batches: ``("rows", index, batch)`` …
        then ``("end", index, None)`` or ``("error", index, error)``."""
        self.cancel = cancel
        with self.lock:
            connection, self.claimed = self.connection, True
        if connection is None:  # the query was closed before this database's turn
            self.finished = True
            return
        message: tuple[Any, ...] = ("end", index, None)
        result: Any = None
        try:
            result = self.cursor(connection, streamed=not _bounded(self.plan))
            result.execute(self.statement.sql)
            announce([column[0] for column in result.description])
            while not cancel.is_set():
                batch = result.fetchmany(BATCH_ROWS)
                if not batch:
                    break
                self.stats.rows += len(batch)
                if not _put(out, ("rows", index, batch), cancel):
                    break
            if not cancel.is_set():
                result.close()
        except Exception as exc:  # noqa: BLE001 - reported to the merge, named per database
            error = self.error(exc)
            self.stats.error = error.message
            message = ("error", index, error)
        finally:
            self.finished = True
            self.elapsed()
            abort = cancel.is_set() or message[0] == "error"
            if abort and result is not None:
                _abandon(result)
            self.close(abort=abort)
            _put(out, message, cancel)

    def cursor(self, connection: Any, *, streamed: bool) -> Any:
        """A cursor for the statement; ``streamed``: rows come from the server as they are
        fetched (PostgreSQL: a named cursor, MySQL: PyMySQL's unbuffered cursor), not all at
        once. SQLite steps through its result as it is fetched anyway."""
        if not streamed or self.plan.dialect == "sqlite":
            return connection.cursor()
        if self.plan.dialect == "postgres":
            cursor = connection.cursor(name="shardctl_query_all")
            cursor.itersize = BATCH_ROWS
            return cursor
        import pymysql.cursors

        return connection.cursor(pymysql.cursors.SSCursor)

    def execute_writes(self) -> ShardctlError | None:
        connection = self.connection
        assert connection is not None
        try:
            for sql in self.statement.statements:
                self.stats.rows += max(0, _run(connection, sql).rowcount)
        except Exception as exc:  # noqa: BLE001 - reported per database, then all roll back
            error = self.error(exc)
            self.stats.error = error.message
            return error
        finally:
            self.elapsed()
        return None

    def commit(self) -> None:
        assert self.connection is not None
        try:
            self.connection.commit()
        except Exception as exc:  # noqa: BLE001 - any driver error, named per database
            raise self.error(exc) from None

    def interrupt(self) -> None:
        """Ask PostgreSQL to cancel a statement still running for a stopped query (SQLite's
        progress handler sees the cancellation itself; MySQL finishes within --timeout)."""
        with self.lock:
            connection = self.connection
        if connection is None or self.finished or self.plan.dialect != "postgres":
            return
        try:
            connection.cancel()
        except Exception:  # noqa: BLE001, S110 - best effort: the connection is dropped anyway
            pass

    def close_unclaimed(self) -> None:
        with self.lock:
            if self.claimed:
                return
            self.claimed = True
        self.close(abort=True)

    def close(self, *, abort: bool) -> None:
        """Release the connection: roll back (reads, unfinished writes) and close it or hand it
        back to :class:`Connections`; ``abort`` drops it without draining a half-read result."""
        with self.lock:
            connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            if not abort:
                connection.rollback()
                if self.connections is not None:
                    self.connections.give(self.dsn, connection)
                    return
            connection.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection must not mask the error
            pass


def _bounded(plan: QueryPlan) -> bool:
    """Whether each database returns few enough rows to fetch without a server-side cursor
    (which costs extra round trips): a grouped plan (the merge keeps every group anyway) or
    LIMIT + OFFSET (pushed down to every database) of at most :data:`BATCH_ROWS` rows."""
    merge = plan.merge
    if isinstance(merge, GroupMerge):
        return True
    return (
        merge is not None and merge.limit is not None and merge.limit + merge.offset <= BATCH_ROWS
    )


def _abandon(result: Any) -> None:
    """Let a half-read PyMySQL streaming result go without draining it: its connection is
    dropped next, and reading the rest of a large result could take minutes."""
    unread = getattr(result, "_result", None)
    if getattr(unread, "unbuffered_active", False):
        unread.unbuffered_active = False  # type: ignore[union-attr]


def _run(connection: Any, sql: str, parameters: Any = None) -> Any:
    """Execute on a new cursor and return it. Without parameters the SQL runs as is: the
    drivers then leave ``%`` alone (``LIKE 'a%'``)."""
    cursor = connection.cursor()
    if parameters is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, parameters)
    return cursor


def _put(out: queue.Queue[tuple[Any, ...]], item: tuple[Any, ...], cancel: threading.Event) -> bool:
    """Hand ``item`` over, waiting for room; ``False`` when the query was cancelled."""
    while not cancel.is_set():
        try:
            out.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
