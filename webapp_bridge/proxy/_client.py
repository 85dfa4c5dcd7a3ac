"""GatewayProxy: the web-app's one object for talking to the gateway."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webapp_bridge.proxy import _jwt
from webapp_bridge.proxy._answers import RETRY_STATUSES, batch_item_details
from webapp_bridge.proxy._envelope import (
    EVENT_KEYS,
    check_audience,
    check_depth,
    check_id,
    check_numbers,
    check_strings,
    encode,
    json_data,
    login_request,
    new_event_id,
    too_large,
)
from webapp_bridge.proxy._errors import EventRejected, ProxyConfigError, RequestRejected
from webapp_bridge.proxy._http import HttpClient
from webapp_bridge.proxy._retry import Backoff, Transient, with_retries
from webapp_bridge.proxy._settings import ProxySettings, read_settings
from webapp_bridge.proxy._validation import LocalValidator
from webapp_bridge.proxy._xmlrpc import XmlRpcClient
from webapp_bridge.proxy._xmlrpc import dumps as xml_dumps

#: Room left in a batch's body for the wrapping around the events (``{"events":[...]}``) and XML-RPC's markup.
_BATCH_OVERHEAD = 512


@dataclass(frozen=True)
class Published:
    """An event the gateway accepted (or, over AMQP, the broker holds for it).

    ``seq`` is the gateway's number for it; None over AMQP, where the event is
    ``queued``: durably in the broker's queue, published once the gateway
    takes it. ``duplicate``: this id had been accepted before (a retry).
    """

    id: str
    seq: int | None
    queued: bool = False
    duplicate: bool = False


@dataclass(frozen=True)
class Ticket:
    """A one-time WAMP-ticket login for ``user``'s browser; ``expires_at`` is RFC 3339 (UTC)."""

    ticket: str
    expires_at: str
    user: str
    roles: tuple[str, ...]

    def __repr__(self) -> str:  # a ticket is a credential: keep it out of logs
        return f"Ticket(user={self.user!r}, roles={self.roles!r}, expires_at={self.expires_at!r})"


class GatewayProxy:
    """Publishes events, issues tickets and mints JWTs for one gateway; safe to share between threads.

    Make one per process with ``GatewayProxy.from_config("gateway.yaml")``;
    the transport (http, xmlrpc or amqp) is the configuration's choice, the
    calls are the same for all three.
    """

    def __init__(self, settings: ProxySettings, *, validate: bool = True) -> None:
        self.settings = settings
        self.validate = validate
        self._backoff = Backoff(settings.retries, settings.backoff, settings.max_backoff)
        self._http = HttpClient(settings.url, settings.api_key, settings.api_key_name, settings.timeout)
        self._xmlrpc: XmlRpcClient | None = None
        self._amqp: Any = None
        if settings.transport == "xmlrpc":
            self._xmlrpc = XmlRpcClient(settings.url, settings.api_key, settings.api_key_name, settings.timeout)
        elif settings.transport == "amqp":
            from webapp_bridge.proxy._amqp import AmqpPublisher

            assert settings.amqp_url is not None  # read_settings refuses amqp without a URL
            self._amqp = AmqpPublisher(settings.amqp_url, settings.amqp_queue, settings.timeout, settings.cluster)
        self._validator = LocalValidator(settings, lambda: self._http.request("GET", "/catalog"))
        self._names: dict[type, str] = {}
        self._names_lock = threading.Lock()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] = "gateway.yaml", transport: str | None = None,
                    env: Mapping[str, str] | None = None, *, validate: bool = True) -> GatewayProxy:
        """A proxy configured by gateway.yaml (``env`` None: os.environ's GATEWAY_* overrides apply).

        ``transport`` overrides proxy.transport. ``validate=False`` sends events
        without checking them against their classes first (the gateway still does).
        """
        return cls(read_settings(path, env, transport), validate=validate)

    @property
    def transport(self) -> str:
        return self.settings.transport

    def __repr__(self) -> str:  # never a key, secret or password
        where = self._amqp.shown_url if self._amqp is not None else self.settings.url
        return f"<GatewayProxy {self.transport} {where} key={self.settings.api_key_name!r}>"

    # -- events ------------------------------------------------------------

    def publish(self, event: Any, data: Any = None, *, audience: Mapping[str, Any] | None = None,
                id: str | None = None) -> Published:
        """Publish one event: an Event instance, or an event class name and its data.

        ``id`` is the idempotency key (default: a fresh one, the same for every
        retry of this call); ``audience`` ``{"users": [...], "roles": [...]}``
        limits who receives it. Raises EventRejected (bad event, never retried),
        GatewayUnavailable (after proxy.retries retries) or ProxyConfigError.
        """
        name, data = self._named(event, data)
        body = self._body(name, data, audience, id)
        result = with_retries(lambda: self._send(body), self._backoff, f"publishing {name}", [body["id"]])
        return _published(result, body["id"], self._amqp is not None)

    def publish_many(self, items: Iterable[Any]) -> list[Published | EventRejected]:
        """Publish several events; each item's outcome in order: Published, or EventRejected for a bad one.

        Items are Event instances, ``(name, data)`` pairs or POST /events-style
        dicts ``{"event", "data", "audience"?, "id"?}``. Bad items are refused
        here without being sent; the rest go in as few requests as the
        gateway's limits allow (one POST /events/batch, one XML-RPC
        publish_batch, or one AMQP message each). GatewayUnavailable when the
        gateway stays away; its ``ids`` are the ids of the good items, in order
        (give items ids of your own to publish them again without duplicates).
        """
        outcomes: list[Published | EventRejected | None] = []
        bodies: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(items):
            outcomes.append(None)
            try:
                name, data, audience, event_id = self._item(index, item)
                # Over HTTP and XML-RPC the events go in batches, where their data sits 2 levels deeper.
                bodies.append((index, self._body(name, data, audience, event_id, batched=self._amqp is None)))
            except EventRejected as exc:
                outcomes[index] = exc
        ids = [body["id"] for _, body in bodies]
        queued = self._amqp is not None
        for chunk in self._chunks(bodies):
            what = f"publishing {len(chunk)} events" if len(chunk) > 1 else f"publishing {chunk[0][1]['event']}"
            if queued:
                results = [self._send_retried(body, what, ids) for _, body in chunk]
            else:
                batch = [body for _, body in chunk]
                results = with_retries(lambda: self._send_batch(batch), self._backoff, what, ids)
            for (index, body), result in zip(chunk, results):
                outcomes[index] = _outcome(result, body["id"], queued)
        return [o for o in outcomes if o is not None]

    # -- logins ------------------------------------------------------------

    def ticket(self, user: str, roles: Iterable[str] = (), ttl: float | None = None) -> Ticket:
        """A one-time WAMP-ticket for ``user``'s browser, from the gateway (POST /tickets or XML-RPC).

        ``ttl`` in seconds (default auth.ticket_ttl, at most auth.max_ticket_ttl).
        """
        name, granted = login_request(user, _roles(roles))
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0):
            message = f"ttl must be a number of seconds, more than 0 (got {ttl!r})"
            raise RequestRejected(400, "invalid_request", message,
                                  [{"path": "ttl", "message": message, "type": "value_error"}])
        if self._xmlrpc is not None:
            client = self._xmlrpc
            params: list[Any] = [name, granted] + ([ttl] if ttl is not None else [])
            result = with_retries(lambda: client.call("issue_ticket", *params), self._backoff,
                                  f"issuing a ticket for {name!r}")
        else:
            body: dict[str, Any] = {"user": name, "roles": granted}
            if ttl is not None:
                body["ttl"] = ttl
            result = with_retries(lambda: self._http.request("POST", "/tickets", body), self._backoff,
                                  f"issuing a ticket for {name!r}")
        return Ticket(str(result["ticket"]), str(result["expires_at"]), str(result.get("user", name)),
                      tuple(result.get("roles", granted)))

    def jwt(self, user: str, roles: Iterable[str] = (), ttl: float | None = None) -> str:
        """A JWT login for ``user`` signed here with auth.secret (no request to the gateway).

        ``ttl`` defaults to an hour and is capped at auth.max_jwt_ttl.
        ProxyConfigError when auth.secret is not set.
        """
        secret = self.settings.jwt_secret
        if secret is None:
            raise ProxyConfigError(f"{self.settings.source}: auth.secret is not set (nor env GATEWAY_SECRET), so "
                                   "JWT logins are off: set the secret the gateway shares (at least 32 characters) "
                                   "or use proxy.ticket(user)")
        name, granted = login_request(user, _roles(roles))
        try:
            seconds = _jwt.lifetime(ttl, self.settings.max_jwt_ttl)
        except ValueError as exc:
            raise RequestRejected(400, "invalid_request", str(exc),
                                  [{"path": "ttl", "message": str(exc), "type": "value_error"}]) from None
        return _jwt.mint(secret, name, granted, time.time(), seconds, self.settings.realm)

    def client_config(self, user: str | None = None, roles: Iterable[str] = (),
                      credentials: str = "ticket") -> dict[str, Any]:
        """What a page's JS client needs: ``{"url", "realm"}``, plus for a user a fresh ``ticket`` or ``jwt``."""
        if credentials not in ("ticket", "jwt"):
            raise ValueError(f"credentials must be 'ticket' or 'jwt', not {credentials!r}")
        config: dict[str, Any] = {"url": self.settings.router_url, "realm": self.settings.realm}
        granted = _roles(roles)
        if user is None:
            if granted:
                raise ValueError("roles were given without a user: anonymous clients have no roles")
            return config
        if credentials == "ticket":
            config["ticket"] = self.ticket(user, granted).ticket
        else:
            config["jwt"] = self.jwt(user, granted)
        return config

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close this process's connections (every thread's). The proxy opens new ones if used again."""
        self._http.close()
        if self._xmlrpc is not None:
            self._xmlrpc.close()
        if self._amqp is not None:
            self._amqp.close()

    def __enter__(self) -> GatewayProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside ------------------------------------------------------------

    def _named(self, event: Any, data: Any) -> tuple[str, Any]:
        """(class name, data) of publish's arguments; TypeError for a call of the wrong shape."""
        if isinstance(event, str):
            if data is None:
                raise TypeError(f"publish({event!r}) needs the event's data: publish({event!r}, {{...}})")
            return event, data
        events = sys.modules.get("components.events.event")  # an Event instance means it is imported
        if events is not None and isinstance(event, events.Event):
            if data is not None:
                raise TypeError(f"publish() takes an {type(event).__name__} instance alone: its fields are the "
                                "data (give no data argument)")
            return self._event_name(type(event)), event.model_dump(mode="json")
        raise TypeError(f"publish() takes an Event instance, or an event class name and its data; "
                        f"not {type(event).__name__}")

    def _event_name(self, cls: type) -> str:
        name = self._names.get(cls)
        if name is None:
            from components.events import event_class_of

            name = event_class_of(cls).name
            with self._names_lock:
                self._names[cls] = name
        return name

    def _item(self, index: int, item: Any) -> tuple[str, Any, Any, Any]:
        """(name, data, audience, id) of one publish_many item, or EventRejected naming the item."""
        if isinstance(item, Mapping):
            unknown = sorted(str(k) for k in set(item) - EVENT_KEYS)
            if unknown:
                raise EventRejected(400, "invalid_request", f"unknown key(s) in item {index}: {', '.join(unknown)} "
                                    "(expected event, data, id, audience)",
                                    [{"path": k, "message": "unknown key", "type": "extra_forbidden"}
                                     for k in unknown])
            for key in ("event", "data"):
                if key not in item:
                    raise EventRejected(400, "invalid_request" if key == "event" else "invalid_event",
                                        f"item {index} has no {key!r}",
                                        [{"path": key, "message": "required", "type": "missing"}])
            if not isinstance(item["event"], str):
                raise EventRejected(400, "invalid_request", f"item {index}: 'event' must be a string",
                                    [{"path": "event", "message": "must be a string", "type": "string_type"}])
            return item["event"], item["data"], item.get("audience"), item.get("id")
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            return item[0], item[1], None, None
        try:
            name, data = self._named(item, None)
        except TypeError:
            raise EventRejected(400, "invalid_request", f"item {index} is {type(item).__name__}: expected an Event "
                                "instance, a (name, data) pair or a dict like a POST /events body") from None
        return name, data, None, None

    def _body(self, name: str, data: Any, audience: Any, event_id: Any, batched: bool = False) -> dict[str, Any]:
        """The POST /events body for an event, checked here as the gateway would; EventRejected if not good."""
        # The gateway's edge checks come before anything else it reads: so here, and in its words.
        check_depth(data, self.settings.max_depth, batched)
        check_strings({"event": name, "id": event_id, "audience": audience, "data": data})
        body: dict[str, Any] = {"event": name, "id": new_event_id() if event_id is None else check_id(event_id)}
        if audience is not None:
            body["audience"] = check_audience(audience)
        check_numbers(data)
        body["data"] = self._validator.check(name, data) if self.validate else json_data(data)
        size = len(encode(body))
        if size > self.settings.max_body_bytes:
            raise too_large(size, self.settings.max_body_bytes)
        return body

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        """One attempt at one event by the configured transport: its result ``{"id", "seq"}``."""
        if self._amqp is not None:
            self._amqp.publish(encode(body), body["id"])
            return {"id": body["id"], "seq": None}
        if self._xmlrpc is not None:
            options = {k: body[k] for k in ("id", "audience") if k in body}
            result: dict[str, Any] = self._xmlrpc.call("publish", body["event"], body["data"], options,
                                                       rejected=EventRejected)
            return result
        answer: dict[str, Any] = self._http.request("POST", "/events", body, rejected=EventRejected)
        return answer

    def _send_retried(self, body: dict[str, Any], what: str, ids: list[str]) -> dict[str, Any]:
        return with_retries(lambda: self._send(body), self._backoff, what, ids)

    def _send_batch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One attempt at several events (HTTP or XML-RPC): one result per event, in order."""
        if self._xmlrpc is not None:
            results: list[dict[str, Any]] = self._xmlrpc.call("publish_batch", bodies, rejected=EventRejected)
        else:
            results = self._http.request("POST", "/events/batch", {"events": bodies},
                                         rejected=EventRejected)["results"]
        if len(results) != len(bodies):
            raise Transient(f"the gateway answered {len(results)} results for {len(bodies)} events", True)
        for result in results:
            # An event the gateway could not take just now: the whole batch again (same ids:
            # those it took come back as duplicates).
            if result.get("status") in RETRY_STATUSES:
                raise Transient(f"the gateway answered {result.get('status')} {result.get('error')} for an "
                                f"event of the batch: {result.get('message', '')}", True)
        return results

    def _chunks(self, bodies: list[tuple[int, dict[str, Any]]]) -> Iterable[list[tuple[int, dict[str, Any]]]]:
        """The (index, body) pairs in batches the gateway takes: at most bridge.max_batch events and
        bridge.max_body_bytes each (over AMQP, one batch: each event is a message of its own)."""
        if self._amqp is not None:
            if bodies:
                yield bodies
            return
        limit = self.settings.max_body_bytes - _BATCH_OVERHEAD
        chunk: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for pair in bodies:
            item = _size(pair[1], self._xmlrpc is not None)
            if chunk and (len(chunk) >= self.settings.max_batch or size + item > limit):
                yield chunk
                chunk, size = [], 0
            chunk.append(pair)
            size += item
        if chunk:
            yield chunk


def _roles(roles: Iterable[str] | None) -> list[str] | Any:
    if roles is None or isinstance(roles, str):
        return roles  # refused by the rules below, with the gateway's words
    return list(roles)


def _size(body: dict[str, Any], as_xml: bool) -> int:
    if as_xml:
        return len(xml_dumps((body,), "publish_batch"))
    return len(encode(body)) + 1


def _published(result: Mapping[str, Any], event_id: str, queued: bool) -> Published:
    seq = result.get("seq")
    return Published(str(result.get("id", event_id)), seq if isinstance(seq, int) else None, queued,
                     bool(result.get("duplicate", False)))


def _outcome(result: Mapping[str, Any], event_id: str, queued: bool) -> Published | EventRejected:
    if "error" in result:
        return EventRejected(int(result.get("status", 400)), str(result["error"]), str(result.get("message", "")),
                             batch_item_details(result.get("details")))
    return _published(result, event_id, queued)


