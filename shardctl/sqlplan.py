"""Plan ``query-all``: parse one statement, refuse what cannot be answered exactly, and build one
statement per physical database plus the merge that combines their results. Pure: sqlglot only.

The SQL names logical tables (``users``); each table number ``n`` gets a *branch*: the statement's
FROM/JOIN/WHERE with every logical table renamed to its suffix table (``users_007 AS users``, so
qualified column references keep working; joined tables all take the same number). A physical
database runs one statement over all its branches:

* rows without aggregation: ``UNION ALL`` of the branches; with ORDER BY every branch returns its
  sort keys as hidden trailing columns (``_k0`` …) and the database sorts the union, so the merger
  k-way merges sorted streams; ``LIMIT n OFFSET m`` becomes ``LIMIT n+m`` per branch and per
  database, and the merger skips ``m`` rows once;
* GROUP BY, aggregates and SELECT DISTINCT: each database groups its own rows (PostgreSQL and
  SQLite aggregate the raw union, which keeps the engine's result types; MySQL aggregates per
  branch and re-aggregates, ``COUNT`` → ``SUM`` of counts); ``AVG`` travels as ``SUM`` and
  ``COUNT``; ``COUNT(DISTINCT x)`` adds ``x`` to the per-database grouping and is counted after the
  merge; HAVING, ORDER BY and LIMIT are applied to the merged groups.

Everything else that cannot be merged exactly is refused with :class:`QueryRefused` naming the
construct, and anything but one read-only SELECT is refused unless writes are allowed (then only
UPDATE and DELETE, run on every suffix table). Joins between logical tables must equate their
routing keys (``users.id = posts.user_id``): only then does a join row live in one table number.

*Pruning*: when top-level AND conjuncts of WHERE pin a routing key to integer literals
(``users.id = 7``, ``p.user_id IN (3, 11)``), only the table numbers that can hold a matching row
are read (or written); ids outside ``0 … 2**63-1`` match no row.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from shardctl.dsn import Driver
from shardctl.errors import ShardctlError
from shardctl.merge import (
    AggregateKind,
    AggregateSlot,
    Comparison,
    Dialect,
    GroupMerge,
    GroupOrder,
    Junction,
    KeyColumn,
    Membership,
    Negation,
    NullTest,
    Operand,
    Predicate,
    Range,
    RowMerge,
    SortSpec,
)
from shardctl.routing import ID_LIMIT, PhysicalDatabase, Topology

if TYPE_CHECKING:
    from shardctl.schema import Schema

DIALECTS: dict[Driver, Dialect] = {"sqlite3": "sqlite", "postgres": "postgres", "mysql": "mysql"}
PARTIAL_AGGREGATION: frozenset[Dialect] = frozenset({"mysql"})  # aggregate per branch first
UNION_PLACEHOLDER = "__shardctl_union__"
SQLITE_COMPOUND_LIMIT = 500  # SQLITE_MAX_COMPOUND_SELECT: terms in one compound SELECT
_AGGREGATES: dict[type[exp.Expr], AggregateKind] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Min: "min",
    exp.Max: "max",
    exp.Avg: "avg",
}
# aggregates sqlglot does not model (it parses them as anonymous functions)
OTHER_AGGREGATES = frozenset(
    "total bit_and bit_or bit_xor bool_and bool_or every json_group_array json_group_object "
    "std stddev stddev_pop stddev_samp variance var_pop var_samp json_arrayagg json_objectagg "
    "jsonb_agg json_agg jsonb_object_agg xmlagg range_agg range_intersect_agg any_value "
    "string_agg group_concat array_agg median mode percentile_cont percentile_disc "
    "regr_count corr covar_pop covar_samp".split()
)
_ALLOWED_SELECT_ARGS = frozenset(
    {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset"}
    | {"distinct", "hint"}
)
_SELECT_CLAUSES = {
    "with_": "WITH (common table expression)",
    "into": "SELECT … INTO",
    "locks": "a locking clause (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)",
    "windows": "a WINDOW clause",
    "qualify": "QUALIFY",
    "laterals": "LATERAL",
    "sample": "TABLESAMPLE",
    "operation_modifiers": "a SELECT modifier (SQL_CALC_FOUND_ROWS, …)",
    "pivots": "PIVOT",
}
_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Copy,
    exp.Command,
    exp.Pragma,
    exp.Set,
    exp.Attach,
    exp.Detach,
)
_STATEMENT_NAMES = {
    "TruncateTable": "TRUNCATE",
    "Transaction": "BEGIN",
    "Union": "UNION",
    "Intersect": "INTERSECT",
    "Except": "EXCEPT",
}
_FUNCTIONS: dict[str, type[exp.AggFunc]] = {
    "count": exp.Count,
    "sum": exp.Sum,
    "min": exp.Min,
    "max": exp.Max,
}
_COMBINE: dict[str, type[exp.AggFunc]] = {"min": exp.Min, "max": exp.Max}  # others: SUM
_COMPARISONS: dict[type[exp.Expr], Literal["=", "<>", "<", "<=", ">", ">="]] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_NOT_TEXT = (
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.IntDiv,
    exp.Neg,
    exp.Predicate,
    exp.Connector,
    exp.Not,
    exp.Length,
)


class InvalidQuery(ShardctlError):
    """The SQL does not parse for the configured database's dialect."""


class QueryRefused(ShardctlError):
    """Valid SQL that query-all will not run: it writes, or its result cannot be merged exactly."""


def _refuse(construct: str, why: str, fix: str = "") -> QueryRefused:
    text = f"query-all refuses {construct}: {why}"
    return QueryRefused(text + (f" {fix}" if fix else ""))


def _cannot_merge(construct: str, fix: str = "") -> QueryRefused:
    return _refuse(
        construct,
        "its result across suffix tables cannot be merged exactly, and query-all never "
        "returns an approximate answer.",
        fix,
    )


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseStatement:
    """What runs on one physical database. ``statements``: one for reads (``sql``), one per
    suffix table for writes. ``probe`` (MySQL) asks each compared text value's collation for
    its space weight and PAD attribute before the query runs."""

    database: PhysicalDatabase
    table_numbers: tuple[int, ...]
    tables: tuple[str, ...]
    statements: tuple[str, ...]
    probe: str | None = None

    @property
    def sql(self) -> str:
        return ";\n".join(self.statements)


@dataclass(frozen=True)
class Pruning:
    """The table numbers a WHERE clause leaves to read, and the conditions that pinned them.

    ``matched`` counts the table numbers that can hold a matching row. When it is 0 (no pinned
    value is a routable id, or the conditions contradict each other) ``table_numbers`` still
    holds one table number: its empty answer gives the result its columns and the aggregates
    of no rows (``COUNT(*)`` 0, ``SUM`` NULL)."""

    table_numbers: tuple[int, ...]
    matched: int
    suffix_count: int
    conditions: tuple[str, ...]

    def __str__(self) -> str:
        text = (
            f"pruned to {self.matched} of {self.suffix_count} table numbers by "
            f"{' AND '.join(self.conditions)}"
        )
        if not self.matched:
            text += (
                f" (no table number can hold a matching row; table number "
                f"{self.table_numbers[0]} still runs to give the empty result its shape)"
            )
        return text


@dataclass(frozen=True)
class QueryPlan:
    """A planned statement.

    ``columns``: output names when the plan knows them (``None`` for ``*``); rows plans prefer
    the names the database reports. ``group_aliases``: output aliases GROUP BY resolved, which
    must not also be columns of the tables (the service checks before running). ``pruning``:
    set when WHERE pinned the routing key, so ``statements`` cover only those table numbers.
    """

    sql: str
    dialect: Dialect
    kind: Literal["rows", "groups", "write"]
    statements: tuple[DatabaseStatement, ...]
    columns: tuple[str, ...] | None
    merge: RowMerge | GroupMerge | None
    group_aliases: tuple[str, ...] = ()
    pruning: Pruning | None = None

    @property
    def is_write(self) -> bool:
        return self.kind == "write"


def dialect_of(topology: Topology) -> Dialect:
    """The one SQL dialect of every database; a mixed topology cannot be answered as one
    engine would answer it."""
    drivers = sorted({db.driver for db in topology.databases})
    if len(drivers) > 1:
        raise _refuse(
            "a topology that mixes drivers",
            f"{topology.file} uses {' and '.join(drivers)}; a merged result must follow one "
            "engine's rules (NULL order, collation, arithmetic).",
            "Query each engine's databases through an environment of its own.",
        )
    return DIALECTS[drivers[0]]


def default_shard_keys(topology: Topology) -> dict[str, str]:
    """Routing column per logical table, by the application's convention: the first table
    (``users``) is routed by ``id``, every other one by ``<first table, singular>_id``
    (``posts.user_id``)."""
    names = topology.table_names
    root = names[0]
    child_key = f"{root[:-1] if root.endswith('s') else root}_id"
    return {name: "id" if name == root else child_key for name in names}


def shard_keys_of(topology: Topology, schema: Schema | None) -> dict[str, str]:
    """Routing column per logical table: the schema's ``shard_key``; the convention of
    :func:`default_shard_keys` without a schema, and for a table the schema gives none."""
    keys = default_shard_keys(topology)
    for name in keys:
        definition = schema.sharded(name) if schema is not None else None
        if definition is not None and definition.shard_key is not None:
            keys[name] = definition.shard_key
    return keys


def plan_query(
    sql: str,
    topology: Topology,
    *,
    allow_write: bool = False,
    shard_keys: Mapping[str, str] | None = None,
) -> QueryPlan:
    """Plan ``sql`` over every table number of ``topology``.

    Raises :class:`InvalidQuery` when it does not parse and :class:`QueryRefused` when it is
    not a single read-only SELECT (unless ``allow_write``: then UPDATE/DELETE too) or cannot be
    merged exactly. ``shard_keys`` (routing column per logical table, see
    :func:`shard_keys_of`) defaults to :func:`default_shard_keys`."""
    dialect = dialect_of(topology)
    statement = parse_statement(sql, dialect)
    keys = {k.lower(): v.lower() for k, v in (shard_keys or default_shard_keys(topology)).items()}
    marker = _suffix_marker(sql)
    if isinstance(statement, exp.Update | exp.Delete) and allow_write:
        return _WritePlanner(statement, topology, dialect, keys, marker).plan()
    if not isinstance(statement, exp.Select):
        raise _statement_refusal(statement, allow_write)
    return _ReadPlanner(statement, topology, dialect, keys, marker, written_sql=sql).plan()


def _suffix_marker(sql: str) -> str:
    """A word that does not occur in ``sql``: suffix tables are generated once as
    ``users_<marker>`` and the marker is then replaced by each table number's suffix."""
    text = sql.lower()
    return next(m for i in itertools.count() if (m := f"shardctl{i}suffix") not in text)


# --- parsing and refusals ------------------------------------------------------------------


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to an opaque command; the refusal says more."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def parse_statement(sql: str, dialect: Dialect) -> exp.Expr:
    """Exactly one statement, parsed for ``dialect``; stacked statements are refused."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as error:
        first = sql.split(None, 1)[0].upper() if sql.split() else ""
        if first and first not in ("SELECT", "WITH", "(", "VALUES", "TABLE"):
            raise _refuse(
                f"a {first} statement",
                "only one read-only SELECT runs by default.",
                "Writes need --write --yes (UPDATE and DELETE only).",
            ) from None
        details = getattr(error, "errors", None) or [{}]
        if str(details[0].get("highlight", "")).strip().upper() == "INTO":
            raise _cannot_merge("SELECT … INTO", "query-all only reads.") from None
        raise InvalidQuery(
            f"The SQL does not parse as {dialect}: {_parse_message(error)}"
        ) from None
    if not statements:
        raise InvalidQuery("The SQL is empty: give one SELECT statement.")
    if len(statements) > 1:
        names = ", ".join(_statement_name(s) for s in statements)
        raise _refuse(
            f"{len(statements)} stacked statements ({names})",
            "query-all runs exactly one statement.",
            "Run them one at a time.",
        )
    if dialect == "mysql":
        _check_mysql_tokens(tokens)
    return statements[0]


def _parse_message(error: Exception) -> str:
    details = getattr(error, "errors", None)
    if details:
        first = details[0]
        near = (first.get("highlight") or "").strip()
        where = f" (line {first.get('line')}, column {first.get('col')}"
        where += f", near '{near}')" if near else ")"
        return f"{first.get('description')}{where}."
    return " ".join(str(error).split())


def _check_mysql_tokens(tokens: Sequence[Any]) -> None:
    for index, token in enumerate(tokens):
        for comment in token.comments:
            if comment.lstrip().startswith(("!", "M!")):
                raise _refuse(
                    "a MySQL executable comment (/*! … */)",
                    "MySQL runs the text inside it, so what runs would differ from what "
                    "query-all checked and rewrote.",
                    "Write the SQL without /*! … */.",
                )
        following = tokens[index + 1].text.upper() if index + 1 < len(tokens) else ""
        if token.text.upper() == "NULLS" and following in ("FIRST", "LAST"):
            raise _refuse(
                f"NULLS {following}",
                "it is not MySQL syntax (MySQL sorts NULL first ascending, last descending).",
                "Order by ISNULL(x) first to move NULLs, e.g. ORDER BY ISNULL(x), x.",
            )


def _statement_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    name = type(node).__name__
    return _STATEMENT_NAMES.get(name, name.upper())


def _statement_refusal(statement: exp.Expr, allow_write: bool) -> QueryRefused:
    name = _statement_name(statement)
    if isinstance(statement, exp.SetOperation):
        return _cannot_merge(
            f"{name} between SELECTs",
            "Run each SELECT on its own, or combine the conditions in one WHERE.",
        )
    if not allow_write:
        return _refuse(
            f"a {name} statement",
            "only one read-only SELECT runs by default (writes would change every suffix "
            "table on every database).",
            "Writes need --write --yes (UPDATE and DELETE only).",
        )
    if isinstance(statement, exp.Insert) or name in ("REPLACE", "INSERT"):
        return _refuse(
            f"{name} even with --write",
            "query-all runs a statement on every suffix table, so an INSERT would copy each "
            "row into all of them.",
            "Insert through the application, which routes each row by its id.",
        )
    return _refuse(
        f"{name} even with --write",
        "only UPDATE and DELETE can run on every suffix table.",
        "Schema changes belong to 'shardctl migrate'.",
    )


def _check_nodes(root: exp.Expr, dialect: Dialect) -> None:
    """Refuse constructs anywhere in the tree that cannot run per suffix table exactly."""
    for node in root.walk():
        if node is root:
            continue
        if isinstance(node, _WRITES):
            raise _refuse(
                f"a {_statement_name(node)} inside the statement (data-modifying WITH)",
                "query-all is read-only by default and cannot split a write nested in a read.",
            )
        construct = _forbidden_construct(node, dialect)
        if construct:
            raise _cannot_merge(*construct)


def _forbidden_construct(node: exp.Expr, dialect: Dialect) -> tuple[str, str] | None:
    if isinstance(node, exp.Window):
        return (
            "a window function (… OVER …)",
            "A window spans rows of every suffix table; compute it on the merged output.",
        )
    if isinstance(node, exp.Select | exp.Subquery | exp.Exists | exp.SetOperation):
        return (
            "a subquery",
            "Each suffix table would only see its own rows. Join on the routing key instead, "
            "or run the inner query first.",
        )
    if isinstance(node, exp.Collate):
        return ("COLLATE", "Compare text with the column's own collation.")
    if isinstance(node, exp.Placeholder) or (
        isinstance(node, exp.Parameter) and dialect != "mysql"
    ):
        return ("a parameter placeholder", "Write the values into the SQL.")
    if isinstance(node, exp.PropertyEQ | exp.Parameter | exp.SessionParameter):
        return ("a session variable (@var, @@var, :=)", "Each database has its own session.")
    if isinstance(node, exp.Rollup | exp.Cube | exp.GroupingSets):
        return ("ROLLUP / CUBE / GROUPING SETS", "Run one GROUP BY per grouping level.")
    if isinstance(node, exp.Filter):
        return (
            "an aggregate FILTER clause",
            "Use SUM(CASE WHEN … THEN 1 ELSE 0 END) or COUNT(CASE WHEN … THEN 1 END).",
        )
    if isinstance(node, exp.WithinGroup):
        return ("WITHIN GROUP", "")
    if isinstance(node, exp.Lateral):
        return ("LATERAL", "")
    if isinstance(node, exp.Unnest | exp.Values | exp.TableFromRows):
        return ("a table function or VALUES list in FROM", "")
    if isinstance(node, exp.Into):
        return ("SELECT … INTO", "")
    if isinstance(node, exp.Lock):
        return ("a locking clause (FOR UPDATE / FOR SHARE)", "query-all only reads.")
    if isinstance(node, exp.AggFunc) and type(node) not in _AGGREGATES:
        return (f"the aggregate {node.sql_name()}", _AGGREGATE_FIX)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in OTHER_AGGREGATES:
        return (f"the aggregate {str(node.this).upper()}", _AGGREGATE_FIX)
    return None


_AGGREGATE_FIX = "Supported aggregates: COUNT, COUNT(DISTINCT x), SUM, MIN, MAX, AVG."


def _has_aggregate(node: exp.Expr) -> bool:
    return any(isinstance(n, exp.AggFunc) for n in node.walk())


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _identifier(node: exp.Expr | None) -> str:
    """An identifier as the engines resolve it (unquoted: case-insensitive)."""
    if node is None:
        return ""
    if isinstance(node, exp.Identifier):
        return str(node.this) if node.quoted else str(node.this).lower()
    return str(node.name).lower()


def _integer(node: exp.Expr | None, what: str, dialect: Dialect) -> int | None:
    """A LIMIT/OFFSET count (``None``: no limit; SQLite treats a negative LIMIT as none)."""
    if node is None:
        return None
    if isinstance(node, exp.Var) and str(node.this).upper() == "ALL":
        return None
    negative = isinstance(node, exp.Neg)
    literal = node.this if negative else node
    if isinstance(literal, exp.Literal) and not literal.is_string and literal.is_int:
        value = int(literal.this)
        if not negative:
            return value
        if dialect == "sqlite" and what == "LIMIT":
            return None
    raise _refuse(
        f"{what} {node.sql(dialect)}",
        f"{what} must be a non-negative integer written in the SQL.",
    )


def _integer_literal(node: exp.Expr) -> int | None:
    """The value of an integer literal (``7``, ``-7``); ``None`` for anything else."""
    negative = isinstance(node, exp.Neg)
    literal = node.this if negative else node
    if isinstance(literal, exp.Literal) and not literal.is_string and literal.is_int:
        value = int(literal.this)
        return -value if negative else value
    return None


def constant(node: exp.Expr, dialect: Dialect) -> tuple[bool, Any]:
    """``(True, value)`` for a literal the engine would return as this Python value."""
    negative = isinstance(node, exp.Neg)
    literal = node.this if negative else node
    if isinstance(literal, exp.Null):
        return True, None
    if isinstance(literal, exp.Boolean) and not negative:
        value = bool(literal.this)
        return True, value if dialect == "postgres" else int(value)
    if not isinstance(literal, exp.Literal):
        return False, None
    if literal.is_string:
        return (not negative), str(literal.this)
    text = str(literal.this)
    number: Any
    if literal.is_int:
        number = int(text)
    elif dialect == "sqlite" or "e" in text.lower():
        number = float(text)
    else:
        number = Decimal(text)
    return True, -number if negative else number


def _may_be_text(node: exp.Expr) -> bool:
    if isinstance(node, exp.Min | exp.Max):
        inner = node.this
        return _may_be_text(inner.expressions[0] if isinstance(inner, exp.Distinct) else inner)
    if isinstance(node, exp.Literal):
        return bool(node.is_string)
    return not isinstance(node, _NOT_TEXT)


def _union_all(parts: Sequence[str], dialect: Dialect) -> str:
    """``UNION ALL`` of statements; SQLite allows 500 terms per compound, so larger unions are
    nested in groups (``SELECT * FROM (… UNION ALL …)``)."""
    if dialect != "sqlite" or len(parts) <= SQLITE_COMPOUND_LIMIT:
        return "\nUNION ALL\n".join(parts)
    groups = [
        parts[i : i + SQLITE_COMPOUND_LIMIT] for i in range(0, len(parts), SQLITE_COMPOUND_LIMIT)
    ]
    return _union_all([f"SELECT * FROM (\n{_union_all(g, dialect)}\n)" for g in groups], dialect)


def _copy(node: exp.Expr) -> exp.Expr:
    return node.copy()


def _weight(node: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="WEIGHT_STRING", expressions=[node])


def _probe_columns(node: exp.Expr, index: int) -> list[exp.Expr]:
    """MySQL: the space weight of ``node``'s collation, and whether it is PAD SPACE."""
    empty = exp.Coalesce(this=exp.Min(this=node.copy()), expressions=[exp.Literal.string("")])
    spaced = exp.Concat(expressions=[empty.copy(), exp.Literal.string(" ")])
    return [
        exp.alias_(_weight(spaced.copy()), f"_p{index}"),
        exp.alias_(exp.EQ(this=spaced, expression=empty), f"_f{index}"),
    ]


# --- shared machinery ----------------------------------------------------------------------


@dataclass
class _Source:
    table: exp.Table
    logical: str
    alias: str


@dataclass
class _Planner:
    """What reads and writes share: the sources, table renaming, per-database grouping."""

    statement: exp.Expr
    topology: Topology
    dialect: Dialect
    shard_keys: Mapping[str, str]
    marker: str
    sources: list[_Source] = field(default_factory=list)
    pruning: Pruning | None = None

    def sql(self, node: exp.Expr) -> str:
        return node.sql(dialect=self.dialect, comments=False)

    def built(self, node: exp.Expr) -> str:
        """SQL of a tree built for one statement and not used again (generated in place)."""
        return node.sql(dialect=self.dialect, comments=False, copy=False)

    def source(self, table: exp.Expr) -> _Source:
        if not isinstance(table, exp.Table):
            raise _cannot_merge("a derived table or table function in FROM")
        if table.args.get("db") or table.args.get("catalog"):
            raise _refuse(
                f"the schema-qualified table {self.sql(table)}",
                "query-all rewrites logical table names to suffix tables in the database's "
                "default schema.",
                f"Write the bare logical table name ({', '.join(self.topology.table_names)}).",
            )
        if table.args.get("sample") or table.args.get("hints") or table.args.get("joins"):
            raise _cannot_merge(f"table options on {table.name}")
        name = _identifier(table.this)
        logical = {n.lower() if n == n.lower() else n: n for n in self.topology.table_names}
        if name not in logical:
            raise _refuse(
                f"the table '{table.name}'",
                f"it is not a sharded logical table of {self.topology.file} "
                f"({', '.join(self.topology.table_names)}), so query-all cannot tell whether "
                "every database holds the same copy of it.",
                "Query it on its own database.",
            )
        alias = _identifier(table.args["alias"].this) if table.alias else name
        return _Source(table, logical[name], alias)

    def renamed(self, node: exp.Expr, table_number: int | None, *, keep_alias: bool) -> Any:
        """A copy of ``node`` with every logical table renamed to its suffix table (to
        ``<logical>_<marker>`` when ``table_number`` is None, see :meth:`per_table`).

        ``keep_alias`` aliases an unaliased table to its logical name (``users_007 AS users``)
        so qualified column references still resolve."""
        copy = node.copy()
        for table in list(copy.find_all(exp.Table)):
            name = _identifier(table.this)
            logical = next(
                (s.logical for s in self.sources if _identifier(s.table.this) == name), None
            )
            if logical is None:
                continue
            physical = (
                f"{logical}_{self.marker}"
                if table_number is None
                else self.topology.suffix_table(logical, table_number)
            )
            if keep_alias and not table.alias:
                table.set("alias", exp.TableAlias(this=table.this.copy()))
            table.set("this", exp.to_identifier(physical, quoted=physical != physical.lower()))
        return copy

    def per_table(self, node: exp.Expr, numbers: Sequence[int], *, keep_alias: bool) -> list[str]:
        """The SQL of ``node`` on each table number's suffix tables, in ``numbers`` order.
        Generated once and then the suffix substituted, so planning does not grow with the
        number of suffix tables (sqlglot copies and generates ≈ 0.3 ms per branch)."""
        template = self.built(self.renamed(node, None, keep_alias=keep_alias))
        width = self.topology.width
        return [template.replace(self.marker, f"{n:0{width}d}") for n in numbers]

    def tables(self, table_numbers: Sequence[int]) -> tuple[str, ...]:
        logical = sorted({s.logical for s in self.sources})
        return tuple(self.topology.suffix_table(t, n) for n in table_numbers for t in logical)

    def key_of(self, source: _Source) -> str:
        return self.shard_keys.get(source.logical.lower(), "id")

    def prune(self, where: exp.Expr | None) -> None:
        """Set :attr:`pruning` from the top-level AND conjuncts of ``where`` that pin a routing
        key; several such conjuncts intersect. Every source counts: joined rows share their
        table number, and ``=``/``IN`` never accept the NULLs an outer join adds."""
        allowed: set[int] | None = None
        conditions = []
        for condition in _conjuncts(where):
            pinned = self.pinned(condition)
            if pinned is None:
                continue
            source, ids = pinned
            numbers = {self.topology.table_number(i) for i in ids if 0 <= i < ID_LIMIT}
            allowed = numbers if allowed is None else allowed & numbers
            column = f"{source.logical}.{self.key_of(source)}"
            values = ", ".join(map(str, ids))
            conditions.append(
                f"{column} = {values}" if len(ids) == 1 else f"{column} IN ({values})"
            )
        if allowed is None or len(allowed) == self.topology.suffix_count:
            return
        self.pruning = Pruning(
            tuple(sorted(allowed)) or (0,), len(allowed), self.topology.suffix_count,
            tuple(conditions),
        )  # fmt: skip

    def pinned(self, condition: exp.Expr) -> tuple[_Source, list[int]] | None:
        """``(source, ids)`` when ``condition`` is ``key = literal`` (either side) or ``key IN
        (literals …)`` on a source's routing key, every literal an integer."""
        if isinstance(condition, exp.EQ):
            column, values = condition.this, [condition.expression]
            if not isinstance(column, exp.Column):
                column, values = condition.expression, [condition.this]
        elif isinstance(condition, exp.In) and not any(
            value for arg, value in condition.args.items() if arg not in ("this", "expressions")
        ):
            column, values = condition.this, condition.expressions
        else:
            return None
        if not isinstance(column, exp.Column) or column.args.get("db") or not values:
            return None
        qualifier = column.args.get("table")
        if qualifier is not None:
            name = _identifier(qualifier)
            source = next((s for s in self.sources if s.alias == name), None)
        else:  # unqualified: only unambiguous with one table
            source = self.sources[0] if len(self.sources) == 1 else None
        if source is None or _identifier(column.this) != self.key_of(source):
            return None
        ids = [_integer_literal(value) for value in values]
        return None if None in ids else (source, [i for i in ids if i is not None])

    def assignments(self) -> list[tuple[PhysicalDatabase, list[int]]]:
        """Each physical database with the table numbers it serves for this plan (pruned)."""
        keep = None if self.pruning is None else set(self.pruning.table_numbers)
        result = []
        for database in self.topology.databases:
            numbers = [n for n in database.table_numbers if keep is None or n in keep]
            if numbers:
                result.append((database, numbers))
        return result


# --- reads ---------------------------------------------------------------------------------


@dataclass
class _Aggregate:
    kind: AggregateKind
    arg: exp.Expr | None  # None: COUNT(*)
    canon: str


@dataclass
class _ReadPlanner(_Planner):
    items: list[exp.Expr] = field(default_factory=list)
    keys: list[exp.Expr] = field(default_factory=list)
    key_canon: list[str] = field(default_factory=list)
    aggregates: list[_Aggregate] = field(default_factory=list)
    distinct_arg: exp.Expr | None = None
    weighted: list[exp.Expr] = field(default_factory=list)  # MySQL probe slots
    group_aliases: list[str] = field(default_factory=list)
    written_sql: str = ""  # the SQL as the user wrote it

    @property
    def select(self) -> exp.Select:
        assert isinstance(self.statement, exp.Select)
        return self.statement

    def plan(self) -> QueryPlan:
        select = self.select
        self.check_clauses(select)
        _check_nodes(select, self.dialect)
        from_ = select.args.get("from_")
        if from_ is None:
            raise _refuse(
                "a SELECT without FROM",
                "it names no logical table, so every database would return the same row.",
            )
        joins = select.args.get("joins") or []
        self.sources = [self.source(from_.this), *(self.source(j.this) for j in joins)]
        self.check_colocated(joins, select.args.get("where"))
        where = select.args.get("where")
        self.prune(where.this if where is not None else None)
        filters = [select.args.get("where"), *(j.args.get("on") for j in joins)]
        if any(f is not None and _has_aggregate(f) for f in filters):
            raise _refuse("an aggregate in WHERE or JOIN … ON", "aggregates belong in HAVING.")
        self.items = list(select.expressions)
        limit, offset = self.limits(select)
        grouped = (
            bool(select.args.get("distinct"))
            or select.args.get("group") is not None
            or select.args.get("having") is not None
            or any(_has_aggregate(item) for item in self.items)
        )
        base = exp.Select()
        for arg in ("from_", "where", "hint"):
            if select.args.get(arg):
                base.set(arg, select.args[arg].copy())
        if joins:
            base.set("joins", [join.copy() for join in joins])
        if grouped:
            return self.plan_groups(base, limit, offset)
        return self.plan_rows(base, limit, offset)

    def check_clauses(self, select: exp.Select) -> None:
        for arg, value in select.args.items():
            if value in (None, [], False) or arg in _ALLOWED_SELECT_ARGS:
                continue
            if arg == "with_" and any(isinstance(n, _WRITES) for n in value.walk()):
                write = next(n for n in value.walk() if isinstance(n, _WRITES))
                raise _refuse(
                    f"a data-modifying WITH ({_statement_name(write)} inside a common table "
                    "expression)",
                    "query-all is read-only by default and cannot split a write nested in a read.",
                )
            raise _cannot_merge(_SELECT_CLAUSES.get(arg, f"the {arg.upper()} clause"))
        distinct = select.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise _cannot_merge("DISTINCT ON", "Use GROUP BY with MIN/MAX.")
        group = select.args.get("group")
        if group is not None and any(group.args.get(a) for a in group.args if a != "expressions"):
            raise _cannot_merge("ROLLUP / CUBE / GROUPING SETS / WITH ROLLUP")

    def limits(self, select: exp.Select) -> tuple[int | None, int]:
        limit_node = select.args.get("limit")
        if isinstance(limit_node, exp.Fetch):
            options = limit_node.args.get("limit_options")
            if options is not None and (
                options.args.get("percent") or options.args.get("with_ties")
            ):
                raise _cannot_merge("FETCH … PERCENT / WITH TIES", "Use LIMIT.")
            limit = _integer(limit_node.args.get("count"), "FETCH", self.dialect)
        else:
            limit = _integer(limit_node.expression if limit_node else None, "LIMIT", self.dialect)
        offset_node = select.args.get("offset")
        offset = _integer(offset_node.expression if offset_node else None, "OFFSET", self.dialect)
        return limit, offset or 0

    def check_colocated(self, joins: Sequence[exp.Join], where: exp.Where | None) -> None:
        """Every joined table must be linked to the others by an equality of routing keys."""
        if len(self.sources) == 1:
            return
        parent = {s.alias: s.alias for s in self.sources}

        def find(alias: str) -> str:
            while parent[alias] != alias:
                alias = parent[alias]
            return alias

        by_alias = {s.alias: s for s in self.sources}
        conditions = _conjuncts(where.this if where is not None else None)
        for position, join in enumerate(joins, start=1):
            if join.args.get("method") or join.args.get("kind") in ("NATURAL",):
                raise _cannot_merge(f"a {join.args.get('method') or 'NATURAL'} join")
            conditions += _conjuncts(join.args.get("on"))
            right = self.sources[position]
            for column in join.args.get("using") or []:
                name = _identifier(column)
                partner = next(
                    (s for s in self.sources[:position] if self.colocated(s, name, right, name)),
                    None,
                )
                if partner is not None:
                    parent[find(right.alias)] = find(partner.alias)
        for condition in conditions:
            if not isinstance(condition, exp.EQ):
                continue
            left, right_col = condition.this, condition.expression
            if not (isinstance(left, exp.Column) and isinstance(right_col, exp.Column)):
                continue
            a, b = (
                by_alias.get(_identifier(left.args.get("table"))),
                by_alias.get(_identifier(right_col.args.get("table"))),
            )
            if a is None or b is None or a is b:
                continue
            if self.colocated(a, _identifier(left.this), b, _identifier(right_col.this)):
                parent[find(a.alias)] = find(b.alias)
        roots = {find(s.alias) for s in self.sources}
        if len(roots) > 1:
            expected = " = ".join(f"{s.alias}.{self.key_of(s)}" for s in self.sources[:2])
            raise _refuse(
                "a join that does not match rows on their routing keys",
                "joined rows are only guaranteed to live in the same table number when the "
                f"join equates the routing keys ({expected}); any other join would miss rows "
                "stored in different table numbers.",
                "Add that equality to ON or WHERE, with both columns qualified by their table.",
            )

    def colocated(self, a: _Source, a_column: str, b: _Source, b_column: str) -> bool:
        if a_column == self.key_of(a) and b_column == self.key_of(b):
            return True
        return a.logical == b.logical and a_column == b_column == "id"  # self-join on the PK

    # --- rows ----------------------------------------------------------------------------

    def plan_rows(self, base: exp.Select, limit: int | None, offset: int) -> QueryPlan:
        order = self.select.args.get("order")
        terms = list(order.expressions) if order is not None else []
        hidden: list[exp.Expr] = []
        specs: list[tuple[int, int | None, exp.Ordered]] = []
        for index, term in enumerate(terms):
            expression = self.order_expression(term.this)
            if _has_aggregate(expression):
                raise _refuse("an aggregate in ORDER BY without GROUP BY", "")
            hidden.append(exp.alias_(expression.copy(), f"_k{index}"))
            weight = None
            if self.dialect == "mysql" and _may_be_text(expression):
                weight = len(self.weighted)
                self.weighted.append(expression)
            specs.append((index, weight, term))
        weights = [
            exp.alias_(_weight(self.weighted[w].copy()), f"_w{w}")
            for w in range(len(self.weighted))
        ]
        projection = [*self.items, *hidden, *weights]
        count = len(hidden) + len(weights)
        sort = tuple(
            SortSpec(
                column=index - count,
                descending=bool(term.args.get("desc")),
                nulls_first=bool(term.args.get("nulls_first")),
                weight=None if weight is None else len(hidden) + weight - count,
                slot=weight or 0,
            )
            for index, weight, term in specs
        )
        ordered = [
            exp.Ordered(
                this=exp.column(f"_k{index}"),
                desc=term.args.get("desc"),
                nulls_first=term.args.get("nulls_first"),
            )
            for index, _, term in specs
        ]
        pushed = None if limit is None else limit + offset
        largest = max(len(numbers) for _, numbers in self.assignments())
        nested = self.dialect == "sqlite" and largest > SQLITE_COMPOUND_LIMIT
        if nested and len(self.sources) > 1 and any(_is_star(item) for item in self.items):
            raise _refuse(
                "* over a join here",
                f"a database holds {largest} suffix tables, more than SQLite's "
                f"{SQLITE_COMPOUND_LIMIT}-term UNION, and the nested union would rename the "
                "duplicate column names * produces.",
                "Name the columns.",
            )
        merge = RowMerge(self.dialect, hidden=count, order=sort, offset=offset, limit=limit)
        columns = None if any(_is_star(item) for item in self.items) else self.names()
        statements = []
        for database, numbers in self.assignments():
            branch = base.copy()
            branch.set("expressions", [node.copy() for node in projection])
            sql = self.rows_statement(branch, numbers, ordered, pushed)
            statements.append(self.database_statement(database, numbers, sql))
        return QueryPlan(
            self.sql(self.select),
            self.dialect,
            "rows",
            tuple(statements),
            columns,
            merge,
            pruning=self.pruning,
        )

    def rows_statement(
        self,
        branch: exp.Select,
        numbers: Sequence[int],
        ordered: list[exp.Ordered],
        limit: int | None,
    ) -> str:
        """One database's statement: the branch on each suffix table, UNION ALL, then ORDER BY
        and LIMIT; a LIMIT is also pushed into every branch (SQLite's grammar has no room)."""
        suffix_nodes: list[exp.Expr] = []
        if ordered:
            suffix_nodes.append(exp.Order(expressions=ordered))
        if limit is not None:
            suffix_nodes.append(exp.Limit(expression=exp.Literal.number(limit)))
        single = len(numbers) == 1
        per_branch = limit is not None and self.dialect != "sqlite"
        if single or per_branch:
            for node in suffix_nodes:
                branch.set("order" if isinstance(node, exp.Order) else "limit", node.copy())
        parts = self.per_table(branch, numbers, keep_alias=True)
        if single:
            return parts[0]
        if per_branch:
            parts = [f"({part})" for part in parts]
        suffix = " ".join(self.sql(node) for node in suffix_nodes)
        return _union_all(parts, self.dialect) + (f"\n{suffix}" if suffix else "")

    def order_expression(self, node: exp.Expr) -> exp.Expr:
        """An ORDER BY term as an expression: positions and output aliases resolved."""
        item = self.item_reference(node)
        if item is not None:
            if _is_star(item):
                raise _refuse(
                    f"ORDER BY {self.sql(node)} pointing at *",
                    "the position of a column inside * is only known to the database.",
                    "Name the column.",
                )
            return item.this if isinstance(item, exp.Alias) else item
        return node

    def item_reference(self, node: exp.Expr, *, positions: bool = True) -> exp.Expr | None:
        """The select item a bare position (``2``, when ``positions``) or output alias names."""
        if positions and isinstance(node, exp.Literal) and not node.is_string and node.is_int:
            position = int(node.this)
            if not 1 <= position <= len(self.items):
                raise _refuse(
                    f"position {position} in ORDER BY / GROUP BY",
                    f"the select list has {len(self.items)} item(s).",
                )
            return self.items[position - 1]
        if isinstance(node, exp.Column) and not node.table:
            name = _identifier(node.this)
            for item in self.items:
                if isinstance(item, exp.Alias) and _identifier(item.args["alias"]) == name:
                    return item
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(self.output_name(item) for item in self.items)

    def output_name(self, item: exp.Expr) -> str:
        """The column name the engine would give: alias, column name, or (PostgreSQL) the
        function name / ``?column?``; SQLite and MySQL name an expression by its SQL text."""
        if isinstance(item, exp.Alias):
            return str(item.alias)
        if isinstance(item, exp.Column):
            return str(item.name)
        if self.dialect == "postgres":
            if isinstance(item, exp.Func):
                return item.sql_name().lower()
            return "?column?"
        return self.written(item) or self.sql(item)

    def written(self, node: exp.Expr) -> str | None:
        """A function call's text as the user wrote it (``count( * )``), from its name to its
        closing parenthesis; ``None`` for other expressions (sqlglot does not locate them)."""
        spans = [(n.meta["start"], n.meta["end"]) for n in node.walk() if "start" in n.meta]
        if not isinstance(node, exp.Func) or "start" not in node.meta:
            return None
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        depth = 0
        for token in sqlglot.Dialect.get_or_raise(self.dialect).tokenize(self.written_sql):
            if token.start < start or (token.start > end and depth <= 0):
                continue
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
            end = max(end, token.end)
        return self.written_sql[start : end + 1] if depth == 0 else None

    def database_statement(
        self, database: PhysicalDatabase, numbers: Sequence[int], sql: str
    ) -> DatabaseStatement:
        probe = None
        if self.weighted:
            base = self.select.args["from_"]
            probe_select = exp.Select(
                expressions=[c for i, e in enumerate(self.weighted) for c in _probe_columns(e, i)]
            )
            probe_select.set("from_", base.copy())
            if self.select.args.get("joins"):
                probe_select.set("joins", [j.copy() for j in self.select.args["joins"]])
            probe_select.set("where", exp.Where(this=exp.false()))
            probe = self.built(self.renamed(probe_select, numbers[0], keep_alias=True))
        return DatabaseStatement(database, tuple(numbers), self.tables(numbers), (sql,), probe)

    # --- groups --------------------------------------------------------------------------

    def plan_groups(self, base: exp.Select, limit: int | None, offset: int) -> QueryPlan:
        select = self.select
        distinct = bool(select.args.get("distinct"))
        if any(_is_star(item) for item in self.items):
            raise _refuse(
                "* with GROUP BY, DISTINCT or aggregates", "the merger needs named columns."
            )
        if distinct:
            if select.args.get("group") is not None or any(map(_has_aggregate, self.items)):
                raise _cannot_merge("SELECT DISTINCT together with GROUP BY or aggregates")
            for item in self.items:
                self.add_key(item.this if isinstance(item, exp.Alias) else item)
        group = select.args.get("group")
        for node in group.expressions if group is not None else []:
            self.add_key(self.group_expression(node))
        outputs = tuple(self.operand(item, "the select list") for item in self.items)
        having_node = select.args.get("having")
        having = self.predicate(having_node.this) if having_node is not None else None
        order = select.args.get("order")
        sort = tuple(
            GroupOrder(
                self.operand(term.this, "ORDER BY", ordering=True),
                bool(term.args.get("desc")),
                bool(term.args.get("nulls_first")),
            )
            for term in (order.expressions if order is not None else [])
        )
        layout = self.layout()
        merge = GroupMerge(
            self.dialect,
            keys=layout.keys,
            aggregates=layout.aggregates,
            outputs=outputs,
            distinct=layout.distinct,
            having=having,
            order=sort,
            offset=offset,
            limit=limit,
            scalar=not distinct and group is None,
        )
        statements = []
        for database, numbers in self.assignments():
            sql = self.groups_statement(base, numbers, layout)
            statements.append(self.database_statement(database, numbers, sql))
        return QueryPlan(
            self.sql(select),
            self.dialect,
            "groups",
            tuple(statements),
            self.names(),
            merge,
            tuple(self.group_aliases),
            self.pruning,
        )

    def canon(self, node: exp.Expr) -> str:
        """Text that is equal for two spellings of the same expression (identifier case,
        table qualifiers when there is a single table)."""
        copy = node.copy()
        for identifier in copy.find_all(exp.Identifier):
            if not identifier.quoted:
                identifier.set("this", str(identifier.this).lower())
        if len(self.sources) == 1:
            for column in copy.find_all(exp.Column):
                column.set("table", None)
        return self.built(copy)

    def add_key(self, node: exp.Expr) -> None:
        if _has_aggregate(node):
            raise _refuse(f"the aggregate {self.sql(node)} in GROUP BY", "")
        canon = self.canon(node)
        if canon not in self.key_canon:
            self.keys.append(node)
            self.key_canon.append(canon)

    def group_expression(self, node: exp.Expr) -> exp.Expr:
        """A GROUP BY term as an expression. An output alias is accepted only when the
        statement reads no column of that name (GROUP BY prefers the column in every engine);
        :attr:`QueryPlan.group_aliases` lets the service check the tables too."""
        item = self.item_reference(node)
        if item is None:
            return node
        if isinstance(node, exp.Column) and isinstance(item, exp.Alias):
            name = _identifier(node.this)
            if name in self.input_columns():
                raise _refuse(
                    f"GROUP BY {node.name}",
                    f"'{node.name}' is both an output alias and a column, and GROUP BY would "
                    "mean the column.",
                    "Rename the alias or group by the expression itself.",
                )
            self.group_aliases.append(name)
        return item.this if isinstance(item, exp.Alias) else item

    def input_columns(self) -> set[str]:
        """Names of the columns the statement reads (select items, WHERE, JOIN … ON)."""
        nodes = [*self.items, self.select.args.get("where")]
        nodes += [join.args.get("on") for join in self.select.args.get("joins") or []]
        return {
            _identifier(column.this)
            for node in nodes
            if node is not None
            for column in node.find_all(exp.Column)
        }

    def aggregate(self, node: exp.Expr) -> int:
        kind = _AGGREGATES[type(node)]
        arg: exp.Expr | None = node.this
        if isinstance(arg, exp.Star):
            arg = None
        elif isinstance(arg, exp.Distinct):
            values = arg.expressions
            if kind in ("sum", "avg") or len(values) != 1:
                raise _cannot_merge(
                    f"{self.sql(node)}",
                    "Only COUNT(DISTINCT x), MIN(DISTINCT x) and MAX(DISTINCT x) are merged.",
                )
            arg = values[0]
            if kind == "count":
                kind = "count_distinct"
                self.add_distinct(arg)
        if isinstance(node, exp.Count) and node.expressions:
            raise _cannot_merge(f"{self.sql(node)} with several arguments")
        if arg is not None and _has_aggregate(arg):
            raise _refuse(f"the nested aggregate {self.sql(node)}", "")
        canon = f"{kind}:{self.canon(arg) if arg is not None else '*'}"
        for index, existing in enumerate(self.aggregates):
            if existing.canon == canon:
                return index
        self.aggregates.append(_Aggregate(kind, arg, canon))
        return len(self.aggregates) - 1

    def add_distinct(self, arg: exp.Expr) -> None:
        if self.distinct_arg is not None and self.canon(self.distinct_arg) != self.canon(arg):
            raise _cannot_merge(
                "COUNT(DISTINCT …) over two different expressions",
                "One COUNT(DISTINCT x) expression per query is merged exactly.",
            )
        self.distinct_arg = arg

    def operand(self, node: exp.Expr, where: str, *, ordering: bool = False) -> Operand:
        """A select item / ORDER BY / HAVING term as a GROUP BY key, aggregate or constant."""
        if ordering or (where == "HAVING" and self.dialect != "postgres"):
            item = self.item_reference(node, positions=ordering)
            if item is not None:
                node = item
        expression = node.this if isinstance(node, exp.Alias) else node
        if isinstance(expression, exp.Paren):
            return self.operand(expression.this, where, ordering=ordering)
        canon = self.canon(expression)
        if canon in self.key_canon:
            return Operand("key", self.key_canon.index(canon))
        if type(expression) in _AGGREGATES:
            return Operand("agg", self.aggregate(expression))
        is_constant, value = constant(expression, self.dialect)
        if is_constant:
            return Operand("const", value)
        if _has_aggregate(expression):
            raise _cannot_merge(
                f"the expression {self.sql(expression)} over aggregates in {where}",
                "Select the aggregates themselves and compute on the merged output.",
            )
        raise _refuse(
            f"{self.sql(expression)} in {where}",
            "with GROUP BY, DISTINCT or aggregates every output must be a GROUP BY key (or, "
            "with DISTINCT, a selected column), an aggregate or a constant.",
        )

    def predicate(self, node: exp.Expr) -> Predicate:
        """HAVING as a predicate the merger evaluates: AND/OR/NOT, comparisons, IS NULL,
        BETWEEN and IN over aggregates, GROUP BY keys and numbers."""
        if isinstance(node, exp.Paren):
            return self.predicate(node.this)
        if isinstance(node, exp.And | exp.Or):
            op: Literal["and", "or"] = "and" if isinstance(node, exp.And) else "or"
            return Junction(op, (self.predicate(node.left), self.predicate(node.right)))
        if isinstance(node, exp.Not):
            return Negation(self.predicate(node.this))
        if type(node) in _COMPARISONS:
            return Comparison(
                _COMPARISONS[type(node)],
                self.having_operand(node.this),
                self.having_operand(node.expression),
            )
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return NullTest(self.having_operand(node.this))
        if isinstance(node, exp.Between):
            return Range(
                self.having_operand(node.this),
                self.having_operand(node.args["low"]),
                self.having_operand(node.args["high"]),
            )
        if isinstance(node, exp.In) and not node.args.get("query"):
            return Membership(
                self.having_operand(node.this),
                tuple(self.having_operand(v) for v in node.expressions),
            )
        raise _cannot_merge(
            f"HAVING {self.sql(node)}",
            "HAVING may combine (AND/OR/NOT) comparisons, IS NULL, BETWEEN and IN over "
            "aggregates, GROUP BY keys and numbers.",
        )

    def having_operand(self, node: exp.Expr) -> Operand:
        is_constant, value = constant(node, self.dialect)
        if not is_constant:
            return self.operand(node, "HAVING")
        if isinstance(value, str):
            raise _refuse(
                f"the text literal {self.sql(node)} in HAVING",
                "the merger compares numbers only; text comparison follows the collation.",
                "Move text conditions to WHERE.",
            )
        return Operand("const", value)

    # --- per-database SQL for groups ------------------------------------------------------

    def layout(self) -> _GroupLayout:
        """Column positions of the per-database rows: keys, distinct arg, partials, weights."""
        layout = _GroupLayout()
        position = len(self.keys) + (self.distinct_arg is not None)
        for aggregate in self.aggregates:
            if aggregate.kind == "count_distinct":
                layout.partials.append(())
                continue
            width = 2 if aggregate.kind == "avg" else 1
            layout.partials.append(tuple(range(position, position + width)))
            position += width
        weight_of: dict[tuple[str, int], int] = {}
        mysql = self.dialect == "mysql"
        subjects: list[tuple[str, int, exp.Expr]] = [("key", i, k) for i, k in enumerate(self.keys)]
        if self.distinct_arg is not None:
            subjects.append(("distinct", 0, self.distinct_arg))
        subjects += [
            ("agg", j, a.arg)
            for j, a in enumerate(self.aggregates)
            if a.kind in ("min", "max") and a.arg is not None
        ]
        for role, index, expression in subjects:
            if mysql and _may_be_text(expression):
                slot = len(self.weighted)
                self.weighted.append(expression)
                layout.weights.append((role, index))
                weight_of[(role, index)] = slot
        weight_base = position

        def weight(role: str, index: int) -> tuple[int | None, int]:
            slot = weight_of.get((role, index))
            return (None, 0) if slot is None else (weight_base + slot, slot)

        layout.keys = tuple(KeyColumn(i, *weight("key", i)) for i in range(len(self.keys)))
        if self.distinct_arg is not None:
            layout.distinct = KeyColumn(len(self.keys), *weight("distinct", 0))
        slots = []
        for j, aggregate in enumerate(self.aggregates):
            partial = layout.partials[j]
            column = partial[0] if partial else -1
            count_column = partial[1] if len(partial) > 1 else -1
            w, slot = weight("agg", j) if aggregate.kind in ("min", "max") else (None, 0)
            slots.append(AggregateSlot(aggregate.kind, column, count_column, w, slot))
        layout.aggregates = tuple(slots)
        return layout

    def groups_statement(
        self, base: exp.Select, numbers: Sequence[int], layout: _GroupLayout
    ) -> str:
        group_exprs = [*self.keys, *([self.distinct_arg] if self.distinct_arg is not None else [])]
        names = [f"_g{i}" for i in range(len(self.keys))]
        if self.distinct_arg is not None:
            names.append("_d")
        if len(numbers) == 1:
            direct = self.renamed(base, numbers[0], keep_alias=True)
            direct.set(
                "expressions",
                [exp.alias_(e.copy(), n) for e, n in zip(group_exprs, names, strict=True)]
                + self.partials(_copy, combine=False)
                + self.weights(layout, group_exprs, _copy, combine=False),
            )
            if group_exprs:
                direct.set("group", exp.Group(expressions=[e.copy() for e in group_exprs]))
            return self.built(direct)
        partial = self.dialect in PARTIAL_AGGREGATION
        if partial:
            inner = [exp.alias_(e.copy(), n) for e, n in zip(group_exprs, names, strict=True)]
            inner += self.partials(_copy, combine=False)
            argument_of: Callable[[exp.Expr], exp.Expr] = _copy
        else:
            args: dict[str, str] = {}
            inner = [exp.alias_(e.copy(), n) for e, n in zip(group_exprs, names, strict=True)]
            for aggregate in self.aggregates:
                if aggregate.arg is not None and aggregate.kind != "count_distinct":
                    canon = self.canon(aggregate.arg)
                    if canon not in args:
                        args[canon] = f"_x{len(args)}"
                        inner.append(exp.alias_(aggregate.arg.copy(), args[canon]))
            if not inner:
                inner = [exp.alias_(exp.Literal.number(1), "_x")]

            def argument_of(arg: exp.Expr) -> exp.Expr:
                return exp.column(args[self.canon(arg)])

        branch = base.copy()
        branch.set("expressions", [node.copy() for node in inner])
        if partial and group_exprs:
            branch.set("group", exp.Group(expressions=[e.copy() for e in group_exprs]))
        branches = self.per_table(branch, numbers, keep_alias=True)
        columns = [exp.column(n) for n in names]
        outer = exp.Select(
            expressions=[*columns]
            + self.partials(argument_of, combine=partial)
            + self.weights(layout, columns, argument_of, combine=partial)
        )
        outer.set("from_", exp.From(this=exp.to_table(UNION_PLACEHOLDER)))
        if columns:
            outer.set("group", exp.Group(expressions=[c.copy() for c in columns]))
        union = _union_all(branches, self.dialect)
        return self.built(outer).replace(UNION_PLACEHOLDER, f"(\n{union}\n) AS _u", 1)

    def partials(
        self, argument_of: Callable[[exp.Expr], exp.Expr], *, combine: bool
    ) -> list[exp.Expr]:
        """Per-database aggregate columns. ``combine``: re-aggregate per-branch partials
        (columns ``_aN``) instead of aggregating ``argument_of(arg)``."""
        columns: list[exp.Expr] = []
        for j, aggregate in enumerate(self.aggregates):
            kind = aggregate.kind
            if kind == "count_distinct":
                continue
            parts = ["sum", "count"] if kind == "avg" else [kind]
            for part_index, part in enumerate(parts):
                alias = f"_a{j}" + ("_n" if part_index else "")
                node: exp.Expr
                if combine:
                    combiner = _COMBINE.get(part, exp.Sum)
                    node = combiner(this=exp.column(alias))
                elif aggregate.arg is None:
                    node = exp.Count(this=exp.Star())
                else:
                    node = _FUNCTIONS[part](this=argument_of(aggregate.arg))
                columns.append(exp.alias_(node, alias))
        return columns

    def weights(
        self,
        layout: _GroupLayout,
        key_nodes: Sequence[exp.Expr],
        argument_of: Callable[[exp.Expr], exp.Expr],
        *,
        combine: bool,
    ) -> list[exp.Expr]:
        columns: list[exp.Expr] = []
        for slot, (role, index) in enumerate(layout.weights):
            if role == "key":
                subject = key_nodes[index].copy()
            elif role == "distinct":
                subject = key_nodes[len(self.keys)].copy()
            else:
                aggregate = self.aggregates[index]
                function = exp.Min if aggregate.kind == "min" else exp.Max
                assert aggregate.arg is not None
                inner = exp.column(f"_a{index}") if combine else argument_of(aggregate.arg)
                subject = function(this=inner)
            columns.append(exp.alias_(_weight(subject), f"_w{slot}"))
        return columns


@dataclass
class _GroupLayout:
    keys: tuple[KeyColumn, ...] = ()
    distinct: KeyColumn | None = None
    aggregates: tuple[AggregateSlot, ...] = ()
    partials: list[tuple[int, ...]] = field(default_factory=list)
    weights: list[tuple[str, int]] = field(default_factory=list)


def _is_star(node: exp.Expr) -> bool:
    return isinstance(node, exp.Star) or (
        isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
    )


# --- writes --------------------------------------------------------------------------------


@dataclass
class _WritePlanner(_Planner):
    """UPDATE/DELETE of one logical table, run on every suffix table (``--write --yes``)."""

    def plan(self) -> QueryPlan:
        statement = self.statement
        name = _statement_name(statement)
        table = statement.this
        for arg in ("from_", "using", "tables", "returning", "order", "limit", "with_", "joins"):
            if statement.args.get(arg):
                raise _refuse(
                    f"{name} with {arg.rstrip('_').upper()}",
                    "only single-table UPDATE/DELETE … WHERE runs on every suffix table.",
                )
        if isinstance(table, exp.Table) and table.args.get("joins"):
            raise _refuse(f"a multi-table {name}", "it cannot be split per suffix table.")
        _check_nodes(statement, self.dialect)
        self.sources = [self.source(table)]
        key = self.key_of(self.sources[0])
        for assignment in statement.expressions if isinstance(statement, exp.Update) else []:
            column = _identifier(assignment.this.this) if assignment.this else ""
            if column == key:
                raise _refuse(
                    f"UPDATE … SET {column}",
                    f"'{column}' decides the table number, and a row cannot move between suffix "
                    "tables in place.",
                    "Copy the row to its new table and delete the old one.",
                )
        where = statement.args.get("where")
        self.prune(where.this if where is not None else None)
        clean = statement.copy()
        for reference in clean.find_all(exp.Column):
            reference.set("table", None)
        clean.this.set("alias", None)
        statements = []
        for database, numbers in self.assignments():
            sqls = tuple(self.per_table(clean, numbers, keep_alias=False))
            statements.append(
                DatabaseStatement(database, tuple(numbers), self.tables(numbers), sqls)
            )
        return QueryPlan(
            self.sql(statement),
            self.dialect,
            "write",
            tuple(statements),
            None,
            None,
            pruning=self.pruning,
        )
