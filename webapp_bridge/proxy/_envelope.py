"""The gateway's rules for what surrounds an event (id, audience, users, roles), applied before sending.

Pure, standard library only. The same rules as webapp_bridge.server.api and
components.auth.credentials, word for word in their messages, so that a refusal
found here reads like one from the gateway (tests/unit/webapp_bridge/test_proxy.py holds
them together). Over AMQP nobody answers: a mistake found here is the only
one the web-app ever sees, instead of a dead-lettered message.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from webapp_bridge.proxy._errors import EventRejected, RequestRejected
from webapp_bridge.schemacheck import NON_FINITE, number_problems, string_problems

#: Keys a POST /events body may have.
EVENT_KEYS = frozenset({"event", "data", "id", "audience"})
MAX_AUDIENCE = 10_000
MAX_USER_LENGTH = 255
MAX_ROLES = 32
#: Bad numbers a refusal lists at most, as the gateway lists them (components.limits.MAX_REPORTED).
MAX_REPORTED = 20
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_event_id() -> str:
    """A fresh idempotency id: every retry of one publish call sends this same id."""
    return uuid.uuid4().hex


def check_id(value: Any, where: str = "") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise EventRejected(400, "invalid_request", "'id' must be a string of 1 to 128 letters, digits or . _ : -",
                            [{"path": where + "id", "message": "invalid id", "type": "string_pattern_mismatch"}])
    return value


def check_user(user: object, what: str = "user") -> str:
    """A user id: any non-empty text up to 255 characters without control characters (ValueError if not)."""
    if not isinstance(user, str):
        raise ValueError(f"{what} must be a string, not {_kind(user)}")
    if not user or len(user) > MAX_USER_LENGTH or _CONTROL.search(user) or user != user.strip():
        raise ValueError(f"{what} must be 1 to {MAX_USER_LENGTH} characters, without control characters "
                         "or surrounding spaces")
    return user


def check_roles(roles: object, what: str = "roles") -> list[str]:
    """A user's roles: lower-case names (e.g. ``["staff"]``), at most 32, sorted (ValueError if not)."""
    if roles is None:
        return []
    if isinstance(roles, (tuple, set, frozenset)):
        roles = sorted(roles) if isinstance(roles, (set, frozenset)) else list(roles)
    if not isinstance(roles, list):
        raise ValueError(f"{what} must be a list of role names, not {_kind(roles)}")
    if len(roles) > MAX_ROLES:
        raise ValueError(f"{what} holds {len(roles)} roles; at most {MAX_ROLES}")
    for i, role in enumerate(roles):
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise ValueError(f"{what}[{i}] ({role!r}) must be a lower-case name: letters, digits, _ (e.g. 'staff')")
        if role in ("anonymous", "backend"):
            raise ValueError(f"{what}[{i}]: {role!r} is the gateway's own role and cannot be given to a user")
    return sorted(set(roles))


def login_request(user: object, roles: object) -> tuple[str, list[str]]:
    """A ticket's or a JWT's user and roles, or the RequestRejected the gateway would answer."""
    checked: list[Any] = []
    for key, rule in (("user", check_user), ("roles", check_roles)):
        try:
            checked.append(rule(user if key == "user" else roles, key))
        except ValueError as exc:
            raise RequestRejected(400, "invalid_request", str(exc),
                                  [{"path": key, "message": str(exc), "type": "value_error"}]) from None
    return checked[0], checked[1]


def check_audience(value: Any, where: str = "audience") -> dict[str, list[str]]:
    """``{"users": [...], "roles": [...]}``: who alone may receive an event; naming no one is a mistake.

    Tuples and sets are taken for lists. Returns the audience with each list
    sorted and without repeats, as the gateway keeps it.
    """
    if not isinstance(value, Mapping):
        raise _invalid(f"'{where}' must be an object like {{\"users\": [\"alice\"], \"roles\": [\"staff\"]}}, "
                       f"not {_json_type(value)}", where, "must be an object", "dict_type")
    unknown = sorted(set(value) - {"users", "roles"})
    if unknown:
        raise EventRejected(400, "invalid_request",
                            f"unknown key(s) in {where}: {', '.join(map(str, unknown))} (expected users, roles)",
                            [{"path": f"{where}.{k}", "message": "unknown key", "type": "extra_forbidden"}
                             for k in unknown])
    out: dict[str, list[str]] = {}
    for key in ("users", "roles"):
        items = value.get(key, [])
        path = f"{where}.{key}"
        if isinstance(items, (tuple, set, frozenset)):
            items = sorted(items, key=str) if isinstance(items, (set, frozenset)) else list(items)
        if not isinstance(items, list):
            raise _invalid(f"'{path}' must be a list, not {_json_type(items)}", path, "must be a list", "list_type")
        if len(items) > MAX_AUDIENCE:
            raise _invalid(f"'{path}' names {len(items)}; at most {MAX_AUDIENCE}", path, "too long", "too_long")
        for i, item in enumerate(items):
            try:
                if key == "users":
                    check_user(item, f"{path}.{i}")
                elif not isinstance(item, str) or not _ROLE.fullmatch(item):
                    raise ValueError(f"{path}.{i} ({item!r}) must be a role name: lower-case letters, digits, _")
            except ValueError as exc:
                raise _invalid(str(exc), f"{path}.{i}", str(exc), "value_error") from None
        out[key] = sorted(set(items))
    if not out["users"] and not out["roles"]:
        raise _invalid(f"'{where}' names no users and no roles: the event would reach no one "
                       "(leave 'audience' out to reach everyone who may see the class)",
                       where, "names no one", "value_error")
    return out


def json_data(value: Any, path: str = "data") -> Any:
    """``value`` as JSON data: what a Django developer has at hand made JSON, the way pydantic writes it.

    datetime, date and time become ISO 8601 strings, Decimal and UUID
    strings, Enum members their value, tuples and sets lists. Anything else
    that JSON cannot hold (NaN, an object, a non-string key) is an
    EventRejected naming where it is.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid_number([{"path": path, "message": NON_FINITE, "type": "finite_number"}])
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _not_json(path, f"object keys must be strings, not {_kind(key)} ({key!r})", "json_invalid")
            out[key] = json_data(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [json_data(item, f"{path}.{i}") for i, item in enumerate(items)]
    if isinstance(value, enum.Enum):
        return json_data(value.value, path)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise invalid_number([{"path": path, "message": NON_FINITE, "type": "finite_number"}])
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise _not_json(path, f"must be JSON data, not a {type(value).__name__} object", "json_invalid")


def check_numbers(data: Any, path: str = "data") -> None:
    """Refuse what the gateway refuses at its edge, in its words (``invalid_number``): integers outside
    the signed 64-bit range, NaN and Infinity, each named by its path (``data.order_id``)."""
    found = number_problems(data)[:MAX_REPORTED]
    if found:
        raise invalid_number([{"path": f"{path}.{p.path}" if p.path else path, "message": p.message,
                               "type": p.type} for p in found])


def check_strings(doc: Mapping[str, Any]) -> None:
    """Refuse what the gateway refuses at its edge before it reads a body's keys, in its words
    (``invalid_unicode``): strings and keys holding a lone UTF-16 surrogate, each named by its path in
    ``doc`` (``data.text``, ``audience.users.0``). No UTF-8 encoder could send them anyway."""
    found = string_problems(doc)[:MAX_REPORTED]
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more in details)" if len(found) > 1 else ""
        raise EventRejected(400, "invalid_unicode", f"{first.path}: {first.message}{more}",
                            [p.as_dict() for p in found])


def invalid_number(details: list[dict[str, str]]) -> EventRejected:
    """The gateway's refusal of numbers it cannot carry: the first named in the message, each in details."""
    first = details[0]
    more = f" (and {len(details) - 1} more in details)" if len(details) > 1 else ""
    return EventRejected(400, "invalid_number", f"{first['path']}: {first['message']}{more}", details)


def check_depth(data: Any, max_depth: int, batched: bool = False) -> None:
    """Refuse data that would make its body nest deeper than bridge.max_depth (the body is level 1, the
    data level 2; in a batch body ``{"events": [...]}``, level 4), before anything recurses into it."""
    start = 4 if batched else 2
    stack: list[tuple[Any, str, int]] = [(data, "data", start)]
    while stack:
        item, path, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.items()
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = enumerate(item)
        else:
            continue
        if level > max_depth:
            where = "a batch body" if batched else "the body"
            raise EventRejected(400, "too_deep", f"{where} would nest arrays and objects more than {max_depth} "
                                f"levels deep (bridge.max_depth), at {path}" + (
                                    " (a batch holds the data of its events 2 levels deeper than a single "
                                    "event's body)" if batched else ""))
        stack.extend((child, f"{path}.{key}", level + 1) for key, child in children)


def encode(body: Mapping[str, Any]) -> bytes:
    """A JSON body as the gateway reads it (compact, UTF-8)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def too_large(size: int, limit: int) -> EventRejected:
    return EventRejected(413, "too_large", f"the event is {size} bytes as JSON, over the gateway's limit of "
                         f"{limit} bytes (bridge.max_body_bytes)")


def _invalid(message: str, path: str, short: str, kind: str) -> EventRejected:
    return EventRejected(400, "invalid_request", message, [{"path": path, "message": short, "type": kind}])


def _not_json(path: str, message: str, kind: str) -> EventRejected:
    return EventRejected(400, "invalid_event", f"the data is not JSON data: {path}: {message}",
                         [{"path": path, "message": message, "type": kind}])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
