"""The routing core: table numbers, suffix names, table → entry → physical database, readers."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import tiled_entries, write_config
from hypothesis import given, settings
from hypothesis import strategies as st

from shardctl.config import Database, Entry, LogicalTable, Pool, ReaderPolicy
from shardctl.dsn import Dsn
from shardctl.routing import ID_LIMIT, InvalidId, ReaderSelector, Topology, parse_id, suffix_width
from shardctl.validate import load_topology

MAX_ID = ID_LIMIT - 1


def pg(name: str, host: str = "db1") -> Dsn:
    return Dsn("postgres", database=name, host=host, port=5432, user="app")


def entry(
    entry_id: str,
    lo: int,
    hi: int,
    writer: Dsn,
    readers: tuple[Dsn, ...] = (),
    policy: ReaderPolicy = "random",
) -> Entry:
    return Entry(
        id=entry_id,
        driver=writer.driver,
        writer=writer,
        readers=readers,
        reader_policy=policy,
        pool=Pool(),
        line=1,
        table_range=(lo, hi),
    )


def build(
    suffix_count: int, entries: list[Entry], tables: tuple[str, ...] = ("users",)
) -> Topology:
    return Topology.build(
        env="test",
        file="database.yaml",
        tables=[LogicalTable(name, suffix_count, 1) for name in tables],
        entries=entries,
    )


@st.composite
def tilings(draw: st.DrawFn) -> tuple[int, list[Entry]]:
    """A valid random layout: 1..2048 tables cut into 1..64 ranges, listed in any order, spread
    over 1..N physical databases in any grouping."""
    suffix_count = draw(st.integers(1, 2048))
    count = draw(st.integers(1, min(suffix_count, 64)))
    cuts = sorted(draw(st.sets(st.integers(1, suffix_count - 1), min_size=count - 1,
                               max_size=count - 1)) if suffix_count > 1 else set())  # fmt: skip
    bounds = list(zip([0, *cuts], [c - 1 for c in cuts] + [suffix_count - 1], strict=True))
    database_count = draw(st.integers(1, count))
    homes = draw(st.lists(st.integers(0, database_count - 1), min_size=count, max_size=count))
    order = draw(st.permutations(range(count)))
    entries = [entry(f"e{i}", *bounds[i], pg(f"db{homes[i]}")) for i in order]
    return suffix_count, entries


@settings(max_examples=120, deadline=None)
@given(layout=tilings(), ids=st.lists(st.integers(0, MAX_ID), max_size=20))
def test_every_table_number_has_exactly_one_entry_and_route_agrees_with_the_map(
    layout: tuple[int, list[Entry]], ids: list[int]
) -> None:
    suffix_count, entries = layout
    topology = build(suffix_count, entries)
    owned = Counter[int]()
    for number in range(suffix_count):
        owner = topology.entry_for(number)
        claimants = [e for e in entries if e.table_range[0] <= number <= e.table_range[1]]
        assert claimants == [owner]
        database = topology.database_for(number)
        assert owner in database.entries
        assert database.identity == owner.writer.identity
        assert topology.database_of(owner) is database
        owned[number] += 1
    for database in topology.databases:
        owned.subtract(database.table_numbers)
    assert set(owned.values()) <= {0}  # every number in exactly one database's table_numbers
    assert [db.identity for db in topology.databases] == list(
        dict.fromkeys(e.writer.identity for e in entries)
    )  # one physical database per identity, in first-seen order
    for id_ in [*ids, 0, MAX_ID, suffix_count - 1, suffix_count]:
        route = topology.route(id_)
        assert route.table_number == id_ % suffix_count
        assert route.entry is topology.entry_for(route.table_number)
        assert route.database is topology.database_for(route.table_number)


@pytest.mark.parametrize("suffix_count", [8, 32, 64, 1024])
@pytest.mark.parametrize("database_count", [1, 2, 4, 8])
def test_reference_topologies_load_and_route(
    tmp_path: Path, suffix_count: int, database_count: int
) -> None:
    """Entries of 4 tables each (or fewer entries when there are few tables), spread in
    contiguous blocks over SQLite files, loaded from a real config file."""
    entry_count = max(database_count, min(suffix_count // 4, 16))
    dsns = [f"./data/sharding_db_{i + 1}.db" for i in range(database_count)]
    write_config(
        tmp_path / "config",
        tiled_entries(suffix_count, entry_count, dsns, "sqlite3"),
        suffix_count=suffix_count,
    )
    topology, warnings = load_topology(tmp_path / "config", "develop")
    assert warnings == []
    assert len(topology.entries) == entry_count
    assert [db.identity for db in topology.databases] == [
        str(tmp_path.resolve() / "data" / f"sharding_db_{i + 1}.db") for i in range(database_count)
    ]
    per_database = [len(db.table_numbers) for db in topology.databases]
    assert sum(per_database) == suffix_count
    assert max(per_database) - min(per_database) <= suffix_count // entry_count + 1
    first, last = topology.databases[0], topology.databases[-1]
    assert topology.database_for(0) is first and topology.database_for(suffix_count - 1) is last
    route = topology.route(10**15 + 3)
    assert route.table_number == (10**15 + 3) % suffix_count
    assert route.database is topology.database_for(route.table_number)
    last_table = {8: "posts_007", 32: "posts_031", 64: "posts_063", 1024: "posts_1023"}
    assert topology.suffix_table("posts", suffix_count - 1) == last_table[suffix_count]


@pytest.mark.parametrize(
    ("suffix_count", "number", "name"),
    [
        (1, 0, "users_000"),
        (8, 7, "users_007"),
        (32, 31, "users_031"),
        (1000, 999, "users_999"),
        (1001, 1000, "users_1000"),
        (1001, 5, "users_0005"),
        (1024, 0, "users_0000"),
        (1024, 1023, "users_1023"),
        (10001, 42, "users_00042"),
    ],
)
def test_suffix_table_names(suffix_count: int, number: int, name: str) -> None:
    topology = build(suffix_count, [entry("1", 0, suffix_count - 1, pg("a"))])
    assert topology.suffix_table("users", number) == name
    assert len(name) - len("users_") == suffix_width(suffix_count) == topology.width


def test_suffix_names_for_1024_tables_are_all_four_digits_and_distinct() -> None:
    topology = build(1024, [entry("1", 0, 1023, pg("a"))], tables=("users", "dm_users"))
    names = [topology.suffix_table("users", n) for n in range(1024)]
    assert names[0] == "users_0000" and names[-1] == "users_1023"
    assert len(set(names)) == 1024 and {len(n) for n in names} == {len("users_0000")}
    assert topology.table_names == ("users", "dm_users")


def test_reference_layout_eight_entries_over_four_databases() -> None:
    entries = [entry(str(i + 1), 4 * i, 4 * i + 3, pg(f"sharding{i // 2 + 1}")) for i in range(8)]
    topology = build(32, entries, tables=("users", "posts"))
    assert [[e.id for e in db.entries] for db in topology.databases] == [
        ["1", "2"], ["3", "4"], ["5", "6"], ["7", "8"],
    ]  # fmt: skip
    assert topology.databases[1].table_numbers == list(range(8, 16))
    route = topology.route(1_000_000_007)  # 1_000_000_007 % 32 == 7
    assert (route.table_number, route.entry.id, route.database.index) == (7, "2", 0)
    assert topology.suffix_table("posts", route.table_number) == "posts_007"


@pytest.mark.parametrize(
    "ranges",
    [[(0, 3)], [(0, 3), (3, 7)], [(0, 3), (5, 7)], [(0, 8)], [(-1, 7)]],
    ids=["gap-at-end", "overlap", "gap-inside", "past-the-end", "negative"],
)
def test_build_refuses_ranges_that_do_not_tile(ranges: list[tuple[int, int]]) -> None:
    entries = [entry(str(i), lo, hi, pg("a")) for i, (lo, hi) in enumerate(ranges)]
    with pytest.raises(ValueError):
        build(8, entries)


def test_build_refuses_differing_suffix_counts_and_no_entries() -> None:
    with pytest.raises(ValueError):
        Topology.build(
            env="t",
            file="f",
            tables=[LogicalTable("a", 8, 1), LogicalTable("b", 16, 2)],
            entries=[entry("1", 0, 7, pg("a"))],
        )
    with pytest.raises(ValueError):
        build(8, [])


# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), (" 7 \n", 7), ("+9", 9), ("007", 7), (str(MAX_ID), MAX_ID)],
)
def test_parse_id_accepts_integers_in_range(text: str, value: int) -> None:
    assert parse_id(text) == value


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("abc", "'abc' is not an integer id"),
        ("1.5", "'1.5' is not an integer id"),
        ("1e3", "'1e3' is not an integer id"),
        ("0x10", "'0x10' is not an integer id"),
        ("1_000", "'1_000' is not an integer id"),
        ("", "'' is not an integer id"),
        ("--5", "'--5' is not an integer id"),
        ("１２", "'１２' is not an integer id"),
        ("-1", "Id -1 is negative"),
        ("-0000000000000000000042", "Id -42 is negative"),
        (str(ID_LIMIT), f"Id {ID_LIMIT} is not below 2^63"),
        (str(10**30), "Id 1000000000000000000000000000000 is not below 2^63"),
        ("9" * 5000, "'999999999"),
    ],
)
def test_parse_id_rejects_with_a_message_naming_the_value(text: str, named: str) -> None:
    with pytest.raises(InvalidId) as raised:
        parse_id(text)
    assert named in str(raised.value)
    assert len(str(raised.value)) < 200  # a huge value is clipped, not echoed whole


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_parse_id_accepts_exactly_the_routable_range(value: int) -> None:
    if 0 <= value < ID_LIMIT:
        assert parse_id(str(value)) == value
    else:
        with pytest.raises(InvalidId, match=str(value)[:20]):
            parse_id(str(value))


# -- readers -----------------------------------------------------------------------------------

READERS = (pg("a", "r1"), pg("a", "r2"), pg("a", "r3"))


def test_round_robin_cycles_through_readers_in_list_order_per_entry() -> None:
    one = entry("1", 0, 3, pg("a"), READERS, "round_robin")
    two = entry("2", 4, 7, pg("b"), READERS[:2], "round_robin")
    selector = ReaderSelector()
    picks = [selector.pick(one).host for _ in range(7)]
    assert picks == ["r1", "r2", "r3", "r1", "r2", "r3", "r1"]
    assert [selector.pick(two).host for _ in range(3)] == ["r1", "r2", "r1"]
    assert selector.pick(one).host == "r2"  # entry 1's cycle was not disturbed


def test_round_robin_keeps_a_master_and_an_entry_with_the_same_id_apart() -> None:
    shard = entry("main", 0, 7, pg("a"), READERS, "round_robin")
    master = Database("main", "postgres", pg("m"), (pg("m", "m1"), pg("m", "m2")),
                      "round_robin", Pool(), 1)  # fmt: skip
    selector = ReaderSelector()
    assert [selector.pick(shard).host, selector.pick(master).host] == ["r1", "m1"]
    assert [selector.pick(shard).host, selector.pick(master).host] == ["r2", "m2"]


def test_random_picks_only_readers_and_reaches_each() -> None:
    random_entry = entry("1", 0, 3, pg("a"), READERS, "random")
    selector = ReaderSelector(random.Random(7))
    picks = Counter(selector.pick(random_entry).host for _ in range(300))
    assert set(picks) == {"r1", "r2", "r3"}
    assert min(picks.values()) > 50  # roughly uniform, not stuck on one


@pytest.mark.parametrize("policy", ["random", "round_robin"])
def test_no_readers_means_reads_go_to_the_writer(policy: ReaderPolicy) -> None:
    lonely = entry("1", 0, 3, pg("a"), (), policy)
    selector = ReaderSelector()
    assert [selector.pick(lonely) for _ in range(3)] == [lonely.writer] * 3
