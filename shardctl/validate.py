"""Whole-file rules (tiling, duplicates, shared databases) and loading a validated topology.

Field-level problems come from :mod:`shardctl.config`; this module adds the rules that need every
entry at once and turns a clean file into a :class:`~shardctl.routing.Topology`. Every problem is
collected; nothing stops at the first one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from shardctl.config import ParsedConfig, RangeClaim, config_path, list_envs, parse_config
from shardctl.errors import ConfigError, UsageError
from shardctl.problems import Problem, ProblemSink
from shardctl.routing import Topology, span, spans


@dataclass
class Report:
    """The outcome of validating one environment."""

    env: str
    file: str
    problems: list[Problem]
    topology: Topology | None

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


def _table_numbers(lo: int, hi: int) -> str:
    """``Table number 8 is`` / ``Table numbers 8-9 are``: the subject of a range message."""
    return f"Table number {lo} is" if lo == hi else f"Table numbers {span(lo, hi)} are"


def check_duplicate_ids(parsed: ParsedConfig) -> None:
    first: dict[str, int] = {}
    for entry_id, line in parsed.entry_ids:
        if entry_id in first:
            parsed.sink.error(
                line,
                "duplicate-id",
                f"Entry id '{entry_id}' is used twice (first at line {first[entry_id]}). "
                "Give each entry its own id.",
            )
        else:
            first[entry_id] = line


def check_suffix_counts(parsed: ParsedConfig) -> int | None:
    """The common suffix_count, or ``None`` (with a problem) when tables disagree or none."""
    counts = {t.suffix_count for t in parsed.tables}
    if len(counts) > 1:
        listing = ", ".join(f"{t.name}={t.suffix_count}" for t in parsed.tables)
        first = parsed.tables[0].suffix_count
        parsed.sink.error(
            next(t.line for t in parsed.tables if t.suffix_count != first),
            "suffix-count-mismatch",
            f"Logical tables have different suffix_count ({listing}); one set of table_range "
            "values cannot serve both. Give every table the same suffix_count or move the odd "
            "one to its own config.",
        )
        return None
    return counts.pop() if counts else None


def check_tiling(
    sink: ProblemSink, claims: Sequence[RangeClaim], suffix_count: int, list_line: int
) -> None:
    """Ranges must cover ``0 … suffix_count-1`` exactly once: report each bound violation, each
    gap (as one range) and each overlapping pair (with both entry ids)."""
    last = suffix_count - 1
    inside: list[RangeClaim] = []
    for claim in claims:
        if claim.lo < 0 or claim.hi > last:
            sink.error(
                claim.line,
                "range-out-of-bounds",
                f"table_range [{claim.lo}, {claim.hi}] of entry '{claim.entry_id}' is outside "
                f"0-{last} (suffix_count is {suffix_count}): table numbers run from 0 to "
                f"suffix_count-1. Change it to lie within 0-{last}.",
            )
        lo, hi = max(claim.lo, 0), min(claim.hi, last)
        if (lo, hi) == (claim.lo, claim.hi):
            inside.append(claim)
        elif lo <= hi:
            inside.append(RangeClaim(claim.entry_id, lo, hi, claim.line))
    inside.sort(key=attrgetter("lo", "hi"))
    active: list[RangeClaim] = []
    next_uncovered = 0
    for claim in inside:
        if claim.lo > next_uncovered:
            _report_gap(sink, next_uncovered, claim.lo - 1, claim.line, suffix_count)
        active = [a for a in active if a.hi >= claim.lo]
        for other in active:
            sink.error(
                claim.line,
                "range-overlap",
                f"{_table_numbers(claim.lo, min(claim.hi, other.hi))} claimed by both "
                f"entry '{other.entry_id}' (line {other.line}) and entry '{claim.entry_id}'. "
                "Each table number must belong to exactly one entry; shrink one of the ranges.",
            )
        active.append(claim)
        next_uncovered = max(next_uncovered, claim.hi + 1)
    if next_uncovered <= last:
        line = inside[-1].line if inside else list_line
        _report_gap(sink, next_uncovered, last, line, suffix_count)


def _report_gap(sink: ProblemSink, lo: int, hi: int, line: int, suffix_count: int) -> None:
    sink.error(
        line,
        "range-gap",
        f"{_table_numbers(lo, hi)} served by no entry: rows with id % {suffix_count} in "
        f"{span(lo, hi)} would fail at run time (no such table). Extend a neighbouring "
        f"table_range or add an entry with table_range: [{lo}, {hi}].",
    )


def check_shared_databases(parsed: ParsedConfig) -> None:
    """Entries on the same server and database name must use the same driver."""
    by_place: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for entry in parsed.entries:
        w = entry.writer
        place = w.database if w.driver == "sqlite3" else f"{w.host}:{w.port}/{w.database}"
        by_place[place].append((entry.id, entry.driver, entry.line))
    for place, members in by_place.items():
        drivers = {driver for _, driver, _ in members}
        if len(drivers) > 1:
            listing = ", ".join(f"'{i}' ({d})" for i, d, _ in members)
            parsed.sink.error(
                members[-1][2],
                "mixed-drivers",
                f"Entries {listing} share the physical database {place} but use different "
                "drivers. One database speaks one protocol: fix the driver or the DSN.",
            )


def check_master_ids(parsed: ParsedConfig) -> None:
    seen: dict[str, int] = {}
    for database in parsed.master:
        if database.id in seen:
            parsed.sink.error(
                database.line,
                "duplicate-id",
                f"Master database id '{database.id}' is used twice (first at line "
                f"{seen[database.id]}). Give each its own id.",
            )
        seen.setdefault(database.id, database.line)


def check_variables(parsed: ParsedConfig, connecting: bool) -> None:
    """Unset ``${VAR}``: a warning for offline commands, an error for commands that connect.
    One problem per variable, at its first use."""
    uses: dict[str, list[int]] = {}
    for variable in parsed.variables:
        if not variable.is_set:
            uses.setdefault(variable.name, []).append(variable.line)
    for name, lines in uses.items():
        also = f" (also used on line {', '.join(map(str, lines[1:]))})" if len(lines) > 1 else ""
        message = f"Environment variable {name} is not set{also}"
        if connecting:
            parsed.sink.error(
                lines[0],
                "unset-variable",
                f"{message}; this command connects to the database and needs it. "
                f"Export {name} (or write ${{{name}:-default}}).",
            )
        else:
            parsed.sink.warning(
                lines[0],
                "unset-variable",
                f"{message}; its value is shown as the placeholder. Commands that connect will "
                "refuse to run until it is set.",
            )


def validate_env(
    config_dir: Path,
    env: str,
    *,
    connecting: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Parse and check one environment. Raises :class:`~shardctl.errors.UsageError` only for a
    missing or unreadable file."""
    parsed = parse_config(config_dir, env, environ)
    sink = parsed.sink
    if not sink.has_errors or parsed.entry_ids:
        check_duplicate_ids(parsed)
        suffix_count = check_suffix_counts(parsed)
        if suffix_count is not None:
            check_tiling(sink, parsed.claims, suffix_count, parsed.databases_line)
        check_shared_databases(parsed)
        check_master_ids(parsed)
        check_variables(parsed, connecting)
    problems = sorted(sink.problems, key=lambda p: (p.line, p.severity, p.code))
    topology = None
    if not sink.has_errors:
        topology = Topology.build(
            env=env,
            file=parsed.file,
            tables=parsed.tables,
            entries=parsed.entries,
            master=parsed.master,
            secrets=frozenset(parsed.secrets),
        )
    return Report(env, parsed.file, problems, topology)


def load_topology(
    config_dir: Path,
    env: str,
    *,
    connecting: bool = False,
    environ: Mapping[str, str] | None = None,
) -> tuple[Topology, list[Problem]]:
    """The validated topology and its warnings; :class:`ConfigError` (carrying every problem)
    when the file has errors."""
    report = validate_env(config_dir, env, connecting=connecting, environ=environ)
    if report.topology is None:
        errors = [p for p in report.problems if p.is_error]
        error = ConfigError(
            f"{report.file} has {len(errors)} error(s); run 'shardctl validate --env {env}' "
            "for the full list.",
            file=report.file,
        )
        error.problems = report.problems  # type: ignore[attr-defined]
        raise error
    return report.topology, report.problems


def topology_signature(topology: Topology) -> dict[str, object]:
    """What must agree between environments: tables, suffix count, table number → entry id."""
    return {
        "tables": sorted(topology.table_names),
        "suffix_count": topology.suffix_count,
        "owners": [topology.entry_for(n).id for n in range(topology.suffix_count)],
    }


def compare_topologies(reports: Sequence[Report], strict: bool) -> list[Problem]:
    """Drift between environments, reported against each env's file (line 1 when unplaceable).

    The first valid environment (alphabetical) is the reference. Warnings, or errors when
    ``strict``."""
    valid = [r for r in reports if r.topology is not None]
    if len(valid) < 2:
        return []
    reference = valid[0]
    assert reference.topology is not None
    ref = topology_signature(reference.topology)
    problems = []
    for report in valid[1:]:
        assert report.topology is not None
        other = topology_signature(report.topology)
        sink = ProblemSink(report.file)
        add = sink.error if strict else sink.warning
        if other["tables"] != ref["tables"]:
            add(
                1,
                "env-drift-tables",
                f"Env '{report.env}' has logical tables {other['tables']} but "
                f"'{reference.env}' has {ref['tables']}. Environments should share one topology.",
            )
        if other["suffix_count"] != ref["suffix_count"]:
            add(
                1,
                "env-drift-suffix-count",
                f"Env '{report.env}' has suffix_count {other['suffix_count']} but "
                f"'{reference.env}' has {ref['suffix_count']}.",
            )
        elif other["owners"] != ref["owners"]:
            differing = _differing_spans(ref["owners"], other["owners"])  # type: ignore[arg-type]
            add(
                1,
                "env-drift-mapping",
                f"Env '{report.env}' maps table numbers {differing} to different entries than "
                f"'{reference.env}'. Align the table_range values.",
            )
        problems.extend(sink.problems)
    return problems


def _differing_spans(a: Sequence[str], b: Sequence[str]) -> str:
    return spans(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)


def validate_all(
    config_dir: Path, *, strict: bool, environ: Mapping[str, str] | None = None
) -> list[Report]:
    """Every environment under ``config_dir`` plus a cross-environment drift report. A file
    that cannot be read is an ``unreadable-file`` error in its own report; the others are
    still checked."""
    reports = []
    for env in list_envs(config_dir):
        try:
            reports.append(validate_env(config_dir, env, environ=environ))
        except UsageError as error:
            file = str(config_path(config_dir, env))
            problem = Problem(file, 1, "error", "unreadable-file", error.message)
            reports.append(Report(env, file, [problem], None))
    drift = compare_topologies(reports, strict)
    for report in reports:
        report.problems.extend(p for p in drift if p.file == report.file)
    return reports
