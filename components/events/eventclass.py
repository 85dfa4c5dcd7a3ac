"""A loaded event class: its name, rules and payload model, and how data is checked against it.

Whether it came from a Python ``Event`` subclass or from a YAML file, an event
class ends up as one EventClass. ``validate`` is on every event's path, so it
does the least work that gives the documented semantics (see its docstring).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, SchemaSerializer, to_json

from components.events.rules import VISIBILITY, Extra, check_name, visible_to
from components.events.validation import InvalidEventData, field_errors, not_json
from components.exceptions import DefinitionError
from components.limits import INT64_MAX, INT64_MIN, number_problems


@dataclass(frozen=True)
class EventClass:
    """A kind of event: its name, its payload model and who may see it.

    ``source`` says where it was defined: ``module:Class`` for Python,
    ``file#name`` for YAML. Unknown fields are refused unless the model's
    config says ``extra="allow"``; that one rule covers nested objects too.
    """

    name: str
    description: str
    visibility: str
    retention: timedelta
    row_filter: str | None
    model: type[BaseModel]
    source: str
    _extra: Extra = field(init=False, repr=False, compare=False)
    _schema: dict[str, Any] = field(init=False, repr=False, compare=False)
    # pydantic types the validator as a union with a private plugin class.
    _validator: Any = field(init=False, repr=False, compare=False)
    _serializer: SchemaSerializer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = self.source or self.name
        try:
            check_name(self.name)
        except DefinitionError as exc:
            raise DefinitionError(f"{where}: {exc}") from None
        if not VISIBILITY.match(self.visibility):
            raise DefinitionError(
                f"{where}: visibility {self.visibility!r} must be 'public', 'authenticated' or 'role:<name>'"
            )
        if self.retention.total_seconds() < 1:
            raise DefinitionError(f"{where}: retention {self.retention} must be at least one second")
        if not (isinstance(self.model, type) and issubclass(self.model, BaseModel)):
            raise DefinitionError(f"{where}: the model must be a pydantic model class, not {self.model!r}")
        allow = self.model.model_config.get("extra") == "allow"
        object.__setattr__(self, "_extra", "allow" if allow else "forbid")
        try:
            schema = self.model.model_json_schema()
        except Exception as exc:  # any type pydantic cannot describe is a broken definition
            reason = str(exc).split("\n")[0]  # without pydantic's doc link
            raise DefinitionError(f"{where}: no JSON Schema for this class: {reason}") from exc
        _mark_extra(schema, self._extra == "allow")
        _mark_int64(schema)
        object.__setattr__(self, "_schema", schema)
        # Taken once the model is complete (making the schema completed it).
        object.__setattr__(self, "_validator", self.model.__pydantic_validator__)
        object.__setattr__(self, "_serializer", self.model.__pydantic_serializer__)

    def validate(self, data: Any) -> dict[str, Any]:
        """Return the validated data, JSON-ready, or raise InvalidEventData listing every bad field.

        ``data`` is read as JSON (what json.loads gave): ``"42"``, ``1.5`` and
        ``true`` are not integers; numbers are fine for float and Decimal
        fields, ISO-8601 strings for datetime and date, strings for enums.
        Fields left out stay out of the result (defaults are not filled in);
        datetimes and dates come back as ISO-8601 strings, Decimals as
        strings (exact digits).
        """
        try:
            text = to_json(data)
        except PydanticSerializationError as exc:
            raise InvalidEventData(self.name, [not_json(str(exc))]) from None
        # to_json writes NaN and Infinity as bare tokens that validate_json
        # would take as floats, and pydantic takes integers of any size; events
        # carry neither (components.limits). They are rare, so look for them only
        # when the text might hold one (a string like "NaN" also triggers the look).
        if text.find(b"NaN") >= 0 or text.find(b"Infinity") >= 0 or _LONG_NUMBER.search(text):
            bad = number_problems(data, limit=None)
            if bad:
                raise InvalidEventData(self.name, bad)
        try:
            # Strict JSON mode is exactly the semantics above; checking the JSON
            # text (not the Python values) is what makes it so.
            instance = self._validator.validate_json(text, strict=True, extra=self._extra)
        except ValidationError as exc:
            raise InvalidEventData(self.name, field_errors(exc)) from None
        result: dict[str, Any] = self._serializer.to_python(
            instance, mode="json", exclude_unset=True, by_alias=True
        )
        return result

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of the data; a copy, so callers may change it."""
        return copy.deepcopy(self._schema)

    def visible_to(self, authrole: str, roles: Collection[str] = ()) -> bool:
        """Whether a caller with ``authrole`` (and extra ``roles``) may see this class."""
        return visible_to(self.visibility, authrole, roles)

    def catalog_entry(self) -> dict[str, Any]:
        """What the catalog says about this class (retention in seconds)."""
        return {
            "name": self.name,
            "description": self.description,
            "visibility": self.visibility,
            "retention": int(self.retention.total_seconds()),
            "schema": self.json_schema(),
        }


# Schema keywords whose values are data, not schemas: never rewrite those.
_VALUES = frozenset({"default", "examples", "enum", "const"})
#: 19 digits: the shortest integer outside the signed 64-bit range has as many.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _mark_int64(schema: Any) -> None:
    """Make every integer schema say the range events carry: ``format: int64`` (OpenAPI's word for
    it) and ``minimum``/``maximum`` within the signed 64-bit range, unless the class's own are tighter."""
    if isinstance(schema, dict):
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
        if "integer" in kinds and "number" not in kinds:
            schema.setdefault("format", "int64")
            for key, exclusive, bound, tighter in (("minimum", "exclusiveMinimum", INT64_MIN, max),
                                                   ("maximum", "exclusiveMaximum", INT64_MAX, min)):
                own = schema.get(key)
                if isinstance(own, (int, float)) and not isinstance(own, bool):
                    schema[key] = tighter(own, bound)
                elif exclusive not in schema:
                    schema[key] = bound
        for key, value in schema.items():
            if key not in _VALUES:
                _mark_int64(value)
    elif isinstance(schema, list):
        for value in schema:
            _mark_int64(value)


def _mark_extra(schema: Any, allow: bool) -> None:
    """Make every object schema with properties say whether unknown properties pass.

    Validation applies the class's rule to nested models too, whatever their
    own config, so their schemas must say the same.
    """
    if isinstance(schema, dict):
        if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
            schema["additionalProperties"] = allow
        for key, value in schema.items():
            if key not in _VALUES:
                _mark_extra(value, allow)
    elif isinstance(schema, list):
        for value in schema:
            _mark_extra(value, allow)
