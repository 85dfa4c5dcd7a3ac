"""A raw WAMP-over-WebSocket peer for tests that send what no well-behaved client library would.

    received, closed = exchange(url, [[1, "gateway", {...}]], reply=lambda msg: [...])

sends the frames (JSON, or raw text/bytes as given), answers each message it
receives with ``reply(message)``, and returns every message received and
whether the router closed the connection, once it closed or ``timeout`` passed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

from tests.support.wamp import host_port

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE = 1, 2, 3, 4, 5, 6
ROLES: dict[str, dict[str, Any]] = {"caller": {}, "subscriber": {}}


def hello(realm: str = "gateway", **details: Any) -> list[Any]:
    return [HELLO, realm, {"roles": ROLES, **details}]


def exchange(url: str, frames: list[Any], reply: Callable[[Any], list[Any]] | None = None,
             timeout: float = 5.0) -> tuple[list[Any], bool]:
    return asyncio.run(_exchange(url, frames, reply or (lambda _: []), timeout))


async def _exchange(url: str, frames: list[Any], reply: Callable[[Any], list[Any]],
                    timeout: float) -> tuple[list[Any], bool]:
    received: list[Any] = []
    closed = asyncio.Event()

    def encode(frame: Any) -> bytes:
        if isinstance(frame, bytes):
            return frame
        return (frame if isinstance(frame, str) else json.dumps(frame)).encode()

    class Peer(WebSocketClientProtocol):
        def onOpen(self) -> None:
            for frame in frames:
                self.sendMessage(encode(frame))

        def onMessage(self, payload: bytes, is_binary: bool) -> None:
            message = json.loads(payload)
            received.append(message)
            for frame in reply(message):
                self.sendMessage(encode(frame))

        def onClose(self, was_clean: bool, code: int | None, reason: str | None) -> None:
            closed.set()

    factory = WebSocketClientFactory(url, protocols=["wamp.2.json"])
    factory.protocol = Peer
    host, port = host_port(url)
    transport, _ = await asyncio.get_running_loop().create_connection(factory, host, port)
    try:
        await asyncio.wait_for(closed.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        transport.close()
    return received, closed.is_set()
