"""YAML → plain Python values that remember the line of every node.

PyYAML's composer keeps a ``start_mark`` on each node; the usual constructors throw it away. Here
mappings become :class:`LocatedMap` and sequences :class:`LocatedList`, which carry the 1-based line
of themselves, of each key and of each item, so a value that parses but is wrong can be reported at
its line. Duplicate keys (which PyYAML silently lets the last one win) are reported, not hidden.

Two ways to the same result: a plain document (no anchors, aliases, tags, merge keys or complex
keys; the usual config) is built straight from libyaml's events, skipping PyYAML's node tree
and its per-node Python callbacks; anything else, and every broken file, goes through PyYAML's
composer and constructor, which decide every value, line and error message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from shardctl.problems import ProblemSink


class LocatedMap(dict[str, Any]):
    """A mapping with ``line`` (of the mapping) and ``lines[key]`` (of each key: a block value
    starting on the next line is reported where its key is)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        return self.lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence with ``line`` (of the sequence) and ``lines[i]`` (of each item)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []

    def with_lines(self) -> Iterator[tuple[Any, int]]:
        """``(item, line)`` pairs."""
        return zip(self, self.lines, strict=True)


# libyaml's parser is ~10x faster than the pure-Python one and keeps the same marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_INT_BITS = 256  # far past any real setting; keeps every number printable in messages


class _BadValue(Exception):
    """A scalar that is valid YAML syntax but no usable value (reported at its own line)."""

    def __init__(self, line: int, code: str, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.code = code
        self.message = message


_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_PLAIN_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})")  # YAML 1.1 reads 012 as octal, 1_0 as 10


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _duplicate_key_message(key: str, first_line: int) -> str:
    return (
        f"Key '{key}' appears twice in one mapping (first at line {first_line}); "
        "YAML would silently keep only the last one. Remove or merge one of them."
    )


def _value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A scalar's (or key's) value; :class:`_BadValue` when it cannot be one."""
    if isinstance(node, yaml.ScalarNode):  # fast paths for the common cases (large configs)
        if node.tag == _STR_TAG:
            return node.value
        if node.tag == _INT_TAG and _PLAIN_DECIMAL.fullmatch(node.value):
            return int(node.value)
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:  # e.g. 2024-13-45, `!!int x`
        raise _BadValue(
            _line(node),
            "yaml-syntax",
            f"YAML value cannot be read: {exc}. Quote it if it is meant as text.",
        ) from None
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _BadValue(
            _line(node),
            "bad-number",
            f"A number with {value.bit_length()} bits is far too large for any setting here "
            "(ids, ports, counts and table numbers fit in 64 bits). Use a realistic value.",
        )
    return value


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, sink: ProblemSink) -> None:
        self.loader = loader
        self.sink = sink
        self.memo: dict[int, Any] = {}

    def build(self, node: yaml.Node) -> Any:
        if id(node) in self.memo:  # an alias: share, never expand again (no billion laughs)
            return self.memo[id(node)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            seq = LocatedList(_line(node))
            self.memo[id(node)] = seq
            for item in node.value:
                seq.append(self.build(item))
                seq.lines.append(_line(item))
            return seq
        value = _value(self.loader, node)
        self.memo[id(node)] = value
        return value

    def _mapping(self, node: yaml.MappingNode) -> LocatedMap:
        mapping = LocatedMap(_line(node))
        self.memo[id(node)] = mapping
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first
        first_explicit = len(node.value) - explicit
        written: dict[str, int] = {}  # key → its line; overriding a merged key is no duplicate
        for index, (key_node, value_node) in enumerate(node.value):
            key = _value(self.loader, key_node)
            if not isinstance(key, str):
                key = str(key)
            if index < first_explicit:
                pass
            elif key in written:
                self.sink.error(
                    _line(key_node), "duplicate-key", _duplicate_key_message(key, written[key])
                )
            else:
                written[key] = _line(key_node)
            mapping[key] = self.build(value_node)
            mapping.lines[key] = _line(key_node)
        return mapping


class _NeedsNodes(Exception):
    """The event path cannot decide: an anchor, alias, tag, merge or complex key, a second
    document, deep nesting, an unreadable value or a syntax error."""


_MAX_EVENT_DEPTH = 64  # deeper documents take the node path, which may report RecursionError


def _build_from_events(loader: yaml.SafeLoader, duplicates: list[tuple[int, str]]) -> Any:
    """The document built straight from libyaml's events, with each duplicate key appended to
    ``duplicates`` as ``(line, message)``; :class:`_NeedsNodes` when only the node path can
    build it (its values, lines and messages are the reference)."""
    get_event: Callable[[], Any] = loader.get_event  # events are duck-typed (C or Python ones)
    resolve: Callable[[type[yaml.Node], str, tuple[bool, bool]], str] = loader.resolve
    plain_values: dict[str, Any] = {}  # plain scalar → value: keys and settings repeat a lot

    def build(event: Any, depth: int) -> Any:
        """The value of the node that ``event`` starts (its events are consumed)."""
        kind = type(event)
        if kind is yaml.AliasEvent or event.anchor is not None or event.tag is not None:
            raise _NeedsNodes
        if kind is yaml.ScalarEvent:
            if not event.implicit[0]:  # quoted or block: a string
                return event.value
            if event.value in plain_values:
                return plain_values[event.value]
            if _PLAIN_DECIMAL.fullmatch(event.value):  # YAML 1.1 int (no float or date pattern)
                value = int(event.value)
            else:
                tag = resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(
                    tag, event.value, event.start_mark, event.end_mark, event.style
                )
                try:
                    value = _value(loader, node)
                except (_BadValue, yaml.YAMLError):
                    raise _NeedsNodes from None
            plain_values[event.value] = value
            return value
        if depth == _MAX_EVENT_DEPTH:
            raise _NeedsNodes
        line = event.start_mark.line + 1
        if kind is yaml.SequenceStartEvent:
            items = LocatedList(line)
            while type(event := get_event()) is not yaml.SequenceEndEvent:
                items.append(build(event, depth + 1))
                items.lines.append(event.start_mark.line + 1)
            return items
        mapping = LocatedMap(line)
        first_lines: dict[str, int] = {}  # a duplicated key → the line it first appeared on
        while type(event := get_event()) is not yaml.MappingEndEvent:
            key_line = event.start_mark.line + 1
            key = build(event, depth + 1)
            if type(key) is not str:
                if isinstance(key, LocatedMap | LocatedList):
                    raise _NeedsNodes  # a complex key: PyYAML's constructor decides its text
                key = str(key)
            if key in mapping.lines:
                first = first_lines.setdefault(key, mapping.lines[key])
                duplicates.append((key_line, _duplicate_key_message(key, first)))
            mapping[key] = build(get_event(), depth + 1)
            mapping.lines[key] = key_line
        return mapping

    try:
        get_event()  # the stream's start
        if isinstance(get_event(), yaml.StreamEndEvent):  # else the document's start
            return None
        root = build(get_event(), 0)
        get_event()  # the document's end
        if not isinstance(get_event(), yaml.StreamEndEvent):
            raise _NeedsNodes  # a second document
        return root
    except (yaml.YAMLError, RecursionError):
        raise _NeedsNodes from None


def load_located(text: str, sink: ProblemSink) -> Any:
    """Parse one YAML document. Syntax errors and unreadable values (``2024-13-45``, a number of
    thousands of digits) become one problem and ``None``; the reported line always lies inside
    the file (an error at the end of the stream is put on the last line)."""
    duplicates: list[tuple[int, str]] = []
    loader = _Loader(text)
    try:
        root = _build_from_events(loader, duplicates)
    except _NeedsNodes:
        return _load_from_nodes(text, sink)
    finally:
        loader.dispose()
    for line, message in duplicates:
        sink.error(line, "duplicate-key", message)
    return root


def _load_from_nodes(text: str, sink: ProblemSink) -> Any:
    """:func:`load_located` through PyYAML's composer and constructor (any document)."""
    loader = _Loader(text)
    lines = text.splitlines()

    def report(line: int, code: str, message: str) -> None:
        sink.error(min(max(line, 1), max(len(lines), 1)), code, message)

    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Builder(loader, sink).build(node)
    except _BadValue as exc:
        report(exc.line, exc.code, exc.message)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and (mark is None or mark.index >= len(text.rstrip())):
            mark = exc.context_mark  # at the end of the stream: point where the construct began
        line = int(mark.line) + 1 if mark is not None else 1
        what = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        if any("\t" in lines[i] for i in range(max(line - 2, 0), min(line, len(lines)))):
            hint = "YAML does not allow tabs for indentation; indent with spaces."
        else:
            hint = "Check the indentation, quoting and brackets on that line and the one before."
        report(line, "yaml-syntax", f"YAML syntax error: {what}{context}. {hint}")
    except yaml.reader.ReaderError as exc:  # a control character (offset: bytes or chars)
        code = exc.character if isinstance(exc.character, int) else -1
        at = text.find(chr(code)) if code >= 0 else -1
        report(
            text.count("\n", 0, at) + 1 if at >= 0 else 1,
            "yaml-syntax",
            f"The file contains the control character U+{max(code, 0):04X}, which YAML does not "
            "allow. Delete it (or save the file as plain UTF-8 text).",
        )
    except yaml.YAMLError as exc:
        report(1, "yaml-syntax", f"YAML syntax error: {exc}. Fix the file's content.")
    except RecursionError:
        report(1, "yaml-syntax", "The YAML nests too deeply to read. Flatten the structure.")
    finally:
        loader.dispose()
    return None
