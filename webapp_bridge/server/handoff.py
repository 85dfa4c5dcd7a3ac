"""New HTTP connections served by the bridge beside the active dispatcher (the connection hand-off).

Every container's bridge listens on the bridge port (SO_REUSEPORT) and the kernel spreads new connections
over them. A request served beside the active dispatcher is handed to it in the process
(``components.delivery.local``); one served beside a standby costs a second busy process on the way and a
hop to the active one (its events forwarded to that bridge, ``forward``, or a WAMP call: four routed
messages and two serializations per group of requests). So a bridge beside a standby dispatcher passes each connection it accepts,
before it reads a byte of it, to the bridge beside the active dispatcher: the connection's file descriptor
itself, over a Unix socket (SCM_RIGHTS). The client notices nothing; the connection is served there from its
first byte to its last.

- The bridge beside the active dispatcher listens on the Unix socket (``Receiver``) while its dispatcher is
  active. It takes a connection while it has room for it (``BridgeSite.room_for_one``: below
  ``bridge.max_connections`` and ``bridge.max_in_flight``) and passes it back otherwise, to be served where
  it landed: a burst is still absorbed by every bridge of the node, each within its own limits.
- A bridge beside a standby (``Sender``) keeps a connection to that socket, tried again every ``RETRY``
  seconds while no bridge listens. Until it has one (no dispatcher is active, or the active one's process
  died and another is taking over), and whenever the other bridge is too far behind to take one more
  descriptor, it serves the connection itself, as before: the hand-off only ever moves a connection, never
  refuses or delays one.
- The socket's name is in Linux's abstract namespace (``address``: no file to clean up, gone with its
  process), one per bridge port. Both ends check that the other runs as the same user (SO_PEERCRED), as
  SO_REUSEPORT does for the port itself: a process of another user can neither pass connections in nor
  receive them.

A connection on its way when either end stops in order (a dispatcher leaving, a bridge restarting) is
served, not dropped: the end that stops first refuses more (``shutdown``: the other's ``sendmsg`` fails, and
it serves that connection itself), then reads what was sent before, and serves it or passes it back. One on
its way when the receiving process dies (between the sender's ``sendmsg`` and the receiver's read) is closed
by the kernel with the socket, as every connection of that process is. A sender passes nothing before the
receiver has accepted it and said so (``_READY``): a Unix connection still in the listen backlog would be
dropped with its messages if the receiver stopped then.

Kept-alive connections also move between requests, by how busy each bridge is (``balance``): the bridge
beside the active dispatcher gives some to the other bridges while it falls behind (a second process parsing
then carries part of the work), and calls them back once it keeps up alone again (one process on the way is
the shortest path). A connection moves only when its last answer is sent and nothing of the next request has
been read (``http._CountedChannel.requestDone``); what the client sends meanwhile waits in the socket. The other
bridges report their load (``_LOAD``) every window; the active one's asks for connections back (``_CALL``).

``bridge.hand_off: false`` turns it off (each bridge serves what the kernel gives it).
"""

from __future__ import annotations

import errno
import math
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, task
from twisted.logger import Logger

from components.delivery import local
from components.metrics.families import HANDOFF
from components.metrics.process_meter import METER
from webapp_bridge.server import balance

log = Logger()
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's

#: Seconds between attempts to reach the bridge beside the active dispatcher while none listens (a
#: failed attempt is one ``connect`` that the kernel refuses at once).
RETRY = 1.0
#: Messages (one descriptor each) read in one go before the reactor serves others.
READ_AT_ONCE = 64
#: The sender's socket buffer (SO_SNDBUF; Linux doubles it): room for ~40 connections on their way.
SEND_BUFFER = 16 * 1024
_PASSED = b"p"  # a connection passed to the bridge beside the active dispatcher
_RETURNED = b"r"  # passed back: no room there
_READY = b"k"  # the receiver accepted the sender's Unix connection: connections may be passed from now on
_GIVEN = b"g"  # a kept-alive connection given by the busy bridge beside the active dispatcher
_LOAD = b"l"  # + the sender's load, connections, busy and ran shares (``balance.Load``), every window
_CALL = b"c"  # + one byte: the receiver calls that many kept-alive connections back
_CALLED = b"b"  # a kept-alive connection the sender passes because the receiver called it back
_RETURNED_KEPT = b"R"  # a called-back connection passed back: no room there (kept alive, between two requests)
_LOAD_VALUE = struct.Struct("!fIff")  # load, connections, busy share, ran share
#: The longest message: ``_LOAD`` and its value.
_MESSAGE_SIZE = 1 + _LOAD_VALUE.size
_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid
#: ``gateway_handoff_connections_total``'s outcomes.
_COUNTED_PASSED, _COUNTED_TAKEN, _COUNTED_RETURNED, _COUNTED_LOST, _COUNTED_GIVEN, _COUNTED_CALLED = (
    (("outcome", outcome),) for outcome in ("passed", "taken", "returned", "lost", "given", "called"))
#: Seconds a call for connections back stays good: a window and a little (the receiver calls again each window
#: while it wants them). A connection given meanwhile cancels it.
CALL_GOOD_FOR = balance.WINDOW * balance.SAMPLE + 0.1

#: Failed attempts in a row to take the name before the receiver says so in the log (a dispatcher leaving
#: holds it for a moment; longer, some other process holds it).
WARN_AFTER = 10


def address(host: str, port: int) -> bytes:
    """The Unix socket's name for the bridge on ``host:port`` (abstract: a leading NUL byte)."""
    return f"\0gateway bridge hand-off {host}:{port}".encode()


def same_user(sock: socket.socket) -> bool:
    """Whether the process at the other end of the Unix socket ``sock`` runs as this one's (effective) user:
    the credentials the kernel took when it connected (SO_PEERCRED), not anything it says."""
    _, uid, _ = _CREDENTIALS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    return bool(uid == os.geteuid())


def _unix_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


#: A descriptor received, with the message it came with (``_PASSED``, ``_GIVEN``...).
Received = tuple[bytes, int]


def _messages(sock: socket.socket, at_most: int | None = READ_AT_ONCE) -> tuple[list[bytes], list[Received], bool]:
    """What the other end sent (at most ``at_most`` messages; None: all there is): the messages, in order,
    the descriptors they carried (each now the caller's to close), and whether the other end closed (or
    failed)."""
    messages: list[bytes] = []
    descriptors: list[Received] = []
    while at_most is None or len(messages) < at_most:
        try:
            message, fds, flags, _ = socket.recv_fds(sock, _MESSAGE_SIZE, 1, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return messages, descriptors, False
        except OSError:
            return messages, descriptors, True
        if flags & socket.MSG_CTRUNC:  # a descriptor the kernel could not give this process: it closed it
            if message in (_PASSED, _CALLED) and not fds:  # out of descriptors (the open-file limit): the client is cut
                log.error("a connection passed on by another bridge was lost: this process has no descriptor "
                          "left (raise its open-file limit above bridge.max_connections)")
                METER.count(HANDOFF, _COUNTED_LOST)
                continue  # nothing to serve, nor to count as served
            if message in (_RETURNED, _RETURNED_KEPT, _GIVEN) and not fds:  # (counted by the other bridge)
                log.error("a connection passed back by the other bridge was lost: this process has no "
                          "descriptor left (raise its open-file limit above bridge.max_connections)")
                continue
            log.warn("a hand-off message carried more than one connection; the others were closed")
        if not message and not fds:
            return messages, descriptors, True
        messages.append(message)
        descriptors += [(message, fd) for fd in fds]
    return messages, descriptors, False


def _serve_each(descriptors: list[Received], serve: Callable[[bytes, int], None], what: str) -> None:
    """``serve(message, fd)`` each, then close it: every one closed once, whatever one of them raises."""
    for message, fd in descriptors:
        try:
            serve(message, fd)
        except Exception as exc:  # gone meanwhile (no peer address), or not a TCP socket: nothing to serve
            log.info("a connection {what} could not be served: {err}", what=what, err=exc)
        finally:
            os.close(fd)


def _shut_and_read(sock: socket.socket) -> tuple[list[bytes], list[Received]]:
    """Before closing a Unix connection: refuse what the other end sends from now on (its ``sendmsg`` fails,
    and it serves that connection itself), then read what it sent before, which a close would throw away
    (and with it each client's connection: this process's copy is the last)."""
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # not connected (any more): what is queued is still read below
    messages, descriptors, _ = _messages(sock, None)
    return messages, descriptors


def _schedstat_seconds(fd: int) -> tuple[float, float]:
    """A thread's seconds run, and run or waited for a core, so far, from its open /proc schedstat file."""
    ran, waited, _ = os.pread(fd, 128, 0).split()
    return int(ran) / 1e9, (int(ran) + int(waited)) / 1e9


def _share(value: float, at_most: float) -> float:
    """A reported number, sane: not a number or below 0 counts as 0."""
    return min(value, at_most) if math.isfinite(value) and value >= 0 else 0.0


class _Watched:
    """A socket the reactor watches for reading (``IReadDescriptor``): ``read(self)`` does the work, and
    ``lost(self)`` is told if the reactor gives it up (an error while reading)."""

    def __init__(self, sock: socket.socket, read: Callable[[_Watched], None], lost: Callable[[_Watched], None],
                 name: str) -> None:
        self.sock = sock
        self._read = read
        self._lost = lost
        self._name = name
        self._fileno = sock.fileno()  # kept: the reactor may ask for it after the socket is closed

    def fileno(self) -> int:
        return self._fileno

    def doRead(self) -> None:
        self._read(self)

    def connectionLost(self, reason: Any) -> None:
        self._lost(self)

    def logPrefix(self) -> str:
        return self._name


class Retrying:
    """One retry timer at a time (``RETRY`` seconds); ``forward`` retries so too."""

    def __init__(self, clock: Any) -> None:
        self._reactor: Any = clock if clock is not None else _REACTOR
        self._retry: Any = None

    def _again(self, attempt: Callable[[], None]) -> None:
        self._cancel_retry()
        self._retry = self._reactor.callLater(RETRY, attempt)

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None


class Receiver(Retrying):
    """The bridge beside the active dispatcher: takes the connections other bridges pass on.

    ``adopt(fd)`` serves a connection here (the descriptor stays the caller's: ``adopt`` duplicates it), and
    ``adopt_kept(fd)`` one kept alive that comes back between two requests (no request of it is on its way, as
    one of a new connection is); ``room()`` says whether one more may be taken now. ``start`` and ``stop``
    follow the dispatcher. ``sample(...)`` is this bridge's load now (``balance``), and ``give_back(fd)`` gives
    a kept-alive connection between two requests to another bridge when this one is busy.
    """

    def __init__(self, name: bytes, adopt: Callable[[int], None], room: Callable[[], bool],
                 clock: Any = None, adopt_kept: Callable[[int], None] | None = None) -> None:
        super().__init__(clock)
        self._name = name
        self._adopt = adopt
        self._adopt_kept = adopt_kept if adopt_kept is not None else adopt
        self._room = room
        self._listening: _Watched | None = None
        self._peers: set[_Watched] = set()
        self._started = False
        self._failed_binds = 0
        self._bind_warned = False
        #: The other bridges' last loads, this one's, and the connections to give until the next window.
        self._loads: dict[_Watched, balance.Load] = {}
        self._window = balance.Window()
        self.load = self.busy = self.ran = 0.0
        self._give_to: _Watched | None = None
        self._to_give = 0
        #: Connections taken, passed back, given (busy) and called back since the bridge started (``GET /livez``,
        #: tests).
        self.taken = self.returned = self.given = self.called = 0

    @property
    def listening(self) -> bool:
        return self._listening is not None

    @property
    def peers(self) -> int:
        return len(self._peers)

    def start(self) -> None:
        self._started = True
        self._failed_binds, self._bind_warned = 0, False
        self._window, self.load, self.busy, self.ran = balance.Window(), 0.0, 0.0, 0.0
        self._give_to, self._to_give = None, 0
        self._cancel_retry()
        self._listen()

    def stop(self) -> None:
        """Stop taking connections: the senders see their Unix connection end and serve theirs themselves.
        What they passed before is served (here, or passed back), not dropped with the sockets."""
        self._started = False
        self._cancel_retry()
        listening, self._listening = self._listening, None
        if listening is not None:
            # A sender still in the backlog passed nothing (it waits for ``_READY``): it sees the close.
            self._reactor.removeReader(listening)
            listening.sock.close()
        for peer in list(self._peers):
            self._close_peer(peer)

    def _listen(self) -> None:
        self._retry = None
        if not self._started or self._listening is not None:
            return
        sock: socket.socket | None = None
        try:
            sock = _unix_socket()
            sock.bind(self._name)
            sock.listen(16)
        except OSError as exc:
            if sock is not None:
                sock.close()
            # The dispatcher before this one may still be leaving (its bridge holds the name until it sees
            # that); held for longer, some other process has it. Meanwhile connections land as the kernel
            # spreads them.
            self._failed_binds += 1
            if not self._bind_warned and (exc.errno != errno.EADDRINUSE or self._failed_binds >= WARN_AFTER):
                self._bind_warned = True  # once until it can: it is tried every second
                log.warn("the bridge cannot take connections from the other bridges (attempt {n}): {err}; "
                         "trying every {retry} s", n=self._failed_binds, err=exc, retry=RETRY)
            self._again(self._listen)
            return
        if self._bind_warned:
            log.info("the bridge takes connections from the other bridges (after {n} attempts)", n=self._failed_binds)
        self._failed_binds, self._bind_warned = 0, False
        self._listening = _Watched(sock, self._accept, self._listener_lost, "hand-off")
        self._reactor.addReader(self._listening)

    def _accept(self, listening: _Watched, at_most: int | None = READ_AT_ONCE) -> None:
        accepted = 0
        while at_most is None or accepted < at_most:
            try:
                sock, _ = listening.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: left in the backlog, asked again in a moment
                log.warn("accepting a bridge's hand-off connection: {err}", err=exc)
                if self._listening is listening:
                    self._reactor.removeReader(listening)
                    self._reactor.callLater(RETRY, self._resume, listening)
                return
            accepted += 1
            sock.setblocking(False)
            try:
                if not same_user(sock):
                    raise PermissionError(errno.EPERM, "a process of another user")
                sock.send(_READY)  # the first message of a new socket: it fits
            except OSError as exc:
                log.warn("refused a hand-off connection: {err}", err=exc)
                sock.close()
                continue
            peer = _Watched(sock, self._read, self._close_peer, "hand-off peer")
            self._peers.add(peer)
            self._reactor.addReader(peer)

    def sample(self, handling: int, connections: int, ran: float, busy: float, now: float) -> None:
        """One sample of this bridge's load (requests being handled now, the connections it serves, the seconds
        the reactor thread has run and has had work, a monotonic clock); at the end of a window, decide which
        connections move until the next one (``balance.decide``)."""
        reading = self._window.sample(handling, ran, busy, now)
        if reading is None:
            return
        self.load, self.ran, self.busy = reading
        self._give_to, self._to_give = None, 0
        # A peer counts once it has reported: one that never does (an older version) is given nothing.
        reported = {peer: load for peer, load in self._loads.items() if peer in self._peers}
        move = balance.decide(self.load, self.busy, self.ran, connections, reported)
        if move is None:
            return
        if move.give:
            self._give_to, self._to_give = move.peer, move.count
            return
        if not self._room():
            return  # it would pass them back
        try:
            move.peer.sock.send(_CALL + bytes([min(move.count, 255)]))
        except OSError:
            pass  # behind in reading, or gone: asked again next window

    def give_back(self, fd: int) -> bool:
        """Give a kept-alive connection, between two requests, to the least loaded other bridge while this one
        is busy: True if it went (close this process's copy without a shutdown), False to go on serving it."""
        peer = self._give_to
        if self._to_give <= 0 or peer is None or peer not in self._peers:
            return False
        try:
            socket.send_fds(peer.sock, [_GIVEN], [fd])
        except OSError:
            return False
        self._to_give -= 1
        self.given += 1
        METER.count(HANDOFF, _COUNTED_GIVEN)
        return True

    def _resume(self, listening: _Watched) -> None:
        if self._listening is listening:
            self._reactor.addReader(listening)

    def _listener_lost(self, listening: _Watched) -> None:
        if self._listening is listening:
            self._listening = None
            listening.sock.close()
            if self._started:
                self._again(self._listen)

    def _read(self, peer: _Watched) -> None:
        messages, descriptors, closed = _messages(peer.sock)
        for message in messages:
            if message[:1] == _LOAD and len(message) == 1 + _LOAD_VALUE.size:
                load, connections, busy, ran = _LOAD_VALUE.unpack_from(message, 1)
                self._loads[peer] = balance.Load(_share(load, float("inf")), connections, _share(busy, 1.0),
                                                 _share(ran, 1.0))
        _serve_each(descriptors, lambda message, fd: self._take(peer, message, fd), "passed on by another bridge")
        if closed:
            self._close_peer(peer)

    def _close_peer(self, peer: _Watched) -> None:
        if peer not in self._peers:
            return
        self._peers.discard(peer)
        self._loads.pop(peer, None)
        self._reactor.removeReader(peer)
        _, descriptors = _shut_and_read(peer.sock)
        _serve_each(descriptors, lambda message, fd: self._take(peer, message, fd), "passed on by another bridge")
        peer.sock.close()

    def _take(self, peer: _Watched, message: bytes, fd: int) -> None:
        if message == _CALLED:
            self.called += 1
        if not self._room():
            try:
                socket.send_fds(peer.sock, [_RETURNED_KEPT if message == _CALLED else _RETURNED], [fd])
                self.returned += 1
                METER.count(HANDOFF, _COUNTED_RETURNED)
                return
            except OSError:
                pass  # the sender is gone, leaving or far behind: served here rather than lost
        self.taken += 1  # counted first: one whose client went away meanwhile fails to adopt, taken all the same
        METER.count(HANDOFF, _COUNTED_TAKEN)
        (self._adopt_kept if message == _CALLED else self._adopt)(fd)


class Sender(Retrying):
    """A bridge beside a standby dispatcher: passes the connections it accepts to the active one's bridge.

    ``adopt(fd)`` serves here a connection passed back (no room there) or given (busy there). ``start`` and
    ``stop`` follow the dispatcher beside it. ``sample(n)`` is this bridge's load now, reported to the receiver
    every window; ``call_back(fd)`` passes a kept-alive connection, between two requests, to the receiver
    when it called for one.
    """

    def __init__(self, name: bytes, adopt: Callable[[int], None], clock: Any = None,
                 adopt_kept: Callable[[int], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._name = name
        self._adopt = adopt
        self._adopt_kept = adopt_kept if adopt_kept is not None else adopt
        self._monotonic = monotonic
        self._connection: _Watched | None = None
        #: The receiver accepted the connection (its first message): until then nothing is passed on it.
        self._ready = False
        self._started = False
        self._warned = False
        #: True while a connection passed back is being adopted: it is served here, not passed on again.
        self._serving_here = False
        self._window = balance.Window()
        #: Kept-alive connections the receiver called back, and until when (``monotonic``).
        self._called = 0
        self._called_until = 0.0
        #: Connections passed on, passed back (no room there; given: busy there), and called back since the
        #: bridge started (``GET /livez``, tests).
        self.passed = self.returned = self.given = self.called = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._ready

    def start(self) -> None:
        self._started = True
        self._cancel_retry()
        self._window = balance.Window()  # nothing sampled before counts
        self._connect()

    def stop(self) -> None:
        self._started = False
        self._cancel_retry()
        self._lose()

    def pass_on(self, fd: int) -> bool:
        """Pass a connection just accepted (not a byte read from it) to the bridge beside the active
        dispatcher: True if it went (close this process's copy of the descriptor without a shutdown, which
        would end it for both), False to serve it here."""
        if not self._pass(fd):
            return False
        self.passed += 1
        METER.count(HANDOFF, _COUNTED_PASSED)
        return True

    def call_back(self, fd: int) -> bool:
        """Pass a kept-alive connection, between two requests, to the bridge beside the active dispatcher if it
        called for one lately: True if it went (as ``pass_on``)."""
        if self._called <= 0 or self._monotonic() > self._called_until or not self._pass(fd, _CALLED):
            return False
        self._called -= 1
        self.called += 1
        METER.count(HANDOFF, _COUNTED_CALLED)
        return True

    def sample(self, handling: int, connections: int, ran: float, busy: float, now: float) -> None:
        """One sample of this bridge's load (requests being handled now, the connections it serves, the seconds
        the reactor thread has run and has had work, a monotonic clock); each window's is reported."""
        reading = self._window.sample(handling, ran, busy, now)
        connection = self._connection
        if reading is None or connection is None or not self._ready:
            return
        load, ran, busy = reading
        try:
            connection.sock.send(_LOAD + _LOAD_VALUE.pack(load, min(connections, 2**32 - 1), busy, ran))
        except OSError:
            pass  # behind in reading, or gone (seen when reading): the next window's is sent

    def _pass(self, fd: int, message: bytes = _PASSED) -> bool:
        connection = self._connection
        if connection is None or not self._ready or self._serving_here:
            return False
        try:
            socket.send_fds(connection.sock, [message], [fd])
        except OSError as exc:
            if isinstance(exc, ConnectionError) or exc.errno == errno.ENOTCONN:
                self._lost(connection)  # the other end stopped, or died
            return False  # else behind in reading (EAGAIN), or short of kernel memory: this one is served here
        return True

    def _connect(self) -> None:
        self._retry = None
        if not self._started or self._connection is not None:
            return
        sock: socket.socket | None = None
        try:
            sock = _unix_socket()
            # A small buffer: at most ~40 connections wait for the other bridge to read them. Past that it is
            # behind (busy, or its process stopped), and new connections are served here instead.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.connect(self._name)
            if not same_user(sock):
                raise PermissionError(errno.EPERM, "the hand-off socket is held by a process of another user")
        except OSError as exc:
            if sock is not None:
                sock.close()
            if not isinstance(exc, (ConnectionRefusedError, FileNotFoundError)) and not self._warned:
                self._warned = True  # once, until it works
                log.warn("not passing connections on: {err}; trying every {retry} s", err=exc, retry=RETRY)
            self._again(self._connect)
            return
        self._warned = False
        self._ready = False
        self._connection = _Watched(sock, self._read, self._lost, "hand-off")
        self._reactor.addReader(self._connection)

    def _read(self, connection: _Watched) -> None:
        if connection is not self._connection:
            return
        messages, descriptors, closed = _messages(connection.sock)
        if _READY in messages and not self._ready:
            self._ready = True
            log.info("passing new HTTP connections to the bridge beside the active dispatcher")
        for message in messages:  # in the order sent: a connection given cancels a call sent before it
            if message[:1] == _CALL and len(message) == 2:
                self._called, self._called_until = message[1], self._monotonic() + CALL_GOOD_FOR
            elif message == _GIVEN:
                self._called = 0  # the receiver is busy now: a call from before it was is no longer good
        self._serve_returned(descriptors)
        if closed:
            self._lost(connection)

    def _serve_returned(self, descriptors: list[Received]) -> None:
        """Serve here the connections the receiver sent: passed back (no room there) or given (busy there)."""
        given = sum(1 for message, _ in descriptors if message == _GIVEN)
        self.given += given
        self.returned += len(descriptors) - given
        self._serving_here = True
        try:
            _serve_each(descriptors, lambda message, fd: (
                self._adopt_kept if message in (_GIVEN, _RETURNED_KEPT) else self._adopt)(fd), "passed back")
        finally:
            self._serving_here = False

    def _lost(self, connection: _Watched) -> None:
        """The other bridge closed (its dispatcher left, its process died): serve here, and try again."""
        if connection is not self._connection:
            return
        was_ready = self._ready
        self._lose()
        if was_ready:
            log.info("serving new HTTP connections here: the bridge beside the active dispatcher is gone")
        if self._started:
            self._again(self._connect)

    def _lose(self) -> None:
        connection, self._connection = self._connection, None
        self._ready = False
        self._called = 0
        if connection is not None:
            self._reactor.removeReader(connection)
            _, descriptors = _shut_and_read(connection.sock)  # passed back, not read yet: served here
            self._serve_returned(descriptors)
            connection.sock.close()


class HandOff:
    """A bridge's end of the hand-off, following the dispatcher beside it (``components.delivery.local``):
    ``Receiver`` while it is active, ``Sender`` otherwise. ``site`` is the bridge's ``BridgeSite``; with
    ``balance``, kept-alive connections move between requests (``balance``)."""

    def __init__(self, site: Any, family: int, name: bytes, balance: bool = True) -> None:
        self._site = site
        self._balance = balance

        def adopt(fd: int) -> None:
            site.adopt(fd, family)

        def adopt_kept(fd: int) -> None:
            site.adopt(fd, family, fresh=False)
        self.receiver = Receiver(name, adopt, site.room_for_one, adopt_kept=adopt_kept)
        self.sender = Sender(name, adopt, adopt_kept=adopt_kept)
        self._unwatch: Callable[[], None] | None = None
        self._sampling = task.LoopingCall(self._sample)
        #: Where ``_times`` reads the reactor thread's time: its schedstat file (kept open), or None: its CPU time.
        self._schedstat: int | None = None
        self._times_source_chosen = False

    def start(self) -> None:
        self._site.hand_off_state = self.state
        self._unwatch = local.watch(self._follow)
        self._follow(local.active() is not None)
        if self._balance:
            self._sampling.start(balance.SAMPLE, now=False)

    def _sample(self) -> None:
        times = self._times()
        if times is None:
            return
        ran, busy = times
        if self.receiver.listening:
            self.receiver.sample(self._site.handling(), self._site.connections, ran, busy, time.monotonic())
        elif self.sender.connected:
            self.sender.sample(self._site.handling(), self._site.connections, ran, busy, time.monotonic())

    def _times(self) -> tuple[float, float] | None:
        """Seconds the reactor's thread (this one: the sampling runs there) has run, and has had work: run or
        waited for a core (Linux's schedstat: a process that can take no more waits too, on a busy machine).
        Its CPU time for both where schedstat cannot be read or is switched off (it reads 0 0 0). One source for
        the process's life: two clocks would not subtract. None: this sample is skipped."""
        if not self._times_source_chosen:
            self._times_source_chosen = True
            fd: int | None
            try:
                fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    usable = _schedstat_seconds(fd)[1] > 0
                except (OSError, ValueError):
                    usable = False
                if not usable:
                    os.close(fd)
                    fd = None
            self._schedstat = fd
        if self._schedstat is None:
            cpu = time.thread_time()
            return cpu, cpu
        try:
            return _schedstat_seconds(self._schedstat)
        except (OSError, ValueError):
            return None

    def state(self) -> dict[str, Any]:
        """For ``GET /livez``: ``taking`` (beside the active dispatcher; ``from``: how many bridges pass their
        connections here), ``passing`` (to the bridge beside the active dispatcher), or ``serving`` (its own
        connections: no dispatcher is active, or the bridge beside it cannot be reached yet)."""
        if self.receiver.listening:
            taking = {"state": "taking", "from": self.receiver.peers, "taken": self.receiver.taken,
                      "returned": self.receiver.returned, "given": self.receiver.given,
                      "called": self.receiver.called}
            if self._balance:  # (measured only then)
                taking.update(load=round(self.receiver.load, 2), busy=round(self.receiver.busy, 2))
            return taking
        if self.sender.connected:
            return {"state": "passing", "passed": self.sender.passed, "returned": self.sender.returned,
                    "given": self.sender.given, "called": self.sender.called}
        return {"state": "serving"}

    def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._sampling.running:
            self._sampling.stop()
        if self._schedstat is not None:
            os.close(self._schedstat)
            self._schedstat, self._times_source_chosen = None, False
        self._site.pass_on = self._site.hand_off_state = self._site.between_requests = None
        self.sender.stop()
        self.receiver.stop()

    def _follow(self, active_here: bool) -> None:
        if active_here:
            self._site.pass_on = None
            self.sender.stop()
            self.receiver.start()
            self._site.between_requests = self.receiver.give_back if self._balance else None
        else:
            self.receiver.stop()
            self.sender.start()
            self._site.pass_on = self.sender.pass_on
            self._site.between_requests = self.sender.call_back if self._balance else None
