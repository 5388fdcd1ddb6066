"""Point one sharding entry of ``database.yaml`` at another database, keeping every other byte.

ruamel.yaml's round-trip *dump* re-indents a file whose sequences are indented differently in
different places (the shipped configs are), so nothing is dumped: the file is composed with
ruamel.yaml to find the exact character span of each value, and only those spans are replaced.
Comments, quoting, key order and indentation elsewhere stay as they were.

What changes in the entry: ``driver`` (only when it differs), ``dsn`` and ``writer_dsn`` (those
present; ``dsn`` is added when neither is), ``reader_dsns`` (replaced; added only when there are
readers) and the separate ``host``/``port``/``name``/``user``/``password`` fields are removed (they
describe the old database, and would otherwise fill in a user or password the new DSN leaves
out). The result is parsed again and must equal the old data with exactly those changes, so an
anchor shared with another entry or a merged (``<<``) value stops the rewrite instead of silently
changing something else.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shardctl.errors import ConfigError

CONNECTION_FIELDS = ("host", "port", "name", "user", "password")
ENTRY_PATH = ("database", "groups", "sharding", "databases")


class ConfigEditError(ConfigError):
    """The file cannot be rewritten mechanically; the message says what to change by hand."""


@dataclass(frozen=True)
class EntryConnection:
    """The new connection of an entry, as text to write (``${VAR}`` references kept)."""

    driver: str
    dsn: str
    readers: tuple[str, ...] = ()


def rewrite_entry(text: str, file: str, entry_id: str, new: EntryConnection) -> str:
    """``text`` with entry ``entry_id``'s connection replaced by ``new`` (see module docstring).

    Raises :class:`ConfigEditError` when the entry cannot be found or changed in place."""
    root = _compose(text, file)
    position, entry = _find_entry(root, entry_id, file)
    if entry.flow_style:
        raise _by_hand(file, entry, entry_id, "it is written in flow style ({...})")
    own = {key.value: (key, value) for key, value in entry.value if isinstance(key, ScalarNode)}
    for name in ("driver", "dsn", "writer_dsn", "reader_dsns", *CONNECTION_FIELDS):
        if name in own and own[name][1].anchor is not None:
            why = f"its '{name}' is a YAML anchor or alias (&/*) that other entries may share"
            raise _by_hand(file, own[name][0], entry_id, why)
    expected: dict[str, Any] = {}
    removed = [name for name in CONNECTION_FIELDS if name in own]
    edits = _Edits(text)
    for name in removed:
        edits.remove_line(*own[name], file=file, entry_id=entry_id)
    additions: list[str] = []  # new "key: value" lines
    indent = " " * entry.value[0][0].start_mark.column

    def put(key: str, value: str) -> None:
        expected[key] = value
        if key in own:
            edits.replace_scalar(own[key][1], value, file=file, entry_id=entry_id)
        else:
            additions.append(f"{indent}{key}: {_scalar(value, None)}")

    if own.get("driver") is None or own["driver"][1].value != new.driver:
        put("driver", new.driver)
    for key in ("dsn", "writer_dsn"):
        if key in own:
            put(key, new.dsn)
    if "dsn" not in own and "writer_dsn" not in own:
        put("dsn", new.dsn)
    if "reader_dsns" in own or new.readers or "<<" in own:
        expected["reader_dsns"] = list(new.readers)
    if "reader_dsns" in own:
        edits.replace_sequence(*own["reader_dsns"], new.readers, indent)
    elif new.readers or "<<" in own:
        additions.append(f"{indent}reader_dsns:" + _block_items(new.readers, indent + "  "))
    if additions and removed:  # where the separate fields were
        edits.insert(_line_start(text, own[removed[0]][0].start_mark.index),
                     "".join(f"{line}\n" for line in additions))  # fmt: skip
    elif additions:  # after the entry's last line
        last = entry.value[-1][1].end_mark.index
        edits.insert(_line_end(text, last), "".join(f"\n{line}" for line in additions))
    result = edits.apply()
    _check_result(text, result, file, position, expected, entry_id)
    return result


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), path, path
        )
    )


def write_atomically(path: Path, text: str, *, expected_current: str) -> None:
    """Replace ``path`` with ``text`` via a temporary file and a rename (same directory, same
    permissions). Refuses when the file no longer holds ``expected_current`` (edited meanwhile)."""
    if path.read_text(encoding="utf-8-sig") != expected_current:
        raise ConfigError(
            f"{path} changed while the move ran; nothing was written. Run the command again "
            "(the copy resumes and is verified again)."
        )
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- locating ------------------------------------------------------------------------------


def _compose(text: str, file: str) -> Node:
    try:
        root = YAML(typ="rt").compose(text)
    except YAMLError as exc:
        raise ConfigEditError(f"Cannot parse the YAML: {exc}", file=file) from None
    if root is None:
        raise ConfigEditError("The file is empty.", file=file)
    return root  # type: ignore[no-any-return]


def _child(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)


def _find_entry(root: Node, entry_id: str, file: str) -> tuple[int, MappingNode]:
    node: Node | None = root
    for key in ENTRY_PATH:
        node = _child(node, key) if node is not None else None
    if not isinstance(node, SequenceNode):
        raise ConfigEditError(f"No '{'.'.join(ENTRY_PATH)}' list found.", file=file)
    for position, item in enumerate(node.value):
        id_node = _child(item, "id")
        if isinstance(id_node, ScalarNode) and str(id_node.value).strip() == entry_id:
            return position, item
    raise ConfigEditError(f"Entry '{entry_id}' not found in the sharding list.", file=file)


def _line_end(text: str, index: int) -> int:
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _by_hand(file: str, node: Node, entry_id: str, why: str) -> ConfigEditError:
    return ConfigEditError(
        f"Entry '{entry_id}' cannot be rewritten automatically: {why}. Give the entry its "
        "own plain values, one key per line (block style), and run the command again.",
        file=file,
        line=node.start_mark.line + 1,
    )


# --- editing -------------------------------------------------------------------------------


def _reads_back(value: str, rendered: str) -> bool:
    """True when ``key: rendered`` loads as ``value`` with both YAML 1.1 (PyYAML, which
    shardctl reads with) and YAML 1.2 (ruamel.yaml)."""
    document = f"key: {rendered}\n"
    try:
        return bool(
            yaml.safe_load(document) == {"key": value}
            and YAML(typ="safe", pure=True).load(document) == {"key": value}
        )
    except (yaml.YAMLError, YAMLError):
        return False


def _scalar(value: str, style: str | None) -> str:
    """``value`` as a one-line YAML scalar: in the original quote style when it had one, plain
    when that reads back unchanged, single-quoted otherwise."""
    if style == '"':
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
    if style != "'" and "\n" not in value and _reads_back(value, value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _block_items(values: tuple[str, ...], indent: str) -> str:
    return " []" if not values else "".join(f"\n{indent}- {_scalar(v, None)}" for v in values)


class _Edits:
    """Non-overlapping replacements of character spans, applied back to front."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: list[tuple[int, int, str]] = []

    def replace_scalar(self, node: Node, value: str, *, file: str, entry_id: str) -> None:
        if not isinstance(node, ScalarNode) or node.start_mark.line != node.end_mark.line:
            raise _by_hand(file, node, entry_id, "a connection value is not a one-line string")
        self.spans.append((node.start_mark.index, node.end_mark.index, _scalar(value, node.style)))

    def replace_sequence(
        self, key: Node, node: Node, readers: tuple[str, ...], indent: str
    ) -> None:
        block = isinstance(node, SequenceNode) and not node.flow_style
        items = node.value if isinstance(node, SequenceNode) else []
        if block and items and readers:
            item_indent = " " * node.start_mark.column
            rendered = (_scalar(v, None) for v in readers)
            self.spans.append(  # the span starts at the first '-'
                (node.start_mark.index, items[-1].end_mark.index,
                 f"\n{item_indent}".join(f"- {v}" for v in rendered))
            )  # fmt: skip
            return
        end = items[-1].end_mark.index if block and items else node.end_mark.index
        self.spans.append((key.end_mark.index, end, ":" + _block_items(readers, indent + "  ")))

    def remove_line(self, key: Node, value: Node, *, file: str, entry_id: str) -> None:
        start = _line_start(self.text, key.start_mark.index)
        if self.text[start : key.start_mark.index].strip():
            raise _by_hand(file, key, entry_id, f"'{key.value}' does not start its own line")
        end = _line_end(self.text, value.end_mark.index)
        self.spans.append((start, min(end + 1, len(self.text)), ""))

    def insert(self, index: int, addition: str) -> None:
        self.spans.append((index, index, addition))

    def apply(self) -> str:
        text = self.text
        previous = len(text) + 1
        for start, end, replacement in sorted(self.spans, key=lambda s: (s[0], s[1]), reverse=True):
            if end > previous:
                raise ValueError("overlapping edits")  # a bug: spans come from distinct nodes
            text = text[:start] + replacement + text[end:]
            previous = start
        return text


def _plain(value: Any) -> Any:
    """A deep copy that shares no containers (an aliased list is copied per use)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _entries(data: Any) -> Iterator[Any]:
    node = data
    for key in ENTRY_PATH:
        node = node.get(key) if isinstance(node, dict) else None
    yield from node if isinstance(node, list) else ()


def _check_result(
    old: str,
    new: str,
    file: str,
    position: int,
    changes: dict[str, Any],
    entry_id: str,
) -> None:
    """The new file must hold the old data with exactly ``changes`` in the entry and no
    separate connection fields left (own or inherited)."""
    try:
        expected = _plain(yaml.safe_load(old))
        actual = yaml.safe_load(new)
    except yaml.YAMLError as exc:  # a bug in the splicing above; never write such a file
        raise ConfigEditError(f"The rewritten file does not parse: {exc}", file=file) from None
    entry = list(_entries(expected))[position]
    for key in CONNECTION_FIELDS:
        entry.pop(key, None)
    entry.update(changes)
    if actual != expected:
        raise ConfigEditError(
            f"Entry '{entry_id}' cannot be rewritten automatically: its connection values are "
            "shared with other entries through YAML anchors or merge keys, or inherited from "
            "them. Give the entry its own dsn / writer_dsn / reader_dsns and run again.",
            file=file,
        )
