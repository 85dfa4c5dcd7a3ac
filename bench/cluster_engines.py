"""Candidates for the cluster's shared order and log (issue 17), measured on the same work.

    .venv/bin/python bench/cluster_engines.py                  # about 35 s
    .venv/bin/python bench/cluster_engines.py --engines postgresql,nats --batches 1,10,100 --duration 5

No gateway node: each engine alone, driven the way cluster nodes would drive it. For each engine and
each turn size B in ``--batches``:

- ``--writers`` processes (3: three nodes) append turns of B events, as fast as the engine answers,
  ``--in-flight`` turns at a time each (1). Each event has a unique id and ~200 bytes of JSON; with
  probability ``--dup-rate`` (1 %) an event re-sends an id already sent, half the time one of this
  writer's, half the time another writer's (the same id posted to two nodes). A re-sent id must be
  answered as a duplicate with its first seq and not be appended again.
- ``--readers`` processes (3) each follow the whole stream in order, from before the first append.

When the writers stop, the readers run until they have every appended event. Then the run is checked,
and a row whose check fails says so (a figure of a run that lost or reordered events is not a
figure): every reader saw every appended event exactly once, seqs strictly increasing and contiguous
from 1, the same sequence in every reader; every id has one seq, the seq its writer was answered, and
every send beyond the first of an id was answered as a duplicate.

The engines (loopback, this machine's services):

- **postgresql** (``--pg-url``; a schema of its own, dropped afterwards): one round trip per turn, a
  plpgsql function that takes the counter row's lock (``SELECT ... FOR UPDATE``, held to the commit,
  so commit order is seq order and seqs are contiguous), looks the turn's ids up (a duplicate is
  answered with its earlier seq), numbers the new ones, inserts them into the log (seq primary key)
  and the ids table, moves the counter and calls ``pg_notify(channel, last seq)``;
  ``synchronous_commit`` on (each turn waits for its WAL flush, under the lock). Readers LISTEN and,
  when a notification names a seq past their cursor, read ``seq > cursor ORDER BY seq LIMIT 1000``
  until they reach it.
- **postgresql-async**: the same with ``synchronous_commit`` off (a crash of the server may lose the
  last few hundred ms of acknowledged turns): closer to the durability JetStream's default gives (below).
- **nats** (``--nats-url``; a stream of its own, deleted afterwards): JetStream, file storage, one
  replica, duplicate window ``--dup-window`` (120 s). A turn is B publishes with ``Nats-Msg-Id``
  sent together, then their B acks awaited (one round trip, B messages each way); the seq is the
  stream sequence in the ack. A duplicate within the window is acked with ``duplicate: true`` and the
  first message's sequence (nats-server's ``processJetStreamMsg``: ``checkMsgId`` answers ``dde.seq``).
  Readers are ordered push consumers (the server pushes; no request per event). Needs nats-py:
  ``.venv/bin/pip install -e '.[bench]'``.

Columns: *appended/s* is the events appended (not counting duplicates) over the writers' time;
*turn p50/p99* is one append call as its writer saw it; *delivery p50/p99* runs from the append call
(the stamp in the payload, CLOCK_MONOTONIC) to a reader having the event, over every event and reader;
*round trips per turn* are the writers' waits on the engine; *reader queries per 1k events* the
readers' requests (PostgreSQL's SELECTs; 0 where the engine pushes). *CPU %* (of one core, from
the first append until every reader had everything): the writer and reader processes, the engine
server (PostgreSQL: the benchmark's backends and the server's background processes; NATS: the
nats-server process) and *other* (the rest of the machine: if it is not near 0 the row is noisy).
*CPU µs per event* divides the same CPU time by the events appended. Under the table, each row's
check, and for PostgreSQL the server's WAL syncs during the row (``pg_stat_wal``): about one per turn
with ``synchronous_commit`` on, a few with it off.

Redis Streams is not measured: this machine's Redis runs with
``appendonly no``, so an acknowledged append is not on disk at all, not comparable with the others,
and its configuration is not this benchmark's to change.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, process_title  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, table  # noqa: E402
from bench._lib.stats import BUCKETS_PER_SECOND, histogram_percentile, merge_histogram  # noqa: E402

PG_URL = os.environ.get("GATEWAY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("GATEWAY_TEST_NATS_URL", "nats://127.0.0.1:4222")
ENGINES = ("postgresql", "postgresql-async", "nats")
#: Schema, channel and stream names start with this and the benchmark's pid (leftovers of a killed
#: run are dropped by the next one when that pid is gone).
PREFIX = "bench_cluster_"
#: Rows a PostgreSQL reader reads per query.
PAGE = 1000
#: A turn that takes longer than this is an error (the engine is gone or stuck).
TURN_TIMEOUT = 15.0
#: After the writers stop, a reader that got nothing new for this long gives up (the check then fails).
DRAIN_QUIET = 10.0
#: The CPU groups shown, in order.
CPU_KEYS = ("writers", "readers", "server", "other")


# ---------------------------------------------------------------------------
# The work: turns of events, the same for every engine
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Work:
    engine: str
    name: str  # the schema / channel / stream of this row
    writers: int
    readers: int
    batch: int
    in_flight: int
    duration: float
    dup_rate: float
    payload_bytes: int
    pg_url: str
    nats_url: str
    dup_window: float


class Turns:
    """A writer's turns: new ids ``w<writer>-<n>``, and now and then an id sent before."""

    def __init__(self, work: Work, writer: int) -> None:
        self._work = work
        self._writer = writer
        self._rng = random.Random(1000 + writer)
        self._next = 0
        self._own: list[str] = []
        self.resent = 0
        # ~200 bytes of JSON once the id and the stamp are in.
        self._filler = "x" * max(0, work.payload_bytes - 120)

    def _resend(self, taken: set[str]) -> str | None:
        """An id sent before: one of ours, or another writer's that it has most likely sent by now."""
        others = [w for w in range(self._work.writers) if w != self._writer]
        for _ in range(5):
            if others and (not self._own or self._rng.random() < 0.5):
                if self._next == 0:
                    return None
                candidate = f"w{self._rng.choice(others)}-{self._rng.randrange(self._next)}"
            elif self._own:
                candidate = self._rng.choice(self._own)
            else:
                return None
            if candidate not in taken:
                return candidate
        return None

    def next_turn(self, stamp: float) -> list[tuple[str, str]]:
        """(id, payload) of the next turn's events, stamped with the append call's time."""
        items: list[tuple[str, str]] = []
        taken: set[str] = set()
        for _ in range(self._work.batch):
            event_id = self._resend(taken) if self._rng.random() < self._work.dup_rate else None
            if event_id is None:
                event_id = f"w{self._writer}-{self._next}"
                self._next += 1
                self._own.append(event_id)
            else:
                self.resent += 1
            taken.add(event_id)
            payload = json.dumps({"id": event_id, "event": "demo.message", "t": stamp, "node": self._writer,
                                  "data": {"room": "bench", "author": "bench", "text": self._filler}},
                                 separators=(",", ":"))
            items.append((event_id, payload))
        return items


# ---------------------------------------------------------------------------
# The engines: an appender (writers) and a follower (readers) each
# ---------------------------------------------------------------------------

class Appender(Protocol):
    async def append(self, items: list[tuple[str, str]]) -> list[tuple[int, bool]]:
        """Append one turn; (seq, duplicate) of each item, in order. One or more waits on the engine."""
        ...

    async def close(self) -> None: ...


Deliver = Callable[[list[tuple[int, str]], float], None]
"""A follower hands over (seq, payload) of events it got, in order, and the moment it got them."""


class Follower(Protocol):
    queries: int

    async def run(self, deliver: Deliver, stopped: Callable[[], bool]) -> None:
        """Follow the stream from its start, handing every event over, until ``stopped()``."""
        ...

    async def close(self) -> None: ...


def _pg_schema_sql(name: str) -> list[str]:
    return [
        f'CREATE SCHEMA "{name}"',
        f'CREATE TABLE "{name}".counter (id INTEGER PRIMARY KEY, last_seq BIGINT NOT NULL)',
        f'INSERT INTO "{name}".counter VALUES (1, 0)',
        f'CREATE TABLE "{name}".log (seq BIGINT PRIMARY KEY, id TEXT NOT NULL, payload TEXT NOT NULL)',
        f'CREATE TABLE "{name}".ids (id TEXT PRIMARY KEY, seq BIGINT NOT NULL)',
        # One round trip per turn. The counter row's lock is taken first and held to the commit: turns
        # commit one after the other in seq order, and the id look-up (a later statement, so a later
        # snapshot) sees every turn committed before. Data-modifying CTEs do not see each other's rows:
        # the final SELECT's ids join only finds ids of earlier turns (the duplicates).
        f"""CREATE FUNCTION "{name}".append(p_ids TEXT[], p_payloads TEXT[], p_channel TEXT)
        RETURNS TABLE (k INTEGER, seq BIGINT, duplicate BOOLEAN) LANGUAGE plpgsql
        SET search_path TO "{name}" AS $f$
        DECLARE
            base BIGINT;
            top BIGINT;
        BEGIN
            SELECT c.last_seq INTO base FROM counter c WHERE c.id = 1 FOR UPDATE;
            RETURN QUERY
            WITH r AS (
                SELECT u.id, u.payload, u.k::INTEGER AS k
                FROM unnest(p_ids, p_payloads) WITH ORDINALITY AS u (id, payload, k)),
            fresh AS (
                SELECT r.*, base + row_number() OVER (ORDER BY r.k) AS s FROM r
                WHERE NOT EXISTS (SELECT 1 FROM ids i WHERE i.id = r.id)),
            logged AS (INSERT INTO log (seq, id, payload) SELECT f.s, f.id, f.payload FROM fresh f),
            remembered AS (INSERT INTO ids (id, seq) SELECT f.id, f.s FROM fresh f)
            SELECT r.k, COALESCE(f.s, i.seq), f.s IS NULL
            FROM r LEFT JOIN fresh f ON f.k = r.k LEFT JOIN ids i ON i.id = r.id AND f.s IS NULL
            ORDER BY r.k;
            SELECT COALESCE(max(l.seq), base) INTO top FROM log l WHERE l.seq > base;
            IF top > base THEN
                UPDATE counter SET last_seq = top WHERE id = 1;
                PERFORM pg_notify(p_channel, top::TEXT);
            END IF;
        END
        $f$""",
    ]


def _pg_setup(work: Work) -> None:
    import psycopg

    with psycopg.connect(work.pg_url, autocommit=True) as conn:
        _pg_drop_leftovers(conn)
        with conn.transaction():
            for statement in _pg_schema_sql(work.name):
                conn.execute(statement.encode())


def _pg_drop_leftovers(conn: Any) -> None:
    """Schemas of an earlier run of this benchmark that was killed before it could drop them."""
    for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                  (PREFIX.replace("_", r"\_") + "%",)).fetchall():
        if not _owner_alive(schema):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def _pg_teardown(work: Work) -> None:
    import psycopg

    with psycopg.connect(work.pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{work.name}" CASCADE'.encode())


def pg_wal_syncs(work: Work) -> int | None:
    """The server's WAL syncs so far (pg_stat_wal, all databases: others' work counts too); None for NATS."""
    if work.engine == "nats":
        return None
    import psycopg

    with psycopg.connect(work.pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        return int(row[0]) if row else None


def _owner_alive(name: str) -> bool:
    """Whether the benchmark process whose pid is in ``name`` (after PREFIX) is still running."""
    try:
        pid = int(name.lower().removeprefix(PREFIX).split("_", 1)[0])
    except ValueError:
        return True  # not one of ours after all: leave it
    return pid == os.getpid() or Path(f"/proc/{pid}").exists()


async def _pg_connect(work: Work) -> Any:
    from psycopg import AsyncConnection

    conn = await AsyncConnection.connect(work.pg_url, autocommit=True, application_name="bench cluster_engines")
    commit = "on" if work.engine == "postgresql" else "off"
    await conn.execute(f'SET search_path TO "{work.name}"; SET synchronous_commit TO {commit}'.encode())
    return conn


async def _pg_backend_pid(conn: Any) -> int:
    cur = await conn.execute("SELECT pg_backend_pid()")
    row = await cur.fetchone()
    return int(row[0])


class PgAppender:
    def __init__(self, work: Work, conn: Any) -> None:
        self._conn = conn
        self._channel = work.name

    @classmethod
    async def open(cls, work: Work) -> tuple[PgAppender, list[int]]:
        conn = await _pg_connect(work)
        return cls(work, conn), [await _pg_backend_pid(conn)]

    async def append(self, items: list[tuple[str, str]]) -> list[tuple[int, bool]]:
        cur = await self._conn.execute("SELECT k, seq, duplicate FROM append(%s, %s, %s)",
                                       ([i for i, _ in items], [p for _, p in items], self._channel))
        rows = await cur.fetchall()
        return [(int(seq), bool(dup)) for _, seq, dup in rows]

    async def close(self) -> None:
        await self._conn.close()


class PgFollower:
    def __init__(self, work: Work, conn: Any) -> None:
        self._conn = conn
        self._work = work
        self.queries = 0

    @classmethod
    async def open(cls, work: Work) -> tuple[PgFollower, list[int]]:
        conn = await _pg_connect(work)
        await conn.execute(f'LISTEN "{work.name}"'.encode())
        return cls(work, conn), [await _pg_backend_pid(conn)]

    async def run(self, deliver: Deliver, stopped: Callable[[], bool]) -> None:
        cursor = 0
        notified = 0
        while not stopped():
            # Notifications that came during the last SELECT wait in psycopg's backlog and come first.
            async for notify in self._conn.notifies(timeout=0.05, stop_after=1):
                notified = max(notified, int(notify.payload))
            while cursor < notified:
                cur = await self._conn.execute(
                    "SELECT seq, payload FROM log WHERE seq > %s ORDER BY seq LIMIT %s", (cursor, PAGE))
                rows = await cur.fetchall()
                self.queries += 1
                now = time.monotonic()
                if not rows:
                    raise RuntimeError(f"notified of seq {notified} but nothing is visible after {cursor}")
                deliver([(int(seq), payload) for seq, payload in rows], now)
                cursor = int(rows[-1][0])

    async def close(self) -> None:
        await self._conn.close()


def _nats(module: str = "nats") -> Any:
    """A module of nats-py (the ``bench`` extra), imported when a NATS row runs. Not a static import:
    ``make test`` type-checks bench/ with the ``test`` extra only, where nats-py is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SystemExit("the nats engine needs nats-py: .venv/bin/pip install -e '.[bench]'") from None


def _subject(work: Work) -> str:
    return work.name.replace("_", ".")


async def _nats_setup_async(work: Work) -> None:
    nats, api = _nats(), _nats("nats.js.api")
    NotFoundError = _nats("nats.js.errors").NotFoundError

    nc = await nats.connect(work.nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        jsm = nc.jetstream()
        for info in await jsm.streams_info():
            stream = info.config.name or ""
            if stream.lower().startswith(PREFIX) and not _owner_alive(stream):
                try:
                    await jsm.delete_stream(stream)
                except NotFoundError:
                    pass
        await jsm.add_stream(api.StreamConfig(name=work.name.upper(), subjects=[_subject(work)],
                                              storage=api.StorageType.FILE, num_replicas=1,
                                              duplicate_window=work.dup_window))
    finally:
        await nc.close()


async def _nats_teardown_async(work: Work) -> None:
    nats = _nats()
    NotFoundError = _nats("nats.js.errors").NotFoundError

    nc = await nats.connect(work.nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        try:
            await nc.jetstream().delete_stream(work.name.upper())
        except NotFoundError:
            pass
    finally:
        await nc.close()


class NatsAppender:
    def __init__(self, work: Work, nc: Any) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._subject = _subject(work)

    @classmethod
    async def open(cls, work: Work) -> tuple[NatsAppender, list[int]]:
        return cls(work, await _nats().connect(work.nats_url, connect_timeout=5, allow_reconnect=False)), []

    async def append(self, items: list[tuple[str, str]]) -> list[tuple[int, bool]]:
        # The B publishes leave together (the client's flusher writes its buffer once this coroutine
        # yields); then the B acks are awaited: one round trip.
        futures = [await self._js.publish_async(self._subject, payload.encode(), headers={"Nats-Msg-Id": event_id})
                   for event_id, payload in items]
        acks = await asyncio.gather(*futures)
        return [(int(ack.seq), bool(ack.duplicate)) for ack in acks]

    async def close(self) -> None:
        await self._nc.close()


class NatsFollower:
    def __init__(self, work: Work, nc: Any) -> None:
        self._nc = nc
        self._work = work
        self.queries = 0

    @classmethod
    async def open(cls, work: Work) -> tuple[NatsFollower, list[int]]:
        return cls(work, await _nats().connect(work.nats_url, connect_timeout=5, allow_reconnect=False)), []

    async def run(self, deliver: Deliver, stopped: Callable[[], bool]) -> None:
        async def on_msg(msg: Any) -> None:
            deliver([(int(msg.metadata.sequence.stream), msg.data.decode())], time.monotonic())

        # Ordered push consumer: the client checks the consumer sequence, asks the server again from the
        # last stream sequence on a gap, and answers the server's flow control; no ack per message.
        sub = await self._nc.jetstream().subscribe(_subject(self._work), ordered_consumer=True, cb=on_msg)
        try:
            while not stopped():
                await asyncio.sleep(0.05)
        finally:
            await sub.unsubscribe()

    async def close(self) -> None:
        await self._nc.close()


async def open_appender(work: Work) -> tuple[Appender, list[int]]:
    if work.engine == "nats":
        return await NatsAppender.open(work)
    return await PgAppender.open(work)


async def open_follower(work: Work) -> tuple[Follower, list[int]]:
    if work.engine == "nats":
        return await NatsFollower.open(work)
    return await PgFollower.open(work)


def setup_engine(work: Work) -> None:
    if work.engine == "nats":
        asyncio.run(_nats_setup_async(work))
    else:
        _pg_setup(work)


def teardown_engine(work: Work) -> None:
    if work.engine == "nats":
        asyncio.run(_nats_teardown_async(work))
    else:
        _pg_teardown(work)


def server_pids(work: Work, backends: Sequence[int]) -> list[int]:
    """The engine server's processes that do this row's work."""
    import psutil

    pids: list[int] = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        name = proc.info["name"] or ""
        if work.engine == "nats":
            if name == "nats-server":
                pids.append(proc.pid)
        elif name == "postgres":
            title = process_title(proc.pid) or ""
            # The postmaster and its background processes (WAL writer, checkpointer, ...); client
            # backends only if they are ours (another engineer's tests may use the same server).
            background = not title.startswith("postgres: ") or not any(
                marker in title for marker in ("(", "[local]"))
            if background or proc.pid in backends:
                pids.append(proc.pid)
    return pids


# ---------------------------------------------------------------------------
# The processes
# ---------------------------------------------------------------------------

def _child_start(conn: Connection, parent_ends: Sequence[Connection]) -> None:
    # Ctrl-C reaches the whole process group: the parent cleans up and ends the children.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for end in parent_ends:
        end.close()  # so that the parent's death is an EOF here


def writer_process(conn: Connection, parent_ends: Sequence[Connection], work: Work, index: int) -> None:
    _child_start(conn, parent_ends)
    try:
        asyncio.run(_writer(conn, work, index))
    except (EOFError, BrokenPipeError):
        pass


async def _writer(conn: Connection, work: Work, index: int) -> None:
    appenders: list[Appender] = []
    try:
        backends: list[int] = []
        for _ in range(work.in_flight):
            appender, pids = await open_appender(work)
            appenders.append(appender)
            backends += pids
        conn.send(("ready", backends))
        if conn.recv() != "go":
            return
        turns = Turns(work, index)
        answers: list[tuple[str, int, bool]] = []
        turn_hist: dict[int, int] = {}
        round_trips = 0
        started = time.monotonic()
        deadline = started + work.duration

        async def loop(appender: Appender) -> None:
            nonlocal round_trips
            while time.monotonic() < deadline:
                stamp = time.monotonic()
                items = turns.next_turn(stamp)
                results = await asyncio.wait_for(appender.append(items), TURN_TIMEOUT)
                took = time.monotonic() - stamp
                round_trips += 1
                bucket = int(took * BUCKETS_PER_SECOND)
                turn_hist[bucket] = turn_hist.get(bucket, 0) + 1
                answers.extend((event_id, seq, dup) for (event_id, _), (seq, dup) in zip(items, results, strict=True))

        error = ""
        try:
            await asyncio.gather(*(loop(a) for a in appenders))
        except Exception as exc:  # reported in the row, not a traceback in a child
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ended = time.monotonic()
        conn.send(("done", {"answers": answers, "turns": sum(turn_hist.values()), "round_trips": round_trips,
                            "turn_hist": turn_hist, "resent": turns.resent, "started": started, "ended": ended,
                            "error": error}))
        conn.recv()  # "exit", or EOF if the parent is gone
    finally:
        for appender in appenders:
            try:
                await appender.close()
            except Exception:
                pass


def reader_process(conn: Connection, parent_ends: Sequence[Connection], work: Work, index: int) -> None:
    _child_start(conn, parent_ends)
    try:
        asyncio.run(_reader(conn, work))
    except (EOFError, BrokenPipeError):
        pass


async def _reader(conn: Connection, work: Work) -> None:
    follower, backends = await open_follower(work)
    try:
        conn.send(("ready", backends))
        if conn.recv() != "go":
            return
        events: list[tuple[int, str]] = []
        hist: dict[int, int] = {}
        expected: int | None = None
        last_progress = time.monotonic()
        error = ""

        def deliver(batch: list[tuple[int, str]], now: float) -> None:
            nonlocal last_progress
            for seq, payload in batch:
                event = json.loads(payload)
                events.append((seq, event["id"]))
                bucket = int((now - event["t"]) * BUCKETS_PER_SECOND)
                hist[bucket] = hist.get(bucket, 0) + 1
            last_progress = now

        def stopped() -> bool:
            nonlocal expected
            if expected is None and conn.poll():
                message = conn.recv()
                expected = int(message[1])
            if expected is None:
                return False
            return len(events) >= expected or time.monotonic() - last_progress > DRAIN_QUIET

        try:
            await follower.run(deliver, stopped)
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        conn.send(("done", {"events": events, "hist": hist, "queries": follower.queries, "error": error}))
        conn.recv()
    finally:
        try:
            await follower.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# One row: start the processes, run, check
# ---------------------------------------------------------------------------

@dataclass
class Row:
    work: Work
    appended: int = 0
    sends: int = 0
    resent: int = 0
    duplicates: int = 0
    turns: int = 0
    round_trips: int = 0
    seconds: float = 0.0
    turn_hist: dict[int, int] = field(default_factory=dict)
    delivery_hist: dict[int, int] = field(default_factory=dict)
    reader_queries: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    window: float = 0.0  # seconds the CPU was measured over
    wal_syncs: int | None = None  # PostgreSQL's WAL syncs during the row (the whole server's)
    problems: list[str] = field(default_factory=list)
    check: str = ""


class Children:
    """The row's writer and reader processes; all of them ended on any way out."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("fork")
        self.procs: list[tuple[str, BaseProcess, Connection]] = []

    def start(self, role: str, target: Callable[..., None], work: Work, index: int) -> None:
        parent_end, child_end = self._ctx.Pipe()
        ends = [c for _, _, c in self.procs] + [parent_end]
        proc = self._ctx.Process(target=target, args=(child_end, ends, work, index), daemon=True,
                                 name=f"bench-{role}-{index}")
        proc.start()
        child_end.close()
        self.procs.append((role, proc, parent_end))

    def of(self, role: str) -> list[tuple[BaseProcess, Connection]]:
        return [(p, c) for r, p, c in self.procs if r == role]

    def pids(self, role: str) -> list[int]:
        return [p.pid for p, _ in self.of(role) if p.pid is not None]

    def close(self) -> None:
        for _, _, conn in self.procs:
            try:
                conn.send("exit")
            except OSError:
                pass
        # After a finished row they all wait for "exit"; after an interruption they may be mid-turn.
        deadline = time.monotonic() + 1
        for _, proc, _ in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for _, proc, _ in self.procs:
            if proc.is_alive():
                proc.terminate()
        for _, proc, conn in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
            conn.close()


def receive(proc: BaseProcess, conn: Connection, expect: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"{proc.name} said nothing within {timeout:.0f}s")
    try:
        status, detail = conn.recv()
    except EOFError:
        raise RuntimeError(f"{proc.name} ended (exit code {proc.exitcode})") from None
    if status != expect:
        raise RuntimeError(f"{proc.name}: {status} {detail}")
    return detail


def run_row(work: Work) -> Row:
    row = Row(work)
    setup_engine(work)
    children = Children()
    try:
        for i in range(work.readers):
            children.start("reader", reader_process, work, i)
        for i in range(work.writers):
            children.start("writer", writer_process, work, i)
        backends: list[int] = []
        for _, proc, conn in children.procs:
            backends += receive(proc, conn, "ready", 30)
        meter = CpuMeter({"writers": children.pids("writer"), "readers": children.pids("reader"),
                          "server": server_pids(work, backends)})
        syncs_before = pg_wal_syncs(work)
        meter.start()
        window_start = time.monotonic()
        for _, _, conn in children.procs:
            conn.send("go")
        writes = [receive(p, c, "done", work.duration + TURN_TIMEOUT + 10) for p, c in children.of("writer")]
        row.problems += [f"writer: {w['error']}" for w in writes if w["error"]]
        appended, row.problems = check_answers(writes, row.problems)
        row.appended = len(appended)
        for _, conn in children.of("reader"):
            conn.send(("expect", row.appended))
        reads = [receive(p, c, "done", DRAIN_QUIET + 60) for p, c in children.of("reader")]
        row.cpu = meter.stop()
        row.window = time.monotonic() - window_start
        row.cpu.pop("publisher", None)  # this process: it only waits
        syncs_after = pg_wal_syncs(work)
        if syncs_before is not None and syncs_after is not None:
            row.wal_syncs = syncs_after - syncs_before
        row.problems += [f"reader: {r['error']}" for r in reads if r["error"]]
        row.sends = sum(len(w["answers"]) for w in writes)
        row.resent = sum(w["resent"] for w in writes)
        row.duplicates = sum(1 for w in writes for _, _, dup in w["answers"] if dup)
        row.turns = sum(w["turns"] for w in writes)
        row.round_trips = sum(w["round_trips"] for w in writes)
        row.seconds = max(w["ended"] for w in writes) - min(w["started"] for w in writes)
        for w in writes:
            merge_histogram(row.turn_hist, w["turn_hist"])
        for r in reads:
            merge_histogram(row.delivery_hist, r["hist"])
        row.reader_queries = sum(r["queries"] for r in reads)
        row.check = check_reads(row, appended, [r["events"] for r in reads])
    finally:
        children.close()
        teardown_engine(work)
    return row


def check_answers(writes: list[dict[str, Any]], problems: list[str]) -> tuple[dict[str, int], list[str]]:
    """id -> seq of every appended event, from the writers' answers; what is wrong with them."""
    appended: dict[str, int] = {}
    answered: dict[str, int] = {}
    for w in writes:
        for event_id, seq, dup in w["answers"]:
            if answered.setdefault(event_id, seq) != seq:
                problems.append(f"{event_id} answered seq {answered[event_id]} and {seq}")
            if not dup:
                if event_id in appended:
                    problems.append(f"{event_id} appended twice ({appended[event_id]}, {seq})")
                appended[event_id] = seq
    missing = set(answered) - set(appended)
    if missing:
        problems.append(f"{len(missing)} ids answered only as duplicates, never appended")
    return appended, problems


def check_reads(row: Row, appended: dict[str, int], reads: list[list[tuple[int, str]]]) -> str:
    """The check's verdict on the readers' sequences (and the problems found so far): 'ok: ...' or why not."""
    problems = row.problems
    expected = sorted((seq, event_id) for event_id, seq in appended.items())
    n = len(expected)
    if [seq for seq, _ in expected] != list(range(1, n + 1)):
        problems.append("the appended seqs are not 1..N contiguous")
    for i, events in enumerate(reads):
        seqs = [seq for seq, _ in events]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            problems.append(f"reader {i}: seqs not strictly increasing")
        if events != expected:
            got, want = set(events), set(expected)
            problems.append(f"reader {i}: {len(events)} events, {len(want - got)} missing, {len(got - want)} unexpected,"
                            f" {len(events) - len(got)} repeated")
    if any(events != reads[0] for events in reads[1:]):
        problems.append("the readers' sequences differ")
    if row.duplicates != row.sends - n:
        problems.append(f"{row.sends} sends of {n} ids but {row.duplicates} answered as duplicates")
    if problems:
        return "FAILED: " + "; ".join(problems[:5])
    return (f"ok: {len(reads)} readers x {n} events, seq 1..{n} contiguous and identical; "
            f"{row.duplicates} re-sends answered duplicate with the first seq")


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

HEAD = ("| engine | B | writers x in flight | appended/s | turns/s | turn p50 / p99 ms | delivery p50 / p99 ms"
        " | round trips per turn | reader queries per 1k events | CPU % writers / readers / server / other"
        " | CPU µs per event writers / readers / server | check |")


def _ms(hist: dict[int, int], q: float) -> str:
    return f"{histogram_percentile(hist, q):.1f}"


def table_row(row: Row) -> list[str]:
    w = row.work
    rate = row.appended / row.seconds if row.seconds else 0.0
    # CPU seconds over the meter's window, per appended event.
    per_event = {k: row.cpu.get(k, 0.0) / 100 * row.window / row.appended * 1e6 if row.appended else 0.0
                 for k in CPU_KEYS[:3]}
    queries = 1000 * row.reader_queries / (row.appended * w.readers) if row.appended else 0.0
    return [w.engine, str(w.batch), f"{w.writers} x {w.in_flight}", fmt_rate(rate),
            fmt_rate(row.turns / row.seconds if row.seconds else 0.0),
            f"{_ms(row.turn_hist, 0.5)} / {_ms(row.turn_hist, 0.99)}",
            f"{_ms(row.delivery_hist, 0.5)} / {_ms(row.delivery_hist, 0.99)}",
            f"{row.round_trips / row.turns:.2f}" if row.turns else "-", f"{queries:.1f}",
            cpu_cell(row.cpu, CPU_KEYS), " / ".join(f"{per_event[k]:.0f}" for k in CPU_KEYS[:3]),
            "ok" if row.check.startswith("ok") else "FAILED"]


NOTES = """\
Notes on what the engines give for the gateway's use (not measured, read from their documentation and source):
- Durability: PostgreSQL with synchronous_commit on answers after its WAL is flushed to disk (postgresql
  row); postgresql-async and JetStream answer before: JetStream's file store fsyncs every sync_interval
  (default 2 min) and relies on replicas (R3) for durability, so with one server an OS crash may lose
  acknowledged events. JetStream with sync_interval: always would pay an fsync per write.
- Idempotency: JetStream's Nats-Msg-Id dedup holds for the stream's duplicate window only (120 s here;
  the default is 2 min, and a longer window costs memory for every id in it); the PostgreSQL ids table
  holds as long as the gateway keeps ids (its idempotency window), and gives the first answer's seq.
  JetStream also acks a duplicate with the first seq, but only within the window.
- Atomicity of a turn: the PostgreSQL turn commits all or nothing with contiguous seqs; a JetStream turn
  is B separate publishes (interleaved with other writers' seqs; a writer dying mid-turn leaves part of it).
  Atomic batch publish needs nats-server 2.12 or later; this machine has {nats_version}.
- Everything else the cluster shares (tickets used once, client tokens, persistent subscriptions and
  their acks, query topics, node cursors) is not a stream: with JetStream it would need its KV store or
  a second store (the PostgreSQL the store already is), and two stores means no one transaction over
  an event's log entry and its id; PostgreSQL keeps them in the same transaction as the log.
- Reading: JetStream pushes to each reader (no query per event); PostgreSQL readers are woken by NOTIFY
  and query the log (see reader queries per 1k events); NOTIFY payloads are not durable, so a reader
  that reconnects reads from its cursor, as it does here.
"""


def nats_version(url: str) -> str:
    async def ask() -> str:
        nc = await _nats().connect(url, connect_timeout=5, allow_reconnect=False)
        try:
            return str(nc._server_info.get("version", "?"))
        finally:
            await nc.close()

    try:
        return "nats-server " + asyncio.run(ask())
    except Exception as exc:
        return f"an unknown version ({type(exc).__name__})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--batches", default="1,10", help="events per turn B, comma-separated (default 1,10)")
    parser.add_argument("--writers", type=int, default=3, help="writer processes (nodes), default 3")
    parser.add_argument("--readers", type=int, default=3, help="reader processes, default 3")
    parser.add_argument("--in-flight", type=int, default=1, help="turns in flight per writer, default 1")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of appending per row, default 5")
    parser.add_argument("--dup-rate", type=float, default=0.01, help="share of events that re-send an id (0.01)")
    parser.add_argument("--payload-bytes", type=int, default=200, help="JSON bytes per event, about (200)")
    parser.add_argument("--dup-window", type=float, default=120.0, help="JetStream duplicate window, s (120)")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL (default {PG_URL})")
    parser.add_argument("--nats-url", default=NATS_URL, help=f"NATS with JetStream (default {NATS_URL})")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    args.engine_list = engines
    args.batch_list = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.writers < 1 or args.readers < 1 or args.in_flight < 1 or any(b < 1 for b in args.batch_list):
        parser.error("writers, readers, in-flight and batches must be at least 1")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a plain kill cleans up as Ctrl-C does
    started = time.monotonic()
    print(header("cluster engines",
                 f"{args.writers} writers x {args.in_flight} turns in flight, {args.readers} readers, "
                 f"{args.duration:g}s per row, {args.dup_rate:.0%} re-sent ids, ~{args.payload_bytes} B payloads"),
          flush=True)
    rows: list[Row] = []
    try:
        for engine in args.engine_list:
            for batch in args.batch_list:
                work = Work(engine=engine, name=f"{PREFIX}{os.getpid()}_{engine.replace('-', '_')}_{batch}",
                            writers=args.writers, readers=args.readers, batch=batch, in_flight=args.in_flight,
                            duration=args.duration, dup_rate=args.dup_rate, payload_bytes=args.payload_bytes,
                            pg_url=args.pg_url, nats_url=args.nats_url, dup_window=args.dup_window)
                row = run_row(work)
                rows.append(row)
                cells = table_row(row)
                print(f"# {engine} B={batch}: {cells[3]} appended/s, delivery p50/p99 {cells[6]} ms, "
                      f"CPU {cells[9]}; {row.check}", flush=True)
    except KeyboardInterrupt:
        print("# interrupted: the processes, schemas and streams of the run are gone", file=sys.stderr)
        return 130
    print()
    print(table(HEAD, (table_row(r) for r in rows)))
    print()
    for r in rows:
        syncs = "" if r.wal_syncs is None else f"; the server's WAL syncs during the row: {r.wal_syncs} for {r.turns} turns"
        print(f"# check {r.work.engine} B={r.work.batch}: {r.check} ({r.resent} ids re-sent, {r.sends} sends{syncs})")
    print()
    print(NOTES.format(nats_version=nats_version(args.nats_url) if "nats" in args.engine_list else "?"), end="")
    print(f"\n# total {time.monotonic() - started:.0f}s", flush=True)
    return 0 if all(r.check.startswith("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
