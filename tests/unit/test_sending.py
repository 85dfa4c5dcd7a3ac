"""Sending what a connection has queued at once (``components.sending``), on Twisted's own write buffer."""

from __future__ import annotations

from typing import Any

from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor, StringTransport

from components.sending import send_now


class Socket(FileDescriptor):
    """Twisted's write path (``FileDescriptor``) over a socket that takes ``room`` bytes at most per call."""

    def __init__(self, room: int = 1 << 20) -> None:
        self.reactor_ = MemoryReactor()
        super().__init__(self.reactor_)
        self.connected = True
        self.room = room
        self.wire = b""
        self.failing = False

    def writeSomeData(self, data: Any) -> Any:
        if self.failing:
            return main.CONNECTION_LOST
        taken = bytes(data[:self.room])
        self.wire += taken
        return len(taken)

    def fileno(self) -> int:
        return 7


def test_what_was_written_goes_out_at_once_not_at_the_reactors_next_poll() -> None:
    sock = Socket()
    sock.write(b"PUBLISH one")
    sock.write(b"PUBLISH two")
    assert sock.wire == b"" and sock in sock.reactor_.getWriters(), "queued for the reactor's next poll"
    send_now(sock)
    assert sock.wire == b"PUBLISH onePUBLISH two"
    assert sock not in sock.reactor_.getWriters(), "nothing left for the reactor to send"


def test_what_the_kernel_does_not_take_now_waits_for_the_reactor_as_usual() -> None:
    sock = Socket(room=4)
    sock.write(b"PUBLISH")
    send_now(sock)
    assert sock.wire == b"PUBL" and sock in sock.reactor_.getWriters()
    sock.room = 100
    sock.doWrite()  # the reactor's turn
    assert sock.wire == b"PUBLISH"


def test_a_failure_is_left_for_the_reactor_to_meet_and_end_the_connection() -> None:
    sock = Socket()
    sock.failing = True
    sock.write(b"PUBLISH")
    send_now(sock)  # nothing raised here
    assert sock.dataBuffer == b"PUBLISH" and sock in sock.reactor_.getWriters(), \
        "still queued: the reactor's own write meets the failure and ends the connection"


def test_a_closing_connection_is_left_to_the_reactor_which_ends_it() -> None:
    for half in (False, True):
        sock = Socket()
        sock.write(b"last answer")
        if half:
            sock.loseWriteConnection()
        else:
            sock.loseConnection()
        send_now(sock)
        assert sock.wire == b"", "a closing connection is finished (and its protocol told) by the reactor alone"


def test_nothing_queued_or_not_a_socket_is_left_alone() -> None:
    sock = Socket()
    send_now(sock)
    assert sock not in sock.reactor_.getWriters()
    transport = StringTransport()
    transport.write(b"x")
    send_now(transport)  # a test's transport: no write buffer of Twisted's
    send_now(None)
    assert transport.value() == b"x"


def test_a_connection_already_lost_is_left_alone() -> None:
    sock = Socket()
    sock.write(b"answer")
    sock.connected = False  # lost on a read (Twisted drops its socket, and what was queued with it)
    send_now(sock)
    assert sock.wire == b""
