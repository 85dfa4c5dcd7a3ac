"""Persistent subscriptions benchmark: replay of missed events, and ingest with the event log on and off.

    .venv/bin/python bench/persistence.py                          # about 1.5 min
    .venv/bin/python bench/persistence.py --events 2000 --duration 3

One gateway node (tests/support/harness.py: free ports, a temp dir, the store at
``<workdir>/store.sqlite3``). Two parts:

1. **Replay.** An anonymous WAMP client subscribes persistently to
   ``demo.message where room = "bench"``, keeps its client token and leaves.
   ``--events`` events of that room are posted (``POST /events/batch``, 500
   per request), interleaved with ``--noise`` events of another room that the
   replay must skip. The client comes back with its token and reads them all
   with ``gateway.replay(id, last_seq, limit)``, page after page until ``more``
   is false, once per ``--limits`` value, ``--repeat`` times each; every
   replay is checked to give exactly the posted events, in seq order.
   Baselines, same data, same run, in this process:

   - *in-process replay*: the gateway's own ``PersistentBook.replay`` on a
     second ``SqliteStore`` over the node's store file (what the dispatcher
     does for the call: the SELECTs, ``json.loads``, the query, the
     envelopes), without WAMP, the router or JSON on the wire;
   - *sqlite3 SELECT*: the log's rows of the class after ``last_seq``, paged
     with the same LIMIT, straight from the file (a read-only connection).

2. **Ingest, event log off and on.** ``POST /events`` (one event, 16 in
   flight) and ``POST /events/batch`` (``--batch`` events) of demo.message,
   ``--duration`` seconds per row (``bench/ingest.py``'s driver, ``post_many``), in the order
   off, on, on, off for each request kind, so that drift over the run falls
   on both sides alike. *on* means a persistent subscription on demo.message
   exists (``where room = "nobody"``: it matches none of the posted events,
   so the only difference is the event log write, not an extra publish);
   every demo.message is then written to the log, in one transaction with
   its id, before it is published.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, node_processes, settle  # noqa: E402
from bench._lib.demo import EVENT  # noqa: E402
from bench._lib.nodes import Run, require_running, run_benchmark  # noqa: E402
from bench._lib.publishers import post_many  # noqa: E402
from bench._lib.report import cpu_cell, header, print_settled, table, table_head  # noqa: E402
from components.events import Registry  # noqa: E402
from components.delivery.persistent import PersistentBook  # noqa: E402
from components.delivery.sessions import SessionInfo  # noqa: E402
from components.store.sqlite import SqliteStore  # noqa: E402
from tests.support.harness import API_KEY, GatewayNode  # noqa: E402
from tests.support.wamp import WampClient  # noqa: E402

ROOM = "bench"
QUERY = f'{EVENT} where room = "{ROOM}"'
#: The "on" switch of part 2: a persistent subscription on the class that none of the posted events matches.
SWITCH_QUERY = f'{EVENT} where room = "nobody"'
POST_BATCH = 500
LOG_SELECT = ("SELECT seq, event, id, time, data, audience, logged_at FROM event_log"
              " WHERE event = ? AND seq > ? ORDER BY seq LIMIT ?")


# ---------------------------------------------------------------------------
# Part 1: replay
# ---------------------------------------------------------------------------

@dataclass
class Replay:
    """One whole replay: every page, from last_seq until ``more`` is false."""

    total: float  # seconds
    pages: list[float]  # seconds per page (call or query)
    seqs: list[int]
    rooms: set[str] = field(default_factory=set)


@dataclass
class ReplayRow:
    path: str
    limit: int
    runs: list[Replay]
    cpu: dict[str, float]

    @property
    def total_ms(self) -> float:
        return statistics.median(r.total for r in self.runs) * 1000

    @property
    def page_ms(self) -> list[float]:
        return [p * 1000 for r in self.runs for p in r.pages]


def post_events(node: GatewayNode, events: int, noise: int) -> tuple[list[int], list[int], float]:
    """Post ``events`` of ROOM and ``noise`` of another room, spread evenly among them, 500 a request.

    The seqs of each (in order), and the seconds it took."""
    items: list[dict[str, Any]] = []
    total = events + noise
    for i in range(total):
        # Evenly spread: item i is one of ours when the share of ours so far steps up at it.
        ours = (i + 1) * events // total > i * events // total
        room = ROOM if ours else "elsewhere"
        items.append({"event": EVENT, "data": {"room": room, "text": f"missed {i}", "author": "bench"}})
    ours_seqs: list[int] = []
    noise_seqs: list[int] = []
    started = time.perf_counter()
    for first in range(0, len(items), POST_BATCH):
        chunk = items[first:first + POST_BATCH]
        r = node.request("POST", "/events/batch", json.dumps({"events": chunk}).encode(),
                         {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}, timeout=60)
        if r.status != 200:
            raise RuntimeError(f"POST /events/batch: {r.status} {str(r.body)[:200]}")
        for item, result in zip(chunk, r.body["results"], strict=True):
            if "seq" not in result:
                raise RuntimeError(f"an event was refused: {result}")
            (ours_seqs if item["data"]["room"] == ROOM else noise_seqs).append(int(result["seq"]))
    return sorted(ours_seqs), sorted(noise_seqs), time.perf_counter() - started


def replay_wamp(client: WampClient, sub_id: str, after: int, limit: int) -> Replay:
    pages: list[float] = []
    envelopes: list[dict[str, Any]] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        page = client.call("gateway.replay", sub_id, after, limit, timeout=120)
        pages.append(time.perf_counter() - t)
        if page["truncated"]:
            raise RuntimeError("replay says truncated: retention dropped events during the run")
        envelopes += page["events"]
        if not page["more"]:
            break
        after = page["next_after"]
    total = time.perf_counter() - started
    return Replay(total, pages, [e["seq"] for e in envelopes], {e["data"]["room"] for e in envelopes})


def replay_in_process(book: PersistentBook, who: SessionInfo, sub_id: str, after: int, limit: int) -> Replay:
    sub = book.get(who, sub_id)
    pages: list[float] = []
    envelopes: list[dict[str, Any]] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        page = book.replay(who, sub, after, limit)
        pages.append(time.perf_counter() - t)
        envelopes += page["events"]
        if not page["more"]:
            break
        after = page["next_after"]
    total = time.perf_counter() - started
    return Replay(total, pages, [e["seq"] for e in envelopes], {e["data"]["room"] for e in envelopes})


def select_rows(db: sqlite3.Connection, after: int, limit: int) -> Replay:
    """The class's logged rows after ``after`` (ours and the noise: what the gateway reads), paged."""
    pages: list[float] = []
    seqs: list[int] = []
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        rows = db.execute(LOG_SELECT, (EVENT, after, limit)).fetchall()
        pages.append(time.perf_counter() - t)
        seqs += [row[0] for row in rows]
        if len(rows) < limit:
            break
        after = rows[-1][0]
    total = time.perf_counter() - started
    return Replay(total, pages, seqs)


def measure_replays(path: str, limit: int, repeat: int, meter: CpuMeter, check: Callable[[Replay], None],
            run: Callable[[], Replay]) -> ReplayRow:
    runs: list[Replay] = []
    meter.start()
    for _ in range(repeat):
        replay = run()
        check(replay)
        runs.append(replay)
    cpu = meter.stop()
    row = ReplayRow(path, limit, runs, cpu)
    print(f"#   {path}, limit {limit}: " + ", ".join(f"{r.total * 1000:.0f}" for r in runs)
          + f" ms ({len(runs[0].pages)} pages each)", flush=True)
    return row


def format_replay(rows: list[ReplayRow], events: int) -> str:
    head = ("| path | page limit | events | pages | total ms | events/s | ms/page p50 | ms/page max "
            "| × sqlite3 | CPU % router / workers / this process / other |")
    cells = []
    for r in rows:
        base = next((b for b in rows if b.path.startswith("sqlite3") and b.limit == r.limit), None)
        ratio = f"{r.total_ms / base.total_ms:.1f}" if base is not None and base is not r else ""
        got = len(r.runs[0].seqs)
        shown = f"{got:,}" if got == events else f"{got:,} rows"
        cells.append([r.path, f"{r.limit:,}", shown, str(len(r.runs[0].pages)), f"{r.total_ms:,.1f}",
                      f"{events / (r.total_ms / 1000):,.0f}", f"{statistics.median(r.page_ms):.2f}",
                      f"{max(r.page_ms):.2f}", ratio, cpu_cell(r.cpu, ("router", "workers", "publisher", "other"))])
    return table(head, cells)


def part_replay(node: GatewayNode, args: argparse.Namespace, meter: CpuMeter) -> list[ReplayRow]:
    with WampClient(node.ws_url, serializer=args.serializer) as first:
        token = str(first.authextra_welcome["client_token"])
        sub = first.call("gateway.subscribe", QUERY, persistent=True)
    sub_id, last_seq = str(sub["id"]), int(sub["last_seq"])
    print(f"# persistent subscription {sub_id} (last_seq {last_seq}); client gone", flush=True)

    ours, noise, seconds = post_events(node, args.events, args.noise)
    print(f"# posted {len(ours):,} events of room {ROOM!r} and {len(noise):,} of another room in "
          f"{seconds:.1f}s ({(len(ours) + len(noise)) / seconds:,.0f} events/s, {POST_BATCH} a request, "
          "one request at a time, logged)", flush=True)
    everything = sorted(ours + noise)

    def check_events(replay: Replay) -> None:
        if replay.seqs != ours or replay.rooms - {ROOM}:
            raise AssertionError(f"replay gave {len(replay.seqs)} events (rooms {sorted(replay.rooms)}), "
                                 f"expected the {len(ours)} posted of room {ROOM!r} in seq order")

    def check_rows(replay: Replay) -> None:
        if replay.seqs != everything:
            raise AssertionError(f"the log gave {len(replay.seqs)} rows, expected {len(everything)}")

    rows: list[ReplayRow] = []
    store_file = node.workdir / "store.sqlite3"
    registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
    with WampClient(node.ws_url, serializer=args.serializer, authextra={"client_token": token}) as again:
        if again.authextra_welcome.get("client_token") != token:
            raise RuntimeError("the gateway did not take the client token back")
        listed = [s for s in again.call("gateway.subscriptions") if s.get("id") == sub_id]
        if not listed or listed[0]["last_seq"] != last_seq:
            raise RuntimeError(f"the subscription is not listed as made: {listed}")
        # The first replay of all, not reported: it pays for what is cold (pages of the store file
        # in the dispatcher's connection, first calls); printed so that it is not hidden.
        cold = replay_wamp(again, sub_id, last_seq, args.limits[0])
        check_events(cold)
        print(f"# first replay (cold, not in the table): {cold.total * 1000:.0f} ms at limit {args.limits[0]}",
              flush=True)
        for limit in args.limits:
            rows.append(measure_replays(f"gateway.replay over WAMP ({args.serializer})", limit, args.repeat, meter,
                                        check_events, partial(replay_wamp, again, sub_id, last_seq, limit)))

        who = SessionInfo(session=again.session_id, authid=str(again.details.authid),
                          authrole=str(again.details.authrole), user=None, roles=(), client_token=token)
        # A second store connection on the node's file, as a second component container opens it.
        store = SqliteStore(store_file)
        try:
            book = PersistentBook(store, lambda: registry, lambda: 0)
            for limit in args.limits:
                rows.append(measure_replays("in-process PersistentBook.replay", limit, args.repeat, meter,
                                            check_events, partial(replay_in_process, book, who, sub_id, last_seq, limit)))
        finally:
            store.close()

        db = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
        try:
            for limit in args.limits:
                rows.append(measure_replays("sqlite3 SELECT of the class's rows", limit, args.repeat, meter,
                                            check_rows, partial(select_rows, db, last_seq, limit)))
        finally:
            db.close()
        # Part 2 starts with no persistent subscription on the class.
        again.call("gateway.unsubscribe", sub_id)
    return rows


# ---------------------------------------------------------------------------
# Part 2: ingest with the event log off and on
# ---------------------------------------------------------------------------

@dataclass
class IngestRow:
    request: str
    persistence: str
    rate: float
    logged: int
    errors: dict[str, int]
    cpu: dict[str, float]


def _logged_since(db: sqlite3.Connection, after: int) -> tuple[int, int]:
    """(rows of the event log with seq > after, the highest seq logged)."""
    count, top = db.execute("SELECT count(*), coalesce(max(seq), 0) FROM event_log WHERE seq > ?",
                            (after,)).fetchone()
    return int(count), max(after, int(top))


def part_ingest(node: GatewayNode, args: argparse.Namespace, meter: CpuMeter) -> list[IngestRow]:
    data = {"room": "ingest", "text": "hello from the benchmark", "author": "bench"}
    single = json.dumps({"event": EVENT, "data": data}).encode()
    batch = json.dumps({"events": [{"event": EVENT, "data": data}] * args.batch}).encode()
    kinds = [("single", b"/events", single, 1), (f"batch of {args.batch}", b"/events/batch", batch, args.batch)]
    rows: list[IngestRow] = []
    db = sqlite3.connect(f"file:{node.workdir / 'store.sqlite3'}?mode=ro", uri=True)
    switch = WampClient(node.ws_url).connect()
    on_id: str | None = None
    try:
        _, high = _logged_since(db, 0)
        # One second through the whole path, not reported (first-use costs).
        asyncio.run(post_many(node.bridge_port, b"/events", single, 1, args.concurrency, 1.0))
        for label, path, body, per in kinds:
            for state in ("off", "on", "on", "off"):
                if state == "on" and on_id is None:
                    on_id = str(switch.call("gateway.subscribe", SWITCH_QUERY, persistent=True)["id"])
                elif state == "off" and on_id is not None:
                    switch.call("gateway.unsubscribe", on_id)
                    on_id = None
                require_running(node)
                meter.start()
                rate, errors = asyncio.run(post_many(node.bridge_port, path, body, per, args.concurrency,
                                                     args.duration))
                cpu = meter.stop()
                logged, high = _logged_since(db, high)
                rows.append(IngestRow(label, state, rate, logged, errors, cpu))
                print(f"#   {label}, log {state}: {rate:,.0f} events/s, {logged:,} logged"
                      + (f", errors {errors}" if errors else ""), flush=True)
                if (state == "off") != (logged == 0):
                    raise AssertionError(f"log {state}, yet {logged} events were logged")
    finally:
        if on_id is not None:
            switch.call("gateway.unsubscribe", on_id)
        switch.close()
        db.close()
    return rows


def format_ingest(rows: list[IngestRow]) -> str:
    head = ("| request | event log | events/s | on / off | each row events/s | events logged "
            "| CPU % router / workers / this process / other |")
    lines = table_head(head)
    merged: dict[tuple[str, str], list[IngestRow]] = {}
    for r in rows:
        merged.setdefault((r.request, r.persistence), []).append(r)
    for (request, state), group in merged.items():
        rate = statistics.fmean(r.rate for r in group)
        off = statistics.fmean(r.rate for r in merged[(request, "off")])
        ratio = f"{rate / off:.2f}" if state == "on" else ""
        keys = ("router", "workers", "publisher", "other")
        cpu = cpu_cell({k: statistics.fmean(r.cpu.get(k, 0) for r in group) for k in keys}, keys)
        each = " / ".join(f"{r.rate:,.0f}" for r in group)
        logged = f"{sum(r.logged for r in group):,}"
        lines.append(f"| {request} | {state} | {rate:,.0f} | {ratio} | {each} | {logged} | {cpu} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=10_000, help="missed events to replay (default 10,000)")
    p.add_argument("--noise", type=int, default=None,
                   help="events of another room among them, which the replay skips (default: as many as --events)")
    p.add_argument("--limits", default="500,5000", help="comma-separated replay page limits (default 500,5000)")
    p.add_argument("--repeat", type=int, default=3, help="replays per row; the table shows the median (default 3)")
    p.add_argument("--serializer", choices=("json", "msgpack", "cbor"), default="json",
                   help="the replaying client's WAMP serializer (default json, as the browser)")
    p.add_argument("--duration", type=float, default=6.0, help="seconds per ingest row (default 6)")
    p.add_argument("--batch", type=int, default=100, help="events per POST /events/batch in part 2 (default 100)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight in part 2 (default 16)")
    args = p.parse_args(argv)
    if args.noise is None:
        args.noise = args.events
    try:
        args.limits = [int(x) for x in args.limits.split(",") if x.strip()]
    except ValueError:
        p.error("--limits takes comma-separated integers, e.g. 500,5000")
    if not args.limits or min(args.limits) < 1 or max(args.limits) > 5000:
        p.error("--limits: each between 1 and 5000 (the gateway's maximum page)")
    if args.events < 1 or args.noise < 0 or args.repeat < 1:
        p.error("--events and --repeat must be positive, --noise at least 0")
    if args.duration <= 0 or args.concurrency < 1 or not 1 <= args.batch <= 1000:
        p.error("--duration and --concurrency must be positive, --batch between 1 and 1000")
    return args


def measure(run: Run, args: argparse.Namespace) -> str:
    print(header("persistence", f"{args.events:,} events + {args.noise:,} noise, limits {args.limits}, "
                 f"{args.repeat} replays per row; ingest {args.duration:g}s per row, {args.concurrency} in flight"),
          flush=True)
    node = run.gateway()
    assert node.process is not None
    groups = node_processes(node.process.pid)
    print_settled("before the first row", *settle(groups))
    meter = CpuMeter(groups)
    print("# part 1: replay", flush=True)
    replay_rows = part_replay(node, args, meter)
    require_running(node)
    print("# part 2: ingest, event log off / on", flush=True)
    ingest_rows = part_ingest(node, args, meter)

    report = [f"Replay of {args.events:,} missed events of one room (among {args.events + args.noise:,} "
              f"logged events of the class), median of {args.repeat}\n",
              format_replay(replay_rows, args.events),
              f"\nIngest of {EVENT}, {args.concurrency} requests in flight, {args.duration:g} s per row, "
              "rows off, on, on, off; events/s is the mean of the two rows\n",
              format_ingest(ingest_rows),
              ""]
    for r in replay_rows:
        if r.path.startswith("gateway") and r.limit == args.limits[0]:
            per_10k = r.total_ms / args.events * 10_000
            report.append(f"# target, replay of 10k missed events under 1 s: limit {r.limit}: {r.total_ms:,.0f} ms "
                          f"for {args.events:,} (≈ {per_10k:,.0f} ms per 10k): "
                          + ("met" if per_10k < 1000 else "NOT met"))
    for request in dict.fromkeys(r.request for r in ingest_rows):
        on = statistics.fmean(r.rate for r in ingest_rows if r.request == request and r.persistence == "on")
        off = statistics.fmean(r.rate for r in ingest_rows if r.request == request and r.persistence == "off")
        report.append(f"# target, ingest with the log on > 0.5 × off: {request}: {on / off:.2f}: "
                      + ("met" if on / off > 0.5 else "NOT met"))
    return "\n".join(report)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
