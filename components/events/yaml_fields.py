"""The fields of a YAML event definition, turned into a pydantic model.

``build_model`` takes the ``fields`` mapping of one class (the format is in
``yaml_definitions``) and returns a model whose validation, in strict JSON
mode, is what the YAML says. Pure: data in, a model class or
FieldSpecError out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticCustomError, PydanticSerializationError, SchemaError, to_json

from components.events.rules import Extra

TYPES = ("string", "integer", "number", "boolean", "datetime", "date", "object", "list")

FIELD_KEYS = ("type", "description", "required", "default")
ITEM_KEYS = ("type", "description")
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "string": ("enum", "min_length", "max_length", "pattern"),
    "integer": ("enum", "minimum", "maximum", "exclusive_minimum", "exclusive_maximum"),
    "number": ("minimum", "maximum", "exclusive_minimum", "exclusive_maximum"),
    "boolean": (),
    "datetime": (),
    "date": (),
    "object": ("fields",),
    "list": ("items", "min_items", "max_items"),
}
_SCALARS: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool,
                             "datetime": datetime, "date": date}
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusive_minimum": "gt", "exclusive_maximum": "lt"}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

FieldPath = tuple[str, ...]


class FieldSpecError(Exception):
    """A mistake in one field's definition, at ``path``; the caller adds the file and the class."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def build_model(model_name: str, fields: Any, path: FieldPath, extra: Extra, event: str,
                doc: str | None) -> type[BaseModel]:
    """A model for ``fields`` (at ``path`` in class ``event``) whose unknown fields follow ``extra``."""
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise FieldSpecError(path, f"'fields' must be a mapping of field names to types, not {describe(fields)}")
    definitions: dict[str, Any] = {}
    for index, (name, spec) in enumerate(fields.items()):
        if not isinstance(name, str):
            raise FieldSpecError((*path, str(name)), f"a field name must be text, not {describe(name)}; quote it "
                                                     "in YAML (unquoted on, off, yes, no and numbers are not text)")
        if not _FIELD_NAME.match(name):
            raise FieldSpecError((*path, name), "a field name is letters, digits and _, not starting with a digit")
        # The Python attribute is f<index> and the field's name its alias, so
        # any name works, even one a BaseModel attribute already has (json, copy).
        definitions[f"f{index}"] = _field(spec, (*path, name), extra, event)
    model: type[BaseModel] = create_model(
        model_name,
        __config__=ConfigDict(extra=extra, allow_inf_nan=False),
        __doc__=doc,
        __module__=__name__,
        **definitions,
    )
    return model


def _field(raw: Any, path: FieldPath, extra: Extra, event: str) -> tuple[Any, Any]:
    spec = _spec(raw, path, FIELD_KEYS, "field")
    required = spec.get("required", "default" not in spec)
    if not isinstance(required, bool):
        raise FieldSpecError(path, f"'required' must be true or false, not {describe(required)}")
    if required and "default" in spec:
        raise FieldSpecError(path, "a field with a default is not required; remove 'required: true' or the default")
    annotation = _type(spec, path, extra, event)
    description = _description(spec, path)
    if required:
        return annotation, Field(alias=path[-1], description=description)
    default = _default(annotation, spec["default"], path) if "default" in spec else None
    return annotation | None, Field(default, alias=path[-1], description=description)


def _spec(raw: Any, path: FieldPath, common: tuple[str, ...], role: str) -> dict[Any, Any]:
    spec = {"type": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, dict):
        raise FieldSpecError(path, f"expected a type name or a mapping with 'type', not {describe(raw)}")
    if "type" not in spec:
        raise FieldSpecError(path, f"missing 'type' (expected one of: {', '.join(TYPES)})")
    kind = spec["type"]
    if kind not in TYPES:
        raise FieldSpecError(path, f"unknown type {kind!r} (expected one of: {', '.join(TYPES)})")
    allowed = common + TYPE_KEYS[kind]
    for key in spec:
        if key not in allowed:
            article = "an" if kind[0] in "aeiou" else "a"
            raise FieldSpecError(path, f"unknown key {key!r} for {article} {kind} {role} "
                                       f"(expected one of: {', '.join(allowed)})")
    return spec


def _type(spec: dict[Any, Any], path: FieldPath, extra: Extra, event: str) -> Any:
    kind: str = spec["type"]
    if kind == "object":
        if "fields" not in spec:
            raise FieldSpecError(path, "an object needs 'fields': its field names and types")
        return build_model(f"{event}.{'.'.join(path)}", spec["fields"], path, extra, event, None)
    if kind == "list":
        if "items" not in spec:
            raise FieldSpecError(path, "a list needs 'items': the type of its elements, e.g. items: string")
        item_path = (*path, "items")
        item_spec = _spec(spec["items"], item_path, ITEM_KEYS, "list item")
        item = _type(item_spec, item_path, extra, event)
        item_description = _description(item_spec, item_path)
        if item_description is not None:
            item = Annotated[item, Field(description=item_description)]
        low, high = _count(spec, "min_items", path), _count(spec, "max_items", path)
        _in_order(low, high, "min_items", "max_items", path)
        return _constrained(list[item], min_length=low, max_length=high)  # type: ignore[valid-type]
    if "enum" in spec:
        return _enum(spec, kind, path)
    if kind == "string":
        low, high = _count(spec, "min_length", path), _count(spec, "max_length", path)
        _in_order(low, high, "min_length", "max_length", path)
        return _constrained(str, min_length=low, max_length=high, pattern=_pattern(spec, path))
    if kind in ("integer", "number"):
        return _constrained(_SCALARS[kind], **_bounds(spec, kind, path))
    return _SCALARS[kind]


def _enum(spec: dict[Any, Any], kind: str, path: FieldPath) -> Any:
    others = [k for k in TYPE_KEYS[kind] if k in spec and k != "enum"]
    if others:
        raise FieldSpecError(path, f"'enum' lists every allowed value; it cannot be combined with '{others[0]}'")
    values = spec["enum"]
    if not isinstance(values, list) or not values:
        raise FieldSpecError(path, f"'enum' must be a non-empty list of {kind} values")
    want = str if kind == "string" else int
    for value in values:
        if not isinstance(value, want) or isinstance(value, bool):
            wanted = "a string (quote it in YAML to make it text)" if kind == "string" else "an integer"
            raise FieldSpecError(path, f"enum value {value!r} is not {wanted}")
        if values.count(value) > 1:
            raise FieldSpecError(path, f"enum value {value!r} is listed twice")
    if kind == "string":
        return Literal[tuple(values)]
    # Literal[1, 2] would also take true and 1.0 (they equal 1 in Python);
    # a strict int checked against the list takes only integers.
    return Annotated[int, AfterValidator(_one_of(tuple(values))), Field(json_schema_extra={"enum": values})]


def _one_of(values: tuple[int, ...]) -> Callable[[int], int]:
    expected = ", ".join(map(str, values[:-1])) + (" or " if len(values) > 1 else "") + str(values[-1])

    def check(value: int) -> int:
        if value not in values:
            raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
        return value

    return check


def _bounds(spec: dict[Any, Any], kind: str, path: FieldPath) -> dict[str, Any]:
    found: dict[str, int | float] = {}
    for key in _BOUNDS:
        if key in spec:
            value = spec[key]
            ok = isinstance(value, int) if kind == "integer" else isinstance(value, (int, float))
            if not ok or isinstance(value, bool) or not math.isfinite(value):
                wanted = "an integer" if kind == "integer" else "a number"
                raise FieldSpecError(path, f"{key} must be {wanted}, not {describe(value)}")
            found[key] = value
    for low in ("minimum", "exclusive_minimum"):
        for high in ("maximum", "exclusive_maximum"):
            if low in found and high in found:
                exclusive = low.startswith("exclusive") or high.startswith("exclusive")
                if found[low] > found[high] or (exclusive and found[low] == found[high]):
                    raise FieldSpecError(path, f"{low} {found[low]} and {high} {found[high]} leave no value allowed")
    return {_BOUNDS[key]: value for key, value in found.items()}


def _count(spec: dict[Any, Any], key: str, path: FieldPath) -> int | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise FieldSpecError(path, f"{key} must be a whole number, 0 or more, not {value!r}")
    return value


def _in_order(low: int | None, high: int | None, low_key: str, high_key: str, path: FieldPath) -> None:
    if low is not None and high is not None and low > high:
        raise FieldSpecError(path, f"{low_key} {low} is more than {high_key} {high}")


def _pattern(spec: dict[Any, Any], path: FieldPath) -> str | None:
    pattern = spec.get("pattern")
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise FieldSpecError(path, f"pattern must be a regular expression as text, not {describe(pattern)}")
    try:
        TypeAdapter(Annotated[str, Field(pattern=pattern)])
    except SchemaError as exc:
        # pydantic's regex engine has no look-around or back-references; say which part it refused.
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip().startswith("error:")), str(exc))
        raise FieldSpecError(path, f"pattern {pattern!r} is not a supported regular expression ({reason})") from None
    return pattern


def _description(spec: dict[Any, Any], path: FieldPath) -> str | None:
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise FieldSpecError(path, f"description must be text, not {describe(description)}")
    return description


def _default(annotation: Any, value: Any, path: FieldPath) -> Any:
    if value is None:
        return None
    try:
        # The same reading as event data gets, so a default is a value a web-app could send.
        return TypeAdapter(annotation).validate_json(to_json(value), strict=True)
    except (ValidationError, PydanticSerializationError) as exc:
        reason = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise FieldSpecError(path, f"default {value!r} is not a valid value: {reason}") from None


def _constrained(base: Any, **constraints: Any) -> Any:
    given = {k: v for k, v in constraints.items() if v is not None}
    return Annotated[base, Field(**given)] if given else base


def describe(value: Any) -> str:
    """A value as a YAML writer sees it: 'a list', \"text ('x')\", 'true/false (True)'."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} ({value})"
