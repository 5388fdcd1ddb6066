"""YAML → plain Python values that remember the line of every node.

PyYAML's composer keeps a ``start_mark`` on each node; the usual constructors throw it away. Here
mappings become :class:`LocatedMap` and sequences :class:`LocatedList`, which carry the 1-based line
of themselves, of each key and of each item, so a value that parses but is wrong can be reported at
its line. Duplicate keys (which PyYAML silently lets the last one win) are reported, not hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
        value = self.value(node)
        self.memo[id(node)] = value
        return value

    def value(self, node: yaml.Node) -> Any:
        """A scalar's (or key's) value; :class:`_BadValue` when it cannot be one."""
        if isinstance(node, yaml.ScalarNode):  # fast paths for the common cases (large configs)
            if node.tag == _STR_TAG:
                return node.value
            if node.tag == _INT_TAG and _PLAIN_DECIMAL.fullmatch(node.value):
                return int(node.value)
        try:
            value = self.loader.construct_object(node, deep=True)
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

    def _mapping(self, node: yaml.MappingNode) -> LocatedMap:
        mapping = LocatedMap(_line(node))
        self.memo[id(node)] = mapping
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first
        first_explicit = len(node.value) - explicit
        written: dict[str, int] = {}  # key → its line; overriding a merged key is no duplicate
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.value(key_node)
            if not isinstance(key, str):
                key = str(key)
            if index < first_explicit:
                pass
            elif key in written:
                self.sink.error(
                    _line(key_node),
                    "duplicate-key",
                    f"Key '{key}' appears twice in one mapping (first at line {written[key]}); "
                    "YAML would silently keep only the last one. "
                    "Remove or merge one of them.",
                )
            else:
                written[key] = _line(key_node)
            mapping[key] = self.build(value_node)
            mapping.lines[key] = _line(key_node)
        return mapping


def load_located(text: str, sink: ProblemSink) -> Any:
    """Parse one YAML document. Syntax errors and unreadable values (``2024-13-45``, a number of
    thousands of digits) become one problem and ``None``; the reported line always lies inside
    the file (an error at the end of the stream is put on the last line)."""
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
