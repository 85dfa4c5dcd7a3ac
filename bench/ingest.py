"""Ingest benchmark: validated events/s at the bridge, single and batch, beside unvalidated.

    .venv/bin/python bench/ingest.py                 # about 1 min
    .venv/bin/python bench/ingest.py --duration 5 --batch 50

Starts one gateway node (tests/support/harness.py) whose definitions add
``bench.raw``: a class with no fields that accepts any object (``extra:
allow``), i.e. no validation worth the name. Then, with no subscribers (this
measures ingest, not fan-out), for the same payload (a demo.order):

- ``POST /events`` of demo.order (validated) and of bench.raw (unvalidated);
- ``POST /events/batch`` of ``--batch`` events of each.

It also times, in this process, ``EventClass.validate`` of the payload
against ``json.loads`` of it, to show what validation costs per event
beside the rest of the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.delivery import _HttpConnection, drive  # noqa: E402  (after the path fix)
from components.events import Registry  # noqa: E402
from tests.support.harness import GatewayNode, remove_workdir, temp_workdir  # noqa: E402

ORDER = {"order_id": 42, "amount": 99.5, "country": "AR", "tags": ["new", "gift"],
         "customer": {"id": 7, "name": "Ann"}, "coupon": "WELCOME"}
RAW_YAML = textwrap.dedent("""\
    events:
      bench.raw:
        description: Anything at all; accepts any object, checks nothing.
        extra: allow
        fields: {}
""")


async def _ingest(port: int, path: bytes, body: bytes, per_request: int, concurrency: int,
                  duration: float) -> tuple[float, dict[str, int]]:
    conns = [_HttpConnection(port) for _ in range(concurrency)]
    expected = 200 if path.endswith(b"batch") else 202

    def sender(conn: _HttpConnection):  # type: ignore[no-untyped-def]
        async def send(stamp: float) -> None:
            status, answer = await conn.post(body, path)
            if status != expected:
                raise RuntimeError(f"HTTP {status} {answer[:100]!r}")
        return send

    try:
        load = await drive([sender(c) for c in conns], duration, None)
    finally:
        for c in conns:
            c.close()
    return load.accepted * per_request / (load.end - load.start), load.errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per row (default 8)")
    parser.add_argument("--batch", type=int, default=100, help="events per batch request (default 100)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--access-log", choices=("on", "off"), default="on",
                        help="the bridge's access log file (bridge.access_log; default on)")
    args = parser.parse_args(argv)

    registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
    order = registry.get("demo.order")
    text = json.dumps(ORDER)
    n = 20000
    validate_us = timeit.timeit(lambda: order.validate(ORDER), number=n) / n * 1e6
    loads_us = timeit.timeit(lambda: json.loads(text), number=n) / n * 1e6

    workdir = temp_workdir("gw-bench-")
    (workdir / "raw.yaml").write_text(RAW_YAML)
    node = GatewayNode(workdir, extra_config={
        "events": {"files": [str(REPO / "examples" / "demo_events.yaml"), str(workdir / "raw.yaml")], "watch": False},
        "bridge": {"access_log": "access.log" if args.access_log == "on" else None}})
    rows = []
    try:
        node.start()
        time.sleep(2)  # let the workers finish starting up before measuring
        for label, event in (("validated (demo.order)", "demo.order"), ("unvalidated (bench.raw)", "bench.raw")):
            single = json.dumps({"event": event, "data": ORDER}).encode()
            batch = json.dumps({"events": [{"event": event, "data": ORDER}] * args.batch}).encode()
            for mode, path, body, per in (("single", b"/events", single, 1),
                                          (f"batch of {args.batch}", b"/events/batch", batch, args.batch)):
                rate, errors = asyncio.run(_ingest(node.bridge_port, path, body, per, args.concurrency,
                                                   args.duration))
                rows.append((mode, label, rate, errors))
    finally:
        node.stop()
        remove_workdir(workdir)

    print(f"\nIngest, {args.concurrency} requests in flight, {args.duration:.0f} s per row, no subscribers\n")
    print("| request | events | accepted events/s | validated / unvalidated |")
    print("|---|---|---|---|")
    by_key = {(mode, label.split()[0]): rate for mode, label, rate, _ in rows}
    for mode, label, rate, errors in rows:
        ratio = ""
        if label.startswith("validated"):
            ratio = f"{rate / by_key[(mode, 'unvalidated')]:.2f}"
        print(f"| {mode} | {label} | {rate:,.0f} | {ratio} |" + (f" errors: {errors}" if errors else ""))
    print(f"\nIn-process, per event: validate(demo.order) {validate_us:.1f} µs; json.loads of it {loads_us:.1f} µs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
