"""The reference meaning of a query: a direct walk of the tree, slow and plain.

The compiled matcher (``compile.py``) and the index (``index.py``) are the
fast paths; property tests hold both to this module, so this one is written
to be read, not to be quick.

Semantics, over JSON values (dict, list, str, int, float, bool, None):

* A selector matches the event's class name segment by segment (split on
  ``.``): a literal segment matches itself, ``*`` exactly one segment, ``**``
  zero or more segments, wherever it stands: ``demo.**`` matches ``demo``,
  ``demo.x`` and ``demo.x.y`` (a subtree, like MQTT's ``demo/#``);
  ``a.**.b`` matches ``a.b``. ``*`` and ``**`` are wildcards only as whole
  segments. (``components.query.selectors``, which the canonical form uses
  to drop redundant selectors, reads ``**`` the same way.)
* A query without ``where`` matches every event of its selected classes.
* A path walks nested objects; if a segment is absent or the value on the
  way is not an object, the field is *missing*.
* A comparison on a missing field, or between values of different kinds, is
  false -- ``!=`` included; ``not`` of a false comparison is true.
  The kinds are null, bool, number (int or float: 1 = 1.0), string, and
  anything else (list, object), which equals nothing. bool is not a number:
  ``true = 1`` and ``true < 2`` are false.
* ``= null`` is true for a present null; ``!= null`` for a present non-null
  value of any kind.
* ``< <= > >=`` order numbers numerically and strings by code point; for any
  other kind (bool, null) they are false.
* ``in [..]`` is true when ``=`` is true for one of the values (never for ``[]``).
* ``contains v``: a list field holding an element ``= v``, or a string field
  holding ``v`` as a substring (``v`` a string).
* ``startswith p``: a string field and a string prefix.
* ``exists``: present and not null.
* An empty ``and`` is true, an empty ``or`` false (the parser never makes
  either).
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["evaluate", "evaluate_where", "selector_matches"]


class _Missing:
    """What a path yields when the field is not there."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def selector_matches(pattern: str, event_name: str) -> bool:
    """Whether one selector pattern matches an event class name."""
    return _segments_match(tuple(pattern.split(".")), tuple(event_name.split(".")))


def _segments_match(pattern: tuple[str, ...], name: tuple[str, ...]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_segments_match(rest, name[skip:]) for skip in range(len(name) + 1))
    if not name:
        return False
    return (head == "*" or head == name[0]) and _segments_match(rest, name[1:])


def evaluate(query: Query, event_name: str, data: dict[str, Any]) -> bool:
    """Whether the event (class name and data) matches the query."""
    if not any(selector_matches(pattern, event_name) for pattern in query.selectors):
        return False
    return query.where is None or evaluate_where(query.where, data)


def evaluate_where(expr: Expr, data: dict[str, Any]) -> bool:
    """Whether the event data satisfies a condition."""
    if isinstance(expr, Compare):
        return _compare(expr.op, resolve(data, expr.path), expr.value)
    if isinstance(expr, In):
        field = resolve(data, expr.path)
        return any(_equal(field, value) for value in expr.values)
    if isinstance(expr, Contains):
        field = resolve(data, expr.path)
        if isinstance(field, list):
            return any(_equal(element, expr.value) for element in field)
        if isinstance(field, str) and isinstance(expr.value, str):
            return expr.value in field
        return False
    if isinstance(expr, StartsWith):
        field = resolve(data, expr.path)
        return isinstance(field, str) and isinstance(expr.value, str) and field.startswith(expr.value)
    if isinstance(expr, Exists):
        field = resolve(data, expr.path)
        return field is not MISSING and field is not None
    if isinstance(expr, Not):
        return not evaluate_where(expr.operand, data)
    if isinstance(expr, And):
        return all(evaluate_where(operand, data) for operand in expr.operands)
    if isinstance(expr, Or):
        return any(evaluate_where(operand, data) for operand in expr.operands)
    raise TypeError(f"not a query expression: {expr!r}")


def resolve(data: Any, path: Path) -> Any:
    """The value at a path, or ``MISSING``."""
    value = data
    for segment in path:
        if not isinstance(value, dict) or segment not in value:
            return MISSING
        value = value[segment]
    return value


def kind(value: Any) -> str:
    """The kind a value compares as: null, bool, number, string or other."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(field: Any, value: Literal) -> bool:
    if field is MISSING or kind(field) != kind(value) or kind(field) == "other":
        return False
    return bool(field == value)


def _compare(op: str, field: Any, value: Literal) -> bool:
    if field is MISSING:
        return False
    if op == "=":
        return _equal(field, value)
    if op == "!=":
        if value is None:
            return field is not None
        return kind(field) == kind(value) and not _equal(field, value)
    if kind(field) != kind(value) or kind(field) not in ("number", "string"):
        return False
    if op == "<":
        return bool(field < value)
    if op == "<=":
        return bool(field <= value)
    if op == ">":
        return bool(field > value)
    if op == ">=":
        return bool(field >= value)
    raise ValueError(f"not a comparison operator: {op!r}")
