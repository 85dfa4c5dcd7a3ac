"""Checking an event's data: JSON semantics, every bad field with its path, and nothing but InvalidEventData."""

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.events import EventClass, FieldError, InvalidEventData, Registry
from components.events.yaml_definitions import parse_definitions
from components.limits import INT_RANGE

REPO = Path(__file__).resolve().parents[3]
REGISTRY = Registry.load(["examples.demo_events", "tests.unit.events.test_python"], ["examples/demo_events.yaml"],
                         base_dir=REPO)
ORDER = REGISTRY.get("demo.order")
MESSAGE = REGISTRY.get("demo.message")
RICH = REGISTRY.get("shop.rich")
GOOD_ORDER: dict[str, Any] = {"order_id": 1, "amount": 9.5, "country": "AR", "tags": ["a"],
                              "customer": {"id": 2, "name": "Ann"}}

[EVERY_TYPE] = parse_definitions("""
events:
  t.every_type:
    fields:
      s: {type: string, min_length: 1, required: false}
      e: {type: string, enum: [a, b], required: false}
      i: {type: integer, minimum: 0, required: false}
      k: {type: integer, enum: [1, 2], required: false}
      n: {type: number, required: false}
      b: {type: boolean, required: false}
      t: {type: datetime, required: false}
      d: {type: date, required: false}
      l: {type: list, items: integer, required: false}
      o: {type: object, fields: {x: integer}, required: false}
""", "t.yaml")


def bad_fields(cls: EventClass, data: Any) -> dict[str, FieldError]:
    with pytest.raises(InvalidEventData) as exc:
        cls.validate(data)
    return {e.path: e for e in exc.value.errors}


def test_valid_data_comes_back_without_unset_optional_fields() -> None:
    assert ORDER.validate(GOOD_ORDER) == GOOD_ORDER
    assert ORDER.validate({**GOOD_ORDER, "coupon": "X"})["coupon"] == "X"
    assert ORDER.validate({**GOOD_ORDER, "coupon": None})["coupon"] is None


def test_every_bad_field_is_listed_with_its_path() -> None:
    bad = {"order_id": "7", "amount": "cheap", "tags": ["ok", 3], "customer": {"id": 1}, "extra": True}
    by_path = bad_fields(ORDER, bad)
    assert set(by_path) == {"order_id", "amount", "country", "tags.1", "customer.name", "extra"}
    assert by_path["country"].message == "required field is missing"
    assert by_path["extra"].message == "unknown field (not in the event class)"
    assert by_path["extra"].type == "extra_forbidden"
    assert by_path["order_id"].message == "Input should be a valid integer, not a string"
    assert by_path["tags.1"].as_dict() == {
        "path": "tags.1", "message": "Input should be a valid string, not the number 3", "type": "string_type"}


def test_the_exception_names_the_class_and_every_field() -> None:
    with pytest.raises(InvalidEventData) as exc:
        MESSAGE.validate({"room": 1})
    assert exc.value.event == "demo.message"
    assert str(exc.value) == ("invalid data for demo.message: room: Input should be a valid string, not the number 1; "
                              "text: required field is missing; author: required field is missing")


@pytest.mark.parametrize("data,message", [
    (["not", "an", "object"], "Input should be an object, not an array"),
    ("text", "Input should be an object, not a string"),
    (None, "Input should be an object, not null"),
    (3, "Input should be an object, not the number 3"),
])
def test_data_must_be_an_object(data: Any, message: str) -> None:
    assert {p: e.message for p, e in bad_fields(MESSAGE, data).items()} == {"": message}


@pytest.mark.parametrize("field,value,ok", [
    ("i", 42, True), ("i", "42", False), ("i", 1.5, False), ("i", 1.0, False), ("i", True, False),
    ("i", 2**63 - 1, True), ("i", 2**63, False), ("i", 10**40, False),
    ("k", 1, True), ("k", True, False), ("k", 1.0, False), ("k", 3, False),
    ("n", 1, True), ("n", 1.5, True), ("n", "1.5", False), ("n", True, False), ("n", 10**400, False),
    ("b", True, True), ("b", 1, False), ("b", "true", False),
    ("s", "x", True), ("s", 1, False), ("s", None, True),
    ("e", "a", True), ("e", "c", False), ("e", 1, False),
    ("t", "2025-01-31T09:30:00Z", True), ("t", "2025-01-31T09:30:00", True), ("t", 1738315800, False),
    ("t", "31 Jan 2025", False),
    ("d", "2025-01-31", True), ("d", "2025-02-30", False), ("d", 20250131, False),
    ("l", [1, 2], True), ("l", [1, "2"], False), ("l", "12", False),
    ("o", {"x": 1}, True), ("o", {"x": "1"}, False), ("o", [1], False),
])
def test_json_semantics(field: str, value: Any, ok: bool) -> None:
    if ok:
        assert EVERY_TYPE.validate({field: value}) == {field: value}
    else:
        assert set(bad_fields(EVERY_TYPE, {field: value})) in ({field}, {f"{field}.1"}, {f"{field}.x"})


def test_python_decimal_enum_and_datetime_fields_take_their_json_forms() -> None:
    data = RICH.validate({"name": "Ann", "qty": 1, "price": 1, "ratio": 0.5, "colour": "green", "size": "s",
                          "when": "2025-01-31T09:30:00+01:00", "day": "2025-01-31", "tags": [], "contacts": []})
    assert (data["price"], data["colour"], data["when"]) == ("1", "green", "2025-01-31T09:30:00+01:00")


@pytest.mark.parametrize("data,path", [
    ({"order_id": 1, "amount": math.nan}, "amount"),
    ({"amount": math.inf}, "amount"),
    ({"tags": [-math.inf]}, "tags.0"),
    ({"customer": {"name": math.nan}}, "customer.name"),
])
def test_nan_and_infinity_are_not_json(data: dict[str, Any], path: str) -> None:
    errors = bad_fields(ORDER, {**GOOD_ORDER, **data})
    assert errors == {path: FieldError(path, "NaN and Infinity are not JSON numbers", "finite_number")}


@pytest.mark.parametrize("data,path", [
    ({"order_id": 2**63}, "order_id"),
    ({"order_id": -2**63 - 1}, "order_id"),
    ({"customer": {"id": 10**40, "name": "A"}}, "customer.id"),
    ({"amount": 10**400}, "amount"),  # a float field given an integer: the integer is out of range all the same
])
def test_integers_outside_64_bits_are_refused_naming_the_field(data: dict[str, Any], path: str) -> None:
    errors = bad_fields(ORDER, {**GOOD_ORDER, **data})
    assert list(errors) == [path] and errors[path].type == "int_range"
    assert errors[path].message.startswith(INT_RANGE + ", not ")


def test_the_schema_says_the_integer_range() -> None:
    schema = ORDER.json_schema()
    order_id = schema["properties"]["order_id"]
    assert (order_id["format"], order_id["minimum"], order_id["maximum"]) == ("int64", -2**63, 2**63 - 1)
    assert "format" not in schema["properties"]["amount"]  # a float field: no integer range


def test_text_that_looks_like_nan_is_fine() -> None:
    assert ORDER.validate({**GOOD_ORDER, "country": "NaN", "tags": ["Infinity"]})["country"] == "NaN"


@pytest.mark.parametrize("data", [
    {"room": object(), "text": "", "author": ""},
    {"room": "\ud800", "text": "", "author": ""},
])
def test_data_that_is_not_json_is_refused_whole(data: Any) -> None:
    [(path, error)] = bad_fields(MESSAGE, data).items()
    assert path == "" and error.type == "json_invalid" and error.message.startswith("must be JSON data (")


def test_deep_nesting_is_refused_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(1000):
        deep = [deep]
    assert bad_fields(ORDER, {**GOOD_ORDER, "tags": deep})


def test_the_output_is_json() -> None:
    data = RICH.validate({"name": "Ann", "qty": 1, "price": "2.50", "ratio": 0.5, "colour": "red", "size": "s",
                          "when": "2025-01-31T09:30:00Z", "day": "2025-01-31", "tags": ["t"], "contacts": []})
    assert json.loads(json.dumps(data, allow_nan=False)) == data


# -- property: any JSON-like value is either valid data or InvalidEventData ------------------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.decimals(allow_nan=False).map(str)
_NAMES = st.sampled_from(["order_id", "amount", "country", "tags", "customer", "coupon", "id", "name", "room", "text",
                          "author", "level", "s", "e", "i", "k", "n", "b", "t", "d", "l", "o", "x", "price", "when",
                          "day", "colour", "contacts", "address", "zip", "note"]) | st.text(max_size=5)
JSON_LIKE = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(_NAMES, inner, max_size=5), max_leaves=12)
CLASSES = [*REGISTRY, EVERY_TYPE]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CLASSES), JSON_LIKE)
def test_any_json_like_value_is_valid_data_or_invalid_event_data(cls: EventClass, data: Any) -> None:
    try:
        result = cls.validate(data)
    except InvalidEventData as exc:
        assert exc.event == cls.name and exc.errors
        assert all(isinstance(e, FieldError) and isinstance(e.path, str) and e.message for e in exc.errors)
        return
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert cls.validate(result) == result  # what validate gives back, it accepts unchanged


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CLASSES), st.dictionaries(_NAMES, JSON_LIKE, max_size=3))
def test_near_misses_of_real_payloads_too(cls: EventClass, extra: dict[str, Any]) -> None:
    bases: dict[str, dict[str, Any]] = {"demo.order": GOOD_ORDER,
                                        "demo.message": {"room": "r", "text": "t", "author": "a"}}
    base = bases.get(cls.name, {})
    try:
        result = cls.validate({**base, **extra})
    except InvalidEventData as exc:
        assert exc.errors
        return
    assert cls.validate(result) == result
