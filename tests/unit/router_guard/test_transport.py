"""What waits to be written to a client, read from the installed Twisted's transports (no socket)."""

from __future__ import annotations

from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor

from components.router_guard.settings import GuardSettings
from components.router_guard.transport import pending_bytes


class _Unwritable(FileDescriptor):
    """A TCP-like transport whose socket takes nothing: everything written stays buffered."""

    def writeSomeData(self, data: bytes) -> int:
        return 0


class _TakesSome(FileDescriptor):
    """A socket that takes 100 bytes per write attempt."""

    def writeSomeData(self, data: bytes) -> int:
        return min(100, len(data))


def test_pending_bytes_are_what_has_not_reached_the_socket() -> None:
    stuck = _Unwritable(reactor=MemoryReactor())
    stuck.connected = True
    assert pending_bytes(stuck) == 0
    stuck.write(b"x" * 1000)
    stuck.writeSequence([b"y" * 500, b"z" * 24])
    assert pending_bytes(stuck) == 1524
    stuck.doWrite()  # moves the gathered writes to dataBuffer; the socket takes nothing
    assert pending_bytes(stuck) == 1524
    slow = _TakesSome(reactor=MemoryReactor())
    slow.connected = True
    slow.write(b"x" * 1000)
    slow.doWrite()
    slow.write(b"y" * 5000)
    assert pending_bytes(slow) == 900 + 5000


def test_pending_bytes_under_a_wrapper_and_for_unknown_transports() -> None:
    inner = _Unwritable(reactor=MemoryReactor())
    inner.connected = True
    inner.write(b"x" * 10)

    class Wrapper:
        transport = inner
        _appSendBuffer = [b"abc"]

    assert pending_bytes(Wrapper()) == 13
    assert pending_bytes(object()) == 0
    assert pending_bytes(None) == 0


def test_settings_survive_the_node_config() -> None:
    settings = GuardSettings(max_message_depth=32, max_client_buffer=65536, max_connections_per_address=None,
                             trusted_proxies=("10.0.0.0/8",))
    assert GuardSettings.from_extra({**settings.to_extra(), "cbdir": "/x"}) == settings
    assert GuardSettings.from_extra({}) == GuardSettings()
