"""Hypothesis: whatever a config file contains, loading and validating it either succeeds or
reports problems placed inside the file — only the tool's own ShardctlError may escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardctl.config import ENTRY_KEYS
from shardctl.errors import ShardctlError
from shardctl.validate import validate_env

REPO = Path(__file__).resolve().parent.parent
BASES = [
    (REPO / "config" / "develop" / "database.yaml").read_text(),
    (REPO / "config" / "staging" / "database.yaml").read_text(),
    *(path.read_text(encoding="utf-8-sig") for path in
      sorted((Path(__file__).parent / "corpus" / "valid").glob("*.yaml"))),
]  # fmt: skip
ENVIRON = {"DB_PASSWORD": "pw@x/y z", "DB_PASSWORD_SHARDING1": "s1", "PORT": "²", "N": "-3"}
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = [
    *ENTRY_KEYS, "database", "groups", "sharding", "master", "tables", "databases", "name",
    "suffix_count", "shards", "<<",
]  # fmt: skip
JUNK = [
    ": ", "- ", "[", "{", "}", "\t", "\tkey: 1", "${", "${}", "${A", "'", '"', "&a", "*a",
    "<<: *a", "!!python/object:os.system", "!!binary x", "!!int x", "? ", "---", "...",
    "%YAML 1.1", "0x" + "f" * 5000, "~", "1e999", "- - -", "key: [1, 2", "\x00", "\x85",
    "é: ü", "2024-13-45", "1:2:3", "dsn: postgres://u:p@[::1/db", "table_range: [0, 0x1f]",
    "suffix_count: 0", "password: 'x", "\u2028", "\ufeff", "table_range: [9, -9]",
]  # fmt: skip


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config"


def check(config_dir: Path, content: str | bytes, connecting: bool) -> None:
    """Write ``content`` as the file and validate it: the only allowed outcomes."""
    path = config_dir / "fuzz" / "database.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    path.write_bytes(data)
    try:
        report = validate_env(config_dir, "fuzz", connecting=connecting, environ=ENVIRON)
    except ShardctlError:
        return
    line_count = max(1, len(data.decode("utf-8-sig").splitlines()))
    for problem in report.problems:
        assert 1 <= problem.line <= line_count, problem
        assert problem.file == str(path)
        assert problem.message.strip()
    if report.topology is not None:  # a clean file routes every table number
        topology = report.topology
        assert not any(p.is_error for p in report.problems)
        for number in range(topology.suffix_count):
            assert (
                topology.database_for(number)
                is topology.databases[topology.entry_database[topology.owner[number]]]
            )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "sqlite3",
            "postgres",
            "mysql",
            "random",
            "round_robin",
            "300s",
            "1h",
            "./x.db",
            "host=h dbname=d",
            "${DB_PASSWORD}",
            "${UNSET}",
            "${",
        ]
    ),  # fmt: skip
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),  # fmt: skip
    ),
    max_leaves=30,
)


@SETTINGS
@given(document=documents, connecting=st.booleans())
def test_random_yaml_documents(config_dir: Path, document: Any, connecting: bool) -> None:
    check(config_dir, yaml.safe_dump({"database": {"groups": {"sharding": document}}}), connecting)
    check(config_dir, yaml.safe_dump(document), connecting)


@SETTINGS
@given(text=st.text(max_size=300), connecting=st.booleans())
def test_random_text(config_dir: Path, text: str, connecting: bool) -> None:
    check(config_dir, text, connecting)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_random_bytes(config_dir: Path, data: bytes) -> None:
    check(config_dir, data, connecting=False)


@SETTINGS
@given(
    base=st.sampled_from(BASES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "swap", "insert", "replace", "indent"]),
            st.integers(0, 10_000),
            st.one_of(st.sampled_from(JUNK), st.text(max_size=15)),
        ),
        min_size=1,
        max_size=4,
    ),
    connecting=st.booleans(),
)
def test_line_mutations_of_valid_configs(
    config_dir: Path, base: str, edits: list[tuple[str, int, str]], connecting: bool
) -> None:
    lines = base.splitlines()
    for operation, position, junk in edits:
        if not lines:
            lines = [junk]
            continue
        i = position % len(lines)
        if operation == "delete":
            del lines[i]
        elif operation == "duplicate":
            lines.insert(i, lines[i])
        elif operation == "swap":
            j = (position // 7) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "insert":
            lines.insert(i, " " * (position % 12) + junk)
        elif operation == "replace":
            key, colon, _ = lines[i].partition(":")
            lines[i] = f"{key}{colon} {junk}" if colon else junk
        else:
            lines[i] = " " * (position % 5) + lines[i]
    check(config_dir, "\n".join(lines) + "\n", connecting)


def _mutate(data: st.DataObject, node: Any) -> Any:
    """Replace, delete or retype one randomly chosen node of the tree."""
    if isinstance(node, dict) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node, key=str)))
        if data.draw(st.integers(0, 4)) == 0:
            return {k: v for k, v in node.items() if k != key}
        return {**node, key: _mutate(data, node[key])}
    if isinstance(node, list) and node and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(node) - 1))
        if data.draw(st.integers(0, 4)) == 0:
            return node[:index] + node[index + 1 :]
        return [*node[:index], _mutate(data, node[index]), *node[index + 1 :]]
    if isinstance(node, bool) or not isinstance(node, int):
        return data.draw(documents)
    return data.draw(st.one_of(st.integers(-3, 40), st.integers(), st.just(node * 2 + 1),
                               documents))  # fmt: skip


@SETTINGS
@given(base=st.sampled_from(BASES), data=st.data(), connecting=st.booleans())
def test_structural_mutations_of_valid_configs(
    config_dir: Path, base: str, data: st.DataObject, connecting: bool
) -> None:
    tree = yaml.safe_load(base)
    for _ in range(data.draw(st.integers(1, 3))):
        tree = _mutate(data, tree)
    check(config_dir, yaml.safe_dump(tree, allow_unicode=True), connecting)
