"""RabbitMQ drain benchmark: how fast the bridge takes a full queue's events in and delivers them.

    .venv/bin/python bench/amqp_drain.py                       # about 1 min
    .venv/bin/python bench/amqp_drain.py --messages 20000 --prefetch 500

``bench/transports.py`` measures RabbitMQ ingest while the web-app publishes (each publish waiting for
the broker's confirm), so its figure mixes the sending and the draining. Here the queue is filled
first (``--messages`` demo.message bodies, as the proxy would send them), then a gateway node is
started on it with one WAMP subscriber (bench/_lib/subscribers.py) on ``gateway.event.demo.message``.
The node starts consuming before the subscriber is there, so the rate is taken from the
subscriber's count while the queue is still full: from when it has seen ``--skip`` events to when
it has seen ``--measure`` more (the drain's steady state, not its start or its tail).

It prints delivered events/s and the CPU split over that window. No bare baseline: bare Crossbar
has no queue to drain; compare with the bare row of ``transports.py`` (the router's own rate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, node_processes  # noqa: E402
from bench._lib.demo import EVENT, event_data  # noqa: E402
from bench._lib.nodes import Run, run_benchmark  # noqa: E402
from bench._lib.rabbitmq import AMQP_URL, delete_queues  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, table  # noqa: E402

#: How often the subscriber's count is read while draining.
POLL = 0.05


def fill(queue: str, room: str, messages: int) -> float:
    """Declare ``queue`` (durable, as the bridge does) and publish ``messages`` events to it; seconds taken."""
    import pika

    started = time.monotonic()
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.dead"):
            channel.queue_declare(name, durable=True)
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        for _ in range(messages):
            body = json.dumps({"event": EVENT, "id": uuid.uuid4().hex,
                               "data": event_data(room, time.monotonic())}).encode()
            channel.basic_publish("", queue, body, properties)
        # A passive declare is answered after every publish before it was routed: the queue holds them all.
        while channel.queue_declare(queue, passive=True).method.message_count < messages:
            connection.process_data_events(time_limit=0.05)
    finally:
        connection.close()
    return time.monotonic() - started


def measure(run: Run, args: argparse.Namespace) -> str:
    queue = f"bench.drain.{uuid.uuid4().hex[:8]}"
    room = "drain"
    print(header("amqp_drain", f"{args.messages} messages, amqp.prefetch {args.prefetch or 'default'}"), flush=True)
    run.on_exit(lambda: delete_queues(queue, f"{queue}.dead"))  # after the node stopped consuming
    seconds = fill(queue, room, args.messages)
    print(f"# queue {queue} filled with {args.messages} messages in {seconds:.1f}s", flush=True)
    amqp: dict[str, Any] = {"url": AMQP_URL, "queue": queue, "dead_letter_queue": f"{queue}.dead"}
    if args.prefetch:
        amqp["prefetch"] = args.prefetch
    node = run.gateway({"amqp": amqp})
    assert node.process is not None
    pool = run.subscribers(node.router_port, 1, 1, "json")
    meter = CpuMeter({**node_processes(node.process.pid), "subscribers": pool.pids})
    deadline = time.monotonic() + 120
    while pool.delivered(room) < args.skip:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {pool.delivered(room)} events delivered in 120 s")
        time.sleep(POLL)
    meter.start()
    first, t0 = pool.delivered(room), time.monotonic()
    while (count := pool.delivered(room)) < first + args.measure:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} events delivered in 120 s")
        time.sleep(POLL)
    t1 = time.monotonic()
    cpu = meter.stop()
    rate = (count - first) / (t1 - t0)
    print(f"#   drained {count - first} events in {t1 - t0:.2f}s while the queue was full", flush=True)
    return table("| messages queued | delivered/s while draining | CPU % router / workers / subscriber / other |",
                 [[f"{args.messages:,}", fmt_rate(rate), cpu_cell(cpu, ("router", "workers", "subscribers", "other"))]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=40_000, help="events queued before the node starts (default 40,000)")
    p.add_argument("--skip", type=int, default=3_000, help="events delivered before the window opens (default 3,000)")
    p.add_argument("--measure", type=int, default=20_000, help="events delivered in the window (default 20,000)")
    p.add_argument("--prefetch", type=int, default=0, help="the bridge's amqp.prefetch (default: gateway.yaml's)")
    args = p.parse_args(argv)
    if args.skip < 0 or args.measure < 1 or args.skip + args.measure > args.messages:
        p.error("--skip + --measure must be at most --messages, --measure at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
