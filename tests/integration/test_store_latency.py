"""The reactor thread never waits on the store: a node whose PostgreSQL store is 200 ms away.

The node's store is PostgreSQL (a schema of the test's own, dropped afterwards) behind ``SlowProxy``,
a TCP proxy on loopback that holds every chunk the server sends for ``DELAY`` seconds: each store
round trip takes at least that long. While 50 events and some subscription bookkeeping are in
flight (clients' subscribe, the authorizer's look-up, list and unsubscribe; a web-app's POST, GET
and DELETE /subscriptions):

- calls that need no store (``gateway.catalog``, ``gateway.whoami``, ``GET /healthz``, ``GET
  /catalog``), probed one after the other while both are in flight, answer well within one round
  trip (median, and nine in ten): a component whose reactor thread ran a store statement would
  hold them all (its container's bridge and authenticator too) for at least one;
- 50 concurrent ``POST /events`` wait for their own store round trips (their batches go together),
  not for everyone else's: together in far less than 50 round trips.

And a statement that runs past ``store.statement_timeout`` (a table locked by someone else) fails
its event with a 503 saying so, instead of holding its store thread.

The bounds are behavioural and generous (a shared 2-core machine): the calls in milliseconds
against a round trip of 200 (a few hiccups allowed), the burst against 50 round trips. Nothing
waits on a fixed sleep; the proxy's delay is the latency it adds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest

from tests.integration.conftest import POSTGRESQL_URL, postgresql_schema
from tests.support.tcpproxy import LoopServer
from tests.support.harness import API_KEY, GatewayNode, remove_workdir, temp_workdir
from tests.support.wamp import WampClient

#: Seconds the proxy holds each chunk the server sends: one store round trip at least.
DELAY = 0.2
EVENTS = 50
#: A call that needs no store answers within this, as the median of its samples (a store round trip: 200),
#: and nine in ten within DELAY.
NO_STORE_MEDIAN = 0.150
#: Samples of each such call taken while the events and the bookkeeping were in flight, at least.
MIN_SAMPLES = 5
#: Of all those calls, how many may take DELAY or longer: a hiccup of a shared machine, not a store
#: round trip (a reactor thread held by one holds every call to its container meanwhile).
MOST_SLOW = 3
#: The node's statement timeout: far above what any statement of this test takes at the server.
STATEMENT_TIMEOUT = 2.0


class SlowProxy(LoopServer):
    """A TCP proxy on 127.0.0.1 to ``target``: what the client sends goes through at once; every chunk
    the server sends is held ``delay`` seconds (in order) before it is passed on. On its own asyncio
    loop in a thread; ``chunks`` counts those passed on."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        super().__init__("slow-proxy")
        self.target = target
        self.delay = delay
        self.chunks = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        server_writer: asyncio.StreamWriter | None = None
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(self._forward(client_reader, server_writer),
                                 self._held(server_reader, client_writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    @staticmethod
    async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    async def _held(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))  # the latency this proxy is for
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                self.chunks += 1
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, chunk))
            queue.put_nowait((loop.time() + self.delay, b""))
            await delivering
        finally:
            delivering.cancel()


@pytest.fixture(scope="module")
def slow_node() -> Iterator[tuple[GatewayNode, SlowProxy]]:
    """A node whose PostgreSQL store (a schema of its own) is DELAY seconds per round trip away."""
    parsed = urlparse(POSTGRESQL_URL)
    target = (parsed.hostname or "127.0.0.1", parsed.port or 5432)
    try:
        psycopg.connect(POSTGRESQL_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {target[0]}:{target[1]}: {str(exc).strip()}")
    # The node starts with the proxy passing everything at once (its start, a few hundred round trips, would
    # take 20 s at DELAY each); the delay applies from then on, to every round trip the test measures.
    with postgresql_schema() as store, SlowProxy(target, 0.0) as proxy:
        proxied = POSTGRESQL_URL.replace(parsed.netloc.rpartition("@")[2], f"127.0.0.1:{proxy.port}", 1)
        workdir = temp_workdir()
        # The prober calls as fast as it is answered: no rate limit in its way.
        unlimited = {"calls_per_second": 1_000_000, "call_burst": 1_000_000}
        node = GatewayNode(workdir, extra_config={"queries": unlimited, "store": {**store, "url": proxied,
                                                            "statement_timeout": STATEMENT_TIMEOUT}})
        try:
            node.start(timeout=240)
            proxy.delay = DELAY
            yield node, proxy
        finally:
            node.stop()
            remove_workdir(workdir)


def post_event(node: GatewayNode, event_id: str, text: str) -> tuple[float, int, Any]:
    """(seconds it took, status, body) of one POST /events."""
    started = time.perf_counter()
    r = node.request("POST", "/events", json.dumps(
        {"event": "demo.message", "id": event_id, "data": {"room": "latency", "text": text, "author": "t"}}).encode(),
        {"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    return time.perf_counter() - started, r.status, r.body


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bookkeeping(client: WampClient, room: str) -> None:
    """A client's subscription bookkeeping: subscribe (and the authorizer's look-up), list, unsubscribe."""
    for round_ in range(2):
        sub = client.call("gateway.subscribe", f"demo.message where room = '{room}-{round_}'", timeout=60)
        client.subscribe(sub["topic"], timeout=60)
        for _ in range(3):
            assert sub["id"] in [s["id"] for s in client.call("gateway.subscriptions", timeout=60)]
        client.call("gateway.unsubscribe", sub["id"], timeout=60)


def web_app(node: GatewayNode, user: str) -> None:
    """A web-app's: POST /subscriptions (a persistent subscription for a user, made between batches), GET, DELETE."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    r = node.request("POST", "/subscriptions", json.dumps({"user": user, "query": "test.notice",
                                                           "persistent": True}).encode(), auth, timeout=60)
    assert r.status == 201, (r.status, r.body)
    for _ in range(3):
        listed = node.request("GET", f"/subscriptions?user={user}", headers=auth, timeout=60)
        assert [s["id"] for s in listed.body["subscriptions"]] == [r.body["id"]], listed.body
    assert node.request("DELETE", f"/subscriptions/{r.body['id']}", headers=auth, timeout=60).status == 200


def test_calls_that_need_no_store_answer_at_once_and_events_wait_for_their_own_round_trips(
        slow_node: tuple[GatewayNode, SlowProxy]) -> None:
    node, proxy = slow_node
    # Connected (logins go to the store) and warmed up (the first block of seq numbers) beforehand.
    with WampClient(node.ws_url) as prober, WampClient(node.ws_url) as a, WampClient(node.ws_url) as b, \
            WampClient(node.ws_url) as c:
        assert post_event(node, "warm-up", "first")[1] == 202
        chunks_before = proxy.chunks
        probes: dict[str, Callable[[], Any]] = {
            "gateway.catalog": lambda: prober.call("gateway.catalog"),
            "gateway.whoami": lambda: prober.call("gateway.whoami"),
            "GET /healthz": lambda: node.get("/healthz"),
            "GET /catalog": lambda: node.request("GET", "/catalog", headers={"Authorization": f"Bearer {API_KEY}"}),
        }
        samples: dict[str, list[float]] = {name: [] for name in probes}

        with ThreadPoolExecutor(max_workers=EVENTS + 8) as pool:
            started = time.perf_counter()
            posts: list[Future[tuple[float, int, Any]]] = [
                pool.submit(post_event, node, f"burst-{i}", f"event {i}") for i in range(EVENTS)]
            work = [pool.submit(bookkeeping, client, room) for client, room in ((a, "a"), (b, "b"), (c, "c"))]
            work.append(pool.submit(web_app, node, "lat-1"))

            def in_flight() -> bool:
                """Both events and bookkeeping are in flight."""
                return not all(p.done() for p in posts) and not all(w.done() for w in work)

            # Probe, one call at a time, while both are in flight.
            while in_flight():
                for name, call in probes.items():
                    took = timed(call)
                    if in_flight():
                        samples[name].append(took)
            answers = [p.result() for p in posts]
            burst = time.perf_counter() - started
            for w in work:
                w.result()

    latencies = sorted(took for took, _, _ in answers)
    medians = {name: statistics.median(taken) if taken else float("nan") for name, taken in samples.items()}
    p90s = {name: statistics.quantiles(taken, n=10)[-1] if len(taken) > 1 else float("nan")
            for name, taken in samples.items()}
    print(f"\nstore round trip >= {DELAY * 1000:.0f} ms; {EVENTS} concurrent POST /events: all answered in "
          f"{burst * 1000:.0f} ms (median {statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f}"
          f" ms); {proxy.chunks - chunks_before} store answers held meanwhile")
    for name, taken in samples.items():
        print(f"  {name}: median {medians[name] * 1000:.1f} ms, 90th percentile {p90s[name] * 1000:.1f} ms, max "
              f"{max(taken, default=float('nan')) * 1000:.1f} ms, {len(taken)} calls, "
              f"{sum(t >= DELAY for t in taken)} of them {DELAY * 1000:.0f} ms or longer")

    assert all(status == 202 for _, status, _ in answers), [a for a in answers if a[1] != 202]
    seqs = [body["seq"] for _, _, body in answers]
    assert len(set(seqs)) == EVENTS, "each event its own seq"
    assert proxy.chunks > chunks_before, "the store was reached through the proxy meanwhile"
    for name, taken in samples.items():
        assert len(taken) >= MIN_SAMPLES, f"{name}: only {len(taken)} calls while the work was in flight"
        assert medians[name] < NO_STORE_MEDIAN, (
            f"{name} took {medians[name] * 1000:.0f} ms (median): it waited for a store round trip")
        assert p90s[name] < DELAY, (
            f"{name}: one call in ten or more took a store round trip or longer ({p90s[name] * 1000:.0f} ms)")
    slow = sum(t >= DELAY for taken in samples.values() for t in taken)
    assert slow <= MOST_SLOW, f"{slow} calls that need no store took a store round trip or longer"
    assert burst < EVENTS * DELAY / 2, (
        f"{EVENTS} concurrent events took {burst:.1f} s: they waited for each other's store round trips")
    assert "StoreOnReactorThread" not in node.log_text(), "a store statement was tried on a reactor thread"


def test_a_statement_past_the_statement_timeout_is_a_503_not_a_hang(slow_node: tuple[GatewayNode, SlowProxy]) -> None:
    node, _ = slow_node
    schema = node.extra_config["store"]["schema_name"]
    with psycopg.connect(POSTGRESQL_URL, autocommit=False) as holder:
        # Held until the rollback: the event's look-up of its id waits for it, and is cancelled.
        holder.execute(f'LOCK TABLE "{schema}".event_ids IN ACCESS EXCLUSIVE MODE')
        took, status, body = post_event(node, "locked-out", "waits for a lock")
        holder.rollback()
    assert status == 503, (status, body)
    assert body["error"] == "unavailable" and "statement_timeout" in body["message"], body
    assert took < STATEMENT_TIMEOUT + 20 * DELAY, f"answered after {took:.1f} s"
    took, status, body = post_event(node, "locked-out", "once the lock is gone")
    assert status == 202 and body.get("duplicate") is not True, (status, body)
