"""Delivery benchmark: HTTP bridge -> WAMP subscribers, against bare Crossbar.

Run by hand, never from the test suite::

    .venv/bin/python bench/delivery.py [--duration 8] [--subscribers 1,10,100] [--metrics on|off|both] [--batched]
        [--hand-off on|off] [--balance on|off] [--logged] [--store sqlite|postgresql]

One gateway node (``tests.support.harness.GatewayNode``) is started. For each N, N
anonymous WAMP sessions subscribe to ``gateway.event.demo.message``, spread
over a few subscriber processes. Against the same subscribers it then runs:

* gateway: ``POST /events`` over keep-alive HTTP connections, a fixed number
  of requests in flight; each event goes bridge -> dispatcher -> router;
* bare crossbar: one WAMP session on the backend unix socket (WAMP-CRA, role
  backend) publishing an envelope of the same shape with ``acknowledge=True``,
  the same number of publishes in flight;
* optionally the same two paths paced at a fixed rate, where latency is not
  dominated by queueing;
* with ``--batched``, "gateway batched": the same ``POST /events`` load, to N
  other anonymous sessions that called ``gateway.subscribe(query, batch=True)``
  (a query on the row's rooms) and subscribed to the batched topic it granted.
  One WAMP event there carries the envelopes of one dispatcher turn; every
  envelope counts as a delivery, with its own latency, so delivered/s is
  envelopes/s. The N plain sessions have left by then (they would receive
  those events on the class topic too).

Subscribers count what is *delivered* and measure latency from the send time
the publisher wrote into ``data.text`` (CLOCK_MONOTONIC is system-wide on
Linux, so it compares across processes) to the moment the bytes arrived.

The subscribers (``bench/_lib/subscribers.py``) are a minimal WAMP-over-WebSocket
client rather than autobahn: measured here, an autobahn asyncio session spent
about 210 us of CPU per event received, this client about 45 us at low rates
and 15 us when busy, and the router about 25 us per delivery. With autobahn
subscribers a 2-core machine would measure them instead of the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, node_processes, settle  # noqa: E402
from bench._lib.nodes import Run, run_benchmark  # noqa: E402
from bench._lib.phases import Measured, measure_phase  # noqa: E402
from bench._lib.publishers import Load, publish_bare, publish_gateway  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, print_problems, print_settled, table  # noqa: E402
from bench._lib.subscribers import SubscriberPool  # noqa: E402
from bench._lib.demo import EVENT  # noqa: E402
from tests.support.harness import API_KEY, GatewayNode  # noqa: E402


@dataclass
class Row(Measured):
    subscribers: int
    path: str
    mode: str
    #: Which node ran it (``--metrics both`` starts two): gateway rows are compared with its bare rows.
    node_label: str = ""
    ratio: float | None = None
    #: Kept-alive connections the bridges moved during the row (``balance``): given, called back.
    moved: dict[str, float] | None = None

    @property
    def expected(self) -> int:
        return self.load.accepted * self.subscribers


#: The rooms of the batched rows start with this (the batched subscribers' query selects them).
BATCHED_ROOMS = "batched-"


def run_phase(node: GatewayNode, pool: SubscriberPool, meter: CpuMeter, n: int, path: str,
              room: str, args: argparse.Namespace, rate: float | None, duration: float | None = None) -> Row:
    seconds = duration or args.duration

    def publish() -> Load:
        if path.startswith("gateway"):
            return asyncio.run(publish_gateway(node.bridge_port, room, args.concurrency, seconds, rate,
                                               per_request=args.per_request))
        return asyncio.run(publish_bare(node.cbdir / "backend.sock", args.bare_concurrency or args.concurrency,
                                        seconds, rate, room=room))

    moved = hand_off_moves(node) if path.startswith("gateway") else None
    row = Row(*measure_phase(node, pool, meter, room, n, publish), n, path, f"paced {rate:g}/s" if rate else "max")
    if moved is not None:
        after = hand_off_moves(node)
        row.moved = {outcome: after.get(outcome, 0) - moved.get(outcome, 0) for outcome in ("given", "called")}
    return row


def hand_off_moves(node: GatewayNode) -> dict[str, float]:
    """The node's ``gateway_handoff_connections_total`` by outcome (kept-alive connections the bridges moved:
    given, called); empty with metrics off."""
    reply = node.request("GET", "/metrics")
    if reply.status != 200:
        return {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.body if isinstance(reply.body, str) else reply.body.decode()):
        if family.name == "gateway_handoff_connections":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


def postgresql_schema(run: Run) -> dict[str, Any]:
    """A schema of its own in the PostgreSQL test database (as tests/integration/conftest.py makes one),
    dropped when the run ends; gateway.yaml's store section for it."""
    import psycopg

    url = os.environ.get("GATEWAY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"gw_bench_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    run.on_exit(drop)
    return {"url": url, "schema_name": schema}


def format_table(rows: list[Row]) -> str:
    labelled = any(r.node_label for r in rows)
    head = ("| N | path | mode |" + (" node |" if labelled else "") + " published/s | delivered/s "
            "| delivered/expected | p50 ms | p99 ms | p99.9 ms | gateway/bare | CPU % router / workers / publisher / subscribers / other |")
    return table(head, ([str(r.subscribers), r.path, r.mode, *([r.node_label] if labelled else []),
                         fmt_rate(r.published_per_s),
                         fmt_rate(r.delivered_per_s), f"{r.got.count}/{r.expected}", f"{r.got.percentile(0.5):.1f}",
                         f"{r.got.percentile(0.99):.1f}", f"{r.got.percentile(0.999):.1f}", f"{r.ratio:.2f}" if r.ratio is not None else "",
                         cpu_cell(r.cpu, ("router", "workers", "publisher", "subscribers", "other"))]
                        for r in rows))


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
    p.add_argument("--metrics", choices=("on", "off", "both"), default="on",
                   help="the gateway's metrics (metrics.enabled); both: a node with each, one after the other, "
                        "each beside its own bare rows (default on)")
    p.add_argument("--paced-subscribers", type=int, default=10,
                   help="N of the paced rows, one of --subscribers (default 10)")
    p.add_argument("--per-request", type=int, default=1,
                   help="events per request of the gateway rows: above one, POST /events/batch (paced rates are "
                        "then requests a second); the bare rows publish one event at a time (default 1)")
    p.add_argument("--bare-concurrency", type=int, default=0,
                   help="publishes in flight of the bare rows, if not --concurrency (bare Crossbar's own maximum "
                        "beside gateway rows of batches)")
    p.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                   help="the node's store: its SQLite file, or a schema of its own in PostgreSQL's test database "
                        "(env GATEWAY_TEST_POSTGRESQL_URL; default sqlite)")
    p.add_argument("--logged", action="store_true",
                   help="a persistent subscription on the class first (POST /subscriptions): every event is "
                        "written to the event log before it is published")
    p.add_argument("--hand-off", choices=("on", "off"), default="on",
                   help="bridge.hand_off: on (the default: the bridge beside the active dispatcher serves the "
                        "connections) or off (each bridge serves those the kernel gives it, and both parse)")
    p.add_argument("--balance", choices=("on", "off"), default="on",
                   help="bridge.balance, with the hand-off on: on (the default: kept-alive connections move to the "
                        "other bridge while the active one's is busy, and back) or off (they stay where they are)")
    p.add_argument("--batched", action="store_true",
                   help="also 'gateway batched' rows: subscribers of gateway.subscribe(query, batch=True)'s "
                        "batched topic, counting every envelope (delivered/s is envelopes/s)")
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
    if args.duration <= 0 or args.concurrency < 1 or args.procs < 1 or args.per_request < 1:
        p.error("--duration, --concurrency and --procs must be positive")
    return args


def measure(run: Run, args: argparse.Namespace) -> str:
    per = f", {args.per_request} events per gateway request" if args.per_request > 1 else ""
    per += ", hand-off off (both bridges parse)" if args.hand_off == "off" else ""
    print(header("delivery", f"duration {args.duration:g}s per row, {args.concurrency} in flight{per}, "
                 f"subscribers: {args.serializer} over WebSocket, up to {args.procs} processes"), flush=True)
    variants = {"on": [True], "off": [False], "both": [True, False]}[args.metrics]
    rows: list[Row] = []
    for enabled in variants:
        label = "" if args.metrics == "on" else ("metrics on" if enabled else "metrics off")
        rows += measure_node(run, args, enabled, label)
    for r in rows:
        if r.path.startswith("gateway"):
            bare = next((b for b in rows if b.path == "bare crossbar" and b.subscribers == r.subscribers
                         and b.mode == r.mode and b.node_label == r.node_label), None)
            if bare is not None and bare.delivered_per_s:
                r.ratio = r.delivered_per_s / bare.delivered_per_s
    return format_table(rows)


def measure_node(run: Run, args: argparse.Namespace, metrics: bool, label: str) -> list[Row]:
    """The rows of one gateway node (``metrics.enabled: metrics``), each gateway row beside a bare one."""
    extra: dict[str, Any] = {} if metrics else {"metrics": {"enabled": False}}
    if args.hand_off == "off":
        extra["bridge"] = {"hand_off": False}
    elif args.balance == "off":
        extra["bridge"] = {"balance": False}
    if args.store == "postgresql":
        extra["store"] = postgresql_schema(run)
    node = run.gateway(extra or None, label=f"node ({label})" if label else "node")
    assert node.process is not None
    if args.logged:  # a persistent subscription on the class: its events are written to the event log
        made = node.request("POST", "/subscriptions", json.dumps(
            {"user": "bench", "query": EVENT, "persistent": True}).encode(), {"Authorization": f"Bearer {API_KEY}"})
        if made.status != 201:
            raise RuntimeError(f"POST /subscriptions answered {made.status}: {made.body}")
    node_groups = node_processes(node.process.pid)
    print_settled("before the first row", *settle(node_groups))
    rows: list[Row] = []
    phase = 0
    for n in args.subscribers:
        pool = run.subscribers(node.router_port, n, args.procs, args.serializer)
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
            rows.append(measured(run_phase(node, pool, meter, n, path, f"bench-{phase}", args, rate), label, args))
        pool.stop()
        if args.batched:
            # Other sessions of their own: the plain ones would get these events on the class topic too.
            query = f'demo.message where room startswith "{BATCHED_ROOMS}{n}-"'
            pool = run.subscribers(node.router_port, n, args.procs, args.serializer, queries=[query] * n, batch=True)
            meter = CpuMeter({**node_groups, "subscribers": pool.pids})
            run_phase(node, pool, meter, n, "gateway batched", f"{BATCHED_ROOMS}{n}-warm-up", args, None, duration=1.0)
            for rate in [None, *(args.paced_rates if n == args.paced_subscribers else [])]:
                phase += 1
                rows.append(measured(run_phase(node, pool, meter, n, "gateway batched",
                                               f"{BATCHED_ROOMS}{n}-bench-{phase}", args, rate), label, args))
            pool.stop()
    node.stop()
    return rows


def measured(row: Row, label: str, args: argparse.Namespace) -> Row:
    """The row, labelled with its node, once its progress line is printed."""
    row.node_label = label
    per_event = f", {row.got.count / row.got.events:.1f} envelopes per WAMP event" if row.got.events else ""
    moved = f", connections given {row.moved['given']:g}, called back {row.moved['called']:g}" if row.moved else ""
    print(f"#   N={row.subscribers} {row.path} {row.mode}{f' ({label})' if label else ''}: "
          f"{fmt_rate(row.delivered_per_s)} delivered/s{per_event}{moved}", flush=True)
    print_problems(row.load, row.got.lost)
    if row.load.late:
        print(f"#   publisher: {row.load.late} paced sends left over 5 ms late: all {args.concurrency} "
              "in flight, the pace is close to the maximum", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
