"""Query delivery benchmark: batches over HTTP -> 1,000 query subscribers, beside bare Crossbar.

Run by hand, never from the test suite::

    .venv/bin/python bench/query_delivery.py [--clients 1000] [--queries 100] [--batch 100,500]

One gateway node (``tests.support.harness.GatewayNode``). N anonymous WAMP sessions,
spread over a few subscriber processes (``bench/_lib/subscribers.py``):
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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, by_title, node_processes, settle  # noqa: E402
from bench._lib.demo import EVENT, event_data  # noqa: E402
from bench._lib.nodes import Run, run_benchmark  # noqa: E402
from bench._lib.phases import Measured, measure_phase  # noqa: E402
from bench._lib.publishers import HttpConnection, Load, drive_http, publish_bare  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, print_problems, print_settled, table  # noqa: E402

QUERY = 'demo.message where room = "{room}"'

#: Which field of ``data`` carries the phase label (``room`` is what the queries select on).
PHASE_FIELD = "author"


def room(k: int) -> str:
    return f"r{k}"


# ---------------------------------------------------------------------------
# Publishers
# ---------------------------------------------------------------------------

async def publish_batches(port: int, phase: str, rooms: int, batch: int, in_flight: int, duration: float) -> Load:
    """POST /events/batch of ``batch`` events, ``in_flight`` requests at a time, rooms cycling."""
    next_room = 0
    refused: dict[str, int] = {}

    async def send(conn: HttpConnection, stamp: float) -> int:
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

    load = await drive_http(port, in_flight, duration, None, send)
    load.add_errors(refused)
    return load


async def publish_topics(socket_path: Path, phase: str, topics: list[tuple[str, str]], concurrency: int,
                         events: int | None, limit: float) -> Load:
    """Acknowledged publishes round-robin over (topic, room), ``concurrency`` in flight, ``events`` in all."""

    def route(seq: int, stamp: float) -> tuple[str, dict[str, Any]]:
        topic, room_name = topics[(seq - 1) % len(topics)]
        return topic, event_data(room_name, stamp, phase)

    load = await publish_bare(socket_path, concurrency, limit, None, sends=events, route=route)
    if events is not None and load.accepted < events:
        load.notes.append(f"stopped at the {limit:g}s limit after {load.accepted} of {events} events")
    return load


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

@dataclass
class Row(Measured):
    clients: int
    queries: int
    path: str
    how: str
    ratio: float | None = None

    @property
    def fanout(self) -> int:
        return self.clients // self.queries

    @property
    def expected(self) -> int:
        return self.load.accepted * self.fanout

    @property
    def workers(self) -> dict[str, float]:
        return {k[2:]: v for k, v in self.cpu.items() if k.startswith("w:")}


def format_table(rows: list[Row]) -> str:
    head = ("| N clients | distinct queries | path | publishing | events published/s | delivered/s "
            "| delivered/expected | p50 ms | p99 ms | gateway/bare "
            "| CPU % router / workers / publisher / subscribers / other |")
    return table(head, ([f"{r.clients:,}", str(r.queries), r.path, r.how, fmt_rate(r.published_per_s),
                         fmt_rate(r.delivered_per_s), f"{r.got.count}/{r.expected}", f"{r.got.percentile(0.5):.1f}",
                         f"{r.got.percentile(0.99):.1f}", f"{r.ratio:.2f}" if r.ratio is not None else "",
                         cpu_cell({**r.cpu, "workers": sum(r.workers.values())},
                                  ("router", "workers", "publisher", "subscribers", "other"))]
                        for r in rows))


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
    print(f"#   {row.path} {row.how}: {fmt_rate(row.published_per_s)} events/s, "
          f"{fmt_rate(row.delivered_per_s)} delivered/s; workers CPU %: {detail}", flush=True)
    print_problems(row.load, row.got.lost)


def measure(run: Run, args: argparse.Namespace) -> str:
    n, q = args.clients, args.queries
    fanout = n // q
    print(header("query delivery", f"{n} clients, {q} distinct queries ({fanout} clients each); "
                 f"{args.duration:g}s per gateway row, {args.in_flight} batches in flight; bare: {args.concurrency} "
                 f"publishes in flight; subscribers: {args.serializer} over WebSocket, {args.procs} processes"),
          flush=True)
    node = run.gateway(prefix="gw-qbench-")
    assert node.process is not None
    node_groups = node_processes(node.process.pid)
    print_settled("before subscribing", *settle(node_groups))

    queries = [QUERY.format(room=room(i % q)) for i in range(n)]
    t0 = time.monotonic()
    pool = run.subscribers(node.router_port, n, args.procs, args.serializer, queries, phase_field=PHASE_FIELD,
                           timeout=180)
    took = time.monotonic() - t0
    granted = pool.topics()
    if len(granted) != q or len(set(granted.values())) != q:
        raise RuntimeError(f"{q} distinct queries were granted {len(set(granted.values()))} topics")
    print(f"# {n} sessions: gateway.subscribe + SUBSCRIBE in {took:.1f}s ({n / took:.0f} sessions/s); "
          f"{q} topics", flush=True)
    topics = [(granted[QUERY.format(room=room(k))], room(k)) for k in range(q)]

    groups = {"router": node_groups["router"], **by_title(node_groups["workers"]), "subscribers": pool.pids}
    meter = CpuMeter(groups)
    socket_path = node.cbdir / "backend.sock"

    def gateway(phase: str, batch: int, seconds: float) -> Row:
        return Row(*measure_phase(
            node, pool, meter, phase, fanout,
            lambda: asyncio.run(publish_batches(node.bridge_port, phase, q, batch, args.in_flight, seconds))),
            n, q, "gateway", f"{batch}/POST, {args.in_flight} in flight")

    def bare(phase: str, events: int | None, seconds: float) -> Row:
        return Row(*measure_phase(
            node, pool, meter, phase, fanout,
            lambda: asyncio.run(publish_topics(socket_path, phase, topics, args.concurrency, events, seconds))),
            n, q, "bare crossbar", f"{args.concurrency} in flight")

    # One second of each path, not reported: first-use costs out of the way.
    gateway("warm-gateway", args.batch[0], 1.0)
    bare("warm-bare", None, 1.0)
    rows: list[Row] = []
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

    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
