"""Query delivery benchmark: batches over HTTP -> 1,000 query subscribers, beside bare Crossbar.

Run by hand, never from the test suite::

    .venv/bin/python bench/query_delivery.py [--clients 1000] [--queries 100] [--batch 100,500]

One gateway node (``tests.support.harness.GatewayNode``). N anonymous WAMP sessions,
spread over a few subscriber processes (``delivery.py``'s minimal client):
session i calls ``gateway.subscribe('demo.message where room = "r<i % Q>"')``
and subscribes to the topic granted, so each of the Q distinct queries has
N/Q subscribers and one topic (equal queries share it). Then, per batch size:

* gateway: ``POST /events/batch`` of B demo.message events, a few requests in
  flight (keep-alive), rooms cycling r0..r<Q-1>: each event matches exactly
  one query and reaches N/Q sessions (bridge -> dispatcher -> query index ->
  one publish per matching query -> router);
* bare crossbar: one session on the backend unix socket publishing the same
  envelope with ``acknowledge=True``, a fixed number of publishes in flight
  (as ``delivery.py``'s bare path), round-robin to the same Q granted
  ``gateway.query.<key>`` topics that the same sessions hold, as many events
  as the gateway row published: the same number of messages to deliver.

Deliveries are counted at the subscribers; latency is from the send time the
publisher wrote into ``data.text`` (for a batch: when its request started) to
the moment the subscriber read the bytes. ``data.author`` names the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# delivery puts the repository on sys.path (components, tests.support.harness).
from delivery import (  # noqa: E402
    EVENT,
    CpuMeter,
    Deliveries,
    Load,
    Sender,
    SubscriberPool,
    _fmt_rate,
    _HttpConnection,
    _raise_interrupt,
    _require_running,
    backend_session,
    drive,
    node_processes,
    settle,
    wait_delivered,
)

from autobahn.wamp.types import PublishOptions  # noqa: E402

from components.envelope import make_envelope, new_event_id  # noqa: E402
from tests.support.harness import GatewayNode, remove_workdir, temp_workdir  # noqa: E402

QUERY = 'demo.message where room = "{room}"'

#: Which field of ``data`` carries the phase label (``room`` is what the queries select on).
PHASE_FIELD = "author"


def room(k: int) -> str:
    return f"r{k}"


def event_data(room_name: str, stamp: float, phase: str) -> dict[str, str]:
    return {"room": room_name, "text": f"{stamp:.6f}", "author": phase}


# ---------------------------------------------------------------------------
# Publishers
# ---------------------------------------------------------------------------

async def publish_batches(port: int, phase: str, rooms: int, batch: int, in_flight: int, duration: float) -> Load:
    """POST /events/batch of ``batch`` events, ``in_flight`` requests at a time, rooms cycling."""
    conns = [_HttpConnection(port) for _ in range(in_flight)]
    next_room = 0
    refused: dict[str, int] = {}

    def sender(conn: _HttpConnection) -> Sender:
        async def send(stamp: float) -> int:
            nonlocal next_room
            first, next_room = next_room, next_room + batch
            events = [{"event": EVENT, "data": event_data(room((first + j) % rooms), stamp, phase)}
                      for j in range(batch)]
            status, answer = await conn.post(json.dumps({"events": events}).encode(), b"/events/batch")
            if status != 200:
                raise RuntimeError(f"HTTP {status} {answer[:80]!r}")
            accepted = 0
            for result in json.loads(answer)["results"]:
                if "error" in result:
                    key = f"refused: {result['error']}: {result.get('message', '')}"[:120]
                    refused[key] = refused.get(key, 0) + 1
                else:
                    accepted += 1
            return accepted
        return send

    try:
        load = await drive([sender(c) for c in conns], duration, None)
    finally:
        for c in conns:
            c.close()
    for key, count in refused.items():
        load.errors[key] = load.errors.get(key, 0) + count
    reconnects = sum(c.reconnects for c in conns) - in_flight
    if reconnects > 0:
        load.notes.append(f"{reconnects} HTTP connections re-opened: the bridge closed keep-alive connections")
    return load


async def publish_bare(socket_path: Path, phase: str, topics: list[tuple[str, str]], concurrency: int,
                       events: int | None, limit: float) -> Load:
    """Acknowledged publishes round-robin over (topic, room), ``concurrency`` in flight, ``events`` in all."""
    options = PublishOptions(acknowledge=True)  # type: ignore[no-untyped-call]
    sent = 0
    async with backend_session(socket_path) as session:

        async def send(stamp: float) -> None:
            nonlocal sent
            topic, room_name = topics[sent % len(topics)]
            sent += 1
            # The envelope the dispatcher builds, so the router ships the same bytes.
            envelope = make_envelope(EVENT, new_event_id(), sent, datetime.now(timezone.utc),
                                     event_data(room_name, stamp, phase))
            await session.publish(topic, envelope, options=options)

        load = await drive([send] * concurrency, limit, None, sends=events)
    if events is not None and load.accepted < events:
        load.notes.append(f"stopped at the {limit:g}s limit after {load.accepted} of {events} events")
    return load


# ---------------------------------------------------------------------------
# CPU, by process title
# ---------------------------------------------------------------------------

def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def worker_groups(node_groups: dict[str, list[int]]) -> dict[str, list[int]]:
    """``node_processes``' workers one group per process title ("gateway components-1", the controller)."""
    groups: dict[str, list[int]] = {}
    for pid in node_groups["workers"]:
        title = _title(pid)
        name = title.split()[0] if title.startswith("crossbar") else title.removeprefix("gateway ")
        groups.setdefault(f"w:{name}", []).append(pid)
    return groups


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

@dataclass
class Row:
    clients: int
    queries: int
    path: str
    how: str
    load: Load
    got: Deliveries
    cpu: dict[str, float]
    ratio: float | None = None

    @property
    def fanout(self) -> int:
        return self.clients // self.queries

    @property
    def published_per_s(self) -> float:
        return self.load.accepted / max(1e-9, self.load.end - self.load.start)

    @property
    def delivered_per_s(self) -> float:
        # From the first send to the last delivery, as delivery.py.
        return self.got.count / max(1e-9, self.got.last - self.load.start) if self.got.count else 0.0

    @property
    def expected(self) -> int:
        return self.load.accepted * self.fanout

    @property
    def workers(self) -> dict[str, float]:
        return {k[2:]: v for k, v in self.cpu.items() if k.startswith("w:")}


def run_phase(node: GatewayNode, pool: SubscriberPool, meter: CpuMeter, row: Callable[[Load, Deliveries,
              dict[str, float]], Row], phase: str, fanout: int, publish: Callable[[], Load]) -> Row:
    _require_running(node)
    meter.start()
    load = publish()
    wait_delivered(pool, phase, load.accepted * fanout)
    cpu = meter.stop()
    _require_running(node)
    return row(load, pool.deliveries(phase), cpu)


def format_table(rows: list[Row]) -> str:
    head = ("| N clients | distinct queries | path | publishing | events published/s | delivered/s "
            "| delivered/expected | p50 ms | p99 ms | gateway/bare "
            "| CPU % router / workers / publisher / subscribers / other |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        c = r.cpu
        workers = sum(r.workers.values())
        cpu = " / ".join(f"{x:.0f}" for x in (c.get("router", 0), workers, c.get("publisher", 0),
                                              c.get("subscribers", 0), c.get("other", 0)))
        cells = [f"{r.clients:,}", str(r.queries), r.path, r.how, _fmt_rate(r.published_per_s),
                 _fmt_rate(r.delivered_per_s), f"{r.got.count}/{r.expected}", f"{r.got.percentile(0.5):.1f}",
                 f"{r.got.percentile(0.99):.1f}", f"{r.ratio:.2f}" if r.ratio is not None else "", cpu]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clients", type=int, default=1000, help="subscriber sessions N (default 1000)")
    p.add_argument("--queries", type=int, default=100,
                   help="distinct queries Q; N must be a multiple (default 100: 10 sessions per query)")
    p.add_argument("--batch", default="100,500",
                   help="comma-separated events per POST /events/batch, one gateway row each (default 100,500)")
    p.add_argument("--in-flight", type=int, default=4, help="batch requests in flight (default 4)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="bare Crossbar: acknowledged publishes in flight (default 16, as delivery.py)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of publishing per gateway row (default 8)")
    p.add_argument("--procs", type=int, default=4, help="subscriber processes (default 4)")
    p.add_argument("--serializer", choices=("json", "msgpack", "cbor"), default="json",
                   help="subscribers' WAMP serializer (default json, as the browser page)")
    args = p.parse_args(argv)
    try:
        args.batch = [int(x) for x in args.batch.split(",") if x.strip()]
    except ValueError:
        p.error("--batch takes comma-separated integers, e.g. 100,500")
    if not args.batch or min(args.batch) < 1 or max(args.batch) > 1000:
        p.error("--batch: each size must be 1..1000 (bridge.max_batch)")
    if args.clients < 1 or args.queries < 1 or args.clients % args.queries:
        p.error("--clients must be a positive multiple of --queries")
    if args.duration <= 0 or args.in_flight < 1 or args.concurrency < 1 or args.procs < 1:
        p.error("--duration, --in-flight, --concurrency and --procs must be positive")
    return args


def _report(row: Row) -> None:
    detail = ", ".join(f"{name} {pct:.0f}" for name, pct in sorted(row.workers.items()))
    print(f"#   {row.path} {row.how}: {_fmt_rate(row.published_per_s)} events/s, "
          f"{_fmt_rate(row.delivered_per_s)} delivered/s; workers CPU %: {detail}", flush=True)
    for reason in sorted(set(row.got.lost)):
        print(f"#   lost subscriber session: {reason}", flush=True)
    for error, count in row.load.errors.items():
        print(f"#   publisher error x{count}: {error}", flush=True)
    for note in row.load.notes:
        print(f"#   publisher: {note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a plain `kill` cleans up like Ctrl-C
    workdir = temp_workdir("gw-qbench-")
    node = GatewayNode(workdir)
    pool: SubscriberPool | None = None
    rows: list[Row] = []
    keep_workdir = True  # a failed node's log is worth reading
    n, q = args.clients, args.queries
    fanout = n // q
    print(f"# query delivery benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {n} clients, {q} distinct queries ({fanout} clients each); "
          f"{args.duration:g}s per gateway row, {args.in_flight} batches in flight; bare: {args.concurrency} "
          f"publishes in flight; subscribers: {args.serializer} over WebSocket, {args.procs} processes", flush=True)
    try:
        started = time.monotonic()
        node.start()
        print(f"# node ready in {time.monotonic() - started:.1f}s ({workdir})", flush=True)
        assert node.process is not None
        node_groups = node_processes(node.process.pid)
        node_load, other_load = settle(node_groups)
        print(f"# before subscribing: node {node_load:.0f}%, rest of the machine {other_load:.0f}% of one core"
              + (" -- something else is running: expect lower, noisier figures" if other_load > 15 else ""),
              flush=True)

        queries = [QUERY.format(room=room(i % q)) for i in range(n)]
        pool = SubscriberPool(node.router_port, n, args.procs, args.serializer, queries, phase_field=PHASE_FIELD)
        t0 = time.monotonic()
        pool.start(timeout=180)
        took = time.monotonic() - t0
        granted = pool.topics()
        if len(granted) != q or len(set(granted.values())) != q:
            raise RuntimeError(f"{q} distinct queries were granted {len(set(granted.values()))} topics")
        print(f"# {n} sessions: gateway.subscribe + SUBSCRIBE in {took:.1f}s ({n / took:.0f} sessions/s); "
              f"{q} topics", flush=True)
        topics = [(granted[QUERY.format(room=room(k))], room(k)) for k in range(q)]

        groups = {"router": node_groups["router"], **worker_groups(node_groups), "subscribers": pool.pids}
        meter = CpuMeter(groups)
        socket_path = node.cbdir / "backend.sock"

        def row_of(path: str, how: str) -> Callable[[Load, Deliveries, dict[str, float]], Row]:
            return lambda load, got, cpu: Row(n, q, path, how, load, got, cpu)

        pool_ = pool  # not None from here on (for the closures below)

        def gateway(phase: str, batch: int, seconds: float) -> Row:
            return run_phase(node, pool_, meter, row_of("gateway", f"{batch}/POST, {args.in_flight} in flight"),
                             phase, fanout, lambda: asyncio.run(
                                 publish_batches(node.bridge_port, phase, q, batch, args.in_flight, seconds)))

        def bare(phase: str, events: int | None, seconds: float) -> Row:
            return run_phase(node, pool_, meter, row_of("bare crossbar", f"{args.concurrency} in flight"),
                             phase, fanout, lambda: asyncio.run(
                                 publish_bare(socket_path, phase, topics, args.concurrency, events, seconds)))

        # One second of each path, not reported: first-use costs out of the way.
        gateway("warm-gateway", args.batch[0], 1.0)
        bare("warm-bare", None, 1.0)
        for i, batch in enumerate(args.batch, 1):
            gw = gateway(f"gateway-{i}", batch, args.duration)
            rows.append(gw)
            _report(gw)
            # The same number of events, so the same number of messages to deliver; time-capped.
            base = bare(f"bare-{i}", gw.load.accepted, 4 * args.duration)
            rows.append(base)
            _report(base)
            if base.delivered_per_s:
                gw.ratio = gw.delivered_per_s / base.delivered_per_s

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
