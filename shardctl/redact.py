"""Remove passwords from any text before it is shown: known secrets and password-shaped parts."""

from __future__ import annotations

import re
from collections.abc import Iterable

from shardctl.dsn import REDACTED

_PATTERNS = (
    re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'&;]+)"),  # libpq keywords, query
    re.compile(r"(?i)(\"?password\"?\s*[:=]\s*\"?)([^\s\",}]+)"),  # password: x, "password": "x"
    re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)"),  # scheme://user:pw@host
    re.compile(r"(^|[\s'\"(])([^:@\s/'\"]+:)([^@\s]+)(@(?:tcp|unix)\()"),  # Go: user:pw@tcp(
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every password-shaped value replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub(lambda m: m.group(1) + REDACTED, text)
    text = _PATTERNS[1].sub(lambda m: m.group(1) + REDACTED, text)
    text = _PATTERNS[2].sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return _PATTERNS[3].sub(lambda m: m.group(1) + m.group(2) + REDACTED + m.group(4), text)
