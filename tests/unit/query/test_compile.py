"""The compiled matcher: the interpreter's semantics table, then held to the interpreter on random queries."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from components.query.ast import And, Compare, Contains, Exists, Expr, In, Not, Or, Query, StartsWith
from components.query.compile import MAX_COMPILED_DEPTH, compile_query
from components.query.interpret import evaluate_where
from tests.unit.query.strategies import data_meeting, event_data, exprs
from tests.unit.query.test_interpret import ORDER, SEMANTICS


def matcher(expr: Expr | None) -> Any:
    return compile_query(Query(("demo.order",), expr)).matches


@pytest.mark.parametrize(("expr", "expected"), SEMANTICS, ids=repr)
def test_semantics(expr: Expr, expected: bool) -> None:
    assert matcher(expr)(ORDER) is expected


@settings(max_examples=400)
@given(exprs, event_data)
@example(Compare("=", ("a",), 1), {"a": True})
@example(Compare("!=", ("a",), 1), {"a": True})
@example(In(("a",), (1, None)), {"a": True})
@example(In(("a",), (0.0,)), {"a": -0.0})
@example(In(("a",), (float(2**53),)), {"a": 2**53 + 1})
@example(In(("a",), ("x",)), {"a": ["x"]})
@example(Contains(("a",), 1), {"a": [True, 1.0]})
@example(Contains(("a",), 0), {"a": [False]})
@example(Contains(("a",), "x"), {"a": {"x": 1}})
@example(Compare("<", ("a",), 1.5), {"a": math.nan})
@example(Compare("!=", ("a",), 1.5), {"a": math.nan})
@example(Compare(">", ("a", "b"), "x"), {"a": {"b": "y"}})
def test_compiled_agrees_with_the_interpreter(expr: Expr, data: dict[str, Any]) -> None:
    assert matcher(expr)(data) is evaluate_where(expr, data)


@settings(max_examples=400)
@given(st.data())
def test_compiled_agrees_with_the_interpreter_on_data_made_to_match(draw: st.DataObject) -> None:
    # Random data seldom holds the values a random condition asks for; this data does, about half the time.
    expr = draw.draw(exprs)
    data = draw.draw(data_meeting([expr]))
    assert matcher(expr)(data) is evaluate_where(expr, data)


def test_no_where_matches_any_data() -> None:
    assert matcher(None)({}) is True
    assert matcher(None)(ORDER) is True


def test_data_that_is_not_an_object_has_no_fields() -> None:
    for data in ([1], "x", None, 3):
        assert matcher(Exists(("a",)))(data) is False
        assert matcher(Not(Exists(("a",))))(data) is True


def test_queries_differing_in_literals_and_fields_share_their_code() -> None:
    one = matcher(And((Compare("=", ("room",), "r1"), Compare(">", ("n",), 1))))
    two = matcher(And((Compare("=", ("customer", "name"), "r2"), Compare(">", ("amount",), 2.5))))
    assert one.__code__ is not two.__code__  # paths of different lengths
    three = matcher(And((Compare("=", ("author",), "Bo"), Compare(">", ("total",), 9.5))))
    assert one.__code__ is three.__code__
    assert one({"room": "r1", "n": 2}) and not three({"room": "r1", "n": 2})
    assert three({"author": "Bo", "total": 10})


def test_a_literal_of_another_kind_is_another_code() -> None:
    assert matcher(Compare("=", ("a",), 1)).__code__ is not matcher(Compare("=", ("a",), "1")).__code__


def test_nan_literal_equals_nothing() -> None:
    nan = math.nan
    assert not matcher(Compare("=", ("a",), nan))({"a": nan})
    assert not matcher(In(("a",), (nan,)))({"a": nan})
    assert matcher(Compare("!=", ("a",), nan))({"a": nan})


def test_a_very_deep_condition_is_matched_by_the_interpreter() -> None:
    expr: Expr = Compare("=", ("a",), 1)
    for _ in range(MAX_COMPILED_DEPTH + 60):
        expr = Not(Not(expr))
    match = matcher(expr)
    assert match({"a": 1}) and not match({"a": 2})


def test_the_compiled_query_keeps_the_query_and_its_selectors() -> None:
    query = Query(("demo.order", "demo.*"), StartsWith(("country",), "A"))
    compiled = compile_query(query)
    assert compiled.query is query
    assert compiled.selectors == ("demo.order", "demo.*")
    assert compiled.matches({"country": "AR"})


def test_or_of_many_operands() -> None:
    expr = Or(tuple(Compare("=", ("n",), i) for i in range(500)))
    assert matcher(expr)({"n": 499}) and not matcher(expr)({"n": 500})
