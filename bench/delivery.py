"""Delivery benchmark: HTTP bridge -> WAMP subscribers, against bare Crossbar.

Run by hand, never from the test suite::

    .venv/bin/python bench/delivery.py [--duration 8] [--subscribers 1,10,100]

One gateway node (``tests.support.harness.GatewayNode``) is started. For each N, N
anonymous WAMP sessions subscribe to ``gateway.event.demo.message``, spread
over a few subscriber processes. Against the same subscribers it then runs:

* gateway: ``POST /events`` over keep-alive HTTP connections, a fixed number
  of requests in flight; each event goes bridge -> dispatcher -> router;
* bare crossbar: one WAMP session on the backend unix socket (WAMP-CRA, role
  backend) publishing an envelope of the same shape with ``acknowledge=True``,
  the same number of publishes in flight;
* optionally the same two paths paced at a fixed rate, where latency is not
  dominated by queueing.

Subscribers count what is *delivered* and measure latency from the send time
the publisher wrote into ``data.text`` (CLOCK_MONOTONIC is system-wide on
Linux, so it compares across processes) to the moment the bytes arrived.

The subscribers are a minimal WAMP-over-WebSocket client rather than autobahn:
measured here, an autobahn asyncio session spent about 210 us of CPU per
event received, this client about 45 us at low rates and 15 us when busy,
and the router about 25 us per delivery. With autobahn subscribers a 2-core
machine would measure them instead of the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import platform
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import auth
from autobahn.wamp.serializer import MsgPackSerializer
from autobahn.wamp.types import Challenge, CloseDetails, ComponentConfig, PublishOptions, SessionDetails

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make tests.support.harness and components importable.
    sys.path.insert(0, str(REPO))

from components import uris  # noqa: E402
from components.envelope import make_envelope, new_event_id  # noqa: E402
from tests.support.harness import API_KEY, BACKEND_SECRET, GatewayNode, remove_workdir, temp_workdir  # noqa: E402

EVENT = "demo.message"
TOPIC = uris.event_topic(EVENT)
REALM = "gateway"
HOST = "127.0.0.1"

#: Latency histogram resolution: 0.1 ms buckets keep p50/p99 exact enough and
#: the per-event cost to one dict update, whatever the event count.
BUCKETS_PER_SECOND = 10_000

#: After the publisher stops, wait this long without a new delivery before
#: deciding that what is missing will not come.
DRAIN_QUIET = 2.0
#: ... and never longer than this in all (keeps the run bounded).
DRAIN_LIMIT = 15.0

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# WAMP message codes the subscriber handles.
_HELLO, _WELCOME, _ABORT, _GOODBYE, _ERROR = 1, 2, 3, 6, 8
_SUBSCRIBE, _SUBSCRIBED, _EVENT = 32, 33, 36
_CALL, _RESULT = 48, 50


# ---------------------------------------------------------------------------
# Subscriber processes
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SubscriberSpec:
    port: int
    sessions: int
    serializer: str
    #: Empty: every session subscribes to TOPIC. Otherwise one query per session:
    #: the session calls ``gateway.subscribe(query)`` and subscribes to the topic granted.
    queries: tuple[str, ...] = ()
    #: The field of ``data`` that names the phase an event belongs to.
    phase_field: str = "room"


class _Tally:
    """Deliveries of one phase (one value of ``data[phase_field]``) in one subscriber process."""

    __slots__ = ("count", "last", "hist")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.hist: dict[int, int] = {}


def _codec(serializer: str) -> tuple[Callable[[bytes | bytearray], Any], Callable[[Any], bytes], bool]:
    """(loads, dumps, binary frames) for a WAMP serializer name."""
    if serializer == "json":
        return json.loads, lambda obj: json.dumps(obj).encode(), False
    if serializer == "msgpack":
        import msgpack
        return (lambda b: msgpack.unpackb(b, raw=False)), msgpack.packb, True
    if serializer == "cbor":
        import cbor2
        return cbor2.loads, cbor2.dumps, True
    raise ValueError(f"unknown serializer {serializer!r}")


def _client_frame(opcode: int, payload: bytes) -> bytes:
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


class _WampSubscriber(asyncio.Protocol):
    """One anonymous WAMP session over WebSocket, subscribed to one topic; only counts events.

    The topic is TOPIC, or with ``query`` the topic ``gateway.subscribe(query)``
    grants (one CALL before the SUBSCRIBE). Handles exactly what the router
    sends such a session: the handshake, WELCOME, RESULT, SUBSCRIBED, EVENT,
    pings (answered, or the router's auto-ping would drop us), close,
    ABORT/GOODBYE/ERROR.
    """

    def __init__(self, spec: SubscriberSpec, tallies: dict[str, _Tally], on_lost: Callable[[str], None],
                 query: str | None = None) -> None:
        self._spec = spec
        self._tallies = tallies
        self._on_lost = on_lost
        self._phase_field = spec.phase_field
        self.query = query
        #: The topic subscribed to (for a query: known once gateway.subscribe answered).
        self.topic: str | None = None if query is not None else TOPIC
        self._loads, self._dumps, binary = _codec(spec.serializer)
        self._opcode = 2 if binary else 1
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: bytearray | None = None
        self._transport: asyncio.Transport | None = None
        self._closing = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- transport events ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(
            b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.%s\r\n\r\n"
            % (HOST.encode(), self._spec.port, self._key, self._spec.serializer.encode())
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self._fail(f"connection lost: {exc or 'closed by the router'}")

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

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
            self._send([_HELLO, REALM, {"roles": {"subscriber": {}}}])
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b1 & 0x80:
                self._fail("the router sent a masked frame")
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

    # -- WebSocket ---------------------------------------------------------

    def _check_handshake(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        if b" 101 " not in lines[0] + b" ":
            self._fail(f"handshake refused: {lines[0].decode(errors='replace')}")
            return False
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
        if headers.get(b"sec-websocket-accept") != accept:
            self._fail("bad Sec-WebSocket-Accept")
            return False
        return True

    def _on_frame(self, b0: int, payload: bytearray, now: float) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode in (1, 2):
            if fin:
                self._on_message(payload, now)
            else:
                self._fragments = bytearray(payload)
        elif opcode == 0 and self._fragments is not None:
            self._fragments += payload
            if fin:
                whole, self._fragments = self._fragments, None
                self._on_message(whole, now)
        elif opcode == 9 and self._transport is not None:  # ping
            self._transport.write(_client_frame(10, bytes(payload)))
        elif opcode == 8:  # close
            if self._transport is not None:
                self._transport.write(_client_frame(8, bytes(payload[:2])))
            self._fail(f"closed by the router: {bytes(payload[2:]).decode(errors='replace')}")

    def _send(self, msg: list[Any]) -> None:
        if self._transport is not None:
            self._transport.write(_client_frame(self._opcode, self._dumps(msg)))

    # -- WAMP --------------------------------------------------------------

    def _on_message(self, payload: bytearray, now: float) -> None:
        msg = self._loads(payload)
        code = msg[0]
        if code == _EVENT:
            # The hot path: every delivered event of every session comes here.
            data = msg[4][0]["data"]
            phase = data[self._phase_field]
            tally = self._tallies.get(phase)
            if tally is None:
                tally = self._tallies[phase] = _Tally()
            tally.count += 1
            tally.last = now
            bucket = int((now - float(data["text"])) * BUCKETS_PER_SECOND)
            hist = tally.hist
            hist[bucket] = hist.get(bucket, 0) + 1
        elif code == _WELCOME:
            if self.query is None:
                self._send([_SUBSCRIBE, 1, {}, TOPIC])
            else:
                self._send([_CALL, 1, {}, uris.SUBSCRIBE, [self.query]])
        elif code == _RESULT and self.topic is None:
            # [RESULT, request, details, [{"id", "topic", "query", "persistent"}]]
            self.topic = str(msg[3][0]["topic"])
            self._send([_SUBSCRIBE, 2, {}, self.topic])
        elif code == _SUBSCRIBED:
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif code in (_ABORT, _GOODBYE, _ERROR):
            self._fail(f"WAMP {msg!r}")

    def _fail(self, reason: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(reason))
        elif not self._closing:
            self._on_lost(reason)
        self.close()


def subscriber_process(conn: Connection, spec: SubscriberSpec, parent_ends: list[Connection]) -> None:
    """Entry point of a subscriber process: hold ``spec.sessions`` sessions, answer the parent."""
    # fork copied the parent's ends of every pipe made so far, our own
    # included: while we hold them, a killed parent would never show as EOF.
    for end in parent_ends:
        end.close()
    # Ctrl-C reaches the whole foreground process group; the parent decides
    # when we stop (and the pipe closing stops us if the parent dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited by fork
    asyncio.run(_serve_subscribers(conn, spec))


async def _serve_subscribers(conn: Connection, spec: SubscriberSpec) -> None:
    loop = asyncio.get_running_loop()
    tallies: dict[str, _Tally] = {}
    lost: list[str] = []
    sessions: list[_WampSubscriber] = []
    # Opening a hundred WebSockets at once makes the router time some out.
    gate = asyncio.Semaphore(20)

    async def open_one(query: str | None) -> None:
        async with gate:
            _, proto = await loop.create_connection(lambda: _WampSubscriber(spec, tallies, lost.append, query),
                                                    HOST, spec.port)
            sessions.append(proto)
            await asyncio.wait_for(proto.subscribed, 30)

    queries: Sequence[str | None] = spec.queries or [None] * spec.sessions
    try:
        await asyncio.gather(*(open_one(q) for q in queries))
    except Exception as exc:  # reported to the parent, which stops the run
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        for s in sessions:
            s.close()
        return
    conn.send(("ready", len(sessions)))

    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def on_command() -> None:
        try:
            commands.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent is gone
            loop.remove_reader(conn.fileno())
            commands.put_nowait(("stop",))

    loop.add_reader(conn.fileno(), on_command)
    while True:
        cmd = await commands.get()
        if cmd[0] == "count":
            tally = tallies.get(cmd[1])
            conn.send(tally.count if tally else 0)
        elif cmd[0] == "stats":
            tally = tallies.get(cmd[1]) or _Tally()
            conn.send((tally.count, tally.last, tally.hist, list(lost)))
        elif cmd[0] == "topics":
            conn.send({s.query: s.topic for s in sessions if s.query is not None})
        else:
            break
    loop.remove_reader(conn.fileno())
    for s in sessions:
        s.close()
    await asyncio.sleep(0.1)  # let the closes reach the router


@dataclass
class Deliveries:
    count: int = 0
    last: float = 0.0
    hist: dict[int, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Latency in ms at quantile ``q`` (0..1), to the histogram's resolution."""
        total = sum(self.hist.values())
        if total == 0:
            return float("nan")
        rank = q * total
        seen = 0
        for bucket in sorted(self.hist):
            seen += self.hist[bucket]
            if seen >= rank:
                return (bucket + 1) * 1000 / BUCKETS_PER_SECOND
        raise AssertionError("unreachable")


class SubscriberPool:
    """N subscribed sessions spread over a few processes, driven through pipes."""

    def __init__(self, port: int, sessions: int, processes: int, serializer: str, queries: Sequence[str] = (),
                 phase_field: str = "room") -> None:
        """``queries``: none (every session takes TOPIC) or one per session, for ``gateway.subscribe``.
        ``phase_field``: the field of ``data`` that ``delivered()`` and ``deliveries()`` select by."""
        if queries and len(queries) != sessions:
            raise ValueError(f"{len(queries)} queries for {sessions} sessions")
        # fork, not spawn: spawn also starts a resource-tracker process that
        # outlives the run as an unreaped zombie. The parent holds no thread
        # or running event loop when it forks, so fork is safe here.
        self._ctx = multiprocessing.get_context("fork")
        self._port = port
        self._sessions = sessions
        self._nprocs = max(1, min(processes, sessions))
        self._serializer = serializer
        self._queries = tuple(queries)
        self._phase_field = phase_field
        self._procs: list[tuple[BaseProcess, Connection]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p, _ in self._procs if p.pid is not None]

    def start(self, timeout: float = 60) -> None:
        base, extra = divmod(self._sessions, self._nprocs)
        first = 0
        for i in range(self._nprocs):
            parent_end, child_end = self._ctx.Pipe()
            count = base + (1 if i < extra else 0)
            spec = SubscriberSpec(self._port, count, self._serializer, self._queries[first:first + count],
                                  self._phase_field)
            first += count
            parent_ends = [c for _, c in self._procs] + [parent_end]
            proc = self._ctx.Process(target=subscriber_process, args=(child_end, spec, parent_ends), daemon=True,
                                     name=f"bench-subscriber-{i}")
            proc.start()
            child_end.close()
            self._procs.append((proc, parent_end))
        deadline = time.monotonic() + timeout
        for started, conn in self._procs:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{started.name} did not subscribe within {timeout}s")
            status, detail = conn.recv()
            if status != "ready":
                raise RuntimeError(f"{started.name} could not subscribe: {detail}")

    def _ask(self, *cmd: Any) -> list[Any]:
        for _, conn in self._procs:
            conn.send(cmd)
        answers = []
        for proc, conn in self._procs:
            if not conn.poll(30):
                raise TimeoutError(f"{proc.name} does not answer")
            answers.append(conn.recv())
        return answers

    def delivered(self, phase: str) -> int:
        """Events delivered so far in this phase, over all sessions."""
        return sum(self._ask("count", phase))

    def deliveries(self, phase: str) -> Deliveries:
        total = Deliveries()
        for count, last, hist, lost in self._ask("stats", phase):
            if count:
                total.last = max(total.last, last)
                total.count += count
                for bucket, n in hist.items():
                    total.hist[bucket] = total.hist.get(bucket, 0) + n
            total.lost.extend(lost)
        return total

    def topics(self) -> dict[str, str]:
        """query -> the topic ``gateway.subscribe`` granted for it (sessions started with queries)."""
        granted: dict[str, str] = {}
        for answer in self._ask("topics"):
            granted.update(answer)
        return granted

    def stop(self) -> None:
        for proc, conn in self._procs:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc, conn in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            conn.close()
        self._procs = []


# ---------------------------------------------------------------------------
# Publishers (run in the main process, one asyncio loop per phase)
# ---------------------------------------------------------------------------

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


def _data(room: str, stamp: float) -> dict[str, str]:
    return {"room": room, "text": f"{stamp:.6f}", "author": "bench"}


class _HttpConnection:
    """A keep-alive HTTP/1.1 connection for POST /events (what a web-app's pooled client does)."""

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


async def publish_gateway(port: int, room: str, concurrency: int, duration: float, rate: float | None,
                          sends: int | None = None) -> Load:
    """POST /events of demo.message to ``room`` for ``duration`` seconds (or ``sends`` events)."""
    conns = [_HttpConnection(port) for _ in range(concurrency)]

    def sender(conn: _HttpConnection) -> Sender:
        async def send(stamp: float) -> None:
            body = json.dumps({"event": EVENT, "data": _data(room, stamp)}).encode()
            status, answer = await conn.post(body)
            if status != 202:
                raise RuntimeError(f"HTTP {status} {answer[:80]!r}")
        return send

    try:
        load = await drive([sender(c) for c in conns], duration, rate, sends)
    finally:
        for c in conns:
            c.close()
    # A bridge that closes keep-alive connections would make this a
    # connection-setup benchmark; say so rather than hide it.
    reconnects = sum(c.reconnects for c in conns) - concurrency
    if reconnects > 0:
        load.notes.append(f"{reconnects} HTTP connections re-opened: the bridge closed keep-alive connections")
    return load


class _BackendPublisher(ApplicationSession):
    """Joins like components.backend.BackendSession: WAMP-CRA over the unix socket, role backend."""

    def __init__(self) -> None:
        super().__init__(ComponentConfig(REALM))  # type: ignore[no-untyped-call]  # autobahn is untyped
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
async def backend_session(socket_path: Path) -> AsyncIterator[_BackendPublisher]:
    """A joined backend session on the node's unix socket; it leaves on exit."""
    loop = asyncio.get_running_loop()
    session = _BackendPublisher()
    serializer = MsgPackSerializer()  # type: ignore[no-untyped-call]
    factory = WampRawSocketClientFactory(lambda: session, serializer=serializer)  # type: ignore[no-untyped-call]
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


async def publish_bare(socket_path: Path, room: str, concurrency: int, duration: float,
                       rate: float | None, sends: int | None = None) -> Load:
    """The same envelopes straight to the router, from a backend session (the baseline)."""
    options = PublishOptions(acknowledge=True)  # type: ignore[no-untyped-call]
    seq = 0
    async with backend_session(socket_path) as session:

        async def send(stamp: float) -> None:
            nonlocal seq
            seq += 1
            # The same envelope the dispatcher builds, so the router ships the same bytes.
            envelope = make_envelope(EVENT, new_event_id(), seq, datetime.now(timezone.utc), _data(room, stamp))
            await session.publish(TOPIC, envelope, options=options)

        return await drive([send] * concurrency, duration, rate, sends)


# ---------------------------------------------------------------------------
# Node CPU accounting (from /proc: which process is the bottleneck)
# ---------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat, first line)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    # guest time is already counted in user/nice: sum only the first 8 fields.
    return (sum(ticks[:8]) - idle) / _CLK_TCK


def node_processes(pgid: int) -> dict[str, list[int]]:
    """The node's processes (its own process group): ``router`` and ``workers`` (all the others).

    Grouped by process title ("gateway router", "gateway <container>",
    "crossbar-controller") rather than by container name, so that a change in
    how components are spread over containers does not break the benchmark.
    """
    groups: dict[str, list[int]] = {"router": [], "workers": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        groups["router" if title == "gateway router" else "workers"].append(int(entry))
    return groups


class CpuMeter:
    """CPU used between start() and stop(), in % of one core, by group of processes.

    ``other`` is what the rest of the machine used meanwhile: on a shared
    2-core box another busy process changes every figure, and this column is
    how a reader tells a slow gateway from a busy neighbour.
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._before: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(_cpu_seconds(p) for p in pids) for name, pids in self._groups.items()}
        sample["publisher"] = time.process_time()
        sample["machine"] = _machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        elapsed = max(1e-9, time.monotonic() - self._t0)
        used = {k: 100 * (after[k] - self._before[k]) / elapsed for k in after}
        machine = used.pop("machine")
        used["other"] = max(0.0, machine - sum(used.values()))
        return used


def settle(node_groups: dict[str, list[int]], limit: float = 15.0) -> tuple[float, float]:
    """Wait until the node is idle; return (node, everything else) CPU % over the last second.

    The workers keep busy for a few seconds after /healthz first answers; a
    phase started then would be charged for it.
    """
    meter = CpuMeter(node_groups)
    deadline = time.monotonic() + limit
    while True:
        meter.start()
        time.sleep(1.0)
        used = meter.stop()
        node = used["router"] + used["workers"]
        if node < 10 or time.monotonic() > deadline:
            return node, used["other"]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

@dataclass
class Row:
    subscribers: int
    path: str
    mode: str
    load: Load
    got: Deliveries
    cpu: dict[str, float]
    ratio: float | None = None

    @property
    def published_per_s(self) -> float:
        return self.load.accepted / max(1e-9, self.load.end - self.load.start)

    @property
    def delivered_per_s(self) -> float:
        # Over the whole delivery window, from the first send to the last
        # delivery: a router that falls behind pays for its backlog here.
        return self.got.count / max(1e-9, self.got.last - self.load.start) if self.got.count else 0.0

    @property
    def expected(self) -> int:
        return self.load.accepted * self.subscribers


def _require_running(node: GatewayNode) -> None:
    if node.process is None or node.process.poll() is not None:
        raise RuntimeError("the node exited during the run (its log tail follows)")


def wait_delivered(pool: SubscriberPool, phase: str, expected: int) -> None:
    """Wait for what the router still has queued: until ``expected`` deliveries of the phase
    have arrived, nothing more arrives for DRAIN_QUIET, or DRAIN_LIMIT has passed."""
    last_count, last_change = -1, time.monotonic()
    limit = time.monotonic() + DRAIN_LIMIT
    while time.monotonic() < limit:
        count = pool.delivered(phase)
        now = time.monotonic()
        if count >= expected:
            break
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change > DRAIN_QUIET:
            break
        time.sleep(0.1)


def run_phase(node: GatewayNode, pool: SubscriberPool, meter: CpuMeter, n: int, path: str,
              room: str, args: argparse.Namespace, rate: float | None, duration: float | None = None) -> Row:
    _require_running(node)
    seconds = duration or args.duration
    meter.start()
    if path == "gateway":
        load = asyncio.run(publish_gateway(node.bridge_port, room, args.concurrency, seconds, rate))
    else:
        load = asyncio.run(publish_bare(node.cbdir / "backend.sock", room, args.concurrency, seconds, rate))
    wait_delivered(pool, room, load.accepted * n)
    cpu = meter.stop()
    _require_running(node)
    return Row(n, path, f"paced {rate:g}/s" if rate else "max", load, pool.deliveries(room), cpu)


def _fmt_rate(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 10_000 else f"{x:,.0f}"


def format_table(rows: list[Row]) -> str:
    head = ("| N | path | mode | published/s | delivered/s | delivered/expected | p50 ms | p99 ms "
            "| gateway/bare | CPU % router / workers / publisher / subscribers / other |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        complete = f"{r.got.count}/{r.expected}"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        c = r.cpu
        cpu = " / ".join(f"{c.get(k, 0):.0f}" for k in ("router", "workers", "publisher", "subscribers", "other"))
        cells = [str(r.subscribers), r.path, r.mode, _fmt_rate(r.published_per_s), _fmt_rate(r.delivered_per_s),
                 complete, f"{r.got.percentile(0.5):.1f}", f"{r.got.percentile(0.99):.1f}", ratio, cpu]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=8.0, help="seconds of publishing per measurement (default 8)")
    p.add_argument("--subscribers", default="1,10,100", help="comma-separated N (default 1,10,100)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="requests / publishes in flight, both paths (default 16)")
    p.add_argument("--procs", type=int, default=4, help="subscriber processes at most (default 4)")
    p.add_argument("--serializer", choices=("json", "msgpack", "cbor"), default="json",
                   help="subscribers' WAMP serializer (default json, as the browser page)")
    p.add_argument("--paced-rates", default="100,500",
                   help="comma-separated events/s of the paced rows; empty for none (default 100,500)")
    p.add_argument("--paced-subscribers", type=int, default=10,
                   help="N of the paced rows, one of --subscribers (default 10)")
    args = p.parse_args(argv)
    try:
        args.subscribers = [int(x) for x in args.subscribers.split(",") if x.strip()]
    except ValueError:
        p.error("--subscribers takes comma-separated integers, e.g. 1,10,100")
    try:
        args.paced_rates = [float(x) for x in args.paced_rates.split(",") if x.strip()]
    except ValueError:
        p.error("--paced-rates takes comma-separated numbers, e.g. 100,500")
    if args.paced_rates and min(args.paced_rates) <= 0:
        p.error("--paced-rates: each rate must be positive")
    if not args.subscribers or min(args.subscribers) < 1:
        p.error("--subscribers: each N must be at least 1")
    if args.duration <= 0 or args.concurrency < 1 or args.procs < 1:
        p.error("--duration, --concurrency and --procs must be positive")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` must clean up like Ctrl-C does, through the finally below.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    workdir = temp_workdir("gw-bench-")
    node = GatewayNode(workdir)
    pool: SubscriberPool | None = None
    rows: list[Row] = []
    keep_workdir = True  # until the run ends well or is interrupted: a failed node's log is worth reading
    print(f"# delivery benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; duration {args.duration:g}s per row, {args.concurrency} in flight, "
          f"subscribers: {args.serializer} over WebSocket, up to {args.procs} processes", flush=True)
    try:
        started = time.monotonic()
        node.start()
        print(f"# node ready in {time.monotonic() - started:.1f}s ({workdir})", flush=True)
        assert node.process is not None
        node_groups = node_processes(node.process.pid)
        node_load, other_load = settle(node_groups)
        print(f"# before the first row: node {node_load:.0f}%, rest of the machine {other_load:.0f}% of one core"
              + (" -- something else is running: expect lower, noisier figures" if other_load > 15 else ""),
              flush=True)
        phase = 0
        for n in args.subscribers:
            pool = SubscriberPool(node.router_port, n, args.procs, args.serializer)
            pool.start()
            meter = CpuMeter({**node_groups, "subscribers": pool.pids})
            # One second through the whole gateway path, not reported: new
            # sessions, connections and code paths get their first-use costs
            # out of the way before the first measured row.
            run_phase(node, pool, meter, n, "gateway", f"warm-up-{n}", args, None, duration=1.0)
            plan: list[tuple[str, float | None]] = [("gateway", None), ("bare crossbar", None)]
            if n == args.paced_subscribers:
                for rate in args.paced_rates:
                    plan += [("gateway", rate), ("bare crossbar", rate)]
            for path, rate in plan:
                phase += 1
                row = run_phase(node, pool, meter, n, path, f"bench-{phase}", args, rate)
                rows.append(row)
                print(f"#   N={n} {path} {row.mode}: {_fmt_rate(row.delivered_per_s)} delivered/s", flush=True)
                for reason in sorted(set(row.got.lost)):
                    print(f"#   lost subscriber session: {reason}", flush=True)
                for error, count in row.load.errors.items():
                    print(f"#   publisher error x{count}: {error}", flush=True)
                for note in row.load.notes:
                    print(f"#   publisher: {note}", flush=True)
                if row.load.late:
                    print(f"#   publisher: {row.load.late} paced sends left over 5 ms late: all {args.concurrency} "
                          "in flight, the pace is close to the maximum", flush=True)
            pool.stop()
            pool = None
        for r in rows:
            if r.path == "gateway":
                bare = next((b for b in rows if b.path != "gateway" and b.subscribers == r.subscribers
                             and b.mode == r.mode), None)
                if bare is not None and bare.delivered_per_s:
                    r.ratio = r.delivered_per_s / bare.delivered_per_s
        print()
        print(format_table(rows))
        print(f"\n# total {time.monotonic() - started:.0f}s")
        keep_workdir = False
        return 0
    except KeyboardInterrupt:
        print("\n# interrupted; stopping the node and the subscribers", file=sys.stderr)
        keep_workdir = False
        return 130
    except Exception:
        print(f"# node log tail ({node.log_path}):\n{node.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        # Every exit path: no subscriber process and no node worker may outlive the run.
        if pool is not None:
            pool.stop()
        node.stop()
        if keep_workdir:
            print(f"# node directory kept for inspection: {workdir}", file=sys.stderr)
        else:
            remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
