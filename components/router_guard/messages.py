"""What a client's WAMP message may hold: nesting depth, and values our components can receive.

Pure: decoded messages in, a verdict out. Used by the router guard on every
message a client sends over WebSocket (never on our components' own
rawsocket link). A JSON frame's depth is measured before it is parsed by the
gateway's one edge check, ``components.limits.too_deep_at`` (autobahn's JSON
decoder recurses once per level in Python, with the recursion limit high in
Crossbar's processes); then ``check_message`` looks at every decoded message,
whatever its serializer:

* nesting depth again (the msgpack and CBOR decoders stop by themselves only
  at 1024 and 400 levels), the message itself counting 1, as in
  ``components.limits``;
* every value must be one the router can forward to our components over
  msgpack: integers within signed 64 bits, strings as map keys, and only
  null, booleans, numbers, strings, bytes, lists and maps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from components.limits import INT64_MAX, INT64_MIN, INT_RANGE

#: WAMP ids (request, subscription, registration) are integers in 1 .. 2**53.
MAX_WAMP_ID = 2**53

# WAMP message types (the first element of every message).
HELLO, WELCOME, ABORT, AUTHENTICATE, GOODBYE, ERROR = 1, 2, 3, 5, 6, 8
PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, CANCEL, REGISTER, UNREGISTER, YIELD = 16, 32, 34, 48, 49, 64, 66, 70

#: Requests a router answers with ERROR: a refused one of these gets an answer, not a closed connection.
ANSWERABLE = frozenset({PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, REGISTER, UNREGISTER})

#: The names of each message's elements (WAMP spec), so that a problem is named
#: ``args[0]`` or ``options.timeout`` rather than by position.
_FIELDS: dict[int, tuple[str, ...]] = {
    HELLO: ("type", "realm", "details"),
    AUTHENTICATE: ("type", "signature", "extra"),
    GOODBYE: ("type", "details", "reason"),
    ERROR: ("type", "request_type", "request", "details", "error", "args", "kwargs"),
    PUBLISH: ("type", "request", "options", "topic", "args", "kwargs"),
    SUBSCRIBE: ("type", "request", "options", "topic"),
    UNSUBSCRIBE: ("type", "request", "subscription"),
    CALL: ("type", "request", "options", "procedure", "args", "kwargs"),
    CANCEL: ("type", "request", "options"),
    REGISTER: ("type", "request", "options", "procedure"),
    UNREGISTER: ("type", "request", "registration"),
    YIELD: ("type", "request", "options", "args", "kwargs"),
}

_CONTAINERS = (list, tuple, dict)
#: Values that need no further look: no nesting, nothing out of range.
_PLAIN = frozenset({type(None), bool, float, str, bytes})
_ALLOWED = _PLAIN | {int, list, tuple, dict}


class MessageTooDeep(Exception):
    """A client's message nests deeper than the limit (the client's doing, never ours).

    Raised from inside autobahn's decoding, so that the ProtocolError autobahn
    makes of it carries this as its ``__context__`` and the guard can tell it
    from other undecodable frames.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"WAMP message nested more than {limit} levels deep")
        self.limit = limit


@dataclass(frozen=True)
class Problem:
    """Why a decoded message is refused, in words for the client that sent it."""

    reason: str
    #: True: too deep (the connection is closed); False: a value our components cannot receive.
    too_deep: bool = False


def decoder_hit_its_depth_limit(exc: BaseException) -> bool:
    """True if a binary decoder refused a frame for its own nesting limit (deeper than any we allow).

    msgpack's C unpacker stops at 1024 levels (``StackError``), cbor2's at 400
    (``CBORDecodeError: maximum container nesting depth``). Told by name, so
    that a decoder's other refusals stay plain protocol errors.
    """
    name = type(exc).__name__
    return name == "StackError" or (name == "CBORDecodeError" and "nesting depth" in str(exc))


def answerable(message: Any) -> tuple[int, int] | None:
    """(message type, request id) if ``message`` is a request a router answers with ERROR."""
    if (isinstance(message, list) and len(message) >= 2 and type(message[0]) is int and message[0] in ANSWERABLE
            and type(message[1]) is int and 0 <= message[1] <= MAX_WAMP_ID):
        return message[0], message[1]
    return None


def check_message(message: Any, max_depth: int) -> Problem | None:
    """The first problem found in a decoded WAMP message, or None.

    Depth counts containers: ``[1, "realm", {}]`` is 2 deep.
    """
    if not isinstance(message, _CONTAINERS):
        return None  # not a WAMP message at all: autobahn refuses it
    fields = _FIELDS.get(message[0], ()) if isinstance(message, list) and message and type(message[0]) is int else ()
    level: list[tuple[Any, tuple[Any, ...]]] = [(message, ())]
    depth = 1
    while level:
        if depth > max_depth:
            return Problem(f"WAMP message nested more than {max_depth} levels deep", too_deep=True)
        below: list[tuple[Any, tuple[Any, ...]]] = []
        for container, path in level:
            if isinstance(container, dict):
                bad_key = _first_bad_key(container)
                if bad_key is not None:
                    return Problem(f"{_name(path, fields)} has the map key {_show(bad_key)}: "
                                   "map keys must be strings")
                items: Iterable[tuple[Any, Any]] = container.items()
                kinds = set(map(type, container.values()))
            else:
                items = enumerate(container)
                kinds = set(map(type, container))
            if kinds <= _PLAIN:
                continue  # nothing below, nothing out of range: the usual leaf
            for key, value in items:
                kind = type(value)
                if kind in _PLAIN:
                    continue
                if kind is int:
                    if not INT64_MIN <= value <= INT64_MAX:
                        return Problem(f"{_name(path + (key,), fields)}: {INT_RANGE}, not {_show(value)}")
                elif kind in _CONTAINERS:
                    below.append((value, path + (key,)))
                elif kind not in _ALLOWED:
                    return Problem(f"{_name(path + (key,), fields)} is a {kind.__name__}, which the gateway "
                                   "does not take: send null, booleans, numbers, strings, lists and maps")
        level = below
        depth += 1
    return None


def _first_bad_key(mapping: dict[Any, Any]) -> Any:
    if set(map(type, mapping)) <= {str}:
        return None
    return next(k for k in mapping if type(k) is not str)


def _name(path: tuple[Any, ...], fields: tuple[str, ...]) -> str:
    """``("args", 0, "x")`` -> ``args[0].x``; the first step named after the message's field."""
    if not path:
        return "the message"
    first = path[0]
    text = fields[first] if isinstance(first, int) and first < len(fields) else f"element {first}"
    for step in path[1:]:
        if isinstance(step, str) and step.isidentifier():
            text += f".{step}"
        else:
            text += f"[{_show(step)}]"
    return text


def _show(value: Any) -> str:
    """A value for an error message: short, and never a 4,300-digit integer (str() refuses those)."""
    if type(value) is int and abs(value) >= 10**30:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"an integer of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
