"""config/schema.yaml: the shipped definition, the DDL SQLAlchemy makes of it per dialect, and
every way a broken schema file is reported (code and line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, tiled_entries, write_config
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from shardctl.errors import ConfigError, UsageError
from shardctl.schema import (
    ColumnType,
    Schema,
    build_table,
    check_against,
    index_name,
    load_schema,
)
from shardctl.validate import load_topology

SHIPPED = REPO / "config" / "schema.yaml"
DIALECTS = {"sqlite3": sqlite.dialect(), "postgres": postgresql.dialect(), "mysql": mysql.dialect()}


def shipped() -> Schema:
    schema, warnings = load_schema(SHIPPED)
    assert warnings == []
    return schema


def test_shipped_schema_matches_the_application():
    schema = shipped()
    users, posts = schema.sharded("users"), schema.sharded("posts")
    assert users is not None and posts is not None and schema.master == ()
    assert [(c.name, str(c.type), c.nullable, c.primary_key) for c in users.columns] == [
        ("id", "bigint", False, True),
        ("name", "text", False, False),
        ("email", "string(255)", False, False),
        ("created_at", "timestamp", False, False),
        ("updated_at", "timestamp", False, False),
    ]
    assert [(i.name, i.columns, i.unique) for i in users.indexes] == [("email", ("email",), True)]
    assert posts.shard_key == "user_id" and users.shard_key == "id"
    assert (
        posts.column("user_id").type == ColumnType("bigint")
        and not posts.column("user_id").nullable
    )
    assert {i.columns for i in posts.indexes} == {("user_id",), ("created_at",)}


@pytest.mark.parametrize("driver", DIALECTS)
def test_ddl_per_dialect_has_app_assigned_ids_and_suffixed_index_names(driver: str):
    dialect = DIALECTS[driver]
    table = build_table(sa.MetaData(), shipped().sharding[0], "users_007", driver)
    ddl = str(CreateTable(table).compile(dialect=dialect))
    indexes = [str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes]
    assert "CREATE TABLE users_007" in ddl and "id BIGINT NOT NULL" in ddl
    assert "PRIMARY KEY (id)" in ddl
    for autoincrement in ("AUTOINCREMENT", "AUTO_INCREMENT", "SERIAL", "IDENTITY"):
        assert autoincrement not in ddl.upper()
    assert indexes == ["CREATE UNIQUE INDEX idx_users_007_email ON users_007 (email)"]
    expected_timestamp = {
        "sqlite3": "created_at DATETIME NOT NULL",
        "postgres": "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "mysql": "created_at DATETIME(6) NOT NULL",
    }[driver]
    assert expected_timestamp in ddl
    assert ("name LONGTEXT NOT NULL" if driver == "mysql" else "name TEXT NOT NULL") in ddl


def test_current_timestamp_default_matches_mysql_fractional_seconds(tmp_path: Path):
    schema = _schema_from_text(
        "sharding:\n  t:\n    columns:\n      id: {type: bigint, primary_key: true}\n"
        "      at: {type: timestamp, default: current_timestamp}\n",
        tmp_path,
    )
    for driver, default in (("mysql", "CURRENT_TIMESTAMP(6)"), ("postgres", "CURRENT_TIMESTAMP")):
        table = build_table(sa.MetaData(), schema.sharding[0], "t_000", driver)
        assert f"DEFAULT {default}" in str(CreateTable(table).compile(dialect=DIALECTS[driver]))


def _schema_from_text(text: str, directory: Path) -> Schema:
    path = directory / "schema.yaml"
    path.write_text(text)
    return load_schema(path)[0]


BASE = "sharding:\n  users:\n    columns:\n      id: {type: bigint, primary_key: true}\n"
BROKEN = [
    # (extra lines under users.columns or the whole text, expected code, expected line)
    ("      name: bignt\n", "unknown-type", 5),
    ("      name: string\n", "bad-type-argument", 5),
    ("      name: string(0)\n", "bad-type-argument", 5),
    ("      price: numeric(5,7)\n", "bad-type-argument", 5),
    ("      price: {type: numeric(5,2)}\n", "unknown-type", 5),
    ("      name: {type: text, nulable: true}\n", "unknown-key", 5),
    ("      name: {type: integer, default: 'x'}\n", "bad-default", 5),
    ("      name: {type: integer, default: true}\n", "bad-default", 5),
    ("      name: {type: text, default: ''}\n", "bad-default", 5),
    ("      at: {type: timestamp, default: now}\n", "bad-default", 5),
    ("      on: {type: boolean, nullable: maybe}\n", "wrong-type", 5),
    ("      2name: text\n", "bad-identifier", 5),
    ("      id: text\n", "duplicate-key", 5),
    ("      name: [text]\n", "wrong-type", 5),
    ("      name: text\n    indexes:\n      name: [name]\n", "unindexable-column", 7),
    ("      name: text\n    indexes:\n      x: [nme]\n", "unknown-column", 7),
    ("      a: string(500)\n      b: string(500)\n    indexes:\n      ab: [a, b]\n",
     "index-too-long", 8),
    ("    shard_key: nope\n", "unknown-column", 5),
    ("    shard_key: name\n    indexes: {}\n", "unknown-column", 5),
    ("      owner: {type: bigint, nullable: true}\n    shard_key: owner\n", "bad-shard-key", 6),
    ("      key: {type: bigint, primary_key: true, nullable: true}\n", "bad-nullable", 5),
    ("    colums: {}\n", "unknown-key", 5),
]  # fmt: skip
WHOLE_FILE_BROKEN = [
    ("", "empty-file", 1),
    ("- a\n- b\n", "wrong-type", 1),
    ("master: {}\n", "missing-key", 1),
    ("sharding:\n  users:\n    columns:\n      name: text\n", "no-primary-key", 4),
    ("sharding:\n  users:\n\tcolumns: {}\n", "yaml-syntax", 3),
    ("sharding:\n  users: [id]\n", "wrong-type", 2),
    ("sharding:\n  users:\n    indexes: {}\n", "missing-key", 3),
    ("sharding: {}\nsharded: {}\n", "unknown-key", 2),
]


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [(BASE + extra, code, line) for extra, code, line in BROKEN] + WHOLE_FILE_BROKEN,
)
def test_broken_schema_is_reported_with_code_and_line(
    tmp_path: Path, text: str, code: str, line: int
):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_schema(path)
    problems = raised.value.problems
    assert (code, line) in [(p.code, p.line) for p in problems if p.is_error], problems
    assert all(p.file == str(path) for p in problems)
    assert str(path) in str(raised.value)


def test_suggestions_name_the_intended_word(tmp_path: Path):
    path = tmp_path / "schema.yaml"
    path.write_text(BASE + "      name: {type: bignt, nulable: true}\n")
    with pytest.raises(ConfigError) as raised:
        load_schema(path)
    messages = " ".join(p.message for p in raised.value.problems)
    assert "Did you mean 'bigint'?" in messages and "Did you mean 'nullable'?" in messages


def test_unquoted_numeric_in_a_flow_mapping_gets_a_quoting_hint(tmp_path: Path):
    path = tmp_path / "schema.yaml"
    path.write_text(BASE + "      price: {type: numeric(12,2)}\n")
    with pytest.raises(ConfigError) as raised:
        load_schema(path)
    messages = " ".join(p.message for p in raised.value.problems)
    assert "quote it, 'numeric(12,2)'" in messages


def test_missing_schema_file_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError) as raised:
        load_schema(tmp_path / "schema.yaml")
    assert raised.value.exit_code == 2 and "schema.yaml not found" in str(raised.value)


def test_schema_must_fit_the_topology(tmp_path: Path):
    write_config(tmp_path, tiled_entries(2048, 2, ["a.db"], "sqlite3"), suffix_count=2048,
                 tables=("users", "comments"))  # fmt: skip
    topology, _ = load_topology(tmp_path, "develop")
    long_name = "a" * 52
    schema = _schema_from_text(
        BASE.replace("users", long_name) + "  users:\n    columns:\n"
        "      id: {type: bigint, primary_key: true}\n      e: string(9)\n"
        "    indexes:\n      an_index_name_that_is_long_enough_to_overflow_with_it: [e]\n",
        tmp_path,
    )
    problems = {(p.code, p.file, p.line, p.severity) for p in check_against(schema, topology)}
    config_file = str(tmp_path / "develop" / "database.yaml")
    comments_line = next(t.line for t in topology.tables if t.name == "comments")
    assert ("missing-definition", config_file, comments_line, "error") in problems
    assert ("unused-definition", schema.file, 3, "warning") in problems  # its body
    assert ("name-too-long", schema.file, 10, "error") in problems  # idx_users_0000_an_index…


def test_index_names_carry_the_suffix():
    assert index_name("users_000", "email") == "idx_users_000_email"


def test_loading_and_checking_the_schema_does_not_import_sqlalchemy():
    code = (
        "import sys; from pathlib import Path; from shardctl.schema import load_schema; "
        f"load_schema(Path({str(SHIPPED)!r})); import shardctl.cli.commands; "
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
