"""The limits on what a client sends, checked at the edge: before parsing, and right after.

Every way into the gateway uses this module (``webapp_bridge.server``): the
JSON bodies of ``POST /events``, ``/events/batch``, ``/tickets`` and
``/subscriptions``, RabbitMQ message bodies, and XML-RPC calls. Pure: bytes
or values in, the value or an ``EdgeError`` out.

- **Size**: at most ``max_bytes`` (``bridge.max_body_bytes``), a 413.
- **Depth**: arrays and objects nest at most ``max_depth`` levels
  (``bridge.max_depth``; the document itself is level 1, a scalar is 0).
  Checked *before* ``json.loads``, which recurses once per level in C:
  Crossbar's dependencies (py_ecc) raise Python's recursion limit to 100,000,
  so ~70,000 nested brackets overflow the C stack and the process dies of
  SIGSEGV before a ``RecursionError`` can be raised.
- **Numbers**: integers within the signed 64-bit range, what msgpack, CBOR
  and the WAMP link to our components carry; floats finite (``NaN`` and
  ``Infinity``, which ``json.loads`` accepts, are not JSON; a literal past
  ±1.8e308 reads as Infinity). Each bad number is named by its path
  (``data.order_id``, ``events.3.data.items.0.qty``).
- **Strings**: valid Unicode. JSON may escape half of a UTF-16 surrogate pair alone (``"\\ud800"``),
  which no UTF-8 encoder can write: msgpack, CBOR and JSON on the WAMP link, the access log and
  RabbitMQ headers would fail on it later (a 500, or a message neither accepted nor dead-lettered).
  Refused here, in values and keys, each named by its path (the key's own rendered ``\\ud800``).
- **Keys**: each once per object. ``json.loads`` keeps the last of a repeated key silently, so the
  proxy (which validated the first) and the gateway could read different events from one body; an
  XML-RPC struct naming a member twice is refused the same way.

``webapp_bridge.schemacheck`` (the web-app library, standard library only)
keeps a copy of the number and string rules and their words; tests hold the two together.
"""

from __future__ import annotations

import json
import math
import re
import xmlrpc.client
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast
from xml.parsers import expat

__all__ = [
    "DEFAULT_MAX_DEPTH", "INT64_MAX", "INT64_MIN", "INT_RANGE", "LONE_SURROGATE", "NON_FINITE", "DuplicateKey",
    "EdgeError", "InvalidNumber", "InvalidUnicode", "Limits", "Malformed", "TooDeep", "TooLarge", "FieldError",
    "depth", "number_problems", "string_problems", "too_deep_at",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Deep enough for any event's data (a POST /events body puts it at level 2, a batch at level 4), shallow
#: enough that no parser or serializer on an event's way gets near its own limit.
DEFAULT_MAX_DEPTH = 32
#: What an error detail says of an integer out of range (then ", not <the value>") and of NaN or Infinity.
INT_RANGE = f"integers must be within the signed 64-bit range, {INT64_MIN} to {INT64_MAX}"
NON_FINITE = "NaN and Infinity are not JSON numbers"
#: What an error detail says of a string holding half of a UTF-16 surrogate pair (then where it is).
LONE_SURROGATE = "strings must be valid Unicode, without lone UTF-16 surrogates (\\ud800 to \\udfff)"
#: Bad numbers listed in an error's details at most: the first names the problem, a few show a pattern.
MAX_REPORTED = 20
#: Integers of more bits are not written out in a message (10**40 is; a 4,000-digit one is not).
_SHOWN_BITS = 256
#: Python will not read an integer of 4,300 digits or more from text (``sys.get_int_max_str_digits``):
#: longer ones are read as ``_HUGE``, which is out of range whatever its value.
_MAX_INT_TEXT = 4000


class EdgeError(Exception):
    """What a client sent is refused before it is used (its mistake, never ours).

    ``code`` and ``status`` are what the HTTP API answers (``{"error": code, "message", "details"?}``);
    ``details`` lists ``{"path", "message", "type"}`` per bad value when values can be named.
    """

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, message: str, details: Sequence[Mapping[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, str]] | None = None if details is None else [dict(d) for d in details]


class TooLarge(EdgeError):
    """Over ``bridge.max_body_bytes``."""

    code = "too_large"
    status = 413


class Malformed(EdgeError):
    """Not JSON at all (or not UTF-8 text)."""

    code = "malformed_json"


class TooDeep(EdgeError):
    """Arrays and objects (XML-RPC arrays and structs) nested past ``bridge.max_depth``."""

    code = "too_deep"


class InvalidNumber(EdgeError):
    """An integer outside the signed 64-bit range, or a float that is not finite."""

    code = "invalid_number"


class InvalidUnicode(EdgeError):
    """A string (or key) with a lone UTF-16 surrogate: JSON can escape one, no UTF-8 encoder can write it."""

    code = "invalid_unicode"


class DuplicateKey(EdgeError):
    """A JSON object (an XML-RPC struct) naming one key twice: which one counts would be a parser's guess."""

    code = "duplicate_key"


@dataclass(frozen=True)
class FieldError:
    """One bad value: where (a dotted path), what was wrong, and its error type (``int_range``,
    ``finite_number``, ``string_unicode`` here; pydantic's types for event data, which
    ``components.events.validation`` reports with the same class)."""

    path: str
    message: str
    type: str

    def as_dict(self) -> dict[str, str]:
        """The error as a JSON object: ``{"path", "message", "type"}``."""
        return {"path": self.path, "message": self.message, "type": self.type}


@dataclass(frozen=True)
class Limits:
    """The edge limits of one gateway: ``loads`` for JSON text, ``loads_xmlrpc`` for XML-RPC calls,
    ``check`` for values parsed some other way."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_bytes: int | None = None
    #: The config key named in messages about depth.
    depth_key: str = "bridge.max_depth"

    def loads(self, body: bytes | str) -> Any:
        """The JSON document ``body`` holds: size, then depth (before parsing), then keys, strings and numbers."""
        if self.max_bytes is not None and len(body) > self.max_bytes:
            raise too_large(self.max_bytes)
        text, raw = _text(body)
        offset = too_deep_at(raw, self.max_depth)
        if offset is not None:
            raise TooDeep(f"the body nests arrays and objects more than {self.max_depth} levels deep "
                          f"({self.depth_key}), at {_line_column(raw, offset)}")
        try:
            value = _parse(text)
        except json.JSONDecodeError as exc:
            raise Malformed(f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                            ) from None
        # Strings first: then every path named in a message about numbers is printable.
        if _MAYBE_SURROGATE.search(text):
            _refuse_strings(value, "the body")
        if _MAYBE_BAD_NUMBER.search(text):
            _refuse_numbers(value, "the body")
        return value

    def check(self, value: Any, what: str = "the body") -> None:
        """The depth, string and number rules of ``loads`` for a value parsed otherwise (an XML-RPC call's
        document, WAMP arguments); ``what`` names it in messages."""
        path = deeper_than(value, self.max_depth)
        if path is not None:
            raise TooDeep(f"{what} nests arrays and objects more than {self.max_depth} levels deep "
                          f"({self.depth_key}), at {path or 'the top'}")
        _refuse_strings(value, what)
        _refuse_numbers(value, what)

    def loads_xmlrpc(self, body: bytes, extra_depth: int = 0) -> tuple[tuple[Any, ...], str | None]:
        """``xmlrpc.client.loads(body, use_builtin_types=True)``, refusing (TooDeep) arrays and structs
        nested past ``max_depth + extra_depth`` as soon as the parser reaches them.

        expat and xmlrpc.client's unmarshaller do not recurse, but they would build the whole nested
        value first. Integers too long for Python to read come out out of range (``check`` refuses them);
        a struct naming a member twice is a DuplicateKey. Other faults of the document raise what
        ``xmlrpc.client.loads`` raises.
        """
        parser = expat.ParserCreate(None, None)
        setting = f"{self.depth_key} is {self.max_depth}" + (f", plus {extra_depth}" if extra_depth else "")
        target = _Unmarshaller(self.max_depth + extra_depth, setting,
                               lambda: (parser.CurrentLineNumber, parser.CurrentColumnNumber + 1))
        parser.StartElementHandler = target.start
        parser.EndElementHandler = target.end
        parser.CharacterDataHandler = target.data
        parser.Parse(body, True)
        return target.close(), target.getmethodname()


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"the request body is over the limit of {max_bytes} bytes")


# -- depth ---------------------------------------------------------------------------------------

#: A JSON string (escapes included), or a bracket. An unterminated string runs to the end of the text:
#: a parser stops there, and the pattern never has to look again from inside it (which would make
#: the scan quadratic on ``"\"\"\"...``). UTF-8 bytes of other characters never equal ``"``, ``\\`` or
#: a bracket, so the scan may run on the raw body.
_STRING_PATTERN = rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)'
_TOKEN = re.compile(_STRING_PATTERN + rb"|[\[\]{}]", re.S)
_STRING = re.compile(_STRING_PATTERN, re.S)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
_OPENERS = frozenset(b"[{")
_QUOTE = ord('"')


def depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (0 for a scalar), string contents skipped.

    Exact for valid JSON. In a malformed text it counts no further than a parser goes: to a closing
    bracket with nothing open, or an unterminated string. (It may count more than a parser reaches,
    never less: a parser stops at the first mistake, wherever it is.)
    """
    level = deepest = 0
    for match in _TOKEN.finditer(data):
        char = data[match.start()]
        if char == _QUOTE:
            continue
        if char in _OPENERS:
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
            if level < 0:
                break
    return deepest


def too_deep_at(data: bytes, max_depth: int) -> int | None:
    """The offset of the bracket that opens level ``max_depth + 1``, or None when the text nests no deeper.

    One linear scan, done only when a cheap bound says it may find something: a body with fewer
    brackets than the limit cannot nest past it, and ``_may_nest_deeper`` settles most others at
    C speed (the scan itself costs a few times ``json.loads`` on bracket-heavy text).
    """
    if data.count(b"[") + data.count(b"{") <= max_depth or not _may_nest_deeper(data, max_depth):
        return None
    level = 0
    for match in _TOKEN.finditer(data):
        char = data[match.start()]
        if char == _QUOTE:
            continue
        if char in _OPENERS:
            level += 1
            if level > max_depth:
                return match.start()
        else:
            level -= 1
            if level < 0:
                return None
    return None


def _may_nest_deeper(data: bytes, max_depth: int) -> bool:
    """False when ``data`` surely nests no deeper than ``max_depth``; True when it may.

    With strings removed and ``{}`` read as ``[]``, each removal of every ``[]`` takes one level
    off every innermost pair, so a balanced text is empty after exactly ``depth`` rounds. What no
    round removes is closers then openers (no pair left), each at most one level more.
    """
    bare = _STRING.sub(b"", data).translate(_SQUARE, _NOT_BRACKETS)
    if b"[" * (max_depth + 1) in bare:
        return True
    rounds = 0
    while bare:
        shorter = bare.replace(b"[]", b"")
        if len(shorter) == len(bare):
            break
        bare, rounds = shorter, rounds + 1
        if rounds > max_depth:
            return True
    return rounds + bare.count(b"[") > max_depth


def deeper_than(value: Any, max_depth: int) -> str | None:
    """The path of the first array or object at level ``max_depth + 1`` of a parsed value, else None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, (list, tuple)):
            children = enumerate(item)
        else:
            continue
        if level > max_depth:
            return path
        stack.extend((child, _join(path, key), level + 1) for key, child in reversed(list(children)))
    return None


# -- numbers ---------------------------------------------------------------------------------------

#: Text that may hold a number out of range: an integer of 2**63 or more has 19 digits or more; a float
#: reaches Infinity only with 19+ digits or a 3-digit exponent (18 digits times 1e99 is far below
#: 1.8e308). Digits in strings match too: then the values are looked at, which finds nothing.
_MAYBE_BAD_NUMBER = re.compile(r"[0-9]{19}|[eE][-+]?[0-9]{3}|NaN|Infinity")


class _Huge:
    """An integer too long for Python to read: out of range, whatever its digits."""

    def __repr__(self) -> str:
        return "<an integer of 4000+ digits>"


_HUGE = _Huge()


def number_problems(value: Any, path: str = "", limit: int | None = MAX_REPORTED) -> list[FieldError]:
    """The numbers in ``value`` that events cannot carry, in document order (at most ``limit``)."""
    found: list[FieldError] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, _join(where, key)) for key, child in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, _join(where, i)) for i, child in reversed(list(enumerate(item))))
        else:
            problem = _number_problem(item)
            if problem is not None:
                found.append(FieldError(where, *problem))
                if limit is not None and len(found) >= limit:
                    break
    return found


def _number_problem(value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        shown = str(value) if value.bit_length() <= _SHOWN_BITS else f"an integer of more than {_SHOWN_BITS} bits"
        return f"{INT_RANGE}, not {shown}", "int_range"
    if isinstance(value, float):
        return None if math.isfinite(value) else (NON_FINITE, "finite_number")
    if value is _HUGE:
        return f"{INT_RANGE}, not an integer of more than {_SHOWN_BITS} bits", "int_range"
    return None


def number_error(problems: Sequence[FieldError], what: str = "the body") -> InvalidNumber:
    """The error for bad numbers: the first one in the message (``data.order_id: integers must be ...``),
    each in the details."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more in details)" if len(problems) > 1 else ""
    return InvalidNumber(f"{first.path or what}: {first.message}{more}", [p.as_dict() for p in problems])


# -- strings ---------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
#: Text that may hold a lone surrogate: an escape of one (json.loads reads an escaped pair as one
#: character), or one itself (a str body, or bytes decoded with surrogatepass).
_MAYBE_SURROGATE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def string_problems(value: Any, path: str = "", limit: int | None = MAX_REPORTED) -> list[FieldError]:
    """The strings and keys in ``value`` holding a lone surrogate, in document order (at most ``limit``).

    A key's problem is named by the key's own path, its surrogates written as ``\\udXXX`` escapes.
    """
    found: list[FieldError] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                at = _join(where, _printable(key) if isinstance(key, str) else key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    found.append(_surrogate_problem(at, key, " of the key"))
                children.append((child, at))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, _join(where, i)) for i, child in reversed(list(enumerate(item))))
        elif isinstance(item, str) and _SURROGATE.search(item):
            found.append(_surrogate_problem(where, item))
        if limit is not None and len(found) >= limit:
            del found[limit:]
            break
    return found


def _printable(text: str) -> str:
    """``text`` with each surrogate written as its ``\\udXXX`` escape: safe for any UTF-8 encoder."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _surrogate_problem(path: str, text: str, of: str = "") -> FieldError:
    match = _SURROGATE.search(text)
    assert match is not None
    return FieldError(path, f"{LONE_SURROGATE}; this one has \\u{ord(match.group()):04x} at character "
                              f"{match.start() + 1}{of}", "string_unicode")


def _refuse_strings(value: Any, what: str) -> None:
    problems = string_problems(value)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more in details)" if len(problems) > 1 else ""
        raise InvalidUnicode(f"{first.path or what}: {first.message}{more}", [p.as_dict() for p in problems])


def _refuse_numbers(value: Any, what: str) -> None:
    problems = number_problems(value)
    if problems:
        raise number_error(problems, what)


def _parse(text: str) -> Any:
    """``json.loads(text)``, refusing (DuplicateKey) an object that names a key twice."""
    repeated: list[tuple[dict[str, Any], str]] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            repeated.append((obj, _first_repeated(k for k, _ in pairs)))
        return obj

    try:
        value = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer of 4,300 digits or more, which Python refuses to read
        repeated.clear()
        value = json.loads(text, object_pairs_hook=unique, parse_int=_read_int)
    if repeated:
        obj, key = repeated[0]
        where = _join(_path_of(value, obj), _printable(key))
        shown = where or 'the key ""'
        raise DuplicateKey(f"{shown}: {_TWICE}", [{"path": where, "message": _TWICE, "type": "duplicate_key"}])
    return value


#: What an error says of a key named twice in one object.
_TWICE = "the key appears more than once in one object; each key may appear once"


def _first_repeated(names: Iterable[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no name is repeated")


def _path_of(value: Any, target: Any) -> str:
    """The path of ``target`` (an object or array) inside ``value``, found by identity."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path
        if isinstance(item, dict):
            stack.extend((child, _join(path, _printable(key))) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, _join(path, i)) for i, child in enumerate(item))
    return ""


def _read_int(text: str) -> int | _Huge:
    return int(text) if len(text) <= _MAX_INT_TEXT else _HUGE


# -- helpers ---------------------------------------------------------------------------------------


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _text(body: bytes | str) -> tuple[str, bytes]:
    """The body as text (decoded as ``json.loads`` would) and as UTF-8 bytes for the scan."""
    if isinstance(body, str):
        return body, body.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding, "surrogatepass")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8 text") from None
    return text, body if encoding in ("utf-8", "utf-8-sig") else text.encode("utf-8", "surrogatepass")


def _line_column(data: bytes, offset: int) -> str:
    start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return f"line {line}, column {column}"


def _end_int(self: xmlrpc.client.Unmarshaller, data: str) -> None:
    self.append(_read_int(data.strip()))
    self._value = False


def _end_struct(self: xmlrpc.client.Unmarshaller, data: str) -> None:
    # The stack holds the struct's names and values in turn, from its mark on.
    names = [str(name) for name in self._stack[self._marks[-1]::2]]
    if len(set(names)) < len(names):
        name = _first_repeated(names)
        line, column = cast(_Unmarshaller, self)._position()
        raise DuplicateKey(f"the call has a struct naming the member {name!r} more than once, at line {line}, "
                           f"column {column}; each member may appear once")
    xmlrpc.client.Unmarshaller.end_struct(self, data)


class _Unmarshaller(xmlrpc.client.Unmarshaller):
    """xmlrpc.client's unmarshaller that refuses to nest past a limit and reads any length of integer."""

    dispatch = {**xmlrpc.client.Unmarshaller.dispatch,
                **{tag: _end_int for tag in ("i1", "i2", "i4", "i8", "int", "biginteger")}, "struct": _end_struct}

    def __init__(self, max_depth: int, setting: str, position: Callable[[], tuple[int, int]]) -> None:
        super().__init__(use_builtin_types=True)
        # expat hands over text already decoded (xmlrpc.client's ExpatParser says so the same way).
        self.xml(None, None)  # type: ignore[arg-type]
        self._max_depth = max_depth
        self._setting = setting
        self._position = position
        # A value nested d arrays deep sits in 4 + 3d elements (methodCall, params, param, value, then
        # array, data, value per level) and its type's element: deeper elements hold nothing of use.
        self._max_elements = 3 * max_depth + 8
        self._elements = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self._elements += 1
        if self._elements <= self._max_elements:
            super().start(tag, attrs)
        if len(self._marks) > self._max_depth or self._elements > self._max_elements:
            line, column = self._position()
            what, limit = (("arrays and structs", self._max_depth) if len(self._marks) > self._max_depth
                           else ("XML elements", self._max_elements))
            raise TooDeep(f"the call nests {what} more than {limit} levels deep ({self._setting}), "
                          f"at line {line}, column {column}")

    def end(self, tag: str) -> None:
        self._elements -= 1
        super().end(tag)
