"""SQLAlchemy engines for parsed DSNs (migrate and move, which need its DDL compiler, reflection
and type mapping), made with the same driver arguments as :mod:`shardctl.drivers`.

The only module (with the services built on it) that imports SQLAlchemy; ``route``, ``map``,
``validate``, ``status`` and ``query-all`` never load it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from shardctl.drivers import SQLITE_BUSY_TIMEOUT, connect_seconds, server_options, sqlite_pragmas
from shardctl.dsn import Dsn


def sqlalchemy_url(dsn: Dsn) -> URL:
    """The SQLAlchemy URL for a DSN (psycopg 3 for PostgreSQL, PyMySQL for MySQL/MariaDB)."""
    if dsn.driver == "sqlite3":
        return URL.create("sqlite+pysqlite", database=dsn.database)
    query, host = server_options(dsn)
    return URL.create(
        "postgresql+psycopg" if dsn.driver == "postgres" else "mysql+pymysql",
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
        connect_args["connect_timeout"] = connect_seconds(timeout)
    engine = create_engine(
        sqlalchemy_url(dsn),
        poolclass=NullPool,
        connect_args=connect_args,
        hide_parameters=True,
    )
    if dsn.driver == "sqlite3":
        event.listen(engine, "connect", lambda connection, _record: sqlite_pragmas(connection))
    return engine
