"""Twisted adapter of the bridge's HTTP API (the rules live in ``webapp_bridge.server.api``).

The component gives a list of routes, each a method, a path and a handler
that turns the request body into an Answer (now or later). This module does
the HTTP: body limits, API-key checks, JSON answers, 404/405, and never a
traceback page. It answers ``GET /livez`` itself (``LIVENESS``): the process
serves HTTP, whatever the component is doing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
import os
import time
from dataclasses import dataclass
from urllib.parse import unquote
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import IResource, Resource

from components.metrics.process_meter import METER
from components.sending import send_now
from webapp_bridge.server.accesslog import AccessLog
from webapp_bridge.server.api import Answer, BridgeLogic, alive, error
from webapp_bridge.server.overload import Admission

log = Logger()
#: Seconds a connection refused before its body was read (503, 429) stays half-open for the client to
#: finish sending and read the answer; then it is closed whatever the client does.
LINGER = 2.0

#: The liveness probe's path, which every BridgeSite answers (``api.alive``): not gated, no key, no call to
#: our components. Readiness (``GET /healthz``) is the component's route.
LIVENESS = b"/livez"

#: Turns a request body (and, for routes that ask, the request's path and query) into the answer.
Handler = Callable[..., Coroutine[Any, Any, Answer]]
#: Told of every answer sent: (path, answer, seconds since the request was routed; 0 if refused before).
OnAnswer = Callable[[bytes, Answer, float], None]


@dataclass(frozen=True)
class RequestInfo:
    """What a handler with ``with_request`` gets beside the body."""

    #: The rest of the path after a prefix route's path (``/subscriptions/<id>`` → ``<id>``), else "".
    rest: str
    #: The query string's arguments, decoded: ``?user=alice`` → ``{"user": ["alice"]}``.
    query: dict[str, list[str]]
    #: The name of the API key the request came with ("-" on a route without ``auth``).
    key_name: str = "-"


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
    #: Work for our components, under ``bridge.max_in_flight`` and the key's rate (``overload``): refused
    #: as soon as its headers are in while the bridge is full or the key over its rate, before its body
    #: is read; its handler takes its places (implies with_request, for the key's name).
    gated: bool = False
    #: How this route words a refusal made before its handler runs (XML-RPC: as a fault); None: as it is.
    refusal: Callable[[Answer], Answer] | None = None
    #: Every request of it carries events: refused at the door while the node drains (``Admission.draining``).
    #: (XML-RPC is not: a call may only ask for a ticket; its handler asks ``admit`` with what the body holds.)
    ingest: bool = False


class _LimitedRequest(server.Request):
    """A request that refuses a body over the limit before reading it into memory.

    Twisted would buffer the whole body before our resource sees it; this
    answers 413 as soon as the declared length (or, for chunked bodies, the
    bytes received so far) passes the limit, and closes the connection (our side
    at once; the rest of the body is read and dropped for at most LINGER seconds,
    so that a client still sending gets the answer, not a reset).
    """

    _received = 0
    _refused = False
    _linger: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Bodies are JSON or XML-RPC, never forms: Twisted need not parse every POST's Content-Type
        # (through the email package: a twentieth of a small POST's cost) to look for one.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    @property
    def _logic(self) -> BridgeLogic:
        site: BridgeSite = self.channel.site  # type: ignore[attr-defined]  # set by Site.buildProtocol
        return site.logic()

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._logic.max_body_bytes:
            self._refuse(self._logic.too_large())
            return
        site: BridgeSite = self.channel.site  # type: ignore[attr-defined]
        refusal = site.refusal_at_start(self)
        if refusal is not None:
            self._refuse(*refusal)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._logic.max_body_bytes:
            self._refuse(self._logic.too_large())
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:  # a refused request was answered already; never render it
            super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        channel: Any = self.channel
        if self._refused and channel is not None:
            # Its connection ends with the body unread, so Twisted keeps the channel's body decoder
            # (bound methods of the channel) and this request in the channel: cycles that only a full
            # garbage collection frees, which may not come for minutes. A burst of refusals held tens
            # of MB that way (bench/overload.py). Broken here, they go with the connection.
            channel._transferDecoder = None
            channel.requests = []
        super().connectionLost(reason)

    def _refuse(self, answer: Answer, key_name: str = "-") -> None:
        """Answer before the body is read, and close: the rest of the body is read and dropped for up to
        LINGER seconds, while the client finishes sending and reads the answer."""
        self._refused = True
        # Twisted answers "Expect: 100-continue" right after this: the answer is final, no body is wanted.
        self.requestHeaders.removeHeader(b"Expect")
        site: BridgeSite = self.channel.site  # type: ignore[attr-defined]
        site.answered(self.channel)
        if site.access_log is not None:
            # The method and path are known to the channel (not yet to the request) at this point.
            method = getattr(self.channel, "_command", b"?")
            path = getattr(self.channel, "_path", b"?")
            site.access_log.request(method.decode(errors="replace"), path.decode(errors="replace"), answer.status,
                                    key_name, 0.0)
        if site.on_answer is not None:
            site.on_answer(getattr(self.channel, "_path", b"?").partition(b"?")[0], answer, 0.0)
        body = answer.encode()
        head = [b"HTTP/1.1 %d %s" % (answer.status, http.RESPONSES.get(answer.status, b"Error")),
                b"Content-Type: " + answer.content_type.encode()]
        head += [f"{name}: {value}".encode() for name, value in answer.headers]
        head += [b"Connection: close", b"Content-Length: %d" % len(body)]
        channel: Any = self.channel
        transport: Any = channel.transport
        transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        # Closing with the client still sending would reset the connection, and a client writing a
        # large body (a batch) would get the reset, not the answer. So only our side is closed; the
        # client reads the answer and closes its side (or is cut off after LINGER seconds).
        channel.persistent = False
        transport.loseWriteConnection()
        self._linger = channel.callLater(LINGER, transport.abortConnection)


class _CountedChannel(http.HTTPChannel):
    """An HTTP connection that tells its site when it ends (``BridgeSite.max_connections``)."""

    site: BridgeSite

    def connectionMade(self) -> None:
        super().connectionMade()
        pass_on = self.site.pass_on
        transport: Any = self.transport  # a tcp.Server: a file descriptor
        if pass_on is not None and pass_on(transport.fileno()):
            # The bridge beside the active dispatcher serves it now (``handoff``), from its first byte.
            self._let_go()

    def requestDone(self, request: Any) -> None:
        # Every answer, written whole: sent now, not after the other requests this turn of the reactor reads
        # (``components.sending``); then whatever Twisted does next (the next pipelined request, the close).
        send_now(self.transport)
        super().requestDone(request)
        move = self.site.between_requests
        if move is not None and self._between_requests() and move(self.transport.fileno()):  # type: ignore[union-attr]
            # Another bridge serves it from its next request on (``handoff``, ``balance``).
            self._let_go()

    def _between_requests(self) -> bool:
        """Whether this connection may move to another process now: kept alive, its last answer sent whole,
        and not a byte of the next request read (what the client sends meanwhile waits in the socket)."""
        transport: Any = self.transport
        if transport is None or not self.persistent or self._handlingRequest or self.requests or \
                transport.disconnecting or self.site.draining:
            return False
        if self._buffer or self._dataBuffer or not self.line_mode or \
                getattr(self, "_HTTPChannel__first_line", 0) != 1 or getattr(self, "_HTTPChannel__header", b""):
            return False  # (Twisted's own parser state: a line or a pipelined request already read)
        return not (transport._tempDataBuffer or transport.dataBuffer)  # (sent whole: the kernel took it all)

    def _let_go(self) -> None:
        """Another process serves this connection now: this one closes its copy of the descriptor without a
        shutdown, which would end it for both."""
        transport: Any = self.transport
        transport.stopReading()
        # The reactor may still hold a read event for it from the poll under way, and calls doRead for it
        # without asking whether it still reads (a pipelined request would be read here, then dropped with
        # this copy): as Twisted's own abortConnection does, reading becomes nothing.
        transport.doRead = lambda: None
        transport._shouldShutdown = False  # (Twisted's own switch for a socket shared this way)
        transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.site.connection_closed(self)


def _close_after_sending(channel: Any) -> None:
    """``BridgeSite.close`` for one connection."""
    if channel.transport is None:  # built, never connected
        return
    requests = getattr(channel, "requests", [])
    if any(getattr(r, "_refused", False) for r in requests):
        return  # answered and half-closed already (``_refuse``): it ends as the client reads, or after LINGER
    if channel._handlingRequest:  # its answer is on its way: sent, then the connection closed
        channel.persistent = False
        if requests and not requests[0].startedWriting:
            requests[0].setHeader(b"Connection", b"close")
        return
    channel.loseConnection()  # idle (kept alive), or its request not read yet: after what is written is sent


class BridgeSite(server.Site):
    """The bridge's HTTP: routes, refusals before a body is read, and at most ``max_connections`` open.

    Past ``max_connections`` it stops accepting until one closes: the connections wait in the
    kernel's listen queue (``component.LISTEN_BACKLOG``), which costs this process nothing, instead of
    each holding a channel and a request in memory while the bridge works through a burst.
    """

    requestFactory = _LimitedRequest
    # Twisted's default wraps the channel to negotiate HTTP/2 over TLS; the bridge speaks cleartext HTTP/1.1.
    protocol = _CountedChannel  # type: ignore[assignment]

    def __init__(self, logic: Callable[[], BridgeLogic], routes: Sequence[Route],
                 access_log: AccessLog | None = None, admission: Admission | None = None,
                 max_connections: int | None = None, on_answer: OnAnswer | None = None) -> None:
        #: The current rules (keys, limits, event classes): a reload swaps them.
        self.logic = logic
        self.access_log = access_log
        #: The metrics' view of every answer (in memory: no I/O per request).
        self.on_answer = on_answer
        #: The in-flight limit and the keys' rates, for ``gated`` routes.
        self.admission = admission
        self.max_connections = max_connections
        #: The connections open now, and those of them whose first request is not answered yet.
        self._open: set[Any] = set()
        self._fresh: set[Any] = set()
        #: Passes a connection just accepted to the bridge beside the active dispatcher (``handoff.Sender``):
        #: True if it went. None: every connection is served here.
        self.pass_on: Callable[[int], bool] | None = None
        #: Moves a kept-alive connection, between two requests, to another bridge (``handoff``: True if it went).
        #: None: every connection stays where it is served.
        self.between_requests: Callable[[int], bool] | None = None
        #: What ``GET /livez`` says of the hand-off (``handoff.HandOff.state``); None: it is off.
        self.hand_off_state: Callable[[], dict[str, Any]] | None = None
        #: What ``GET /livez`` says of forwarding (``forward.Forwarding.state``); None: it is off.
        self.forward_state: Callable[[], dict[str, Any]] | None = None
        #: Fires once none is open, after ``close``.
        self._closing: Deferred[None] | None = None
        self._port: Any = None
        self._paused = False
        self._started = time.monotonic()
        # Ours first: a route of the component's own on the same path and method would take its place.
        self._api = _Api(self, [Route(b"GET", LIVENESS, self._alive, auth=False), *routes])
        super().__init__(cast(IResource, self._api))
        self.displayTracebacks = False
        self.noisy = False

    def accepting_on(self, port: Any) -> None:
        """The listening port (an ``IListeningPort`` that is a file descriptor) to pause at max_connections."""
        self._port = port

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        self._open.add(channel)
        self._fresh.add(channel)
        if self.max_connections is not None and self.connections >= self.max_connections and \
                self._port is not None and not self._paused:
            self._paused = True
            self._port.stopReading()  # the accept loop under way may take a few more: they are served
        return channel

    @property
    def connections(self) -> int:
        return len(self._open)

    def handling(self) -> int:
        """Requests being handled now: read whole, their answer not sent yet (``balance``'s load)."""
        return sum(1 for channel in self._open if channel._handlingRequest)

    def answered(self, channel: Any) -> None:
        """A connection's request is being answered: it no longer counts as a request to come (``room_for_one``)."""
        self._fresh.discard(channel)

    def room_for_one(self) -> bool:
        """Whether to take one more connection that another bridge accepted (``handoff.Receiver``): below
        ``max_connections``, and below ``bridge.max_in_flight`` counting besides the events in flight each
        connection whose first request is not answered yet (a burst of new connections brings a request each,
        and one in flight counts twice: room is judged short, never long). Past either, it is served by the
        bridge that accepted it, within that bridge's own limits."""
        if self.max_connections is not None and self.connections >= self.max_connections:
            return False
        in_flight = self.admission.in_flight if self.admission is not None else None
        return in_flight is None or in_flight.count + len(self._fresh) < in_flight.limit

    def adopt(self, fd: int, family: int, fresh: bool = True) -> None:
        """Serve here a connection accepted by another process (``handoff``); the descriptor stays the caller's.
        ``fresh``: a new one, whose first request is to come (``room_for_one``); not one kept alive that moved
        between two requests (``balance``), which may stay idle."""
        clock: Any = self.reactor
        transport = clock.adoptStreamConnection(fd, family, self)
        if not fresh:
            self._fresh.discard(transport.protocol)

    def connection_closed(self, channel: Any) -> None:
        self._open.discard(channel)
        self._fresh.discard(channel)
        if self._paused and (self.max_connections is None or self.connections < self.max_connections):
            self._paused = False
            if self._port is not None and self._port.connected:
                self._port.startReading()
        if not self._open and self._closing is not None and not self._closing.called:
            self._closing.callback(None)

    def close(self, bound: float) -> Deferred[None]:
        """The process is stopping (its reactor's shutdown, which then drops every connection at once, unsent
        bytes and all): each connection is closed once what was written to it is sent, one whose request is
        being answered once its answer is (which says ``Connection: close``); a refused one closes itself as
        it always does (``_refuse``: once the client has read the answer, or after LINGER). Fires when none
        is left open, or after ``bound`` seconds. Asked again, the same wait."""
        if self._closing is not None:
            again: Deferred[None] = Deferred()

            def relay(result: object) -> object:
                again.callback(None)
                return result
            self._closing.addBoth(relay)
            return again
        closing: Deferred[None] = Deferred()
        self._closing = closing
        for channel in list(self._open):
            try:
                _close_after_sending(channel)
            except Exception as exc:  # one odd connection must not keep the others from closing cleanly
                log.warn("closing an HTTP connection as the process stops: {err}", err=exc)
        if not self._open and not closing.called:  # (a connection may close at once, firing it meanwhile)
            closing.callback(None)
        if closing.called:
            return closing

        def give_up() -> None:
            if not closing.called:
                closing.callback(None)
        clock: Any = self.reactor  # (typed as the IReactorTime interface, whose methods mypy reads without self)
        timer = clock.callLater(bound, give_up)

        def done(result: None) -> None:
            if timer.active():
                timer.cancel()
            return result
        return closing.addCallback(done)

    def refusal_at_start(self, request: server.Request) -> tuple[Answer, str] | None:
        """(the answer, the key's name) to a request on a ``gated`` route refused as its headers are in: the
        bridge is full (503) or the key over its rate (429). None for anything else, to be read and routed."""
        if self.admission is None:
            return None
        method: bytes = getattr(request.channel, "_command", b"")
        path = getattr(request.channel, "_path", b"").partition(b"?")[0]
        route = self._api.find(method, path)
        if route is None or not route.gated:
            return None
        key = self.logic().authenticate(_header(request, b"authorization"))
        if isinstance(key, Answer):
            return None  # its 401 comes when it is routed
        refusal = self.admission.at_start(key, route.ingest)
        if refusal is None:
            return None
        return (refusal if route.refusal is None else route.refusal(refusal)), key

    def log(self, request: http.Request) -> None:
        """Twisted's access log is replaced by ours (``_send``), which names the API key used."""

    async def _alive(self, body: bytes) -> Answer:
        """``GET /livez``: answered on the reactor from what this process holds in memory, so an answer means
        the reactor runs; 200 even past ``bridge.max_in_flight`` (the route is not ``gated``)."""
        in_flight = self.admission.in_flight if self.admission is not None else None
        return alive(METER.identity, os.getpid(), time.monotonic() - self._started,
                     in_flight.count if in_flight is not None else 0, in_flight.limit if in_flight is not None else 0,
                     self.draining, self.hand_off_state() if self.hand_off_state is not None else None,
                     self.forward_state() if self.forward_state is not None else None)

    @property
    def draining(self) -> bool:
        """The node is leaving (``Admission.draining``): every answer closes its connection, so that a client's
        next request opens a new one, which a load balancer sends to another node."""
        return self.admission is not None and self.admission.draining


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

    def find(self, method: bytes, path: bytes) -> Route | None:
        """The route that answers ``method path``, None if none does (a 404 or a 405)."""
        by_method, _ = self._lookup(path)
        return None if by_method is None else by_method.get(method)

    def _lookup(self, path: bytes) -> tuple[dict[bytes, Route] | None, bytes]:
        """The routes of a path by method, and the rest of the path after a prefix route's."""
        path = path.rstrip(b"/") or b"/"
        by_method = self._routes.get(path)
        rest = b""
        if by_method is None:
            head, _, rest = path.rpartition(b"/")
            by_method = self._prefixes.get(head) if rest else None
        return by_method, rest

    def render(self, request: server.Request) -> Any:
        request.started = time.monotonic()  # type: ignore[attr-defined]
        request.key_name = "-"  # type: ignore[attr-defined]
        request.access_log = self._site.access_log  # type: ignore[attr-defined]
        request.on_answer = self._site.on_answer  # type: ignore[attr-defined]
        by_method, rest = self._lookup(request.path)
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
        if route.prefix or route.with_request or route.gated:
            query = {k.decode(errors="replace"): [v.decode(errors="replace") for v in vs]
                     for k, vs in (request.args or {}).items()}
            info = RequestInfo(unquote(rest.decode(errors="replace")), query,
                               request.key_name)  # type: ignore[attr-defined]
            d = Deferred.fromCoroutine(route.handler(body, info))
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
    site = getattr(request, "site", None)  # Twisted's: the BridgeSite the request came to
    if isinstance(site, BridgeSite):
        site.answered(request.channel)
        if site.draining:
            # Read when the answer goes (a request in flight when the drain began is answered so too).
            request.setHeader(b"Connection", b"close")
            request.channel.persistent = False
    request.setHeader(b"Content-Length", str(len(body)).encode())
    request.write(body)
    request.finish()  # (sent at once: ``_CountedChannel.requestDone``)
    on_answer: OnAnswer | None = getattr(request, "on_answer", None)
    if on_answer is not None:
        on_answer(request.path, answer, time.monotonic() - getattr(request, "started", time.monotonic()))
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
