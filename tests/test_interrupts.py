"""Ctrl-C gives exit 130 and one line, never a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import REPO


def test_sigint_during_route_stdin_exits_130_without_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "shardctl", "route", "--stdin", "--config-dir",
         str(REPO / "config")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write("1\n2\n")
    process.stdin.flush()
    time.sleep(1.5)  # let it start and block on stdin (not a timing assertion)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip() == "Interrupted."
