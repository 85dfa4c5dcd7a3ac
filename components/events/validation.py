"""What is wrong with an event's data, field by field.

Turns pydantic's errors into FieldError values whose paths are relative to
the data (``customer.name``, ``tags.1``; the empty path is the data itself)
and whose messages a web developer can act on.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from components.limits import FieldError

__all__ = ["FieldError", "InvalidEventData", "field_errors", "not_json"]


class InvalidEventData(Exception):
    """The data of an event does not match its class; ``errors`` lists every bad field."""

    def __init__(self, event: str, errors: list[FieldError]) -> None:
        super().__init__(
            f"invalid data for {event}: " + "; ".join(f"{e.path or '(the data)'}: {e.message}" for e in errors)
        )
        self.event = event
        self.errors = errors


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Every error pydantic found, in its order, as FieldErrors."""
    return [_field_error(err) for err in exc.errors(include_url=False)]


def not_json(reason: str) -> FieldError:
    """The error for data that cannot be written as JSON at all (so no field can be named)."""
    return FieldError("", f"must be JSON data ({reason})", "json_invalid")


def json_type(value: Any) -> str:
    """The JSON name of a value's type, with its article: 'a string', 'an array'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _field_error(err: Any) -> FieldError:
    path = ".".join(str(p) for p in err["loc"])
    kind: str = err["type"]
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field (not in the event class)"
    elif kind.endswith("_type"):
        # pydantic says what it wanted; saying what it got makes "42" vs 42 obvious.
        message = f"{err['msg']}, not {_got(err.get('input'))}"
    else:
        message = err["msg"]
    if kind.startswith("datetime"):
        message += " (expected ISO 8601, e.g. '2025-01-31T09:30:00Z')"
    return FieldError(path, message, kind)


def _got(value: Any) -> str:
    # Numbers are short and show what was wrong (1.5 for an integer); strings
    # may be long or private, so only their kind is named.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return json_type(value)
