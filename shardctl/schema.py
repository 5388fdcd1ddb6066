"""The one schema definition (``config/schema.yaml``) and the SQLAlchemy tables built from it.

The file holds one definition per logical table, shared by every environment, suffix and
driver (format: docs/Sharding.md, "Schema definition")::

    sharding:                    # one entry per logical table of database.groups.sharding.tables
      users:
        shard_key: id            # column whose value % suffix_count is the table number
        columns:
          id: {type: bigint, primary_key: true}   # ids come from the application
          name: text                              # shorthand: type only, NOT NULL
          email: string(255)
          note: {type: text, nullable: true}
        indexes:
          email: {columns: [email], unique: true} # physical name idx_users_000_email
    master:                      # optional unsharded tables, created on every master database
      settings: {...}

Loading never imports SQLAlchemy (``validate`` may check the file cheaply) and reports every
problem with its line. Portability rules that would only fail on one engine are checked here:
MySQL cannot index ``text``/``json``/``binary`` columns or give them a default, keys are limited
to 3072 bytes, and identifiers to 63 characters (PostgreSQL truncates longer ones silently).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shardctl.dsn import Driver
from shardctl.errors import ConfigError, UsageError
from shardctl.problems import Problem, ProblemSink
from shardctl.routing import Topology, suffix_width
from shardctl.yamlsrc import LocatedList, LocatedMap, load_located

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.types import TypeEngine

SCHEMA_FILE_NAME = "schema.yaml"
IDENTIFIER_LIMIT = 63  # PostgreSQL's NAMEDATALEN - 1 (MySQL allows 64)
KEY_BYTE_LIMIT = 3072  # InnoDB index key limit; utf8mb4 uses up to 4 bytes per character
VARCHAR_LIMIT = 16383  # longest utf8mb4 VARCHAR MySQL accepts
NUMERIC_PRECISION_LIMIT = 65  # MySQL DECIMAL's limit (PostgreSQL allows more)
CURRENT_TIMESTAMP = "current_timestamp"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # as for logical tables in database.yaml
_TYPE = re.compile(r"\s*([a-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*")
# portable type → (arguments it takes, Python types a literal default may have)
TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "bigint": ("", (int,)),
    "integer": ("", (int,)),
    "smallint": ("", (int,)),
    "boolean": ("", (bool,)),
    "string": ("n", (str,)),
    "text": ("", ()),
    "numeric": ("p,s", (int, float)),
    "double": ("", (int, float)),
    "timestamp": ("", ()),
    "date": ("", ()),
    "json": ("", ()),
    "binary": ("", ()),
}
UNINDEXABLE = ("text", "json", "binary")  # MySQL needs a prefix length to index these
TABLE_KEYS = ("shard_key", "columns", "indexes")
COLUMN_KEYS = ("type", "nullable", "default", "primary_key")
INDEX_KEYS = ("columns", "unique")


@dataclass(frozen=True)
class ColumnType:
    """A portable type: ``name`` plus ``string(n)`` length or ``numeric(p,s)`` precision/scale."""

    name: str
    length: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.name == "numeric":
            return f"numeric({self.length},{self.scale})"
        return f"{self.name}({self.length})" if self.length is not None else self.name


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: ColumnType
    nullable: bool
    default: bool | int | float | str | None  # a literal, or CURRENT_TIMESTAMP for timestamps
    primary_key: bool
    line: int


@dataclass(frozen=True)
class IndexDef:
    """``name`` is the short name; the physical one is :func:`index_name` of the table."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    line: int


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[ColumnDef, ...]
    indexes: tuple[IndexDef, ...]
    shard_key: str | None
    line: int

    def column(self, name: str) -> ColumnDef:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Schema:
    file: str
    sharding: tuple[TableDef, ...]
    master: tuple[TableDef, ...] = ()

    def sharded(self, name: str) -> TableDef | None:
        return next((t for t in self.sharding if t.name == name), None)


def schema_path(config_dir: Path) -> Path:
    return config_dir / SCHEMA_FILE_NAME


def index_name(table: str, index: str) -> str:
    """Physical index name: ``idx_{physical table}_{short name}`` (``idx_users_000_email``)."""
    return f"idx_{table}_{index}"


def load_schema(path: Path) -> tuple[Schema, list[Problem]]:
    """The schema and its warnings. A missing or unreadable file is a :class:`UsageError` (exit
    2); any content error a :class:`ConfigError` carrying every problem (file and line)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(
            f"Schema file {path} not found. migrate creates tables from it: copy config/"
            f"{SCHEMA_FILE_NAME} from the shardctl repository next to your environments, or pass "
            "--schema FILE."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read schema file {path}: {exc}.") from None
    sink = ProblemSink(str(path))
    root = load_located(text, sink)
    schema = Schema(str(path), ())
    if not sink.has_errors:
        schema = _SchemaReader(sink).document(root, str(path))
    raise_errors(sink.problems, str(path))
    return schema, sink.problems


def raise_errors(problems: list[Problem], file: str) -> None:
    """Raise a :class:`ConfigError` carrying ``problems`` when any is an error."""
    errors = [p for p in problems if p.is_error]
    if errors:
        error = ConfigError(f"{len(errors)} error(s) in the schema definition.", file=file)
        error.problems = sorted(problems)  # type: ignore[attr-defined]
        raise error


def check_against(schema: Schema, topology: Topology) -> list[Problem]:
    """Problems in using ``schema`` for ``topology``: a configured logical table without a
    definition (error, at its line in database.yaml), a definition the config does not list
    (warning), and names too long for the topology's suffix width (error)."""
    config = ProblemSink(topology.file)
    sink = ProblemSink(schema.file)
    for table in topology.tables:
        if schema.sharded(table.name) is None:
            config.error(
                table.line,
                "missing-definition",
                f"Logical table '{table.name}' has no definition in {schema.file}; add it under "
                "'sharding:' (columns, indexes) before running migrate.",
            )
    configured = set(topology.table_names)
    for definition in schema.sharding:
        if definition.name not in configured:
            sink.warning(
                definition.line,
                "unused-definition",
                f"Table '{definition.name}' is defined but {topology.file} does not list it "
                "under database.groups.sharding.tables, so no suffix tables are made for it.",
            )
        else:
            _check_lengths(sink, definition, suffix_width(topology.suffix_count))
    for definition in schema.master:
        _check_lengths(sink, definition, None)
    return config.problems + sink.problems


def _check_lengths(sink: ProblemSink, table: TableDef, width: int | None) -> None:
    physical = f"{table.name}_{'0' * width}" if width else table.name
    names = [(physical, table.line, "table")]
    names += [(index_name(physical, i.name), i.line, "index") for i in table.indexes]
    for name, line, kind in names:
        if len(name) > IDENTIFIER_LIMIT:
            sink.error(
                line,
                "name-too-long",
                f"The {kind} name {name} has {len(name)} characters; PostgreSQL keeps only "
                f"{IDENTIFIER_LIMIT} (and would silently truncate it). Shorten the name.",
            )


class _SchemaReader:
    def __init__(self, sink: ProblemSink) -> None:
        self.sink = sink

    def document(self, root: Any, file: str) -> Schema:
        if not isinstance(root, LocatedMap):
            line = getattr(root, "line", 1)
            self.sink.error(
                line,
                "wrong-type" if root is not None else "empty-file",
                "The schema must be a mapping with a 'sharding' key (and optionally 'master').",
            )
            return Schema(file, ())
        self.unknown_keys(root, ("sharding", "master"), "the top level")
        if "sharding" not in root:
            self.sink.error(root.line, "missing-key", "Missing 'sharding:' (the logical tables).")
        return Schema(file, self.tables(root, "sharding"), self.tables(root, "master"))

    def unknown_keys(self, node: LocatedMap, known: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"Did you mean '{close[0]}'?" if close else f"Use {', '.join(known)}."
                self.sink.error(
                    node.line_of(key), "unknown-key", f"Unknown key '{key}' in {where}. {hint}"
                )

    def mapping(self, value: Any, line: int, where: str) -> LocatedMap | None:
        if isinstance(value, LocatedMap):
            return value
        code = "missing-key" if value is None else "wrong-type"
        self.sink.error(line, code, f"{where} must be a mapping, not {_kind(value)}.")
        return None

    def identifier(self, name: str, line: int, what: str) -> bool:
        if _IDENTIFIER.fullmatch(name):
            return True
        self.sink.error(
            line,
            "bad-identifier",
            f"{what} '{name}' is not a plain SQL identifier (letters, digits, '_', not "
            "starting with a digit).",
        )
        return False

    def tables(self, root: LocatedMap, group: str) -> tuple[TableDef, ...]:
        node = root.get(group)
        if node is None or (isinstance(node, LocatedMap) and not node):
            return ()
        tables = self.mapping(node, root.line_of(group), f"'{group}'")
        if tables is None:
            return ()
        result = []
        for name, definition in tables.items():
            line = tables.line_of(name)
            if not self.identifier(str(name), line, "Table name"):
                continue
            body = self.mapping(definition, line, f"table '{name}'")
            if body is not None:
                table = self.table(str(name), body, sharded=group == "sharding")
                if table is not None:
                    result.append(table)
        return tuple(result)

    def table(self, name: str, node: LocatedMap, *, sharded: bool) -> TableDef | None:
        where = f"table '{name}'"
        self.unknown_keys(node, TABLE_KEYS if sharded else TABLE_KEYS[1:], where)
        before = len(self.sink.problems)
        columns_node = self.mapping(
            node.get("columns"), node.line_of("columns"), f"{where} columns"
        )
        if columns_node is None:
            return None
        columns = [
            self.column(where, str(column), spec, columns_node.line_of(column))
            for column, spec in columns_node.items()
        ]
        by_name = {c.name: c for c in columns if c is not None}
        if not any(c.primary_key for c in by_name.values()):
            self.sink.error(
                columns_node.line,
                "no-primary-key",
                f"{where} has no primary key; mark its id column with 'primary_key: true'.",
            )
        indexes = self.indexes(where, node, by_name)
        shard_key = self.shard_key(where, node, by_name) if sharded else None
        if any(p.is_error for p in self.sink.problems[before:]):
            return None
        return TableDef(name, tuple(by_name.values()), indexes, shard_key, node.line)

    def column(self, where: str, name: str, spec: Any, line: int) -> ColumnDef | None:
        if not self.identifier(name, line, f"Column of {where}"):
            return None
        where = f"column '{name}' of {where}"
        if isinstance(spec, str):
            spec_map = LocatedMap(line)
            spec_map["type"], spec_map.lines["type"] = spec, line
            spec = spec_map
        node = self.mapping(spec, line, where + " (a type such as 'bigint' or a mapping)")
        if node is None:
            return None
        self.unknown_keys(node, COLUMN_KEYS, where)
        column_type = self.column_type(where, node.get("type"), node.line_of("type"))
        primary_key = self.flag(node, "primary_key", where, False)
        nullable = self.flag(node, "nullable", where, False)
        if primary_key and nullable:
            self.sink.error(
                node.line_of("nullable"),
                "bad-nullable",
                f"{where} is part of the primary key and cannot be nullable.",
            )
        if column_type is None:
            return None
        default = self.default(where, node, column_type)
        return ColumnDef(name, column_type, nullable, default, primary_key, line)

    def flag(self, node: LocatedMap, key: str, where: str, fallback: bool) -> bool:
        value = node.get(key, fallback)
        if isinstance(value, bool):
            return value
        self.sink.error(
            node.line_of(key), "wrong-type", f"'{key}' of {where} must be true or false."
        )
        return fallback

    def column_type(self, where: str, text: Any, line: int) -> ColumnType | None:
        if not isinstance(text, str):
            self.sink.error(
                line,
                "missing-key" if text is None else "wrong-type",
                f"{where} needs a 'type': one of {', '.join(_type_names())}.",
            )
            return None
        match = _TYPE.fullmatch(text.lower())
        known = match is not None and match.group(1) in TYPES
        if match is None or not known:
            close = difflib.get_close_matches(text.lower(), _type_names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            if re.fullmatch(r"\s*numeric\s*\(\s*\d+\s*", text):  # {type: numeric(12,2)}
                hint = " Inside {…} the comma splits the value: quote it, 'numeric(12,2)'."
            self.sink.error(
                line,
                "unknown-type",
                f"{where} has type '{text}'; use one of {', '.join(_type_names())}.{hint}",
            )
            return None
        name = match.group(1)
        arguments = [int(a) for a in match.group(2, 3) if a is not None]
        expected = TYPES[name][0]
        if len(arguments) != (expected.count(",") + 1 if expected else 0):
            form = f"{name}({expected})" if expected else name
            self.sink.error(line, "bad-type-argument", f"{where}: write the type as {form}.")
            return None
        if name == "string" and not 1 <= arguments[0] <= VARCHAR_LIMIT:
            self.sink.error(
                line,
                "bad-type-argument",
                f"{where}: string length must be 1 … {VARCHAR_LIMIT} (MySQL's utf8mb4 limit); "
                "use text for longer values.",
            )
            return None
        if name == "numeric" and not (
            1 <= arguments[0] <= NUMERIC_PRECISION_LIMIT and 0 <= arguments[1] <= arguments[0]
        ):
            self.sink.error(
                line,
                "bad-type-argument",
                f"{where}: numeric(p,s) needs 1 ≤ p ≤ {NUMERIC_PRECISION_LIMIT} and 0 ≤ s ≤ p.",
            )
            return None
        return ColumnType(name, *arguments)

    def default(
        self, where: str, node: LocatedMap, column_type: ColumnType
    ) -> bool | int | float | str | None:
        if "default" not in node:
            return None
        value = node["default"]
        line = node.line_of("default")
        if column_type.name == "timestamp":
            if value == CURRENT_TIMESTAMP:
                return CURRENT_TIMESTAMP
            allowed = f"'{CURRENT_TIMESTAMP}'"
        else:
            kinds = TYPES[column_type.name][1]
            # bool is an int in Python: only boolean columns take true/false
            if isinstance(value, kinds) and (isinstance(value, bool) == (bool in kinds)):
                return cast(bool | int | float | str, value)
            allowed = " or ".join(k.__name__ for k in kinds) or "none (not portable to MySQL)"
        self.sink.error(
            line,
            "bad-default",
            f"{where}: default {_kind(value)} does not fit type {column_type}; allowed: {allowed}.",
        )
        return None

    def indexes(
        self, where: str, node: LocatedMap, columns: dict[str, ColumnDef]
    ) -> tuple[IndexDef, ...]:
        if "indexes" not in node:
            return ()
        indexes = self.mapping(node["indexes"], node.line_of("indexes"), f"{where} indexes")
        if indexes is None:
            return ()
        result = []
        for name, spec in indexes.items():
            line = indexes.line_of(name)
            if not self.identifier(str(name), line, f"Index of {where}"):
                continue
            index = self.index(f"index '{name}' of {where}", str(name), spec, line, columns)
            if index is not None:
                result.append(index)
        return tuple(result)

    def index(
        self, where: str, name: str, spec: Any, line: int, columns: dict[str, ColumnDef]
    ) -> IndexDef | None:
        if isinstance(spec, LocatedList):  # shorthand: the column list of a non-unique index
            holder = LocatedMap(line)
            holder["columns"], holder.lines["columns"] = spec, line
            spec = holder
        node = self.mapping(spec, line, where + " (a column list or {columns, unique})")
        if node is None:
            return None
        self.unknown_keys(node, INDEX_KEYS, where)
        names = node.get("columns")
        if (
            not isinstance(names, LocatedList)
            or not names
            or not all(isinstance(n, str) for n in names)
        ):
            self.sink.error(
                node.line_of("columns"),
                "wrong-type",
                f"{where} needs 'columns': a non-empty list of column names.",
            )
            return None
        unique = self.flag(node, "unique", where, False)
        for column in names:
            if column not in columns:
                self.unknown_column(node.line_of("columns"), where, column, columns)
                return None
            if columns[column].type.name in UNINDEXABLE:
                self.sink.error(
                    node.line_of("columns"),
                    "unindexable-column",
                    f"{where} covers '{column}' of type {columns[column].type.name}, which "
                    "MySQL cannot index without a prefix length; make it string(n).",
                )
                return None
        key_bytes = sum(4 * (columns[c].type.length or 0) for c in names)
        if key_bytes > KEY_BYTE_LIMIT:
            self.sink.error(
                node.line_of("columns"),
                "index-too-long",
                f"{where} may need {key_bytes} bytes per key (4 per utf8mb4 character); MySQL "
                f"allows {KEY_BYTE_LIMIT}. Shorten the string(n) columns it covers.",
            )
            return None
        return IndexDef(name, tuple(names), unique, line)

    def shard_key(self, where: str, node: LocatedMap, columns: dict[str, ColumnDef]) -> str | None:
        key = node.get("shard_key")
        if key is None:
            return None
        line = node.line_of("shard_key")
        if not isinstance(key, str) or key not in columns:
            self.unknown_column(line, f"shard_key of {where}", str(key), columns)
            return None
        column = columns[key]
        if column.type.name not in ("bigint", "integer") or column.nullable:
            self.sink.error(
                line,
                "bad-shard-key",
                f"shard_key '{key}' of {where} must be a NOT NULL bigint or integer column "
                "(its value % suffix_count is the table number).",
            )
            return None
        return key

    def unknown_column(
        self, line: int, where: str, column: str, columns: dict[str, ColumnDef]
    ) -> None:
        close = difflib.get_close_matches(column, list(columns), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        self.sink.error(line, "unknown-column", f"{where} names unknown column '{column}'.{hint}")


def _type_names() -> list[str]:
    return [f"{name}({args})" if args else name for name, (args, _) in TYPES.items()]


def _kind(value: Any) -> str:
    if isinstance(value, LocatedMap):
        return "a mapping"
    if isinstance(value, LocatedList):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


# --- SQLAlchemy ---------------------------------------------------------------------------
# Imported lazily: loading and checking the schema must not cost `validate` SQLAlchemy.


def sqlalchemy_type(column_type: ColumnType) -> TypeEngine[Any]:
    """The SQLAlchemy type, with the variants that make each engine behave alike: ``text`` is
    LONGTEXT on MySQL (TEXT stops at 64 KB), ``json`` is JSONB on PostgreSQL, ``timestamp`` keeps
    microseconds on MySQL (DATETIME(6)) and a time zone on PostgreSQL, ``binary`` is LONGBLOB.

    Instances are shared between columns (types are immutable), except ``boolean``: a
    SchemaType that binds to its column."""
    import sqlalchemy as sa

    if column_type.name == "boolean":
        return sa.Boolean()
    return _shared_type(column_type)


@functools.cache
def _shared_type(column_type: ColumnType) -> TypeEngine[Any]:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql, postgresql

    mysqls = ("mysql", "mariadb")
    name, length, scale = column_type.name, column_type.length, column_type.scale
    if name == "string":
        return sa.String(length)
    if name == "numeric":
        return sa.Numeric(length, scale, asdecimal=True)
    if name == "text":
        return sa.Text().with_variant(mysql.LONGTEXT(), *mysqls)
    if name == "timestamp":
        return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *mysqls)
    if name == "json":
        # None is SQL NULL, not the JSON text 'null' (SQLAlchemy's default): both read back as
        # None, so only NULL keeps copies, checksums and IS NULL filters honest
        return sa.JSON(none_as_null=True).with_variant(
            postgresql.JSONB(none_as_null=True), "postgresql"
        )
    if name == "binary":
        return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *mysqls)
    simple: dict[str, type[TypeEngine[Any]]] = {
        "bigint": sa.BigInteger,
        "integer": sa.Integer,
        "smallint": sa.SmallInteger,
        "double": sa.Double,
        "date": sa.Date,
    }
    return simple[name]()


def _server_default(column: ColumnDef, driver: Driver) -> Any:
    import sqlalchemy as sa

    value = column.default
    if value is None:
        return None
    if column.type.name == "timestamp":  # DATETIME(6) needs a matching CURRENT_TIMESTAMP(6)
        return sa.text("CURRENT_TIMESTAMP(6)" if driver == "mysql" else "CURRENT_TIMESTAMP")
    if isinstance(value, bool):
        return sa.true() if value else sa.false()
    if isinstance(value, int | float):
        return sa.text(repr(value))
    return value  # a string: SQLAlchemy quotes it as a literal


def build_table(metadata: MetaData, table: TableDef, name: str, driver: Driver) -> Table:
    """``table`` as the physical table ``name`` (e.g. ``users_007``) in ``metadata``, with its
    indexes named :func:`index_name`. Primary keys are never auto-increment: the application
    assigns ids. ``driver`` only picks the spelling of ``CURRENT_TIMESTAMP`` defaults."""
    import sqlalchemy as sa

    result = sa.Table(
        name,
        metadata,
        *(
            sa.Column(
                column.name,
                sqlalchemy_type(column.type),
                primary_key=column.primary_key,
                nullable=column.nullable,
                server_default=_server_default(column, driver),
                autoincrement=False,
            )
            for column in table.columns
        ),
    )
    for index in table.indexes:
        sa.Index(
            index_name(name, index.name),
            *(result.c[c] for c in index.columns),
            unique=index.unique,
        )
    return result
