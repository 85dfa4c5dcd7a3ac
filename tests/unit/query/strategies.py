"""Hypothesis strategies for queries and event data, shared by the query property tests.

The vocabularies are small on purpose: random queries and random data must
meet on the same fields and values often enough for matches to happen, and
the values are the ones where the rules bite (1 and 1.0 and true, null,
-0.0, big ints beside floats, empty and non-ASCII strings).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from components.query.ast import (
    And,
    Compare,
    Contains,
    Exists,
    Expr,
    In,
    Literal,
    Not,
    Or,
    Path,
    Query,
    StartsWith,
)

FIELDS = ("a", "b", "é")
PATHS: tuple[Path, ...] = (("a",), ("b",), ("é",), ("a", "b"), ("a", "a"), ("b", "a", "é"), ("a", "b", "a"))

STRINGS = ("", "x", "xy", "X", "é", "🙂", "x\u0000", "1")
NUMBERS: tuple[int | float, ...] = (0, 1, -1, 1.0, 0.0, -0.0, 2.5, 2**53, 2**53 + 1, float(2**53), 10**30, 1e30)
POOL: tuple[Literal, ...] = (None, True, False, *STRINGS, *NUMBERS)

literals: st.SearchStrategy[Literal] = st.one_of(
    st.sampled_from(POOL),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=4),
)

strings: st.SearchStrategy[str] = st.one_of(st.sampled_from(STRINGS), st.text(max_size=3))
paths: st.SearchStrategy[Path] = st.sampled_from(PATHS)
ops = st.sampled_from(("=", "!=", "<", "<=", ">", ">="))

leaves: st.SearchStrategy[Expr] = st.one_of(
    st.builds(Compare, ops, paths, literals),
    st.builds(Compare, st.just("="), paths, literals),
    st.builds(In, paths, st.lists(literals, max_size=4).map(tuple)),
    st.builds(Contains, paths, literals),
    st.builds(StartsWith, paths, strings),
    st.builds(Exists, paths),
)


def _branches(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Not, children),
        st.builds(And, st.lists(children, max_size=3).map(tuple)),
        st.builds(Or, st.lists(children, max_size=3).map(tuple)),
    )


exprs: st.SearchStrategy[Expr] = st.recursive(leaves, _branches, max_leaves=8)

# A value in event data: JSON, leaning on the pool so that it meets the literals.
json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(POOL), st.integers(), st.floats(), st.text(max_size=4)
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=3),
    )


json_values: st.SearchStrategy[Any] = st.recursive(json_scalars, _containers, max_leaves=10)
event_data: st.SearchStrategy[dict[str, Any]] = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3)

# Selectors and names over a few segments; "*" and "**" only in patterns.
SEGMENTS = ("demo", "order", "x")
event_names: st.SearchStrategy[str] = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(".".join)
patterns: st.SearchStrategy[str] = st.lists(
    st.sampled_from((*SEGMENTS, "*", "**")), min_size=1, max_size=4
).map(".".join)


@st.composite
def anchored_exprs(draw: st.DrawFn) -> Expr:
    """Conditions the index can anchor (an equality, `in`, range, prefix or `contains` beside the rest), and others."""
    kind = draw(st.integers(0, 6))
    rest = draw(exprs)
    if kind == 0:
        return And((Compare("=", draw(paths), draw(literals)), rest))
    if kind == 1:
        return And((rest, In(draw(paths), tuple(draw(st.lists(literals, max_size=3))))))
    if kind == 2:
        return Or((Compare("=", draw(paths), draw(literals)), And((In(draw(paths), (draw(literals),)), rest))))
    if kind == 3:
        return And((Compare(draw(st.sampled_from(("<", "<=", ">", ">="))), draw(paths), draw(literals)), rest))
    if kind == 4:
        return Or((StartsWith(draw(paths), draw(strings)), And((rest, Compare(">", draw(paths), draw(literals))))))
    if kind == 5:
        return And((Contains(draw(paths), draw(st.one_of(literals, strings))), rest))
    return rest


queries: st.SearchStrategy[Query] = st.builds(
    Query,
    st.lists(patterns, min_size=1, max_size=2).map(tuple),
    st.one_of(st.none(), anchored_exprs()),
)


def _literals_in(expr: Expr) -> list[tuple[Path, Any]]:
    """(path, value) pairs that would make parts of the condition true."""
    if isinstance(expr, Compare):
        return [(expr.path, expr.value)]
    if isinstance(expr, In):
        return [(expr.path, value) for value in expr.values]
    if isinstance(expr, Contains):
        return [(expr.path, [expr.value]), (expr.path, expr.value)]
    if isinstance(expr, StartsWith):
        return [(expr.path, expr.value + "z")]
    if isinstance(expr, Exists):
        return [(expr.path, 0)]
    if isinstance(expr, Not):
        return _literals_in(expr.operand)
    if isinstance(expr, (And, Or)):
        return [pair for operand in expr.operands for pair in _literals_in(operand)]
    return []


def _plant(data: dict[str, Any], path: Path, value: Any) -> None:
    target = data
    for segment in path[:-1]:
        if not isinstance(target.get(segment), dict):
            target[segment] = {}
        target = target[segment]
    target[path[-1]] = value


@st.composite
def data_meeting(draw: st.DrawFn, conditions: list[Expr]) -> dict[str, Any]:
    """Event data holding some of the values the conditions test for, so that they are true often."""
    data = draw(event_data)
    pairs = [pair for expr in conditions for pair in _literals_in(expr)]
    if pairs:
        for path, value in draw(st.lists(st.sampled_from(pairs), max_size=4)):
            _plant(data, path, value)
    return data
