"""Light WAMP subscribers, many sessions per process, counting what is delivered.

A ``SubscriberPool`` forks a few processes, each holding its share of the
sessions on one asyncio loop, and asks them through pipes how many events of
a phase arrived and how late. A phase is one value of a field of ``data``
(``room`` unless told): each benchmark row publishes to a phase of its own.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench._lib.demo import REALM, TOPIC
from bench._lib.stats import BUCKETS_PER_SECOND, histogram_percentile, merge_histogram
from bench._lib.websocket import HOST, WebSocketClient
from components import uris

__all__ = ["Deliveries", "SubscriberPool", "SubscriberSpec", "wait_delivered"]

#: After the publisher stops, wait this long without a new delivery before
#: deciding that what is missing will not come.
DRAIN_QUIET = 2.0
#: ... and never longer than this in all (keeps the run bounded).
DRAIN_LIMIT = 15.0

# WAMP message codes the subscriber handles.
_HELLO, _WELCOME, _ABORT, _GOODBYE, _ERROR = 1, 2, 3, 6, 8
_SUBSCRIBE, _SUBSCRIBED, _EVENT = 32, 33, 36
_CALL, _RESULT = 48, 50

Loads = Callable[[bytes | bytearray], Any]
Dumps = Callable[[Any], bytes]


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
    #: Also keep each delivered event's id (``SubscriberPool.ids``): whether every accepted id arrived.
    collect_ids: bool = False
    #: With queries: ``gateway.subscribe(query, batch=True)``, and the batched topic it grants.
    batch: bool = False


class _Tally:
    """Deliveries of one phase (one value of ``data[phase_field]``) in one subscriber process."""

    __slots__ = ("count", "events", "last", "hist", "ids")

    def __init__(self) -> None:
        self.count = 0
        #: WAMP events (``count`` is envelopes: a batched topic's events carry one or more)
        self.events = 0
        self.last = 0.0
        self.hist: dict[int, int] = {}
        self.ids: set[str] = set()


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _codec(serializer: str) -> tuple[Loads, Dumps, bool]:
    """(loads, dumps, binary frames) for a WAMP serializer name."""
    if serializer == "json":
        return json.loads, _json_dumps, False
    if serializer == "msgpack":
        import msgpack

        def unpack(b: bytes | bytearray) -> Any:
            return msgpack.unpackb(b, raw=False)

        def pack(obj: Any) -> bytes:
            packed: bytes = msgpack.packb(obj)
            return packed

        return unpack, pack, True
    if serializer == "cbor":
        import cbor2
        return cbor2.loads, cbor2.dumps, True
    raise ValueError(f"unknown serializer {serializer!r}")


class _WampSubscriber(WebSocketClient):
    """One anonymous WAMP session over WebSocket, subscribed to one topic; only counts events.

    The topic is TOPIC, or with ``query`` the topic ``gateway.subscribe(query)``
    grants (one CALL before the SUBSCRIBE; with ``spec.batch``, its batched topic).
    Handles exactly what the router sends such a session: WELCOME, RESULT,
    SUBSCRIBED, EVENT, ABORT/GOODBYE/ERROR. Every positional argument of an
    EVENT is an envelope (a batched topic's events carry one or more): each is
    counted as a delivery, with its own latency.
    """

    def __init__(self, spec: SubscriberSpec, tallies: dict[str, _Tally], on_lost: Callable[[str], None],
                 query: str | None = None) -> None:
        super().__init__(spec.port, "/ws", f"wamp.2.{spec.serializer}")
        self._tallies = tallies
        self._on_lost = on_lost
        self._phase_field = spec.phase_field
        self._collect_ids = spec.collect_ids
        self._batch = spec.batch
        self.query = query
        #: The topic subscribed to (for a query: known once gateway.subscribe answered).
        self.topic: str | None = None if query is not None else TOPIC
        self._loads, self._dumps, binary = _codec(spec.serializer)
        self._opcode = 2 if binary else 1
        self._closing = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self.fail(f"connection lost: {exc or 'closed by the router'}")

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _send(self, msg: list[Any]) -> None:
        self.send_frame(self._opcode, self._dumps(msg))

    def on_open(self) -> None:
        self._send([_HELLO, REALM, {"roles": {"subscriber": {}}}])

    def on_close_frame(self, payload: bytearray) -> None:
        self.send_frame(8, bytes(payload[:2]))
        self.fail(f"closed by the router: {bytes(payload[2:]).decode(errors='replace')}")

    def on_message(self, payload: bytearray, now: float) -> None:
        msg = self._loads(payload)
        code = msg[0]
        if code == _EVENT:
            # The hot path: every delivered event of every session comes here.
            tally = None
            for envelope in msg[4]:
                data = envelope["data"]
                phase = data[self._phase_field]
                tally = self._tallies.get(phase)
                if tally is None:
                    tally = self._tallies[phase] = _Tally()
                tally.count += 1
                if self._collect_ids:
                    tally.ids.add(envelope["id"])
                tally.last = now
                bucket = int((now - float(data["text"])) * BUCKETS_PER_SECOND)
                hist = tally.hist
                hist[bucket] = hist.get(bucket, 0) + 1
            if tally is not None:
                tally.events += 1
        elif code == _WELCOME:
            if self.query is None:
                self._send([_SUBSCRIBE, 1, {}, TOPIC])
            elif self._batch:
                self._send([_CALL, 1, {}, uris.SUBSCRIBE, [self.query], {"batch": True}])
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
            self.fail(f"WAMP {msg!r}")

    def fail(self, reason: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(reason))
        elif not self._closing:
            self._on_lost(reason)
        self.close()


def _subscriber_process(conn: Connection, spec: SubscriberSpec, parent_ends: list[Connection]) -> None:
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
            conn.send((tally.count, tally.last, tally.hist, list(lost), tally.events))
        elif cmd[0] == "ids":
            tally = tallies.get(cmd[1])
            conn.send(sorted(tally.ids) if tally else [])
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
    """What the sessions of a pool received in one phase."""

    count: int = 0  # envelopes
    #: WAMP events that carried them (fewer than ``count`` on a batched topic under load)
    events: int = 0
    last: float = 0.0  # monotonic time of the last delivery
    hist: dict[int, int] = field(default_factory=dict)  # latency buckets (stats.BUCKETS_PER_SECOND)
    lost: list[str] = field(default_factory=list)  # why sessions were lost, one entry each

    def percentile(self, q: float) -> float:
        """Latency in ms at quantile ``q`` (0..1), to the histogram's resolution."""
        return histogram_percentile(self.hist, q)

    def per_second_since(self, start: float) -> float:
        """Deliveries per second from ``start`` (the first send) to the last delivery.

        Over the whole delivery window: a router that falls behind pays for its backlog here.
        """
        return self.count / max(1e-9, self.last - start) if self.count else 0.0


class SubscriberPool:
    """N subscribed sessions spread over a few processes, driven through pipes."""

    def __init__(self, port: int, sessions: int, processes: int, serializer: str, queries: Sequence[str] = (),
                 phase_field: str = "room", collect_ids: bool = False, batch: bool = False) -> None:
        """``queries``: none (every session takes TOPIC) or one per session, for ``gateway.subscribe``.
        ``phase_field``: the field of ``data`` that ``delivered()`` and ``deliveries()`` select by.
        ``collect_ids``: keep the ids delivered, for ``ids()``. ``batch``: the queries' batched topics
        (every envelope counts as a delivery)."""
        if batch and not queries:
            raise ValueError("batch needs queries (gateway.subscribe grants the batched topic)")
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
        self._collect_ids = collect_ids
        self._batch = batch
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
                                  self._phase_field, self._collect_ids, self._batch)
            first += count
            parent_ends = [c for _, c in self._procs] + [parent_end]
            proc = self._ctx.Process(target=_subscriber_process, args=(child_end, spec, parent_ends), daemon=True,
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
        """Events (envelopes) delivered so far in this phase, over all sessions."""
        return sum(self._ask("count", phase))

    def deliveries(self, phase: str) -> Deliveries:
        total = Deliveries()
        for count, last, hist, lost, events in self._ask("stats", phase):
            if count:
                total.last = max(total.last, last)
                total.count += count
                total.events += events
                merge_histogram(total.hist, hist)
            total.lost.extend(lost)
        return total

    def ids(self, phase: str) -> set[str]:
        """The ids of the events of a phase that reached at least one session (pool made with ``collect_ids``)."""
        seen: set[str] = set()
        for answer in self._ask("ids", phase):
            seen.update(answer)
        return seen

    def topics(self) -> dict[str, str]:
        """query -> the topic ``gateway.subscribe`` granted for it (sessions started with queries)."""
        granted: dict[str, str] = {}
        for answer in self._ask("topics"):
            granted.update(answer)
        return granted

    def stop(self) -> None:
        """Stop every subscriber process (and wait for it); safe to call again."""
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
