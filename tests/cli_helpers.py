"""Run the real entry point in-process and capture what it prints and its exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from shardctl.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Run:
    """``shardctl ARGS`` through :func:`shardctl.cli.main` (the console script's function)."""
    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["shardctl", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)
