"""DB-API connections straight from the drivers (psycopg 3, PyMySQL, sqlite3), for services that
only send SQL text (``query-all``, ``status``): SQLAlchemy costs ≈ 0.45 s to import and ≈ 10 ms
to initialise a new engine's dialect on its first connection, which a one-statement command
pays per database.

:func:`shardctl.db.make_engine` hands the drivers the same arguments (options, timeouts, SQLite
busy timeout); SQLAlchemy's own choices are repeated here: PyMySQL's ``FOUND_ROWS`` flag (a
write's row count is the rows matched) and PostgreSQL ``inet``/``cidr`` values as text. Errors
are the drivers' own; :func:`database_error` words them.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from shardctl.dsn import Driver, Dsn
from shardctl.errors import DatabaseError
from shardctl.redact import scrub

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's lock
CONNECT_TIMEOUT = 10  # seconds to reach a server before giving up
MYSQL_OPTIONS = frozenset({"charset", "ssl_ca", "ssl_cert", "ssl_key"})  # others don't map
POSTGRES_DROPPED = frozenset({"pool_max_conns", "pool_min_conns"})  # pgx's, not libpq's


def connect_seconds(timeout: float | None) -> int:
    """Whole seconds to wait for a server, rounded up: 0 would mean "wait forever" to libpq."""
    return math.ceil(timeout or CONNECT_TIMEOUT)


def server_options(dsn: Dsn) -> tuple[dict[str, str], str | None]:
    """The DSN's options the driver understands, and the host: ``unix:/path`` becomes the
    option naming the socket (``host`` for libpq, ``unix_socket`` for PyMySQL)."""
    options = dict(dsn.options)
    if dsn.driver == "postgres":
        query = {k: v for k, v in options.items() if k not in POSTGRES_DROPPED}
    else:
        query = {k: v for k, v in options.items() if k in MYSQL_OPTIONS}
        query.setdefault("charset", "utf8mb4")
    host = dsn.host
    if host and host.startswith("unix:"):
        query["unix_socket" if dsn.driver == "mysql" else "host"] = host[len("unix:") :]
        host = None
    return query, host


def connect(dsn: Dsn, *, timeout: float | None = None) -> Any:
    """A new DB-API connection (not in autocommit mode: the first statement opens a
    transaction, except on SQLite, where reads run outside one). ``timeout`` bounds
    connecting. The connection may be used from another thread than the one that made it."""
    if dsn.driver == "sqlite3":
        import sqlite3

        connection = sqlite3.connect(
            dsn.database, timeout=SQLITE_BUSY_TIMEOUT, check_same_thread=False
        )
        sqlite_pragmas(connection)
        return connection
    query, host = server_options(dsn)
    server = {"host": host, "port": dsn.port, "user": dsn.user, "password": dsn.password}
    given: dict[str, Any] = {k: v for k, v in server.items() if v is not None} | query
    seconds = connect_seconds(timeout)
    if dsn.driver == "postgres":
        import psycopg

        return psycopg.connect(
            **given, dbname=dsn.database, connect_timeout=seconds, context=_postgres_adapters()
        )
    import pymysql
    from pymysql.constants import CLIENT

    ssl = {k[len("ssl_") :]: given.pop(k) for k in sorted(given) if k.startswith("ssl_")}
    return pymysql.connect(
        **given,
        database=dsn.database,
        connect_timeout=seconds,
        client_flag=CLIENT.FOUND_ROWS,
        **({"ssl": ssl} if ssl else {}),
    )


def sqlite_pragmas(connection: Any) -> None:
    """What every new SQLite connection gets: the busy timeout (also for SQLAlchemy's)."""
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


@functools.cache
def _postgres_adapters() -> Any:
    """psycopg's adapters, with ``inet``/``cidr`` loaded as text (SQLAlchemy's default)."""
    import psycopg
    from psycopg.adapt import AdaptersMap
    from psycopg.types.string import TextLoader

    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_loader("inet", TextLoader)
    adapters.register_loader("cidr", TextLoader)
    return adapters


def driver_error(driver: Driver) -> type[Exception]:
    """The base class of what the driver raises (DB-API ``Error``); imports the driver."""
    if driver == "sqlite3":
        import sqlite3

        return sqlite3.Error
    if driver == "postgres":
        import psycopg

        return psycopg.Error
    import pymysql

    error: type[Exception] = pymysql.Error
    return error


def quote_identifier(name: str, *, backticks: bool) -> str:
    """``name`` as a quoted identifier: backticks for MySQL, double quotes elsewhere."""
    mark = "`" if backticks else '"'
    return mark + name.replace(mark, mark * 2) + mark


def is_mariadb(connection: Any) -> bool:
    """Whether a PyMySQL connection talks to MariaDB (from the server's handshake)."""
    return "mariadb" in str(connection.get_server_info()).lower()


def sqlite_file_exists(dsn: Dsn) -> bool:
    return dsn.driver != "sqlite3" or Path(dsn.database).exists()


def database_error(exc: BaseException, label: str, secrets: frozenset[str]) -> DatabaseError:
    """A one-paragraph, password-free :class:`DatabaseError` for a driver/SQLAlchemy error."""
    original = getattr(exc, "orig", None) or exc
    text = " ".join(str(original).split())
    if len(text) > 400:
        text = text[:399] + "…"
    return DatabaseError(scrub(f"Database {label}: {text}", secrets))
