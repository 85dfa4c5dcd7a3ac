"""A blocking-friendly WAMP client for tests: autobahn (asyncio) running in a thread.

Tests are plain synchronous pytest functions; this runs an autobahn session on
its own event loop in a daemon thread and hands results back through queues.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from ssl import SSLContext
from typing import Any
from urllib.parse import urlparse

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a ws:// or wss:// URL; a URL without them is a bug in the test."""
    parsed = urlparse(url)
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"a WebSocket URL with a host and a port is needed, not {url!r}")
    return parsed.hostname, parsed.port


class _Session(ApplicationSession):
    client: WampClient

    def onConnect(self) -> None:
        c = self.client
        if c.authmethods is not None:
            self.join(self.config.realm, authmethods=c.authmethods, authid=c.authid, authextra=c.authextra)
        elif c.ticket is not None:
            self.join(self.config.realm, authmethods=["ticket"], authid=c.authid, authextra=c.authextra)
        elif c.authid is not None:
            self.join(self.config.realm, authmethods=["wampcra"], authid=c.authid)
        else:
            self.join(self.config.realm, authextra=c.authextra)

    def onChallenge(self, challenge: Any) -> Any:
        if challenge.method == "ticket":
            return self.client.ticket
        return auth.compute_wcs(self.client.secret, challenge.extra["challenge"]).decode()

    async def onJoin(self, details: Any) -> None:
        self.client._joined(self, details)

    def onLeave(self, details: Any) -> None:
        self.client._left(details)
        self.disconnect()

    def onDisconnect(self) -> None:
        self.client._disconnected()


class WampClient:
    """One WAMP session. ``events`` receives (topic, envelope) for every subscription."""

    def __init__(self, url: str, realm: str = "gateway", serializer: str = "json",
                 authid: str | None = None, secret: str | None = None, unix_path: str | None = None,
                 ticket: Any = None, authextra: dict[str, Any] | None = None,
                 authmethods: list[str] | None = None, ssl: SSLContext | None = None) -> None:
        """No credentials: anonymous. ``ticket``: WAMP-ticket (a ticket or a JWT). ``secret``: WAMP-CRA.
        A wss:// URL connects over TLS, verified with ``ssl`` (default: the system's trusted CAs)."""
        self.url = url
        self.realm = realm
        self.authid = authid
        self.secret = secret
        self.ticket = ticket
        self.authextra = authextra
        self.authmethods = authmethods
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.session: _Session | None = None
        self.details: Any = None
        self.leave_reason: str | None = None
        self.leave_message: str | None = None
        self.disconnected = threading.Event()
        self._serializer = SERIALIZERS[serializer]()
        self._unix_path = unix_path
        self._ssl = ssl
        self._connected = False
        self._loop = asyncio.new_event_loop()
        self._joined_future: Future[Any] = Future()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------

    def connect(self, timeout: float = 10) -> WampClient:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop).result(timeout)
        self._joined_future.result(timeout)
        return self

    async def _connect(self) -> None:
        def make() -> _Session:
            self._connected = True
            s = _Session(ComponentConfig(self.realm))
            s.client = self
            return s

        if self._unix_path is not None:
            from autobahn.asyncio.rawsocket import WampRawSocketClientFactory

            rs_factory = WampRawSocketClientFactory(make, serializer=self._serializer)
            await self._loop.create_unix_connection(rs_factory, self._unix_path)
            return
        host, port = host_port(self.url)
        secure = urlparse(self.url).scheme == "wss"
        if self._ssl is not None and not secure:
            raise ValueError(f"a TLS context for a URL without TLS: {self.url!r}")
        factory = WampWebSocketClientFactory(make, url=self.url, serializers=[self._serializer])
        await self._loop.create_connection(factory, host, port,
                                           ssl=(self._ssl or True) if secure else None)

    def _joined(self, session: _Session, details: Any) -> None:
        self.session = session
        self.details = details
        if not self._joined_future.done():
            self._joined_future.set_result(details)

    def _left(self, details: Any) -> None:
        self.leave_reason = details.reason
        self.leave_message = details.message
        if not self._joined_future.done():
            self._joined_future.set_exception(RuntimeError(f"session left: {details.reason} {details.message}"))

    def _disconnected(self) -> None:
        self.disconnected.set()
        if not self._joined_future.done():
            self._joined_future.set_exception(RuntimeError("disconnected before joining"))

    def close(self) -> None:
        if self._thread.is_alive():
            if self.session is not None and self.session.is_attached():
                try:
                    self._run(self._leave(), 5)
                    self.disconnected.wait(5)
                except Exception:  # closing is best effort; the loop stops below anyway
                    pass
            elif self._connected:
                # Refused (ABORT) or dropped: the router closes the connection; let it finish
                # closing so that no transport is left open.
                self.disconnected.wait(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    async def _leave(self) -> None:
        assert self.session is not None
        await self.session.leave()

    def __enter__(self) -> WampClient:
        return self if self._thread.is_alive() else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -----------------------------------------------------------

    def _run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def session_id(self) -> int:
        assert self.session is not None and self.session.session_id is not None, "not joined"
        return self.session.session_id

    @property
    def authextra_welcome(self) -> dict[str, Any]:
        """What the gateway said in WELCOME authextra (the client token and the identity)."""
        return dict(self.details.authextra or {})

    @property
    def is_attached(self) -> bool:
        return self.session is not None and bool(self.session.is_attached()) and not self.disconnected.is_set()

    def subscribe(self, topic: str, timeout: float = 10) -> Any:
        async def sub() -> Any:
            assert self.session is not None
            return await self.session.subscribe(lambda *args, **kw: self.events.put((topic, args[0] if args else kw)),
                                                topic)

        return self._run(sub(), timeout)

    def call(self, procedure: str, *args: Any, timeout: float = 10, **kwargs: Any) -> Any:
        async def do() -> Any:
            assert self.session is not None
            return await self.session.call(procedure, *args, **kwargs)

        return self._run(do(), timeout)

    def publish(self, topic: str, *args: Any, timeout: float = 10, **kwargs: Any) -> Any:
        from autobahn.wamp.types import PublishOptions

        async def do() -> Any:
            assert self.session is not None
            return await self.session.publish(topic, *args, options=PublishOptions(acknowledge=True), **kwargs)

        return self._run(do(), timeout)

    def take(self, n: int, timeout: float = 10) -> list[Any]:
        """The next n event envelopes, waiting at most ``timeout`` seconds in all."""
        import time

        deadline = time.monotonic() + timeout
        got: list[Any] = []
        while len(got) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"received {len(got)} of {n} events: {got}")
            try:
                got.append(self.events.get(timeout=remaining)[1])
            except queue.Empty:
                continue
        return got
