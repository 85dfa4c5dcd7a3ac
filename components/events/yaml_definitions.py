"""Event classes defined in YAML, for web-apps not written in Python.

A file has one key, ``events``, mapping event class names to definitions::

    events:
      demo.alert:
        description: An operational alert for staff.
        visibility: role:staff     # public (default) | authenticated | role:<name>
        retention: 1h              # default 24h; a whole number and s, m, h or d; > 0
        row_filter: null           # e.g. "user = $user": ANDed with every subscriber's query
        extra: forbid              # default; "allow" lets unknown data fields through
        fields:                    # required; {} for an event without data fields
          level: {type: string, enum: [info, warning, critical]}
          text: {type: string, min_length: 1, max_length: 500}
          count: {type: integer, minimum: 0, required: false}
          tags: {type: list, items: string}
          source: {type: object, fields: {host: string, pid: integer}}

A field is a type name (``text: string``) or a mapping with ``type`` and the
keys its type takes:

    every field  description; required (default true); default (makes it not required)
    string       enum, min_length, max_length, pattern (matched anywhere unless
                 anchored with ^...$; no look-around or back-references)
    integer      enum, minimum, maximum, exclusive_minimum, exclusive_maximum
    number       minimum, maximum, exclusive_minimum, exclusive_maximum
    boolean      -
    datetime     - (ISO 8601: 2025-01-31T09:30:00Z)
    date         - (ISO 8601: 2025-01-31)
    object       fields (required): nested fields, same form
    list         items (required): the elements' type, same form but without
                 required/default; min_items, max_items

A field that is not required may be left out or sent as null. ``extra``
applies to nested objects too. Field names are letters, digits and ``_``,
not starting with a digit.

Every mistake is refused with a DefinitionError that names the file, the class
and the field, says what is wrong and what is expected; unknown keys are
mistakes; YAML syntax errors and keys given twice name the line.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.events.eventclass import EventClass
from components.events.rules import RULE_KEYS, check_name, parse_rules
from components.events.yaml_fields import FieldSpecError, build_model, describe
from components.exceptions import DefinitionError

_CLASS_KEYS = ("description", *RULE_KEYS, "fields")


def parse_definitions(text: str, file: str) -> list[EventClass]:
    """The event classes a YAML definition file declares, in file order.

    ``file`` names the file in error messages and in each class's source
    (``file#name``).
    """
    document = _load(text, file)
    if not isinstance(document, dict):
        raise DefinitionError(f"{file}: expected a mapping with the key 'events', not {describe(document)}")
    for key in document:
        if key != "events":
            raise DefinitionError(f"{file}: unknown key {key!r} (expected: events)")
    if "events" not in document:
        raise DefinitionError(f"{file}: missing 'events', the mapping of event class names to definitions")
    events = document["events"] if document["events"] is not None else {}
    if not isinstance(events, dict):
        raise DefinitionError(
            f"{file}: 'events' must be a mapping of event class names to definitions, not {describe(events)}"
        )
    return [_event_class(name, spec, file) for name, spec in events.items()]


def _event_class(name: Any, spec: Any, file: str) -> EventClass:
    try:
        check_name(name)
    except DefinitionError as exc:
        raise DefinitionError(f"{file}: {exc}") from None
    where = f"{file}: class {name}"
    if not isinstance(spec, dict):
        raise DefinitionError(f"{where}: expected a mapping with 'fields' and the rules, not {describe(spec)}")
    for key in spec:
        if key not in _CLASS_KEYS:
            raise DefinitionError(f"{where}: unknown key {key!r} (expected one of: {', '.join(_CLASS_KEYS)})")
    if "fields" not in spec:
        raise DefinitionError(f"{where}: missing 'fields', the mapping of field names to types ({{}} for none)")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise DefinitionError(f"{where}: description must be text, not {describe(description)}")
    try:
        rules = parse_rules({k: spec[k] for k in RULE_KEYS if k in spec})
    except DefinitionError as exc:
        raise DefinitionError(f"{where}: {exc}") from None
    try:
        model = build_model(name, spec["fields"], (), rules.extra, name, description.strip() or None)
    except FieldSpecError as bad:
        field = f", field {'.'.join(bad.path)}" if bad.path else ""
        raise DefinitionError(f"{where}{field}: {bad.message}") from None
    return EventClass(name, description.strip(), rules.visibility, rules.retention, rules.row_filter,
                      model, f"{file}#{name}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor says so, with its line
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first at line {first + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _load(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DefinitionError(f"{file}: invalid YAML{at}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{file}: invalid YAML: {exc}") from None
