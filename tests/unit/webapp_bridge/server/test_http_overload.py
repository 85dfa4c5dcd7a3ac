"""The HTTP adapter under load, in memory (no sockets): refusals before the body is read, what a refused
connection leaves behind, and the pause in accepting at ``max_connections``."""

from __future__ import annotations

import gc
import json
import socket
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server.api import Answer, BridgeLogic
from webapp_bridge.server.http import LINGER, BridgeSite, RequestInfo, Route
from webapp_bridge.server.overload import Admission, InFlight, KeyLimit, KeyRates, as_fault

LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"), ApiKey(name="blog", key="key-two-67890")),
                    Registry(), 1024)
SHOP = b"Authorization: Bearer key-one-12345\r\n"
BLOG = b"Authorization: Bearer key-two-67890\r\n"


class Transport(StringTransport):
    """A TCP connection in memory that can be half-closed (``loseWriteConnection``) and aborted."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True


class Bridge:
    """A site whose gated handler holds every request until ``finish()``: they stay in flight."""

    def __init__(self, limit: int = 1, keys: tuple[KeyLimit, ...] = (), max_connections: int | None = None) -> None:
        self.admission = Admission(InFlight(limit), KeyRates(keys, lambda: 0.0))
        self.held: list[Deferred[None]] = []
        self.handled = 0
        routes = [Route(b"POST", b"/events", self._handle, gated=True, ingest=True),
                  Route(b"POST", b"/RPC2", self._handle, gated=True, refusal=as_fault),
                  Route(b"GET", b"/healthz", self._health, auth=False)]
        self.site = BridgeSite(lambda: LOGIC, routes, None, self.admission, max_connections)
        self.reactor = MemoryReactorClock()
        self.site.reactor = self.reactor  # type: ignore[assignment]  # callLater is all it uses

    async def _handle(self, body: bytes, request: RequestInfo) -> Answer:
        self.handled += 1
        refused = self.admission.admit(request.key_name, 1, ingest=True)
        if refused is not None:
            return refused
        held: Deferred[None] = Deferred()
        self.held.append(held)
        try:
            await held
        finally:
            self.admission.release(1)
        return Answer(202, {"id": "e1", "seq": 1})

    async def _health(self, body: bytes) -> Answer:
        return Answer(200, {"in_flight": self.admission.in_flight.count})

    def connect(self) -> tuple[Any, Transport]:
        channel = self.site.buildProtocol(None)
        transport = Transport()
        channel.makeConnection(transport)
        return channel, transport

    def send(self, data: bytes) -> tuple[Any, Transport]:
        channel, transport = self.connect()
        channel.dataReceived(data)
        return channel, transport


def lose(channel: Any, transport: Transport) -> None:
    """The connection ends as a TCP transport ends it: it lets go of its producer (the channel), then tells it."""
    transport.producer = None
    channel.connectionLost(None)


def post(path: bytes = b"/events", auth: bytes = SHOP, body: bytes | None = b'{"event": "x"}',
         length: int | None = None) -> bytes:
    size = len(body or b"") if length is None else length
    return b"POST %s HTTP/1.1\r\nHost: gw\r\n%sContent-Length: %d\r\n\r\n%s" % (path, auth, size, body or b"")


def status_and_headers(transport: StringTransport) -> tuple[int, dict[str, str]]:
    head = transport.value().partition(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return int(head[0].split()[1]), headers


def test_past_the_limit_a_request_is_refused_503_as_its_headers_arrive_and_its_body_is_never_read() -> None:
    bridge = Bridge(limit=1)
    bridge.send(post())
    assert bridge.admission.in_flight.full and bridge.handled == 1
    # Only the headers: the body (100 bytes announced) never comes, and need not.
    channel, transport = bridge.send(post(body=None, length=100))
    status, headers = status_and_headers(transport)
    assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
    assert b'"error":"overloaded"' in transport.value()
    assert transport.write_closed and bridge.handled == 1, "answered at once, never routed"
    # The client may go on sending its body: it is read and dropped, so that the client reads the answer
    # instead of a reset; the connection is cut LINGER seconds later if the client does not close it.
    channel.dataReceived(b"x" * 100)
    assert bridge.handled == 1 and not transport.aborted
    bridge.reactor.advance(LINGER)
    assert transport.aborted
    bridge.held[0].callback(None)
    assert not bridge.admission.in_flight.full
    _, transport = bridge.send(post())
    assert transport.value() == b"" and bridge.handled == 2, "room again: in flight"


def test_a_client_that_expects_100_continue_gets_the_refusal_alone() -> None:
    bridge = Bridge(limit=1)
    bridge.send(post())
    request = post(body=None, length=100).replace(b"Content-Length", b"Expect: 100-continue\r\nContent-Length")
    _, transport = bridge.send(request)
    assert transport.value().startswith(b"HTTP/1.1 503 ") and b"100 Continue" not in transport.value()


def test_xml_rpc_is_refused_with_a_fault_and_the_health_check_still_answers() -> None:
    bridge = Bridge(limit=1)
    bridge.send(post())
    _, transport = bridge.send(post(b"/RPC2", body=b"<methodCall/>"))
    status, headers = status_and_headers(transport)
    assert (status, headers["content-type"], headers["retry-after"]) == (200, "text/xml", "1")
    assert b"<name>faultCode</name>\n<value><int>503</int>" in transport.value()
    _, transport = bridge.send(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert status_and_headers(transport)[0] == 200 and b'"in_flight":1' in transport.value()


def test_at_the_limit_the_liveness_probe_answers_200_while_readiness_would_say_overloaded() -> None:
    bridge = Bridge(limit=1)
    bridge.send(post())
    assert bridge.admission.in_flight.full
    assert status_and_headers(bridge.send(post())[1])[0] == 503, "full: gated work is refused"
    for request in (b"GET /livez HTTP/1.1\r\nHost: gw\r\n\r\n", b"GET /livez/ HTTP/1.1\r\nHost: gw\r\n\r\n"):
        _, transport = bridge.send(request)
        status, headers = status_and_headers(transport)
        body = json.loads(transport.value().partition(b"\r\n\r\n")[2])
        assert (status, body["status"], body["in_flight"], body["max_in_flight"]) == (200, "alive", 1, 1)
        assert "retry-after" not in headers and "x-gateway-process" in headers
    assert bridge.handled == 1, "answered by the site itself: no handler of the component ran for it"
    _, transport = bridge.send(b"POST /livez HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n")
    assert status_and_headers(transport)[0] == 405


def test_a_key_over_its_rate_is_refused_429_before_its_body_and_a_wrong_key_still_gets_its_401() -> None:
    bridge = Bridge(limit=10, keys=(KeyLimit("shop", rate=1, burst=1),))
    bridge.send(post())
    _, transport = bridge.send(post(body=None, length=100))
    status, headers = status_and_headers(transport)
    assert (status, headers["retry-after"]) == (429, "1") and b'"key":"shop"' in transport.value()
    assert b"key-one-12345" not in transport.value()
    _, transport = bridge.send(post(auth=BLOG))
    assert transport.value() == b"" and bridge.handled == 2, "the other key is in flight"
    full = Bridge(limit=1)
    full.send(post())
    _, transport = full.send(post(auth=b"Authorization: Bearer wrong-key-000\r\n"))
    assert status_and_headers(transport)[0] == 401


def test_a_refused_connection_leaves_no_cycle_behind_nor_a_timer() -> None:
    bridge = Bridge(limit=1)
    bridge.send(post())
    channel, transport = bridge.send(post(body=None, length=100))
    lose(channel, transport)
    assert channel._transferDecoder is None and channel.requests == []
    assert not [call for call in bridge.reactor.getDelayedCalls() if call.func == transport.abortConnection]
    gc.collect()
    gc.disable()
    try:
        channel, transport = bridge.send(post(body=None, length=100))
        lose(channel, transport)
        del channel, transport
        assert gc.collect() == 0, "what the refusal made went with the connection, without the collector"
    finally:
        gc.enable()


class Port:
    """The listening port, as far as the site pauses and resumes it."""

    connected = True

    def __init__(self) -> None:
        self.reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


def test_at_max_connections_the_site_stops_accepting_until_one_closes() -> None:
    bridge = Bridge(limit=10, max_connections=2)
    port = Port()
    bridge.site.accepting_on(port)
    first, _ = bridge.connect()
    assert port.reading and bridge.site.connections == 1
    second, _ = bridge.connect()
    assert not port.reading and bridge.site.connections == 2
    lose(first, first.transport)
    assert port.reading and bridge.site.connections == 1
    lose(second, second.transport)
    assert bridge.site.connections == 0


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"


def test_room_for_a_connection_passed_on_counts_each_new_one_as_a_request_to_come() -> None:
    """``room_for_one`` (``handoff.Receiver``): a burst of new connections brings a request each, so one not
    answered yet counts against ``max_in_flight`` as the requests in flight do."""
    bridge = Bridge(limit=2)
    assert bridge.site.room_for_one()
    first, _ = bridge.connect()
    assert bridge.site.room_for_one()
    second, _ = bridge.connect()
    assert not bridge.site.room_for_one(), "two new connections: two requests to come, the limit"
    first.dataReceived(HEALTH)  # answered at once
    assert bridge.site.room_for_one()
    second.dataReceived(post())  # in flight, and its connection not answered yet: counted twice, room judged short
    assert bridge.admission.in_flight.count == 1 and not bridge.site.room_for_one()
    bridge.held[0].callback(None)
    assert bridge.site.room_for_one()
    lose(second, second.transport)
    assert bridge.site.room_for_one() and bridge.site.connections == 1


class Adopting(MemoryReactorClock):
    """A reactor whose adopted connections are served in memory (``BridgeSite.adopt``)."""

    def adoptStreamConnection(self, fileDescriptor: int, addressFamily: int, factory: Any) -> Any:
        channel = factory.buildProtocol(None)
        transport = Transport()
        channel.makeConnection(transport)
        transport.protocol = channel
        return transport


def test_a_kept_alive_connection_moved_here_is_not_counted_as_a_request_to_come() -> None:
    """A connection moved between two requests (``balance``) may stay idle: unlike a new one, it brings no
    request, and must not take the room new connections are judged by."""
    bridge = Bridge(limit=2)
    bridge.site.reactor = Adopting()  # type: ignore[assignment]
    bridge.site.adopt(7, socket.AF_INET, fresh=False)
    bridge.site.adopt(8, socket.AF_INET, fresh=False)
    assert bridge.site.room_for_one() and bridge.site.connections == 2
    bridge.site.adopt(9, socket.AF_INET)
    bridge.site.adopt(10, socket.AF_INET)
    assert not bridge.site.room_for_one(), "two new ones: two requests to come"


def test_room_for_a_connection_passed_on_ends_at_max_connections() -> None:
    bridge = Bridge(limit=100, max_connections=2)
    channels = [bridge.send(HEALTH)[0] for _ in range(2)]
    assert not bridge.site.room_for_one(), "answered, idle, but open: the connection limit"
    lose(channels[0], channels[0].transport)
    assert bridge.site.room_for_one()


class TcpTransport(Transport):
    """What the pass-on uses of a TCP transport: its descriptor, reading, and closing without a shutdown."""

    reading = True
    lost = False
    _shouldShutdown = True

    def fileno(self) -> int:
        return 42

    def stopReading(self) -> None:
        self.reading = False

    def loseConnection(self) -> None:
        self.lost = True


def test_a_connection_passed_on_is_closed_here_without_a_shutdown_and_one_not_passed_is_served() -> None:
    bridge = Bridge(limit=5)
    asked: list[int] = []
    went = True

    def pass_on(fd: int) -> bool:
        asked.append(fd)
        return went
    bridge.site.pass_on = pass_on
    channel = bridge.site.buildProtocol(None)
    transport = TcpTransport()
    channel.makeConnection(transport)
    assert asked == [42]
    assert (transport.reading, transport._shouldShutdown, transport.lost) == (False, False, True), \
        "not a byte read here; closed without the shutdown that would end it for the other process too"
    went = False
    channel = bridge.site.buildProtocol(None)
    transport = TcpTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HEALTH)
    assert (transport.reading, transport._shouldShutdown, transport.lost) == (True, True, False)
    assert status_and_headers(transport)[0] == 200, "served here"


class QueuingTransport(TcpTransport):
    """What a TCP transport does with an answer: queued until the reactor's next turn (``doWrite``), which sends
    at most ``room`` bytes (what the kernel takes) and keeps the rest."""

    disconnecting = False
    _writeDisconnecting = False

    def __init__(self, room: int = 1 << 20) -> None:
        super().__init__()
        self.room = room
        self._tempDataBuffer: list[bytes] = []
        self.dataBuffer = b""

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)

    def writeSequence(self, data: Any) -> None:
        self._tempDataBuffer.extend(data)

    def doWrite(self) -> None:
        pending = self.dataBuffer + b"".join(self._tempDataBuffer)
        self._tempDataBuffer = []
        self.io.write(pending[:self.room])
        self.dataBuffer = pending[self.room:]


class Moving:
    """A bridge whose kept-alive connections another bridge would take between requests (``handoff``)."""

    def __init__(self, takes: bool = True, room: int = 1 << 20) -> None:
        self.bridge = Bridge(limit=5)
        self.asked: list[int] = []
        self.takes = takes
        self.bridge.site.between_requests = self._ask
        self.channel = self.bridge.site.buildProtocol(None)
        self.transport = QueuingTransport(room)
        self.channel.makeConnection(self.transport)

    def _ask(self, fd: int) -> bool:
        self.asked.append(fd)
        return self.takes

    @property
    def moved(self) -> bool:
        return (self.transport.reading, self.transport._shouldShutdown, self.transport.lost) == (False, False, True)

    def answers(self) -> int:
        return self.transport.value().count(b"HTTP/1.1 200 OK")


def test_every_answer_is_sent_at_once_not_at_the_reactors_next_poll() -> None:
    bridge = Bridge(limit=5)
    channel = bridge.site.buildProtocol(None)
    transport = QueuingTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HEALTH)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 1 and not transport._tempDataBuffer, \
        "written to the socket in the same turn (components.sending)"


def test_a_kept_alive_connection_moves_once_its_answer_is_sent_whole() -> None:
    moving = Moving()
    moving.channel.dataReceived(HEALTH)
    assert moving.asked == [42]
    assert moving.answers() == 1 and not moving.transport._tempDataBuffer and not moving.transport.dataBuffer, \
        "the answer queued for the reactor's next turn was sent before the connection went"
    assert moving.moved, "not a byte more read here; closed without the shutdown that would end it for the other"


def test_a_connection_whose_answer_is_not_sent_whole_stays() -> None:
    moving = Moving(room=10)
    moving.channel.dataReceived(HEALTH)
    assert moving.asked == [] and not moving.moved
    moving.transport.room = 1 << 20
    moving.transport.doWrite()
    assert moving.answers() == 1, "its answer goes out as the kernel takes it"
    moving.channel.dataReceived(HEALTH)
    assert moving.asked == [42] and moving.moved, "and it may move after its next one"


def test_a_connection_moves_only_when_nothing_of_the_next_request_was_read() -> None:
    pipelined = Moving()
    pipelined.channel.dataReceived(HEALTH + HEALTH)
    assert pipelined.answers() == 2 and pipelined.asked == [42], "after the second, which was read already"
    assert pipelined.moved
    begun = Moving()
    begun.channel.dataReceived(HEALTH + b"GET /heal")
    assert begun.asked == [] and not begun.moved, "a line begun is read here, so served here"
    begun.channel.dataReceived(b"thz HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert begun.answers() == 2 and begun.asked == [42]


def test_a_connection_the_other_bridge_does_not_take_is_served_here() -> None:
    moving = Moving(takes=False)
    moving.channel.dataReceived(HEALTH)
    moving.channel.dataReceived(HEALTH)
    moving.transport.doWrite()
    assert moving.asked == [42, 42] and moving.answers() == 2 and not moving.moved


def test_a_connection_that_ends_after_its_answer_never_moves() -> None:
    moving = Moving()
    moving.channel.dataReceived(HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    moving.transport.doWrite()
    assert moving.asked == [] and moving.answers() == 1


def body_of(transport: StringTransport) -> Any:
    return json.loads(transport.value().partition(b"\r\n\r\n")[2])


def test_while_draining_events_are_refused_at_the_door_and_what_was_in_flight_is_answered_then_closed() -> None:
    bridge = Bridge(limit=5)
    _, held = bridge.send(post())
    assert bridge.admission.in_flight.count == 1 and held.value() == b""
    bridge.admission.draining = True
    # A new event: 503 draining as its headers arrive, its body never read, its connection closed.
    _, transport = bridge.send(post(body=None, length=100))
    status, headers = status_and_headers(transport)
    assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
    assert body_of(transport)["error"] == "draining" and bridge.handled == 1
    # XML-RPC is let in: a call may only ask for a ticket (its handler refuses the events it holds).
    bridge.send(post(b"/RPC2", body=b"<methodCall/>"))
    assert bridge.handled == 2
    # Liveness stays 200 and says so; readiness is the component's (503 draining there).
    _, transport = bridge.send(b"GET /livez HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert status_and_headers(transport)[0] == 200 and body_of(transport)["draining"] is True
    # The request in flight before the drain is answered as ever, and its keep-alive connection closed, so that
    # the client's next request opens a new one (which a load balancer sends to another node).
    bridge.held[0].callback(None)
    status, headers = status_and_headers(held)
    assert (status, headers["connection"]) == (202, "close") and held.disconnecting
    assert bridge.admission.in_flight.count == 0


def test_before_a_drain_answers_keep_their_connection() -> None:
    bridge = Bridge(limit=5)
    _, transport = bridge.send(post())
    bridge.held[0].callback(None)
    status, headers = status_and_headers(transport)
    assert status == 202 and "connection" not in headers and not transport.disconnecting


def test_a_stopping_process_closes_each_connection_once_what_was_written_to_it_is_sent() -> None:
    """Before the reactor stops (which drops every connection at once, unsent bytes and all): an idle keep-alive
    connection is closed after its bytes go; one whose request is being answered is closed once its answer is,
    and the answer says so; one refused at the door (503, half-closed) is left to end as it always does. The
    wait ends when none is open. Not draining: the answer's ``Connection: close`` is the stop's own."""
    bridge = Bridge(limit=1)
    idle, idle_transport = bridge.send(post())
    bridge.held[0].callback(None)  # answered 202, kept alive
    busy, busy_transport = bridge.send(post())  # in flight
    refused, refused_transport = bridge.send(post(body=None, length=100))  # 503 overloaded: the limit is 1
    assert status_and_headers(refused_transport)[0] == 503 and refused_transport.write_closed
    closed = bridge.site.close(1.0)
    assert idle_transport.disconnecting and not refused_transport.disconnecting
    assert not busy_transport.disconnecting and not closed.called, "its answer is still to come"
    bridge.held[1].callback(None)
    status, headers = status_and_headers(busy_transport)
    assert (status, headers["connection"]) == (202, "close") and busy_transport.disconnecting
    for channel, transport in ((idle, idle_transport), (refused, refused_transport)):
        lose(channel, transport)
    assert not closed.called, "one is still open"
    lose(busy, busy_transport)
    assert closed.called
    assert all(getattr(c.func, "__name__", "") != "give_up" for c in bridge.reactor.getDelayedCalls()), \
        "the bound's timer is cancelled"


class ClosingAtOnce(Transport):
    """A transport whose write side is shut already: closing it ends the connection at once, as TCP's does."""

    channel: Any = None

    def loseConnection(self) -> None:
        super().loseConnection()
        lose(self.channel, self)


def test_connections_that_close_at_once_end_the_wait_at_once_and_asking_again_waits_the_same() -> None:
    bridge = Bridge(limit=5)
    channel = bridge.site.buildProtocol(None)
    transport = ClosingAtOnce()
    transport.channel = channel
    channel.makeConnection(transport)
    closed = bridge.site.close(1.0)
    assert closed.called and bridge.site.connections == 0
    assert bridge.site.close(1.0).called


def test_a_connection_that_does_not_close_holds_the_stop_for_the_bound_at_most() -> None:
    bridge = Bridge(limit=5)
    bridge.send(post())  # in flight, never answered
    closed = bridge.site.close(1.0)
    again = bridge.site.close(1.0)
    bridge.reactor.advance(0.9)
    assert not closed.called and not again.called
    bridge.reactor.advance(0.1)
    assert closed.called and again.called


def test_with_no_connection_open_nothing_is_waited_for() -> None:
    assert Bridge().site.close(1.0).called


def test_a_connection_refused_at_the_door_no_longer_counts_as_a_request_to_come() -> None:
    """Refused (503 before its body) it lingers up to LINGER seconds: during a burst, exactly when room is
    judged, it must not hold a place."""
    bridge = Bridge(limit=1)
    bridge.send(post())  # in flight: the limit
    _, transport = bridge.send(post(body=None, length=100))
    assert status_and_headers(transport)[0] == 503 and not transport.aborted, "refused at the door, lingering"
    bridge.held[0].callback(None)
    assert bridge.admission.in_flight.count == 0
    assert bridge.site.room_for_one(), "the refused connection, lingering, counts for nothing"
