"""Forwarding (``webapp_bridge.server.forward``), both ends in memory: a bridge beside a standby sends its events to
the bridge beside the active dispatcher, and sends them again another way whenever their answer may not come.

The two ends talk through Twisted's in-memory transports (``iosim``), moved along when the test says so; the
reactor is a ``MemoryReactorClock``. Whether the other end runs as the same user is the test's to say
(``same_user``); the check itself is tried on real sockets and processes in tests/integration/test_forward.py.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.test import iosim

from components.delivery import local
from webapp_bridge.server import forward
from webapp_bridge.server.forward import (RETRY, STALE, STOP_WAIT, TAKEOVER_WAIT, WARN_AFTER, Client, Forwarding,
                                          NotForwarded, Server)

NAME = forward.address("test", 8080)
ITEMS = [["demo.message", {"room": "r", "text": "t"}, "id-1", None, 0]]


class Dispatcher:
    """The active dispatcher's publish; answers at once, or when the test says so (``hold``)."""

    def __init__(self) -> None:
        self.published: list[list[list[Any]]] = []
        self.hold = False
        self.waiting: list[tuple[list[list[Any]], Deferred[list[dict[str, Any]]]]] = []

    def publish(self, items: list[list[Any]]) -> Deferred[list[dict[str, Any]]]:
        self.published.append(items)
        d: Deferred[list[dict[str, Any]]] = Deferred()
        if self.hold:
            self.waiting.append((items, d))
        else:
            d.callback(results(items))
        return d


def results(items: list[list[Any]], first: int = 1) -> list[dict[str, Any]]:
    return [{"id": item[2], "seq": first + i} for i, item in enumerate(items)]


class Pair:
    """A server and a client on one name, and the connections between them."""

    def __init__(self) -> None:
        self.clock = MemoryReactorClock()
        self.server = Server(NAME, self.clock)
        self.client = Client(NAME, self.clock)
        #: Whether the server finds its client, and the client its server, run as the same user.
        self.client_trusted = self.server_trusted = True
        self.pumps: list[iosim.IOPump] = []

    def same_user(self, transport: Any) -> bool:
        """``forward._same_user``: asked by the server of its client's end, and by the client of the server's."""
        return self.client_trusted if transport.isServer else self.server_trusted

    def connect(self, flush: bool = True) -> iosim.IOPump:
        """The client's last connection attempt reaches the server's listening socket (each end's
        ``connectionMade`` has run; with ``flush``, what they sent then has arrived)."""
        (_, server_factory, *_), = self.clock.unixServers[-1:]
        (_, client_factory, *_), = self.clock.unixClients[-1:]
        server_side, client_side = server_factory.buildProtocol(None), client_factory.buildProtocol(None)
        pump: iosim.IOPump = iosim.connect(server_side, iosim.FakeTransport(server_side, isServer=True),
                             client_side, iosim.FakeTransport(client_side, isServer=False), greet=False)
        if flush:
            pump.flush()
        self.pumps.append(pump)
        return pump

    def refuse(self) -> None:
        """The client's last connection attempt finds nobody listening."""
        (_, client_factory, *_), = self.clock.unixClients[-1:]
        client_factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))  # (Twisted's: as a reactor)

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()

    def publish(self, items: list[list[Any]] = ITEMS) -> Deferred[list[dict[str, Any]]]:
        d = ensureDeferred(self.client.publish(items))
        self.flush()
        return d


@pytest.fixture(autouse=True)
def nothing_left_in_local() -> Iterator[None]:
    """``components.delivery.local`` is one slot per process: each test leaves it as it found it (empty), calls
    held by a test's dispatcher included, or the next test file run in this process would find them."""
    yield
    local._offered = None
    local._under_way.clear()
    local._watchers.clear()


@pytest.fixture
def dispatcher() -> Dispatcher:
    dispatcher = Dispatcher()
    local.offer(dispatcher.publish)
    return dispatcher


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch, dispatcher: Dispatcher) -> Pair:
    pair = Pair()
    monkeypatch.setattr(forward, "_same_user", pair.same_user)
    pair.server.start()
    pair.client.start()
    return pair


def not_forwarded(d: Deferred[Any]) -> bool:
    """``d`` failed with ``NotForwarded``: the caller sends the request again over WAMP, the same ids."""
    failure = outcome(d)
    return isinstance(failure, Failure) and bool(failure.check(NotForwarded))


def outcome(d: Deferred[Any]) -> Any:
    """What ``d`` fired with (a Failure too); fails the test if it has not fired."""
    got: list[Any] = []
    d.addBoth(got.append)
    assert got, "it has not fired"
    return got[0]


def test_events_forwarded_are_published_by_the_active_dispatcher_and_answered(pair: Pair,
                                                                               dispatcher: Dispatcher) -> None:
    pair.connect()
    assert pair.client.connected
    assert outcome(pair.publish()) == results(ITEMS)
    assert dispatcher.published == [ITEMS]
    assert (pair.server.answered, pair.client.answered, pair.client.again) == (1, 1, 0)


def test_answers_go_back_to_their_own_requests_in_the_order_they_come(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    other = [["demo.message", {"room": "r", "text": "u"}, "id-2", None, 1]]
    first, second = pair.publish(ITEMS), pair.publish(other)
    (_, d1), (_, d2) = dispatcher.waiting
    d2.callback(results(other, 7))
    pair.flush()
    assert outcome(second) == results(other, 7) and not first.called
    d1.callback(results(ITEMS, 3))
    pair.flush()
    assert outcome(first) == results(ITEMS, 3)


def test_nothing_is_sent_until_connected_and_a_refused_attempt_is_tried_again(pair: Pair,
                                                                              dispatcher: Dispatcher) -> None:
    assert not pair.client.connected
    assert not_forwarded(ensureDeferred(pair.client.publish(ITEMS)))
    with capturedLogs() as events:
        pair.refuse()
    assert not [e for e in events if e["log_level"] >= LogLevel.warn], "nobody listening yet is expected: no warning"
    attempts = len(pair.clock.unixClients)
    pair.clock.advance(RETRY)
    assert len(pair.clock.unixClients) == attempts + 1
    pair.connect()
    assert outcome(pair.publish()) == results(ITEMS)
    assert dispatcher.published == [ITEMS], "only once connected"


def test_a_request_whose_dispatcher_left_meanwhile_is_sent_again_another_way(pair: Pair,
                                                                           dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    d = pair.publish()
    local.withdraw(dispatcher.publish)  # its calls under way fail (DispatcherLeft), and are answered so
    pair.flush()
    assert not_forwarded(d)
    assert pair.client.again == 1
    assert not_forwarded(pair.publish())  # none active now: answered at once, not published
    assert len(dispatcher.published) == 1


def test_requests_on_their_way_when_the_server_stops_are_sent_again_another_way(pair: Pair,
                                                                               dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    waiting = [pair.publish(), pair.publish()]
    pair.server.stop()
    pair.flush()
    for d in waiting:
        assert not_forwarded(d)
    assert not pair.client.connected and pair.client.again == 2
    attempts = len(pair.clock.unixClients)
    pair.clock.advance(RETRY)
    assert len(pair.clock.unixClients) == attempts + 1, "it tries to reach the next one"


def test_a_client_that_stops_hangs_up_and_its_server_forgets_it(pair: Pair) -> None:
    pair.connect()
    assert len(pair.server.peers) == 1
    pair.client.stop()
    pair.flush()
    assert not pair.server.peers and not pair.client.connected
    attempts = len(pair.clock.unixClients)
    pair.clock.advance(RETRY * 3)
    assert len(pair.clock.unixClients) == attempts, "a stopped client tries nothing"


def test_a_client_of_another_user_is_refused_by_the_server(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.client_trusted = False
    with capturedLogs() as events:
        pair.connect(flush=False)
        assert pair.client.connected, "the client trusts its end, and has not seen the server hang up yet"
        sent = ensureDeferred(pair.client.publish(ITEMS))  # on its way before it sees the close
        pair.flush()
        assert not_forwarded(sent)
        assert not pair.server.peers and not pair.client.connected, "the server hung up on it"
        pair.clock.advance(RETRY)
        pair.connect()
    assert dispatcher.published == [], "nothing it sent was read"
    assert len([e for e in events if e["log_level"] == LogLevel.warn]) == 1, "said once, not for every attempt"


def test_a_server_of_another_user_gets_nothing_from_the_client(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.server_trusted = False
    with capturedLogs() as events:
        pair.connect()
        pair.clock.advance(RETRY)
        pair.connect()
    assert not pair.client.connected, "the client sends nothing to it, and hung up"
    assert not_forwarded(pair.publish())
    assert dispatcher.published == []
    assert len([e for e in events if e["log_level"] == LogLevel.warn]) == 1, "said once, not every second"
    attempts = len(pair.clock.unixClients)
    pair.clock.advance(RETRY)
    assert len(pair.clock.unixClients) == attempts + 1, "tried again: the name may be freed"


def test_a_request_sent_as_the_link_is_lost_is_not_left_waiting(pair: Pair, dispatcher: Dispatcher) -> None:
    """A caller told of the loss who sends its next request at once must find the link gone."""
    pair.connect()
    dispatcher.hold = True
    first = pair.publish()
    nexts: list[Deferred[Any]] = []
    first.addErrback(lambda failure: nexts.append(ensureDeferred(pair.client.publish(ITEMS))))
    pair.server.stop()
    pair.flush()
    (next_one,) = nexts
    assert not_forwarded(next_one)


def test_a_client_that_stops_still_gets_the_answers_to_what_it_sent(pair: Pair, dispatcher: Dispatcher) -> None:
    """The other end may have published them: their answers are worth the wait (up to STOP_WAIT)."""
    pair.connect()
    dispatcher.hold = True
    sent = pair.publish()
    pair.client.stop()
    pair.flush()
    assert not pair.client.connected and pair.server.peers, "nothing new goes, the connection stays"
    assert not_forwarded(ensureDeferred(pair.client.publish(ITEMS)))
    (_, held), = dispatcher.waiting
    held.callback(results(ITEMS, 5))
    pair.flush()
    assert outcome(sent) == results(ITEMS, 5)
    assert not pair.server.peers, "then it hung up"


def test_a_client_that_stops_waits_for_answers_a_bounded_time(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    sent = pair.publish()
    pair.client.stop()
    pair.clock.advance(STOP_WAIT)
    pair.flush()
    assert not_forwarded(sent), "sent again over WAMP, the same ids"
    assert not pair.server.peers


def test_a_request_too_large_for_a_frame_is_not_sent(pair: Pair, dispatcher: Dispatcher,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pair.connect()
    dispatcher.hold = True
    waiting = pair.publish()
    monkeypatch.setattr(forward, "MAX_FRAME", 64)
    assert not_forwarded(pair.publish([["demo.message", {"text": "x" * 100}, "id-1", None, 0]]))
    assert len(dispatcher.published) == 1 and pair.client.connected, "nothing sent; the connection stays"
    assert not waiting.called, "the others on their way are not cut"


def test_results_that_cannot_be_sent_back_are_answered_as_not_forwarded(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    sent = pair.publish()
    (_, held), = dispatcher.waiting
    held.callback([{"id": "id-1", "seq": 2 ** 70}])  # past MessagePack's 64 bits
    pair.flush()
    assert not_forwarded(sent), "never left waiting"


def test_events_that_cannot_be_framed_are_not_sent(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.connect()
    huge = [["demo.message", {"n": 2 ** 70}, "id-1", None, 0]]  # past MessagePack's 64 bits
    assert not_forwarded(pair.publish(huge))
    assert dispatcher.published == [] and pair.client.connected, "nothing sent; the connection stays"
    assert outcome(pair.publish()) == results(ITEMS)


def test_a_frame_past_the_limit_ends_the_connection(pair: Pair, dispatcher: Dispatcher,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pair.connect()
    monkeypatch.setattr(forward._Framed, "MAX_LENGTH", 64)
    assert not_forwarded(pair.publish([["demo.message", {"text": "x" * 100}, "id-1", None, 0]]))
    assert dispatcher.published == [] and not pair.server.peers


def test_a_frame_that_cannot_be_read_ends_the_connection(pair: Pair, dispatcher: Dispatcher) -> None:
    pair.connect()
    dispatcher.hold = True
    waiting = pair.publish()
    link = pair.client._link
    assert link is not None
    link.sendString(b"\xc1 not MessagePack")
    pair.flush()
    assert not pair.server.peers and not pair.client.connected
    assert not_forwarded(waiting), "its answer cannot come now"


def test_an_answer_to_no_request_ends_the_connection(pair: Pair) -> None:
    pair.connect()
    (peer,) = pair.server.peers
    peer.sendString(forward._pack([99, []]))
    pair.flush()
    assert not pair.client.connected and not pair.server.peers


def test_a_client_stopped_while_it_connects_says_nothing(pair: Pair) -> None:
    with capturedLogs() as events:
        pair.client.stop()  # its first attempt under way: cancelled
        pair.client.start()
        pair.client.stop()
    assert not [e for e in events if e["log_level"] >= LogLevel.warn]
    attempts = len(pair.clock.unixClients)
    pair.clock.advance(RETRY * 3)
    assert len(pair.clock.unixClients) == attempts


def test_a_request_read_long_after_it_was_sent_has_its_ids_looked_up(pair: Pair, dispatcher: Dispatcher,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Its client may have given up waiting and sent it over WAMP meanwhile: the ids the bridge made (NEW) are
    looked up too, as GIVEN, so that the one published second is answered as a duplicate."""
    pair.connect()
    now = [100.0]
    monkeypatch.setattr(forward, "_now", lambda: now[0])
    made_here = [["demo.message", {"room": "r"}, "id-1", None, 1]]  # IdOrigin.NEW
    pair.publish(made_here)
    d = ensureDeferred(pair.client.publish(made_here))
    now[0] += STALE * 2  # read late
    pair.flush()
    assert outcome(d) == results(made_here)
    assert [items[0][4] for items in dispatcher.published] == [1, 0], "read at once: NEW; read late: GIVEN"


def test_results_too_large_to_send_back_are_answered_as_not_forwarded(pair: Pair, dispatcher: Dispatcher,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pair.connect()
    dispatcher.hold = True
    sent = pair.publish()
    monkeypatch.setattr(forward, "MAX_FRAME", 64)
    (_, held), = dispatcher.waiting
    held.callback([{"id": "x" * 100, "seq": 1}])
    pair.flush()
    assert not_forwarded(sent)
    assert pair.client.connected, "the link stays: no frame past the limit went"


def test_when_the_dispatcher_here_takes_over_answers_are_awaited_briefly(pair: Pair, dispatcher: Dispatcher,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The other dispatcher has left: it answers at once what it had, so a caller waits TAKEOVER_WAIT at most
    (a stuck process's answers are not waited for STOP_WAIT)."""
    pair.connect()
    dispatcher.hold = True
    sent = pair.publish()
    pair.client.stop(TAKEOVER_WAIT)
    pair.clock.advance(TAKEOVER_WAIT)
    pair.flush()
    assert not_forwarded(sent), "sent over WAMP after TAKEOVER_WAIT"
    waits: list[float] = []
    forwarding = Forwarding(NAME, None, MemoryReactorClock())
    monkeypatch.setattr(forwarding.client, "stop", lambda wait=STOP_WAIT: waits.append(wait))
    local._offered = None
    try:
        forwarding.start()
        local.offer(Dispatcher().publish)  # this process's dispatcher takes over
    finally:
        forwarding.stop()
        local._offered = None
    assert waits[0] == TAKEOVER_WAIT


def test_a_server_waits_until_the_name_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = MemoryReactorClock()
    taken = CannotListenError(None, NAME, OSError(errno.EADDRINUSE, "Address already in use"))

    def in_use(*args: Any, **kwargs: Any) -> None:
        raise taken
    monkeypatch.setattr(clock, "listenUNIX", in_use)
    second = Forwarding(NAME, None, clock)
    with capturedLogs() as events:
        local.offer(Dispatcher().publish)
        second.start()
        assert second.state() == {"state": "publishing", "listening": False, "from": 0, "answered": 0}
        for _ in range(WARN_AFTER + 5):
            clock.advance(RETRY)
        monkeypatch.undo()  # the other process let the name go
        clock.advance(RETRY)
    try:
        assert second.server.listening and len(clock.unixServers) == 1
        warned = [e for e in events if e["log_level"] == LogLevel.warn]
        assert len(warned) == 1 and warned[0]["n"] == WARN_AFTER, "said once, after WARN_AFTER attempts"
        assert [e["n"] for e in events if e["log_level"] == LogLevel.info and "n" in e] == [WARN_AFTER + 6]
    finally:
        second.stop()
        local._offered = None
    assert not second.server.listening


def test_a_server_that_cannot_take_the_name_for_another_reason_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = MemoryReactorClock()

    def out_of_descriptors(*args: Any, **kwargs: Any) -> None:
        raise CannotListenError(None, NAME, OSError(errno.EMFILE, "Too many open files"))
    monkeypatch.setattr(clock, "listenUNIX", out_of_descriptors)
    server = Server(NAME, clock)
    with capturedLogs() as events:
        server.start()
        for _ in range(30):
            clock.advance(RETRY)
        server.stop()
        server.start()  # a period of its own: said again
        server.stop()
    assert [e["n"] for e in events if e["log_level"] == LogLevel.warn] == [1, 1]


def test_forwarding_follows_the_dispatcher_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = MemoryReactorClock()
    monkeypatch.setattr(forward, "_same_user", lambda transport: True)
    site = Site()
    forwarding = Forwarding(NAME, site, clock)
    try:
        forwarding.start()
        assert site.forward_state == forwarding.state
        assert forwarding.state() == {"state": "calling"} and len(clock.unixClients) == 1
        dispatcher = Dispatcher()
        local.offer(dispatcher.publish)
        assert forwarding.state() == {"state": "publishing", "listening": True, "from": 0, "answered": 0}
        assert len(clock.unixServers) == 1
        local.withdraw(dispatcher.publish)
        assert forwarding.state() == {"state": "calling"} and not forwarding.server.listening
        clock.advance(RETRY)
        assert len(clock.unixClients) == 2, "a client again, trying to reach the next active one"
    finally:
        forwarding.stop()
        local._offered = None
    assert not local._watchers, "it stopped watching"
    assert site.forward_state is None, "/livez says off"


class Site:
    forward_state: Any = None
