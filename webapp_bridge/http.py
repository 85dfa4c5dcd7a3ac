"""Twisted adapter of the bridge's HTTP API (the rules live in ``webapp_bridge.api``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import IResource, Resource

from webapp_bridge.api import Answer, BridgeLogic, PublishRequest, error

log = Logger()

#: Hands a validated event to the dispatcher; resolves to the 202 answer or an error answer.
Forward = Callable[[PublishRequest], "Deferred[Answer]"]
#: Tells whether the gateway can accept events now; resolves to the /healthz answer.
Health = Callable[[], "Deferred[Answer]"]


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
        return site.logic

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
        body = self._logic.too_large().encode()
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.channel.loseConnection()


class BridgeSite(server.Site):
    requestFactory = _LimitedRequest

    def __init__(self, logic: BridgeLogic, forward: Forward, health: Health) -> None:
        self.logic = logic
        root = _Root()
        root.putChild(b"events", cast(IResource, _Events(logic, forward)))
        root.putChild(b"healthz", cast(IResource, _Health(health)))
        super().__init__(root)
        self.displayTracebacks = False
        self.noisy = False

    def log(self, request: http.Request) -> None:
        """No access log per request: the bridge's hot path stays quiet."""


def _send(request: server.Request, answer: Answer) -> None:
    if request._disconnected:  # the caller went away; nothing to say
        return
    body = answer.encode()
    request.setResponseCode(answer.status)
    request.setHeader(b"Content-Type", b"application/json")
    for name, value in answer.headers:
        request.setHeader(name.encode(), value.encode())
    request.setHeader(b"Content-Length", str(len(body)).encode())
    request.write(body)
    request.finish()


def _method_not_allowed(request: server.Request, allowed: str) -> int:
    answer = error(405, "method_not_allowed", f"{request.method.decode()} is not allowed here; use {allowed}",
                   headers=(("Allow", allowed),))
    _send(request, answer)
    return server.NOT_DONE_YET


class _Root(Resource):
    def getChild(self, path: bytes, request: server.Request) -> Resource:
        return _NotFound()

    def render(self, request: server.Request) -> Any:
        return _NotFound().render(request)


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: server.Request) -> Any:
        _send(request, error(404, "not_found", f"no such path: {request.path.decode(errors='replace')}"))
        return server.NOT_DONE_YET


class _Events(Resource):
    isLeaf = True

    def __init__(self, logic: BridgeLogic, forward: Forward) -> None:
        super().__init__()
        self._logic = logic
        self._forward = forward

    def render_POST(self, request: server.Request) -> Any:
        if request.postpath not in ([], [b""]):
            _send(request, error(404, "not_found", f"no such path: {request.path.decode(errors='replace')}"))
            return server.NOT_DONE_YET
        refusal = self._logic.authenticate(_header(request, b"authorization"))
        if refusal is not None:
            _send(request, refusal)
            return server.NOT_DONE_YET
        assert request.content is not None
        body = request.content.read()
        parsed = self._logic.parse_event(body)
        if isinstance(parsed, Answer):
            _send(request, parsed)
            return server.NOT_DONE_YET
        d = self._forward(parsed)
        d.addCallback(lambda answer: _send(request, answer))
        d.addErrback(_internal_error, request)
        return server.NOT_DONE_YET

    def render_GET(self, request: server.Request) -> Any:
        return _method_not_allowed(request, "POST")


class _Health(Resource):
    isLeaf = True

    def __init__(self, health: Health) -> None:
        super().__init__()
        self._health = health

    def render_GET(self, request: server.Request) -> Any:
        d = self._health()
        d.addCallback(lambda answer: _send(request, answer))
        d.addErrback(_internal_error, request)
        return server.NOT_DONE_YET


def _internal_error(failure: Any, request: server.Request) -> None:
    log.failure("the bridge failed on {path}", failure=failure, path=request.path)
    _send(request, error(500, "internal_error", "the gateway failed on this request; if it was an event, "
                         "it was not accepted"))


def _header(request: server.Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value
