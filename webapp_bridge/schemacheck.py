"""Check event data against an event class's JSON Schema, with the standard library only.

A web-app without pydantic gets each class's schema from the gateway's
``GET /catalog`` and checks data here before sending it::

    problems(schema, data)  # [] when valid, else Problem(path, message, type) per fault

The rule: **never refuse what the gateway accepts.** The gateway validates
every event again, so a fault missed here costs one round trip, while a
refusal here of valid data would block a correct web-app. Wherever the schema
cannot say exactly what pydantic will do, the check lets the data pass:

- Keywords outside the subset below are ignored, as are unknown formats
  (email, uri, duration ...).
- ``pattern`` runs on Python's ``re``; pydantic's engine is Rust's. Patterns
  Python cannot read, or would read otherwise (``\\p{L}``, ``[[:alpha:]]``,
  ``&&``), are skipped, and so are ``\\w``, ``\\s``, ``\\d``, ``\\b`` and
  ``(?i)`` patterns on text beyond ASCII, where the two engines' Unicode
  tables differ. (Python's ``$`` also matches before a final newline: a miss.)
- ``oneOf`` is checked as ``anyOf``: pydantic's unions pick a member.
- ``uniqueItems`` is ignored: pydantic emits it for sets, which take
  duplicates and drop them.
- An ``enum`` or ``const`` value matches by Python equality, so ``true`` and
  ``1.0`` match ``1`` (pydantic's ``Literal[1]`` and integer ``Enum``\\s take
  them; a YAML integer enum does not, and the gateway says so).
- A Decimal field's schema takes any string (pydantic reads numeric text the
  schema cannot describe); a date-time or date takes unix timestamp text.
- Values json.loads never gives (datetime, Decimal, bytes ...) are not
  checked, nor is data nested too deep for Python's stack.

The schema is taken at its word: a Python class whose validators or string
options (``str_strip_whitespace`` ...) change values before its constraints
apply says so nowhere in its schema, and may be refused here.

Numbers the gateway cannot carry come first and alone, as the gateway
refuses them before it reads anything else (``number_problems``: integers
outside the signed 64-bit range, NaN, Infinity). So does its rule for text,
kept here for the proxy (``string_problems``: no lone UTF-16 surrogates).

What is checked follows pydantic in strict JSON mode, as the gateway
validates: ``true`` is not an integer, ``1.0`` and ``"1"`` are not integers,
integers are numbers. The subset: ``type`` (or a list of types),
``properties``, ``required``, ``additionalProperties`` (false or a schema),
``patternProperties``, ``$ref`` (``#/...``), ``allOf``, ``anyOf``, ``oneOf``,
``enum``, ``const``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``multipleOf``, ``minLength`` / ``maxLength`` (code
points), ``pattern`` (searched, as pydantic does), ``format`` (date-time,
date, time, uuid), ``items``, ``prefixItems``, ``minItems`` / ``maxItems``,
``minProperties`` / ``maxProperties``; ``default`` is ignored. Paths and
messages are those the gateway reports (``customer.id``, ``tags.2``; ``""``
for the data itself), and so are error types where the schema tells them
apart (a failed union is ``union_type``). Pure: no I/O, stdlib only.
"""

from __future__ import annotations

import calendar
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

__all__ = ["INT64_MAX", "INT64_MIN", "INT_RANGE", "LONE_SURROGATE", "NON_FINITE", "Problem", "number_problems",
           "problems", "string_problems"]

Path = tuple[str | int, ...]

# The gateway's rule for numbers (components.limits, word for word; tests hold the two together):
# events carry integers within the signed 64-bit range and finite floats only.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT_RANGE = f"integers must be within the signed 64-bit range, {INT64_MIN} to {INT64_MAX}"
NON_FINITE = "NaN and Infinity are not JSON numbers"
# And for text (components.limits too): no UTF-8 encoder can write half of a surrogate pair.
LONE_SURROGATE = "strings must be valid Unicode, without lone UTF-16 surrogates (\\ud800 to \\udfff)"
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Integers of more bits are not written out in a message.
_SHOWN_BITS = 256


@dataclass(frozen=True)
class Problem:
    """One fault in the data: where (a dotted path from the data), what, and its pydantic error type."""

    path: str
    message: str
    type: str

    def as_dict(self) -> dict[str, str]:
        """The problem as the gateway writes an error detail: ``{"path", "message", "type"}``."""
        return {"path": self.path, "message": self.message, "type": self.type}


def problems(schema: dict[str, Any], data: Any) -> list[Problem]:
    """Every fault of ``data`` (as json.loads gives it) against ``schema``; ``[]`` when it is valid."""
    # Like the gateway: numbers it cannot carry are reported alone, before anything else is read.
    bad_numbers = number_problems(data)
    if bad_numbers:
        return bad_numbers
    try:
        return _Checker(schema).check(schema, data, ())
    except RecursionError:
        return []  # data nested past Python's stack: too deep to judge here, so the gateway will


class _Checker:
    """Checks values against the schemas of one root (which ``$ref`` points into)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self._root = root
        # $refs being followed at a path: a schema that refers to itself
        # without descending into the data would otherwise never end.
        self._following: set[tuple[str, Path]] = set()
        # ids of the schemas $refs led to: an enum there is an Enum class, which pydantic reports as "enum".
        self._named: set[int] = set()

    def check(self, schema: Any, value: Any, path: Path) -> list[Problem]:
        """The problems of ``value`` (at ``path``) against ``schema``."""
        if schema is False:
            return [_problem(path, "no value is allowed here", "no_value_allowed")]
        if not isinstance(schema, dict) or not schema:
            return []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found = self._ref(ref, value, path)
            if found:
                return found
        for part in _schemas(schema.get("allOf")):
            found = self.check(part, value, path)
            if found:
                return found
        for key in ("anyOf", "oneOf"):
            members = _schemas(schema.get(key))
            if members:
                found = self._any_of(members, value, path)
                if found:
                    return found
        kind = _kind(value)
        if kind is None:
            return []  # not JSON data: the web-app's encoder decides what it becomes
        if value is None and schema.get("nullable") is True:
            return []
        literal = self._literal(schema, value, path)
        if literal is not None:
            return [literal]
        if "enum" not in schema and "const" not in schema:  # a listed value passes whatever "type" says
            wrong = _wrong_type(schema, value, kind, path)
            if wrong is not None:
                return [wrong]
        if kind in ("integer", "number"):
            return _number(schema, value, path)
        if kind == "string":
            return _string(schema, value, path)
        if kind == "array":
            return self._array(schema, value, path)
        if kind == "object":
            return self._object(schema, value, path)
        return []

    def _ref(self, ref: str, value: Any, path: Path) -> list[Problem]:
        target = _resolve(self._root, ref)
        if target is None or (ref, path) in self._following:
            return []  # a ref outside this document, or a loop: nothing we can judge
        self._following.add((ref, path))
        self._named.add(id(target))
        try:
            return self.check(target, value, path)
        finally:
            self._following.discard((ref, path))

    def _any_of(self, members: list[Any], value: Any, path: Path) -> list[Problem]:
        failures: list[list[Problem]] = []
        for member in members:
            found = self.check(member, value, path)
            if not found:
                return []
            failures.append(found)
        # A nullable field's problems are those of its other member, as pydantic reports them.
        failures = [f for m, f in zip(members, failures) if m != {"type": "null"}] or failures
        # A member whose type the value has failed on something inside: its problems say most.
        fitting = [f for f in failures if not _only_type_error(f, path)]
        if fitting or len(failures) == 1:
            return min(fitting or failures, key=len)
        wanted = " or ".join(dict.fromkeys(_wanted(f[0].message) for f in failures))
        return [_problem(path, f"Input should be {wanted}, not {_got(value)}", "union_type")]

    def _literal(self, schema: dict[str, Any], value: Any, path: Path) -> Problem | None:
        """None when the value is one of the schema's enum/const values (or it has none), else the problem."""
        if "const" in schema:
            allowed = [schema["const"]]
        elif isinstance(schema.get("enum"), list):
            allowed = schema["enum"]
        else:
            return None
        if any(_equal(value, option) for option in allowed):
            return None
        if _types(schema) == ["integer"] and _kind(value) != "integer":
            return _type_problem(schema, "integer", value, path)
        shown = [repr(option) for option in allowed] or ["nothing"]
        expected = f"{', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else shown[0]
        # pydantic says "enum" for Enum classes and YAML integer enums, "literal_error" for Literal.
        kind = "enum" if id(schema) in self._named or _types(schema) == ["integer"] else "literal_error"
        return _problem(path, f"Input should be {expected}", kind)

    def _array(self, schema: dict[str, Any], value: list[Any] | tuple[Any, ...], path: Path) -> list[Problem]:
        found: list[Problem] = []
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # the older form of prefixItems
            prefix, items = items, schema.get("additionalItems")
        prefix = _schemas(prefix)
        low, high = _count(schema, "minItems"), _count(schema, "maxItems")
        noun = "Tuple" if prefix else "Set" if schema.get("uniqueItems") is True else "List"
        # pydantic stops at the first item too many, and says nothing of the items.
        if high is not None and len(value) > high:
            return [_problem(path, f"{noun} should have at most {_items(high)} after validation, "
                                   f"not {len(value)}", "too_long")]
        for index, item in enumerate(value):
            member = prefix[index] if index < len(prefix) else items
            if member is not None:
                found += self.check(member, item, (*path, index))
        if low is not None and len(value) < low:
            if prefix and low <= len(prefix):
                # A tuple names the places it lacks, beside its bad items, as pydantic does.
                found += [_problem((*path, i), "required field is missing", "missing") for i in range(len(value), low)]
            elif not found:  # a short list with bad items: pydantic reports the items
                found.append(_problem(path, f"{noun} should have at least {_items(low)} after validation, "
                                            f"not {len(value)}", "too_short"))
        return found

    def _object(self, schema: dict[str, Any], value: dict[Any, Any], path: Path) -> list[Problem]:
        found: list[Problem] = []
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        data = {_key(k): v for k, v in value.items()}
        for name, member in properties.items():
            if name in data:
                found += self.check(member, data[name], (*path, name))
            elif name in required:
                found.append(_problem((*path, name), "required field is missing", "missing"))
        found += [_problem((*path, name), "required field is missing", "missing")
                  for name in required if name not in properties and name not in data]
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        additional = schema.get("additionalProperties", True)
        for name, item in data.items():
            if name in properties:
                continue
            matched = False
            for pattern, member in patterns.items():
                hit = _search(pattern, name) if isinstance(pattern, str) else None
                if hit is not False:
                    matched = True  # or it might: then it is not an additional property either
                if hit:
                    found += self.check(member, item, (*path, name))
            if matched:
                continue
            if additional is False:
                found.append(_problem((*path, name), "unknown field (not in the event class)", "extra_forbidden"))
            else:
                found += self.check(additional, item, (*path, name))
        low, high = _count(schema, "minProperties"), _count(schema, "maxProperties")
        if found:
            return found  # pydantic counts entries only when each is valid
        if low is not None and len(value) < low:
            found.append(_problem(path, f"Dictionary should have at least {_items(low)} after validation, "
                                        f"not {len(value)}", "too_short"))
        if high is not None and len(value) > high:
            found.append(_problem(path, f"Dictionary should have at most {_items(high)} after validation, "
                                        f"not {len(value)}", "too_long"))
        return found


# --- types -------------------------------------------------------------------

# The pydantic error type and message for a value that is not of a JSON type.
_TYPE_ERRORS = {
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "string": ("string_type", "Input should be a valid string"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid array"),
    "object": ("dict_type", "Input should be an object"),
    "null": ("none_required", "Input should be None"),
}
# Strings with a format are other Python types to pydantic, with their own errors.
_FORMAT_TYPE_ERRORS = {
    "date-time": ("datetime_type", "Input should be a valid datetime"),
    "date": ("date_type", "Input should be a valid date"),
    "time": ("time_type", "Input should be a valid time"),
    "uuid": ("uuid_type", "UUID input should be a string, bytes or UUID object"),
}


def _kind(value: Any) -> str | None:
    """The JSON type of a value (an int is "integer", a float "number"); None for what JSON lacks."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _types(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return [kinds]
    return [k for k in kinds if isinstance(k, str)] if isinstance(kinds, list) else []


def _wrong_type(schema: dict[str, Any], value: Any, kind: str, path: Path) -> Problem | None:
    kinds = _types(schema)
    if not kinds or kind in kinds or (kind == "integer" and "number" in kinds):
        return None
    if not all(k in _TYPE_ERRORS for k in kinds):
        return None  # a type we do not know might take it
    return _type_problem(schema, kinds[0], value, path, kinds)


def _type_problem(schema: dict[str, Any], kind: str, value: Any, path: Path,
                  kinds: list[str] | None = None) -> Problem:
    error, message = _TYPE_ERRORS[kind]
    if kind == "string" and schema.get("format") in _FORMAT_TYPE_ERRORS:
        error, message = _FORMAT_TYPE_ERRORS[schema["format"]]
    elif kind == "array" and schema.get("prefixItems"):
        error, message = "tuple_type", "Input should be a valid tuple"
    elif kind == "array" and schema.get("uniqueItems") is True:
        error, message = "set_type", "Input should be a valid set"
    elif kind == "object" and "properties" in schema:
        error = "model_type"
    if kinds and len(kinds) > 1:
        message = "Input should be " + " or ".join(_wanted(_TYPE_ERRORS[k][1]) for k in kinds)
    # As the gateway words type errors: saying what came makes "42" vs 42 obvious.
    return _problem(path, f"{message}, not {_got(value)}" if error.endswith("_type") else message, error)


def _only_type_error(found: list[Problem], path: Path) -> bool:
    return len(found) == 1 and found[0].path == _dotted(path) and found[0].type.endswith("_type")


def _wanted(message: str) -> str:
    """What a type error message asks for: 'a valid string' from 'Input should be a valid string, not ...'."""
    return message.removeprefix("Input should be ").split(", not ")[0]


def _got(value: Any) -> str:
    # As the gateway words it: numbers are short and show what was wrong
    # (1.5 for an integer); strings may be long or private, so only their kind.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return {"null": "null", "boolean": "a boolean", "integer": "a number", "number": "a number",
            "string": "a string", "array": "an array", "object": "an object"}.get(_kind(value) or "",
                                                                                  type(value).__name__)


def _equal(value: Any, option: Any) -> bool:
    # Python equality is what pydantic's Literal uses: true == 1 == 1.0, but "1" != 1.
    try:
        return bool(value == option)
    except Exception:  # an exotic value's __eq__: treat as no match
        return False


# --- numbers -----------------------------------------------------------------

# Bound keyword, pydantic's error, its words, and the comparison that must hold; in pydantic's order.
_BOUNDS: tuple[tuple[str, str, str, Callable[[Any, Any], bool]], ...] = (
    ("maximum", "less_than_equal", "less than or equal to", operator.le),
    ("exclusiveMaximum", "less_than", "less than", operator.lt),
    ("minimum", "greater_than_equal", "greater than or equal to", operator.ge),
    ("exclusiveMinimum", "greater_than", "greater than", operator.gt),
)


def _number(schema: dict[str, Any], value: int | float, path: Path) -> list[Problem]:
    # pydantic reports one failed constraint per value, multipleOf first.
    multiple = _num(schema.get("multipleOf"))
    if multiple is not None and multiple > 0 and not _is_multiple(value, multiple, schema):
        return [_problem(path, f"Input should be a multiple of {_show(multiple)}", "multiple_of")]
    for key, error, words, holds in _BOUNDS:
        bound = _num(schema.get(key))
        if bound is not None and not _holds(holds, value, bound):
            return [_problem(path, f"Input should be {words} {_show(bound)}", error)]
    return []


def _num(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _holds(holds: Callable[[Any, Any], bool], value: int | float, bound: int | float) -> bool:
    if holds(value, bound):
        return True
    # A float field turns a big integer into the nearest float before comparing.
    try:
        return isinstance(value, int) and holds(float(value), bound)
    except OverflowError:
        return False


def _is_multiple(value: int | float, multiple: int | float, schema: dict[str, Any]) -> bool:
    if isinstance(value, int) and isinstance(multiple, int) and value % multiple == 0:
        return True
    if isinstance(value, int) and isinstance(multiple, int) and _types(schema) == ["integer"]:
        return False  # an int field checks exactly
    try:
        number, step = float(value), float(multiple)
    except OverflowError:
        return True
    # pydantic's float check: a remainder within a billionth of the value is rounding.
    remainder = math.fmod(number, step)
    threshold = abs(number) / 1e9
    return abs(remainder) <= threshold or abs(abs(remainder) - step) <= threshold


def _show(number: int | float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() and abs(number) < 1e16 \
        else str(number)


# --- strings -----------------------------------------------------------------

def _string(schema: dict[str, Any], value: str, path: Path) -> list[Problem]:
    low, high = _count(schema, "minLength"), _count(schema, "maxLength")
    if low is not None and len(value) < low:
        return [_problem(path, f"String should have at least {_characters(low)}", "string_too_short")]
    if high is not None and len(value) > high:
        return [_problem(path, f"String should have at most {_characters(high)}", "string_too_long")]
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and _search(pattern, value) is False:
        return [_problem(path, f"String should match pattern '{pattern}'", "string_pattern_mismatch")]
    form = schema.get("format")
    if form in _FORMATS and not _FORMATS[form](value):
        error, message = _FORMAT_ERRORS[form]
        return [_problem(path, message, error)]
    return []


# Rust syntax Python would read differently without complaint: nested or
# set-operation classes, word-boundary \< \> \b{...}, and x-mode (Rust
# ignores spaces inside classes too).
_FOREIGN = re.compile(r"\[\[|&&|--|~~|\|\||\\[<>]|\\b\{|\(\?[a-zA-Z-]*x")
# Classes and case folding whose Unicode tables differ between the engines.
_UNICODE_SENSITIVE = re.compile(r"\\[wWbBsSdD]|\(\?[a-zA-Z-]*i")
# Text on which both engines agree about \w, \s, \d, \b and case.
_PLAIN_TEXT = re.compile(r"[\t\n\x0b\x0c\r\x20-\x7e]*\Z")


@lru_cache(maxsize=256)  # an application has a few dozen patterns; bounded so odd ones cannot pile up
def _regex(pattern: str) -> re.Pattern[str] | None:
    """The pattern compiled for Python, or None when Python cannot be trusted to read it as pydantic does."""
    if _FOREIGN.search(pattern):
        return None
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None  # Rust syntax (\p{L}, \z, named groups (?<n>...)): let the gateway judge


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` matches somewhere in ``text``, as pydantic's engine finds; None when unsure."""
    regex = _regex(pattern)
    if regex is None:
        return None
    if regex.search(text):
        return True
    if _UNICODE_SENSITIVE.search(pattern) and not _PLAIN_TEXT.match(text):
        return None
    return False


_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_TIME = r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]+)?)?(?:[Zz]|[+-]([0-9]{2}):?([0-9]{2}))?"
_DATE_TEXT = re.compile(_DATE + r"\Z")
_TIME_TEXT = re.compile(_TIME + r"\Z")
_DATETIME_TEXT = re.compile(_DATE + "[Tt _]" + _TIME + r"\Z")
# pydantic also reads unix timestamps (seconds or milliseconds) from text.
_TIMESTAMP = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)\Z")
_DAY_TIMESTAMP = re.compile(r"[+-]?[0-9]+\Z")
_HEX = "[0-9a-fA-F]"
_UUID_TEXT = re.compile(rf"(urn:uuid:)?\{{?({_HEX}{{32}}|{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})\}}?\Z")


def _valid_date(year: str, month: str, day: str) -> bool:
    y, m, d = int(year), int(month), int(day)
    return 1 <= y and 1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1]


def _valid_time(hour: str, minute: str, second: str | None, tz_hour: str | None, tz_minute: str | None) -> bool:
    return (int(hour) <= 23 and int(minute) <= 59 and int(second or 0) <= 59
            and int(tz_hour or 0) <= 23 and int(tz_minute or 0) <= 59)


def _is_datetime(text: str) -> bool:
    match = _DATETIME_TEXT.match(text)
    if match is None:
        return bool(_TIMESTAMP.match(text))
    return _valid_date(*match.group(1, 2, 3)) and _valid_time(*match.group(4, 5, 6, 7, 8))


def _is_date(text: str) -> bool:
    match = _DATE_TEXT.match(text)
    if match is None:
        return bool(_DAY_TIMESTAMP.match(text))
    return _valid_date(*match.group(1, 2, 3))


def _is_time(text: str) -> bool:
    match = _TIME_TEXT.match(text)
    return match is not None and _valid_time(*match.group(1, 2, 3, 4, 5))


def _is_uuid(text: str) -> bool:
    return _UUID_TEXT.match(text) is not None


_FORMATS: dict[str, Callable[[str], bool]] = {"date-time": _is_datetime, "date": _is_date, "time": _is_time,
                                              "uuid": _is_uuid}
_FORMAT_ERRORS = {
    "date-time": ("datetime_parsing", "Input should be a valid datetime"),
    "date": ("date_parsing", "Input should be a valid date in the format YYYY-MM-DD"),
    "time": ("time_parsing", "Input should be in a valid time format (HH:MM[:SS[.ffffff]], e.g. '09:30:00')"),
    "uuid": ("uuid_parsing", "Input should be a valid UUID"),
}


# --- helpers -----------------------------------------------------------------

def _problem(path: Path, message: str, error: str) -> Problem:
    if error.startswith("datetime"):  # the gateway's hint, word for word
        message += " (expected ISO 8601, e.g. '2025-01-31T09:30:00Z')"
    return Problem(_dotted(path), message, error)


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


def _key(key: Any) -> str:
    # JSON object keys are text; json.dumps writes the other keys Python allows like this.
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return "null" if key is None else str(key).lower()
    return str(key)


def _schemas(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(schema: dict[str, Any], key: str) -> int | None:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _characters(count: int) -> str:
    return f"{count} character" if count == 1 else f"{count} characters"


def _resolve(root: dict[str, Any], ref: str) -> Any:
    """The schema a local ``$ref`` (``#``, ``#/$defs/Name``) points to; None if it points elsewhere."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    pointer = unquote(ref[1:])
    if not pointer:
        return node
    if not pointer.startswith("/"):
        return None  # an anchor name: pydantic does not write them
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def number_problems(data: Any) -> list[Problem]:
    """The numbers in ``data`` that events cannot carry, in order: integers outside the signed 64-bit range
    (``int_range``), NaN and Infinity (``finite_number``). The gateway refuses them wherever they are,
    before it reads anything else (an ``invalid_number`` answer, these as its details)."""
    try:
        return [Problem(_dotted(path), message, kind) for path, message, kind in _bad_numbers(data, ())]
    except RecursionError:
        return []  # data nested past Python's stack: too deep to judge here, so the gateway will


def _bad_numbers(data: Any, path: Path) -> Iterator[tuple[Path, str, str]]:
    if isinstance(data, bool):
        return
    if isinstance(data, int):
        if not INT64_MIN <= data <= INT64_MAX:
            number = int(data)  # an IntEnum member: its value
            shown = str(number) if number.bit_length() <= _SHOWN_BITS else \
                f"an integer of more than {_SHOWN_BITS} bits"
            yield path, f"{INT_RANGE}, not {shown}", "int_range"
    elif isinstance(data, float):
        if not math.isfinite(data):
            yield path, NON_FINITE, "finite_number"
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _bad_numbers(value, (*path, _key(key)))
    elif isinstance(data, (list, tuple, set, frozenset)):
        # Sets in the order the web-app library sends them (sorted by repr).
        items = sorted(data, key=repr) if isinstance(data, (set, frozenset)) else data
        for index, value in enumerate(items):
            yield from _bad_numbers(value, (*path, index))


def string_problems(data: Any) -> list[Problem]:
    """The strings and keys in ``data`` holding a lone UTF-16 surrogate (``string_unicode``), in order, as the
    gateway names them (a key by its own path, surrogates written ``\\udXXX``). It refuses them at its edge
    (an ``invalid_unicode`` answer, these as its details). Iterative: safe on data of any depth."""
    found: list[Problem] = []
    stack: list[tuple[Any, Path]] = [(data, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                found.append(Problem(_dotted(path), _surrogate_message(item), "string_unicode"))
        elif isinstance(item, Mapping):
            children: list[tuple[Any, Path]] = []
            for key, value in item.items():
                at = (*path, _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", _key(key)))
                if isinstance(key, str) and _SURROGATE.search(key):
                    found.append(Problem(_dotted(at), _surrogate_message(key, " of the key"), "string_unicode"))
                children.append((value, at))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple, set, frozenset)):
            # Sets in the order the web-app library sends them (sorted by repr).
            items = sorted(item, key=repr) if isinstance(item, (set, frozenset)) else item
            stack.extend(reversed([(value, (*path, index)) for index, value in enumerate(items)]))
    return found


def _surrogate_message(text: str, of: str = "") -> str:
    match = _SURROGATE.search(text)
    assert match is not None
    return f"{LONE_SURROGATE}; this one has \\u{ord(match.group()):04x} at character {match.start() + 1}{of}"
