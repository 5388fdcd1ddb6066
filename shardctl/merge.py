"""Combine per-database results into the answer one database would have given. Pure Python.

The databases do the per-table work (filtering, joining, partial aggregation, sorting); this
module only combines what they return, with the target engine's comparison rules:

* ``NULL`` sorts first ascending on SQLite and MySQL, last on PostgreSQL (``nulls_first`` is
  decided by the planner from the dialect and any explicit ``NULLS FIRST/LAST``);
* SQLite orders storage classes numbers < text < blob, text by code point (``BINARY``);
* PostgreSQL sorts ``NaN`` above every number; text is compared by code point, which is only
  right under a ``C``-like collation: a database that reports another collation sets
  :attr:`StreamInfo.text_exact` to false and any text comparison is refused (:class:`MergeError`);
* MySQL/MariaDB compare text by collation (``'a' = 'A' = 'a '`` under the default
  ``utf8mb4_general_ci``): the planner asks for ``WEIGHT_STRING(x)`` beside every text value
  the merger compares, and for each collation's space weight when it is ``PAD SPACE``;
  :class:`PadWeight` compares those weights exactly as the server compares the strings.

Aggregates combine as ``COUNT`` = sum of counts, ``SUM`` = sum (``NULL`` when every partial is
``NULL``), ``MIN``/``MAX`` = extreme, ``AVG`` = total / count with the engine's own result type
and rounding, ``COUNT(DISTINCT x)`` = size of the union of the distinct values. Floating-point
``SUM``/``AVG`` may differ from a single-table run in the last digits (addition order changes),
exactly as two plans of the same query on one database may.
"""

from __future__ import annotations

import decimal
import heapq
import itertools
import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from operator import itemgetter
from typing import Any, Literal, TypeAlias

from shardctl.errors import ShardctlError

Dialect = Literal["sqlite", "postgres", "mysql"]
Row: TypeAlias = tuple[Any, ...]
AggregateKind = Literal["count", "sum", "min", "max", "avg", "count_distinct"]
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
PG_MIN_SIG_DIGITS = 16  # numeric.c NUMERIC_MIN_SIG_DIGITS
PG_DEC_DIGITS = 4  # decimal digits per numeric base-10000 digit
PG_MAX_DISPLAY_SCALE = 1000
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[]
)  # additions and rescaling without rounding


class MergeError(ShardctlError):
    """The databases returned values the merger cannot combine exactly; nothing is guessed."""


@dataclass(frozen=True)
class StreamInfo:
    """How one database compares values, learnt when connecting.

    ``pads[slot]`` is the space weight of the collation of weighted value ``slot`` (MySQL)
    when that collation is ``PAD SPACE``, ``None`` when trailing spaces count.
    """

    text_exact: bool = True
    pads: tuple[bytes | None, ...] = ()
    div_precision_increment: int = 4
    max_decimal_scale: int = 30
    why_inexact: str = ""


class PadWeight:
    """A MySQL ``WEIGHT_STRING`` compared as the server compares the string it came from.

    Under ``PAD SPACE`` the shorter string is compared as if padded with spaces, so trailing
    space weights are dropped for equality and the remainder of the longer weight is compared
    with repeated space weights for order (``'a\\t' < 'a' = 'a '``).
    """

    __slots__ = ("canon", "pad")

    def __init__(self, weight: bytes, pad: bytes | None) -> None:
        if pad:
            unit = len(pad)
            while weight.endswith(pad) and len(weight) % unit == 0:
                weight = weight[:-unit]
        self.canon = weight
        self.pad = pad

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PadWeight) and self.canon == other.canon

    def __hash__(self) -> int:
        return hash(self.canon)

    def __lt__(self, other: PadWeight) -> bool:
        a, b = self.canon, other.canon
        n = min(len(a), len(b))
        if a[:n] != b[:n] or not self.pad or len(a) == len(b):
            return a < b
        if len(a) < len(b):
            rest = b[n:]
            return self.pad * (len(rest) // len(self.pad) + 1) < rest
        rest = a[n:]
        return rest < self.pad * (len(rest) // len(self.pad) + 1)

    def __repr__(self) -> str:
        return f"PadWeight({self.canon.hex()})"


class _Reverse:
    """Inverts the order of a key (a descending sort column)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and bool(self.key == other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __lt__(self, other: _Reverse) -> bool:
        return bool(other.key < self.key)


_NUMBER, _NAN, _TEXT, _BYTES, _OTHER = range(5)


def value_key(
    dialect: Dialect, value: Any, info: StreamInfo, weight: Any = None, slot: int = 0
) -> Hashable:
    """A hashable, orderable key for a non-``NULL`` value: equal and ordered as the engine does.

    ``weight`` is the value's ``WEIGHT_STRING`` (MySQL text only); ``slot`` picks its pad.
    """
    if isinstance(value, bool | int | Decimal):
        return (_NAN, 0) if isinstance(value, Decimal) and value.is_nan() else (_NUMBER, value)
    if isinstance(value, float):
        return (_NAN, 0) if math.isnan(value) else (_NUMBER, value)
    if isinstance(value, str):
        if not info.text_exact:
            raise MergeError(
                f"Cannot merge text values exactly: {info.why_inexact} Sort, group and take "
                "MIN/MAX on non-text columns, or run the query against a database whose "
                "collation is C."
            )
        if dialect == "mysql":
            if weight is None:
                raise MergeError("MySQL returned a text value without its collation weight.")
            pad = info.pads[slot] if slot < len(info.pads) else None
            return (_TEXT, PadWeight(bytes(weight), pad))
        return (_TEXT, value)
    if isinstance(value, bytes | bytearray | memoryview):
        return (_BYTES, bytes(value))
    if isinstance(value, list | dict | set):
        raise MergeError(
            f"Cannot merge values of type {type(value).__name__} (arrays/JSON): their "
            "ordering and equality rules are the database's own. Select them without "
            "ORDER BY, GROUP BY, DISTINCT or MIN/MAX."
        )
    return (_OTHER, value)  # dates, times, UUIDs …: Python orders them as the engines do


def _component(key: Hashable | None, descending: bool, nulls_first: bool) -> tuple[Any, ...]:
    if key is None:
        return (0 if nulls_first else 2,)
    return (1, _Reverse(key) if descending else key)


@dataclass(frozen=True)
class SortSpec:
    """One ORDER BY term over merged rows: the value at ``column`` (negative: from the end)."""

    column: int
    descending: bool
    nulls_first: bool
    weight: int | None = None  # MySQL: index of the value's WEIGHT_STRING column
    slot: int = 0


@dataclass(frozen=True)
class RowMerge:
    """Rows without aggregation: concatenate, or k-way merge streams that arrive sorted."""

    dialect: Dialect
    hidden: int = 0  # trailing sort-key columns to drop
    order: tuple[SortSpec, ...] = ()
    offset: int = 0
    limit: int | None = None

    def merge(self, streams: Sequence[Iterable[Row]], infos: Sequence[StreamInfo]) -> Iterator[Row]:
        """The final rows. Ordered plans need one sorted stream per database; unordered plans
        may pass everything as one stream."""
        if self.order:
            keyed = [
                ((self._key(row, info), row) for row in stream)
                for stream, info in zip(streams, infos, strict=True)
            ]
            rows: Iterator[Row] = (row for _, row in heapq.merge(*keyed, key=itemgetter(0)))
        else:
            rows = itertools.chain.from_iterable(streams)
        stop = None if self.limit is None else self.offset + self.limit
        cut = -self.hidden if self.hidden else None
        try:
            for row in itertools.islice(rows, self.offset, stop):
                yield row[:cut]
        except TypeError as error:
            raise _incomparable(error) from None

    def _key(self, row: Row, info: StreamInfo) -> tuple[Any, ...]:
        parts: list[Any] = []
        for spec in self.order:
            value = row[spec.column]
            key = None
            if value is not None:
                weight = row[spec.weight] if spec.weight is not None else None
                key = value_key(self.dialect, value, info, weight, spec.slot)
            parts.append(_component(key, spec.descending, spec.nulls_first))
        return tuple(parts)


def _incomparable(error: TypeError) -> MergeError:
    return MergeError(f"Cannot order values of different types across databases ({error}).")


# --- grouped results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    """A value of a merged group: GROUP BY key ``i``, aggregate ``i``, or a constant."""

    kind: Literal["key", "agg", "const"]
    value: Any


@dataclass(frozen=True)
class Comparison:
    op: Literal["=", "<>", "<", "<=", ">", ">="]
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Junction:
    op: Literal["and", "or"]
    items: tuple[Predicate, ...]


@dataclass(frozen=True)
class Negation:
    item: Predicate


@dataclass(frozen=True)
class NullTest:
    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class Range:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class Membership:
    operand: Operand
    values: tuple[Operand, ...]
    negated: bool = False


Predicate: TypeAlias = Comparison | Junction | Negation | NullTest | Range | Membership


@dataclass(frozen=True)
class KeyColumn:
    """Where a GROUP BY key (or the COUNT(DISTINCT) argument) sits in a partial row."""

    column: int
    weight: int | None = None
    slot: int = 0


@dataclass(frozen=True)
class AggregateSlot:
    """One aggregate: its partial column(s) in each database's rows."""

    kind: AggregateKind
    column: int = -1  # COUNT/SUM/MIN/MAX value, AVG partial sum
    count_column: int = -1  # AVG partial count
    weight: int | None = None  # MIN/MAX (MySQL): WEIGHT_STRING of the partial value
    slot: int = 0


@dataclass(frozen=True)
class GroupOrder:
    operand: Operand
    descending: bool
    nulls_first: bool


@dataclass
class _Group:
    keys: list[Any]
    key_orders: list[Hashable | None]
    acc: list[Any]
    distinct: set[Hashable] = field(default_factory=set)


@dataclass(frozen=True)
class GroupMerge:
    """GROUP BY / aggregates / SELECT DISTINCT: combine partial groups, then HAVING, ORDER BY,
    OFFSET/LIMIT. Without GROUP BY (``scalar``) there is exactly one group, even with no rows."""

    dialect: Dialect
    keys: tuple[KeyColumn, ...]
    aggregates: tuple[AggregateSlot, ...]
    outputs: tuple[Operand, ...]
    distinct: KeyColumn | None = None
    having: Predicate | None = None
    order: tuple[GroupOrder, ...] = ()
    offset: int = 0
    limit: int | None = None
    scalar: bool = False

    def merge(
        self, batches: Iterable[tuple[int, Sequence[Row]]], infos: Sequence[StreamInfo]
    ) -> Iterator[Row]:
        """Final rows from ``(stream index, rows)`` batches (in any order, any interleaving)."""
        groups: dict[tuple[Hashable, ...], _Group] = {}
        try:
            for stream, rows in batches:
                info = infos[stream]
                for row in rows:
                    self._add(groups, row, info)
            if self.scalar and not groups:
                groups[()] = self._new_group([], [])
            first = infos[0] if infos else StreamInfo()
            finished = [self._finish(group, first) for group in groups.values()]
            if self.having is not None:
                having = self.having
                finished = [g for g in finished if _truth(having, g) is True]
            if self.order:
                finished.sort(key=self._order_key)
        except TypeError as error:
            raise _incomparable(error) from None
        stop = None if self.limit is None else self.offset + self.limit
        for keys, values, _ in finished[self.offset : stop]:
            yield tuple(_resolve(operand, keys, values) for operand in self.outputs)

    def _new_group(self, keys: list[Any], key_orders: list[Hashable | None]) -> _Group:
        acc: list[Any] = []
        for aggregate in self.aggregates:
            if aggregate.kind == "count":
                acc.append(0)
            elif aggregate.kind == "avg":
                acc.append([None, 0])
            else:
                acc.append(None)
        return _Group(keys, key_orders, acc)

    def _key_of(self, row: Row, column: KeyColumn, info: StreamInfo) -> Hashable | None:
        value = row[column.column]
        if value is None:
            return None
        weight = row[column.weight] if column.weight is not None else None
        return value_key(self.dialect, value, info, weight, column.slot)

    def _add(self, groups: dict[tuple[Hashable, ...], _Group], row: Row, info: StreamInfo) -> None:
        orders = [self._key_of(row, column, info) for column in self.keys]
        identity = tuple(orders)
        group = groups.get(identity)
        if group is None:
            keys = [row[column.column] for column in self.keys]
            group = groups[identity] = self._new_group(keys, orders)
        if self.distinct is not None:
            distinct = self._key_of(row, self.distinct, info)
            if distinct is not None:
                group.distinct.add(distinct)
        for index, aggregate in enumerate(self.aggregates):
            kind = aggregate.kind
            if kind == "count_distinct":
                continue
            value = row[aggregate.column]
            if kind == "count":
                group.acc[index] += int(value or 0)
            elif kind == "avg":
                pair = group.acc[index]
                pair[0] = _add(pair[0], value)
                pair[1] += int(row[aggregate.count_column] or 0)
            elif value is None:
                continue
            elif kind == "sum":
                group.acc[index] = _add(group.acc[index], value)
            else:
                weight = row[aggregate.weight] if aggregate.weight is not None else None
                key = value_key(self.dialect, value, info, weight, aggregate.slot)
                current = group.acc[index]
                if current is None or (key < current[1] if kind == "min" else current[1] < key):
                    group.acc[index] = (value, key)

    def _finish(self, group: _Group, info: StreamInfo) -> tuple[list[Any], list[Any], _Group]:
        values: list[Any] = []
        for index, aggregate in enumerate(self.aggregates):
            acc = group.acc[index]
            if aggregate.kind == "count_distinct":
                values.append(len(group.distinct))
            elif aggregate.kind in ("min", "max"):
                values.append(None if acc is None else acc[0])
            elif aggregate.kind == "avg":
                values.append(average(self.dialect, acc[0], acc[1], info))
            elif aggregate.kind == "sum":
                values.append(self._checked_sum(acc))
            else:
                values.append(acc)
        return group.keys, values, group

    def _checked_sum(self, total: Any) -> Any:
        if (
            self.dialect != "mysql"
            and isinstance(total, int)
            and not isinstance(total, bool)
            and not INT64_MIN <= total <= INT64_MAX
        ):
            raise MergeError(
                "SUM overflows a 64-bit integer; the database would fail with 'integer "
                "overflow' / 'bigint out of range' on one table too. Sum CAST(x AS "
                "NUMERIC/REAL) instead."
            )
        return total

    def _order_key(self, finished: tuple[list[Any], list[Any], _Group]) -> tuple[Any, ...]:
        keys, values, group = finished
        parts: list[Any] = []
        for term in self.order:
            operand = term.operand
            key: Hashable | None
            if operand.kind == "key":
                key = group.key_orders[operand.value]
            elif operand.kind == "agg" and self.aggregates[operand.value].kind in ("min", "max"):
                acc = group.acc[operand.value]
                key = None if acc is None else acc[1]
            else:
                value = _resolve(operand, keys, values)
                key = None if value is None else value_key(self.dialect, value, StreamInfo())
            parts.append(_component(key, term.descending, term.nulls_first))
        return tuple(parts)


def _add(total: Any, value: Any) -> Any:
    if value is None:
        return total
    if total is None:
        return value
    if isinstance(total, Decimal) or isinstance(value, Decimal):
        return _EXACT.add(Decimal(total), Decimal(value))
    return total + value


def _resolve(operand: Operand, keys: list[Any], values: list[Any]) -> Any:
    if operand.kind == "key":
        return keys[operand.value]
    if operand.kind == "agg":
        return values[operand.value]
    return operand.value


# --- AVG -----------------------------------------------------------------------------------


def average(dialect: Dialect, total: Any, count: int, info: StreamInfo) -> Any:
    """``AVG`` from a total and a count, with the engine's result type and rounding.

    SQLite: a double. PostgreSQL: ``numeric`` for integer/numeric input, scale chosen like
    ``numeric_div`` (at least 16 significant digits), rounded half away from zero; double
    for float input. MySQL: ``DECIMAL`` with the input scale + ``div_precision_increment``,
    rounded half up; double for float input.
    """
    if total is None or count == 0:
        return None
    if isinstance(total, float) or dialect == "sqlite":
        if not isinstance(total, int | float | Decimal):
            raise MergeError(f"Cannot average values of type {type(total).__name__}.")
        return float(total) / count
    if not isinstance(total, int | Decimal) or isinstance(total, bool):
        raise MergeError(
            f"Cannot average values of type {type(total).__name__} exactly (only numbers)."
        )
    numerator = Decimal(total)
    if dialect == "postgres":
        scale = _pg_division_scale(numerator, Decimal(count))
    else:
        scale = min(_scale(numerator) + info.div_precision_increment, info.max_decimal_scale)
    return _round_half_away(Fraction(numerator) / count, scale)


def _scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _pg_weight(value: Decimal) -> tuple[int, int]:
    """PostgreSQL numeric's base-10000 weight and leading digit (0, 0 for zero)."""
    if value == 0:
        return 0, 0
    magnitude = abs(value)
    weight = magnitude.adjusted() // PG_DEC_DIGITS
    return weight, int(_EXACT.scaleb(magnitude, -PG_DEC_DIGITS * weight))


def _pg_division_scale(dividend: Decimal, divisor: Decimal) -> int:
    """``select_div_scale`` from PostgreSQL's numeric.c."""
    weight1, first1 = _pg_weight(dividend)
    weight2, first2 = _pg_weight(divisor)
    quotient_weight = weight1 - weight2 - (1 if first1 <= first2 else 0)
    scale = PG_MIN_SIG_DIGITS - quotient_weight * PG_DEC_DIGITS
    scale = max(scale, _scale(dividend), _scale(divisor), 0)
    return min(scale, PG_MAX_DISPLAY_SCALE)


def _round_half_away(value: Fraction, scale: int) -> Decimal:
    scaled = abs(value) * 10**scale
    digits = math.floor(scaled + Fraction(1, 2))
    return _EXACT.scaleb(Decimal(-digits if value < 0 else digits), -scale)


# --- HAVING --------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    if value is None or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
        return value
    raise MergeError(
        f"HAVING compares a {type(value).__name__} value; shardctl evaluates HAVING after "
        "merging and compares numbers only. Move the condition to WHERE, or compare a COUNT, "
        "SUM, AVG, MIN or MAX of a numeric column."
    )


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    if isinstance(left, float) and isinstance(right, Decimal):
        right = float(right)
    elif isinstance(right, float) and isinstance(left, Decimal):
        left = float(left)
    if op == "=":
        return bool(left == right)
    if op == "<>":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _both(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _either(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


def _truth(predicate: Predicate, finished: tuple[list[Any], list[Any], _Group]) -> bool | None:
    """SQL three-valued truth of a HAVING predicate for one merged group."""
    keys, values, _ = finished

    def value(operand: Operand) -> Any:
        return _number(_resolve(operand, keys, values))

    if isinstance(predicate, Comparison):
        return _compare(predicate.op, value(predicate.left), value(predicate.right))
    if isinstance(predicate, Junction):
        combine = _both if predicate.op == "and" else _either
        result: bool | None = predicate.op == "and"
        for item in predicate.items:
            result = combine(result, _truth(item, finished))
        return result
    if isinstance(predicate, Negation):
        return _not(_truth(predicate.item, finished))
    if isinstance(predicate, NullTest):  # any type may be tested for NULL
        return (_resolve(predicate.operand, keys, values) is None) != predicate.negated
    if isinstance(predicate, Range):
        subject = value(predicate.operand)
        inside = _both(
            _compare(">=", subject, value(predicate.low)),
            _compare("<=", subject, value(predicate.high)),
        )
        return _not(inside) if predicate.negated else inside
    subject = value(predicate.operand)
    found: bool | None = False
    for candidate in predicate.values:
        found = _either(found, _compare("=", subject, value(candidate)))
    return _not(found) if predicate.negated else found
