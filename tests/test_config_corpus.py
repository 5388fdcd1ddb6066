"""Corpus of real-looking config files: every broken one yields exactly its expected problems.

Each ``corpus/broken/*.yaml`` states what validation must report in its comment header::

    # expect: <error|warning|usage> <code> line <N> "<text the message must contain>" ...
    # mode: connecting            (optional: validate as a command that connects)

``usage`` means the file cannot be read at all (:class:`UsageError`, exit 2). The quoted texts
pin the fix hint of each message, so a vaguer message fails the test as surely as a wrong code
or line. ``corpus/valid/*.yaml`` are varied files in the application's format that must load
(their ``expect`` lines may only be warnings).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shardctl.config import Entry
from shardctl.errors import ConfigError, UsageError
from shardctl.problems import Problem
from shardctl.routing import Topology
from shardctl.validate import load_topology, validate_env

CORPUS = Path(__file__).parent / "corpus"
BROKEN = sorted((CORPUS / "broken").glob("*.yaml"))
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
ENVIRON = {
    "DB_PASSWORD": "pw with spaces/and@signs",
    "SHARDING1_HOST": "db1.internal",
    "SUPERSCRIPT_TWO": "\u00b2",
    "WHOLE_DSN": "host=db9 port=5439 user=app password=from-the-whole-dsn dbname=app_db_9",
}

_EXPECT = re.compile(
    r"^# expect: (?P<severity>error|warning|usage) (?P<code>[\w-]+) line (?P<line>\d+)"
    r"(?P<texts>(?: \"[^\"]*\")*)$"
)


@dataclass(frozen=True)
class Expected:
    severity: str
    code: str
    line: int
    texts: tuple[str, ...]


# A file with no bytes at all cannot carry a header.
NO_HEADER = {"empty.yaml": [Expected("error", "empty-file", 1, ("It must define 'database:'",))]}


def expectations(path: Path) -> tuple[list[Expected], bool]:
    """The file's expected problems and whether it is validated as a connecting command."""
    if path.name in NO_HEADER:
        return NO_HEADER[path.name], False
    text = path.read_bytes().decode("utf-8", errors="replace")
    found = []
    for line in text.splitlines():
        match = _EXPECT.match(line)
        if match:
            texts = tuple(re.findall(r'"([^"]*)"', match["texts"]))
            found.append(Expected(match["severity"], match["code"], int(match["line"]), texts))
    return found, "# mode: connecting" in text


def install(path: Path, tmp_path: Path) -> tuple[Path, str]:
    """Copy a corpus file to ``tmp_path/config/<stem>/database.yaml``; (config dir, env)."""
    config_dir = tmp_path / "config"
    target = config_dir / path.stem / "database.yaml"
    target.parent.mkdir(parents=True)
    shutil.copyfile(path, target)
    return config_dir, path.stem


def _key(item: Problem | Expected) -> tuple[str, str, int]:
    return (item.severity, item.code, item.line)


def test_corpus_is_large_and_every_file_states_its_expectations() -> None:
    assert len(BROKEN) >= 35
    for path in BROKEN:
        expected, _ = expectations(path)
        assert expected, f"{path.name} has no '# expect:' line"
        assert all(e.texts for e in expected), f"{path.name}: every expectation pins a text"


def test_corpus_covers_every_validation_code() -> None:
    codes = {e.code for path in BROKEN for e in expectations(path)[0]}
    assert codes >= {
        "yaml-syntax", "duplicate-key", "empty-file", "missing-key", "wrong-type", "bad-number",
        "bad-table-name", "duplicate-table", "duplicate-id", "unknown-driver",
        "unknown-reader-policy", "bad-range", "range-out-of-bounds", "range-gap",
        "range-overlap", "suffix-count-mismatch", "mixed-drivers", "bad-dsn", "bad-variable",
        "bad-duration", "bad-pool-number", "unset-variable", "dsn-writer-mismatch",
        "idle-exceeds-max", "unknown-key", "deprecated-shards", "no-tables", "no-entries",
        "UsageError",
    }  # fmt: skip


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_config_reports_exactly_the_expected_problems(path: Path, tmp_path: Path) -> None:
    expected, connecting = expectations(path)
    config_dir, env = install(path, tmp_path)
    file = str(config_dir / env / "database.yaml")
    if expected[0].severity == "usage":
        with pytest.raises(UsageError) as raised:
            validate_env(config_dir, env, connecting=connecting, environ=ENVIRON)
        assert (raised.value.file, raised.value.line) == (file, expected[0].line)
        for text in expected[0].texts:
            assert text in str(raised.value)
        return
    report = validate_env(config_dir, env, connecting=connecting, environ=ENVIRON)
    assert sorted(map(_key, report.problems)) == sorted(map(_key, expected))
    unmatched = list(report.problems)
    for want in expected:
        problem = next(
            p
            for p in unmatched
            if _key(p) == _key(want) and all(t in p.message for t in want.texts)
        )  # StopIteration here means a message lacks its expected text
        unmatched.remove(problem)
    assert all(p.file == file for p in report.problems)
    assert report.ok == (not any(e.severity == "error" for e in expected))


@pytest.mark.parametrize(
    "path",
    [p for p in BROKEN if any(e.severity == "error" for e in expectations(p)[0])],
    ids=lambda p: p.stem,
)
def test_load_topology_refuses_a_broken_config_with_every_problem(
    path: Path, tmp_path: Path
) -> None:
    expected, connecting = expectations(path)
    config_dir, env = install(path, tmp_path)
    with pytest.raises((ConfigError, UsageError)) as raised:
        load_topology(config_dir, env, connecting=connecting, environ=ENVIRON)
    if isinstance(raised.value, ConfigError):
        problems = raised.value.problems  # type: ignore[attr-defined]
        assert sorted(map(_key, problems)) == sorted(map(_key, expected))
        assert raised.value.file == str(config_dir / env / "database.yaml")


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_config_loads_with_only_its_expected_warnings(path: Path, tmp_path: Path) -> None:
    expected, connecting = expectations(path)
    assert all(e.severity == "warning" for e in expected)
    config_dir, env = install(path, tmp_path)
    topology, warnings = load_topology(config_dir, env, connecting=connecting, environ=ENVIRON)
    assert sorted(map(_key, warnings)) == sorted(map(_key, expected))
    for number in range(topology.suffix_count):
        entry = topology.entry_for(number)
        assert entry.table_range[0] <= number <= entry.table_range[1]


def _by_id(topology: Topology) -> dict[str, Entry]:
    return {entry.id: entry for entry in topology.entries}


def _fields_instead_of_dsn(topology: Topology, root: Path) -> None:
    master = topology.master[0].writer
    assert master.identity == "postgres://app@master.db.internal:5433/app_db"
    assert master.password == ENVIRON["DB_PASSWORD"]
    one, two = _by_id(topology)["1"].writer, _by_id(topology)["2"].writer
    assert one.identity == "postgres://app@db1.internal:5432/app_db_sharding1"
    assert (two.port, two.password) == (5432, "literal-password")


def _fields_beside_dsn(topology: Topology, root: Path) -> None:
    one, two = _by_id(topology)["1"].writer, _by_id(topology)["2"].writer
    assert one.identity == "postgres://app@db1:5432/app_db"
    assert one.password == ENVIRON["DB_PASSWORD"]
    assert (two.user, two.password) == ("app", ENVIRON["DB_PASSWORD"])


def _libpq_keywords(topology: Topology, root: Path) -> None:
    entries = _by_id(topology)
    assert entries["a"].writer.password == "s3cret with spaces ' and quote"
    assert entries["a"].writer.identity == entries["b"].writer.identity
    assert [len(db.entries) for db in topology.databases] == [2, 1]
    c = entries["c"]
    assert (c.writer.host, c.writer.port, c.readers[0].host) == ("10.0.0.7", 5432, "10.0.0.8")
    assert c.reader_policy == "round_robin"


def _urls(topology: Topology, root: Path) -> None:
    entries = _by_id(topology)
    assert entries["1"].writer.password == "p@ss/w:rd"
    assert entries["1"].writer.identity == entries["2"].writer.identity
    three = entries["3"].writer
    assert (three.host, three.port, three.password) == ("2001:db8::7", 6432, ENVIRON["DB_PASSWORD"])


def _go_mysql(topology: Topology, root: Path) -> None:
    entries = _by_id(topology)
    assert entries["1"].writer.password == ENVIRON["DB_PASSWORD"]
    assert entries["2"].writer.password == "pa:ss@word"
    assert entries["1"].writer.identity == entries["2"].writer.identity
    assert entries["3"].writer.host == "unix:/run/mysqld/mysqld.sock"
    assert entries["4"].writer.identity == "mysql://root@localhost:3306/app_db"
    assert dict(entries["1"].writer.options) == {"charset": "utf8mb4", "parseTime": "true"}


def _mysql_urls(topology: Topology, root: Path) -> None:
    one = _by_id(topology)["1"].writer
    assert (one.port, one.password) == (3307, "secret!")
    assert _by_id(topology)["2"].writer.identity == "mysql://app@db2:3306/app_db"


def _variables(topology: Topology, root: Path) -> None:
    entries = _by_id(topology)
    assert entries["1"].writer.identity == "postgres://app@db1.internal:5433/app_db"
    assert entries["1"].pool.max_connections == 12
    assert entries["2"].writer.identity == "postgres://app@db9:5439/app_db_9"
    assert entries["2"].writer.password == "from-the-whole-dsn"
    assert entries["3"].writer.database == str(root / "data" / "fallback.db")
    assert {ENVIRON["DB_PASSWORD"], "from-the-whole-dsn"} <= topology.secrets


def _durations(topology: Topology, root: Path) -> None:
    lifetimes = [e.pool.connection_max_lifetime for e in topology.entries]
    assert lifetimes == [300, 3600, 5400, 0.5, 60, 5400]
    assert len(topology.databases) == 1


def _odd_table_names(topology: Topology, root: Path) -> None:
    assert topology.table_names == ("dm_users", "_audit_log", "Users2")
    assert topology.suffix_table("dm_users", 1) == "dm_users_001"


def _comments(topology: Topology, root: Path) -> None:
    assert [db.identity for db in topology.databases] == [
        str(root / "data" / "ユーザー_1.db"),
        str(root / "data" / "база_2.db"),
    ]


def _anchors(topology: Topology, root: Path) -> None:
    one, two = _by_id(topology)["1"], _by_id(topology)["2"]
    assert (one.driver, one.pool.max_connections, one.pool.max_idle_connections) == (
        "sqlite3",
        5,
        2,
    )
    assert (two.pool.max_connections, two.pool.connection_max_lifetime) == (20, 300)
    assert two.pool.max_idle_connections == 1  # from the first mapping of the merge list
    assert one.writer.database != two.writer.database


def _flow_style(topology: Topology, root: Path) -> None:
    assert [db.identity for db in topology.databases] == [str(root / "data" / "flow.db")]


def _many_tables(topology: Topology, root: Path) -> None:
    assert [len(db.entries) for db in topology.databases] == [4, 4]
    assert topology.suffix_table("events", 1023) == "events_1023"
    assert topology.database_for(511).identity == "postgres://app@db1:5432/ev"
    assert topology.database_for(512).identity == "postgres://app@db2:5432/ev"


def _bom_crlf(topology: Topology, root: Path) -> None:
    assert topology.databases[0].identity == str(root / "data" / "bom.db")


CHECKS: dict[str, Callable[[Topology, Path], None]] = {
    "fields_instead_of_dsn": _fields_instead_of_dsn,
    "fields_beside_dsn": _fields_beside_dsn,
    "libpq_keywords": _libpq_keywords,
    "urls": _urls,
    "go_mysql": _go_mysql,
    "mysql_urls": _mysql_urls,
    "variables": _variables,
    "durations": _durations,
    "odd_table_names": _odd_table_names,
    "comments_japanese_russian": _comments,
    "anchors_merge_keys": _anchors,
    "flow_style": _flow_style,
    "many_tables_few_databases": _many_tables,
    "bom_crlf": _bom_crlf,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_valid_config_is_read_as_the_application_reads_it(name: str, tmp_path: Path) -> None:
    """Relative SQLite paths land under the config dir's parent (``tmp_path``), not the cwd."""
    config_dir, env = install(CORPUS / "valid" / f"{name}.yaml", tmp_path)
    topology, _ = load_topology(config_dir, env, environ=ENVIRON)
    CHECKS[name](topology, tmp_path.resolve())
