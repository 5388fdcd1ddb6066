"""The routing core: pure functions and lookups, no database, terminal or CLI imports.

* table number of a row = ``id % suffix_count`` for ``0 <= id < 2**63`` (negative ids are
  rejected: Python's ``-7 % 10 == 3`` while PostgreSQL, MySQL and Go give ``-7``);
* suffix table name = ``{name}_{number:0{width}d}``, width 3, wider when ``suffix_count - 1``
  has more digits (1024 tables → ``users_0000`` … ``users_1023``);
* table number → entry through a list built once from the ranges (O(1) per lookup);
* entries → physical databases, grouped by the writer DSN's identity, in first-seen order.

Every count comes from the config: nothing here knows how many tables or databases there are.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shardctl.config import Database, Entry, LogicalTable
from shardctl.dsn import Driver, Dsn
from shardctl.errors import ShardctlError

if TYPE_CHECKING:
    import random

ID_LIMIT = 1 << 63  # ids are signed 64-bit integers that are not negative


class InvalidId(ShardctlError):
    """An id that cannot be routed (not an integer, negative, or >= 2**63)."""


def parse_id(text: str) -> int:
    """The id in ``text``; :class:`InvalidId` names the value when it is not routable."""
    stripped = text.strip()
    try:
        digits = stripped.lstrip("+-")
        value = int(stripped) if digits.isascii() and digits.isdigit() else None
    except ValueError:  # e.g. more digits than int() accepts
        value = None
    if value is None:
        raise InvalidId(f"'{_clip(stripped)}' is not an integer id.")
    check_id(value)
    return value


def check_id(value: int) -> None:
    if value < 0:
        raise InvalidId(
            f"Id {value} is negative; shard ids are 0 … 2^63-1 (negative ids would route "
            "differently in Python, SQL and Go)."
        )
    if value >= ID_LIMIT:
        raise InvalidId(f"Id {_clip(str(value))} is not below 2^63 (the BIGINT limit).")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def span(lo: int, hi: int) -> str:
    """``"4"`` or ``"4-7"``: an inclusive range of table numbers for messages."""
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def spans(numbers: Iterable[int]) -> str:
    """Ascending table numbers as ranges: ``[0, 1, 2, 5, 7, 8]`` → ``"0-2, 5, 7-8"``."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(span(lo, hi) for lo, hi in runs)


def suffix_width(suffix_count: int) -> int:
    """Digits in a suffix: at least 3, more when the largest table number needs them."""
    return max(3, len(str(suffix_count - 1)))


@dataclass(frozen=True)
class PhysicalDatabase:
    """One real database and the entries stored in it (in config order)."""

    index: int
    identity: str
    driver: Driver
    writer: Dsn
    entries: tuple[Entry, ...]

    @property
    def label(self) -> str:
        """Password-free display name (resolved path for SQLite)."""
        return self.writer.redacted()

    @property
    def table_numbers(self) -> list[int]:
        """Every table number owned by an entry on this database, ascending."""
        return sorted(
            n
            for entry in self.entries
            for n in range(entry.table_range[0], entry.table_range[1] + 1)
        )


@dataclass(frozen=True)
class Route:
    id: int
    table_number: int
    entry: Entry
    database: PhysicalDatabase


@dataclass(frozen=True)
class Topology:
    """A validated configuration, ready for routing. Build it with :meth:`build`."""

    env: str
    file: str
    suffix_count: int
    tables: tuple[LogicalTable, ...]
    entries: tuple[Entry, ...]
    databases: tuple[PhysicalDatabase, ...]
    master: tuple[Database, ...] = ()
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    owner: tuple[int, ...] = field(default=(), repr=False)  # table number → entry index
    entry_database: tuple[int, ...] = field(default=(), repr=False)  # entry index → db index

    @classmethod
    def build(
        cls,
        *,
        env: str,
        file: str,
        tables: Sequence[LogicalTable],
        entries: Sequence[Entry],
        master: Sequence[Database] = (),
        secrets: frozenset[str] = frozenset(),
    ) -> Topology:
        """Precompute the lookups. The ranges must tile ``0 … suffix_count-1`` exactly (checked
        by :mod:`shardctl.validate`; a ``ValueError`` here means a caller skipped it)."""
        counts = {t.suffix_count for t in tables}
        if len(counts) != 1 or not entries:
            raise ValueError("a topology needs one suffix_count and at least one entry")
        suffix_count = counts.pop()
        owner: list[int | None] = [None] * suffix_count
        for index, entry in enumerate(entries):
            lo, hi = entry.table_range
            claimed = owner[lo : hi + 1]
            if lo < 0 or hi >= suffix_count or claimed.count(None) != len(claimed):
                raise ValueError(f"entry {entry.id} range {lo}-{hi} is out of bounds or overlaps")
            owner[lo : hi + 1] = [index] * (hi - lo + 1)
        if None in owner:
            raise ValueError(f"table number {owner.index(None)} has no entry")
        groups: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            groups.setdefault(entry.writer.identity, []).append(index)
        databases = []
        entry_database = [0] * len(entries)
        for db_index, (identity, members) in enumerate(groups.items()):
            first = entries[members[0]]
            databases.append(
                PhysicalDatabase(
                    db_index,
                    identity,
                    first.driver,
                    first.writer,
                    tuple(entries[i] for i in members),
                )
            )
            for i in members:
                entry_database[i] = db_index
        return cls(
            env=env,
            file=file,
            suffix_count=suffix_count,
            tables=tuple(tables),
            entries=tuple(entries),
            databases=tuple(databases),
            master=tuple(master),
            secrets=secrets,
            owner=tuple(o for o in owner if o is not None),
            entry_database=tuple(entry_database),
        )

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    @property
    def width(self) -> int:
        return suffix_width(self.suffix_count)

    def table_number(self, id_: int) -> int:
        return id_ % self.suffix_count

    def suffix_table(self, name: str, table_number: int) -> str:
        return f"{name}_{table_number:0{self.width}d}"

    def entry_for(self, table_number: int) -> Entry:
        return self.entries[self.owner[table_number]]

    def database_for(self, table_number: int) -> PhysicalDatabase:
        return self.databases[self.entry_database[self.owner[table_number]]]

    def database_of(self, entry: Entry) -> PhysicalDatabase:
        return self.databases[self.entry_database[self.entries.index(entry)]]

    def route(self, id_: int) -> Route:
        """Where the row with this id lives (``id_`` must pass :func:`check_id`)."""
        number = self.table_number(id_)
        return Route(id_, number, self.entry_for(number), self.database_for(number))


class ReaderSelector:
    """Chooses the DSN a read goes to, per the entry's ``reader_policy``.

    No readers → the writer. ``round_robin`` cycles per database (entry or master database, even
    when their ids coincide) in list order; ``random`` draws uniformly (pass ``rng`` for
    reproducible picks; ``random`` is imported at the first random pick, not at start-up).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng
        self.cycles: dict[Database, Iterator[Dsn]] = {}  # not by id: a master may reuse an entry id

    def pick(self, database: Database) -> Dsn:
        if not database.readers:
            return database.writer
        if database.reader_policy == "round_robin":
            cycle = self.cycles.setdefault(database, itertools.cycle(database.readers))
            return next(cycle)
        if self.rng is None:
            import random

            self.rng = random.Random()
        return self.rng.choice(database.readers)
