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
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.nodes import Run, run_benchmark  # noqa: E402
from bench._lib.publishers import post_many  # noqa: E402
from bench._lib.report import table_head, table_row  # noqa: E402
from components.events import Registry  # noqa: E402

ORDER = {"order_id": 42, "amount": 99.5, "country": "AR", "tags": ["new", "gift"],
         "customer": {"id": 7, "name": "Ann"}, "coupon": "WELCOME"}
RAW_YAML = textwrap.dedent("""\
    events:
      bench.raw:
        description: Anything at all; accepts any object, checks nothing.
        extra: allow
        fields: {}
""")


def measure(run: Run, args: argparse.Namespace) -> str:
    registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
    order = registry.get("demo.order")
    text = json.dumps(ORDER)
    n = 20000
    validate_us = timeit.timeit(lambda: order.validate(ORDER), number=n) / n * 1e6
    loads_us = timeit.timeit(lambda: json.loads(text), number=n) / n * 1e6

    def write_raw(workdir: Path) -> None:
        (workdir / "raw.yaml").write_text(RAW_YAML)

    node = run.gateway(prepare=write_raw, extra_config={
        "events": {"files": [str(REPO / "examples" / "demo_events.yaml"), "raw.yaml"], "watch": False},
        "bridge": {"access_log": "access.log" if args.access_log == "on" else None}})
    time.sleep(2)  # let the workers finish starting up before measuring
    rows: list[tuple[str, str, float, dict[str, int]]] = []
    for label, event in (("validated (demo.order)", "demo.order"), ("unvalidated (bench.raw)", "bench.raw")):
        single = json.dumps({"event": event, "data": ORDER}).encode()
        batch = json.dumps({"events": [{"event": event, "data": ORDER}] * args.batch}).encode()
        for mode, path, body, per in (("single", b"/events", single, 1),
                                      (f"batch of {args.batch}", b"/events/batch", batch, args.batch)):
            rate, errors = asyncio.run(post_many(node.bridge_port, path, body, per, args.concurrency,
                                                 args.duration))
            rows.append((mode, label, rate, errors))

    report = [f"Ingest, {args.concurrency} requests in flight, {args.duration:.0f} s per row, no subscribers\n",
              *table_head("| request | events | accepted events/s | validated / unvalidated |")]
    by_key = {(mode, label.split()[0]): rate for mode, label, rate, _ in rows}
    for mode, label, rate, errors in rows:
        ratio = ""
        if label.startswith("validated"):
            ratio = f"{rate / by_key[(mode, 'unvalidated')]:.2f}"
        report.append(table_row([mode, label, f"{rate:,.0f}", ratio]) + (f" errors: {errors}" if errors else ""))
    report.append(f"\nIn-process, per event: validate(demo.order) {validate_us:.1f} µs; "
                  f"json.loads of it {loads_us:.1f} µs")
    return "\n".join(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per row (default 8)")
    parser.add_argument("--batch", type=int, default=100, help="events per batch request (default 100)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--access-log", choices=("on", "off"), default="on",
                        help="the bridge's access log file (bridge.access_log; default on)")
    args = parser.parse_args(argv)
    return run_benchmark(measure, args)


if __name__ == "__main__":
    sys.exit(main())
