"""YAML → plain Python values that remember the line of every node.

PyYAML's composer keeps a ``start_mark`` on each node; the usual constructors throw it away. Here
mappings become :class:`LocatedMap` and sequences :class:`LocatedList`, which carry the 1-based line
of themselves, of each key and of each item, so a value that parses but is wrong can be reported at
its line. Duplicate keys (which PyYAML silently lets the last one win) are reported, not hidden.
"""

from __future__ import annotations

from typing import Any

import yaml

from shardctl.problems import ProblemSink


class LocatedMap(dict[str, Any]):
    """A mapping with ``line`` (of the mapping) and ``lines[key]`` (of each value)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """Line of ``key``'s value, or of the mapping itself when the key is absent."""
        return self.lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence with ``line`` (of the sequence) and ``lines[i]`` (of each item)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


# libyaml's parser is ~10x faster than the pure-Python one and keeps the same marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_MERGE_TAG = "tag:yaml.org,2002:merge"


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
        value = self.loader.construct_object(node, deep=True)
        self.memo[id(node)] = value
        return value

    def _mapping(self, node: yaml.MappingNode) -> LocatedMap:
        mapping = LocatedMap(_line(node))
        self.memo[id(node)] = mapping
        explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first
        first_explicit = len(node.value) - explicit
        written: set[str] = set()  # keys written here: overriding a merged key is the point
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if index < first_explicit:
                pass
            elif key in written:
                self.sink.error(
                    _line(key_node),
                    "duplicate-key",
                    f"Key '{key}' appears twice in one mapping (first at line "
                    f"{mapping.lines[key]}); YAML would silently keep only the last one. "
                    "Remove or merge one of them.",
                )
            else:
                written.add(key)
            mapping[key] = self.build(value_node)
            mapping.lines[key] = _line(value_node)
        return mapping


def load_located(text: str, sink: ProblemSink) -> Any:
    """Parse one YAML document; syntax errors become a ``yaml-syntax`` problem and ``None``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Builder(loader, sink).build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        what = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        lines = text.splitlines()
        hint = ""
        if any("\t" in lines[i] for i in range(max(line - 2, 0), min(line, len(lines)))):
            hint = " YAML does not allow tabs for indentation; indent with spaces."
        sink.error(line, "yaml-syntax", f"YAML syntax error: {what}{context}.{hint}")
        return None
    except yaml.YAMLError as exc:  # e.g. a control character in the stream
        sink.error(1, "yaml-syntax", f"YAML syntax error: {exc}. Fix the file's encoding/content.")
        return None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a timestamp out of range
        sink.error(1, "yaml-syntax", f"YAML value cannot be read: {exc}.")
        return None
    finally:
        loader.dispose()
