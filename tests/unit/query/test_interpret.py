"""The meaning of a query, as a table: the reference interpreter against hand-written expectations.

The same table runs through the compiled matcher in test_query_compile.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from components.query.ast import And, Compare, Contains, Exists, Expr, In, Not, Or, Query, StartsWith
from components.query.interpret import evaluate, evaluate_where, selector_matches
from tests.unit.query.strategies import event_data, event_names, exprs, patterns

ORDER: dict[str, Any] = {
    "order_id": 7,
    "amount": 150.5,
    "country": "AR",
    "tags": ["urgent", "gift", 1, None, True],
    "customer": {"id": 42, "name": "Ada", "vip": True, "note": None},
    "coupon": None,
    "title": "Ærø 🙂",
    "big": 2**53 + 1,
    "list_of_objects": [{"id": 1}],
}

# (expression, expected) against ORDER.
SEMANTICS: list[tuple[Expr, bool]] = [
    # equality, across int and float, never across kinds
    (Compare("=", ("order_id",), 7), True),
    (Compare("=", ("order_id",), 7.0), True),
    (Compare("=", ("amount",), 150.5), True),
    (Compare("=", ("order_id",), "7"), False),
    (Compare("=", ("country",), "AR"), True),
    (Compare("=", ("country",), "ar"), False),
    (Compare("=", ("customer", "vip"), True), True),
    (Compare("=", ("customer", "vip"), 1), False),
    (Compare("=", ("customer", "id"), True), False),
    (Compare("=", ("big",), float(2**53)), False),  # exact: 2**53 + 1 is not the float 2**53
    (Compare("=", ("big",), 2**53 + 1), True),
    (Compare("=", ("tags",), "urgent"), False),  # a list is not one of its elements
    (Compare("=", ("customer",), None), False),
    # missing fields: every comparison false, != included
    (Compare("=", ("nope",), 1), False),
    (Compare("!=", ("nope",), 1), False),
    (Compare("!=", ("nope",), None), False),
    (Compare("=", ("nope",), None), False),
    (Compare("<", ("nope",), 1), False),
    (Compare("=", ("country", "code"), "AR"), False),  # a string on the way
    (Compare("=", ("tags", "0"), "urgent"), False),  # no indexing into lists
    (Compare("=", ("customer", "id", "x"), 42), False),
    # != needs the same kind
    (Compare("!=", ("order_id",), 8), True),
    (Compare("!=", ("order_id",), 7.0), False),
    (Compare("!=", ("order_id",), "8"), False),
    (Compare("!=", ("customer", "vip"), False), True),
    (Compare("!=", ("customer", "vip"), 0), False),
    (Compare("!=", ("country",), "UY"), True),
    (Compare("!=", ("tags",), "x"), False),
    # null
    (Compare("=", ("coupon",), None), True),
    (Compare("!=", ("coupon",), None), False),
    (Compare("!=", ("country",), None), True),
    (Compare("!=", ("tags",), None), True),
    (Compare("!=", ("coupon",), "x"), False),
    (Compare("=", ("customer", "note"), None), True),
    # ordering: numbers and strings only
    (Compare(">", ("amount",), 100), True),
    (Compare(">", ("amount",), 150.5), False),
    (Compare(">=", ("amount",), 150.5), True),
    (Compare("<", ("order_id",), 7.5), True),
    (Compare("<=", ("order_id",), 6), False),
    (Compare("<", ("customer", "vip"), 2), False),  # true < 2 is false: bool is no number
    (Compare(">", ("customer", "vip"), False), False),  # nor ordered among bools
    (Compare("<", ("coupon",), 1), False),
    (Compare("<", ("country",), "B"), True),
    (Compare("<", ("country",), "AR "), True),
    (Compare("<", ("country",), 5), False),
    (Compare(">", ("title",), "Z"), True),  # by code point: Æ (U+00C6) after Z
    (Compare(">", ("coupon",), None), False),
    (Compare(">", ("big",), float(2**53)), True),
    # in
    (In(("country",), ("UY", "AR")), True),
    (In(("country",), ("UY", "BR")), False),
    (In(("country",), ()), False),
    (In(("order_id",), ("7", 7.0)), True),
    (In(("customer", "vip"), (1, "true")), False),
    (In(("customer", "vip"), (1, True)), True),
    (In(("coupon",), (None,)), True),
    (In(("nope",), (None,)), False),
    (In(("tags",), ("urgent",)), False),
    # contains
    (Contains(("tags",), "urgent"), True),
    (Contains(("tags",), "urg"), False),  # a list element must be equal, not a substring
    (Contains(("tags",), 1.0), True),
    (Contains(("tags",), True), True),
    (Contains(("tags",), None), True),
    (Contains(("tags",), False), False),
    (Contains(("list_of_objects",), 1), False),
    (Contains(("country",), "R"), True),
    (Contains(("country",), ""), True),
    (Contains(("title",), "ø 🙂"), True),
    (Contains(("country",), 1), False),
    (Contains(("order_id",), 7), False),
    (Contains(("customer",), "id"), False),  # an object is neither list nor string
    (Contains(("nope",), "x"), False),
    # startswith
    (StartsWith(("country",), "A"), True),
    (StartsWith(("country",), ""), True),
    (StartsWith(("country",), "R"), False),
    (StartsWith(("tags",), "urgent"), False),
    (StartsWith(("order_id",), "7"), False),
    (StartsWith(("nope",), ""), False),
    # exists
    (Exists(("country",)), True),
    (Exists(("coupon",)), False),
    (Exists(("customer", "note")), False),
    (Exists(("customer", "id")), True),
    (Exists(("nope",)), False),
    # not, and, or
    (Not(Compare("=", ("nope",), 1)), True),
    (Not(Compare("!=", ("nope",), 1)), True),
    (Not(Compare("=", ("country",), "AR")), False),
    (And((Compare("=", ("country",), "AR"), Compare(">", ("amount",), 100))), True),
    (And((Compare("=", ("country",), "AR"), Compare(">", ("amount",), 200))), False),
    (Or((Compare("=", ("country",), "UY"), Compare(">", ("amount",), 100))), True),
    (Or((Compare("=", ("country",), "UY"), Compare(">", ("amount",), 200))), False),
    (And(()), True),
    (Or(()), False),
]


@pytest.mark.parametrize(("expr", "expected"), SEMANTICS, ids=repr)
def test_semantics(expr: Expr, expected: bool) -> None:
    assert evaluate_where(expr, ORDER) is expected


SELECTORS: list[tuple[str, str, bool]] = [
    ("demo.order", "demo.order", True),
    ("demo.order", "demo.orders", False),
    ("demo.order", "demo", False),
    ("demo.order", "demo.order.x", False),
    ("demo.*", "demo.order", True),
    ("demo.*", "demo", False),
    ("demo.*", "demo.order.x", False),
    ("*.order", "demo.order", True),
    ("*", "demo", True),
    ("*", "demo.order", False),
    ("*.*", "demo.order", True),
    ("demo.**", "demo.x", True),
    ("demo.**", "demo.x.y", True),
    ("demo.**", "demo", True),  # zero segments included: the subtree and its root
    ("demo.**", "other.x", False),
    ("**", "demo", True),
    ("**", "demo.order.x", True),
    ("**.order", "order", True),
    ("**.order", "demo.order", True),
    ("**.order", "a.b.order", True),
    ("**.order", "demo.order.x", False),
    ("demo.**.x", "demo.x", True),
    ("demo.**.x", "demo.a.b.x", True),
    ("demo.**.x", "demo.a.b", False),
    ("demo.**.*", "demo.a", True),
    ("demo.**.*", "demo", False),
    ("demo.*.**", "demo.a", True),
    ("demo.*.**", "demo", False),
    ("demo.**.**", "demo", True),
    ("a.**.b.**.c", "a.b.c", True),
    ("a.**.b.**.c", "a.x.b.y.z.c", True),
    ("a.**.b.**.c", "a.x.c.b", False),
    ("demo.*.**", "demo.a.b", True),
    ("de*", "demo", False),  # wildcards are whole segments only
]


@pytest.mark.parametrize(("pattern", "name", "expected"), SELECTORS)
def test_selectors(pattern: str, name: str, expected: bool) -> None:
    assert selector_matches(pattern, name) is expected


def test_a_query_needs_a_selected_class_and_its_condition() -> None:
    query = Query(("demo.message", "demo.order"), Compare("=", ("country",), "AR"))
    assert evaluate(query, "demo.order", ORDER)
    assert not evaluate(query, "demo.alert", ORDER)
    assert not evaluate(query, "demo.order", {"country": "UY"})


def test_without_where_every_event_of_the_classes_matches() -> None:
    query = Query(("demo.*",))
    assert evaluate(query, "demo.order", {})
    assert evaluate(query, "demo.message", ORDER)
    assert not evaluate(query, "other.order", ORDER)


def test_no_selectors_match_nothing() -> None:
    assert not evaluate(Query(()), "demo.order", ORDER)


@given(exprs, event_data)
def test_never_raises_and_answers_a_bool(expr: Expr, data: dict[str, Any]) -> None:
    assert evaluate_where(expr, data) in (True, False)


@given(patterns, event_names)
def test_a_pattern_without_wildcards_matches_only_itself(pattern: str, name: str) -> None:
    if "*" not in pattern:
        assert selector_matches(pattern, name) is (pattern == name)


@given(patterns, event_names)
def test_agrees_with_the_selector_module_of_the_canonical_form(pattern: str, name: str) -> None:
    # canonical.py drops a selector another one covers, reading "**" through
    # components.query.selectors: both must mean the same, or a canonical
    # query would match other events than the one written.
    selectors = pytest.importorskip("components.query.selectors", reason="the canonical form's selector module")
    assert selectors.matches(pattern, name) is selector_matches(pattern, name)
