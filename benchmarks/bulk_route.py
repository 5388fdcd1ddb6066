"""Section 2: ``shardctl route --stdin`` throughput on many ids, against a minimal Python loop.

The ids are random 62-bit integers (like snowflake ids), one per line; output goes to /dev/null.
The empty-input run is the fixed cost (start-up and config), so the per-id rate is shown both
including and excluding it. The target (≥ 1M ids/s) is judged on the whole wall time.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from harness import (
    PYTHON,
    REPO,
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
)

TARGET_IDS_PER_SECOND = 1_000_000
FLOOR_SCRIPT = Path(__file__).with_name("route_floor.py")


def write_ids(path: Path, count: int) -> None:
    rng = random.Random(8)
    path.write_text("\n".join(str(rng.getrandbits(62)) for _ in range(count)) + "\n")


def run(ctx: Context) -> SectionResult:
    count = 300_000 if ctx.quick else 1_000_000
    repeats = ctx.repeats(7, 3)
    ids = ctx.workdir / "ids.txt"
    write_ids(ids, count)
    suffix_count, tail = _develop_tail()
    jobs = {
        "jsonl": lambda: time_command([SHARDCTL, "route", "--stdin", "-f", "jsonl"], stdin=ids),
        "csv": lambda: time_command([SHARDCTL, "route", "--stdin", "-f", "csv"], stdin=ids),
        "json": lambda: time_command([SHARDCTL, "route", "--stdin", "-f", "json"], stdin=ids),
        "empty": lambda: time_command([SHARDCTL, "route", "--stdin", "-f", "jsonl"]),
        "floor": lambda: time_command([PYTHON, str(FLOOR_SCRIPT), suffix_count, tail], stdin=ids),
    }
    log(f"bulk routing: {count:,} ids, {len(jobs)} commands × {repeats} runs")
    stats = interleaved(jobs, repeats, warmup=1)
    fixed = stats["empty"].median
    floor = stats["floor"].median
    rows = []
    verdicts = []
    for fmt in ("jsonl", "csv", "json"):
        wall = stats[fmt].median
        rate = count / wall
        met = rate >= TARGET_IDS_PER_SECOND
        rows.append([f"`shardctl route --stdin -f {fmt}`", stats[fmt].ms(), f"{rate:,.0f}",
                     f"{count / (wall - fixed):,.0f}", ratio(wall, floor),
                     mark(met) if fmt != "json" else ""])  # fmt: skip
        if fmt != "json":
            verdicts.append(Verdict("route", f"`route --stdin -f {fmt}` ≥ 1M ids/s",
                                    f"{rate:,.0f} ids/s", met))  # fmt: skip
    rows.append(["`shardctl route --stdin` (no input: fixed cost)", stats["empty"].ms(), "", "",
                 ratio(fixed, floor), ""])  # fmt: skip
    rows.append(["minimal Python loop (`benchmarks/route_floor.py`, jsonl)", stats["floor"].ms(),
                 f"{count / floor:,.0f}", "", "1.00×", ""])  # fmt: skip
    body = table(["command", "wall ms: median (IQR)", "ids/s", "ids/s after fixed cost",
                  "× minimal loop", "target ≥ 1M ids/s"], rows)  # fmt: skip
    note = (
        f"{count:,} random 62-bit ids, one per line, develop config (32 table numbers), output "
        f"to /dev/null; {repeats} interleaved runs each after a warm-up round. The minimal loop "
        "parses the same ids and writes a line of the same length per id, with no config, "
        "checks or CLI."
    )
    return SectionResult(f"{note}\n\n{body}", verdicts,
                         {k: s.as_dict() for k, s in stats.items()} | {"ids": count})  # fmt: skip


def _develop_tail() -> tuple[str, str]:
    """The develop config's suffix_count and the text shardctl writes after the id for table
    number 0 (so the floor writes as much per id)."""
    done = subprocess.run([SHARDCTL, "map", "-f", "json"], capture_output=True, text=True,
                          check=True, cwd=REPO)  # fmt: skip
    suffix_count = len(json.loads(done.stdout))
    done = subprocess.run([SHARDCTL, "route", "0", "-f", "jsonl"], capture_output=True,
                          text=True, check=True, cwd=REPO)  # fmt: skip
    return str(suffix_count), "," + done.stdout.strip().split(",", 1)[1]
