"""The bridge's HTTP API as pure functions: request bytes and headers in, an answer out.

Nothing here touches a socket or Twisted; ``webapp_bridge.server.http`` adapts it.
Every answer to a caller's mistake is a 4xx with a JSON body
``{"error": <code>, "message": <sentence>, "details": [...]?}`` saying what
was wrong and where. Every JSON body (HTTP or RabbitMQ) is read by
``read_json``, through the edge checks of ``components.limits``.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from components.config import ApiKey
from components.delivery.results import IdOrigin, Refused, RefusalCode, from_wire
from components.events import InvalidEventData, Registry
from components.exceptions import UnknownEvent
from components.limits import DEFAULT_MAX_DEPTH, EdgeError, Limits, too_large
from components.auth.credentials import ROLE, AuthFailure, check_roles, check_user

#: Keys a POST /events body may have.
_EVENT_KEYS = frozenset({"event", "data", "id", "audience"})
#: Most users (or roles) one audience may name.
MAX_AUDIENCE = 10_000
#: What an event id (idempotency key) may be, wherever it comes from.
EVENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: What a 503 says: try again in a second.
RETRY = (("Retry-After", "1"),)

#: The HTTP status of each refusal code of the dispatcher (``components.delivery.results``): the one
#: table POST /events, XML-RPC (a fault's code) and RabbitMQ ingest (``x-gateway-status``) answer with.
REFUSAL_STATUS: Mapping[RefusalCode, int] = MappingProxyType({
    RefusalCode.UNKNOWN_EVENT: 404,
    RefusalCode.CONFLICT: 409,
    RefusalCode.UNAVAILABLE: 503,
})
if set(REFUSAL_STATUS) != set(RefusalCode):  # a new code must get its status here
    raise ImportError(f"REFUSAL_STATUS lacks {sorted(set(RefusalCode) - set(REFUSAL_STATUS))}")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body and extra headers (or a body encoded already, e.g. XML-RPC's XML)."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    #: Sent as it is instead of ``body`` as JSON.
    raw: bytes | None = None
    content_type: str = "application/json"
    #: The error codes of the events this answer refuses, when its body cannot say (XML-RPC's XML):
    #: what the metrics count (``webapp_bridge.server.counting``). None: read from the status and body.
    refusals: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PublishRequest:
    """A validated event, ready for the dispatcher."""

    event: str
    data: dict[str, Any]
    id: str | None = None
    #: ``{"users": [...], "roles": [...]}``: only these may receive it (None: whoever may see the class).
    audience: dict[str, list[str]] | None = None

    def item(self, event_id: str, origin: IdOrigin = IdOrigin.GIVEN) -> list[Any]:
        """The dispatcher's item for this event: ``[event, data, id, audience, origin]``."""
        return [self.event, self.data, event_id, self.audience, int(origin)]


@dataclass(frozen=True)
class SubscriptionRequest:
    user: str
    roles: list[str]
    query: str


@dataclass(frozen=True)
class TicketRequest:
    user: str
    roles: list[str]
    ttl: float


@dataclass(frozen=True)
class BridgeLogic:
    """The rules of the web-app interface, given the keys and the event classes."""

    api_keys: tuple[ApiKey, ...]
    registry: Registry
    max_body_bytes: int
    max_batch: int = 1000
    ticket_ttl: float = 60
    max_ticket_ttl: float = 3600
    #: ``bridge.max_depth``: how deep a body (or an XML-RPC call's document) may nest.
    max_depth: int = DEFAULT_MAX_DEPTH
    _keys: tuple[tuple[bytes, str], ...] = field(init=False, repr=False)
    #: The edge checks every body goes through: depth before parsing, then numbers. (Size comes first,
    #: where the body is received: ``http`` refuses it before reading it, ``amqp_rules`` on delivery.)
    limits: Limits = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", tuple((k.key.encode(), k.name) for k in self.api_keys))
        object.__setattr__(self, "limits", Limits(self.max_depth))

    def authenticate(self, authorization: str | None) -> str | Answer:
        """The name of the key the Authorization header holds, else the 401 answer.

        ``Bearer <api key>``, or ``Basic base64(<anything>:<api key>)`` for the
        clients that only do Basic auth (many XML-RPC ones: Python's, given
        ``http://user:key@host/RPC2``). The user part of Basic is ignored.
        """
        if not authorization:
            return error(401, "unauthorized", "missing Authorization header: send 'Authorization: Bearer <api key>'",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway"'),))
        scheme, _, token = authorization.strip().partition(" ")
        key = token.strip().encode() if scheme.lower() == "bearer" else \
            _basic_password(token.strip()) if scheme.lower() == "basic" else None
        if not key:
            return error(401, "unauthorized", "the Authorization header must be 'Bearer <api key>' "
                         "or 'Basic ' + base64 of '<anything>:<api key>'",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway"'),))
        name = _matching(key, self._keys)
        if name is None:
            return error(401, "unauthorized", "the API key is not valid",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway", error="invalid_token"'),))
        return name

    def too_large(self) -> Answer:
        return refused(too_large(self.max_body_bytes))

    def read_json(self, body: bytes) -> Any:
        """The JSON document a body holds, or the 4xx answer saying why not: every JSON body the bridge
        reads (HTTP or RabbitMQ) goes through the edge checks of ``components.limits`` here."""
        try:
            return self.limits.loads(body)
        except EdgeError as exc:
            return refused(exc)

    def parse_event(self, body: bytes) -> PublishRequest | Answer:
        """Turn a POST /events body into a PublishRequest, or the 4xx answer saying why not.

        The Content-Type is not checked: the body is JSON or it is refused, and a
        curl without ``-H 'Content-Type: application/json'`` should just work.
        """
        doc = self.read_json(body)
        if isinstance(doc, Answer):
            return doc
        return self.check_event(doc)

    def parse_batch(self, body: bytes) -> list[PublishRequest | Answer] | Answer:
        """A POST /events/batch body: one PublishRequest or refusal per item, in order."""
        doc = self.read_json(body)
        if isinstance(doc, Answer):
            return doc
        if not isinstance(doc, dict):
            return error(400, "invalid_request", f"the body must be a JSON object, not {_json_type(doc)}")
        unknown = sorted(set(doc) - {"events"})
        if unknown:
            return error(400, "invalid_request", f"unknown key(s) in the body: {', '.join(unknown)}",
                         details=[{"path": k, "message": "unknown key", "type": "extra_forbidden"} for k in unknown])
        items = doc.get("events")
        if not isinstance(items, list):
            what = "missing" if items is None else f"{_json_type(items)}, not an array"
            return error(400, "invalid_request", f"'events' must be an array of events ({what})",
                         details=[{"path": "events", "message": "must be an array", "type": "list_type"}])
        if len(items) > self.max_batch:
            return error(400, "too_many_events",
                         f"a batch holds at most {self.max_batch} events; this one has {len(items)}")
        return [self.check_event(item, f"events.{i}.") for i, item in enumerate(items)]

    def check_event(self, doc: Any, where: str = "") -> PublishRequest | Answer:
        """One event object (the body of POST /events, or an item of a batch at ``where``)."""
        if not isinstance(doc, dict):
            what = where[:-1] if where else "the body"
            return error(400, "invalid_request", f"{what} must be a JSON object, not {_json_type(doc)}")
        unknown = sorted(set(doc) - _EVENT_KEYS)
        if unknown:
            return error(400, "invalid_request", f"unknown key(s): {', '.join(where + k for k in unknown)}",
                         details=[{"path": where + k, "message": "unknown key", "type": "extra_forbidden"}
                                  for k in unknown])
        name = doc.get("event")
        if name is None:
            return error(400, "invalid_request", "missing 'event': the name of the event class, e.g. 'demo.message'",
                         details=[{"path": where + "event", "message": "required", "type": "missing"}])
        if not isinstance(name, str):
            return error(400, "invalid_request", f"'event' must be a string, not {_json_type(name)}",
                         details=[{"path": where + "event", "message": "must be a string", "type": "string_type"}])
        event_id = doc.get("id")
        if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.match(event_id)):
            return error(400, "invalid_request",
                         "'id' must be a string of 1 to 128 letters, digits or . _ : -",
                         details=[{"path": where + "id", "message": "invalid id", "type": "string_pattern_mismatch"}])
        try:
            cls = self.registry.get(name)
        except UnknownEvent:
            known = ", ".join(sorted(c.name for c in self.registry))
            return error(404, "unknown_event", f"no event class named {name!r} (known: {known})")
        if "data" not in doc:
            return error(400, "invalid_event", f"missing 'data': the payload of the {name} event",
                         details=[{"path": where + "data", "message": "required", "type": "missing"}])
        try:
            data = cls.validate(doc["data"])
        except InvalidEventData as exc:
            return error(400, "invalid_event", f"the data does not match the event class {name}",
                         details=[{**e.as_dict(), "path": ".".join(p for p in (f"{where}data", e.path) if p)}
                                  for e in exc.errors])
        audience: dict[str, list[str]] | None = None
        if "audience" in doc:
            checked = check_audience(doc["audience"], where + "audience")
            if isinstance(checked, Answer):
                return checked
            audience = checked
        return PublishRequest(event=name, data=data, id=event_id, audience=audience)

    def parse_ticket(self, body: bytes) -> TicketRequest | Answer:
        """A POST /tickets body: ``{"user", "roles"?, "ttl"?}``."""
        doc = _object(self.read_json(body), ("user", "roles", "ttl"))
        if isinstance(doc, Answer):
            return doc
        if "user" not in doc:
            return error(400, "invalid_request", "missing 'user': the id of the user the ticket logs in",
                         details=[{"path": "user", "message": "required", "type": "missing"}])
        ttl = doc.get("ttl", self.ticket_ttl)
        who = _user_and_roles(doc)
        if isinstance(who, Answer):
            return who
        user, roles = who
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= self.max_ticket_ttl:
            message = f"ttl must be a number of seconds, more than 0 and at most {self.max_ticket_ttl:g}"
            return error(400, "invalid_request", f"{message} (got {ttl!r})",
                         details=[{"path": "ttl", "message": message, "type": "value_error"}])
        return TicketRequest(user, roles, float(ttl))

    def parse_subscription(self, body: bytes) -> SubscriptionRequest | Answer:
        """A POST /subscriptions body: ``{"user", "query", "persistent": true, "roles"?}``."""
        doc = _object(self.read_json(body), ("user", "query", "persistent", "roles"))
        if isinstance(doc, Answer):
            return doc
        for key in ("user", "query"):
            if key not in doc:
                return error(400, "invalid_request", f"missing '{key}'",
                             details=[{"path": key, "message": "required", "type": "missing"}])
        if not isinstance(doc["query"], str):
            return error(400, "invalid_request", f"'query' must be a string, not {_json_type(doc['query'])}",
                         details=[{"path": "query", "message": "must be a string", "type": "string_type"}])
        if doc.get("persistent", True) is not True:
            return error(400, "invalid_request", "'persistent' must be true: a subscription made for a user who may "
                         "not be connected is kept until they come back (and replayed then)",
                         details=[{"path": "persistent", "message": "must be true", "type": "value_error"}])
        who = _user_and_roles(doc)
        if isinstance(who, Answer):
            return who
        return SubscriptionRequest(*who, doc["query"])

    def parse_listing(self, query: Mapping[str, Sequence[str]]) -> dict[str, str] | Answer:
        """GET /subscriptions' query string: ``?user=<id>`` or ``?event=<class>`` or neither, as the
        keyword arguments of the listing; a user id is checked as POST /subscriptions checks it."""
        unknown = sorted(set(query) - {"user", "event"})
        if unknown or len(query) > 1 or any(len(v) != 1 for v in query.values()):
            return error(400, "invalid_request", "list by one user (?user=<id>) or by one event class "
                         "(?event=<class>), or give neither for all")
        listing = {k: v[0] for k, v in query.items()}
        if "user" in listing:
            try:
                check_user(listing["user"])
            except AuthFailure as exc:
                return error(400, "invalid_request", str(exc),
                             details=[{"path": "user", "message": str(exc), "type": "value_error"}])
        return listing

    def catalog(self) -> Answer:
        """GET /catalog: every event class, for web-apps (which may publish any of them)."""
        return Answer(200, self.registry.catalog("backend"))


def _object(doc: Any, keys: tuple[str, ...]) -> dict[str, Any] | Answer:
    """A JSON object body (as ``read_json`` gave it) with only these keys, or the 400 saying what is wrong."""
    if isinstance(doc, Answer):
        return doc
    if not isinstance(doc, dict):
        return error(400, "invalid_request", f"the body must be a JSON object, not {_json_type(doc)}")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        return error(400, "invalid_request", f"unknown key(s): {', '.join(unknown)} (expected {', '.join(keys)})",
                     details=[{"path": k, "message": "unknown key", "type": "extra_forbidden"} for k in unknown])
    return doc


def refused(exc: EdgeError) -> Answer:
    """The answer to a body refused at the edge: 413 too_large, 400 malformed_json, too_deep, invalid_number."""
    return error(exc.status, exc.code, exc.message, details=exc.details)


def check_audience(value: Any, where: str = "audience") -> dict[str, list[str]] | Answer:
    """``{"users": [...], "roles": [...]}``: who alone may receive an event. Naming no one is a mistake."""
    if not isinstance(value, dict):
        return error(400, "invalid_request", f"'{where}' must be an object like "
                     f'{{"users": ["alice"], "roles": ["staff"]}}, not {_json_type(value)}',
                     details=[{"path": where, "message": "must be an object", "type": "dict_type"}])
    unknown = sorted(set(value) - {"users", "roles"})
    if unknown:
        return error(400, "invalid_request", f"unknown key(s) in {where}: {', '.join(unknown)} (expected users, roles)",
                     details=[{"path": f"{where}.{k}", "message": "unknown key", "type": "extra_forbidden"}
                              for k in unknown])
    out: dict[str, list[str]] = {}
    for key, check in (("users", check_user), ("roles", _role)):
        items = value.get(key, [])
        path = f"{where}.{key}"
        if not isinstance(items, list):
            return error(400, "invalid_request", f"'{path}' must be a list, not {_json_type(items)}",
                         details=[{"path": path, "message": "must be a list", "type": "list_type"}])
        if len(items) > MAX_AUDIENCE:
            return error(400, "invalid_request", f"'{path}' names {len(items)}; at most {MAX_AUDIENCE}",
                         details=[{"path": path, "message": "too long", "type": "too_long"}])
        for i, item in enumerate(items):
            try:
                check(item, f"{path}.{i}")
            except AuthFailure as exc:
                return error(400, "invalid_request", str(exc),
                             details=[{"path": f"{path}.{i}", "message": str(exc), "type": "value_error"}])
        out[key] = sorted(set(items))
    if not out["users"] and not out["roles"]:
        return error(400, "invalid_request", f"'{where}' names no users and no roles: the event would reach no one "
                     "(leave 'audience' out to reach everyone who may see the class)",
                     details=[{"path": where, "message": "names no one", "type": "value_error"}])
    return out


def _role(value: Any, where: str) -> str:
    if not isinstance(value, str) or not ROLE.match(value):
        raise AuthFailure(f"{where} ({value!r}) must be a role name: lower-case letters, digits, _")
    return value


def alive(process: str, pid: int, listening_for: float, in_flight: int, max_in_flight: int,
          draining: bool = False, hand_off: Mapping[str, Any] | None = None,
          forward: Mapping[str, Any] | None = None) -> Answer:
    """``GET /livez``: this bridge process answers, so its reactor runs. Always 200, whatever the load.

    Liveness, apart from readiness (``GET /healthz``: can an event posted now be accepted): a bridge at its
    in-flight limit is busy, not dead, so the in-flight count is only reported here, never judged; so is a
    bridge draining (its node is leaving: a restart now would cut what it finishes). Nothing
    is asked of the router, a dispatcher or the store: a probe must not fail because they are slow or away
    (readiness says that), nor add to a busy bridge's work. ``hand_off``: where this bridge's new connections
    are served (``handoff.HandOff.state``); ``forward``: which way its events go to the active dispatcher
    (``forward.Forwarding.state``).
    """
    return Answer(200, {"status": "alive", "process": process, "pid": pid, "uptime": round(listening_for, 3),
                        "in_flight": in_flight, "max_in_flight": max_in_flight, "draining": draining,
                        "hand_off": dict(hand_off) if hand_off is not None else {"state": "off"},
                        "forward": dict(forward) if forward is not None else {"state": "off"}},
                  (("X-Gateway-Process", process), ("Cache-Control", "no-store")))


def ticket_issued(result: dict[str, Any]) -> Answer:
    return Answer(201, result)


def refusal_answer(refused: Refused) -> Answer:
    """A refusal of the dispatcher as POST /events answers it: its status from ``REFUSAL_STATUS``."""
    status = REFUSAL_STATUS[refused.code]
    return Answer(status, refused.to_wire(), RETRY if status == 503 else ())


def published(result: Mapping[str, Any]) -> Answer:
    """The answer to POST /events for one result of the dispatcher (as it came over WAMP)."""
    outcome = from_wire(result)
    return refusal_answer(outcome) if isinstance(outcome, Refused) else Answer(202, outcome.to_wire())


def batch_results(items: list[PublishRequest | Answer], results: Sequence[Mapping[str, Any]]) -> Answer:
    """The answer to POST /events/batch: each refusal in place, each published item's result."""
    published_results = iter(results)
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, PublishRequest):
            outcome = from_wire(next(published_results))
            if not isinstance(outcome, Refused):
                out.append(outcome.to_wire())
                continue
            item = refusal_answer(outcome)
        out.append({**item.body, "status": item.status})  # the dispatcher's refusals as the bridge's own
    return Answer(200, {"results": out})


def error(status: int, code: str, message: str, *, details: list[dict[str, str]] | None = None,
          headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return Answer(status, body, headers)


def _basic_password(credentials: str) -> bytes | None:
    """The password of Basic credentials (``base64(user:password)``), None if they are not that."""
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except ValueError:  # binascii.Error: not base64
        return None
    user, colon, password = decoded.partition(b":")
    return password if colon else None


def _matching(token: bytes, keys: Iterable[tuple[bytes, str]]) -> str | None:
    # Compare with every key in constant time, so timing tells nothing of which failed where.
    found = None
    for key, name in keys:
        if hmac.compare_digest(token, key):
            found = name
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _user_and_roles(doc: Mapping[str, Any]) -> tuple[str, list[str]] | Answer:
    """A request's ``user`` and ``roles`` by the identity rules (``check_user``, ``check_roles``), or the
    400 naming the first that breaks them."""
    checked: dict[str, Any] = {}
    for key, rule in (("user", check_user), ("roles", check_roles)):
        try:
            checked[key] = rule(doc.get(key), key)
        except AuthFailure as exc:
            return error(400, "invalid_request", str(exc),
                         details=[{"path": key, "message": str(exc), "type": "value_error"}])
    return checked["user"], list(checked["roles"])
