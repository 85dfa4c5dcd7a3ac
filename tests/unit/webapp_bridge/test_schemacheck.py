"""The stdlib schema checker: each keyword, and agreement with the gateway's own validation."""

from __future__ import annotations

import ast
import enum
import math
import subprocess
import sys
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from components.events import Event, EventClass, InvalidEventData, Registry, event_class_of
from components.events.yaml_definitions import parse_definitions
from components import limits
from webapp_bridge import schemacheck
from webapp_bridge.schemacheck import INT_RANGE, Problem, problems

REPO = Path(__file__).resolve().parents[3]


def found(schema: dict[str, Any], data: Any) -> dict[str, str]:
    """``{path: type}`` of the problems."""
    return {p.path: p.type for p in problems(schema, data)}


def messages(schema: dict[str, Any], data: Any) -> dict[str, str]:
    return {p.path: p.message for p in problems(schema, data)}


# -- keywords ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,good,bad,error", [
    ("integer", [0, -3, 2**63 - 1, -2**63], [1.0, 1.5, True, "1", None, [], {}], "int_type"),
    ("number", [0, 1.5, -2, 2**63 - 1, 1e300], [True, "1.5", None, []], "float_type"),
    ("string", ["", "x", "é"], [1, True, None, ["x"], {}], "string_type"),
    ("boolean", [True, False], [0, 1, "true", None], "bool_type"),
    ("array", [[], [1, "a"], (1,)], [{}, "ab", None], "list_type"),
    ("object", [{}, {"a": 1}], [[], "x", None, 1], "dict_type"),
    ("null", [None], [0, "", [], False], "none_required"),
])
def test_type(kind: str, good: list[Any], bad: list[Any], error: str) -> None:
    for value in good:
        assert problems({"type": kind}, value) == [], value
    for value in bad:
        assert found({"type": kind}, value) == {"": error}, value


def test_type_errors_say_what_came_as_the_gateway_does() -> None:
    assert problems({"type": "integer"}, 1.5) == [Problem("", "Input should be a valid integer, not the number 1.5",
                                                          "int_type")]
    assert messages({"type": "integer"}, "42") == {"": "Input should be a valid integer, not a string"}
    assert messages({"type": "string"}, None) == {"": "Input should be a valid string, not null"}
    assert messages({"type": "object", "properties": {}}, []) == {"": "Input should be an object, not an array"}
    assert found({"type": "object", "properties": {}}, []) == {"": "model_type"}
    assert messages({"type": "string", "format": "date-time"}, 5) == {
        "": "Input should be a valid datetime, not the number 5 (expected ISO 8601, e.g. '2025-01-31T09:30:00Z')"}
    assert Problem("a", "m", "t").as_dict() == {"path": "a", "message": "m", "type": "t"}


def test_a_list_of_types_takes_any_of_them() -> None:
    schema = {"type": ["string", "null"]}
    assert problems(schema, "x") == problems(schema, None) == []
    assert messages(schema, 3) == {"": "Input should be a valid string or None, not the number 3"}


def test_unknown_types_and_keywords_and_values_json_lacks_pass() -> None:
    assert problems({"type": "decimal"}, "x") == []
    assert problems({"type": "string", "x-frobnicate": True, "contentMediaType": "text/html"}, "x") == []
    assert problems({"type": "integer"}, Decimal(1)) == []  # the web-app's encoder decides what it becomes
    assert problems({}, object()) == [] and problems(True, 1) == []  # type: ignore[arg-type]
    assert found(False, 1) == {"": "no_value_allowed"}  # type: ignore[arg-type]


def test_properties_required_and_unknown_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
              "required": ["a"], "additionalProperties": False}
    assert problems(schema, {"a": 1}) == [] and problems(schema, {"a": 1, "b": "x"}) == []
    assert problems(schema, {"b": 2, "c": 3}) == [
        Problem("a", "required field is missing", "missing"),
        Problem("b", "Input should be a valid string, not the number 2", "string_type"),
        Problem("c", "unknown field (not in the event class)", "extra_forbidden")]
    assert found({**schema, "additionalProperties": True}, {"a": 1, "c": 3}) == {}
    assert found({k: v for k, v in schema.items() if k != "additionalProperties"}, {"a": 1, "c": 3}) == {}
    assert found({**schema, "required": ["a", "z"]}, {"a": 1}) == {"z": "missing"}


def test_additional_properties_as_a_schema_and_pattern_properties() -> None:
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert problems(counts, {"x": 1, "y": 2}) == []
    assert found(counts, {"x": 1, "y": "2"}) == {"y": "int_type"}
    patterned = {"type": "object", "patternProperties": {"^n_": {"type": "number"}}, "additionalProperties": False}
    assert found(patterned, {"n_a": 1.5, "n_b": "x", "other": 1}) == {"n_b": "float_type", "other": "extra_forbidden"}
    # A key pattern Python cannot read might match: the key is not called unknown.
    unreadable = {"type": "object", "patternProperties": {r"^\p{L}+$": {}}, "additionalProperties": False}
    assert problems(unreadable, {"ñandú": 1}) == []
    unsure = {"type": "object", "patternProperties": {r"^\w+$": {}}, "additionalProperties": False}
    assert problems(unsure, {"e\u0301": 1}) == [] and found(unsure, {"a b": 1}) == {"a b": "extra_forbidden"}


def test_min_and_max_properties() -> None:
    schema = {"type": "object", "minProperties": 1, "maxProperties": 2}
    assert problems(schema, {"a": 1}) == []
    assert found(schema, {}) == {"": "too_short"} and found(schema, {"a": 1, "b": 2, "c": 3}) == {"": "too_long"}


def test_nested_paths_name_keys_and_indexes() -> None:
    schema = {"type": "object", "properties": {
        "customer": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        "tags": {"type": "array", "items": {"type": "string"}}}}
    assert found(schema, {"customer": {"id": "7"}, "tags": ["a", "b", 3]}) == {"customer.id": "int_type",
                                                                                "tags.2": "string_type"}
    assert found(schema, {"customer": {}}) == {"customer.id": "missing"}


def test_ref_to_defs_and_loops() -> None:
    schema = {"$defs": {"Customer": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
                        "a~b/c": {"type": "string"}},
              "type": "object", "properties": {"c": {"$ref": "#/$defs/Customer"}, "d": {"$ref": "#/$defs/a~0b~1c"}}}
    assert problems(schema, {"c": {"id": 1}, "d": "x"}) == []
    assert found(schema, {"c": {}, "d": 1}) == {"c.id": "missing", "d": "string_type"}
    # A tree: the ref descends with the data.
    tree = {"$defs": {"Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {
        "$ref": "#/$defs/Node"}}, "v": {"type": "integer"}}}}, "$ref": "#/$defs/Node"}
    assert found(tree, {"v": 1, "kids": [{"v": 2, "kids": [{"v": "x"}]}]}) == {"kids.0.kids.0.v": "int_type"}
    # Loops that never reach the data, and refs elsewhere: nothing to judge.
    assert problems({"$ref": "#"}, 1) == []
    assert problems({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, 1) == []
    assert problems({"$ref": "other.json#/x"}, 1) == problems({"$ref": "#/nowhere"}, 1) == []


def test_any_of_one_of_all_of() -> None:
    nullable = {"anyOf": [{"type": "string", "minLength": 2}, {"type": "null"}]}
    assert problems(nullable, None) == problems(nullable, "ab") == []
    # A nullable field reports its other member's problem, at its own path (as pydantic does).
    assert found(nullable, 1) == {"": "string_type"} and found(nullable, "a") == {"": "string_too_short"}
    decimal = {"anyOf": [{"type": "number"}, {"type": "string"}]}
    assert problems(decimal, 1.5) == problems(decimal, "1.5") == []
    assert problems(decimal, True) == [Problem("", "Input should be a valid number or a valid string, not a boolean",
                                               "union_type")]
    # oneOf is anyOf: pydantic's unions pick a member, they do not demand exactly one.
    assert problems({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 1) == []
    assert found({"oneOf": [{"type": "number"}, {"type": "integer"}]}, "1") == {"": "union_type"}
    both = {"allOf": [{"type": "integer"}, {"minimum": 3}]}
    assert problems(both, 3) == [] and found(both, 2) == {"": "greater_than_equal"}
    assert found(both, "3") == {"": "int_type"}


def test_enum_and_const() -> None:
    schema = {"enum": ["info", "warning", "critical"], "type": "string"}
    assert problems(schema, "info") == []
    assert problems(schema, "fatal") == [Problem("", "Input should be 'info', 'warning' or 'critical'",
                                                 "literal_error")]
    assert found(schema, 1) == {"": "literal_error"}
    assert found({"const": "x"}, "y") == {"": "literal_error"} and problems({"const": "x"}, "x") == []
    # An integer enum (YAML): the wrong type is a type error, the wrong number an enum error.
    ints = {"enum": [1, 2], "type": "integer"}
    assert found(ints, "1") == {"": "int_type"} and messages(ints, 3) == {"": "Input should be 1 or 2"}
    assert found(ints, 3) == {"": "enum"}
    # pydantic's Literal[1, 2] and IntEnum take true and 1.0 for 1: so may we.
    assert problems(ints, True) == problems(ints, 2.0) == []
    # An Enum class is a $def: pydantic calls its error "enum".
    colour = {"$defs": {"Colour": {"enum": ["red"], "type": "string", "title": "Colour"}},
              "type": "object", "properties": {"c": {"$ref": "#/$defs/Colour"}}}
    assert found(colour, {"c": "blue"}) == {"c": "enum"}


@pytest.mark.parametrize("schema,good,bad,error", [
    ({"minimum": 0}, [0, 0.0, 5], [-1, -0.5], "greater_than_equal"),
    ({"exclusiveMinimum": 0}, [1, 0.001], [0, -1], "greater_than"),
    ({"maximum": 1.5}, [1.5, -9], [1.6, 2], "less_than_equal"),
    ({"exclusiveMaximum": 10}, [9, 9.99], [10, 10.0, 11], "less_than"),
    ({"multipleOf": 3, "type": "integer"}, [0, 9, -3, 3 * 10**18], [10, 3 * 10**18 + 1], "multiple_of"),
    ({"multipleOf": 0.1, "type": "number"}, [0.3, 0.7, 1.1, 3, 1e20], [0.35, 0.05], "multiple_of"),
    # A float field turns a big int into a float first: pydantic takes it.
    ({"multipleOf": 3, "type": "number"}, [2**63 - 1], [10], "multiple_of"),
])
def test_number_bounds(schema: dict[str, Any], good: list[Any], bad: list[Any], error: str) -> None:
    for value in good:
        assert problems(schema, value) == [], value
    for value in bad:
        assert found(schema, value) == {"": error}, value
    bounds = {k: v for k, v in schema.items() if k != "type"}
    assert problems(bounds, "not a number") == []  # bounds only judge numbers


def test_number_messages_and_one_problem_per_value() -> None:
    assert messages({"minimum": 1}, 0) == {"": "Input should be greater than or equal to 1"}
    assert messages({"exclusiveMaximum": 1.5}, 2) == {"": "Input should be less than 1.5"}
    assert messages({"multipleOf": 2.0}, 3) == {"": "Input should be a multiple of 2"}
    assert found({"multipleOf": 2, "minimum": 10, "type": "integer"}, 3) == {"": "multiple_of"}


def test_string_length_counts_code_points() -> None:
    schema = {"type": "string", "minLength": 2, "maxLength": 3}
    for value in ["ab", "😀😀", "e\u0301", "abc"]:
        assert problems(schema, value) == [], value
    assert problems(schema, "a") == [Problem("", "String should have at least 2 characters", "string_too_short")]
    assert problems(schema, "abcd") == [Problem("", "String should have at most 3 characters", "string_too_long")]
    assert messages({"maxLength": 1}, "ab") == {"": "String should have at most 1 character"}


def test_pattern_is_searched_like_pydantic_does() -> None:
    anchored = {"type": "string", "pattern": "^[A-Z]{2}$"}
    assert problems(anchored, "AR") == []
    assert problems(anchored, "ARG") == [Problem("", "String should match pattern '^[A-Z]{2}$'",
                                                 "string_pattern_mismatch")]
    assert problems({"pattern": "[0-9]"}, "abc1def") == [] and found({"pattern": "[0-9]"}, "abc") == {
        "": "string_pattern_mismatch"}


@pytest.mark.parametrize("pattern,text", [
    (r"^\p{L}+$", "x1"),            # Rust classes Python cannot read: skipped
    (r"^[[:alpha:]]+$", "1"),       # a nested class, read differently by Python
    (r"^[a-z&&[^aeiou]]+$", "1"),   # class intersection
    (r"\<word\>", "word"),           # Rust word boundaries, a literal < in Python
    (r"(?x)^[a b]+$", "1"),          # x-mode ignores spaces in classes in Rust only
    (r"^\w+$", "e\u0301"),           # a combining mark is \w in Rust, not in Python
    (r"(?i)^k$", "\u212a"),          # the Kelvin sign: case tables differ
    (r"^\S+$", "a\x1cb"),            # \x1c is space to Python only
    (r"^(?<word>[a-z]+)$", "1"),     # a named group Python 3.11 cannot read
    (r"^[a-z]+\z", "1"),              # Rust's end of text
])
def test_patterns_python_may_read_otherwise_never_refuse(pattern: str, text: str) -> None:
    assert problems({"type": "string", "pattern": pattern}, text) == []


def test_unicode_sensitive_patterns_still_judge_plain_text() -> None:
    assert found({"pattern": r"^\w+$"}, "a b") == {"": "string_pattern_mismatch"}
    assert found({"pattern": r"(?i)^k$"}, "x") == {"": "string_pattern_mismatch"}


@pytest.mark.parametrize("form,good,bad,error", [
    ("date-time", ["2025-01-31T09:30:00Z", "2025-01-31t09:30:00z", "2025-01-31 09:30", "2025-01-31_09:30:00.5+01:00",
                   "2024-02-29T23:59:59,123456789-23:59", "2025-01-31T09:30:00+0100", "1700000000", "-1.5", ".5"],
     ["2025-01-31", "2025-02-29T00:00:00", "2025-01-31T24:00:00", "2025-01-31T09:60", "2025-01-31T09:30:60",
      "0000-01-01T00:00:00", "2025-1-31T00:00:00", "2025-01-31T09:30:00+24:00", "2025-01-31T09:30:00+01",
      "2025-01-31T09:30:00 ", "yesterday", "", "2025-01-31T09:30:00UTC", "١٢"], "datetime_parsing"),
    ("date", ["2025-01-31", "2024-02-29", "1699920000", "-86400"],
     ["2025-02-29", "2025-13-01", "2025-01-31T00:00:00", "2025-01-31Z", "31/01/2025", "1.5", ""], "date_parsing"),
    ("time", ["09:30", "09:30:00", "23:59:59.999999999Z", "09:30:00,5+01:00", "09:30Z"],
     ["9:30", "24:00", "09:60", "09:30:60", "093000", "3600", "09:30:00-01", "T09:30"], "time_parsing"),
    ("uuid", ["12345678-1234-5678-1234-567812345678", "12345678123456781234567812345678",
              "{12345678-1234-5678-1234-567812345678}", "urn:uuid:12345678-1234-5678-1234-567812345678",
              "ABCDEF78-1234-5678-1234-567812345678"],
     ["xyz", "12345678-1234-5678-1234-56781234567G", "12345678-1234-5678-1234-5678123456781",
      "1234567-81234-5678-1234-567812345678"], "uuid_parsing"),
])
def test_formats(form: str, good: list[str], bad: list[str], error: str) -> None:
    schema = {"type": "string", "format": form}
    for text in good:
        assert problems(schema, text) == [], text
    for text in bad:
        assert found(schema, text) == {"": error}, text


def test_format_messages_and_unknown_formats() -> None:
    assert messages({"format": "date"}, "x") == {"": "Input should be a valid date in the format YYYY-MM-DD"}
    assert messages({"format": "date-time"}, "x") == {
        "": "Input should be a valid datetime (expected ISO 8601, e.g. '2025-01-31T09:30:00Z')"}
    assert found({"type": "string", "format": "uuid"}, 1) == {"": "uuid_type"}
    for form in ("email", "uri", "duration", "ipv4", "binary", "password", "nonsense"):
        assert problems({"type": "string", "format": form}, "anything at all") == [], form


def test_items_and_counts() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}
    assert problems(schema, [1]) == [] and problems(schema, (1, 2)) == []
    assert problems(schema, []) == [Problem("", "List should have at least 1 item after validation, not 0",
                                            "too_short")]
    assert found(schema, [1, 2, 3]) == {"": "too_long"}
    assert found(schema, ["a", 2]) == {"0": "int_type"}


def test_prefix_items_are_a_tuple() -> None:
    pair = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
    assert problems(pair, [1, "a"]) == []
    assert found(pair, ["a", 1]) == {"0": "int_type", "1": "string_type"}
    assert found(pair, [1]) == {"1": "missing"}  # pydantic names the missing place
    assert found(pair, [1, "a", 2]) == {"": "too_long"}
    assert found(pair, "ab") == {"": "tuple_type"}
    # The draft-7 form (items as a list) reads the same.
    assert found({"items": [{"type": "integer"}]}, ["x"]) == {"0": "int_type"}


def test_unique_items_is_not_enforced() -> None:
    # pydantic emits it for sets, which take duplicates (and drop them).
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    assert problems(schema, [1, 1]) == []
    assert found(schema, {}) == {"": "set_type"}


def test_nan_and_infinity_are_reported_alone_wherever_they_are() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    assert problems(schema, {"a": 1, "b": [0, math.nan], "c": {"d": -math.inf}}) == [
        Problem("b.1", "NaN and Infinity are not JSON numbers", "finite_number"),
        Problem("c.d", "NaN and Infinity are not JSON numbers", "finite_number")]


@pytest.mark.parametrize("value,message", [
    (2**63, f"{INT_RANGE}, not 9223372036854775808"),
    (-2**63 - 1, f"{INT_RANGE}, not -9223372036854775809"),
    (10**40, f"{INT_RANGE}, not 10000000000000000000000000000000000000000"),
    (10**400, f"{INT_RANGE}, not an integer of more than 256 bits"),
])
def test_integers_outside_64_bits_are_reported_alone_as_the_gateway_words_them(value: int, message: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    assert problems(schema, {"a": 1, "n": [value, 2**63 - 1, -2**63]}) == [Problem("n.0", message, "int_range")]


def test_the_number_rule_is_the_gateways_word_for_word() -> None:
    assert (schemacheck.INT64_MIN, schemacheck.INT64_MAX, schemacheck.INT_RANGE, schemacheck.NON_FINITE) == (
        limits.INT64_MIN, limits.INT64_MAX, limits.INT_RANGE, limits.NON_FINITE)


EDGE_NUMBERS = (st.integers() | st.integers(min_value=2**63 - 2, max_value=2**70)
                | st.integers(min_value=-2**70, max_value=-2**63 + 1) | st.floats()
                | st.sampled_from([2**63, -2**63 - 1, 10**40, 10**400, -10**400, math.nan, math.inf, -math.inf]))
NUMBERS_JSON = st.recursive(st.none() | st.booleans() | st.text(max_size=3) | EDGE_NUMBERS,
                            lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4),
                            max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(NUMBERS_JSON)
def test_the_number_rule_finds_what_the_gateways_finds(data: Any) -> None:
    """The stdlib copy of the rule (for web-apps) and the gateway's (components.limits) agree on any data."""
    assert [p.as_dict() for p in schemacheck.number_problems(data)] == \
        [p.as_dict() for p in limits.number_problems(data, limit=None)]


def test_keys_that_are_not_text_read_as_json_writes_them() -> None:
    schema = {"type": "object", "properties": {"1": {"type": "string"}, "false": {"type": "string"}},
              "additionalProperties": False}
    assert found(schema, {1: 2, False: 3, None: 4}) == {"1": "string_type", "false": "string_type",
                                                        "null": "extra_forbidden"}


def test_nullable_openapi_flag() -> None:
    assert problems({"type": "string", "nullable": True}, None) == []


def test_data_nested_too_deep_to_walk_is_left_to_the_gateway() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    tree = {"type": "array", "items": {"$ref": "#"}}
    assert problems(tree, deep) == [] and problems(tree, [[["x"]]]) == [Problem("0.0.0", "Input should be a valid "
                                                                                "array, not a string", "list_type")]


def test_imports_nothing_beyond_the_standard_library() -> None:
    # A web-app without the gateway's dependencies runs it: prove it in a fresh interpreter.
    script = ("import sys; before = set(sys.modules); import webapp_bridge.schemacheck; "
              "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    names = ast.literal_eval(loaded.stdout)
    assert "webapp_bridge" in names
    assert [n for n in names if n != "webapp_bridge" and n not in sys.stdlib_module_names] == []


# -- agreement with the gateway ------------------------------------------------------------------------

class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Size(enum.IntEnum):
    S = 1
    M = 2


class Part(BaseModel):
    sku: str
    qty: Annotated[int, Field(ge=1)]


class Everything(Event, name="test.schemacheck.python"):
    """The Python field types the docs list, and a few more pydantic emits schemas for."""

    amount: Decimal
    at: datetime
    day: date
    clock: time
    ref: uuid.UUID
    level: Level
    size: Size
    kind: Literal["a", "b"]
    code: Literal[1, 2]
    step: Annotated[float, Field(multiple_of=0.5, ge=0)]
    dozen: Annotated[int, Field(multiple_of=12)]
    name: str = Field(min_length=1, max_length=8, pattern=r"^\w+$")
    pair: tuple[int, str]
    numbers: set[int]
    counts: dict[str, int]
    parts: list[Part] = Field(max_length=3)
    part: Part | None = None
    note: str | None = None


YAML_CLASSES = parse_definitions("""
events:
  test.schemacheck.yaml:
    description: Every YAML field type and constraint.
    fields:
      s: string
      s_enum: {type: string, enum: [info, warning, critical]}
      s_len: {type: string, min_length: 2, max_length: 5}
      s_pat: {type: string, pattern: "^[A-Z]{2}$"}
      i: integer
      i_enum: {type: integer, enum: [1, 2, 3]}
      i_range: {type: integer, minimum: -5, exclusive_maximum: 10}
      i_excl: {type: integer, exclusive_minimum: 0, maximum: 100}
      n: number
      n_range: {type: number, minimum: 0, exclusive_maximum: 1.5}
      n_excl: {type: number, exclusive_minimum: -1, maximum: 1000000}
      b: boolean
      dt: datetime
      d: date
      obj: {type: object, fields: {id: integer, name: {type: string, required: false}}}
      empty: {type: object, fields: {}}
      l: {type: list, items: string}
      l_bounded: {type: list, items: {type: integer, minimum: 0}, min_items: 1, max_items: 3}
      l_obj: {type: list, items: {type: object, fields: {sku: string, qty: integer}}}
      l_l: {type: list, items: {type: list, items: date}, required: false}
      opt: {type: string, required: false}
      opt_obj: {type: object, required: false, fields: {x: number}}
      dflt: {type: integer, default: 3}
  test.schemacheck.loose:
    description: Unknown fields pass, nested ones too.
    extra: allow
    fields:
      id: integer
      inner: {type: object, fields: {x: {type: list, items: number}}}
      when: {type: datetime, required: false}
""", "t.yaml")

GATEWAY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml", "tests/integration/identity_events.yaml"],
                        base_dir=REPO)
CLASSES: list[EventClass] = [*GATEWAY, *YAML_CLASSES, event_class_of(Everything)]
SCHEMAS = {cls.name: cls.json_schema() for cls in CLASSES}
RICH = [*YAML_CLASSES, event_class_of(Everything)]


def test_the_classes_cover_the_demo_and_test_definitions() -> None:
    assert {"demo.message", "demo.order", "demo.alert", "test.notice", "test.team"} <= set(SCHEMAS)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def valid(root: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema allows (mostly: a Decimal's string branch also draws non-numbers)."""
    schema = _resolve(root, schema)
    if schema.get("anyOf") == [{"type": "number"}, {"type": "string"}]:  # a Decimal: a number or numeric text
        return st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str) | st.integers() | st.floats(
            allow_nan=False, allow_infinity=False)
    if "anyOf" in schema:
        return st.one_of([valid(root, member) for member in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -10**6 - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 10**6 + 1) - 1)
        step = schema.get("multipleOf", 1)
        return st.integers(-(-low // step), high // step).map(lambda k: k * step)
    if kind == "number":
        if "multipleOf" in schema:
            return st.integers(0, 100).map(lambda k: k * schema["multipleOf"])
        return st.floats(schema.get("minimum", schema.get("exclusiveMinimum")),
                         schema.get("maximum", schema.get("exclusiveMaximum")),
                         exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
                         allow_nan=False, allow_infinity=False) | st.integers(0, 1)
    if kind == "string":
        return _string(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        if "prefixItems" in schema:
            return st.tuples(*[valid(root, member) for member in schema["prefixItems"]]).map(list)
        return st.lists(valid(root, schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=schema.get("maxItems", 3))
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            return st.dictionaries(st.text(min_size=1, max_size=3), valid(root, schema["additionalProperties"]),
                                   max_size=3)
        required = {k: valid(root, v) for k, v in properties.items() if k in schema.get("required", [])}
        optional = {k: valid(root, v) for k, v in properties.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    return JSON


_OFFSETS = st.none() | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60 - 59, 23 * 60 + 59))


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    form = schema.get("format")
    if form == "date-time":
        return st.builds(lambda d, sep: d.isoformat(sep), st.datetimes(timezones=_OFFSETS), st.sampled_from("T t_"))
    if form == "date":
        return st.dates().map(date.isoformat)
    if form == "time":
        return st.times(timezones=_OFFSETS).map(time.isoformat)
    if form == "uuid":
        return st.uuids().map(str)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"].replace(r"\w", "[a-zA-Z0-9_é]"), fullmatch=True).filter(
            lambda s: schema.get("minLength", 0) <= len(s) <= schema.get("maxLength", 10**6))
    return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 8))


SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
           | st.sampled_from([0, 1, -1, 1.0, 0.5, 10**20, 3.5, "", "1", "x", "AR", "info", "red", "low", "a", 12]))
# No empty key: the gateway's path for a NaN under one drops the empty part ("0", not ".0").
NAMES = st.sampled_from(["id", "name", "sku", "qty", "x", "typo", "s", "i", "n", "level", "customer", "tags"]) \
    | st.text(min_size=1, max_size=4)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
                    max_leaves=8)
# Texts near the formats' edges: what a web-app gets wrong about dates and ids.
NEAR_TEXTS = st.sampled_from([
    "2025-01-31", "2025-01-31T09:30:00Z", "2025-01-31T09:30", "2025-01-31 09:30:00+01:00", "2025-02-29T00:00:00",
    "2025-01-31T24:00:00", "2025-01-31T09:30:00+01", "2025-01-31T09:30:00.", "31/01/2025", "2025-1-31",
    "2025-01-31T00:00:00", "1700000000", "09:30", "9:30", "09:30:00Z", "24:00", "0000-01-01", "1.5", "abc",
    "12345678-1234-5678-1234-567812345678", "12345678123456781234567812345678", "1234-5678",
    "{12345678-1234-5678-1234-567812345678}", "AR", "ARG", "ar", "A", "é", "e\u0301", "ab cd", "", " ",
    "info", "fatal", "low", "LOW", "a", "c", "9.50", "-", "1e5",
])


def _tweaks(value: Any) -> st.SearchStrategy[Any]:
    """Values near ``value``: off by one, the wrong JSON type for the same thing, a char more or less."""
    if isinstance(value, bool):
        return st.sampled_from([not value, int(value), str(value).lower()])
    if isinstance(value, (int, float)):
        return st.sampled_from([value + 1, value - 1, -value, float(value), value + 0.5, str(value), True, 0, 10**30])
    if isinstance(value, str):
        return st.sampled_from([value + "x", value[:-1], value[:1], "", value.upper(), "é" + value, value * 3,
                                value + " ", value + "\n", 1])
    if isinstance(value, list):
        return st.sampled_from([[], value + value[:1], value[:-1], [value], {}, value * 2])
    return st.sampled_from([[value], None, {"typo": 1}])


def _locations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    inside: list[tuple[Any, ...]] = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            inside += _locations(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inside += _locations(item, (*path, index))
    return inside


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


VALID = {name: valid(schema, schema) for name, schema in SCHEMAS.items()}


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[EventClass, Any]:
    """A class and a valid-looking instance of it with one thing changed."""
    cls = draw(st.sampled_from(CLASSES) | st.sampled_from(RICH))  # the rich ones have most to get wrong
    data = draw(VALID[cls.name])
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        change = draw(st.sampled_from(["replace", "tweak", "tweak", "near", "drop", "add"]))
        places = [p for p in _locations(data) if isinstance(_at(data, p), (dict, list)) == (change == "add")]
        if change != "add":
            places = [p for p in places if p]  # the data itself is replaced by the any-JSON test
        if not places:
            continue
        where = draw(st.sampled_from(places))
        node = _at(data, where)
        if change == "add" and isinstance(node, dict):
            node[draw(NAMES)] = draw(JSON)
        elif change == "add":
            node.append(draw(JSON | st.sampled_from(node or [1])))
        elif change == "drop":
            del _at(data, where[:-1])[where[-1]]
        else:
            new = {"tweak": _tweaks(node), "near": NEAR_TEXTS, "replace": JSON}[change]
            _at(data, where[:-1])[where[-1]] = draw(new)
    return cls, data


# What the checker lets pass although the gateway refuses it (the module docstring lists why).
_MISSES = {
    "string_pattern_mismatch": lambda v: isinstance(v, str) and (v.endswith("\n") or not v.isascii()),
    "decimal_parsing": lambda v: isinstance(v, str),
    "finite_number": lambda v: isinstance(v, str),
    "datetime_parsing": lambda v: isinstance(v, str) and v.lstrip("+-").replace(".", "", 1).isdigit(),
    "date_parsing": lambda v: isinstance(v, str) and v.lstrip("+-").isdigit(),
    "int_type": lambda v: isinstance(v, (bool, float)),  # a YAML integer enum given true or 1.0
}
# Error types that differ for the same fault: pydantic's name, then ours. A YAML integer enum, a
# Literal[1, 2] and an IntEnum have one schema but three names for a wrong value.
_SAME = {("decimal_type", "union_type"), ("enum", "literal_error"), ("literal_error", "enum"),
         ("literal_error", "int_type"), ("enum", "int_type")}


def _dotted_get(data: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def agrees(cls: EventClass, data: Any) -> None:
    """The checker finds a subset of the gateway's faults, at the same paths; the rest are documented misses."""
    mine = problems(SCHEMAS[cls.name], data)
    try:
        cls.validate(data)
        theirs = []
    except InvalidEventData as exc:
        theirs = exc.errors
    gateway = {e.path: e.type for e in theirs}
    local = {p.path: p.type for p in mine}
    assert set(local) <= set(gateway), (cls.name, data, mine, theirs)
    for path, error in gateway.items():
        if path in local:
            # int_parsing_size: pydantic's Literal and IntEnum cannot read integers past 64 bits at all.
            assert local[path] == error or (error, local[path]) in _SAME or error == "int_parsing_size", \
                (cls.name, data, mine, theirs)
        else:
            value = _dotted_get(data, path)
            assert error in _MISSES and _MISSES[error](value), (cls.name, data, mine, theirs)


@settings(max_examples=500, deadline=None)
@given(near_valid())
def test_agrees_with_the_gateway_on_near_valid_data(case: tuple[EventClass, Any]) -> None:
    agrees(*case)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CLASSES), JSON)
def test_agrees_with_the_gateway_on_any_json(cls: EventClass, data: Any) -> None:
    agrees(cls, data)


@pytest.mark.parametrize("name,data", [
    ("demo.order", {"order_id": 1, "amount": 9.5, "country": "AR", "tags": ["a"], "customer": {"id": 2, "name": "A"}}),
    ("demo.order", {"order_id": "1", "amount": True, "tags": [1], "customer": {"id": 2.0, "x": 1}, "coupon": 3}),
    ("test.schemacheck.python", {"amount": "9.50", "at": "2025-01-31T09:30:00Z", "day": "2025-01-31",
                                 "clock": "09:30", "ref": str(uuid.UUID(int=1)), "level": "low", "size": 1,
                                 "kind": "a", "code": True, "step": 1.5, "dozen": 24, "name": "x_1",
                                 "pair": [1, "a"], "numbers": [1, 1], "counts": {"a": 1}, "parts": [],
                                 "part": None}),
    ("test.schemacheck.python", {"amount": None, "at": "2025-01-31", "day": "2025-01-31T00:00:00", "clock": "9:30",
                                 "ref": "x", "level": "LOW", "size": 3, "kind": "c", "code": 3, "step": 0.25,
                                 "dozen": 13, "name": "a b", "pair": [1], "numbers": ["a"], "counts": {"a": "1"},
                                 "parts": [{"sku": "s", "qty": 0}] * 4, "part": {"sku": 1}}),
])
def test_agrees_on_chosen_cases(name: str, data: Any) -> None:
    agrees(GATEWAY.get(name) if name in GATEWAY else next(c for c in CLASSES if c.name == name), data)
