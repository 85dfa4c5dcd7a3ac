"""A TCP proxy on 127.0.0.1 that can be cut: an outage of whatever is behind it, for real sockets.

    with CuttableProxy(("127.0.0.1", 5432)) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        proxy.cut()      # every connection through it reset, new ones closed at once
        proxy.restore()  # new connections go through again

On its own asyncio loop in a daemon thread (``LoopServer``, which test_store_latency.py's SlowProxy shares).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class LoopServer:
    """A TCP server on 127.0.0.1 (a free port: ``port``) on its own asyncio loop in a daemon thread, for tests;
    subclasses handle each connection (``_connection``) and drop what they hold when closed (``_close_all``)."""

    def __init__(self, name: str) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            await self._close_all()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _close_all(self) -> None:
        """On the loop, at close: end every connection still open."""


class CuttableProxy(LoopServer):
    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__("cuttable-proxy")
        self.target = target
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()

    async def _close_all(self) -> None:
        self._reset_all()

    def cut(self) -> None:
        """Reset every connection through the proxy; new ones are closed as soon as they come."""
        async def cut() -> None:
            self._cut = True
            self._reset_all()

        asyncio.run_coroutine_threadsafe(cut(), self._loop).result(10)

    def restore(self) -> None:
        async def restore() -> None:
            self._cut = False

        asyncio.run_coroutine_threadsafe(restore(), self._loop).result(10)

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            if hasattr(transport, "abort"):
                transport.abort()  # a reset, not a polite close: as a vanished server looks
        self._writers.clear()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        try:
            await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
