"""The publishers: an open-loop driver, keep-alive HTTP to the bridge, and a backend session on the router.

They run in the benchmark's own process, one asyncio loop per row
(``asyncio.run(publish_…(…))``), and return a ``Load``: what was accepted
over which interval, and what went wrong.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import auth
from autobahn.wamp.serializer import MsgPackSerializer
from autobahn.wamp.types import Challenge, CloseDetails, ComponentConfig, PublishOptions, SessionDetails

from bench._lib.demo import EVENT, REALM, TOPIC, event_data
from bench._lib.websocket import HOST
from components import uris
from components.envelope import make_envelope, new_event_id
from tests.support.harness import API_KEY, BACKEND_SECRET

__all__ = ["BackendPublisher", "HttpConnection", "Load", "Sender", "backend_session", "drive", "drive_http",
           "post_many", "publish_bare", "publish_gateway"]

#: Sends one event (or a batch) stamped with the given monotonic time; raises when it was not
#: accepted. Returns None for one event accepted, or how many events of a batch were accepted.
Sender = Callable[[float], Awaitable[int | None]]


@dataclass
class Load:
    accepted: int
    start: float
    end: float
    late: int  # paced sends that left more than 5 ms behind schedule
    errors: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Events accepted per second of publishing."""
        return self.accepted / max(1e-9, self.end - self.start)

    def add_errors(self, errors: dict[str, int]) -> None:
        for key, count in errors.items():
            self.errors[key] = self.errors.get(key, 0) + count


async def drive(senders: list[Sender], duration: float, rate: float | None, sends: int | None = None) -> Load:
    """One worker per sender, each with one request in flight: at most len(senders) in flight.

    Unpaced, workers send back to back (saturation). Paced, they take the next
    slot of a fixed schedule; the event is stamped when it actually leaves,
    and sends that leave late are counted, because a late send hides queueing
    from the latency figures. With ``sends``, stop after that many sends
    (or at ``duration``, whichever comes first).
    """
    start = time.monotonic()
    deadline = start + duration
    load = Load(0, start, start, 0, {})
    slot = 0
    started = 0

    async def worker(send: Sender) -> None:
        nonlocal slot, started
        while True:
            if sends is not None:
                if started >= sends:
                    return
                started += 1
            if rate is not None:
                due = start + slot / rate
                slot += 1
                if due >= deadline:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.005:
                    load.late += 1  # every sender busy (or the publisher short of CPU)
            stamp = time.monotonic()
            if stamp >= deadline:
                return
            try:
                accepted = await send(stamp)
            except Exception as exc:  # counted and shown, the run goes on
                key = f"{type(exc).__name__}: {exc}"[:120]
                load.errors[key] = load.errors.get(key, 0) + 1
            else:
                load.accepted += 1 if accepted is None else accepted

    await asyncio.gather(*(worker(s) for s in senders))
    load.end = time.monotonic()
    return load


class HttpConnection:
    """A keep-alive HTTP/1.1 connection for POSTs to the bridge (what a web-app's pooled client does)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def post(self, body: bytes, path: bytes = b"/events") -> tuple[int, bytes]:
        try:
            return await self._post(body, path)
        except BaseException:
            self.close()  # half a request or answer on the wire: the next one starts afresh
            raise

    async def _post(self, body: bytes, path: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self._port)
            self.reconnects += 1
        assert self._reader is not None
        self._writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path, HOST.encode(), self._port, API_KEY.encode(), len(body), body)
        )
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise ConnectionError("the bridge closed the connection") from None
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        answer = await self._reader.readexactly(length)
        if not keep_alive:
            self.close()
        return status, answer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def drive_http(port: int, concurrency: int, duration: float, rate: float | None,
                     send: Callable[[HttpConnection, float], Awaitable[int | None]], sends: int | None = None) -> Load:
    """``drive`` with one keep-alive connection to the bridge per sender; ``send(connection, stamp)``."""
    conns = [HttpConnection(port) for _ in range(concurrency)]
    try:
        load = await drive([partial(send, c) for c in conns], duration, rate, sends)
    finally:
        for c in conns:
            c.close()
    # A bridge that closes keep-alive connections would make this a
    # connection-setup benchmark; say so rather than hide it.
    reconnects = sum(c.reconnects for c in conns) - concurrency
    if reconnects > 0:
        load.notes.append(f"{reconnects} HTTP connections re-opened: the bridge closed keep-alive connections")
    return load


async def publish_gateway(port: int, room: str, concurrency: int, duration: float, rate: float | None,
                          sends: int | None = None, per_request: int = 1) -> Load:
    """POST /events of demo.message to ``room`` for ``duration`` seconds (or ``sends`` requests); with
    ``per_request`` above one, ``POST /events/batch`` of that many events (``rate``: requests a second)."""

    async def send(conn: HttpConnection, stamp: float) -> None:
        body = json.dumps({"event": EVENT, "data": event_data(room, stamp)}).encode()
        status, answer = await conn.post(body)
        if status != 202:
            raise RuntimeError(f"HTTP {status} {answer[:80]!r}")

    async def send_batch(conn: HttpConnection, stamp: float) -> int:
        one = {"event": EVENT, "data": event_data(room, stamp)}
        status, answer = await conn.post(json.dumps({"events": [one] * per_request}).encode(), b"/events/batch")
        if status != 200 or b'"error"' in answer:
            raise RuntimeError(f"HTTP {status} {answer[:80]!r}")
        return per_request

    if per_request > 1:
        return await drive_http(port, concurrency, duration, rate, send_batch, sends)
    return await drive_http(port, concurrency, duration, rate, send, sends)


async def post_many(port: int, path: bytes, body: bytes, per_request: int, concurrency: int,
                    duration: float) -> tuple[float, dict[str, int]]:
    """The same ``body`` POSTed back to back for ``duration`` seconds: (events accepted per second, errors).

    ``per_request``: events in the body; a batch (``path`` ending in ``batch``) must answer 200, one event 202.
    """
    expected = 200 if path.endswith(b"batch") else 202

    async def send(conn: HttpConnection, stamp: float) -> None:
        status, answer = await conn.post(body, path)
        if status != expected:
            raise RuntimeError(f"HTTP {status} {answer[:100]!r}")

    load = await drive_http(port, concurrency, duration, None, send)
    return load.accepted * per_request / (load.end - load.start), load.errors


class BackendPublisher(ApplicationSession):
    """Joins like components.backend.BackendSession: WAMP-CRA over the unix socket, role backend."""

    def __init__(self) -> None:
        super().__init__(ComponentConfig(REALM))
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()

    def onConnect(self) -> None:
        self.join(REALM, authmethods=["wampcra"], authid=uris.DISPATCHER_AUTHID)

    def onChallenge(self, challenge: Challenge) -> str:
        signature: bytes = auth.compute_wcs(BACKEND_SECRET, challenge.extra["challenge"])
        return signature.decode("ascii")

    def onJoin(self, details: SessionDetails) -> None:
        self.joined.set_result(None)

    def onLeave(self, details: CloseDetails) -> None:
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(f"could not join: {details.reason} {details.message}"))
        self.disconnect()

    def onDisconnect(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


@asynccontextmanager
async def backend_session(socket_path: Path) -> AsyncIterator[BackendPublisher]:
    """A joined backend session on the node's unix socket; it leaves on exit."""
    loop = asyncio.get_running_loop()
    session = BackendPublisher()
    factory = WampRawSocketClientFactory(lambda: session, serializer=MsgPackSerializer())
    await loop.create_unix_connection(factory, str(socket_path))
    try:
        await asyncio.wait_for(session.joined, 10)
        yield session
    finally:
        if session.is_attached():
            session.leave()
        else:
            session.disconnect()
        try:
            await asyncio.wait_for(session.gone, 5)
        except asyncio.TimeoutError:
            pass


#: seq (1, 2, …) and send time -> (topic, data) of the next bare publish.
Route = Callable[[int, float], tuple[str, dict[str, Any]]]


async def publish_bare(socket_path: Path, concurrency: int, duration: float, rate: float | None,
                       sends: int | None = None, route: Route | None = None, room: str = "") -> Load:
    """The gateway's envelopes straight to the router, from a backend session (the baseline).

    Each publish goes to TOPIC with ``event_data(room)``, or where ``route`` says.
    """
    options = PublishOptions(acknowledge=True)
    seq = 0

    def to_room(seq: int, stamp: float) -> tuple[str, dict[str, Any]]:
        return TOPIC, event_data(room, stamp)

    where = route or to_room
    async with backend_session(socket_path) as session:

        async def send(stamp: float) -> None:
            nonlocal seq
            seq += 1
            topic, data = where(seq, stamp)
            # The same envelope the dispatcher builds, so the router ships the same bytes.
            envelope = make_envelope(EVENT, new_event_id(), seq, datetime.now(timezone.utc), data)
            await session.publish(topic, envelope, options=options)

        # autobahn leaves acknowledged publishes pending when the connection drops: without this,
        # a node that dies mid-row would hang the run instead of failing it.
        driving = asyncio.ensure_future(drive([send] * concurrency, duration, rate, sends))
        either: set[asyncio.Future[Any]] = {driving, session.gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not driving.done():
            driving.cancel()
            raise ConnectionError("the backend session was disconnected during the row")
        return driving.result()
