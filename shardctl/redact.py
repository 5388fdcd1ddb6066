"""Remove passwords from any text before it is shown: known secrets and password-shaped parts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

from shardctl.dsn import REDACTED

# Repeats are bounded (passwords are short) so scrubbing stays linear on long lines.
# `password=x`, `password='a b'`, `password: x`, `"password": "x"`, `DB_PASSWORD=x` (a `:-` is a
# ${NAME:-default} reference, not a value).
_KEYED = re.compile(
    r"""(?i)(["']?password\w{0,64}["']?[ \t]{0,16}(?:=|:(?!-))[ \t]{0,16})"""
    r"""("(?:[^"\\]|\\.){0,256}"|'(?:[^'\\]|\\.){0,256}'|[^\s"',;&}]{1,256})"""
)
# scheme://user:pw@host — up to the last '@' before the path, so a raw '@' in pw is covered.
_URL = re.compile(r"(://[^:/@\s]{0,256}:)([^\s/]{1,256})(@)")
# Go MySQL: user:pw@tcp(…), user:pw@unix(…), user:pw@/db — pw may hold ':' and '@'.
_GO = re.compile(r"""(^|[\s'"(=,])([^:@\s/'"]{1,256}:)(\S{1,256}?)(@(?:[A-Za-z0-9]{0,16}\(|/))""")


def _keyed(match: re.Match[str]) -> str:
    value = match.group(2)
    quote_char = value[0] if value[0] in "\"'" else ""
    return f"{match.group(1)}{quote_char}{REDACTED}{quote_char}"


def _forms(secret: str) -> set[str]:
    """The secret as written raw, percent-encoded (URLs) and JSON-escaped."""
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every password-shaped value replaced by ``***``."""
    for form in sorted({f for s in secrets for f in _forms(s)}, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    text = _KEYED.sub(_keyed, text)
    text = _URL.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return _GO.sub(lambda m: m.group(1) + m.group(2) + REDACTED + m.group(4), text)
