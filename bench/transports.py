"""Transports benchmark: events/s from a web-app to one WAMP subscriber, per transport, in one run.

    .venv/bin/python bench/transports.py                  # about 2 min
    .venv/bin/python bench/transports.py --events 2000 --concurrency 8

One gateway node (tests/support/harness.py) with RabbitMQ ingest on a queue of its
own, and one WAMP subscriber (bench/delivery.py's minimal client, in its own
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
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.delivery import (CpuMeter, Deliveries, Load, SubscriberPool, node_processes,  # noqa: E402
                            publish_bare, publish_gateway, settle, wait_delivered)
from tests.support.harness import GatewayNode, remove_workdir, temp_workdir  # noqa: E402
from webapp_bridge.proxy import GatewayProxy  # noqa: E402

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


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
        span = self.got.last - self.start
        return self.got.count / span if span > 0 else 0.0


def _data(room: str) -> dict[str, str]:
    # The subscriber measures latency from this stamp (CLOCK_MONOTONIC, system-wide).
    return {"room": room, "text": repr(time.monotonic()), "author": "bench"}


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
                if batch == 1:
                    proxy.publish("demo.message", _data(room))
                    ok = 1
                else:
                    results = proxy.publish_many([("demo.message", _data(room)) for _ in range(n)])
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


def fmt(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 10_000 else f"{x:,.0f}"


def table(rows: list[Row]) -> str:
    base = next((r for r in rows if r.name == "bare crossbar"), None)
    head = ("| transport | sent/s | delivered/s | delivered/sent | p50 ms | p99 ms | vs bare | "
            "CPU % router / workers / web-app / subscriber / other |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ratio = f"{r.delivered_per_s / base.delivered_per_s:.2f}" if base and base.delivered_per_s and r is not base \
            else ""
        c = r.cpu
        cpu = " / ".join(f"{c.get(k, 0):.0f}" for k in ("router", "workers", "publisher", "subscribers", "other"))
        lines.append(f"| {r.name} | {fmt(r.sent_per_s)} | {fmt(r.delivered_per_s)} | {r.got.count}/{r.sent} | "
                     f"{r.got.percentile(0.5):.1f} | {r.got.percentile(0.99):.1f} | {ratio} | {cpu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=5000, help="events per row (default 5000)")
    p.add_argument("--concurrency", type=int, default=16, help="senders in flight (default 16)")
    p.add_argument("--batch", type=int, default=100, help="events per batch call (default 100)")
    args = p.parse_args(argv)

    queue = f"bench.events.{uuid.uuid4().hex[:8]}"
    workdir = temp_workdir("gw-bench-")
    node = GatewayNode(workdir, extra_config={"amqp": {"url": AMQP_URL, "queue": queue,
                                                       "dead_letter_queue": f"{queue}.dead"}})
    pool: SubscriberPool | None = None
    proxies: list[GatewayProxy] = []
    rows: list[Row] = []
    print(f"# transports benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; {args.events} events per row, {args.concurrency} senders, "
          f"batches of {args.batch}", flush=True)
    try:
        node.start()
        assert node.process is not None
        groups = node_processes(node.process.pid)
        # Fork the subscriber before any thread exists in this process.
        pool = SubscriberPool(node.router_port, 1, 1, "json")
        pool.start()
        settle(groups)
        meter = CpuMeter({**groups, "subscribers": pool.pids})
        config = workdir / "gateway.yaml"

        def proxy(transport: str) -> GatewayProxy:
            made = GatewayProxy.from_config(config, transport=transport, env={})
            proxies.append(made)
            return made

        #: name, and how to send ``count`` events of a phase (``room``): (accepted, errors).
        plan: list[tuple[str, Callable[[str, int], tuple[int, dict[str, int]]]]] = [
            ("bare crossbar", lambda room, count: outcome(asyncio.run(publish_bare(
                node.cbdir / "backend.sock", room, args.concurrency, 3600, None, sends=count)))),
            ("HTTP raw (no proxy)", lambda room, count: outcome(asyncio.run(publish_gateway(
                node.bridge_port, room, args.concurrency, 3600, None, sends=count)))),
        ]
        for transport in ("http", "xmlrpc", "amqp"):
            made = proxy(transport)
            label = {"http": "HTTP", "xmlrpc": "XML-RPC", "amqp": "AMQP"}[transport]
            plan.append((f"{label} single (proxy)", lambda room, count, made=made: threaded(
                made, room, count, args.concurrency, 1)))
            if transport != "amqp":
                plan.append((f"{label} batch of {args.batch} (proxy)", lambda room, count, made=made: threaded(
                    made, room, count, max(1, args.concurrency // 4), args.batch)))
        # One warm-up pass of every path, not reported: first-use costs out of the way.
        for i, (name, run) in enumerate(plan):
            sent, _ = run(f"warm-{i}", min(200, args.events))
            wait_delivered(pool, f"warm-{i}", sent)
        for i, (name, run) in enumerate(plan):
            room = f"row-{i}"
            meter.start()
            start = time.monotonic()
            sent, errors = run(room, args.events)
            send_seconds = time.monotonic() - start
            wait_delivered(pool, room, sent)
            cpu = meter.stop()
            row = Row(name, sent, send_seconds, pool.deliveries(room), start, cpu, errors)
            rows.append(row)
            print(f"#   {name}: {fmt(row.delivered_per_s)} delivered/s", flush=True)
            for error, count in errors.items():
                print(f"#   error x{count}: {error}", flush=True)
        print()
        print(table(rows))
        return 0
    except Exception:
        print(f"# node log tail ({node.log_path}):\n{node.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        for made in proxies:
            made.close()
        if pool is not None:
            pool.stop()
        node.stop()
        try:
            import pika

            connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.queue_delete(f"{queue}.dead")
            connection.close()
        except Exception as exc:  # the run's result stands; say what is left behind
            print(f"# could not delete the queues {queue}(.dead): {exc}", file=sys.stderr)
        remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
