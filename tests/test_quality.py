"""The code standards are part of the suite: ruff (lint and format) and strict mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_lint_and_format():
    lint = _run(str(BIN / "ruff"), "check", "shardctl", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout
    fmt = _run(str(BIN / "ruff"), "format", "--check", "shardctl", "tests")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict():
    typed = _run(str(BIN / "mypy"))
    assert typed.returncode == 0, typed.stdout
