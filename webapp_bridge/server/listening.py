"""The bridge's port: one listening socket per bridge process, all on the same port (SO_REUSEPORT), and how many
connections wait in a socket's queue (the drain is not over while any does: closing the port would reset them).

Sockets and the kernel only: no WAMP, no HTTP.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.tcp import Port

#: Connections the kernel holds for the bridge before it accepts them (capped by net.core.somaxconn).
#: A burst of connections past a short backlog is not refused but dropped, and each client's kernel
#: sends its SYN again 1, 3, 7, 15 s later: thousands of web-app requests at once would wait that
#: long before the bridge even sees them. With room for them, they are answered (or refused) at once.
LISTEN_BACKLOG = 4096


def listen_shared(host: str, port: int, factory: Any) -> Port:
    """Listen on host:port with SO_REUSEPORT, so that every bridge process can accept on it.

    Linux only lets sockets of the same user share a port this way.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        listening = cast(Port, reactor.adoptStreamPort(sock.fileno(), family, factory))
    finally:
        sock.close()  # adoptStreamPort keeps its own duplicate of the descriptor
    return listening


def waiting_connections(port: Port | None) -> int:
    """Connections in a listening port's accept queue: the kernel completed them, the bridge has not taken them
    yet (Linux's TCP_INFO of a listening socket gives that count as ``tcpi_unacked``; 0 where it does not)."""
    if port is None:
        return 0
    try:
        info = port.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        fields = _TCP_INFO_HEAD.unpack_from(info)
    except (OSError, AttributeError, struct.error):
        return 0
    return int(fields[12]) if fields[0] == _TCP_LISTEN else 0


#: struct tcp_info's head (linux/tcp.h): eight u8 (state first) then rto, ato, snd_mss, rcv_mss and unacked.
_TCP_INFO_HEAD = struct.Struct("8B5I")
_TCP_INFO_SIZE = 104
_TCP_LISTEN = 10
