"""Overload benchmark: bursts of simultaneous ``POST /events``, each answered within seconds, none accepted lost.

    .venv/bin/python bench/overload.py                          # about 2 min
    .venv/bin/python bench/overload.py --bursts 1000,4000 --max-in-flight 500

One gateway node (tests/support/harness.py) and one WAMP subscriber keeping the id of every event
it gets (bench/_lib/subscribers.py). For each burst size N, N clients connect at the same moment
(asyncio, raw HTTP/1.1 on loopback, one connection each, ``Connection: close``) and each posts one
demo.message as soon as it is connected. Per burst it prints:

- what the answers were: accepted (202), refused 503 (``overloaded``, with Retry-After) and 429,
  anything else (another status, a 503/429 without Retry-After, a connection error, no answer
  within ``--timeout``);
- latency of the answers, from the moment each request was sent, and the time from the first
  request sent to the last answer (the target: every request answered within 5 s). This process
  alone creates the 12,000 connections: its event loop spends about 2.4 s on that before the first
  request goes out, time the gateway never sees. The table also shows the last answer counted from
  the start of the burst, that ramp included (what the rows before stop 20 showed);
- whether every accepted event reached the subscriber (by id);
- resident memory of the router and of each component container: before the burst, the peak
  during it (sampled every 50 ms) and after it settled (CPU back to idle); the target: after
  within 20 % of where the run started (after a warm-up burst of ``--warm-up`` requests, not
  reported, which gets the first-use costs of every code path out of the way).

The rows "before (issue 14)" are what the same kind of burst did before the bridge had an
in-flight limit (issue 14, table row 4). This process is the clients: on a 2-core machine it
competes with the gateway for the CPU while it connects, which the "other" CPU figure shows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, node_processes, process_title, settle  # noqa: E402
from bench._lib.demo import EVENT  # noqa: E402
from bench._lib.nodes import Run, require_running, run_benchmark  # noqa: E402
from bench._lib.report import cpu_cell, header, print_settled, table  # noqa: E402
from bench._lib.stats import nearest_rank  # noqa: E402
from bench._lib.subscribers import SubscriberPool  # noqa: E402
from bench._lib.websocket import HOST  # noqa: E402
from components.envelope import new_event_id  # noqa: E402
from tests.support.harness import API_KEY, GatewayNode  # noqa: E402

#: The issue's target: every request of the burst answered within this many seconds.
TARGET_SECONDS = 5.0
#: ... and memory back within this share of where it started.
MEMORY_TARGET = 0.20
#: How often the memory of the node's processes is sampled during a burst.
RSS_EVERY = 0.05
#: Waiting for the subscriber to have every accepted event, at most.
DELIVERY_LIMIT = 60.0
_PAGE = os.sysconf("SC_PAGE_SIZE")

#: Issue 14, table row 4: 12,000 requests at once before the bridge had these limits (the rows "before").
BEFORE_ANSWERS = {12_000: ["12000", "0", "0", "0", "", "", "20 s", "20 s", "no (8,006 over 10 s)", "all", "20 s"]}
BEFORE_MEMORY = {12_000: "no: containers +85 / +59 MB, kept afterwards"}


@dataclass
class Answer:
    status: int  # 0: no answer (the reason is in ``error``)
    retry_after: bool
    id: str | None
    started: float  # when the client began to connect
    answered: float
    error: str = ""
    sent: float = 0.0  # when the request was written (0: never connected)


@dataclass
class Burst:
    size: int
    answers: list[Answer]
    start: float
    delivered: int
    accepted_ids: set[str]
    rss: dict[str, tuple[int, int, int]]  # group -> (before, peak, after) bytes
    cpu: dict[str, float]
    #: How long the CPU was measured: the burst, from its start to its last answer.
    seconds: float
    notes: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        return sum(1 for a in self.answers if a.status == status and (status == 202 or a.retry_after))

    @property
    def other(self) -> int:
        return len(self.answers) - self.count(202) - self.count(503) - self.count(429)


# -- the clients ----------------------------------------------------------------------------------------------


class _Post(asyncio.Protocol):
    """One client: sends its request once connected, reads the one answer (the bridge closes after it)."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self._request = request
        self._done = done
        self._buffer = bytearray()
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.sent = time.monotonic()
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head, sep, body = bytes(self._buffer).partition(b"\r\n\r\n")
        if not sep:
            return
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length:")), 0)
        if len(body) >= length and not self._done.done():
            self._done.set_result(bytes(self._buffer))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(ConnectionError(f"closed before the answer ({exc or 'by the bridge'})"))


def _request(port: int, body: bytes) -> bytes:
    return (b"POST /events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (HOST.encode(), port, API_KEY.encode(), len(body), body))


async def _one(port: int, room: str, timeout: float) -> Answer:
    loop = asyncio.get_running_loop()
    event_id = new_event_id()
    body = ('{"event":"%s","id":"%s","data":{"room":"%s","text":"%.6f","author":"bench"}}'
            % (EVENT, event_id, room, time.monotonic())).encode()
    done: asyncio.Future[bytes] = loop.create_future()
    started = time.monotonic()
    transport: asyncio.BaseTransport | None = None
    protocol = _Post(_request(port, body), done)
    try:
        transport, _ = await asyncio.wait_for(loop.create_connection(lambda: protocol, HOST, port), timeout)
        raw = await asyncio.wait_for(done, max(0.1, timeout - (time.monotonic() - started)))
    except (OSError, asyncio.TimeoutError) as exc:
        reason = "no answer within the timeout" if isinstance(exc, asyncio.TimeoutError) else \
            f"{type(exc).__name__}: {exc}"
        return Answer(0, False, None, started, time.monotonic(), reason[:100], protocol.sent)
    finally:
        if transport is not None:
            transport.close()
    answered = time.monotonic()
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
    status = int(head[0].split()[1])
    retry_after = any(line.lower().startswith(b"retry-after:") for line in head[1:])
    return Answer(status, retry_after, event_id if status == 202 else None, started, answered, sent=protocol.sent)


async def burst(port: int, size: int, room: str, timeout: float) -> tuple[float, list[Answer]]:
    start = time.monotonic()
    answers = await asyncio.gather(*(_one(port, room, timeout) for _ in range(size)))
    return start, list(answers)


# -- memory ----------------------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def memory_groups(node: GatewayNode) -> dict[str, list[int]]:
    """``router`` and each component container by its title (``components-1``, ...)."""
    assert node.process is not None
    groups = node_processes(node.process.pid)
    out: dict[str, list[int]] = {"router": groups["router"]}
    for pid in groups["workers"]:
        title = process_title(pid) or ""
        if title.startswith("gateway "):
            out[title.removeprefix("gateway ")] = [pid]
    return out


class PeakSampler:
    """Samples the groups' RSS every RSS_EVERY seconds on a thread, keeping the highest of each."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self.peak = {name: 0 for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY):
            self.sample()

    def sample(self) -> None:
        for name, pids in self._groups.items():
            self.peak[name] = max(self.peak[name], sum(rss(p) for p in pids))

    def __enter__(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def current(groups: dict[str, list[int]]) -> dict[str, int]:
    return {name: sum(rss(p) for p in pids) for name, pids in groups.items()}


# -- the run ---------------------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(f"# only {target} file descriptors (hard limit): a burst of more connections fails on this "
                  "side", flush=True)


def wait_for_ids(pool: SubscriberPool, room: str, accepted: set[str]) -> int:
    """How many of the accepted ids reached the subscriber, waiting for them (bounded)."""
    deadline = time.monotonic() + DELIVERY_LIMIT
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = pool.ids(room)
        if accepted <= seen:
            break
        time.sleep(0.25)
    return len(accepted & seen)


def measure(run: Run, args: argparse.Namespace) -> str:
    limit = f"bridge.max_in_flight {args.max_in_flight}" if args.max_in_flight else "bridge.max_in_flight default"
    print(header("overload", f"bursts {', '.join(map(str, args.bursts))}, {limit}, one connection per request, "
                 f"timeout {args.timeout:g}s"), flush=True)
    raise_fd_limit(max(args.bursts) + 1024)
    bridge: dict[str, object] = {}
    if args.max_in_flight:
        bridge["max_in_flight"] = args.max_in_flight
        bridge["max_batch"] = min(1000, args.max_in_flight)
    node = run.gateway({"bridge": bridge} if bridge else None)
    assert node.process is not None
    pool = run.subscribers(node.router_port, 1, 1, "json", collect_ids=True)
    groups = memory_groups(node)
    node_groups = node_processes(node.process.pid)
    if args.warm_up:
        asyncio.run(burst(node.bridge_port, args.warm_up, f"warm-up-{uuid.uuid4().hex[:6]}", args.timeout))
    print_settled("before the first burst", *settle(node_groups, limit=60))
    at_start = current(groups)
    results: list[Burst] = []
    for size in args.bursts:
        room = f"burst-{size}-{uuid.uuid4().hex[:6]}"
        before = current(groups)
        meter = CpuMeter(node_groups)
        meter.start()
        with PeakSampler(groups) as sampler:
            start, answers = asyncio.run(burst(node.bridge_port, size, room, args.timeout))
        cpu = meter.stop()
        seconds = time.monotonic() - start
        require_running(node)
        accepted = {a.id for a in answers if a.id is not None}
        delivered = wait_for_ids(pool, room, accepted)
        print_settled(f"after the burst of {size}", *settle(node_groups, limit=60))
        after = current(groups)
        result = Burst(size, answers, start, delivered, accepted,
                       {g: (before[g], sampler.peak[g], after[g]) for g in groups}, cpu, seconds)
        errors: dict[str, int] = {}
        for a in answers:
            if a.status not in (202, 503, 429) or (a.status != 202 and not a.retry_after):
                key = a.error or f"HTTP {a.status}{'' if a.retry_after else ' without Retry-After'}"
                errors[key] = errors.get(key, 0) + 1
        result.notes = [f"x{n} {why}" for why, n in sorted(errors.items(), key=lambda kv: -kv[1])]
        results.append(result)
        last = max(a.answered for a in answers) - start
        first_sent = min((a.sent for a in answers if a.sent), default=start) - start
        print(f"#   burst {size}: {result.count(202)} accepted, {result.count(503)} 503, {result.count(429)} 429, "
              f"{result.other} other; first request sent after {first_sent:.1f}s, last answer after {last:.1f}s; "
              f"delivered {delivered}/{len(accepted)}", flush=True)
        for note in result.notes[:5]:
            print(f"#     other: {note}", flush=True)
    return format_tables(results, list(groups), at_start)


def _seconds(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _mb(x: int) -> str:
    return f"{x / 2**20:.0f}"


def format_tables(results: list[Burst], groups: list[str], start: dict[str, int]) -> str:
    head = ("| burst | accepted | 503 | 429 | other | latency p50 | p99 | max | last answer | "
            f"within {TARGET_SECONDS:g} s | delivered/accepted | last answer from the burst's start |")
    rows = []
    for r in results:
        latencies = [a.answered - a.sent for a in r.answers if a.status]
        first_sent = min((a.sent for a in r.answers if a.sent), default=r.start)
        last = max(a.answered for a in r.answers) - first_sent
        rows.append([f"{r.size:,}", str(r.count(202)), str(r.count(503)), str(r.count(429)), str(r.other),
                     _seconds(nearest_rank(latencies, 0.5)), _seconds(nearest_rank(latencies, 0.99)),
                     _seconds(max(latencies, default=float("nan"))), _seconds(last),
                     "yes" if last <= TARGET_SECONDS and r.other == 0 else "no",
                     f"{r.delivered}/{len(r.accepted_ids)}", _seconds(max(a.answered for a in r.answers) - r.start)])
        if r.size in BEFORE_ANSWERS:
            rows.append([f"{r.size:,} before (issue 14)", *BEFORE_ANSWERS[r.size]])
    memory_head = ("| burst | " + " | ".join(f"{g} MB before / peak / after" for g in groups)
                   + f" | after within {MEMORY_TARGET:.0%} of the start | CPU % "
                   + " / ".join(["router", "workers", "bench", "other"]) + " | CPU s node / bench |")
    memory_rows = []
    for r in results:
        back = all(r.rss[g][2] <= start[g] * (1 + MEMORY_TARGET) for g in groups)
        node_seconds = (r.cpu.get("router", 0) + r.cpu.get("workers", 0)) * r.seconds / 100
        memory_rows.append([f"{r.size:,}", *(" / ".join(_mb(v) for v in r.rss[g]) for g in groups),
                            "yes" if back else "no", cpu_cell(r.cpu, ("router", "workers", "publisher", "other")),
                            f"{node_seconds:.1f} / {r.cpu.get('publisher', 0) * r.seconds / 100:.1f}"])
        if r.size in BEFORE_MEMORY:
            memory_rows.append([f"{r.size:,} before (issue 14)", *([""] * len(groups)), BEFORE_MEMORY[r.size], "", ""])
    return table(head, rows) + "\n\n" + table(memory_head, memory_rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--bursts", default="1000,4000,12000", help="comma-separated burst sizes (default 1000,4000,12000)")
    p.add_argument("--max-in-flight", type=int, default=0,
                   help="bridge.max_in_flight of the node (default: the gateway's default)")
    p.add_argument("--warm-up", type=int, default=500,
                   help="requests of an unreported first burst (default 500; 0: none)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a client waits for its answer before counting it as none (default 60)")
    args = p.parse_args(argv)
    try:
        args.bursts = [int(x) for x in args.bursts.split(",") if x.strip()]
    except ValueError:
        p.error("--bursts takes comma-separated integers, e.g. 1000,4000")
    if not args.bursts or min(args.bursts) < 1 or args.max_in_flight < 0 or args.timeout <= 0 or args.warm_up < 0:
        p.error("--bursts must be positive, --max-in-flight and --warm-up at least 0, --timeout positive")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
