"""The connection hand-off (``webapp_bridge.server.handoff``): new HTTP connections served by the bridge beside
the active dispatcher, and where they go when it has no room, when it is gone, and when someone else holds
the other end.

The first tests drive both ends over real sockets (Unix and loopback TCP) with an in-memory reactor, each
socket read when the test says so: nothing is timed. The last ones run a real node.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.testing import MemoryReactorClock

from tests.integration.test_overload import (LIMIT, BRIDGES, Reply, assert_refused_overloaded, event, health,
                                             message, post, router_pid)
from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.unit.webapp_bridge.server.test_http_overload import Bridge
from tests.unit.webapp_bridge.server.test_http_overload import post as http_post
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient
from webapp_bridge.server import balance, handoff
from webapp_bridge.server.handoff import RETRY, Receiver, Sender

pytestmark = pytest.mark.integration
TOPIC = "gateway.event.demo.message"
NOBODY = 65534


# -- both ends, over real sockets, in memory -------------------------------------------------------------------------


def tcp_connection() -> tuple[socket.socket, socket.socket]:
    """A TCP connection on loopback: (the client's end, the accepted end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
    return client, accepted


class Ends:
    """A receiver and a sender on one name, each adopting into a list (a duplicate of the descriptor)."""

    def __init__(self, room: bool = True) -> None:
        self.name = handoff.address("test", int.from_bytes(os.urandom(3), "big"))
        self.reactor = MemoryReactorClock()
        self.room = room
        self.taken: list[socket.socket] = []
        self.served_here: list[socket.socket] = []
        #: What ``pass_on`` said when asked while a connection passed back was being adopted (as the bridge's
        #: site asks of every connection it is given).
        self.passed_on_again: list[bool] = []
        self.receiver = Receiver(self.name, lambda fd: self.taken.append(_dup(fd)), lambda: self.room, self.reactor)
        #: The seconds the receiver's and the sender's reactor threads have had work (``receiver_window``,
        #: ``report_load``).
        self.busy_seconds = self.sender_busy_seconds = self.sender_clock = 0.0
        self.sender = Sender(self.name, self._serve_here, self.reactor, monotonic=self.reactor.seconds)

    def _serve_here(self, fd: int) -> None:
        self.passed_on_again.append(self.sender.pass_on(fd))
        self.served_here.append(_dup(fd))

    def connect(self) -> None:
        """Both ends started; the receiver accepts the sender's connection and says it is ready, and the sender
        reads that (and nothing more is read: ``read_all`` does that)."""
        self.receiver.start()
        self.sender.start()
        self.handshake()

    def pass_new(self) -> socket.socket:
        """A new TCP connection passed on by the sender, its copy then closed (as the bridge's site closes it):
        the client's end."""
        client, accepted = tcp_connection()
        with accepted:
            assert self.sender.pass_on(accepted.fileno())
        return client

    def handshake(self) -> None:
        for _ in range(2):  # the listener accepts and says ready; the sender reads it. Peers are not read.
            for reader in list(self.reactor.getReaders()):
                if reader.logPrefix() == "hand-off":
                    reader.doRead()

    def read_all(self) -> None:
        """Every socket the reactor watches reads what is waiting for it, until none has anything left."""
        for _ in range(5):
            for reader in list(self.reactor.getReaders()):
                reader.doRead()

    def close(self) -> None:
        self.sender.stop()
        self.receiver.stop()
        for sock in [*self.taken, *self.served_here]:
            sock.close()


def _dup(fd: int) -> socket.socket:
    return socket.socket(fileno=os.dup(fd))


@pytest.fixture
def ends() -> Iterator[Ends]:
    both = Ends()
    try:
        yield both
    finally:
        both.close()


def test_a_connection_passed_on_is_served_by_the_receiver_from_its_first_byte(ends: Ends) -> None:
    ends.receiver.start()
    ends.sender.start()
    assert not ends.sender.connected, "nothing is passed until the receiver has accepted the sender"
    early, early_accepted = tcp_connection()
    with early, early_accepted:
        assert not ends.sender.pass_on(early_accepted.fileno()), "served where it landed"
    ends.handshake()
    assert ends.sender.connected
    client, accepted = tcp_connection()
    with client:
        client.sendall(b"GET / HTTP/1.1\r\n")  # already waiting when it is passed on: nothing was read of it
        assert ends.sender.pass_on(accepted.fileno())
        accepted.close()  # the sender's copy, closed without a shutdown
        ends.read_all()
        assert len(ends.taken) == 1 and not ends.served_here
        (served,) = ends.taken
        served.settimeout(5)
        assert served.recv(100) == b"GET / HTTP/1.1\r\n", "every byte reaches the receiver"
        client.sendall(b"\r\n")
        assert served.recv(100) == b"\r\n"
        served.sendall(b"HTTP/1.1 200 OK\r\n\r\n")  # the sender's close did not end the connection
        assert client.recv(100) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert (ends.receiver.taken, ends.sender.passed, ends.receiver.peers) == (1, 1, 1)


def test_without_room_a_connection_comes_back_and_is_served_where_it_landed(ends: Ends) -> None:
    ends.room = False
    ends.connect()
    with ends.pass_new() as client:
        ends.read_all()
        assert not ends.taken and len(ends.served_here) == 1
        (served,) = ends.served_here
        client.sendall(b"ping")
        served.settimeout(5)
        assert served.recv(10) == b"ping"
    assert (ends.receiver.returned, ends.sender.returned) == (1, 1)
    assert ends.passed_on_again == [False], "one passed back is served here, never passed on again"
    assert ends.sender.connected, "a receiver without room is still there for the next one"


def test_with_no_receiver_connections_are_served_here_and_it_is_tried_again(ends: Ends) -> None:
    ends.sender.start()
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.sender.connected
        assert not ends.sender.pass_on(accepted.fileno()), "nobody to pass it to: served where it landed"
        ends.receiver.start()
        ends.reactor.advance(RETRY)
        ends.handshake()
        assert ends.sender.connected
        assert ends.sender.pass_on(accepted.fileno())


def test_a_receiver_that_stops_sends_the_senders_back_to_serving_their_own(ends: Ends) -> None:
    ends.connect()
    assert ends.receiver.peers == 1
    ends.receiver.stop()
    ends.read_all()  # the sender reads the end of its connection
    assert not ends.sender.connected
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.sender.pass_on(accepted.fileno())
        ends.reactor.advance(RETRY)
        assert not ends.sender.connected, "still nobody listening"
        ends.receiver.start()  # the next active dispatcher's bridge
        ends.reactor.advance(RETRY)
        ends.handshake()
        assert ends.sender.connected and ends.sender.pass_on(accepted.fileno())


def test_a_sender_that_finds_the_receiver_gone_mid_send_serves_the_connection_itself(ends: Ends) -> None:
    ends.connect()
    ends.receiver.stop()  # its process died: the sender has not read the end yet
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.sender.pass_on(accepted.fileno())
        assert not ends.sender.connected


def test_a_receiver_that_does_not_read_is_passed_only_a_few(ends: Ends) -> None:
    """A stopped or hung receiving process: connections wait for it only while the sender's small buffer has
    room; after that each is served where it landed, not left hanging."""
    ends.connect()
    pairs = [tcp_connection() for _ in range(200)]
    try:
        went = [ends.sender.pass_on(accepted.fileno()) for _, accepted in pairs]
        assert 0 < went.count(True) < 64 and not any(went[went.index(False):]), went
        assert ends.sender.connected, "a receiver that is behind is not a receiver that is gone"
    finally:
        for client, accepted in pairs:
            client.close()
            accepted.close()


def report_load(ends: Ends, handling: int, connections: int, busy: float = 0.0) -> None:
    """A window of the sender's samples (its reactor thread having work ``busy`` of the time), reported and read
    by the receiver."""
    for _ in range(balance.WINDOW):  # (on a clock of its own: the receiver's windows are not stretched)
        ends.sender_clock += balance.SAMPLE
        ends.sender_busy_seconds += balance.SAMPLE * busy
        ends.sender.sample(handling, connections, ends.sender_busy_seconds, ends.sender_busy_seconds, ends.sender_clock)
    ends.read_all()


def receiver_window(ends: Ends, handling: int, busy: float = 1.0) -> None:
    """A window of the receiver's samples, its reactor thread having work ``busy`` of the time (it decides at
    the window's end), and what it sent read by the sender."""
    for _ in range(balance.WINDOW):
        ends.reactor.advance(balance.SAMPLE)
        ends.busy_seconds += balance.SAMPLE * busy
        ends.receiver.sample(handling, 16, ends.busy_seconds, ends.busy_seconds, ends.reactor.seconds())
    ends.read_all()


def test_a_busy_receiver_gives_kept_alive_connections_to_the_sender_which_serves_them_itself(ends: Ends) -> None:
    ends.connect()
    report_load(ends, 0, 0)
    pairs = [tcp_connection() for _ in range(5)]
    try:
        assert not ends.receiver.give_back(pairs[0][1].fileno()), "not busy yet: nothing is given"
        receiver_window(ends, 16)  # 16 requests at once, none there: a quarter of the difference goes
        went = [ends.receiver.give_back(accepted.fileno()) for _, accepted in pairs]
        assert went == [True] * 4 + [False]
        for _, accepted in pairs:
            accepted.close()  # the receiver's copies, as its site closes them
        ends.read_all()
        assert len(ends.served_here) == 4 and ends.passed_on_again == [False] * 4, \
            "served by the sender, never passed straight back"
        for (client, _), served in zip(pairs, ends.served_here):
            client.sendall(b"next request")
            served.settimeout(5)
            assert served.recv(20) == b"next request"
        assert (ends.receiver.given, ends.sender.given, ends.sender.returned) == (4, 4, 0)
        receiver_window(ends, 16)
        receiver_window(ends, 7)
        another, accepted = tcp_connection()
        with another, accepted:
            assert not ends.receiver.give_back(accepted.fileno()), "no longer busy: what was left to give is not"
    finally:
        for client, _ in pairs:
            client.close()


def test_a_receiver_that_keeps_up_again_calls_the_kept_alive_connections_back(ends: Ends) -> None:
    ends.connect()
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.sender.call_back(accepted.fileno()), "nobody called it back"
        report_load(ends, 0, 2)  # two connections, idle now
        receiver_window(ends, 1, busy=0.1)
        assert ends.sender.call_back(accepted.fileno())
        accepted.close()
        ends.read_all()
        assert len(ends.taken) == 1 and (ends.receiver.taken, ends.receiver.called, ends.sender.called) == (1, 1, 1)
        client.sendall(b"next request")
        ends.taken[0].settimeout(5)
        assert ends.taken[0].recv(20) == b"next request"
    client, accepted = tcp_connection()
    with client, accepted:
        ends.reactor.advance(handoff.CALL_GOOD_FOR + 0.1)
        assert not ends.sender.call_back(accepted.fileno()), "a call is good for a moment: the receiver calls again"
        receiver_window(ends, 1, busy=0.1)
        assert ends.sender.call_back(accepted.fileno())


def test_a_receiver_without_room_calls_nothing_back(ends: Ends) -> None:
    ends.room = False
    ends.connect()
    report_load(ends, 0, 3)
    receiver_window(ends, 0, busy=0.0)
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.sender.call_back(accepted.fileno()), "it would pass it back at once"


def test_a_connection_given_cancels_a_call_from_before_the_receiver_was_busy(ends: Ends) -> None:
    """A quiet window calls the sender's connections back; the next one is busy and gives one. That one must not
    go straight back at the end of its next request on the strength of the older call."""
    ends.connect()
    report_load(ends, 0, 3)
    receiver_window(ends, 1, busy=0.1)  # quiet: calls the three back
    report_load(ends, 0, 3)
    receiver_window(ends, 16)  # busy: gives
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.receiver.give_back(accepted.fileno())
    ends.read_all()
    (given,) = ends.served_here
    assert not ends.sender.call_back(given.fileno()), "the call from before the give no longer holds"


def test_a_call_sent_after_a_give_holds_when_both_are_read_together(ends: Ends) -> None:
    ends.connect()
    report_load(ends, 0, 3)
    for _ in range(balance.WINDOW):  # busy, not read yet by the sender
        ends.reactor.advance(balance.SAMPLE)
        ends.busy_seconds += balance.SAMPLE
        ends.receiver.sample(16, 16, ends.busy_seconds, ends.busy_seconds, ends.reactor.seconds())
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.receiver.give_back(accepted.fileno())  # _GIVEN
    for _ in range(balance.WINDOW):  # quiet again: it calls them back (_CALL, after the _GIVEN)
        ends.reactor.advance(balance.SAMPLE)
        ends.receiver.sample(0, 16, ends.busy_seconds, ends.busy_seconds, ends.reactor.seconds())
    ends.read_all()
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.sender.call_back(accepted.fileno()), "the later call holds"


def test_a_connection_called_back_to_a_receiver_without_room_comes_back_as_kept_alive(ends: Ends) -> None:
    """Passed back, it is between two requests still: not counted where it lands as a new connection whose
    first request is to come (``BridgeSite.adopt(fresh=False)``)."""
    kept: list[socket.socket] = []
    ends.sender = Sender(ends.name, ends._serve_here, ends.reactor, monotonic=ends.reactor.seconds,
                         adopt_kept=lambda fd: kept.append(_dup(fd)))
    ends.connect()
    report_load(ends, 0, 2)
    receiver_window(ends, 0, busy=0.0)  # calls them back
    ends.room = False  # and then has none
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.sender.call_back(accepted.fileno())
    ends.read_all()
    try:
        assert len(kept) == 1 and not ends.served_here and (ends.receiver.returned, ends.sender.returned) == (1, 1)
    finally:
        for sock in kept:
            sock.close()


def test_a_schedstat_that_cannot_be_read_leaves_the_threads_cpu_time_and_no_descriptor_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(fd: int) -> tuple[float, float]:
        raise ValueError("not what schedstat looks like")
    hand_off = handoff.HandOff(SimpleNamespace(room_for_one=lambda: True), socket.AF_INET, b"\0test")
    monkeypatch.setattr(handoff, "_schedstat_seconds", unreadable)
    before = open_descriptors()
    ran, busy = hand_off._times() or (-1.0, -2.0)
    assert ran == busy >= 0 and open_descriptors() == before
    monkeypatch.undo()
    assert hand_off._times() is not None and hand_off._schedstat is None, "one source for the process's life"


def test_a_bridge_that_never_reported_its_load_is_given_nothing(ends: Ends) -> None:
    """An older version of the other bridge (no ``_LOAD``) would keep every connection given to it."""
    ends.connect()
    receiver_window(ends, 16)
    client, accepted = tcp_connection()
    with client, accepted:
        assert not ends.receiver.give_back(accepted.fileno())
    report_load(ends, 0, 0)
    receiver_window(ends, 16)
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.receiver.give_back(accepted.fileno())


def test_a_load_report_that_is_not_a_load_counts_as_none(ends: Ends) -> None:
    ends.connect()
    assert ends.sender._connection is not None
    ends.sender._connection.sock.send(handoff._LOAD + handoff._LOAD_VALUE.pack(float("nan"), 0, float("nan"), -1.0))
    ends.read_all()
    receiver_window(ends, 9)  # against a NaN every comparison fails: counted as 0, this one gives
    client, accepted = tcp_connection()
    with client, accepted:
        assert ends.receiver.give_back(accepted.fileno())


class Firing:
    """A socket the reactor reads (it stands for the router's): reading it fires ``fire``."""

    def __init__(self, sock: socket.socket, fire: Any) -> None:
        self.sock = sock
        self._fire = fire

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        self.sock.recv(1)
        self._fire()

    def connectionLost(self, reason: object) -> None:
        pass

    def logPrefix(self) -> str:
        return "router"


def test_a_pipelined_request_that_arrives_as_its_connection_moves_is_left_for_the_other_process() -> None:
    """One poll of a real epoll reactor holds the router's acknowledgement (which answers request 1, so the
    connection moves) and the client's pipelined request 2. Twisted calls doRead for every event of the poll
    without asking whether the descriptor still reads: request 2 must stay in the socket for the process the
    connection went to, not be read here and dropped with this copy."""
    bridge = Bridge(limit=5)
    moved: list[int] = []
    bridge.site.between_requests = lambda fd: moved.append(fd) is None  # the other bridge takes it
    poller = EPollReactor()  # never installed nor run: one iteration at a time
    client, accepted = tcp_connection()  # ``accepted`` stands for the other process's copy
    router, acknowledging = socket.socketpair()
    with client, accepted, router, acknowledging:
        transport = poller.adoptStreamConnection(accepted.fileno(), socket.AF_INET, bridge.site)
        client.sendall(http_post())
        for _ in range(2):
            poller.doIteration(0)
        assert len(bridge.held) == 1, "request 1 read, in flight"
        poller.addReader(Firing(router, lambda: bridge.held[0].callback(None)))
        acknowledging.send(b"!")  # the acknowledgement comes first ...
        client.sendall(http_post())  # ... then the pipelined request
        wait_for(lambda: _readable(accepted), what="request 2 in the socket")
        poller.doIteration(0)  # one poll: [router, client]
        assert moved and bridge.handled == 1, "not read here"
        assert _waiting(accepted) == len(http_post()), "all of it left in the socket for the other process"
        poller.doIteration(0)
        assert transport.disconnected, "this process's copy closed"
        poller.removeAll()


def _waiting(sock: socket.socket) -> int:
    """Bytes waiting in the socket, not read by anyone."""
    try:
        return len(sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connections_on_their_way_when_the_receiver_stops_are_served_not_dropped(ends: Ends) -> None:
    """The active dispatcher leaves (an orderly stop): what the senders passed and the receiver has not read
    yet is served, here or back where it landed, not closed with the sockets (each client's connection with
    them: the sender's copy is closed already)."""
    ends.receiver = Receiver(ends.name, lambda fd: ends.taken.append(_dup(fd)), lambda: len(ends.taken) < 2,
                             ends.reactor)  # room for two: the other two come back
    ends.connect()
    pairs = [tcp_connection() for _ in range(4)]
    try:
        for _, accepted in pairs:
            assert ends.sender.pass_on(accepted.fileno())
            accepted.close()
        ends.receiver.stop()  # not a byte read of the Unix connection before
        ends.read_all()
        assert (len(ends.taken), len(ends.served_here)) == (2, 2)
        for (client, _), served in zip(pairs, [*ends.taken, *ends.served_here]):
            client.sendall(b"still there")
            served.settimeout(5)
            assert served.recv(20) == b"still there"
        assert not ends.sender.connected
    finally:
        for client, _ in pairs:
            client.close()


def test_once_the_receiver_begins_to_stop_a_sender_serves_its_connections_itself(
        ends: Ends, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the receiver's last read and its close nothing may arrive (it would be closed unread, the
    client's connection with it): from the moment it stops, a sender's pass fails and it serves the
    connection itself."""
    real = handoff._shut_and_read
    tried: list[bool] = []

    def shut_and_read(sock: socket.socket) -> tuple[list[bytes], list[handoff.Received]]:
        got = real(sock)
        client, accepted = tcp_connection()  # a connection the sender accepts right then
        with client, accepted:
            tried.append(ends.sender.pass_on(accepted.fileno()))
        return got
    ends.connect()
    monkeypatch.setattr(handoff, "_shut_and_read", shut_and_read)
    ends.receiver.stop()
    assert tried and not any(tried) and not ends.sender.connected  # (the sender then shuts its own: asked again)


def test_connections_passed_back_when_the_sender_stops_are_served_there(ends: Ends) -> None:
    ends.room = False
    ends.connect()
    with ends.pass_new() as client:
        for reader in list(ends.reactor.getReaders()):
            if reader.logPrefix() == "hand-off peer":
                reader.doRead()  # the receiver passes it back; the sender has not read it yet
        ends.sender.stop()  # its own dispatcher became active
        assert len(ends.served_here) == 1
        client.sendall(b"ping")
        ends.served_here[0].settimeout(5)
        assert ends.served_here[0].recv(10) == b"ping"


def test_a_descriptor_that_cannot_be_served_is_closed_and_the_others_are_served(ends: Ends) -> None:
    """A same-user process passing something that is not a TCP connection (a pipe): adopting it fails, as
    Twisted's does; it is closed, and what came with it is served."""
    served: list[int] = []

    def adopt(fd: int) -> None:
        if os.fstat(fd).st_mode & 0o170000 != 0o140000:  # not a socket
            raise TypeError("not a TCP connection")
        served.append(fd)
    ends.receiver = Receiver(ends.name, adopt, lambda: True, ends.reactor)
    ends.connect()
    before = open_descriptors()
    read_end, write_end = os.pipe()
    client, accepted = tcp_connection()
    try:
        assert ends.sender.pass_on(read_end) and ends.sender.pass_on(accepted.fileno())
        ends.read_all()
        assert len(served) == 1 and ends.receiver.peers == 1, "the one after it served; the sender still there"
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        client.close()
        accepted.close()
    assert open_descriptors() == before, "every descriptor received was closed"


def test_a_receiver_that_cannot_make_its_socket_tries_again(ends: Ends, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors (a flood of connections): the next attempt comes, it is not given up."""
    real = handoff._unix_socket
    failures = iter([OSError(24, "Too many open files")])

    def unix_socket() -> socket.socket:
        for failure in failures:
            raise failure
        return real()
    monkeypatch.setattr(handoff, "_unix_socket", unix_socket)
    ends.receiver.start()
    assert not ends.receiver.listening
    ends.reactor.advance(RETRY)
    assert ends.receiver.listening


def test_a_second_receiver_waits_until_the_name_is_free() -> None:
    first, second = Ends(), Ends()
    second.name = first.name
    second.receiver = Receiver(first.name, lambda fd: None, lambda: True, first.reactor)
    try:
        first.receiver.start()
        second.receiver.start()
        assert first.receiver.listening and not second.receiver.listening, "the dispatcher before is still leaving"
        first.receiver.stop()
        first.reactor.advance(RETRY)
        assert second.receiver.listening
    finally:
        first.close()
        second.receiver.stop()


# -- another user's process at the other end -------------------------------------------------------------------------


#: A Python that another user may run (the project's virtualenv may be in a home only root enters).
SYSTEM_PYTHON = "/usr/bin/python3"
another_user = pytest.mark.skipif(os.getuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                                  reason="starting a process of another user needs root and /usr/bin/python3")


def as_nobody(script: str) -> subprocess.Popen[str]:
    """``script`` run by another user (nobody); its first line of output says it is ready."""
    return subprocess.Popen([SYSTEM_PYTHON, "-c", textwrap.dedent(script)], user=NOBODY, group=NOBODY,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=10)  # (closes its pipes)


def squatting(name: bytes | str, kind: str) -> subprocess.Popen[str]:
    """Another user's process listening on the Unix socket ``name`` (``kind``: ``SOCK_SEQPACKET``,
    ``SOCK_STREAM``), once it does; ``stop`` it."""
    squatter = as_nobody(f"""
        import socket, sys
        unix = socket.socket(socket.AF_UNIX, socket.{kind})
        unix.bind({name!r})
        unix.listen(1)
        print("listening", flush=True)
        sys.stdin.read()
    """)
    assert squatter.stdout is not None
    assert squatter.stdout.readline().strip() == "listening"
    return squatter


@another_user
def test_a_process_of_another_user_cannot_pass_connections_in(ends: Ends) -> None:
    ends.receiver.start()
    intruder = as_nobody(f"""
        import socket, sys
        target = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(target.getsockname())
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        unix.connect({ends.name!r})
        socket.send_fds(unix, [b"p"], [client.fileno()])
        print("sent", flush=True)
        try:
            print("closed" if unix.recv(1) == b"" else "open", flush=True)
        except ConnectionResetError:  # closed with what it sent unread
            print("closed", flush=True)
    """)
    try:
        assert intruder.stdout is not None
        assert intruder.stdout.readline().strip() == "sent"
        ends.read_all()
        assert intruder.stdout.readline().strip() == "closed", "the receiver hung up on it"
        assert (ends.receiver.peers, ends.receiver.taken, ends.taken) == (0, 0, [])
    finally:
        stop(intruder)


@another_user
def test_a_name_held_by_another_user_gets_no_connections(ends: Ends) -> None:
    squatter = squatting(ends.name, "SOCK_SEQPACKET")
    try:
        ends.sender.start()
        assert not ends.sender.connected, "the other end runs as another user: nothing is passed to it"
        client, accepted = tcp_connection()
        with client, accepted:
            assert not ends.sender.pass_on(accepted.fileno())
    finally:
        stop(squatter)


# -- a node ----------------------------------------------------------------------------------------------------------


def livez(node: GatewayNode) -> Reply:
    return health(node, "/livez")


def taking(node: GatewayNode) -> Reply | None:
    """/livez from the bridge beside the active dispatcher once the other bridge passes its connections there."""
    reply = livez(node)
    state = reply.body["hand_off"]
    return reply if state["state"] == "taking" and state["from"] == BRIDGES - 1 else None


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    with running_node({"bridge": {"max_in_flight": LIMIT, "max_batch": LIMIT}}) as running:
        yield running


def test_every_new_connection_is_served_beside_the_active_dispatcher(node: GatewayNode) -> None:
    active = wait_for(lambda: taking(node), what="the other bridge passing its connections on")
    pids = {livez(node).body["pid"] for _ in range(30)}
    assert pids == {active.body["pid"]}, "each of 30 new connections, whichever bridge accepted it"
    room = uuid.uuid4().hex
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        replies = [post(node, event(room, f"one-{room}-{i}")) for i in range(20)]
        assert [r.status for r in replies] == [202] * 20
        got = client.take(20, timeout=30)
    assert [e["seq"] for e in got] == sorted(r.body["seq"] for r in replies)
    after = livez(node).body["hand_off"]
    assert after["taken"] >= active.body["hand_off"]["taken"] + 1, "some of them came from the other bridge"
    counted = wait_for(lambda: handoff_counts(node), what="gateway_handoff_connections_total adding up")
    assert counted["taken"] >= after["taken"] and counted["passed"] >= counted["taken"] > 0, counted


def handoff_counts(node: GatewayNode) -> dict[str, float] | None:
    """The node's ``gateway_handoff_connections_total`` by outcome, once what was passed is accounted for (each
    connection passed is taken or returned by the other bridge: counted in two processes, a moment apart)."""
    reply = node.get("/metrics")
    assert reply.status == 200, reply
    counts = {outcome: 0.0 for outcome in ("passed", "taken", "returned", "lost")}
    for family in text_string_to_metric_families(reply.body):
        for sample in family.samples:
            if sample.name == "gateway_handoff_connections_total":
                counts[sample.labels["outcome"]] = sample.value
    balanced = counts["passed"] == counts["taken"] + counts["returned"] + counts["lost"]
    return counts if balanced and counts["passed"] > 0 else None


@contextmanager
def router_stopped(node: GatewayNode) -> Iterator[None]:
    pid = router_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_burst_past_the_active_bridges_room_is_absorbed_by_every_bridge(node: GatewayNode) -> None:
    """With the router stopped nothing in flight ends: the bridge beside the active dispatcher takes as many new
    connections as it has room for, the others come back to the bridge that accepted them, and the node holds
    ``LIMIT`` per bridge, as without the hand-off."""
    before = wait_for(lambda: taking(node), what="the other bridge passing its connections on").body["hand_off"]
    room, sent = uuid.uuid4().hex, 60
    with WampClient(node.ws_url) as client, ThreadPoolExecutor(sent) as pool:
        client.subscribe(TOPIC)
        with router_stopped(node):
            futures = [pool.submit(post, node, event(room, f"burst-{room}-{i}")) for i in range(sent)]
            held = LIMIT * BRIDGES
            wait_for(lambda: sum(1 for f in futures if f.done()) >= sent - held, what=f"{sent - held} refusals")
            refused = [f.result() for f in futures if f.done()]
            for reply in refused:
                assert_refused_overloaded(reply)
            probes = [livez(node).body for _ in range(10)]  # served by whichever bridge has room: liveness
        replies = [f.result(timeout=60) for f in futures]
        accepted = [r for r in replies if r.status == 202]
        assert len(accepted) == held, "both bridges held LIMIT each"
        got = client.take(held, timeout=30)
    assert {e["id"] for e in got} == {r.body["id"] for r in accepted}
    assert {p["in_flight"] for p in probes} == {LIMIT}, "each bridge full, whichever answered"
    after = wait_for(lambda: taking(node), what="the bridge beside the active dispatcher").body["hand_off"]
    assert after["returned"] > before["returned"], "it passed connections back while it was full"


class KeptAlive:
    """A web-app's pool of kept-alive connections to the node, each used by one thread at a time."""

    def __init__(self, node: GatewayNode, size: int) -> None:
        self.connections = [http.client.HTTPConnection("127.0.0.1", node.bridge_port, timeout=30) for _ in range(size)]
        for connection in self.connections:
            connection.connect()
        self.sockets = [connection.sock for connection in self.connections]

    def post(self, i: int, path: str, body: Any) -> Reply:
        connection = self.connections[i]
        connection.request("POST", path, json.dumps(body).encode(), {"Authorization": f"Bearer {API_KEY}",
                                                                     "Content-Type": "application/json"})
        response = connection.getresponse()
        return Reply(response.status, {}, json.loads(response.read()))

    def pid(self, i: int) -> int:
        """Which process serves connection ``i`` now (``GET /livez`` on it)."""
        connection = self.connections[i]
        connection.request("GET", "/livez")
        response = connection.getresponse()
        return int(json.loads(response.read())["pid"])

    def same_connections(self) -> bool:
        return [connection.sock for connection in self.connections] == self.sockets

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def test_kept_alive_connections_move_to_the_other_bridge_under_load_and_back_once_one_process_keeps_up() -> None:
    """Sixteen connections busy all the time with batches: the bridge beside the active dispatcher is busy
    (``balance.BUSY`` requests at once, its reactor thread running nearly all the time) and gives some of them
    to the other bridge between two requests; once the load drops to one request at a time it calls them back.
    The clients see neither: every request on the same connection is answered, each event numbered once, in
    one numbering, and delivered."""
    with running_node() as node:
        active = wait_for(lambda: taking(node), what="the other bridge passing its connections on").body["pid"]
        pool = KeptAlive(node, 16)
        room = uuid.uuid4().hex
        accepted: list[dict[str, Any]] = []
        try:
            assert {pool.pid(i) for i in range(16)} == {active}, "every new connection is passed to it"
            served_by: set[int] = set()

            def busy(burst: int, i: int) -> list[dict[str, Any]]:
                mine: list[dict[str, Any]] = []
                for n in range(15):  # seconds of work for the bridge (a window is half a second)
                    # Fifty events a request, and no subscriber yet (the router idles): the bridge's work, not
                    # this test's threads nor the router, is what is busy. 16 x 50 in flight stays below
                    # bridge.max_in_flight.
                    events = [{"event": "demo.message", "data": message(room), "id": f"{burst}-{i}-{n}-{k}-{room}"}
                              for k in range(50)]
                    reply = pool.post(i, "/events/batch", {"events": events})
                    assert reply.status == 200, reply
                    mine += reply.body["results"]
                    if n % 5 == 4:
                        served_by.add(pool.pid(i))  # where it is served while the load lasts
                return mine
            for burst in range(5):  # again while nothing moved yet (a slow machine: a slower window)
                with ThreadPoolExecutor(16) as threads:
                    for done in threads.map(lambda i: busy(burst, i), range(16)):
                        accepted += done
                if served_by - {active}:
                    break
            assert served_by - {active}, "some connections were served by the other bridge under load"
            assert wait_for(lambda: taking(node), what="the active one's bridge").body["hand_off"]["given"] > 0
            seqs = [result.get("seq") for result in accepted]
            assert None not in seqs and len(set(seqs)) == len(seqs), "every event accepted, each with a seq of its own"
            with WampClient(node.ws_url) as client:
                client.subscribe(TOPIC)
                calmly: list[dict[str, Any]] = []

                def calm() -> bool:
                    for i in range(16):  # one request at a time: a load of at most one
                        reply = pool.post(i, "/events", {"event": "demo.message", "data": message(room),
                                                         "id": f"calm-{i}-{len(calmly)}-{room}"})
                        assert reply.status == 202, reply
                        calmly.append(reply.body)
                    return {pool.pid(i) for i in range(16)} == {active}
                wait_for(calm, timeout=60, what="every connection called back to the active dispatcher's bridge")
                got = client.take(len(calmly), timeout=60)
            assert [e["seq"] for e in got] == sorted(r["seq"] for r in calmly)
            assert [e["id"] for e in got] == [r["id"] for r in sorted(calmly, key=lambda r: r["seq"])]
            assert min(r["seq"] for r in calmly) > max(seqs), "one numbering"
            assert pool.same_connections(), "not one connection was closed or opened again"
            assert livez(node).body["hand_off"]["called"] > 0
        finally:
            pool.close()

def test_when_the_active_container_dies_the_survivor_serves_every_connection() -> None:
    with running_node() as node:
        active = wait_for(lambda: taking(node), what="the other bridge passing its connections on").body["pid"]
        os.kill(active, signal.SIGKILL)  # Crossbar does not start a container killed so again
        survivor = wait_for(lambda: _survivor_taking(node, active), timeout=60,
                            what="the other bridge's dispatcher taking over").body["pid"]
        room = uuid.uuid4().hex
        replies = [post(node, event(room, f"after-{room}-{i}")) for i in range(10)]
        assert [r.status for r in replies] == [202] * 10
        assert {livez(node).body["pid"] for _ in range(10)} == {survivor}


def _survivor_taking(node: GatewayNode, dead: int) -> Reply | None:
    """/livez from a bridge other than ``dead``'s once its dispatcher is active, or None."""
    try:
        reply = livez(node)
    except OSError:  # a connection the dead process had accepted
        return None
    return reply if reply.body["pid"] != dead and reply.body["hand_off"]["state"] == "taking" else None
