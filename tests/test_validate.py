"""Whole-file rules: tiling, cross-environment drift and unset variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiled_entries, write_config

from shardctl.config import RangeClaim
from shardctl.errors import ConfigError
from shardctl.problems import Problem, ProblemSink
from shardctl.validate import check_tiling, load_topology, validate_all, validate_env


def tiling(suffix_count: int, ranges: dict[str, tuple[int, int]]) -> list[Problem]:
    sink = ProblemSink("f.yaml")
    claims = [RangeClaim(i, lo, hi, line) for line, (i, (lo, hi)) in enumerate(ranges.items(), 1)]
    check_tiling(sink, claims, suffix_count, list_line=99)
    return sink.problems


def messages(problems: list[Problem], code: str) -> list[str]:
    return [p.message for p in problems if p.code == code]


def test_exact_tiling_has_no_problem() -> None:
    assert tiling(32, {"a": (0, 3), "c": (8, 31), "b": (4, 7)}) == []
    assert tiling(1, {"only": (0, 0)}) == []


def test_every_gap_is_named_as_one_range() -> None:
    problems = tiling(32, {"a": (2, 5), "b": (8, 8), "c": (12, 29)})
    gaps = messages(problems, "range-gap")
    assert [g.split(" are served")[0] for g in gaps] == [
        "Table numbers 0-1", "Table numbers 6-7", "Table numbers 9-11", "Table numbers 30-31",
    ]  # fmt: skip
    assert all("table_range: [" in g for g in gaps)  # the fix: which range to add
    assert "add an entry with table_range: [9, 11]" in gaps[2]
    assert {p.code for p in problems} == {"range-gap"}


def test_a_single_missing_number_is_named_alone() -> None:
    (gap,) = tiling(10, {"a": (0, 7), "b": (9, 9)})
    assert gap.message.startswith("Table number 8 is served by no entry")
    assert gap.line == 2


def test_no_ranges_at_all_is_one_gap_at_the_databases_list() -> None:
    (gap,) = tiling(8, {})
    assert (gap.code, gap.line) == ("range-gap", 99)
    assert "Table numbers 0-7" in gap.message


def test_every_overlapping_pair_is_named_with_both_ids() -> None:
    problems = tiling(10, {"a": (0, 7), "b": (2, 5), "c": (4, 9)})
    overlaps = sorted(messages(problems, "range-overlap"))
    assert len(overlaps) == 3
    assert any("2-5" in m and "'a'" in m and "'b'" in m for m in overlaps)
    assert any("4-7" in m and "'a'" in m and "'c'" in m for m in overlaps)
    assert any("4-5" in m and "'b'" in m and "'c'" in m for m in overlaps)
    assert all("shrink one of the ranges" in m for m in overlaps)
    assert messages(problems, "range-gap") == []


def test_gaps_overlaps_and_bounds_are_reported_together() -> None:
    problems = tiling(16, {"a": (0, 4), "b": (3, 6), "c": (9, 12), "d": (14, 20)})
    assert sorted((p.code, p.line) for p in problems) == [
        ("range-gap", 3), ("range-gap", 4), ("range-out-of-bounds", 4), ("range-overlap", 2),
    ]  # fmt: skip
    text = " | ".join(p.message for p in problems)
    for part in ("Table numbers 3-4 are claimed by both entry 'a' (line 1) and entry 'b'",
                 "Table numbers 7-8 are served", "Table number 13 is served",
                 "[14, 20] of entry 'd' is outside 0-15"):  # fmt: skip
        assert part in text


def test_identical_ranges_overlap_entirely() -> None:
    (overlap,) = tiling(4, {"x": (0, 3), "y": (0, 3)})
    assert "Table numbers 0-3 are claimed by both entry 'x' (line 1) and entry 'y'" in (
        overlap.message
    )


def test_tiling_problems_come_from_a_real_file_with_lines(tmp_path: Path) -> None:
    entries = tiled_entries(32, 8, ["./a.db", "./b.db"], "sqlite3")
    entries[2]["table_range"] = [9, 11]  # gap at 8
    entries[5]["table_range"] = [19, 24]  # overlaps entry 5's 19 and entry 7's 24
    path = write_config(tmp_path / "config", entries)
    report = validate_env(tmp_path / "config", "develop")
    lines = path.read_text().splitlines()
    assert not report.ok and report.topology is None
    for problem in report.problems:  # at the range (its first item, in block style)
        assert problem.file == str(path)
        assert "table_range" in " ".join(lines[problem.line - 2 : problem.line])
    overlaps = messages(report.problems, "range-overlap")
    assert any("Table number 19 " in m and "'5'" in m and "'6'" in m for m in overlaps)
    assert any("Table number 24 " in m and "'6'" in m and "'7'" in m for m in overlaps)
    assert any("Table number 8 " in m for m in messages(report.problems, "range-gap"))


def test_problems_are_sorted_by_line_and_all_collected(tmp_path: Path) -> None:
    entries = tiled_entries(8, 2, ["./a.db"], "sqlite3")
    entries.append({"id": 1, "driver": "oracle", "dsn": "x", "table_range": [8, 9]})
    write_config(tmp_path / "config", entries, suffix_count=8)
    report = validate_env(tmp_path / "config", "develop")
    assert [p.line for p in report.problems] == sorted(p.line for p in report.problems)
    assert {p.code for p in report.problems} == {
        "duplicate-id", "unknown-driver", "range-out-of-bounds",
    }  # fmt: skip


def test_suffix_count_mismatch_points_at_the_odd_table(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "config",
        tiled_entries(8, 2, ["./a.db"], "sqlite3"),
        tables=("users", "posts", "logs"),
        suffix_count=8,
    )
    text = path.read_text()
    path.write_text(
        text.replace("name: logs\n        suffix_count: 8", "name: logs\n        suffix_count: 16")
    )
    (problem,) = validate_env(tmp_path / "config", "develop").problems
    assert problem.code == "suffix-count-mismatch"
    assert "logs" in path.read_text().splitlines()[problem.line - 1]
    assert "users=8, posts=8, logs=16" in problem.message


def test_duplicate_key_does_not_hide_other_problems(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", tiled_entries(8, 2, ["./a.db"], "sqlite3"),
                        suffix_count=8)  # fmt: skip
    text = path.read_text().replace("dsn: ./a.db\n", "dsn: ./a.db\n        dsn: ./b.db\n", 1)
    path.write_text(text.replace("        - 4\n", "        - 5\n"))
    problems = validate_env(tmp_path / "config", "develop").problems
    assert [(p.code, p.line) for p in problems] == [("duplicate-key", 13), ("range-gap", 20)]


def test_load_topology_raises_config_error_carrying_every_problem(tmp_path: Path) -> None:
    entries = tiled_entries(8, 2, ["./a.db"], "sqlite3")
    entries[1]["table_range"] = [5, 7]
    entries[0]["driver"] = "sqlite"
    path = write_config(tmp_path / "config", entries, suffix_count=8)
    with pytest.raises(ConfigError) as raised:
        load_topology(tmp_path / "config", "develop")
    assert raised.value.file == str(path)
    assert "2 error(s)" in raised.value.message
    assert "shardctl validate --env develop" in raised.value.message
    codes = sorted(p.code for p in raised.value.problems)  # type: ignore[attr-defined]
    assert codes == ["range-gap", "unknown-driver"]


# -- unset variables ---------------------------------------------------------------------------


def _variable_config(config_dir: Path) -> Path:
    return write_config(
        config_dir,
        [
            {"id": 1, "driver": "postgres", "table_range": [0, 1],
             "dsn": "host=db1 user=app password=${SHARD_PW} dbname=app"},
            {"id": 2, "driver": "postgres", "table_range": [2, 3],
             "dsn": "host=db2 user=app password=${SHARD_PW} dbname=${DB_NAME:-app}"},
            {"id": 3, "driver": "postgres", "table_range": [4, 7],
             "dsn": "host=${OTHER_HOST} user=app dbname=app"},
        ],
        suffix_count=8,
    )  # fmt: skip


def test_unset_variable_is_a_warning_for_offline_commands(tmp_path: Path) -> None:
    path = _variable_config(tmp_path / "config")
    topology, warnings = load_topology(tmp_path / "config", "develop", environ={})
    lines = path.read_text().splitlines()
    assert [(w.code, w.severity) for w in warnings] == [("unset-variable", "warning")] * 2
    shard_pw, other = warnings
    assert "SHARD_PW is not set (also used on line" in shard_pw.message
    assert "${SHARD_PW}" in lines[shard_pw.line - 1]
    assert "OTHER_HOST" in other.message and "${OTHER_HOST}" in lines[other.line - 1]
    assert "DB_NAME" not in " ".join(w.message for w in warnings)  # it has a default
    assert topology.entries[1].writer.database == "app"
    assert topology.entries[0].writer.redacted() == "postgres://app:***@db1:5432/app"


def test_unset_variable_is_an_error_naming_it_when_connecting(tmp_path: Path) -> None:
    path = _variable_config(tmp_path / "config")
    report = validate_env(tmp_path / "config", "develop", connecting=True, environ={})
    assert report.topology is None
    errors = [p for p in report.problems if p.is_error]
    assert [p.code for p in errors] == ["unset-variable"] * 2
    lines = path.read_text().splitlines()
    for problem, name in zip(errors, ("SHARD_PW", "OTHER_HOST"), strict=True):
        assert f"Environment variable {name} is not set" in problem.message
        assert f"Export {name}" in problem.message
        assert "${" + name + "}" in lines[problem.line - 1]


def test_a_dsn_repeated_by_entries_reports_each_use_at_its_own_line(tmp_path: Path) -> None:
    """Entries sharing a database repeat its DSN text, which is parsed once: every repeat still
    records its variables and its problems at its own line."""
    shared = "postgres://app:${SHARD_PW}@db1:5433/${DB_NAME:-app}"
    bad = "postgres://app@db2:99999/app"
    entries: list[dict[str, object]] = [
        {"id": n, "driver": "postgres", "table_range": [n, n], "dsn": shared if n < 3 else bad}
        for n in range(5)
    ]
    for entry in entries[:3]:
        entry["reader_dsns"] = [shared]
    lines = write_config(tmp_path / "config", entries, suffix_count=5).read_text().splitlines()
    shared_lines = [n for n, text in enumerate(lines, 1) if shared in text]
    bad_lines = [n for n, text in enumerate(lines, 1) if bad in text]
    assert len(shared_lines) == 6 and len(bad_lines) == 2

    report = validate_env(tmp_path / "config", "develop", environ={})
    (unset,) = [p for p in report.problems if p.code == "unset-variable"]
    also = ", ".join(map(str, shared_lines[1:]))
    assert unset.line == shared_lines[0]
    assert f"SHARD_PW is not set (also used on line {also});" in unset.message
    assert [p.line for p in report.problems if p.code == "bad-dsn"] == bad_lines

    environ = {"SHARD_PW": "pw-1"}
    entries = entries[:3] + [{"id": n, "driver": "postgres", "table_range": [n, n],
                              "dsn": shared, "user": "other"} for n in (3, 4)]  # fmt: skip
    write_config(tmp_path / "config", entries, suffix_count=5)
    topology, warnings = load_topology(tmp_path / "config", "develop", environ=environ)
    assert warnings == []
    writers = [entry.writer for entry in topology.entries]
    assert {(w.place, w.user, w.password) for w in writers} == {("db1:5433/app", "app", "pw-1")}
    assert [len(db.entries) for db in topology.databases] == [5]


def test_set_variables_give_no_problem_when_connecting(tmp_path: Path) -> None:
    _variable_config(tmp_path / "config")
    environ = {"SHARD_PW": "pw", "OTHER_HOST": "db3"}
    topology, warnings = load_topology(tmp_path / "config", "develop", connecting=True,
                                       environ=environ)  # fmt: skip
    assert warnings == []
    assert topology.entries[2].writer.host == "db3"


# -- --all-envs drift --------------------------------------------------------------------------


def _env(
    config_dir: Path,
    env: str,
    suffix_count: int = 32,
    tables: tuple[str, ...] = ("users", "posts"),
    driver: str = "sqlite3",
    moved: dict[int, list[int]] | None = None,
) -> Path:
    """8 entries over 4 databases; ``moved`` replaces some entries' table_range."""
    dsns = (
        [f"./data/{env}/db{i}.db" for i in range(4)]
        if driver == "sqlite3"
        else [f"host={env}-db{i} dbname=app user=app" for i in range(4)]
    )
    entries = tiled_entries(suffix_count, 8, dsns, driver)
    for index, table_range in (moved or {}).items():
        entries[index]["table_range"] = table_range
    return write_config(config_dir, entries, env=env, tables=tables, suffix_count=suffix_count)


def test_same_topology_in_every_env_is_no_drift(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    _env(config_dir, "develop")
    _env(config_dir, "production", driver="postgres")
    _env(config_dir, "staging", driver="postgres")
    reports = validate_all(config_dir, strict=True)
    assert [r.env for r in reports] == ["develop", "production", "staging"]
    assert all(r.ok and r.problems == [] for r in reports)


@pytest.mark.parametrize("strict", [False, True])
def test_drift_is_a_warning_or_with_strict_an_error(tmp_path: Path, strict: bool) -> None:
    config_dir = tmp_path / "config"
    _env(config_dir, "develop")
    tables_file = _env(config_dir, "production", tables=("users",))
    count_file = _env(config_dir, "staging", suffix_count=64)
    moved = {1: [4, 8], 2: [9, 11], 5: [20, 24], 6: [25, 27]}
    mapping_file = _env(config_dir, "test", moved=moved)
    reports = {r.env: r for r in validate_all(config_dir, strict=strict)}
    severity = "error" if strict else "warning"
    assert reports["develop"].problems == []

    def drift(env: str) -> list[tuple[str, str, str]]:
        return [(p.severity, p.code, p.file) for p in reports[env].problems]

    assert drift("production") == [(severity, "env-drift-tables", str(tables_file))]
    assert drift("staging") == [(severity, "env-drift-suffix-count", str(count_file))]
    assert drift("test") == [(severity, "env-drift-mapping", str(mapping_file))]
    assert (
        "['users'] but 'develop' has ['posts', 'users']"
        in reports["production"].problems[0].message
    )
    assert "suffix_count 64 but 'develop' has 32" in reports["staging"].problems[0].message
    assert "maps table numbers 8, 24 to different entries than 'develop'" in (
        reports["test"].problems[0].message
    )
    assert all(r.ok is not strict for r in reports.values() if r.env != "develop")


def test_an_invalid_env_is_reported_and_left_out_of_the_comparison(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    broken = _env(config_dir, "develop")
    broken.write_text(broken.read_text().replace("        - 0\n", "        - 1\n", 1))
    _env(config_dir, "production", suffix_count=16)
    _env(config_dir, "staging", suffix_count=16)
    reports = {r.env: r for r in validate_all(config_dir, strict=True)}
    assert not reports["develop"].ok
    assert [p.code for p in reports["develop"].problems] == ["range-gap"]
    assert reports["production"].problems == reports["staging"].problems == []


@pytest.mark.parametrize(
    ("driver", "dsn"),
    [
        ("postgres", "host=${DB_HOST} port=${DB_PORT} user=app dbname=app"),
        ("postgres", "postgres://app@${DB_HOST}:${DB_PORT}/app"),
        ("mysql", "app@tcp(${DB_HOST}:${DB_PORT})/app"),
        ("mysql", "mysql://app@${DB_HOST}:${DB_PORT}/app"),
    ],
)
def test_unset_port_variable_is_only_a_warning_offline(
    tmp_path: Path, driver: str, dsn: str
) -> None:
    write_config(tmp_path / "config", [{"id": 1, "driver": driver, "dsn": dsn,
                                        "table_range": [0, 0]}], suffix_count=1)  # fmt: skip
    topology, warnings = load_topology(tmp_path / "config", "develop", environ={})
    assert sorted(w.message.split(" is not set")[0] for w in warnings) == [
        "Environment variable DB_HOST", "Environment variable DB_PORT",
    ]  # fmt: skip
    environ = {"DB_HOST": "db1", "DB_PORT": "7000"}
    topology, warnings = load_topology(tmp_path / "config", "develop", connecting=True,
                                       environ=environ)  # fmt: skip
    assert (topology.entries[0].writer.host, topology.entries[0].writer.port) == ("db1", 7000)
    report = validate_env(tmp_path / "config", "develop", connecting=True, environ={})
    assert [p.code for p in report.problems] == ["unset-variable", "unset-variable"]


def test_all_envs_reports_an_unreadable_file_and_checks_the_rest(tmp_path: Path) -> None:
    from shardctl.validate import validate_all

    write_config(tmp_path, tiled_entries(8, 2, ["./a.db"], "sqlite3"), suffix_count=8)
    broken = write_config(tmp_path, tiled_entries(8, 2, ["./a.db"], "sqlite3"), env="staging",
                          suffix_count=8)  # fmt: skip
    broken.write_bytes(b"database: \xff\xfe\n")
    reports = {r.env: r for r in validate_all(tmp_path, strict=True)}
    assert reports["develop"].ok
    (problem,) = reports["staging"].problems
    assert problem.code == "unreadable-file" and "UTF-8" in problem.message
