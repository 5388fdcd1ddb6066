"""Section 6: ``validate`` on a generated config with 1,024 entries and suffix_count 4,096.

The config looks like a real one grown large: 1,024 entries of 4 table numbers each, 8 entries per
physical PostgreSQL database (128 databases), one reader per entry, passwords from ``${VAR}``.
Nothing connects. Two figures: ``validate_env`` in this process (parse, check, build the
topology) against loading the same YAML with libyaml alone, and the CLI's wall time against the
start-up floors.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from harness import (
    BENCH_ENV,
    PYTHON,
    SHARDCTL,
    Context,
    SectionResult,
    Verdict,
    interleaved,
    log,
    mark,
    ratio,
    table,
    time_command,
    timed,
)

ENTRIES = 1024
SUFFIX_COUNT = 4096
ENTRIES_PER_DATABASE = 8
TARGET_SECONDS = 0.200
ENV = "bench"
ENVIRON = {"BENCH_DB_PASSWORD": "s3cret-bench"}


def write_config(config_dir: Path, entries: int, suffix_count: int) -> Path:
    per_entry = suffix_count // entries
    lines = [
        "database:",
        "  groups:",
        "    master:",
        "      - id: main",
        "        driver: postgres",
        "        dsn: postgres://app:${BENCH_DB_PASSWORD}@master.internal:5432/main",
        "    sharding:",
        "      tables:",
        f"        - name: users\n          suffix_count: {suffix_count}",
        f"        - name: posts\n          suffix_count: {suffix_count}",
        "      databases:",
    ]
    for index in range(entries):
        db = index // ENTRIES_PER_DATABASE + 1
        lo = index * per_entry
        lines += [
            f"      # entry {index + 1}: tables {lo}-{lo + per_entry - 1} on database {db}",
            f"      - id: {index + 1}",
            "        driver: postgres",
            f"        writer_dsn: postgres://app:${{BENCH_DB_PASSWORD}}@db-{db:03d}.internal:5432"
            f"/shard_{db:03d}?sslmode=disable",
            "        reader_dsns:",
            f"          - postgres://app:${{BENCH_DB_PASSWORD}}@db-{db:03d}-replica.internal:5432"
            f"/shard_{db:03d}?sslmode=disable",
            "        reader_policy: round_robin",
            "        max_connections: 20",
            "        max_idle_connections: 5",
            "        connection_max_lifetime: 300s",
            f"        table_range: [{lo}, {lo + per_entry - 1}]",
        ]
    path = config_dir / ENV / "database.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run(ctx: Context) -> SectionResult:
    from shardctl.validate import validate_env

    repeats = ctx.repeats(15, 5)
    config_dir = ctx.workdir / "config"
    path = write_config(config_dir, ENTRIES, SUFFIX_COUNT)
    text = path.read_text()
    report = validate_env(config_dir, ENV, environ=ENVIRON)
    if not report.ok:
        raise RuntimeError(f"generated config is invalid: {report.problems[:3]}")
    environ = BENCH_ENV | ENVIRON
    cli = [SHARDCTL, "validate", "--config-dir", str(config_dir), "-e", ENV]
    jobs = {
        "validate_env": timed(lambda: validate_env(config_dir, ENV, environ=ENVIRON)),
        "yaml": timed(lambda: yaml.load(text, Loader=yaml.CSafeLoader)),
        "cli": lambda: time_command(cli, env=environ),
        "cli json": lambda: time_command([*cli, "-f", "json"], env=environ),
        "pass": lambda: time_command([PYTHON, "-c", "pass"]),
        "floor": lambda: time_command([PYTHON, "-c", "import typer, rich.table, yaml"]),
    }
    log(f"validate: {ENTRIES} entries, suffix_count {SUFFIX_COUNT}, {repeats} runs")
    stats = interleaved(jobs, repeats)
    in_process = stats["validate_env"].median
    verdicts = [Verdict("validate", "`validate_env` in-process < 200 ms",
                        f"{in_process * 1e3:.0f} ms", in_process < TARGET_SECONDS)]  # fmt: skip
    rows = [
        ["`validate_env()` in-process", stats["validate_env"].ms(),
         ratio(in_process, stats["yaml"].median), "", mark(in_process < TARGET_SECONDS)],
        ["`yaml.load(CSafeLoader)` of the same file (parse floor)", stats["yaml"].ms(), "1.00×",
         "", ""],
    ]  # fmt: skip
    for name, label in (
        ("cli", "`shardctl validate`"),
        ("cli json", "`shardctl validate -f json`"),
    ):
        wall = stats[name].median
        met = wall < TARGET_SECONDS
        rows.append([label, stats[name].ms(), "", ratio(wall, stats["floor"].median), mark(met)])
        verdicts.append(Verdict("validate", f"{label} wall < 200 ms", f"{wall * 1e3:.0f} ms", met))
    rows += [
        ["`python -c pass`", stats["pass"].ms(), "", ratio(stats["pass"].median,
                                                           stats["floor"].median), ""],
        ["library floor `python -c \"import typer, rich.table, yaml\"`", stats["floor"].ms(), "",
         "1.00×", ""],
    ]  # fmt: skip
    body = table(["what", "ms: median (IQR)", "× YAML parse", "× library floor",
                  "target < 200 ms"], rows)  # fmt: skip
    size = len(text.encode())
    note = (
        f"Generated config: {ENTRIES:,} entries, suffix_count {SUFFIX_COUNT:,}, "
        f"{ENTRIES // ENTRIES_PER_DATABASE} physical PostgreSQL databases, one reader per entry, "
        f"{len(text.splitlines()):,} lines / {size / 1024:.0f} KiB; {repeats} interleaved runs "
        "each after a warm-up round."
    )
    return SectionResult(f"{note}\n\n{body}", verdicts,
                         {k: s.as_dict() for k, s in stats.items()})  # fmt: skip
