"""Findings about a config file: severity, stable code, how-to-fix message, file and line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    """One finding. ``code`` is stable across releases (documented in docs/Sharding.md)."""

    file: str
    line: int
    severity: Severity
    code: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
        }


class ProblemSink:
    """Collects problems for one file so rules can report without passing the file name around."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def error(self, line: int, code: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, "error", code, message))

    def warning(self, line: int, code: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, "warning", code, message))

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)
