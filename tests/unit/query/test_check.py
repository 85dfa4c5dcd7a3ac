"""check(): a parsed query against the event classes' schemas and the caller's visibility."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from components.events import Event, EventClass, Registry, event_class_of
from components.query import (
    CheckedQuery,
    Compare,
    Query,
    QueryError,
    QueryNotAuthorized,
    canonical,
    check,
    parse,
    to_text,
    topic_key,
)

REPO = Path(__file__).resolve().parents[3]
DEMO = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)


class Part(BaseModel):
    id: int
    name: str


class Reading(Event, name="sensors.reading"):
    """A reading with one field of each kind a schema can say."""

    value: float
    status: str
    ok: bool
    level: int
    tags: list[int]
    history: list[list[str]]
    parts: list[Part]
    when: datetime
    price: Decimal
    mode: Literal["a", "b"]
    meta: dict[str, int]
    anything: Any
    maybe: int | None = None
    either: int | str = 0
    part: Part | None = None


class Other(Event, name="sensors.other"):
    level: str
    value: float


class Secret(Event, name="sensors.secret"):
    code: str

    class Rules:
        visibility = "role:admin"


class Loose(Event, name="loose.thing"):
    known: int

    class Rules:
        extra = "allow"


CLASSES = Registry([event_class_of(c) for c in (Reading, Other, Secret, Loose)])


def anonymous(c: EventClass) -> bool:
    return c.visible_to("anonymous")


def refused(text: str, classes: Registry = CLASSES, **kwargs: Any) -> QueryError:
    with pytest.raises(QueryError) as caught:
        check(parse(text), classes, **kwargs)
    return caught.value


# --- the result ------------------------------------------------------------------------


def test_the_checked_query() -> None:
    checked = check(parse("demo.order WHERE country IN ['UY', 'AR'] AND amount > 100.0"), DEMO)
    text = 'demo.order where amount > 100 and country in ["AR", "UY"]'
    assert checked == CheckedQuery(canonical(parse(text)), text, ("demo.order",), topic_key(text))


def test_classes_are_the_concrete_names_matched_now_sorted() -> None:
    assert check(parse("sensors.*, loose.thing"), CLASSES).classes == ("loose.thing", "sensors.other",
                                                                        "sensors.reading", "sensors.secret")
    assert check(parse("**"), DEMO).classes == ("demo.alert", "demo.message", "demo.order")
    assert check(parse("demo.order, demo.order"), DEMO).classes == ("demo.order",)


def test_a_query_built_in_code_is_checked_too() -> None:
    query = Query(("demo.order",), Compare("=", ("amout",), 1))
    error = refused_query(query)
    assert error.position is None and error.query == "demo.order where amout = 1"
    assert check(Query(("demo.order",), Compare("=", ("amount",), 1.0)), DEMO).text == "demo.order where amount = 1"


def refused_query(query: Query) -> QueryError:
    with pytest.raises(QueryError) as caught:
        check(query, DEMO)
    return caught.value


def test_a_rewritten_query_loses_only_the_positions() -> None:
    text = "demo.order where amout > 1"
    with_positions = refused(text, DEMO)
    with pytest.raises(QueryError) as caught:
        check(canonical(parse(text)), DEMO)
    assert caught.value.message == with_positions.message
    assert (with_positions.position, caught.value.position) == (18, None)


def test_a_query_needs_a_class() -> None:
    with pytest.raises(QueryError, match="at least one event class"):
        check(Query(()), DEMO)


# --- selectors and visibility --------------------------------------------------------------


def test_wildcards_select_only_what_the_caller_may_see() -> None:
    assert check(parse("sensors.*"), CLASSES, visible=anonymous).classes == ("sensors.other", "sensors.reading")
    assert check(parse("**"), DEMO, visible=anonymous).classes == ("demo.message",)
    assert check(parse("demo.*"), DEMO, visible=lambda c: c.visible_to("staff")).classes == (
        "demo.alert", "demo.message", "demo.order")


def test_naming_a_hidden_class_is_not_authorized() -> None:
    error = refused("sensors.reading, sensors.secret", visible=anonymous)
    assert isinstance(error, QueryNotAuthorized)
    assert error.message == "not authorized to see event class 'sensors.secret'"
    assert error.position == 18
    assert check(parse("sensors.secret"), CLASSES, visible=lambda c: c.visible_to("admin")).classes == (
        "sensors.secret",)


def test_a_wildcard_matching_only_hidden_classes_matches_nothing() -> None:
    error = refused("*.secret", visible=anonymous)
    assert not isinstance(error, QueryNotAuthorized)
    assert error.message == "'*.secret' matches no event class (known classes: loose.thing, sensors.other, " \
                            "sensors.reading)"


def test_unknown_classes_suggest_only_visible_names() -> None:
    assert "secret" not in refused("sensors.secrt", visible=anonymous).message.replace("secrt", "")
    assert refused("sensors.secrt").message == "unknown event class 'sensors.secrt' — did you mean 'sensors.secret'?"


def test_long_class_lists_are_cut() -> None:
    many = Registry([event_class_of(type(f"C{i}", (Event,), {"__annotations__": {"x": int}}, name=f"many.c{i}"))
                     for i in range(10)])
    message = refused("nope.*", many).message
    assert message.endswith("(known classes: many.c0, many.c1, many.c2, many.c3, many.c4, many.c5 and 4 more)")


# --- fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "sensors.reading where part.id = 1",  # $ref through an Optional (anyOf with null)
    "sensors.reading where part = null",
    "sensors.reading where meta.anything = 1",  # dict[str, int]: any key, int values
    "sensors.reading where anything.at.any.depth = \"x\"",  # Any: no schema, anything goes
    "loose.thing where not_declared.deep = true",  # extra = "allow"
    "loose.thing where known = 1",
    "sensors.* where level = 1",  # an integer in sensors.reading
    "sensors.* where level = \"high\"",  # a string in sensors.other
    "sensors.* where level > \"a\" or level < 3",
])
def test_fields_that_exist(text: str) -> None:
    check(parse(text), CLASSES)


@pytest.mark.parametrize(("text", "message", "position"), [
    ("sensors.reading where part.nmae = 1",
     "unknown field 'part.nmae' in sensors.reading — did you mean 'part.name'?", 23),
    ("sensors.reading where parts.id = 1",
     "unknown field 'parts.id' in sensors.reading: 'parts' is a list of objects, which has no fields", 23),
    ("sensors.reading where meta.x.y = 1",
     "unknown field 'meta.x.y' in sensors.reading: 'meta.x' is an integer, which has no fields", 23),
    ("sensors.* where levl = 1",
     "unknown field 'levl' in sensors.other, sensors.reading, sensors.secret — did you mean 'level'?", 17),
    ("sensors.other, sensors.secret where stat = 1",
     "unknown field 'stat' in sensors.other, sensors.secret (fields there: code, level, value)", 37),
])
def test_unknown_fields(text: str, message: str, position: int) -> None:
    error = refused(text)
    assert (error.message, error.position) == (message, position)


def test_many_classes_are_counted_not_listed() -> None:
    many = Registry([event_class_of(type(f"C{i}", (Event,), {"__annotations__": {"x": int}}, name=f"many.c{i}"))
                     for i in range(9)])
    assert refused("many.* where y = 1", many).message == (
        "unknown field 'y' in many.c0, many.c1, many.c2, many.c3, many.c4, many.c5 and 3 more (fields there: x)")


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "value = 1", "value = 1.5", "value > -2", "value in [1, 2.5, null]", "value != null", "level = 1.0",
    "status = \"ok\"", "status < \"m\"", "status contains \"o\"", "status startswith \"o\"", "status in [\"a\", null]",
    "ok = true", "ok != false", "ok = null", "ok in [true]",
    "tags contains 3", "tags contains 2.5", "tags = null",
    "when > \"2024-01-01T00:00:00Z\"",  # a datetime is an ISO string in JSON
    "price > 1", "price = \"1.50\"",  # a Decimal is a number or a string
    "mode = \"a\"", "mode in [\"a\", \"b\"]",
    "maybe = null", "maybe > 1", "either > \"a\"", "either < 1",
    "anything = true", "anything contains 1", "anything startswith \"x\"",
])
def test_values_that_fit(text: str) -> None:
    check(parse(f"sensors.reading where {text}"), CLASSES)


@pytest.mark.parametrize(("text", "message", "column"), [
    ("value = \"1\"", "cannot compare field 'value' (a number in sensors.reading) with the string \"1\"", 31),
    ("value = true", "cannot compare field 'value' (a number in sensors.reading) with true", 31),
    ("ok = 1", "cannot compare field 'ok' (true/false in sensors.reading) with the number 1", 28),
    ("ok < 1", "'<' compares numbers or strings, but field 'ok' is true/false in sensors.reading", 23),
    ("status > 1", "with the number 1", 32),
    ("level in [1, \"2\"]", "cannot compare field 'level' (an integer in sensors.reading) with the string \"2\"", 36),
    ("tags contains \"x\"", "(a list of integers in sensors.reading) with the string \"x\"", 37),
    ("tags = 1", "; to look for a value in a list, use 'contains'", 30),
    ("history contains \"x\"", "(a list of lists in sensors.reading) with the string \"x\"", 40),
    ("parts contains 1", "(a list of objects in sensors.reading) with the number 1", 38),
    ("part = 1", "(an object or null in sensors.reading) with the number 1", 30),
    ("part startswith \"x\"", "'startswith' needs a string field, but field 'part' is an object or null", 23),
    ("mode = 1", "(a string in sensors.reading) with the number 1", 30),
    ("meta contains 1", "'contains' looks into a list or a string, but field 'meta' is an object", 23),
    ("either contains 1", "(a string or an integer in sensors.reading) with the number 1", 39),
    ("ok contains true", "'contains' looks into a list or a string, but field 'ok' is true/false", 23),
    ("maybe = \"x\"", "(an integer or null in sensors.reading) with the string \"x\"", 31),
    ("status contains 1", "(a string in sensors.reading) with the number 1", 39),
    ("value = \"" + "x" * 60 + "\"", 'with the string "' + "x" * 36 + '..."', 31),
])
def test_values_that_do_not_fit(text: str, message: str, column: int) -> None:
    error = refused(f"sensors.reading where {text}")
    assert message in error.message
    assert error.position == column


def test_a_field_of_several_types_takes_a_value_of_any_of_them() -> None:
    error = refused("sensors.other, sensors.reading where level = true")
    assert error.message == ("cannot compare field 'level' (a string in sensors.other and an integer in "
                             "sensors.reading) with true")
    assert "a number in sensors.other, sensors.reading" in refused("sensors.* where value = \"x\"").message


def test_the_first_fault_in_the_text_is_reported() -> None:
    error = refused("sensors.reading where status = 1 and ok = 2 or nope = 3")
    assert error.position == 32


def test_yaml_classes_are_checked_like_python_ones() -> None:
    assert check(parse('demo.alert where level = "high"'), DEMO).classes == ("demo.alert",)
    assert refused('demo.alert where levle = "high"', DEMO).message == (
        "unknown field 'levle' in demo.alert — did you mean 'level'?")


def test_checked_text_reads_back_to_itself() -> None:
    checked = check(parse("sensors.* where (level = 1 or level = 'a') and not not ok = true"), CLASSES)
    assert checked.text == 'sensors.* where level in [1, "a"] and ok = true'
    assert check(parse(checked.text), CLASSES) == checked


# --- anything parse accepts, check answers with a CheckedQuery or a QueryError ---------------------

PIECES = ["demo.order", "demo.*", "**", "demo.message", "where", "and", "or", "not", "(", ")", "[", "]", ",",
          "=", "!=", "<", ">=", "in", "contains", "startswith", "exists", "true", "null", '"x"', "1", "2.5",
          "amount", "country", "tags", "customer", "customer.id", "customer.name", "coupon", "text", ".", "room"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(PIECES), max_size=16))
def test_check_raises_only_query_error(pieces: list[str]) -> None:
    try:
        query = parse(" ".join(pieces))
    except QueryError:
        return
    for visible in (lambda c: True, anonymous):
        try:
            checked = check(query, DEMO, visible=visible)
        except QueryError as exc:
            assert exc.message and exc.query == " ".join(pieces)
        else:
            assert checked.text == to_text(checked.query)


def test_a_query_as_deep_as_the_parser_allows_is_checked_without_recursion() -> None:
    text = "demo.order where " + "not (amount > 1 or " * 330 + "amout = 1" + ")" * 330
    with pytest.raises(QueryError, match="did you mean 'amount'"):
        check(parse(text, max_length=10**5, max_depth=1000), DEMO)
    checked = check(parse(text.replace("amout", "amount"), max_length=10**5, max_depth=1000), DEMO)
    assert checked.text.startswith("demo.order where not (amount > 1 or not (amount > 1 or not (")
    assert checked.text.endswith("not (amount = 1 or amount > 1)" + ")" * 329)
