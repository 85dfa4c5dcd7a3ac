"""Transports benchmark: events/s from a web-app to one WAMP subscriber, per transport, in one run.

    .venv/bin/python bench/transports.py                  # about 2 min
    .venv/bin/python bench/transports.py --events 2000 --concurrency 8

One gateway node (tests/support/harness.py) with RabbitMQ ingest on a queue of its
own, and one WAMP subscriber (bench/_lib/subscribers.py's minimal client, in its own
process) on ``gateway.event.demo.message``. Each row sends ``--events``
demo.message events and waits until the subscriber has them all:

- bare crossbar: a backend WAMP session publishing the same envelope straight to the router (acknowledged),
  the baseline: what the router and the subscriber cost without the gateway;
- HTTP raw: ``POST /events`` from an asyncio keep-alive client (no proxy), as bench/delivery.py does;
- then the proxy (``webapp_bridge.proxy.GatewayProxy``) in threads, as a threaded web-app would use it:
  HTTP single, HTTP batch (``publish_many``, ``--batch`` per call), XML-RPC single, XML-RPC batch, AMQP
  (each publish waits for the broker's confirm; the bridge consumes the queue).

sent/s is how fast the web-app side got its events accepted (for AMQP: stored by the broker);
delivered/s is events over the time from the first send to the last delivery. Latency is from the
moment an event was sent to its arrival at the subscriber. CPU columns are % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from typing import Any
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, node_processes, settle  # noqa: E402
from bench._lib.demo import EVENT, event_data  # noqa: E402
from bench._lib.nodes import Run, run_benchmark  # noqa: E402
from bench._lib.publishers import Load, publish_bare, publish_gateway  # noqa: E402
from bench._lib.rabbitmq import AMQP_URL, delete_queues  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, table  # noqa: E402
from bench._lib.subscribers import Deliveries, wait_delivered  # noqa: E402
from webapp_bridge.proxy import GatewayProxy  # noqa: E402



@dataclass
class Row:
    name: str
    sent: int
    send_seconds: float
    got: Deliveries
    start: float
    cpu: dict[str, float]
    errors: dict[str, int]

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def delivered_per_s(self) -> float:
        return self.got.per_second_since(self.start)


def threaded(proxy: GatewayProxy, room: str, events: int, concurrency: int, batch: int) -> tuple[int, dict[str, int]]:
    """``concurrency`` threads share the proxy (as a threaded web-app does) until ``events`` are sent."""
    lock = threading.Lock()
    left = events
    sent = 0
    errors: dict[str, int] = {}

    def take() -> int:
        nonlocal left
        with lock:
            n = min(batch, left)
            left -= n
            return n

    def work() -> None:
        nonlocal sent
        while (n := take()) > 0:
            try:
                # The subscriber measures latency from the stamp in the data.
                if batch == 1:
                    proxy.publish(EVENT, event_data(room, time.monotonic()))
                    ok = 1
                else:
                    results = proxy.publish_many([(EVENT, event_data(room, time.monotonic())) for _ in range(n)])
                    ok = sum(1 for r in results if not isinstance(r, Exception))
            except Exception as exc:  # counted and shown; the run goes on
                key = f"{type(exc).__name__}: {exc}"[:120]
                with lock:
                    errors[key] = errors.get(key, 0) + 1
                continue
            with lock:
                sent += ok

    threads = [threading.Thread(target=work, name=f"sender-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent, errors


def outcome(load: Load) -> tuple[int, dict[str, int]]:
    return load.accepted, load.errors


def format_table(rows: list[Row]) -> str:
    base = next((r for r in rows if r.name == "bare crossbar"), None)
    head = ("| transport | sent/s | delivered/s | delivered/sent | p50 ms | p99 ms | vs bare | "
            "CPU % router / workers / web-app / subscriber / other |")
    cells = []
    for r in rows:
        ratio = f"{r.delivered_per_s / base.delivered_per_s:.2f}" if base and base.delivered_per_s and r is not base \
            else ""
        cells.append([r.name, fmt_rate(r.sent_per_s), fmt_rate(r.delivered_per_s), f"{r.got.count}/{r.sent}",
                      f"{r.got.percentile(0.5):.1f}", f"{r.got.percentile(0.99):.1f}", ratio,
                      cpu_cell(r.cpu, ("router", "workers", "publisher", "subscribers", "other"))])
    return table(head, cells)


def measure(run: Run, args: argparse.Namespace) -> str:
    queue = f"bench.events.{uuid.uuid4().hex[:8]}"
    print(header("transports", f"{args.events} events per row, {args.concurrency} senders, "
                 f"batches of {args.batch}"), flush=True)
    run.on_exit(lambda: delete_queues(queue, f"{queue}.dead"))  # after the node stopped consuming
    amqp: dict[str, Any] = {"url": AMQP_URL, "queue": queue, "dead_letter_queue": f"{queue}.dead"}
    if args.amqp_prefetch is not None:
        amqp["prefetch"] = args.amqp_prefetch
    node = run.gateway({"amqp": amqp})
    assert node.process is not None
    groups = node_processes(node.process.pid)
    # Fork the subscriber before any thread exists in this process.
    pool = run.subscribers(node.router_port, 1, 1, "json")
    settle(groups)
    meter = CpuMeter({**groups, "subscribers": pool.pids})
    config = node.workdir / "gateway.yaml"

    def proxy(transport: str) -> GatewayProxy:
        made = GatewayProxy.from_config(config, transport=transport, env={})
        run.on_exit(made.close)
        return made

    #: name, and how to send ``count`` events of a phase (``room``): (accepted, errors).
    plan: list[tuple[str, Callable[[str, int], tuple[int, dict[str, int]]]]] = [
        ("bare crossbar", lambda room, count: outcome(asyncio.run(publish_bare(
            node.cbdir / "backend.sock", args.concurrency, 3600, None, sends=count, room=room)))),
        ("HTTP raw (no proxy)", lambda room, count: outcome(asyncio.run(publish_gateway(
            node.bridge_port, room, args.concurrency, 3600, None, sends=count)))),
    ]
    for transport in ("http", "xmlrpc", "amqp"):
        made = proxy(transport)
        label = {"http": "HTTP", "xmlrpc": "XML-RPC", "amqp": "AMQP"}[transport]
        plan.append((f"{label} single (proxy)", partial(threaded, made, concurrency=args.concurrency, batch=1)))
        if transport != "amqp":
            plan.append((f"{label} batch of {args.batch} (proxy)", partial(
                threaded, made, concurrency=max(1, args.concurrency // 4), batch=args.batch)))
    # One warm-up pass of every path, not reported: first-use costs out of the way.
    for i, (name, send) in enumerate(plan):
        sent, _ = send(f"warm-{i}", min(200, args.events))
        wait_delivered(pool, f"warm-{i}", sent)
    rows: list[Row] = []
    for i, (name, send) in enumerate(plan):
        room = f"row-{i}"
        meter.start()
        start = time.monotonic()
        sent, errors = send(room, args.events)
        send_seconds = time.monotonic() - start
        wait_delivered(pool, room, sent)
        cpu = meter.stop()
        row = Row(name, sent, send_seconds, pool.deliveries(room), start, cpu, errors)
        rows.append(row)
        print(f"#   {name}: {fmt_rate(row.delivered_per_s)} delivered/s", flush=True)
        for error, count in errors.items():
            print(f"#   error x{count}: {error}", flush=True)
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=5000, help="events per row (default 5000)")
    p.add_argument("--concurrency", type=int, default=16, help="senders in flight (default 16)")
    p.add_argument("--batch", type=int, default=100, help="events per batch call (default 100)")
    p.add_argument("--amqp-prefetch", type=int, default=None,
                   help="the bridge's amqp.prefetch (default: gateway.yaml's default)")
    args = p.parse_args(argv)
    return run_benchmark(measure, args)


if __name__ == "__main__":
    sys.exit(main())
