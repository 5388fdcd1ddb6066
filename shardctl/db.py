"""SQLAlchemy engines for parsed DSNs, and driver errors turned into redacted messages.

The only module (with the services built on it) that imports SQLAlchemy; ``route``, ``map`` and
``validate`` never load it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from shardctl.dsn import Dsn
from shardctl.errors import DatabaseError
from shardctl.redact import scrub

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's lock
CONNECT_TIMEOUT = 10  # seconds to reach a server before giving up
_MYSQL_OPTIONS = {
    "charset",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
}  # the Go driver's other ones don't map
_POSTGRES_DROPPED = {"pool_max_conns", "pool_min_conns"}  # pgx pool options, not libpq's


def sqlalchemy_url(dsn: Dsn) -> URL:
    """The SQLAlchemy URL for a DSN (psycopg 3 for PostgreSQL, PyMySQL for MySQL/MariaDB)."""
    if dsn.driver == "sqlite3":
        return URL.create("sqlite+pysqlite", database=dsn.database)
    options = dict(dsn.options)
    if dsn.driver == "postgres":
        query = {k: v for k, v in options.items() if k not in _POSTGRES_DROPPED}
        name = "postgresql+psycopg"
    else:
        query = {k: v for k, v in options.items() if k in _MYSQL_OPTIONS}
        query.setdefault("charset", "utf8mb4")
        name = "mysql+pymysql"
    host = dsn.host
    if host and host.startswith("unix:"):
        query["unix_socket" if dsn.driver == "mysql" else "host"] = host[len("unix:") :]
        host = None
    return URL.create(
        name,
        username=dsn.user,
        password=dsn.password,
        host=host,
        port=dsn.port,
        database=dsn.database,
        query=query,
    )


def make_engine(dsn: Dsn, *, timeout: float | None = None) -> Engine:
    """An engine without a pool (shardctl runs short commands: one connection per database).

    ``timeout`` bounds connecting; SQLite waits up to :data:`SQLITE_BUSY_TIMEOUT` for locks.
    """
    connect_args: dict[str, Any] = {}
    if dsn.driver == "sqlite3":
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT
    else:
        # whole seconds, rounded up: 0 would mean "wait forever" to libpq
        connect_args["connect_timeout"] = math.ceil(timeout or CONNECT_TIMEOUT)
    engine = create_engine(
        sqlalchemy_url(dsn),
        poolclass=NullPool,
        connect_args=connect_args,
        hide_parameters=True,
    )
    if dsn.driver == "sqlite3":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def sqlite_file_exists(dsn: Dsn) -> bool:
    return dsn.driver != "sqlite3" or Path(dsn.database).exists()


def database_error(exc: BaseException, label: str, secrets: frozenset[str]) -> DatabaseError:
    """A one-paragraph, password-free :class:`DatabaseError` for a driver/SQLAlchemy error."""
    original = getattr(exc, "orig", None) or exc
    text = " ".join(str(original).split())
    if len(text) > 400:
        text = text[:399] + "…"
    return DatabaseError(scrub(f"Database {label}: {text}", secrets))
