"""Events a bridge beside a standby dispatcher has parsed, published by the bridge beside the active one.

Every container's bridge listens on the bridge port (SO_REUSEPORT) and the kernel spreads new connections
over them. A bridge beside the active dispatcher hands its requests' events to it in the process
(``components.delivery.local``). A bridge beside a standby reads, checks and parses the requests it serves
(with the hand-off on, ``handoff``: the requests on connections it serves itself, passed back by the active
one's bridge or not passed, and the RabbitMQ messages its consumer takes; with it off, every one the kernel
gives it), then sends their events to the bridge beside the active dispatcher over a Unix socket, and
answers its clients with the results. The router carries no call for them (the WAMP call it replaces costs
four routed messages and two serializations per group, and autobahn's machinery at each end).

- The bridge beside the active dispatcher listens on the Unix socket (``Server``) while its dispatcher is
  active, and publishes each request's events there as it does its own.
- A bridge beside a standby (``Client``) keeps a connection to that socket, tried again every ``RETRY``
  seconds while none listens. Until it has one (no dispatcher is active yet, or the active one left or its
  process died and another is taking over), it calls the active dispatcher over WAMP, as before.
- A request whose answer the connection does not bring (the other bridge's dispatcher left, its process
  died, the connection broke) is sent again over WAMP with the same ids, as a WAMP call whose callee left
  is: what the dispatcher accepted and remembered is answered as a duplicate, with its seq; what it had
  published but not remembered yet when its process died (an unlogged event) may go out again, with a new
  seq (``components.delivery.publishing`` says what is guaranteed). A request too large for a frame, or
  that cannot be framed, goes over WAMP in the first place.
- Frames are length-prefixed MessagePack: ``[call, items, sent]`` one way (the items of
  ``gateway.internal.publish``; ``sent``: the sender's ``time.monotonic()``, one clock for every process
  of the machine), ``[call, results]`` or ``[call, None, reason]`` back. A request read long after it was sent
  (``STALE``) may have been sent again over WAMP by then: its ids are all looked up.
- The socket's name is in Linux's abstract namespace (``address``: no file to clean up, gone with its
  process), one per bridge port. Both ends check that the other runs as the same user (SO_PEERCRED), as
  SO_REUSEPORT does for the port itself: a process of another user can neither publish through it nor
  read what is sent.

``bridge.forward: false`` turns it off (a bridge beside a standby calls over WAMP).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

import msgpack
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import CannotListenError, ConnectingCancelledError
from twisted.internet.error import ConnectionRefusedError as TwistedConnectionRefused
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from components.delivery import local
from components.delivery.results import IdOrigin
from components.metrics.families import FORWARDED
from components.metrics.process_meter import METER
from components.sending import send_now
from webapp_bridge.server import handoff

log = Logger()

#: Seconds between attempts to reach the bridge beside the active dispatcher while none listens (the hand-off's).
RETRY = handoff.RETRY
#: The largest frame either end sends or accepts: the router's own message limit. A larger request (a batch
#: near a large bridge.max_body_bytes) goes over WAMP.
MAX_FRAME = 16 * 1024 * 1024
#: Seconds a client that stops waits for the answers to the requests it sent (the other end may have
#: published them) before it cuts the connection and sends them again over WAMP; when its own dispatcher
#: takes over (the other has left, and answers at once what it had), ``TAKEOVER_WAIT``.
STOP_WAIT = 10.0
TAKEOVER_WAIT = 1.0
#: A request read this many seconds after it was sent may have been sent again over WAMP meanwhile (its client
#: gave up waiting): its ids are looked up, as ``GIVEN``, even those the bridge made (``IdOrigin.NEW``).
STALE = TAKEOVER_WAIT / 2
#: ``gateway_forwarded_requests_total``'s outcomes (again: sent over WAMP instead, the same ids).
_COUNTED_ANSWERED, _COUNTED_AGAIN = ((("outcome", outcome),) for outcome in ("answered", "again"))
#: Failed attempts in a row to take the name before the server says so in the log (a dispatcher leaving
#: holds it for a moment; longer, some other process holds it).
WARN_AFTER = 10


class NotForwarded(Exception):
    """The request's events may not have reached the active dispatcher, or its answer was lost: send them
    again another way, with the same ids."""


#: The clock of ``sent`` (CLOCK_MONOTONIC: one for every process of the machine).
_now: Callable[[], float] = time.monotonic


def address(host: str, port: int) -> str:
    """The Unix socket's name for the bridge on ``host:port`` (abstract: a leading NUL byte)."""
    return f"\0gateway bridge forward {host}:{port}"


def _same_user(transport: Any) -> bool:
    return handoff.same_user(transport.getHandle())


def _transport(protocol: Any) -> Any:
    """A connected protocol's transport (a unix.Server or unix.Client: ``loseConnection``, ``getHandle``...)."""
    return protocol.transport


def _pack(frame: list[Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)  # type: ignore[no-any-return]


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class _Framed(Int32StringReceiver):
    MAX_LENGTH = MAX_FRAME

    def lengthLimitExceeded(self, length: int) -> None:
        log.error("a forwarding frame of {n} bytes is past the limit ({most}); closing the connection",
                  n=length, most=self.MAX_LENGTH)
        super().lengthLimitExceeded(length)


class _Peer(_Framed):
    """The server's end of one client's connection: publishes each request's items, answers in kind."""

    server: Server
    closed = False

    def connectionMade(self) -> None:
        try:
            same = _same_user(self.transport)
        except OSError:
            same = False
        if not same:
            self.closed = True
            self.server.refused_other_user()
            _transport(self).abortConnection()
            return
        self.server.peers.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self.server.peers.discard(self)

    def stringReceived(self, data: bytes) -> None:
        if self.closed:  # (refused: nothing it sent is read)
            return
        try:
            call, items, sent = _unpack(data)
            if _now() - sent > STALE:  # its client may have given up and sent it over WAMP meanwhile
                items = [[*item[:4], int(IdOrigin.GIVEN)] if len(item) > 4 else item for item in items]
        except Exception as exc:  # a bridge of the same user sent what this one cannot read: a bug, or a version
            log.error("a forwarded request could not be read ({err}); closing the connection", err=exc)
            _transport(self).loseConnection()
            return
        publish = local.active()
        if publish is None:  # the dispatcher left: the client sends it over WAMP
            self._answer(call, None, "no dispatcher is active in this process")
            return

        def answered(results: list[dict[str, Any]]) -> None:
            self.server.answered += 1
            self._answer(call, results)

        def failed(failure: Failure) -> None:
            self._answer(call, None, failure.getErrorMessage())

        ensureDeferred(_results(publish, items)).addCallbacks(answered, failed).addErrback(
            lambda failure: log.failure("answering a forwarded request failed", failure=failure))

    def _answer(self, call: int, results: list[dict[str, Any]] | None, reason: str = "") -> None:
        """Results, or None and why: the client then sends the request again over WAMP."""
        if self.closed:
            return
        try:
            frame = _pack([call, results] if results is not None else [call, None, reason])
            if len(frame) > MAX_FRAME:
                raise ValueError(f"{len(frame)} bytes, past {MAX_FRAME}")
        except Exception as exc:  # the results cannot be framed: the client must not wait for ever
            frame = _pack([call, None, f"the results could not be sent back: {exc}"])
        self.sendString(frame)
        send_now(self.transport)  # not after the reactor's other work (``components.sending``)


async def _results(publish: local.Publish, items: list[list[Any]]) -> list[dict[str, Any]]:
    return await publish(items)


class Server(handoff.Retrying):
    """The bridge beside the active dispatcher: publishes the events other bridges send. ``start`` and
    ``stop`` follow the dispatcher."""

    def __init__(self, name: str, clock: Any = None) -> None:
        super().__init__(clock)
        self._name = name
        self._port: Any = None
        self._started = False
        self._failed_binds = 0
        self._bind_warned = False
        self._warned = False
        self.peers: set[_Peer] = set()
        #: Requests answered since the bridge started (``GET /livez``, tests).
        self.answered = 0

    @property
    def listening(self) -> bool:
        return self._port is not None

    @property
    def started(self) -> bool:
        return self._started

    def refused_other_user(self) -> None:
        if not self._warned:  # once while it runs: a process that keeps trying must not fill the log
            self._warned = True
            log.warn("refused a forwarding connection from a process of another user (said once)")

    def start(self) -> None:
        self._started = True
        self._failed_binds, self._bind_warned = 0, False
        self._listen()

    def stop(self) -> None:
        """Stop publishing for other bridges: each sends what it has on its way again over WAMP (the same ids)."""
        self._started = False
        self._cancel_retry()
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()
        for peer in list(self.peers):
            _transport(peer).loseConnection()

    def _listen(self) -> None:
        self._retry = None
        if not self._started or self._port is not None:
            return
        server = self

        class _Peers(Factory):
            def buildProtocol(self, addr: Any) -> _Peer:
                peer = _Peer()
                peer.server = server
                return peer
        try:
            self._port = self._reactor.listenUNIX(self._name, _Peers())
        except CannotListenError as exc:
            # The dispatcher before this one may still be leaving (its bridge holds the name until it sees
            # that); held for longer, some other process has it. Meanwhile other bridges call over WAMP.
            self._failed_binds += 1
            in_use = isinstance(exc.socketError, OSError) and exc.socketError.errno == errno.EADDRINUSE
            if not self._bind_warned and (not in_use or self._failed_binds >= WARN_AFTER):
                self._bind_warned = True  # once until it can: it is tried every second
                log.warn("the bridge cannot publish for the other bridges (attempt {n}): {err}; trying every "
                         "{retry} s", n=self._failed_binds, err=exc.socketError, retry=RETRY)
            self._again(self._listen)
            return
        if self._bind_warned:
            log.info("the bridge publishes for the other bridges (after {n} attempts)", n=self._failed_binds)
        self._failed_binds, self._bind_warned = 0, False


class _Link(_Framed):
    """The client's connection: requests out, answers back, in any order."""

    def __init__(self) -> None:
        self._calls: dict[int, Deferred[list[dict[str, Any]]]] = {}
        self._next = 0
        #: The other end runs as this process's user: until then nothing is sent.
        self.trusted = False
        #: The connection ended, or is ending: nothing more is sent (Twisted's ``connected`` stays 1).
        self.closed = False
        #: Its client stopped: it sends nothing new, and ends once the answers it waits for came.
        self._closing: Any = None
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        try:
            self.trusted = _same_user(self.transport)
        except OSError:
            self.trusted = False
        if not self.trusted:
            self.closed = True
            _transport(self).abortConnection()

    @property
    def usable(self) -> bool:
        return self.trusted and not self.closed and self._closing is None

    def call(self, items: list[list[Any]]) -> Deferred[list[dict[str, Any]]]:
        """The answer to ``items``; raises ``NotForwarded`` when nothing was sent (unusable, too large or
        unframable)."""
        if not self.usable:
            raise NotForwarded("not connected to the bridge beside the active dispatcher")
        self._next += 1
        call = self._next
        try:
            frame = _pack([call, items, _now()])
        except Exception as exc:  # e.g. an integer past 64 bits
            raise NotForwarded(f"the events cannot be framed: {exc}") from exc
        if len(frame) > MAX_FRAME:
            raise NotForwarded(f"the request is too large to forward ({len(frame)} bytes)")
        answer: Deferred[list[dict[str, Any]]] = Deferred()
        self._calls[call] = answer
        self.sendString(frame)
        send_now(self.transport)
        return answer

    def close_when_answered(self, clock: Any, bound: float) -> None:
        """Send nothing new; end once every request sent was answered (the other end may have published
        them: their answers are worth waiting for), or after ``bound`` seconds."""
        if self.closed or self._closing is not None:
            return
        self._closing = clock.callLater(bound, self._cut)
        self._end_if_answered()

    def _cut(self) -> None:
        if not self.closed:
            _transport(self).abortConnection()

    def _end_if_answered(self) -> None:
        if self._closing is not None and not self._calls and not self.closed:
            _transport(self).loseConnection()

    def stringReceived(self, data: bytes) -> None:
        try:
            call, results, *reason = _unpack(data)
            answer = self._calls.pop(call)
        except Exception as exc:
            log.error("an answer from the bridge beside the active dispatcher could not be read ({err}); "
                      "closing the connection", err=exc)
            _transport(self).loseConnection()
            return
        if results is None:
            answer.errback(NotForwarded(reason[0] if reason else "no answer"))
        else:
            answer.callback(results)
        self._end_if_answered()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Closed first, and the client told, before any caller hears of it: a caller that sends its next
        # request from there must find the link gone, not write into a closed transport and wait for ever.
        self.closed = True
        if self._closing is not None and self._closing.active():
            self._closing.cancel()
        self.lost.callback(None)
        calls, self._calls = self._calls, {}
        for answer in calls.values():
            answer.errback(NotForwarded(f"the connection to the bridge beside the active dispatcher ended "
                                        f"({reason.getErrorMessage()})"))


class Client(handoff.Retrying):
    """A bridge beside a standby dispatcher: sends its requests' events to the active one's bridge. ``start``
    and ``stop`` follow the dispatcher beside it."""

    def __init__(self, name: str, clock: Any = None) -> None:
        super().__init__(clock)
        self._name = name
        self._link: _Link | None = None
        self._connecting: Deferred[Any] | None = None
        self._started = False
        self._warned = False
        #: Requests forwarded and answered, and sent again over WAMP, since the bridge started (``GET /livez``).
        self.answered = self.again = 0

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.usable

    def start(self) -> None:
        self._started = True
        self._connect()

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Send nothing more; the answers to what was sent still come back, for up to ``wait`` seconds."""
        self._started = False
        self._cancel_retry()
        if self._connecting is not None:
            self._connecting.cancel()  # (its ``failed`` forgets it)
        link, self._link = self._link, None
        if link is not None:
            link.close_when_answered(self._reactor, wait)

    async def publish(self, items: list[list[Any]]) -> list[dict[str, Any]]:
        """The active dispatcher's results for ``items``; ``NotForwarded`` if they may not have reached it
        or their answer was lost (send them again another way, with the same ids)."""
        link = self._link
        try:
            if link is None:
                raise NotForwarded("not connected to the bridge beside the active dispatcher")
            results = await link.call(items)
        except NotForwarded:
            self.again += 1
            METER.count(FORWARDED, _COUNTED_AGAIN)
            raise
        self.answered += 1
        METER.count(FORWARDED, _COUNTED_ANSWERED)
        return results

    def _connect(self) -> None:
        self._retry = None
        if not self._started or self._link is not None or self._connecting is not None:
            return

        def connected(link: _Link) -> None:
            self._connecting = None
            if not link.trusted and not self._warned:
                self._warned = True  # once, until it works: it is tried every second
                log.warn("not forwarding events: the forwarding socket is held by a process of another user; "
                         "trying every {retry} s", retry=RETRY)
            if not self._started or not link.usable:  # stopped meanwhile, or refused (another user)
                if not link.closed:
                    _transport(link).loseConnection()
                self._try_again()
                return
            self._link = link
            self._warned = False
            log.info("forwarding events to the bridge beside the active dispatcher")
            link.lost.addCallback(lambda _: self._lost(link))

        def failed(failure: Failure) -> None:
            self._connecting = None
            if failure.check(CancelledError, ConnectingCancelledError):  # stopped
                return
            # Refused: nobody listens (no dispatcher active yet, or a failover under way), as expected.
            if not failure.check(TwistedConnectionRefused) and not self._warned:
                self._warned = True  # once, until it works
                log.warn("not forwarding events: {err}; trying every {retry} s", err=failure.getErrorMessage(),
                         retry=RETRY)
            self._try_again()

        endpoint = UNIXClientEndpoint(self._reactor, self._name, timeout=RETRY)
        attempt = self._connecting = endpoint.connect(Factory.forProtocol(_Link))
        attempt.addCallbacks(connected, failed)

    def _lost(self, link: _Link) -> None:
        if link is not self._link:
            return
        self._link = None
        log.info("calling the active dispatcher over WAMP: the bridge beside it is gone")
        self._try_again()

    def _try_again(self) -> None:
        if self._started and self._retry is None:
            self._again(self._connect)


class Forwarding:
    """A bridge's end of forwarding, following the dispatcher beside it (``components.delivery.local``):
    ``Server`` while it is active, ``Client`` otherwise. ``site``: the bridge's ``BridgeSite`` (its
    ``forward_state``, for ``GET /livez``)."""

    def __init__(self, name: str, site: Any = None, clock: Any = None) -> None:
        self._site = site
        self.server = Server(name, clock)
        self.client = Client(name, clock)
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        if self._site is not None:
            self._site.forward_state = self.state
        self._unwatch = local.watch(self._follow)
        self._follow(local.active() is not None)

    def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._site is not None:
            self._site.forward_state = None
        self.client.stop()
        self.server.stop()

    def state(self) -> dict[str, Any]:
        """For ``GET /livez``: ``publishing`` (beside the active dispatcher; ``from``: the connections of bridges
        sending their events here; ``listening``: whether they can), ``forwarding`` (to the bridge beside the active dispatcher), or ``calling`` (over
        WAMP: no dispatcher is active, or the bridge beside it cannot be reached yet)."""
        if self.server.started:  # (``listening`` false: it cannot take the name yet; its log says why)
            return {"state": "publishing", "listening": self.server.listening, "from": len(self.server.peers),
                    "answered": self.server.answered}
        if self.client.connected:
            return {"state": "forwarding", "answered": self.client.answered, "again": self.client.again}
        return {"state": "calling"}

    def _follow(self, active_here: bool) -> None:
        if active_here:
            self.client.stop(TAKEOVER_WAIT)  # the other dispatcher left: it answers at once what it had
            self.server.start()
        else:
            self.server.stop()
            self.client.start()
