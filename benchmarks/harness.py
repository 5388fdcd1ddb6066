"""Shared machinery: timing with repeats, statistics, machine facts and the markdown pieces.

Every section measures its figures and their baselines in the same run, interleaved, and reports
median and spread; a ratio is always ``median(figure) / median(baseline)``.
"""

from __future__ import annotations

import os
import platform
import random
import re
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PYTHON = str(VENV_BIN / "python")
SHARDCTL = str(VENV_BIN / "shardctl")
# Commands run with cached bytecode, as after `pip install`: an editable install under
# PYTHONDONTWRITEBYTECODE=1 recompiles shardctl on every start. The cache lives outside the
# checkout; the warm-up round fills it.
PYCACHE = Path(tempfile.gettempdir()) / "shardctl-bench-pycache"
BENCH_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
    "PYTHONPYCACHEPREFIX": str(PYCACHE)
}


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


Sample = tuple[float, float]  # (wall seconds, CPU seconds) of one run


@dataclass(frozen=True)
class Stats:
    """Wall seconds over repeated runs, and the CPU seconds of the same runs (user + system of
    the child for commands, of this process for in-process jobs). CPU time is what background
    load disturbs least."""

    samples: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.samples) < 4:
            return self.low, self.high
        quartiles = statistics.quantiles(self.samples, n=4, method="inclusive")
        return quartiles[0], quartiles[2]

    def ms(self) -> str:
        """``median (IQR q1–q3, n=N)`` in milliseconds."""
        q1, q3 = self.iqr
        return f"{self.median * 1e3:.1f} ({q1 * 1e3:.1f}–{q3 * 1e3:.1f})"

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "iqr": list(self.iqr), "min": self.low,
                "max": self.high, "n": len(self.samples), "cpu": self.cpu_median}  # fmt: skip


@dataclass
class Verdict:
    """One target: the measured value, the limit and whether it is met."""

    section: str
    target: str
    measured: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "target": self.target, "measured": self.measured,
                "met": self.met}  # fmt: skip


@dataclass
class SectionResult:
    """What a section hands back: its markdown body, its verdicts and raw numbers."""

    markdown: str
    verdicts: list[Verdict] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    quick: bool
    workdir: Path  # scratch space, removed after the run
    output: Path  # the markdown file being written (plots go next to it)

    def repeats(self, full: int, quick: int) -> int:
        return quick if self.quick else full


Command = Sequence[str]


def time_command(argv: Command, *, stdin: Path | None = None, cwd: Path = REPO,
                 env: Mapping[str, str] | None = None) -> Sample:  # fmt: skip
    """Wall and CPU seconds of one run (output discarded); a non-zero exit is an error."""
    with open(stdin or os.devnull, "rb") as source:
        cpu = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run(argv, stdin=source, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, cwd=cwd, env=env or BENCH_ENV)  # fmt: skip
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.decode()[-2000:]}"
        )
    return elapsed, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


Job = Callable[[], Sample]


def interleaved(jobs: Mapping[str, Job], repeats: int, *, warmup: int = 1) -> dict[str, Stats]:
    """Run every job ``repeats`` times, in a fresh random order each round, so that background
    noise spreads over all of them instead of landing on one."""
    samples: dict[str, list[Sample]] = {name: [] for name in jobs}
    names = list(jobs)
    for round_ in range(warmup + repeats):
        random.shuffle(names)
        for name in names:
            sample = jobs[name]()
            if round_ >= warmup:
                samples[name].append(sample)
    return {
        name: Stats(tuple(w for w, _ in values), tuple(c for _, c in values))
        for name, values in samples.items()
    }


def timed(function: Callable[[], object]) -> Job:
    """A job that calls ``function`` in this process."""

    def job() -> Sample:
        cpu = time.process_time()
        start = time.perf_counter()
        function()
        return time.perf_counter() - start, time.process_time() - cpu

    return job


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    align = ["---:" if rows and _numeric(rows[0][i]) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _numeric(cell: object) -> bool:
    return bool(re.match(r"^\d[\d,]*(\.\d+)?(×| |$)", str(cell)))


def mark(met: bool) -> str:
    return "✅ met" if met else "❌ not met"


def command_output(argv: Command) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def machine() -> dict[str, str]:
    """Facts that make the numbers comparable: cores, CPU, load, software versions."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    version = command_output([PYTHON, "-c", "import sqlalchemy, typer, rich, yaml, sqlglot, "
                              "psycopg; from importlib.metadata import version as v; print("
                              "' · '.join(f'{n} {v(n)}' for n in ('typer', 'rich', 'PyYAML', "
                              "'SQLAlchemy', 'sqlglot', 'psycopg')))"])  # fmt: skip
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _server_version(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tA", "-c", "SHOW server_version"]
        ),  # fmt: skip
        "mariadb": _server_version(
            ["mysql", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT VERSION()"]
        ),  # fmt: skip
        "libraries": version,
    }


def _server_version(argv: list[str]) -> str:
    text = command_output(argv)
    return text.split()[0] if text and text != "n/a" else "not reachable"


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
