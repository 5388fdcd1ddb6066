"""Parse, normalize and redact the connection strings real configs contain.

Accepted forms, by driver:

* ``sqlite3``: a file path (relative paths resolve against a caller-given base, never the current
  directory), ``file:path?opts`` or ``sqlite:///path``. ``:memory:`` is refused: an in-memory
  database cannot hold shard tables across connections.
* ``postgres``: libpq keywords (``host=db1 port=5432 user=app password='x y' dbname=app``) or a URL
  (``postgres://``/``postgresql://``, optionally ``+driver``).
* ``mysql``: the Go driver's form (``user:pw@tcp(host:3306)/db?charset=utf8mb4``) or a URL
  (``mysql://``, optionally ``+driver``).

``${VAR}`` references are expanded *after* splitting into components (through ``expand``), so a
password containing ``@``, ``/`` or spaces cannot break parsing. A physical database is identified
by :attr:`Dsn.identity`: the resolved path for SQLite; driver, user, host, port and database name
otherwise (never the password, never keyword order or options).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Driver = Literal["sqlite3", "postgres", "mysql"]
DRIVERS: tuple[Driver, ...] = ("sqlite3", "postgres", "mysql")
DEFAULT_PORTS: dict[str, int] = {"postgres": 5432, "mysql": 3306}
DEFAULT_HOST = "localhost"
REDACTED = "***"


class DsnError(ValueError):
    """The text is not a connection string of the expected form (message says what is wrong)."""


def _identity(text: str) -> str:
    return text


@dataclass(frozen=True)
class Dsn:
    """One parsed connection. ``database`` is the absolute file path for SQLite."""

    driver: Driver
    database: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    options: tuple[tuple[str, str], ...] = ()

    @functools.cached_property  # entries sharing a database share its Dsn
    def identity(self) -> str:
        """Normalized key of the physical database this DSN names (password-free)."""
        if self.driver == "sqlite3":
            return self.database
        user = f"{self.user}@" if self.user else ""
        return f"{self.driver}://{user}{self.place}"

    @property
    def place(self) -> str:
        """Short display form without user or password: ``host:port/db`` or the file path."""
        if self.driver == "sqlite3":
            return self.database
        return f"{self.host or DEFAULT_HOST}:{self.port}/{self.database}"

    def redacted(self) -> str:
        """Display form: like :attr:`identity`, with ``***`` where a password is set (also
        when there is no user: ``postgres://:***@db1:5432/app``)."""
        if self.driver == "sqlite3" or not self.password:
            return self.identity
        return f"{self.driver}://{self.user or ''}:{REDACTED}@{self.place}"


def parse_dsn(
    driver: Driver,
    text: str,
    *,
    sqlite_base: Path,
    expand: Callable[[str], str] = _identity,
) -> Dsn:
    """Parse ``text`` as a DSN for ``driver``; raise :class:`DsnError` naming what is wrong."""
    text = text.strip()
    if not text:
        raise DsnError("the DSN is empty")
    if driver == "sqlite3":
        return _parse_sqlite(expand(text), sqlite_base)
    scheme = _SCHEME.match(text)
    if driver == "postgres":
        if scheme:  # libpq keywords start with 'key=', never with 'scheme://'
            return _parse_url(driver, text, ("postgres", "postgresql"), expand)
        return _parse_libpq(text, expand)
    if scheme and scheme.group(1).lower() in _KNOWN_SCHEMES:  # not 'app://pw@tcp(…)'
        return _parse_url(driver, text, ("mysql", "mariadb"), expand)
    return _parse_go_mysql(text, expand)


# A URL starts with its scheme; '://' elsewhere may be part of a password (password=a://b, or
# the Go form's 'user:password@' when the password starts with '//').
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9.-]*)(?:\+[A-Za-z0-9_.-]+)?://")
_KNOWN_SCHEMES = ("postgres", "postgresql", "mysql", "mariadb", "sqlite", "file")


def dsn_from_fields(
    driver: Driver,
    *,
    host: str | None,
    port: int | None,
    name: str | None,
    user: str | None,
    password: str | None,
    sqlite_base: Path,
) -> Dsn:
    """Build a DSN from separate ``host``/``port``/``name``/``user``/``password`` fields."""
    if not name:
        raise DsnError("no DSN and no 'name' field to build one from")
    if driver == "sqlite3":
        return _parse_sqlite(name, sqlite_base)
    return Dsn(
        driver,
        database=name,
        host=(host or DEFAULT_HOST).lower(),
        port=_port(str(port or ""), "the 'port' field", DEFAULT_PORTS[driver]),
        user=user or None,
        password=password or None,
    )


@functools.lru_cache(maxsize=4096)  # entries sharing a file resolve it once
def resolve_sqlite_path(path: str, base: Path) -> Path:
    """Absolute, normalized path of a SQLite file (``~`` expanded; relative → under ``base``)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return candidate.resolve(strict=False)


def _parse_sqlite(text: str, base: Path) -> Dsn:
    path, _, query = text.partition("?")
    for prefix in ("sqlite:///", "sqlite3:///", "file://", "file:"):
        if path.startswith(prefix):  # sqlite:///rel/path, sqlite:////abs/path, file:x.db
            path = path[len(prefix) :]
            break
    path = unquote(path)
    if not path or path == ":memory:" or "mode=memory" in query:
        raise DsnError("an in-memory SQLite database cannot hold shard tables; give a file path")
    return Dsn(
        "sqlite3",
        database=str(resolve_sqlite_path(path, base)),
        options=tuple(parse_qsl(query)),
    )


_UNSET_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")  # what expand leaves when unset


def _port(text: str, what: str, default: int) -> int:
    """The port in ``text``; ``default`` when empty or an unset ``${NAME}`` (the caller reports
    the variable: a warning offline, an error for commands that connect)."""
    if not text or _UNSET_VARIABLE.fullmatch(text):
        return default
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise DsnError(f"{what} '{text}' is not a port number between 1 and 65535")
    return int(text)


def _parse_url(
    driver: Driver, text: str, schemes: tuple[str, ...], expand: Callable[[str], str]
) -> Dsn:
    try:
        parts = urlsplit(text)
    except ValueError:  # its message may quote the password: say what to check instead
        raise DsnError(
            "the URL cannot be read (put an IPv6 host in [brackets] and percent-encode special "
            "characters in the password)"
        ) from None
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in schemes:
        raise DsnError(
            f"URL scheme '{parts.scheme}' does not match driver '{driver}' "
            f"(expected {' or '.join(s + '://' for s in schemes)})"
        )
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    host, port = hostport, ""
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    options = dict(parse_qsl(parts.query))
    query = {key: options.pop(key, "") for key in ("dbname", "host", "user")}
    query_password = options.pop("password", None)  # libpq URIs accept ?password=
    database = unquote(parts.path.lstrip("/")) or query["dbname"]
    if not database:
        raise DsnError("the URL names no database (add '/dbname' after the host)")
    try:
        port_number = _port(expand(port), "URL port", DEFAULT_PORTS[driver])
    except DsnError:  # a password with an unencoded '/', '?' or '#' lands here: never quote it
        raise DsnError(
            "the URL's port is not a number between 1 and 65535 (percent-encode '/', '?', "
            "'#' and '@' in a password, e.g. %2F: they end the host part early)"
        ) from None
    secret = unquote(password) if has_password else query_password
    return Dsn(
        driver,
        database=expand(database),
        host=(expand(unquote(host) or query["host"]) or DEFAULT_HOST).lower(),
        port=port_number,
        user=expand(unquote(user) or query["user"]) or None,
        password=expand(secret) if secret is not None else None,
        options=tuple(options.items()),
    )


_LIBPQ_TOKEN = re.compile(
    r"\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*"
    r"(?:'(?P<quoted>(?:[^'\\]|\\.)*)'|(?P<bare>(?:[^\s'\\]|\\.)*))"
)


def _parse_libpq(text: str, expand: Callable[[str], str]) -> Dsn:
    values: dict[str, str] = {}
    pos = 0
    key = ""
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _LIBPQ_TOKEN.match(text, pos)
        if match is None:
            snippet = text[pos:].strip().split()[0]
            if "=" in snippet:  # may carry a password: show only the key
                snippet = snippet.split("=", 1)[0] + "=…"
            near = f"after '{key}=…'" if "password" in key else f"near '{snippet}'"
            raise DsnError(
                f"cannot read libpq keyword DSN {near} (expected key=value pairs such as "
                "'host=db1 port=5432 dbname=app', with values containing spaces or quotes "
                "written as password='a b\\'c'; or a postgres:// URL)"
            )
        key = match.group("key").lower()
        raw = match.group("quoted") if match.group("quoted") is not None else match.group("bare")
        values[key] = re.sub(r"\\(.)", r"\1", raw)
        pos = match.end()
    database = expand(values.pop("dbname", ""))
    if not database:
        raise DsnError("the libpq DSN has no 'dbname=' keyword")
    host = expand(values.pop("host", "") or values.pop("hostaddr", ""))
    port = expand(values.pop("port", ""))
    user = expand(values.pop("user", ""))
    password = values.pop("password", None)
    return Dsn(
        "postgres",
        database=database,
        host=(host or DEFAULT_HOST).lower(),
        port=_port(port, "libpq port", DEFAULT_PORTS["postgres"]),
        user=user or None,
        password=expand(password) if password is not None else None,
        options=tuple(sorted(values.items())),
    )


_GO_ADDRESS = re.compile(r"^(?P<net>[A-Za-z0-9]*)(?:\((?P<addr>[^)]*)\))?$")


def _parse_go_mysql(text: str, expand: Callable[[str], str]) -> Dsn:
    """``[user[:password]@][net[(addr)]]/dbname[?params]``, split like go-sql-driver/mysql."""
    slash = text.rfind("/")
    if slash < 0:
        raise DsnError(
            "a MySQL DSN needs '/dbname' (e.g. 'app:${PW}@tcp(db1:3306)/app_db' "
            "or 'mysql://app@db1:3306/app_db')"
        )
    head, tail = text[:slash], text[slash + 1 :]
    database, _, query = tail.partition("?")
    if not database:
        raise DsnError("the MySQL DSN names no database after '/'")
    at = head.rfind("@")
    userinfo, address = (head[:at], head[at + 1 :]) if at >= 0 else ("", head)
    user, has_password, password = userinfo.partition(":")
    match = _GO_ADDRESS.match(address)
    if match is None:
        shown = f" '{address}'" if at >= 0 else ""  # without an '@' it may be 'user:password'
        raise DsnError(
            f"cannot read MySQL address{shown} (expected 'user:password@tcp(host:3306)/db')"
        )
    host, port = DEFAULT_HOST, DEFAULT_PORTS["mysql"]
    addr = expand(match.group("addr") or "")
    if match.group("net") == "unix":
        host = f"unix:{addr}"
    elif addr:
        name, _, port_text = addr.rpartition(":") if ":" in addr else (addr, "", "")
        host = name.strip("[]") or DEFAULT_HOST
        port = _port(port_text, "MySQL port", port)
    return Dsn(
        "mysql",
        database=expand(database),
        host=host.lower(),
        port=port,
        user=expand(user) or None,
        password=expand(password) if has_password else None,
        options=tuple(parse_qsl(query)),
    )
