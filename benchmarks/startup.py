"""Section 1: start-up wall time of the offline commands against interpreter and library floors.

Each command runs as a user would run it (the venv's console script, develop config, output to
/dev/null); the baselines are the same interpreter doing nothing, importing the libraries the CLI
is built on, and importing SQLAlchemy (what a command that connects pays on top).
"""

from __future__ import annotations

import os

from harness import (
    BENCH_ENV,
    PYTHON,
    SHARDCTL,
    Context,
    Job,
    SectionResult,
    Verdict,
    interleaved,
    log,
    mark,
    ratio,
    table,
    time_command,
)

PASS = "python -c pass"
FLOOR = 'python -c "import typer, rich.table, yaml"'
FLOOR_NO_RICH = 'python -c "import typer, yaml"'
SQLALCHEMY = 'python -c "import sqlalchemy"'
BASELINES = {
    PASS: [PYTHON, "-c", "pass"],
    FLOOR: [PYTHON, "-c", "import typer, rich.table, yaml"],
    FLOOR_NO_RICH: [PYTHON, "-c", "import typer, yaml"],
    SQLALCHEMY: [PYTHON, "-c", "import sqlalchemy"],
}
# command → whether its output is for people (table or text: target ≤ 1.2× floor) or not (< floor)
COMMANDS = {
    "route 1": True,
    "route 1 -f json": False,
    "route 1 -f csv": False,
    "map": True,
    "map -f json": False,
    "map -f csv": False,
    "validate": True,
    "validate -f json": False,
}
TABLE_LIMIT = 1.2
# Tables on a terminal carry escape codes; FORCE_COLOR=1 writes them to /dev/null too: what an
# interactive user waits for.
STYLED = {f"shardctl {c}, styled as for a terminal (FORCE_COLOR=1)": c
          for c in ("route 1", "map")}  # fmt: skip
STYLED_ENV = BENCH_ENV | {"FORCE_COLOR": "1"}
UNCACHED = "shardctl route 1 -f json, shardctl's bytecode not cached"
# PYTHONDONTWRITEBYTECODE=1 with an editable install: every start compiles shardctl's modules
UNCACHED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"} | {
    "PYTHONDONTWRITEBYTECODE": "1"
}


def run(ctx: Context) -> SectionResult:
    repeats = ctx.repeats(15, 5)
    jobs = {name: _job(argv) for name, argv in BASELINES.items()}
    jobs |= {f"shardctl {c}": _job([SHARDCTL, *c.split()]) for c in COMMANDS}
    jobs |= {name: _job([SHARDCTL, *c.split()], STYLED_ENV) for name, c in STYLED.items()}
    jobs[UNCACHED] = _job([SHARDCTL, "route", "1", "-f", "json"], UNCACHED_ENV)
    log(f"start-up: {len(jobs)} commands × {repeats} runs, interleaved")
    stats = interleaved(jobs, repeats)
    bare, floor = stats[PASS], stats[FLOOR]

    def row(name: str, label: str, target: str = "", verdict: str = "") -> list[str]:
        s = stats[name]
        return [label, s.ms(), ratio(s.median, bare.median), f"**{s.median / floor.median:.2f}×**"
                if target else ratio(s.median, floor.median), target, verdict,
                f"{s.cpu_median * 1e3:.0f}", ratio(s.cpu_median, floor.cpu_median)]  # fmt: skip

    rows = [row(name, f"`{name}`") for name in BASELINES]
    verdicts = []
    for command, draws_table in COMMANDS.items():
        name = f"shardctl {command}"
        value = stats[name].median / floor.median
        limit = TABLE_LIMIT if draws_table else 1.0
        met = value <= limit if draws_table else value < limit
        target = f"≤ {limit}× floor" if draws_table else "< 1× floor"
        rows.append(row(name, f"`{name}`", target, mark(met)))
        verdicts.append(Verdict("start-up", f"`{name}` {target}", f"{value:.2f}×", met))
    rows += [row(name, f"`{name}`") for name in STYLED]
    rows.append(row(UNCACHED, f"`{UNCACHED}` (editable install, `PYTHONDONTWRITEBYTECODE=1`)"))
    body = table(["command", "wall ms: median (IQR)", "× `python -c pass`", "× library floor",
                  "target", "", "CPU ms", "CPU × floor"], rows)  # fmt: skip
    note = (
        f"{repeats} runs each after one warm-up round, all {len(jobs)} commands interleaved in a "
        'new random order every round. Library floor = `python -c "import typer, rich.table, '
        'yaml"`. Develop config (8 entries, 32 table numbers, 4 SQLite files), output to '
        "/dev/null (the `styled` rows with a terminal's escape codes), the venv's console "
        "script, bytecode cached as after `pip install` (the last row shows what an editable "
        "install pays when bytecode is never written). Targets are "
        "judged on wall time; the CPU columns (user + system of the child) are steadier when "
        "the machine is busy."
    )
    return SectionResult(
        f"{note}\n\n{body}",
        verdicts,
        {name: s.as_dict() for name, s in stats.items()},
    )


def _job(argv: list[str], env: dict[str, str] | None = None) -> Job:
    return lambda: time_command(argv, env=env)
