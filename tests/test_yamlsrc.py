"""yamlsrc builds plain documents from libyaml's events and anything else through PyYAML's nodes:
both ways must give the same values, types, lines and problems."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shardctl.problems import ProblemSink
from shardctl.yamlsrc import (
    LocatedList,
    LocatedMap,
    _build_from_events,
    _load_from_nodes,
    _Loader,
    _NeedsNodes,
    load_located,
)

SCALARS = [
    "plain", "'quoted: 1'", '"esc\\x41 \\t"', "yes", "No", "on", "OFF", "true", "False", "y",
    "0", "-0", "+12", "012", "0o17", "0x1F", "0b101", "1_000", "1:30", "190:20:30",
    "123456789012345678", "1234567890123456789012", "-9223372036854775808", "3.", ".5",
    "1.5e3", "1e3", "6.8523015e+5", "685_230.15", ".inf", "-.Inf", ".NaN", "~", "null", "Null",
    "", "2002-12-14", "2001-12-14t21:59:43.10-05:00", "${VAR}", "postgres://u:${PW}@h:5432/d",
    "300s", "a b  c", "é ü", "x - y", "[]", "{}", "|\n  block\n  text", ">-\n  folded\n  text",
]  # fmt: skip
PLAIN_DOCUMENTS = [
    "",
    "# only a comment\n",
    "---\n",
    "scalar",
    "--- 12\n...\n",
    *(f"key: {scalar}\n" for scalar in SCALARS),
    *(f"- {scalar}\n" for scalar in SCALARS),
    "a: 1\na: 2\n",
    "a:\n  b: 1\n  b: 2\n  b: 3\nc: 3\nc: [4]\n",
    "1: one\n1: again\ntrue: t\n~: n\n1.5: f\n2024-01-01: d\n0x1F: hex\n",
    "m:\n  - [1, 2, {x: y}]\n  - {a: [b, c], d: {}}\n  -\n  - - nested\n",
    "database:\n  groups:\n    sharding:\n      databases:\n        - id: 1\n"
    "          table_range: [0, 3]\n          dsn: postgres://app:${PW}@db:5432/app\n",
]
NODE_DOCUMENTS = [  # only PyYAML's composer and constructor decide these
    "x: &a {p: 1}\ny: *a\n",
    "x: &a 1\ny: *a\n",
    "x: &a [1, *a]\n",
    "base: &b {p: 1, q: 2}\nchild:\n  <<: *b\n  q: 3\n  q: 4\n",
    "<<: [{a: 1}, {b: 2}]\na: 3\n",
    "x: !!str 12\n",
    "x: !!binary aGVsbG8=\n",
    "x: ! 12\n",
    "? [1, 2]\n: x\n",
    "? {a: 1}\n: y\n",
    "a: 1\n---\nb: 2\n",
    "x: *undefined\n",
    "x: 2024-13-45\n",
    "x: " + "9" * 100 + "\n",
    "x: <<\n",
    "=: 1\n",
    "a: [1, 2\n",
    "a: 'unclosed\n",
    "a:\n\t- tab\n",
    "a: 1\nb: \x01\n",
    "a: " + "[" * 80 + "]" * 80 + "\n",
]


def dump(value: Any, inside: frozenset[int] = frozenset()) -> Any:
    """Everything a caller can observe: types, values and every line (a collection holding
    itself, as ``&a [1, *a]`` builds, is shown as a cycle)."""
    if id(value) in inside:
        return "cycle"
    inside |= {id(value)}
    if isinstance(value, LocatedMap):
        return ("map", value.line, [(k, value.lines[k], dump(v, inside)) for k, v in value.items()])
    if isinstance(value, LocatedList):
        return ("list", value.line, value.lines, [dump(v, inside) for v in value])
    return (type(value).__name__, repr(value))


def through_both_paths(text: str) -> tuple[Any, Any]:
    """(load_located's result and problems, the node path's result and problems)."""
    fast, nodes = ProblemSink("f"), ProblemSink("f")
    return (
        (dump(load_located(text, fast)), fast.problems),
        (dump(_load_from_nodes(text, nodes)), nodes.problems),
    )


def builds_from_events(text: str) -> bool:
    loader = _Loader(text)
    try:
        _build_from_events(loader, [])
    except _NeedsNodes:
        return False
    finally:
        loader.dispose()
    return True


@pytest.mark.parametrize("text", PLAIN_DOCUMENTS)
def test_plain_documents_are_built_from_events_exactly_as_through_nodes(text: str) -> None:
    assert builds_from_events(text)
    fast, nodes = through_both_paths(text)
    assert fast == nodes


@pytest.mark.parametrize("text", NODE_DOCUMENTS)
def test_anchors_tags_merges_and_broken_files_go_through_nodes(text: str) -> None:
    assert not builds_from_events(text)
    fast, nodes = through_both_paths(text)
    assert fast == nodes


def test_a_key_repeated_three_times_names_its_first_line_each_time() -> None:
    sink = ProblemSink("f")
    root = load_located("a: 1\nb: 2\na: 3\na: 4\n", sink)
    assert root == {"a": 4, "b": 2} and root.lines == {"a": 4, "b": 2}
    assert [(p.line, p.code) for p in sink.problems] == [(3, "duplicate-key"), (4, "duplicate-key")]
    assert all("(first at line 1)" in p.message for p in sink.problems)


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_plain_decimals_are_ints_for_pyyaml_too(number: int) -> None:
    """The event path reads plain decimals without PyYAML's resolver: check that agrees."""
    text = str(number)
    assert yaml.load(text, Loader=_Loader) == number
    assert dump(load_located(text, ProblemSink("f"))) == ("int", text)


documents = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
        st.sampled_from(SCALARS),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), children,
                        max_size=4),
    ),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(document=documents, flow=st.booleans())
def test_random_documents_agree_on_both_paths(document: Any, flow: bool) -> None:
    fast, nodes = through_both_paths(yaml.safe_dump(document, default_flow_style=flow))
    assert fast == nodes


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab1:- \n[]{},'\"&*!<=#.~\t")), max_size=40))
def test_random_text_agrees_on_both_paths(text: str) -> None:
    fast, nodes = through_both_paths(text)
    assert fast == nodes
