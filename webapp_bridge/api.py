"""The bridge's HTTP API as pure functions: request bytes and headers in, an answer out.

Nothing here touches a socket or Twisted; ``webapp_bridge.http`` adapts it.
Every answer to a caller's mistake is a 4xx with a JSON body
``{"error": <code>, "message": <sentence>, "details": [...]?}`` saying what
was wrong and where.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from components.events import InvalidEventData, Registry
from components.exceptions import UnknownEvent

#: Keys a POST /events body may have. ``audience`` arrives with the identity
#: issue; until then it is refused rather than ignored, because ignoring it
#: would show an event to people it was meant to be hidden from.
_EVENT_KEYS = frozenset({"event", "data", "id"})
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PublishRequest:
    """A validated event, ready for the dispatcher."""

    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class BridgeLogic:
    """The rules of the web-app interface, given the keys and the event classes."""

    api_keys: tuple[str, ...]
    registry: Registry
    max_body_bytes: int
    max_batch: int = 1000
    _keys: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", tuple(k.encode() for k in self.api_keys))

    def authenticate(self, authorization: str | None) -> Answer | None:
        """None when the Authorization header holds a valid key, else the 401 answer."""
        if not authorization:
            return error(401, "unauthorized", "missing Authorization header: send 'Authorization: Bearer <api key>'",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway"'),))
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthorized", "the Authorization header must be 'Bearer <api key>'",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway"'),))
        if not _matches_any(token.strip().encode(), self._keys):
            return error(401, "unauthorized", "the API key is not valid",
                         headers=(("WWW-Authenticate", 'Bearer realm="gateway", error="invalid_token"'),))
        return None

    def too_large(self) -> Answer:
        return error(413, "too_large", f"the request body is over the limit of {self.max_body_bytes} bytes")

    def parse_event(self, body: bytes) -> PublishRequest | Answer:
        """Turn a POST /events body into a PublishRequest, or the 4xx answer saying why not.

        The Content-Type is not checked: the body is JSON or it is refused, and a
        curl without ``-H 'Content-Type: application/json'`` should just work.
        """
        doc = _decode(body)
        if isinstance(doc, Answer):
            return doc
        return self.check_event(doc)

    def parse_batch(self, body: bytes) -> list[PublishRequest | Answer] | Answer:
        """A POST /events/batch body: one PublishRequest or refusal per item, in order."""
        doc = _decode(body)
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
        if event_id is not None and (not isinstance(event_id, str) or not _ID.match(event_id)):
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
        return PublishRequest(event=name, data=data, id=event_id)

    def catalog(self) -> Answer:
        """GET /catalog: every event class, for web-apps (which may publish any of them)."""
        return Answer(200, self.registry.catalog("backend"))


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        return error(400, "malformed_json", "the body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return error(400, "malformed_json",
                     f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")


def published(result: dict[str, Any]) -> Answer:
    """The answer to POST /events for one result of the dispatcher."""
    if "error" in result:
        status = int(result.get("status", 503))
        body = {k: v for k, v in result.items() if k != "status"}
        return Answer(status, body, (("Retry-After", "1"),) if status == 503 else ())
    return Answer(202, result)


def batch_results(items: list[PublishRequest | Answer], results: list[dict[str, Any]]) -> Answer:
    """The answer to POST /events/batch: each refusal in place, each published item's result."""
    published_results = iter(results)
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Answer):
            out.append({**item.body, "status": item.status})
        else:
            out.append(next(published_results))
    return Answer(200, {"results": out})


def error(status: int, code: str, message: str, *, details: list[dict[str, str]] | None = None,
          headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return Answer(status, body, headers)


def _matches_any(token: bytes, keys: Iterable[bytes]) -> bool:
    # Compare with every key in constant time, so timing tells nothing of which failed where.
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token, key)
    return ok


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)
