"""The client side of RFC 6455, just enough for WAMP, under the benchmarks' light clients.

Autobahn costs about 200 µs of CPU per message received, several times what
the router spends per delivery: with autobahn clients a benchmark would
measure its clients. This handles what a router sends a WAMP client: the
101 handshake, text and binary frames (fragmented too), pings (answered, or
the router's auto-ping drops the session) and close frames.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time

__all__ = ["HOST", "WebSocketClient", "client_frame"]

HOST = "127.0.0.1"

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 requires clients to mask)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return header + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class WebSocketClient(asyncio.Protocol):
    """One WebSocket connection to ``HOST:port``; subclasses speak WAMP over it.

    Subclasses implement ``on_open`` (the handshake succeeded), ``on_message``
    (a whole message, with the time its bytes arrived), ``on_close_frame`` and
    ``fail`` (the connection cannot go on: say why).
    """

    def __init__(self, port: int, path: str, subprotocol: str) -> None:
        self._port = port
        self._path = path
        self._subprotocol = subprotocol
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: bytearray | None = None
        self._transport: asyncio.Transport | None = None

    # -- hooks -------------------------------------------------------------

    def on_open(self) -> None:
        raise NotImplementedError

    def on_message(self, payload: bytearray, now: float) -> None:
        raise NotImplementedError

    def on_close_frame(self, payload: bytearray) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        raise NotImplementedError

    # -- sending -------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes) -> None:
        if self._transport is not None:
            self._transport.write(client_frame(opcode, payload))

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n"
            % (self._path.encode(), HOST.encode(), self._port, self._key, self._subprotocol.encode())
        )

    def data_received(self, data: bytes) -> None:
        # One receive time for the whole chunk: every message in it reached us at this moment.
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._check_handshake(bytes(buf[:end])):
                return
            del buf[:end + 4]
            self._upgraded = True
            self.on_open()
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b1 & 0x80:
                self.fail("the router sent a masked frame")
                return
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            payload = buf[pos + head:pos + head + length]
            pos += head + length
            self._on_frame(b0, payload, now)
        del buf[:pos]

    # -- frames --------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        if b" 101 " not in lines[0] + b" ":
            self.fail(f"handshake refused: {lines[0].decode(errors='replace')}")
            return False
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
        if headers.get(b"sec-websocket-accept") != accept:
            self.fail("bad Sec-WebSocket-Accept")
            return False
        return True

    def _on_frame(self, b0: int, payload: bytearray, now: float) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == _TEXT or opcode == _BINARY:
            if fin:
                self.on_message(payload, now)
            else:
                self._fragments = bytearray(payload)
        elif opcode == _CONTINUATION and self._fragments is not None:
            self._fragments += payload
            if fin:
                whole, self._fragments = self._fragments, None
                self.on_message(whole, now)
        elif opcode == _PING:
            self.send_frame(_PONG, bytes(payload))
        elif opcode == _CLOSE:
            self.on_close_frame(payload)
