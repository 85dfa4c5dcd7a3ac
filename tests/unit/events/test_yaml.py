"""Event classes defined in YAML: every type, every constraint, every way a file can be wrong."""

import re
from datetime import timedelta
from textwrap import dedent
from typing import Any

import pytest
import yaml

from components.events import EventClass, InvalidEventData
from components.events.yaml_definitions import parse_definitions
from components.exceptions import DefinitionError

FILE = "examples/x.yaml"

ALERT = """
events:
  demo.alert:
    description: An operational alert for staff.
    visibility: role:staff
    retention: 1h
    row_filter: "team = 'ops'"
    extra: forbid
    fields:
      level: {type: string, enum: [info, warning, critical]}
      text: {type: string, min_length: 1, max_length: 500}
      count: {type: integer, minimum: 0, required: false}
      tags: {type: list, items: {type: string}}
      source: {type: object, fields: {host: {type: string}, pid: {type: integer}}}
"""


def one(fields: dict[str, Any], **rules: Any) -> EventClass:
    """The class of a file holding one class, ``t.e``, with these fields and rules."""
    [cls] = parse_definitions(yaml.safe_dump({"events": {"t.e": {**rules, "fields": fields}}}), FILE)
    return cls


def field(spec: Any) -> EventClass:
    return one({"f": spec})


def refused(cls: EventClass, data: Any) -> dict[str, str]:
    with pytest.raises(InvalidEventData) as exc:
        cls.validate(data)
    return {e.path: e.type for e in exc.value.errors}


def definition_error(text: str) -> str:
    with pytest.raises(DefinitionError) as exc:
        parse_definitions(dedent(text), FILE)
    return str(exc.value)


def test_the_sketch_loads_with_its_rules() -> None:
    [cls] = parse_definitions(ALERT, FILE)
    assert (cls.name, cls.description, cls.visibility, cls.retention, cls.row_filter, cls.source) == (
        "demo.alert", "An operational alert for staff.", "role:staff", timedelta(hours=1), "team = 'ops'",
        "examples/x.yaml#demo.alert")
    good = {"level": "info", "text": "disk", "tags": ["a"], "source": {"host": "h", "pid": 1}}
    assert cls.validate(good) == good
    assert cls.validate({**good, "count": 3})["count"] == 3
    assert refused(cls, {**good, "level": "fatal", "text": "", "count": -1, "source": {"host": "h"}}) == {
        "level": "literal_error", "text": "string_too_short", "count": "greater_than_equal",
        "source.pid": "missing"}


def test_rules_have_defaults_and_classes_keep_file_order() -> None:
    classes = parse_definitions("events:\n  b.two: {fields: {}}\n  a.one: {fields: {x: string}}\n", FILE)
    assert [c.name for c in classes] == ["b.two", "a.one"]
    assert (classes[0].visibility, classes[0].retention, classes[0].row_filter, classes[0].description) == (
        "public", timedelta(hours=24), None, "")
    assert classes[0].validate({}) == {}
    assert parse_definitions("events:\n", FILE) == [] and parse_definitions("events: {}", FILE) == []


@pytest.mark.parametrize("spec,good,bad", [
    ("string", ["", "x"], [1, None, True, []]),
    ("integer", [0, -5, 2**63 - 1, -2**63], ["1", 1.5, 1.0, True, None, 2**63, 10**30]),
    ("number", [0, 1.5, -2], ["1.5", True, None]),
    ("boolean", [True, False], [0, "true", None]),
    ("datetime", ["2025-01-31T09:30:00Z", "2025-01-31T09:30:00+02:00"], ["2025-01-31", "yesterday", 1700000000]),
    ("date", ["2025-01-31"], ["31/01/2025", "2025-13-01", 20250131]),
    ({"type": "list", "items": "integer"}, [[], [1, 2]], [[1, "2"], "1", {"0": 1}]),
    ({"type": "object", "fields": {"a": "string"}}, [{"a": "x"}], [{"a": 1}, {}, {"a": "x", "b": 1}, ["x"]]),
])
def test_each_type(spec: Any, good: list[Any], bad: list[Any]) -> None:
    cls = field(spec)
    for value in good:
        assert cls.validate({"f": value}) is not None
    for value in bad:
        assert refused(cls, {"f": value}), value


def test_types_come_back_as_json() -> None:
    cls = one({"n": "number", "t": "datetime", "d": "date"})
    assert cls.validate({"n": 2, "t": "2025-01-31T09:30:00.000+00:00", "d": "2025-01-31"}) == {
        "n": 2.0, "t": "2025-01-31T09:30:00Z", "d": "2025-01-31"}


@pytest.mark.parametrize("spec,good,bad", [
    ({"type": "string", "enum": ["a", "b"]}, ["a", "b"], ["c", "A", 1]),
    ({"type": "integer", "enum": [1, 2]}, [1, 2], [3, True, 1.0, "1"]),
    ({"type": "string", "min_length": 2, "max_length": 3}, ["ab", "abc"], ["a", "abcd"]),
    ({"type": "string", "pattern": "^[A-Z]{2}$"}, ["AR"], ["ar", "ARG"]),
    ({"type": "string", "pattern": "[0-9]"}, ["a1b"], ["ab"]),
    ({"type": "integer", "minimum": 1, "maximum": 3}, [1, 3], [0, 4]),
    ({"type": "integer", "exclusive_minimum": 1, "exclusive_maximum": 3}, [2], [1, 3]),
    ({"type": "number", "minimum": 0.5, "exclusive_maximum": 1}, [0.5, 0.99], [0.4, 1]),
    ({"type": "list", "items": "string", "min_items": 1, "max_items": 2}, [["a"], ["a", "b"]], [[], ["a", "b", "c"]]),
    ({"type": "list", "items": {"type": "string", "max_length": 1}}, [["a"]], [["ab"]]),
    ({"type": "list", "items": {"type": "list", "items": "integer"}}, [[[1], []]], [[[1, "x"]]]),
    ({"type": "list", "items": {"type": "object", "fields": {"sku": "string"}}}, [[{"sku": "x"}]], [[{"sku": 1}]]),
])
def test_each_constraint(spec: dict[str, Any], good: list[Any], bad: list[Any]) -> None:
    cls = field(spec)
    for value in good:
        assert cls.validate({"f": value}) == {"f": value}
    for value in bad:
        assert refused(cls, {"f": value}), value


def test_constraints_are_in_the_json_schema() -> None:
    schema = one({
        "s": {"type": "string", "enum": ["a", "b"], "description": "which"},
        "i": {"type": "integer", "enum": [1, 2]},
        "n": {"type": "number", "minimum": 0, "exclusive_maximum": 1},
        "l": {"type": "list", "items": {"type": "string", "description": "a tag"}, "max_items": 3},
        "o": {"type": "object", "fields": {"x": "integer"}},
    }, description="Tagged.").json_schema()
    props = schema["properties"]
    assert schema["description"] == "Tagged." and schema["additionalProperties"] is False
    assert props["s"]["enum"] == ["a", "b"] and props["s"]["description"] == "which"
    # Every integer says the range events carry (signed 64 bits).
    assert props["i"] == {"enum": [1, 2], "title": "I", "type": "integer", "format": "int64",
                          "minimum": -2**63, "maximum": 2**63 - 1}
    assert (props["n"]["minimum"], props["n"]["exclusiveMaximum"]) == (0, 1)
    assert props["l"]["maxItems"] == 3 and props["l"]["items"]["description"] == "a tag"
    [nested] = schema["$defs"].values()
    assert nested["additionalProperties"] is False and nested["required"] == ["x"]
    assert sorted(schema["required"]) == ["i", "l", "n", "o", "s"]


def test_optional_fields_may_be_left_out_or_null_and_defaults_are_checked() -> None:
    cls = one({"a": {"type": "integer", "required": False},
               "b": {"type": "string", "default": "x"},
               "c": {"type": "date", "default": "2025-01-31"},
               "d": {"type": "integer", "required": True}})
    assert cls.validate({"d": 1}) == {"d": 1}  # defaults are not filled in: the data goes on as sent
    assert cls.validate({"d": 1, "a": None, "b": None}) == {"d": 1, "a": None, "b": None}
    props = cls.json_schema()["properties"]
    assert (props["b"]["default"], props["c"]["default"]) == ("x", "2025-01-31")
    assert cls.json_schema()["required"] == ["d"]


def test_field_names_that_pydantic_reserves_work() -> None:
    cls = one({"json": "string", "model_config": "integer", "copy": "boolean", "_private": "string",
               "camelCase": "string"})
    data = {"json": "x", "model_config": 1, "copy": True, "_private": "p", "camelCase": "c"}
    assert cls.validate(data) == data
    assert set(cls.json_schema()["properties"]) == set(data)
    assert refused(cls, {**data, "f0": "x"}) == {"f0": "extra_forbidden"}


def test_extra_allow_lets_unknown_fields_through_everywhere() -> None:
    cls = one({"o": {"type": "object", "fields": {"x": "integer"}}}, extra="allow")
    assert cls.validate({"o": {"x": 1, "y": 2}, "z": 3}) == {"o": {"x": 1, "y": 2}, "z": 3}
    schema = cls.json_schema()
    assert schema["additionalProperties"] is True
    assert [d["additionalProperties"] for d in schema["$defs"].values()] == [True]


# -- mistakes: each names the file, the class and the field -------------------------------------------------

@pytest.mark.parametrize("fields,message", [
    ("level: {type: strng}",
     "class demo.alert, field level: unknown type 'strng' (expected one of: string, integer, number, boolean, "
     "datetime, date, object, list)"),
    ("level: strng", "class demo.alert, field level: unknown type 'strng'"),
    ("level: {enum: [a]}", "class demo.alert, field level: missing 'type' (expected one of: string,"),
    ("level: {type: string, min_lenght: 1}",
     "class demo.alert, field level: unknown key 'min_lenght' for a string field (expected one of: type, "
     "description, required, default, enum, min_length, max_length, pattern)"),
    ("count: {type: integer, min_length: 1}", "field count: unknown key 'min_length' for an integer field"),
    ("ok: {type: boolean, enum: [true]}", "field ok: unknown key 'enum'"),
    ("level: 3", "field level: expected a type name or a mapping with 'type', not a number (3)"),
    ("level: [string]", "field level: expected a type name or a mapping with 'type', not a list"),
    ("level: {type: string, enum: []}", "field level: 'enum' must be a non-empty list of string values"),
    ("level: {type: string, enum: info}", "field level: 'enum' must be a non-empty list"),
    ("level: {type: string, enum: [yes, no]}", "field level: enum value True is not a string (quote it in YAML"),
    ("level: {type: integer, enum: [1, '2']}", "field level: enum value '2' is not an integer"),
    ("level: {type: string, enum: [a, a]}", "field level: enum value 'a' is listed twice"),
    ("level: {type: string, enum: [a], min_length: 1}",
     "field level: 'enum' lists every allowed value; it cannot be combined with 'min_length'"),
    ("level: {type: number, enum: [1.5]}", "field level: unknown key 'enum'"),
    ("text: {type: string, min_length: -1}", "field text: min_length must be a whole number, 0 or more, not -1"),
    ("text: {type: string, max_length: '5'}", "field text: max_length must be a whole number, 0 or more, not '5'"),
    ("text: {type: string, min_length: 5, max_length: 1}", "field text: min_length 5 is more than max_length 1"),
    ("text: {type: string, pattern: '(?=a)a'}",
     "field text: pattern '(?=a)a' is not a supported regular expression (error: look-around"),
    ("text: {type: string, pattern: '['}", "field text: pattern '[' is not a supported regular expression"),
    ("text: {type: string, pattern: 5}", "field text: pattern must be a regular expression as text"),
    ("count: {type: integer, minimum: 0.5}", "field count: minimum must be an integer, not a number (0.5)"),
    ("count: {type: number, maximum: x}", "field count: maximum must be a number, not text ('x')"),
    ("count: {type: number, maximum: .nan}", "field count: maximum must be a number"),
    ("count: {type: integer, minimum: 5, maximum: 1}", "field count: minimum 5 and maximum 1 leave no value allowed"),
    ("count: {type: integer, exclusive_minimum: 1, maximum: 1}",
     "field count: exclusive_minimum 1 and maximum 1 leave no value allowed"),
    ("count: {type: integer, required: 'no'}", "field count: 'required' must be true or false, not text ('no')"),
    ("count: {type: integer, required: true, default: 1}",
     "field count: a field with a default is not required; remove 'required: true' or the default"),
    ("count: {type: integer, default: x}", "field count: default 'x' is not a valid value: Input should be a valid"),
    ("count: {type: integer, minimum: 1, default: 0}", "field count: default 0 is not a valid value"),
    ("count: {type: integer, description: 5}", "field count: description must be text"),
    ("tags: {type: list}", "field tags: a list needs 'items': the type of its elements, e.g. items: string"),
    ("tags: {type: list, items: strng}", "field tags.items: unknown type 'strng'"),
    ("tags: {type: list, items: {type: string, required: false}}",
     "field tags.items: unknown key 'required' for a string list item (expected one of: type, description, "
     "enum, min_length, max_length, pattern)"),
    ("tags: {type: list, items: string, min_items: 3, max_items: 2}",
     "field tags: min_items 3 is more than max_items 2"),
    ("source: {type: object}", "field source: an object needs 'fields': its field names and types"),
    ("source: {type: object, fields: [host]}",
     "field source: 'fields' must be a mapping of field names to types, not a list"),
    ("source: {type: object, fields: {host: strng}}", "field source.host: unknown type 'strng'"),
    ("source: {type: object, fields: {host: {type: object, fields: {port: {type: integer, minimum: z}}}}}",
     "field source.host.port: minimum must be an integer"),
    ("2nd: string", "field 2nd: a field name is letters, digits and _, not starting with a digit"),
    ("my-field: string", "field my-field: a field name is letters"),
    ("on: string", "field True: a field name must be text, not true/false (True); quote it in YAML"),
])
def test_field_mistakes_name_file_class_and_field(fields: str, message: str) -> None:
    text = f"events:\n  demo.alert:\n    fields:\n      {fields}\n"
    expected = message if message.startswith("class") else f"class demo.alert, {message}"
    assert definition_error(text).startswith(f"{FILE}: {expected}"), definition_error(text)


@pytest.mark.parametrize("text,message", [
    ("", "examples/x.yaml: expected a mapping with the key 'events', not nothing (null)"),
    ("- a\n", "examples/x.yaml: expected a mapping with the key 'events', not a list"),
    ("events: {}\nclasses: {}\n", "examples/x.yaml: unknown key 'classes' (expected: events)"),
    ("version: 1\n", "examples/x.yaml: unknown key 'version'"),
    ("{}", "examples/x.yaml: missing 'events', the mapping of event class names to definitions"),
    ("events: [demo.alert]\n", "examples/x.yaml: 'events' must be a mapping of event class names to definitions, "
                               "not a list"),
    ("events:\n  Demo.Alert: {fields: {}}\n",
     "examples/x.yaml: event class name 'Demo.Alert' must be dotted lower-case segments"),
    ("events:\n  alert: {fields: {}}\n", "examples/x.yaml: event class name 'alert' must be dotted lower-case"),
    ("events:\n  demo.alert: string\n",
     "examples/x.yaml: class demo.alert: expected a mapping with 'fields' and the rules, not text ('string')"),
    ("events:\n  demo.alert: {}\n",
     "examples/x.yaml: class demo.alert: missing 'fields', the mapping of field names to types ({} for none)"),
    ("events:\n  demo.alert: {fields: {}, visiblity: public}\n",
     "examples/x.yaml: class demo.alert: unknown key 'visiblity' (expected one of: description, visibility, "
     "retention, row_filter, extra, fields)"),
    ("events:\n  demo.alert: {fields: {}, visibility: staff}\n",
     "examples/x.yaml: class demo.alert: visibility 'staff' must be 'public', 'authenticated' or 'role:<name>'"),
    ("events:\n  demo.alert: {fields: {}, retention: 0s}\n",
     "examples/x.yaml: class demo.alert: retention '0s' must be more than zero"),
    ("events:\n  demo.alert: {fields: {}, retention: 3600}\n",
     "examples/x.yaml: class demo.alert: retention 3600 must be a whole number and a unit"),
    ("events:\n  demo.alert: {fields: {}, extra: ignore}\n",
     "examples/x.yaml: class demo.alert: extra 'ignore' must be 'forbid' or 'allow'"),
    ("events:\n  demo.alert: {fields: {}, row_filter: [a]}\n",
     "examples/x.yaml: class demo.alert: row_filter ['a'] must be a string or absent"),
    ("events:\n  demo.alert: {fields: {}, description: [a]}\n",
     "examples/x.yaml: class demo.alert: description must be text, not a list"),
    ("events:\n  demo.alert: {fields: string}\n",
     "examples/x.yaml: class demo.alert: 'fields' must be a mapping of field names to types, not text"),
])
def test_file_and_class_mistakes(text: str, message: str) -> None:
    assert definition_error(text) == message or definition_error(text).startswith(message), definition_error(text)


def test_yaml_syntax_errors_give_file_and_line() -> None:
    text = """\
        events:
          demo.alert:
            fields:
              level: {type: string
              text: string
        """
    assert re.match(r"^examples/x\.yaml: invalid YAML at line 5, column \d+: ", definition_error(text))
    assert re.match(r"^examples/x\.yaml: invalid YAML at line 2, column 1: found character '\\t'",
                    definition_error("events:\n\tdemo.alert: {}\n"))


def test_a_key_given_twice_is_refused_with_both_lines() -> None:
    classes_twice = """\
        events:
          demo.alert: {fields: {}}
          demo.alert: {fields: {x: string}}
        """
    assert definition_error(classes_twice) == (
        "examples/x.yaml: invalid YAML at line 3, column 3: key 'demo.alert' is given twice (first at line 2)")
    field_twice = "events:\n  demo.alert:\n    fields: {level: string, level: integer}\n"
    assert "line 3, column 29: key 'level' is given twice (first at line 3)" in definition_error(field_twice)
