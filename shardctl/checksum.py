"""Row digests and order-independent table checksums that agree across SQLite, PostgreSQL and
MySQL/MariaDB for the same logical data.

Each value is normalized before hashing, so the representation an engine's driver returns does
not matter:

* timestamps: an aware value becomes naive UTC (PostgreSQL ``timestamptz``), a naive one is taken
  as UTC (MySQL ``DATETIME``, SQLite text); always with microseconds;
* decimals: trailing zeros dropped, never exponent notation (``1.50`` and ``1.5`` are equal);
* text: UTF-8 bytes, not altered otherwise (a real difference such as a trailing space counts);
* JSON documents: keys sorted, no whitespace (PostgreSQL ``jsonb`` reorders keys);
* booleans: their own tag, so MySQL's ``TINYINT`` read back as ``True`` equals PostgreSQL's.

A row's digest is BLAKE2b-128 of its length-prefixed normalized values (column order fixed by the
schema). A table's checksum is the row count plus the sum of the digests modulo 2**128: equal
multisets of rows give equal checksums in any order, and a changed, missing or extra row changes
it (unless 2**-128 bad luck).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

DIGEST_BYTES = 16
MODULUS = 1 << (8 * DIGEST_BYTES)


def normalize(value: object) -> bytes:
    """Tagged canonical bytes of one column value (see the module docstring for the rules)."""
    if value is None:
        return b"n"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return b"b1" if value else b"b0"
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, Decimal):
        return b"d" + _decimal_text(value).encode()
    if isinstance(value, float):
        return b"f" + repr(value).encode()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return b"t" + value.isoformat(sep=" ", timespec="microseconds").encode()
    if isinstance(value, dt.date):
        return b"D" + value.isoformat().encode()
    if isinstance(value, dt.time):
        return b"T" + value.replace(tzinfo=None).isoformat(timespec="microseconds").encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return b"x" + bytes(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return b"j" + text.encode()
    if isinstance(value, uuid.UUID):
        return b"u" + str(value).encode()
    raise TypeError(f"no checksum rule for values of type {type(value).__name__}")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def row_digest(values: Iterable[object]) -> bytes:
    """BLAKE2b-128 of a row's normalized values, each prefixed by its length."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for value in values:
        data = normalize(value)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


@dataclass
class Checksum:
    """Running count and order-independent sum of row digests."""

    rows: int = 0
    total: int = 0

    def add(self, digest: bytes) -> None:
        self.rows += 1
        self.total = (self.total + int.from_bytes(digest, "big")) % MODULUS

    @property
    def hex(self) -> str:
        return f"{self.total:0{2 * DIGEST_BYTES}x}"
