"""Cluster benchmark (issue 17): 1, 2 and 3 cluster nodes on this machine, beside the single node.

Run by hand, never from the test suite::

    .venv/bin/python bench/cluster.py [--duration 5] [--nodes 1,2,3] [--rate 250] [--subscribers 12]

It measures, one after the other, in one run:

* **single, SQLite**: one gateway node with its default store (the baseline of the run);
* **single, PostgreSQL**: one node on the PostgreSQL store, cluster off;
* **cluster** of each size in ``--nodes``: nodes with ``cluster: {enabled: true}`` on one PostgreSQL schema.
  The cluster grows (1, then a second node joins, then a third): nodes started once, not per size.

The PostgreSQL server is ``GATEWAY_TEST_POSTGRESQL_URL`` (``postgresql://postgres@127.0.0.1:5432/test``),
in a **database of its own** made for the run (``CREATE DATABASE``, from template0), one schema per
setup, dropped when the run ends whatever way it ends: so that its transactions
(``pg_stat_database``) and its backends (``pg_stat_activity``) are this run's alone, while other
programs use the same server.

For each setup, ``--subscribers`` (12) anonymous WAMP sessions (bench/_lib's light subscribers) take
``gateway.event.demo.message``, spread evenly over the nodes (12, 6+6, 4+4+4: every row delivers each
event to 12 sessions), ``--procs`` subscriber processes per node. After one unreported second of
warm-up, two rows: ``max``, ``--concurrency`` (16) keep-alive HTTP connections **per node**, each
with one ``POST /events`` in flight, back to back; and ``paced``, ``--rate`` events/s in all (250:
latency without saturation; 500 saturated the 3-node cluster on this 2-core machine) over the same
connections. The connections are interleaved (node 1, 2, 3, 1, 2, 3, ...), so events
are posted round-robin to every node's bridge.

Each subscriber session also checks its order: a seq not above the last it got in the row (twice, or
out of order) is counted (``_OrderedSubscriber``, swapped in for bench/_lib's session class while the
pools fork: ``ordered_sessions``). *in order* says whether any session saw one;
*missing* is the deliveries due (accepted events x sessions) that never came. A row that fails either
is not a result, and the run says so (exit status 1).

After each PostgreSQL row the script waits until ``STATS_SETTLE`` seconds after the last post before
reading ``pg_stat_database``: PostgreSQL 15 backends publish their counters at most once a second,
when idle, and a node's dispatcher is woken for a transaction every 2 s (its heartbeat). Measured
here, a row's last transactions showed 1-2 s after its last post; the nodes' idle work (heartbeats,
metrics) is 2-4 transactions/s per node, counted in the rows as it comes.

Then a **probe**, nodes stopped: ``gateway_append`` called one turn at a time from this process on a
schema of its own, turns of 1, 10 and 100 events, ``--probe`` seconds each. The counter row's lock is
held from the append's start to its commit (WAL flushed), so one turn commits at a time cluster-wide:
the probe's time per turn t(B) = alpha + beta*B (a bound from above on how long the lock is held) gives
the turns/s and events/s the shared log can take at most.

What the tables say: see bench/README.md, "cluster.py". The estimate printed last ("on paper") is
computed from lines fitted over the cluster sizes (what is paid once, what every node pays again):
our workers' and the routers' CPU per event from the rows at ``max``; PostgreSQL's transactions and
backend CPU per turn from every cluster row; the append lock from the probe.

If the script is SIGKILLed, its nodes (process groups of their own) and its ``gw_bench_*`` database
stay: ``kill -- -<pid of each crossbar-controller>``, then ``DROP DATABASE ... WITH (FORCE)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from bench._lib import subscribers as subscribers_module  # noqa: E402
from bench._lib.cpu import CpuMeter, Groups, node_processes, process_title, settle  # noqa: E402
from bench._lib.demo import EVENT, event_data  # noqa: E402
from bench._lib.nodes import Run, require_running, run_benchmark  # noqa: E402
from bench._lib.publishers import HttpConnection, Load, drive  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, print_problems, print_settled, table  # noqa: E402
from bench._lib.stats import merge_histogram  # noqa: E402
from bench._lib.subscribers import (  # noqa: E402
    Deliveries, SubscriberPool, SubscriberSpec, _Tally, _WampSubscriber, wait_delivered)
from tests.support.harness import GatewayNode  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: Seconds after a PostgreSQL row's last post before its transactions are read (see the docstring).
STATS_SETTLE = 2.5
#: A session's deliveries of phase P that were not above its last seq are counted under P + this.
DISORDER = "!disorder"
#: The probe's turn sizes.
PROBE_SIZES = (1, 10, 100)
_EVENT_MESSAGE = 36


# ---------------------------------------------------------------------------
# Subscribers that check their order
# ---------------------------------------------------------------------------

class _OrderedSubscriber(_WampSubscriber):
    """bench/_lib's subscriber session, which also checks that its seqs strictly increase in each phase.

    A delivery whose seq is not above the session's last of its phase (a second copy, or one out of
    order) is counted under the phase ``<phase>!disorder``, which ``SubscriberPool.delivered`` reads.
    It wraps the session's decoder, so each message is still parsed once.
    """

    def __init__(self, spec: SubscriberSpec, tallies: dict[str, _Tally], on_lost: Callable[[str], None],
                 query: str | None = None) -> None:
        super().__init__(spec, tallies, on_lost, query)
        last: dict[str, int] = {}
        loads = self._loads
        phase_field = spec.phase_field

        def checked(payload: bytes | bytearray) -> Any:
            msg = loads(payload)
            if msg[0] == _EVENT_MESSAGE:
                for envelope in msg[4]:
                    phase = envelope["data"][phase_field]
                    seq = envelope["seq"]
                    if seq > last.get(phase, 0):
                        last[phase] = seq
                    else:
                        key = phase + DISORDER
                        tallies.setdefault(key, _Tally()).count += 1
            return msg

        self._loads = checked


@contextmanager
def ordered_sessions() -> Iterator[None]:
    """Subscriber pools started meanwhile open ``_OrderedSubscriber`` sessions: their processes (forked
    by ``SubscriberPool.start``) look the session class up in bench._lib.subscribers after the fork."""
    saved = subscribers_module._WampSubscriber
    setattr(subscribers_module, "_WampSubscriber", _OrderedSubscriber)
    try:
        yield
    finally:
        setattr(subscribers_module, "_WampSubscriber", saved)


# ---------------------------------------------------------------------------
# PostgreSQL: a database of the run's own, its counters, its server's processes
# ---------------------------------------------------------------------------

class Postgres:
    """A database made for the run on the server of ``url`` (dropped on exit), schemas in it, what it costs."""

    def __init__(self, run: Run, url: str) -> None:
        self.db = f"gw_bench_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(url)
        self.url = urlunsplit(parts._replace(path="/" + self.db))
        #: On the URL's own database: this connection's statements are not the run's database's.
        self._monitor = psycopg.connect(url, autocommit=True)
        run.on_exit(self.drop)
        try:
            self._monitor.execute(f'CREATE DATABASE "{self.db}" TEMPLATE template0')
        except psycopg.Error as exc:
            raise RuntimeError(f"cannot make a database of the run's own on {parts.hostname}:{parts.port} "
                               f"({exc}); the benchmark needs CREATEDB there") from None

    def drop(self) -> None:
        try:
            self._monitor.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        finally:
            self._monitor.close()

    def store(self) -> dict[str, Any]:
        """gateway.yaml's store section: a fresh schema in the run's database."""
        return {"url": self.url, "schema_name": f"s_{uuid.uuid4().hex[:12]}"}

    def transactions(self) -> int:
        """Transactions committed or rolled back in the run's database so far (as its backends reported)."""
        row = self._monitor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                                    (self.db,)).fetchone()
        return int(row[0]) if row else 0

    def backends(self) -> list[int]:
        """The pids of the server processes serving connections to the run's database (the nodes')."""
        return [int(pid) for pid, in self._monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
            (self.db,)).fetchall()]

    @staticmethod
    def server() -> list[int]:
        """The server's own processes (postmaster, WAL writer, checkpointer, ...), shared with other programs'
        work; not client backends (whose titles name their client) nor passing workers."""
        pids = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "postgres":
                continue
            title = process_title(proc.pid) or ""
            if "(" in title or "[local]" in title or "autovacuum worker" in title or "parallel worker" in title:
                continue
            pids.append(proc.pid)
        return pids

    def turns(self, schema: str, room: str) -> tuple[int, int]:
        """(events, turns) of a row in a cluster's shared log: the events of one ``gateway_append`` share
        its ``logged_at``."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(f'SELECT count(*), count(DISTINCT logged_at) FROM "{schema}".event_log '
                               "WHERE data LIKE %s", (f'%"room":"{room}"%',)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


@dataclass
class Probe:
    """``gateway_append`` one turn at a time: (turn size, turns, seconds in the appends) for each size."""

    points: list[tuple[int, int, float]] = field(default_factory=list)

    def line(self) -> tuple[float, float] | None:
        """(alpha, beta) in seconds: a turn of B events takes alpha + beta * B."""
        return fit([(float(b), seconds / turns) for b, turns, seconds in self.points if turns])


def probe_appends(pg: Postgres, seconds: float) -> Probe:
    from components.store.base import NewEvent
    from components.store.postgres import PostgresStore

    store = PostgresStore(pg.url, f"probe_{uuid.uuid4().hex[:12]}")
    probe = Probe()
    stamp = "2026-01-01T00:00:00.000000Z"
    data = json.dumps(event_data("probe", 0.0), separators=(",", ":"))

    def turn(size: int) -> list[NewEvent]:
        return [NewEvent(EVENT, uuid.uuid4().hex, stamp, data, None) for _ in range(size)]

    try:
        store.append(turn(10))  # the function's plan, the tables' first pages
        for size in PROBE_SIZES:
            spent, turns, until = 0.0, 0, time.monotonic() + seconds
            while time.monotonic() < until:
                rows = turn(size)
                t0 = time.perf_counter()
                store.append(rows)
                spent += time.perf_counter() - t0
                turns += 1
            probe.points.append((size, turns, spent))
    finally:
        store.close()
    return probe


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares y = a + b x; None without two distinct x."""
    xs = {x for x, _ in points}
    if len(xs) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------

@dataclass
class Row:
    setup: str
    nodes: int
    mode: str
    load: Load
    got: Deliveries
    sessions: int
    disorder: int
    cpu: dict[str, float]
    #: Seconds the CPU was measured over (posting and draining).
    window: float
    accepted_by_node: list[int]
    transactions: int | None = None
    #: (events, turns) found in the shared log for the row (a cluster)
    log: tuple[int, int] | None = None
    #: What each node's subscribers got.
    by_node: list[Deliveries] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.load.accepted * self.sessions

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.got.count)

    @property
    def good(self) -> bool:
        return self.got.count == self.expected and self.disorder == 0 and self.load.accepted > 0

    def cpu_seconds(self, prefix: str) -> float:
        """CPU seconds of the groups whose name ends with ``prefix`` (``router``, ``workers``) or is it."""
        return sum(v for k, v in self.cpu.items() if k == prefix or k.endswith(":" + prefix)) * self.window / 100

    def per_event_us(self, prefix: str) -> float:
        return 1e6 * self.cpu_seconds(prefix) / self.load.accepted if self.load.accepted else float("nan")

    @property
    def router_per_delivery_us(self) -> float:
        return 1e6 * self.cpu_seconds("router") / self.got.count if self.got.count else float("nan")

    @property
    def turns_per_s(self) -> float | None:
        return self.log[1] / max(1e-9, self.load.end - self.load.start) if self.log else None

    @property
    def events_per_turn(self) -> float | None:
        return self.log[0] / self.log[1] if self.log and self.log[1] else None


async def post_round_robin(ports: Sequence[int], room: str, per_node: int, duration: float,
                           rate: float | None) -> tuple[Load, list[int]]:
    """POST /events of demo.message to ``room``: ``per_node`` keep-alive connections to each bridge,
    interleaved (node 1, 2, ..., 1, 2, ...), one request in flight each; (the load, accepted per node)."""
    k = len(ports)
    conns = [HttpConnection(ports[i % k]) for i in range(per_node * k)]
    accepted = [0] * k

    async def send(i: int, conn: HttpConnection, stamp: float) -> None:
        body = json.dumps({"event": EVENT, "data": event_data(room, stamp)}).encode()
        status, answer = await conn.post(body)
        if status != 202:
            raise RuntimeError(f"HTTP {status} {answer[:80]!r}")
        accepted[i % k] += 1

    try:
        load = await drive([partial(send, i, c) for i, c in enumerate(conns)], duration, rate)
    finally:
        for c in conns:
            c.close()
    reconnects = sum(c.reconnects for c in conns) - len(conns)
    if reconnects > 0:
        load.notes.append(f"{reconnects} HTTP connections re-opened: a bridge closed keep-alive connections")
    return load, accepted


@dataclass
class Setup:
    """Nodes under measurement, with what reads their cost."""

    name: str
    nodes: list[GatewayNode]
    pg: Postgres | None = None
    schema: str = ""


def node_groups(nodes: Sequence[GatewayNode]) -> Groups:
    groups: Groups = {}
    for i, node in enumerate(nodes, 1):
        assert node.process is not None
        for role, pids in node_processes(node.process.pid).items():
            groups[f"n{i}:{role}"] = pids
    return groups


def measure_setup(run: Run, args: argparse.Namespace, setup: Setup, counter: list[int]) -> list[Row]:
    nodes = setup.nodes
    groups = node_groups(nodes)
    print_settled(f"{setup.name}, {len(nodes)} node(s), before its rows", *settle(groups))
    base, extra = divmod(args.subscribers, len(nodes))
    shares = [base + (1 if i < extra else 0) for i in range(len(nodes))]
    pools: list[SubscriberPool] = []
    with ordered_sessions():
        for node, share in zip(nodes, shares):
            if share:
                pools.append(run.subscribers(node.router_port, share, args.procs, args.serializer))
    meter_groups: dict[str, list[int]] = {**groups, "subscribers": [p for pool in pools for p in pool.pids]}
    if setup.pg is not None:
        meter_groups["pg:backends"] = setup.pg.backends()
        meter_groups["pg:server"] = setup.pg.server()
    meter = CpuMeter(meter_groups)
    ports = [n.bridge_port for n in nodes]
    rows: list[Row] = []
    plan: list[float | None] = [None, None] + ([args.rate] if args.rate else [])
    for i, rate in enumerate(plan):
        counter[0] += 1
        room = f"c{counter[0]}"
        warm_up = i == 0  # one second through the whole path first, not reported
        before = setup.pg.transactions() if setup.pg is not None and not warm_up else None
        for node in nodes:
            require_running(node)
        started = time.monotonic()
        meter.start()
        seconds = 1.0 if warm_up else args.duration
        load, accepted_by = asyncio.run(post_round_robin(ports, room, args.concurrency, seconds, rate))
        for pool, share in zip(pools, [s for s in shares if s]):
            wait_delivered(pool, room, load.accepted * share)
        cpu = meter.stop()
        window = time.monotonic() - started
        for node in nodes:
            require_running(node)
        got = Deliveries()
        disorder = 0
        parts = [pool.deliveries(room) for pool in pools]
        for pool, part in zip(pools, parts):
            got.count += part.count
            got.events += part.events
            got.last = max(got.last, part.last)
            merge_histogram(got.hist, part.hist)
            got.lost.extend(part.lost)
            disorder += pool.delivered(room + DISORDER)
        if setup.pg is not None:
            # Every backend's counters published (see STATS_SETTLE), also before the next row's first read.
            time.sleep(max(0.0, load.end + STATS_SETTLE - time.monotonic()))
        if warm_up:
            continue
        row = Row(setup.name, len(nodes), f"paced {rate:g}/s" if rate else "max", load, got, args.subscribers,
                  disorder, cpu, window, accepted_by, by_node=parts)
        if setup.pg is not None and before is not None:
            row.transactions = setup.pg.transactions() - before
            if setup.schema:
                row.log = setup.pg.turns(setup.schema, room)
        rows.append(row)
        progress(row, args)
    for pool in pools:
        pool.stop()
    return rows


def progress(row: Row, args: argparse.Namespace) -> None:
    spread = "/".join(str(n) for n in row.accepted_by_node)
    turns = (f", {row.turns_per_s:,.0f} turns/s of {row.events_per_turn:.1f} events"
             if row.turns_per_s is not None and row.events_per_turn is not None else "")
    print(f"#   {row.setup}, {row.nodes} node(s), {row.mode}: {fmt_rate(row.load.per_second)} accepted/s "
          f"({spread} by node), {fmt_rate(row.got.per_second_since(row.load.start))} delivered/s, "
          f"{row.got.count}/{row.expected} delivered, {row.disorder} out of order{turns}", flush=True)
    if len(row.by_node) > 1:
        print("#     p50/p99 ms by node: " + ", ".join(f"{d.percentile(0.5):.1f}/{d.percentile(0.99):.1f}"
                                                   for d in row.by_node), flush=True)
    print_problems(row.load, row.got.lost)
    if row.load.late:
        print(f"#   publisher: {row.load.late} paced sends left over 5 ms late: every connection busy, the pace "
              "is above what the setup carries", flush=True)


# ---------------------------------------------------------------------------
# Tables and the estimate
# ---------------------------------------------------------------------------

def main_table(rows: Sequence[Row]) -> str:
    head = ("| setup | nodes | mode | accepted/s | delivered/s | delivered/expected | missing | in order | p50 ms "
            "| p99 ms | CPU % per node router / workers | PostgreSQL % backends / server "
            "| bench % publisher / subscribers | rest of machine % |")

    def per_node(r: Row) -> str:
        return ", ".join(cpu_cell(r.cpu, (f"n{i}:router", f"n{i}:workers")) for i in range(1, r.nodes + 1))

    def count(r: Row) -> str:
        return str(r.missing) + (f" (+{r.got.count - r.expected} extra)" if r.got.count > r.expected else "")

    return table(head, ([r.setup, str(r.nodes), r.mode, fmt_rate(r.load.per_second),
                         fmt_rate(r.got.per_second_since(r.load.start)), f"{r.got.count}/{r.expected}", count(r),
                         "yes" if r.disorder == 0 else f"no ({r.disorder})", f"{r.got.percentile(0.5):.1f}",
                         f"{r.got.percentile(0.99):.1f}", per_node(r),
                         cpu_cell(r.cpu, ("pg:backends", "pg:server")) if r.transactions is not None else "",
                         cpu_cell(r.cpu, ("publisher", "subscribers")), f"{r.cpu.get('other', 0):.0f}"]
                        for r in rows))


def cost_table(rows: Sequence[Row], probe: Probe) -> str:
    line = probe.line()
    head = ("| setup | nodes | mode | workers µs/event | router µs/delivery | PostgreSQL backends µs/event "
            "| PostgreSQL transactions/event | turns/s | events/turn | transactions/turn | append lock busy (est.) |")
    cells = []
    for r in rows:
        pg = r.transactions is not None and r.load.accepted > 0
        busy = ""
        if line is not None and r.turns_per_s is not None and r.events_per_turn is not None:
            busy = f"{100 * r.turns_per_s * (line[0] + line[1] * r.events_per_turn):.0f} %"
        cells.append([r.setup, str(r.nodes), r.mode, f"{r.per_event_us('workers'):.0f}",
                      f"{r.router_per_delivery_us:.1f}",
                      f"{r.per_event_us('pg:backends'):.0f}" if pg else "",
                      f"{(r.transactions or 0) / r.load.accepted:.2f}" if pg else "",
                      f"{r.turns_per_s:,.0f}" if r.turns_per_s is not None else "",
                      f"{r.events_per_turn:.1f}" if r.events_per_turn is not None else "",
                      f"{(r.transactions or 0) / r.log[1]:.1f}" if r.log and r.log[1] else "", busy])
    return table(head, cells)


def probe_table(probe: Probe) -> str:
    head = "| turn size | turns | turns/s | events/s | ms per turn |"
    return table(head, ([str(b), str(t), f"{t / s:,.0f}", fmt_rate(b * t / s), f"{1000 * s / t:.2f}"]
                        for b, t, s in probe.points if t and s))


def on_paper(rows: Sequence[Row], probe: Probe, args: argparse.Namespace) -> str:
    """The estimate: a node per core on 16-core machines, from the cluster rows and the probe.

    The gateway's CPU per event comes from the rows at max (a line over the cluster sizes); PostgreSQL's
    transactions and CPU per *turn* from every cluster row (every node reads each turn and saves its
    place, whatever the turn's size); the append lock from the probe.
    """
    at_max = [r for r in rows if r.setup == "cluster" and r.mode == "max" and r.load.accepted]
    turned = [r for r in rows if r.setup == "cluster" and r.log and r.log[1]]
    lines = ["## On paper: a node per core", ""]
    fits = {
        "our workers": fit([(r.nodes, r.per_event_us("workers")) for r in at_max]),
        "routers": fit([(r.nodes, r.per_event_us("router")) for r in at_max]),
        "PostgreSQL CPU": fit([(r.nodes, 1e6 * r.cpu_seconds("pg:backends") / r.log[1])
                               for r in turned if r.log]),
        "transactions": fit([(r.nodes, (r.transactions or 0) / r.log[1]) for r in turned if r.log]),
    }
    line = probe.line()
    if line is None or any(f is None for f in fits.values()):
        return "\n".join(lines + ["(needs cluster rows of at least two sizes, --nodes 1,2,3, and the probe)"])
    # A part fitted below 0 is noise between the rows (a busy machine): taken as 0.
    clamped = [name for name, f in fits.items() if f is not None and min(f) < 0]
    (a_w, b_w), (a_r, b_r), (a_p, b_p), (a_x, b_x) = (
        (max(0.0, f[0]), max(0.0, f[1])) for f in fits.values() if f is not None)
    alpha, beta = line
    sessions = args.subscribers
    per_delivery = a_r / sessions  # the routers' part that does not grow with the nodes: the deliveries
    fanout = args.paper_fanout
    per_node = b_w + b_r + per_delivery * fanout  # what every node pays for every event
    lines += [
        f"Least squares over the cluster sizes (K = nodes; each event to {sessions} sessions"
        + (f"; fitted below 0, taken as 0: {', '.join(clamped)}" if clamped else "") + "):",
        "",
        f"- per event, rows at max: our workers (bridges, dispatchers), all nodes, {a_w:.0f} + {b_w:.0f}·K µs "
        "(taking it in, once; then every node following the log and publishing it); routers, all nodes, "
        f"{a_r:.0f} + {b_r:.0f}·K µs, i.e. {per_delivery:.1f} µs per delivery and {b_r:.0f} µs per node "
        "for its dispatcher's publish",
        f"- per turn, every cluster row: PostgreSQL transactions {a_x:.1f} + {b_x:.1f}·K (the append, then "
        f"each node reading the log and saving its place); PostgreSQL backends' CPU {a_p:.0f} + {b_p:.0f}·K µs",
        f"- the append alone, one turn at a time (probe): {1000 * alpha:.2f} + {1000 * beta:.3f}·B ms for a "
        f"turn of B events: at most {1 / (alpha + beta):,.0f} turns/s of 1 event, "
        f"{fmt_rate(10 / (alpha + 10 * beta))} events/s in turns of 10, {fmt_rate(1 / beta)} events/s with "
        "turns however large. The counter row's lock is held to the commit (WAL flushed): one turn commits at "
        "a time, cluster-wide; each dispatcher has one turn under way, the events that come meanwhile make "
        "its next one, so under load turns grow until the lock keeps up: B = E·alpha / (1 - E·beta).",
        "",
        f"Every node handles every event: {per_node:.0f} µs of its core per event with {fanout} of its "
        f"subscribers getting it ({b_w:.0f} following the log, {b_r:.0f} its router taking the publish, "
        f"{per_delivery * fanout:.0f} the deliveries), so a node per core keeps up with at most "
        f"{fmt_rate(1e6 / per_node)} events/s, however many nodes: more nodes carry more subscribers "
        "(deliveries/s), not more events/s.",
        "",
        f"Machines of 16 cores, one node per core (router and containers sharing it), {fanout} subscribers "
        "of every node getting each event (--paper-fanout), PostgreSQL on a machine of its own, costs as "
        "measured here:",
        "",
    ]
    head = ("| machines | nodes | gateway CPU µs/event, all nodes | events/s the nodes' CPU allows | the append "
            "lock allows (turns however large) | carried | limit | events/turn | turns/s | append lock busy "
            "| PostgreSQL transactions/s | PostgreSQL backends, cores | deliveries/s |")
    cells = []
    for machines in (1, 2, 4):
        k = 16 * machines
        cost = a_w + per_node * k  # µs of one core per event, all nodes
        by_cpu = 16 * machines * 1e6 / cost
        by_lock = 1 / beta if beta > 0 else float("inf")
        carried = min(by_cpu, 0.9 * by_lock)
        limit = "the nodes' CPU" if carried == by_cpu else "the append lock (90 % of its ceiling)"
        per_turn = max(1.0, carried * alpha / (1 - carried * beta))
        turns = carried / per_turn
        pg_cores = turns * (a_p + b_p * k) / 1e6
        if pg_cores > 16:
            limit += "; PostgreSQL's backends need more than 16 cores"
        cells.append([str(machines), str(k), f"{cost:,.0f}", fmt_rate(by_cpu), fmt_rate(by_lock), fmt_rate(carried),
                      limit, f"{per_turn:.1f}", fmt_rate(turns), f"{100 * turns * (alpha + beta * per_turn):.0f} %",
                      fmt_rate(turns * (a_x + b_x * k)), f"{pg_cores:.1f}", fmt_rate(carried * fanout * k)])
    lines.append(table(head, cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def measure(run: Run, args: argparse.Namespace) -> str:
    print(header("cluster", f"duration {args.duration:g}s per row, {args.concurrency} in flight per node, paced "
                 f"{args.rate:g}/s in all, {args.subscribers} subscribers spread over the nodes "
                 f"({args.serializer}, {args.procs} process(es) per node), cluster sizes "
                 f"{','.join(map(str, args.nodes))}"), flush=True)
    pg = Postgres(run, os.environ.get("GATEWAY_TEST_POSTGRESQL_URL", PG_URL))
    rows: list[Row] = []
    counter = [0]

    node = run.gateway(None, label="single node, SQLite")
    rows += measure_setup(run, args, Setup("single, SQLite", [node]), counter)
    node.stop()

    node = run.gateway({"store": pg.store()}, label="single node, PostgreSQL")
    rows += measure_setup(run, args, Setup("single, PostgreSQL", [node], pg), counter)
    node.stop()

    store = pg.store()
    nodes: list[GatewayNode] = []
    for size in args.nodes:
        while len(nodes) < size:
            name = f"n{len(nodes) + 1}"
            nodes.append(run.gateway({"store": store, "cluster": {"enabled": True, "node_name": name}},
                                     label=f"cluster node {name}"))
        rows += measure_setup(run, args, Setup("cluster", list(nodes), pg, store["schema_name"]), counter)
    for node in nodes:
        node.stop()

    print(f"# probe: gateway_append one turn at a time, turns of {', '.join(map(str, PROBE_SIZES))} events, "
          f"{args.probe:g}s each", flush=True)
    probe = probe_appends(pg, args.probe)
    bad = [r for r in rows if not r.good]
    args.failed = bool(bad)
    verdict = ("Every row: every subscriber got every accepted event once, in increasing seq." if not bad else
               "NOT A RESULT: " + "; ".join(f"{r.setup}, {r.nodes} node(s), {r.mode}: {r.missing} missing, "
                                            f"{r.disorder} out of order or twice" for r in bad))
    return "\n\n".join([main_table(rows), verdict, cost_table(rows, probe),
                        "The append alone (probe, nodes stopped):\n\n" + probe_table(probe),
                        on_paper(rows, probe, args)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=5.0, help="seconds of posting per row (default 5)")
    p.add_argument("--nodes", default="1,2,3", help="cluster sizes, comma-separated (default 1,2,3)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight per node (default 16)")
    p.add_argument("--rate", type=float, default=250.0,
                   help="events/s in all of the paced row of each setup, below what the 3-node cluster carries "
                        "here; 0 for none (default 250)")
    p.add_argument("--subscribers", type=int, default=12,
                   help="subscriber sessions in all, spread evenly over the nodes (default 12)")
    p.add_argument("--procs", type=int, default=1, help="subscriber processes per node (default 1)")
    p.add_argument("--serializer", choices=("json", "msgpack", "cbor"), default="json",
                   help="subscribers' WAMP serializer (default json, as the browser page)")
    p.add_argument("--probe", type=float, default=1.0, help="seconds of each turn size of the probe (default 1)")
    p.add_argument("--paper-fanout", type=int, default=10,
                   help="the estimate's subscribers per node that get each event (default 10)")
    args = p.parse_args(argv)
    try:
        args.nodes = sorted({int(x) for x in args.nodes.split(",") if x.strip()})
    except ValueError:
        p.error("--nodes takes comma-separated integers, e.g. 1,2,3")
    if not args.nodes or min(args.nodes) < 1:
        p.error("--nodes: each size must be at least 1")
    if args.duration <= 0 or args.concurrency < 1 or args.procs < 1 or args.rate < 0 or args.probe <= 0:
        p.error("--duration, --concurrency, --procs and --probe must be positive, --rate not negative")
    if args.subscribers < max(args.nodes):
        p.error("--subscribers: at least one per node")
    args.failed = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = run_benchmark(measure, args)
    return status or (1 if args.failed else 0)


if __name__ == "__main__":
    sys.exit(main())
