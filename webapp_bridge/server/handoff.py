"""New HTTP connections served by the bridge beside the active dispatcher (the connection hand-off).

Every container's bridge listens on the bridge port (SO_REUSEPORT) and the kernel spreads new connections
over them. A request served beside the active dispatcher is handed to it in the process
(``components.delivery.local``); one served beside a standby costs a WAMP call to the active one (call,
invocation, yield and result: four routed messages and two serializations per group of requests) and a
second busy process on the way. So a bridge beside a standby dispatcher passes each connection it accepts,
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

A connection on its way when the receiving process dies (between the sender's ``sendmsg`` and the
receiver's read: microseconds) is closed by the kernel with the socket, as every connection of that process
is. ``bridge.hand_off: false`` turns it off (each bridge serves what the kernel gives it).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.logger import Logger

from components.delivery import local

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
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def address(host: str, port: int) -> bytes:
    """The Unix socket's name for the bridge on ``host:port`` (abstract: a leading NUL byte)."""
    return f"\0gateway bridge hand-off {host}:{port}".encode()


def _same_user(sock: socket.socket) -> bool:
    _, uid, _ = _CREDENTIALS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    return bool(uid == os.getuid())


def _unix_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


def _messages(sock: socket.socket) -> tuple[list[tuple[bytes, list[int]]], bool]:
    """What the other end sent, at most ``READ_AT_ONCE`` messages, and whether it closed (or failed)."""
    got: list[tuple[bytes, list[int]]] = []
    for _ in range(READ_AT_ONCE):
        try:
            message, fds, flags, _ = socket.recv_fds(sock, 16, 1)
        except (BlockingIOError, InterruptedError):
            return got, False
        except OSError:
            return got, True
        if flags & socket.MSG_CTRUNC:  # more descriptors than asked for: the kernel closed the others
            log.warn("a hand-off message carried more than one connection; the others were closed")
        if not message and not fds:
            return got, True
        got.append((message, fds))
    return got, False


class _Watched:
    """A socket the reactor watches for reading (``IReadDescriptor``); ``read(self)`` does the work."""

    def __init__(self, sock: socket.socket, read: Callable[[_Watched], None], name: str) -> None:
        self.sock = sock
        self._read = read
        self._name = name
        self._fileno = sock.fileno()  # kept: the reactor may ask for it after the socket is closed

    def fileno(self) -> int:
        return self._fileno

    def doRead(self) -> None:
        self._read(self)

    def connectionLost(self, reason: Any) -> None:
        self.sock.close()

    def logPrefix(self) -> str:
        return self._name


class Receiver:
    """The bridge beside the active dispatcher: takes the connections other bridges pass on.

    ``adopt(fd)`` serves a connection here (the descriptor stays the caller's: ``adopt`` duplicates it);
    ``room()`` says whether one more may be taken now. ``start`` and ``stop`` follow the dispatcher.
    """

    def __init__(self, name: bytes, adopt: Callable[[int], None], room: Callable[[], bool],
                 clock: Any = None) -> None:
        self._name = name
        self._adopt = adopt
        self._room = room
        self._reactor: Any = clock if clock is not None else _REACTOR
        self._listening: _Watched | None = None
        self._peers: set[_Watched] = set()
        self._retry: Any = None
        self._started = False
        #: Connections taken and passed back since it started (tests and the log read them).
        self.taken = self.returned = 0

    @property
    def listening(self) -> bool:
        return self._listening is not None

    @property
    def peers(self) -> int:
        return len(self._peers)

    def start(self) -> None:
        self._started = True
        self._listen()

    def stop(self) -> None:
        """Stop taking connections: the senders see their Unix connection close and serve theirs themselves."""
        self._started = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        for watched in [*self._peers, *([self._listening] if self._listening else [])]:
            self._drop(watched)
        self._peers.clear()
        self._listening = None

    def _listen(self) -> None:
        self._retry = None
        if not self._started or self._listening is not None:
            return
        sock = _unix_socket()
        try:
            sock.bind(self._name)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            # The dispatcher before this one may still be leaving (its bridge holds the name until it sees
            # that), or another user's process took the name: connections then land as the kernel spreads them.
            if exc.errno != errno.EADDRINUSE:
                log.warn("the bridge cannot take connections from the other bridges: {err}", err=exc)
            self._retry = self._reactor.callLater(RETRY, self._listen)
            return
        self._listening = _Watched(sock, self._accept, "hand-off")
        self._reactor.addReader(self._listening)

    def _accept(self, listening: _Watched) -> None:
        for _ in range(READ_AT_ONCE):
            try:
                sock, _ = listening.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warn("accepting a bridge's hand-off connection: {err}", err=exc)
                return
            sock.setblocking(False)
            if not _same_user(sock):
                log.warn("refused a hand-off connection from a process of another user")
                sock.close()
                continue
            peer = _Watched(sock, self._read, "hand-off peer")
            self._peers.add(peer)
            self._reactor.addReader(peer)

    def _read(self, peer: _Watched) -> None:
        messages, closed = _messages(peer.sock)
        for _, fds in messages:
            for fd in fds:
                try:
                    self._take(peer, fd)
                finally:
                    os.close(fd)
        if closed and peer in self._peers:
            self._peers.discard(peer)
            self._drop(peer)

    def _take(self, peer: _Watched, fd: int) -> None:
        if not self._room():
            try:
                socket.send_fds(peer.sock, [_RETURNED], [fd])
                self.returned += 1
                return
            except OSError:
                pass  # the sender is gone or far behind: served here rather than lost
        try:
            self._adopt(fd)
            self.taken += 1
        except OSError as exc:  # the client went away meanwhile (no peer address): nothing to serve
            log.debug("a connection passed on by another bridge had closed: {err}", err=exc)

    def _drop(self, watched: _Watched) -> None:
        self._reactor.removeReader(watched)
        watched.sock.close()


class Sender:
    """A bridge beside a standby dispatcher: passes the connections it accepts to the active one's bridge.

    ``adopt(fd)`` serves here a connection passed back (no room there). ``start`` and ``stop`` follow the
    dispatcher beside it.
    """

    def __init__(self, name: bytes, adopt: Callable[[int], None], clock: Any = None) -> None:
        self._name = name
        self._adopt = adopt
        self._reactor: Any = clock if clock is not None else _REACTOR
        self._connection: _Watched | None = None
        self._retry: Any = None
        self._started = False
        #: True while a connection passed back is being adopted: it is served here, not passed on again.
        self._serving_here = False
        #: Connections passed on, and passed back, since it started.
        self.passed = self.returned = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def start(self) -> None:
        self._started = True
        self._connect()

    def stop(self) -> None:
        self._started = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._lose()

    def pass_on(self, fd: int) -> bool:
        """Pass a connection just accepted (not a byte read from it) to the bridge beside the active
        dispatcher: True if it went (close this process's copy of the descriptor without a shutdown, which
        would end it for both), False to serve it here."""
        connection = self._connection
        if connection is None or self._serving_here:
            return False
        try:
            socket.send_fds(connection.sock, [_PASSED], [fd])
        except (BlockingIOError, InterruptedError):
            return False  # the other bridge is behind in reading: this one is served here
        except OSError:
            self._lost()
            return False
        self.passed += 1
        return True

    def _connect(self) -> None:
        self._retry = None
        if not self._started or self._connection is not None:
            return
        sock = _unix_socket()
        try:
            # A small buffer: at most ~40 connections wait for the other bridge to read them. Past that it is
            # behind (busy, or its process stopped), and new connections are served here instead.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.connect(self._name)
            if not _same_user(sock):
                raise PermissionError(errno.EPERM, "the hand-off socket is held by a process of another user")
        except OSError as exc:
            sock.close()
            if isinstance(exc, PermissionError):
                log.warn("not passing connections on: {err}", err=exc)
            self._retry = self._reactor.callLater(RETRY, self._connect)
            return
        self._connection = _Watched(sock, self._read, "hand-off")
        self._reactor.addReader(self._connection)
        log.info("passing new HTTP connections to the bridge beside the active dispatcher")

    def _read(self, connection: _Watched) -> None:
        if connection is not self._connection:
            return
        messages, closed = _messages(connection.sock)
        for _, fds in messages:
            for fd in fds:
                self.returned += 1
                self._serving_here = True
                try:
                    self._adopt(fd)
                except OSError as exc:  # the client went away meanwhile
                    log.debug("a connection passed back had closed: {err}", err=exc)
                finally:
                    self._serving_here = False
                    os.close(fd)
        if closed:
            self._lost()

    def _lost(self) -> None:
        """The other bridge closed (its dispatcher left, its process died): serve here, and try again."""
        if self._connection is None:
            return
        self._lose()
        log.info("serving new HTTP connections here: the bridge beside the active dispatcher is gone")
        if self._started and self._retry is None:
            self._retry = self._reactor.callLater(RETRY, self._connect)

    def _lose(self) -> None:
        if self._connection is not None:
            self._reactor.removeReader(self._connection)
            self._connection.sock.close()
            self._connection = None


class HandOff:
    """A bridge's end of the hand-off, following the dispatcher beside it (``components.delivery.local``):
    ``Receiver`` while it is active, ``Sender`` otherwise. ``site`` is the bridge's ``BridgeSite``."""

    def __init__(self, site: Any, family: int, name: bytes) -> None:
        self._site = site

        def adopt(fd: int) -> None:
            site.adopt(fd, family)
        self.receiver = Receiver(name, adopt, site.room_for_one)
        self.sender = Sender(name, adopt)
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        self._site.hand_off_state = self.state
        self._unwatch = local.watch(self._follow)
        self._follow(local.active() is not None)

    def state(self) -> dict[str, Any]:
        """For ``GET /livez``: ``taking`` (beside the active dispatcher; ``from``: how many bridges pass their
        connections here), ``passing`` (to the bridge beside the active dispatcher), or ``serving`` (its own
        connections: no dispatcher is active, or the bridge beside it cannot be reached yet)."""
        if self.receiver.listening:
            return {"state": "taking", "from": self.receiver.peers, "taken": self.receiver.taken,
                    "returned": self.receiver.returned}
        if self.sender.connected:
            return {"state": "passing", "passed": self.sender.passed, "returned": self.sender.returned}
        return {"state": "serving"}

    def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._site.pass_on = self._site.hand_off_state = None
        self.sender.stop()
        self.receiver.stop()

    def _follow(self, active_here: bool) -> None:
        if active_here:
            self._site.pass_on = None
            self.sender.stop()
            self.receiver.start()
        else:
            self.receiver.stop()
            self.sender.start()
            self._site.pass_on = self.sender.pass_on
