"""Load ``config/{env}/database.yaml`` into a typed model, reporting every field-level problem.

The file format is the application's own (see docs/Sharding.md)::

    database:
      groups:
        sharding:
          databases: [ {id, driver, dsn | writer_dsn | host/port/name/user/password,
                        reader_dsns, reader_policy, max_connections, max_idle_connections,
                        connection_max_lifetime, table_range: [lo, hi]}, ... ]
          tables: [ {name, suffix_count}, ... ]
        master: [ {id, driver, dsn, ...}, ... ]     # unsharded databases

Parsing never raises on bad content: each problem is recorded with its line and the entry is left
out of the model (its ``table_range``, if readable, is still kept as a :class:`RangeClaim` so the
tiling check in :mod:`shardctl.validate` does not report a spurious gap). Relative SQLite paths
resolve against the *parent of the config directory* (the application root), never the current
working directory.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from shardctl.dsn import (
    DEFAULT_PORTS,
    DRIVERS,
    Driver,
    Dsn,
    DsnError,
    dsn_from_fields,
    parse_dsn,
)
from shardctl.errors import UsageError
from shardctl.problems import ProblemSink
from shardctl.yamlsrc import LocatedList, LocatedMap, load_located

ReaderPolicy = Literal["random", "round_robin"]
READER_POLICIES: tuple[ReaderPolicy, ...] = ("random", "round_robin")
CONFIG_FILE_NAME = "database.yaml"
MAX_SUFFIX_COUNT = 1 << 20  # a lookup array of this size is still instant to build
SECRET_MIN_LENGTH = 4  # shorter secrets are still never printed, but not scrubbed from free text

CONNECTION_KEYS = (
    "id",
    "driver",
    "dsn",
    "writer_dsn",
    "reader_dsns",
    "reader_policy",
    "host",
    "port",
    "name",
    "user",
    "password",
    "max_connections",
    "max_idle_connections",
    "connection_max_lifetime",
)
ENTRY_KEYS = (*CONNECTION_KEYS, "table_range")


@dataclass(frozen=True)
class Pool:
    """Connection-pool settings; ``None`` where the file does not set them."""

    max_connections: int | None = None
    max_idle_connections: int | None = None
    connection_max_lifetime: float | None = None  # seconds


@dataclass(frozen=True)
class Database:
    """Connection settings shared by sharding entries and master databases."""

    id: str
    driver: Driver
    writer: Dsn
    readers: tuple[Dsn, ...]
    reader_policy: ReaderPolicy
    pool: Pool
    line: int


@dataclass(frozen=True)
class Entry(Database):
    """A sharding entry: serves suffix tables ``table_range[0]..table_range[1]`` (inclusive)."""

    table_range: tuple[int, int]


@dataclass(frozen=True)
class LogicalTable:
    name: str
    suffix_count: int
    line: int


@dataclass(frozen=True)
class RangeClaim:
    """A readable ``table_range`` of some entry, valid or not otherwise."""

    entry_id: str
    lo: int
    hi: int
    line: int


@dataclass(frozen=True)
class Variable:
    """A ``${NAME}`` reference found in the file (``is_set`` when it has a value or default)."""

    name: str
    line: int
    is_set: bool


@dataclass
class ParsedConfig:
    """Everything read from one file; ``entries`` holds only fully valid entries."""

    env: str
    file: str
    sqlite_base: Path
    sink: ProblemSink
    tables: list[LogicalTable] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    claims: list[RangeClaim] = field(default_factory=list)
    master: list[Database] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    databases_line: int = 1
    entry_ids: list[tuple[str, int]] = field(default_factory=list)  # every entry's id and line


def config_path(config_dir: Path, env: str) -> Path:
    return config_dir / env / CONFIG_FILE_NAME


def list_envs(config_dir: Path) -> list[str]:
    """Environments under ``config_dir`` (subdirectories holding a database.yaml), sorted."""
    if not config_dir.is_dir():
        return []
    return sorted(p.parent.name for p in config_dir.glob(f"*/{CONFIG_FILE_NAME}"))


def read_config_text(config_dir: Path, env: str) -> tuple[Path, str]:
    """The file's text; a missing or unreadable file is a :class:`UsageError` (exit 2)."""
    path = config_path(config_dir, env)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", env) or env in (".", ".."):
        raise UsageError(f"Environment name '{env}' is not a plain directory name.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        envs = list_envs(config_dir)
        found = (
            f"Environments found there: {', '.join(envs)}."
            if envs
            else (f"No environments found under {config_dir}.")
        )
        raise UsageError(
            f"Config file {path} not found. {found} "
            "Pass --env NAME and/or --config-dir DIR (or set SHARDCTL_ENV / SHARDCTL_CONFIG_DIR)."
        ) from None
    except OSError as exc:
        raise UsageError(f"Cannot read config file {path}: {exc.strerror}.") from None
    try:
        return path, data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"The config file is not UTF-8 text (byte {exc.start} cannot be decoded). "
            "Save it as UTF-8.",
            file=str(path),
            line=line,
        ) from None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _VariableError(DsnError):
    """A malformed ``${…}`` reference (reported as ``bad-variable``, wherever it appears)."""


class _Expander:
    """Expands ``${NAME}`` / ``${NAME:-default}`` from the environment, recording each use.

    An unset variable without a default stays as the literal ``${NAME}``: a visible placeholder
    for ``map``/``route`` (CI has no production secrets); commands that connect refuse it."""

    def __init__(self, parsed: ParsedConfig, environ: Mapping[str, str]) -> None:
        self.parsed = parsed
        self.environ = environ

    def __call__(self, text: str, line: int) -> str:
        if "${" not in text:
            return text
        unterminated = text.find("${", text.rfind("}") + 1 if "}" in text else 0)
        if unterminated >= 0 and "}" not in text[unterminated:]:
            raise _VariableError("a '${' is not closed by '}' (write ${NAME})")

        def substitute(match: re.Match[str]) -> str:
            name, has_default, default = match.group(1).partition(":-")
            if not _VARIABLE_NAME.fullmatch(name):
                raise _VariableError(
                    f"'${{{match.group(1)}}}' is not a valid variable reference (write ${{NAME}} "
                    "with letters, digits and '_')"
                )
            value = self.environ.get(name)
            is_set = value is not None or bool(has_default)
            self.parsed.variables.append(Variable(name, line, is_set))
            if value is not None:
                return value
            return default if has_default else match.group(0)

        return _VARIABLE.sub(substitute, text)


_Node = TypeVar("_Node", LocatedMap, LocatedList)


class _Reader:
    """Builds the model from the located tree, one rule per field."""

    def __init__(self, parsed: ParsedConfig, environ: Mapping[str, str]) -> None:
        self.p = parsed
        self.sink = parsed.sink
        self.expand = _Expander(parsed, environ)
        # (driver, DSN text) → the parsed DSN and its variable uses as (name, is_set): entries
        # sharing a database repeat its DSNs; a repeat records the same uses at its own line
        self.dsns: dict[tuple[Driver, str], tuple[Dsn, list[tuple[str, bool]]]] = {}

    # -- generic field access -------------------------------------------------------------
    def mapping(self, parent: LocatedMap, key: str, where: str) -> LocatedMap | None:
        """``parent[key]`` when it is a mapping; a required key, so absence is a problem."""
        return self._child(parent, key, where, LocatedMap, required=True)

    def sequence(
        self, parent: LocatedMap, key: str, where: str, required: bool
    ) -> LocatedList | None:
        return self._child(parent, key, where, LocatedList, required=required)

    def _child(
        self, parent: LocatedMap, key: str, where: str, kind: type[_Node], *, required: bool
    ) -> _Node | None:
        """``parent[key]`` if it is a ``kind``, else ``None`` with a missing-key (when required)
        or wrong-type problem at the key's line."""
        noun = "mapping" if kind is LocatedMap else "list"
        value = parent.get(key)
        if value is None:
            if required:
                self.sink.error(
                    parent.line_of(key),
                    "missing-key",
                    f"Missing '{key}' {'' if kind is LocatedMap else 'list '}under {where}. "
                    "Add it (see docs/Sharding.md for the layout).",
                )
            return None
        if not isinstance(value, kind):
            self.sink.error(
                parent.line_of(key),
                "wrong-type",
                f"'{where}.{key}' must be a {noun}, not {_kind(value)}.",
            )
            return None
        return value

    def string(self, node: LocatedMap, key: str, where: str, *, expand: bool = True) -> str | None:
        value = node.get(key)
        if value is None:
            return None
        return self.text(value, node.line_of(key), key, where, expand=expand)

    def text(self, value: Any, line: int, key: str, where: str, *, expand: bool) -> str | None:
        """``value`` (of ``key``, at ``line``) as a string, numbers included, with ``${VAR}``
        expanded when ``expand``; ``None`` (reported) for a list, mapping, boolean or a bad
        variable reference."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.sink.error(
                line, "wrong-type", f"'{key}' of {where} must be a string, not {_kind(value)}."
            )
            return None
        text = str(value)
        if not expand:
            return text
        try:
            return self.expand(text, line)
        except DsnError as exc:
            self.sink.error(line, "bad-variable", f"'{key}' of {where}: {exc}.")
            return None

    def integer(
        self,
        node: LocatedMap,
        key: str,
        where: str,
        *,
        minimum: int,
        code: str,
        maximum: int | None = None,
    ) -> int | None:
        """An integer field, or ``None`` when absent or invalid (``code`` when out of range)."""
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, str) and "${" in value:
            expanded = self.string(node, key, where)
            if expanded is None or "${" in expanded:  # bad or unset variable: already reported
                return None
            digits = expanded.strip()
            value = int(digits) if digits.isascii() and digits.isdigit() else expanded
        if isinstance(value, bool) or not isinstance(value, int):
            self.sink.error(
                node.line_of(key),
                "wrong-type",
                f"'{key}' of {where} must be an integer, not {_kind(value)}.",
            )
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
            self.sink.error(
                node.line_of(key), code, f"'{key}' of {where} is {value}; it must be {bound}."
            )
            return None
        return value

    def warn_unknown_keys(self, node: LocatedMap, known: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else " It is ignored."
                self.sink.warning(
                    node.line_of(key), "unknown-key", f"Unknown key '{key}' in {where}.{hint}"
                )

    # -- the document ---------------------------------------------------------------------
    def document(self, root: Any) -> None:
        if root is None:
            self.sink.error(1, "empty-file", "The file is empty. It must define 'database:'.")
            return
        if not isinstance(root, LocatedMap):
            self.sink.error(
                getattr(root, "line", 1),
                "wrong-type",
                f"The top level must be a mapping with a 'database' key, not {_kind(root)}.",
            )
            return
        database = self.mapping(root, "database", "the top level")
        if database is None:
            return
        if "shards" in database:
            self.sink.warning(
                database.line_of("shards"),
                "deprecated-shards",
                "'database.shards' is the old layout and is ignored; entries are read from "
                "'database.groups.sharding.databases'. Delete it once nothing reads it.",
            )
        groups = self.mapping(database, "groups", "database")
        if groups is None:
            return
        sharding = self.mapping(groups, "sharding", "database.groups")
        if sharding is not None:
            self.tables(sharding)
            self.entries(sharding)
        master = self.sequence(groups, "master", "database.groups", required=False)
        for index, (node, line) in enumerate(master.with_lines() if master else ()):
            where = f"master database #{index + 1}"
            if self.require_map(node, line, where):
                self.warn_unknown_keys(node, CONNECTION_KEYS, where)
                database_ = self.connection(node, where, "master database")
                if database_ is not None:
                    self.p.master.append(database_)

    def require_map(self, node: Any, line: int, where: str) -> bool:
        if isinstance(node, LocatedMap):
            return True
        self.sink.error(line, "wrong-type", f"{where} must be a mapping, not {_kind(node)}.")
        return False

    def tables(self, sharding: LocatedMap) -> None:
        tables = self.sequence(sharding, "tables", "database.groups.sharding", required=True)
        if tables is not None and not tables:
            self.sink.error(
                tables.line,
                "no-tables",
                "'database.groups.sharding.tables' is empty; add each logical table with its "
                "'name' and 'suffix_count'.",
            )
        seen: dict[str, int] = {}
        for index, (node, line) in enumerate(tables.with_lines() if tables else ()):
            where = f"table #{index + 1}"
            if not self.require_map(node, line, where):
                continue
            self.warn_unknown_keys(node, ("name", "suffix_count"), where)
            name = node.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.sink.error(
                    node.line_of("name"),
                    "bad-table-name" if name is not None else "missing-key",
                    f"{where} needs a 'name' that is a plain SQL identifier "
                    f"(letters, digits, '_'), got {_kind(name)}.",
                )
                continue
            where = f"table '{name}'"
            if name in seen:
                self.sink.error(
                    node.line_of("name"),
                    "duplicate-table",
                    f"Logical table '{name}' is listed twice (first at line {seen[name]}). "
                    "Remove one.",
                )
                continue
            seen[name] = node.line_of("name")
            if node.get("suffix_count") is None:
                self.sink.error(
                    node.line_of("suffix_count"),
                    "missing-key",
                    f"{where} has no 'suffix_count'. Add 'suffix_count: N' (N suffix tables).",
                )
                continue
            count = self.integer(node, "suffix_count", where, minimum=1, code="bad-number")
            if count is None:
                continue
            if count > MAX_SUFFIX_COUNT:
                self.sink.error(
                    node.line_of("suffix_count"),
                    "bad-number",
                    f"suffix_count {count} of {where} is larger than {MAX_SUFFIX_COUNT}.",
                )
                continue
            self.p.tables.append(LogicalTable(name, count, node.line_of("name")))

    def entries(self, sharding: LocatedMap) -> None:
        entries = self.sequence(sharding, "databases", "database.groups.sharding", required=True)
        if entries is None:
            return
        self.p.databases_line = entries.line
        if not entries:
            self.sink.error(
                entries.line,
                "no-entries",
                "'database.groups.sharding.databases' is empty; add at least one entry.",
            )
        for index, (node, line) in enumerate(entries.with_lines()):
            where = f"entry #{index + 1}"
            if not self.require_map(node, line, where):
                continue
            self.warn_unknown_keys(node, ENTRY_KEYS, where)
            entry_id = _plain_id(node.get("id"))
            if entry_id is not None:
                self.p.entry_ids.append((entry_id, node.line_of("id")))
            entry = self.connection(node, where, "entry", self.table_range(node, where))
            if isinstance(entry, Entry):  # not a plain Database: its table_range was invalid
                self.p.entries.append(entry)

    def table_range(self, node: LocatedMap, where: str) -> tuple[int, int] | None:
        entry_id = _plain_id(node.get("id"))
        who = f"entry '{entry_id}'" if entry_id else where
        value = node.get("table_range")
        line = node.line_of("table_range")
        if value is None:
            self.sink.error(
                line,
                "missing-key",
                f"No 'table_range' in {who}. Add 'table_range: [lo, hi]' "
                "(inclusive table numbers).",
            )
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        ):
            self.sink.error(
                line,
                "bad-range",
                f"table_range of {who} must be two integers [lo, hi], got {_short(value)}.",
            )
            return None
        lo, hi = int(value[0]), int(value[1])
        if lo > hi:
            self.sink.error(
                line,
                "bad-range",
                f"table_range of {who} is [{lo}, {hi}]: lo is greater than hi. "
                f"Write [{hi}, {lo}] if that is what you meant.",
            )
            return None
        self.p.claims.append(RangeClaim(entry_id or where, lo, hi, line))
        return lo, hi

    def connection(
        self,
        node: LocatedMap,
        where: str,
        kind: str,
        table_range: tuple[int, int] | None = None,
    ) -> Database | None:
        """Common connection fields; ``None`` (with problems recorded) when any is invalid. With
        a ``table_range`` it is an :class:`Entry`."""
        before = len(self.sink.problems)
        entry_id = _plain_id(node.get("id"))
        if entry_id is None:
            self.sink.error(
                node.line_of("id"),
                "missing-key" if "id" not in node else "wrong-type",
                f"{where} needs an 'id' (a string or number).",
            )
        else:
            where = f"{kind} '{entry_id}'"
        driver_text = node.get("driver")
        driver: Driver | None = None
        if driver_text is None:
            self.sink.error(
                node.line,
                "missing-key",
                f"{where} has no 'driver'. Add one of: {', '.join(DRIVERS)}.",
            )
        elif driver_text not in DRIVERS:
            alias = {
                "sqlite": "sqlite3",
                "postgresql": "postgres",
                "pgx": "postgres",
                "mariadb": "mysql",
            }.get(str(driver_text).lower())
            hint = f" Did you mean '{alias}'?" if alias else ""
            self.sink.error(
                node.line_of("driver"),
                "unknown-driver",
                f"{where} has driver '{_short(driver_text)}'; use one of: "
                f"{', '.join(DRIVERS)}.{hint}",
            )
        else:
            driver = cast(Driver, driver_text)
        policy = node.get("reader_policy", "random")
        if policy not in READER_POLICIES:
            self.sink.error(
                node.line_of("reader_policy"),
                "unknown-reader-policy",
                f"{where} has reader_policy '{_short(policy)}'; use one of: "
                f"{', '.join(READER_POLICIES)}.",
            )
        pool = self.pool(node, where)
        writer = readers = None
        if driver is not None:
            writer = self.writer(node, where, driver)
            readers = self.readers(node, where, driver)
        if len(self.sink.problems) > before and any(
            p.is_error for p in self.sink.problems[before:]
        ):
            return None
        assert entry_id is not None and driver is not None and writer is not None
        settings: dict[str, Any] = {
            "id": entry_id,
            "driver": driver,
            "writer": writer,
            "readers": tuple(readers or ()),
            "reader_policy": cast(ReaderPolicy, policy),
            "pool": pool,
            "line": node.line,
        }
        if table_range is None:
            return Database(**settings)
        return Entry(**settings, table_range=table_range)

    def pool(self, node: LocatedMap, where: str) -> Pool:
        max_conn = self.integer(node, "max_connections", where, minimum=1, code="bad-pool-number")
        max_idle = self.integer(
            node, "max_idle_connections", where, minimum=1, code="bad-pool-number"
        )
        if max_conn is not None and max_idle is not None and max_idle > max_conn:
            self.sink.warning(
                node.line_of("max_idle_connections"),
                "idle-exceeds-max",
                f"{where}: max_idle_connections ({max_idle}) is greater than max_connections "
                f"({max_conn}); at most {max_conn} can ever be idle. Lower it to {max_conn}.",
            )
        lifetime = None
        raw = node.get("connection_max_lifetime")
        if raw is not None:
            text = self.string(node, "connection_max_lifetime", where)
            lifetime = parse_duration(text) if text is not None else None
            if lifetime is None and text is not None:
                self.sink.error(
                    node.line_of("connection_max_lifetime"),
                    "bad-duration",
                    f"{where}: connection_max_lifetime '{_short(raw)}' is not a duration. "
                    "Write e.g. '300s', '5m', '1h30m' or a number of seconds.",
                )
        return Pool(max_conn, max_idle, lifetime)

    def parse(self, value: Any, line: int, key: str, where: str, driver: Driver) -> Dsn | None:
        """The DSN ``value`` of ``key`` at ``line``; ``None`` when absent or invalid (reported).
        A DSN text seen before is not parsed again: its variable uses are recorded again at
        this line."""
        raw = None if value is None else self.text(value, line, key, where, expand=False)
        if raw is None:
            return None
        known = self.dsns.get((driver, raw))
        if known is not None:
            dsn, uses = known
            self.p.variables.extend(Variable(name, line, is_set) for name, is_set in uses)
            return dsn
        first_use = len(self.p.variables)
        try:
            dsn = self.expand_and_parse(raw, line, driver)
        except _VariableError as exc:
            self.sink.error(line, "bad-variable", f"'{key}' of {where}: {exc}.")
            return None
        except DsnError as exc:
            self.sink.error(
                line,
                "bad-dsn",
                f"{where}: '{key}' is not a valid {driver} DSN: {exc}. See docs/Sharding.md "
                "for the accepted forms.",
            )
            return None
        self.remember_secret(dsn.password)
        uses = [(v.name, v.is_set) for v in self.p.variables[first_use:]]
        self.dsns[driver, raw] = dsn, uses
        return dsn

    def expand_and_parse(self, raw: str, line: int, driver: Driver) -> Dsn:
        """Parse ``raw`` with ``${VAR}`` expanded after splitting (a whole-DSN ``${VAR}`` is
        expanded first; unset, it stays as the placeholder database name)."""
        if _VARIABLE.fullmatch(raw.strip()):  # the whole DSN comes from one variable
            raw = self.expand(raw.strip(), line)
            if _VARIABLE.fullmatch(raw):  # unset: keep the reference as a placeholder
                return Dsn(driver, database=raw, port=DEFAULT_PORTS.get(driver))
        return parse_dsn(
            driver,
            raw,
            sqlite_base=self.p.sqlite_base,
            expand=lambda text: self.expand(text, line),
        )

    def fields_dsn(
        self, node: LocatedMap, where: str, driver: Driver, dsn: Dsn | None
    ) -> Dsn | None:
        """Apply ``host``/``port``/``name``/``user``/``password``: beside a DSN they only fill its
        missing user and password; without one they build it (``name`` required)."""
        values = {key: self.string(node, key, where) for key in ("host", "name", "user")}
        password = self.string(node, "password", where)
        self.remember_secret(password)
        port = self.integer(node, "port", where, minimum=1, maximum=65535, code="bad-dsn")
        if dsn is not None:
            user, secret = dsn.user or values["user"], dsn.password or password
            if user == dsn.user and secret == dsn.password:
                return dsn  # shared by the entries that repeat this DSN text
            return replace(dsn, user=user, password=secret)
        if not any(values.values()) or any(node.get(k) is not None for k in ("dsn", "writer_dsn")):
            return None  # nothing to build from, or the DSN is invalid (already reported)
        try:
            return dsn_from_fields(
                driver,
                host=values["host"],
                port=port,
                name=values["name"],
                user=values["user"],
                password=password,
                sqlite_base=self.p.sqlite_base,
            )
        except DsnError as exc:
            self.sink.error(
                node.line,
                "bad-dsn",
                f"{where}: {exc}. Add a 'dsn' or the missing field (see docs/Sharding.md).",
            )
            return None

    def writer(self, node: LocatedMap, where: str, driver: Driver) -> Dsn | None:
        before = len(self.sink.problems)
        dsn = self.parse(node.get("dsn"), node.line_of("dsn"), "dsn", where, driver)
        writer_dsn = self.parse(
            node.get("writer_dsn"), node.line_of("writer_dsn"), "writer_dsn", where, driver
        )
        if dsn and writer_dsn and dsn.identity != writer_dsn.identity:
            self.sink.warning(
                node.line_of("writer_dsn"),
                "dsn-writer-mismatch",
                f"{where}: 'dsn' ({dsn.redacted()}) and 'writer_dsn' ({writer_dsn.redacted()}) "
                "name different databases; writes go to writer_dsn. Make them agree or drop "
                "'dsn'.",
            )
        chosen = self.fields_dsn(node, where, driver, writer_dsn or dsn)
        if chosen is None and not any(p.is_error for p in self.sink.problems[before:]):
            self.sink.error(
                node.line,
                "missing-key",
                f"{where} has no connection: add 'dsn' or 'writer_dsn' (or host/port/name/user "
                "fields).",
            )
        return chosen

    def readers(self, node: LocatedMap, where: str, driver: Driver) -> list[Dsn]:
        seq = node.get("reader_dsns")
        if seq is None:
            return []
        if not isinstance(seq, LocatedList):
            self.sink.error(
                node.line_of("reader_dsns"),
                "wrong-type",
                f"{where}: 'reader_dsns' must be a list of DSNs, not {_kind(seq)}.",
            )
            return []
        readers = []
        for index, (item, line) in enumerate(seq.with_lines()):
            dsn = self.parse(item, line, "reader_dsns", f"{where} reader #{index + 1}", driver)
            if dsn is not None:
                readers.append(dsn)
        return readers

    def remember_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= SECRET_MIN_LENGTH:
            self.p.secrets.add(secret)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


@functools.lru_cache(maxsize=256)  # every entry of a large config repeats the same few
def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (``300s``, ``1h30m``, ``500ms``) or a bare number of
    seconds; ``None`` when unreadable. Negative durations are unreadable."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION.findall(text))


def _plain_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, LocatedMap | dict):
        return "a mapping"
    if isinstance(value, LocatedList | list):
        return "a list"
    if isinstance(value, int):
        return f"the number {_short(value)}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string '{_short(value)}'"
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_config(
    config_dir: Path,
    env: str,
    environ: Mapping[str, str] | None = None,
    display_path: Callable[[Path], str] = str,
) -> ParsedConfig:
    """Read and parse one environment's file. Raises :class:`UsageError` only when the file is
    missing or unreadable; every content problem lands in ``parsed.sink``."""
    path, text = read_config_text(config_dir, env)
    parsed = ParsedConfig(
        env=env,
        file=display_path(path),
        sqlite_base=config_dir.resolve().parent,
        sink=ProblemSink(display_path(path)),
    )
    root = load_located(text, parsed.sink)
    if root is not None or not parsed.sink.has_errors:  # after duplicate keys, check the rest
        _Reader(parsed, os.environ if environ is None else environ).document(root)
    return parsed
