"""Twisted adapter of the bridge's HTTP API (the rules live in ``webapp_bridge.server.api``).

The component gives a list of routes, each a method, a path and a handler
that turns the request body into an Answer (now or later). This module does
the HTTP: body limits, API-key checks, JSON answers, 404/405, and never a
traceback page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
import time
from dataclasses import dataclass
from urllib.parse import unquote
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import IResource, Resource

from webapp_bridge.server.accesslog import AccessLog
from webapp_bridge.server.api import Answer, BridgeLogic, error

log = Logger()

#: Turns a request body (and, for routes that ask, the request's path and query) into the answer.
Handler = Callable[..., Coroutine[Any, Any, Answer]]


@dataclass(frozen=True)
class RequestInfo:
    """What a handler with ``with_request`` gets beside the body."""

    #: The rest of the path after a prefix route's path (``/subscriptions/<id>`` → ``<id>``), else "".
    rest: str
    #: The query string's arguments, decoded: ``?user=alice`` → ``{"user": ["alice"]}``.
    query: dict[str, list[str]]


@dataclass(frozen=True)
class Route:
    method: bytes
    path: bytes
    handler: Handler
    #: Requires ``Authorization: Bearer <api key>``.
    auth: bool = True
    #: Also answers ``<path>/<anything>``; the handler gets RequestInfo (implies with_request).
    prefix: bool = False
    #: The handler is called as ``handler(body, RequestInfo)``.
    with_request: bool = False


class _LimitedRequest(server.Request):
    """A request that refuses a body over the limit before reading it into memory.

    Twisted would buffer the whole body before our resource sees it; this
    answers 413 as soon as the declared length (or, for chunked bodies, the
    bytes received so far) passes the limit, and closes the connection.
    """

    _received = 0
    _refused = False

    @property
    def _logic(self) -> BridgeLogic:
        site: BridgeSite = self.channel.site  # type: ignore[attr-defined]  # set by Site.buildProtocol
        return site.logic()

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._logic.max_body_bytes:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._logic.max_body_bytes:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:  # a refused request was answered already; never render it
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        site: BridgeSite = self.channel.site  # type: ignore[attr-defined]
        if site.access_log is not None:
            # Refused before it was routed, so before its key was checked.
            # The method and path are known to the channel (not yet to the request) at this point.
            method = getattr(self.channel, "_command", b"?")
            path = getattr(self.channel, "_path", b"?")
            site.access_log.request(method.decode(errors="replace"), path.decode(errors="replace"), 413, "-", 0.0)
        body = self._logic.too_large().encode()
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()


class BridgeSite(server.Site):
    requestFactory = _LimitedRequest

    def __init__(self, logic: Callable[[], BridgeLogic], routes: Sequence[Route],
                 access_log: AccessLog | None = None) -> None:
        #: The current rules (keys, limits, event classes): a reload swaps them.
        self.logic = logic
        self.access_log = access_log
        super().__init__(cast(IResource, _Api(self, routes)))
        self.displayTracebacks = False
        self.noisy = False

    def log(self, request: http.Request) -> None:
        """Twisted's access log is replaced by ours (``_send``), which names the API key used."""


class _Api(Resource):
    isLeaf = True

    def __init__(self, site: BridgeSite, routes: Sequence[Route]) -> None:
        super().__init__()
        self._site = site
        self._routes: dict[bytes, dict[bytes, Route]] = {}
        self._prefixes: dict[bytes, dict[bytes, Route]] = {}
        for route in routes:
            table = self._prefixes if route.prefix else self._routes
            table.setdefault(route.path, {})[route.method] = route

    def render(self, request: server.Request) -> Any:
        request.started = time.monotonic()  # type: ignore[attr-defined]
        request.key_name = "-"  # type: ignore[attr-defined]
        request.access_log = self._site.access_log  # type: ignore[attr-defined]
        path = request.path.rstrip(b"/") or b"/"
        by_method = self._routes.get(path)
        rest = b""
        if by_method is None:
            head, _, rest = path.rpartition(b"/")
            by_method = self._prefixes.get(head) if rest else None
        if by_method is None:
            _send(request, error(404, "not_found", f"no such path: {request.path.decode(errors='replace')}"))
            return server.NOT_DONE_YET
        route = by_method.get(request.method)
        if route is None:
            allowed = ", ".join(sorted(m.decode() for m in by_method))
            _send(request, error(405, "method_not_allowed",
                                 f"{request.method.decode(errors='replace')} is not allowed here; use {allowed}",
                                 headers=(("Allow", allowed),)))
            return server.NOT_DONE_YET
        if route.auth:
            key = self._site.logic().authenticate(_header(request, b"authorization"))
            if isinstance(key, Answer):
                _send(request, key)
                return server.NOT_DONE_YET
            request.key_name = key  # type: ignore[attr-defined]
        body = request.content.read() if request.content is not None else b""
        if route.prefix or route.with_request:
            query = {k.decode(errors="replace"): [v.decode(errors="replace") for v in vs]
                     for k, vs in (request.args or {}).items()}
            d = Deferred.fromCoroutine(route.handler(body, RequestInfo(unquote(rest.decode(errors="replace")),
                                                                        query)))
        else:
            d = Deferred.fromCoroutine(route.handler(body))
        d.addCallback(lambda answer: _send(request, answer))
        d.addErrback(_internal_error, request)
        return server.NOT_DONE_YET


def _send(request: server.Request, answer: Answer) -> None:
    if request._disconnected:  # the caller went away; nothing to say
        return
    body = answer.encode()
    request.setResponseCode(answer.status)
    request.setHeader(b"Content-Type", answer.content_type.encode())
    for name, value in answer.headers:
        request.setHeader(name.encode(), value.encode())
    request.setHeader(b"Content-Length", str(len(body)).encode())
    request.write(body)
    request.finish()
    access_log: AccessLog | None = getattr(request, "access_log", None)
    if access_log is not None:
        took = (time.monotonic() - getattr(request, "started", time.monotonic())) * 1000
        # The key's name, never the key.
        access_log.request(request.method.decode(errors="replace"), request.path.decode(errors="replace"),
                           answer.status, getattr(request, "key_name", "-"), took)


def _internal_error(failure: Any, request: server.Request) -> None:
    log.failure("the bridge failed on {path}", failure=failure, path=request.path)
    _send(request, error(500, "internal_error", "the gateway failed on this request; if it was an event, "
                         "it was not accepted"))


def _header(request: server.Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value
