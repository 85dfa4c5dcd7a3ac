"""The JS client given a list of router URLs moves to another node by itself (clients/js/README.md, *Several nodes*).

Two independent real nodes, each with its own store (no cluster is needed to see the client move):
the client is given both URLs, connects to one (drawn at random: call it A), and subscribes; A is
stopped; the client must come to B by itself, restore its subscription there, and receive an event
posted to B. Nothing is posted to A: independent nodes number their events each from 1, and the
client drops an event whose seq is not above the last it handed over (in a cluster seq is shared).

Then the contract's real case (issue 17): a cluster of two nodes on one PostgreSQL store, events posted
to both, the client's node SIGKILLed as a whole while events keep coming to the other; the client moves
there by itself and its persistent subscription hands over every event answered 202, once, in seq order.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest

from tests.integration.conftest import postgresql_schema
from tests.integration.test_cluster import start_cluster, stop_cluster
from tests.support.jsclient import NodeLines
from tests.support.harness import GatewayNode, remove_workdir, temp_workdir

pytestmark = pytest.mark.integration

#: What both clients do first: the Gateway on the URLs given (quick retries), printing "OPEN <url>",
#: "LOST <url> <reason>", "RESUMED <url>", "ERROR ...", "CLOSED ..."; exits after 180 s whatever happens.
_CONNECTED = """
import autobahn from 'autobahn';
import { Gateway } from './clients/js/src/gateway.js';
autobahn.log.warn = () => {};  // autobahn's own lines on every closed connection
const [urls, ...args] = [JSON.parse(process.argv[1]), ...process.argv.slice(2)];
const say = (line) => process.stdout.write(`${line}\\n`);
const gw = new Gateway({ url: urls, autobahn, reconnect: { initialDelay: 0.1, maxDelay: 1 } });
gw.on('open', (d) => say(`OPEN ${d.url}`));
gw.on('lost', (d) => say(`LOST ${d.url} ${d.reason}`));
gw.on('resumed', (d) => say(`RESUMED ${d.url}`));
gw.on('error', (e) => say(`ERROR ${e.uri ?? ''} ${e.message}`));
gw.on('closed', (d) => { say(`CLOSED ${d.reason}`); process.exit(1); });
setTimeout(() => { say('CLOSED timeout'); process.exit(1); }, 180_000).unref();
await gw.connect();
"""

#: One query subscription (the first argument after the URLs): prints "EVENT <envelope>", then "SUBSCRIBED".
CLIENT = _CONNECTED + """
await gw.subscribe(args[0], (envelope) => say(`EVENT ${JSON.stringify(envelope)}`));
say('SUBSCRIBED');
"""

#: A PERSISTENT query subscription and a plain one (the two arguments after the URLs): prints
#: "PERSISTENT <envelope>", "PLAIN <envelope>", "GAP <seq>", "REMOVED <reason>", then "SUBSCRIBED".
CLUSTER_CLIENT = _CONNECTED + """
await gw.subscribe(args[0], (envelope) => say(`PERSISTENT ${JSON.stringify(envelope)}`), {
  persistent: true,
  onGap: ({ afterSeq }) => say(`GAP ${afterSeq}`),
  onRemoved: ({ reason }) => say(`REMOVED ${reason}`),
});
await gw.subscribe(args[1], (envelope) => say(`PLAIN ${JSON.stringify(envelope)}`));
say('SUBSCRIBED');
"""


class Client(NodeLines):
    """A client script in a Node process of its own; its lines in a queue, read by a thread."""

    def __init__(self, urls: list[str], *args: str, script: str = CLIENT) -> None:
        super().__init__(["--input-type=module", "-e", script, json.dumps(urls), *args], name="js-failover-client")

    def wait_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Read lines (into ``seen``) until ``done()``: it is asked first, then after every line."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            try:
                self.seen.append(self.lines.get(timeout=max(remaining, 0)))
            except queue.Empty:
                raise TimeoutError(f"the JS client did not print {what} in {timeout} s; "
                                   f"it printed: {self.seen}") from None

    def read_for(self, seconds: float) -> None:
        """Read the lines the client prints within ``seconds`` (a tick: returns at once on a line)."""
        try:
            self.seen.append(self.lines.get(timeout=seconds))
        except queue.Empty:
            return
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def envelopes(self, kind: str) -> list[dict[str, Any]]:
        """The envelopes printed as ``kind`` (PERSISTENT or PLAIN) so far, in the order handed over."""
        prefix = f"{kind} "
        return [json.loads(line.removeprefix(prefix)) for line in self.seen if line.startswith(prefix)]

@contextmanager
def two_nodes() -> Iterator[tuple[GatewayNode, GatewayNode]]:
    """Two started nodes, each in a temp dir with its own store, started side by side; all gone afterwards."""
    nodes = [GatewayNode(temp_workdir()) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(node.start) for node in nodes]:
                started.result()
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()
            remove_workdir(node.workdir)


def test_the_js_client_moves_to_the_next_node_when_its_node_stops() -> None:
    with two_nodes() as (first, second):
        nodes = {first.ws_url: first, second.ws_url: second}
        client = Client([first.ws_url, second.ws_url], "demo.message where room = 'failover'")
        try:
            opened = client.wait_line(lambda line: line.startswith("OPEN "), 30, "OPEN")
            a = nodes[opened.removeprefix("OPEN ")]
            b = second if a is first else first
            client.wait_line(lambda line: line == "SUBSCRIBED", 30, "SUBSCRIBED")

            a.stop()
            client.wait_line(lambda line: line.startswith("LOST "), 30, "LOST")
            client.wait_line(lambda line: line == f"RESUMED {b.ws_url}", 30, f"RESUMED {b.ws_url}")

            text = f"after the failover {uuid.uuid4().hex}"
            r = b.post_event("demo.message", {"room": "failover", "text": text, "author": "test"})
            assert r.status == 202, (r.status, r.body)
            line = client.wait_line(lambda line: line.startswith("EVENT ") and text in line, 30, "the event posted to B")
            envelope = json.loads(line.removeprefix("EVENT "))
            assert envelope["event"] == "demo.message" and envelope["data"]["text"] == text
            assert not [line for line in client.seen if line.startswith("CLOSED")], client.seen
        finally:
            client.close()


@dataclass
class Posted:
    """An event a node answered 202: its id and seq, the node, and when (before the kill, during the
    client's outage, after it resumed)."""

    id: str
    seq: int
    node: str
    phase: str


def test_the_js_client_moves_within_a_cluster_when_its_node_is_killed_and_misses_nothing_persistent() -> None:
    """Two nodes of one cluster; the client, given both URLs, is on X (drawn at random) with a persistent
    query subscription and a plain one. Events are posted to X and Y in turn: a first round, waited for on
    both subscriptions; a second one, after which X is SIGKILLed at once (process group) with those maybe
    not delivered yet; then events to Y (attempts to X fail, not counted) until the client says it resumed
    on Y; then more to Y. The persistent subscription hands over every event answered 202, once, in strictly
    increasing seq; the plain one, in increasing seq, at least every event posted after it resumed."""
    room = f"failover-{uuid.uuid4().hex[:12]}"
    persistent_query = f'demo.message where room = "{room}"'
    plain_query = f'demo.message where room = "{room}" and author = "js-failover"'
    with postgresql_schema() as store:
        nodes = start_cluster(store, ["fx", "fy"])
        client: Client | None = None
        try:
            by_url = {node.ws_url: node for node in nodes}
            client = Client([node.ws_url for node in nodes], persistent_query, plain_query, script=CLUSTER_CLIENT)
            opened = client.wait_line(lambda line: line.startswith("OPEN "), 30, "OPEN")
            x = by_url[opened.removeprefix("OPEN ")]
            y = nodes[1] if x is nodes[0] else nodes[0]
            client.wait_line(lambda line: line == "SUBSCRIBED", 30, "SUBSCRIBED")

            accepted: list[Posted] = []
            refused_by_x = 0

            def post(node: GatewayNode, phase: str) -> None:
                nonlocal refused_by_x
                i = len(accepted) + refused_by_x
                data = {"room": room, "text": f"{phase} {i}", "author": "js-failover"}
                try:
                    r = node.post_event("demo.message", data)
                except OSError:
                    if node is x and phase != "before":
                        refused_by_x += 1  # X is gone: what it did not answer does not count
                        return
                    raise
                assert r.status == 202, (node.ws_url, phase, r.status, r.body)
                accepted.append(Posted(r.body["id"], r.body["seq"], "X" if node is x else "Y", phase))

            def received(kind: str, wanted: list[Posted]) -> Callable[[], bool]:
                return lambda: {p.id for p in wanted} <= {e["id"] for e in client.envelopes(kind)}

            for i in range(10):  # both nodes deliver to the client on X
                post((x, y)[i % 2], "before")
            client.wait_until(received("PERSISTENT", accepted), 30, "the first round on the persistent subscription")
            client.wait_until(received("PLAIN", accepted), 30, "the first round on the plain subscription")
            for i in range(10):  # then X dies right after answering, before these are surely delivered
                post((x, y)[i % 2], "before")
            x.kill()

            deadline = time.monotonic() + 60
            while not any(line.startswith("RESUMED ") for line in client.seen):
                assert time.monotonic() < deadline, f"the client did not resume within 60 s: {client.seen}"
                post(y, "outage")
                post(x, "outage")
                client.read_for(0.05)
            lost = next(i for i, line in enumerate(client.seen) if line.startswith("LOST "))
            resumed = next(i for i, line in enumerate(client.seen) if line.startswith("RESUMED "))
            assert lost < resumed and client.seen[resumed] == f"RESUMED {y.ws_url}", client.seen
            assert client.seen[lost].startswith(f"LOST {x.ws_url} "), client.seen[lost]

            for _ in range(10):
                post(y, "after")
            client.wait_until(received("PERSISTENT", accepted), 30,
                              "every accepted event on the persistent subscription")
            client.wait_until(received("PLAIN", [p for p in accepted if p.phase == "after"]), 30,
                              "every event posted after the resume on the plain subscription")
            # One more through Y, waited for on both: anything handed over twice would have come before it.
            post(y, "after")
            client.wait_until(received("PERSISTENT", accepted[-1:]), 30, "the last event (persistent)")
            client.wait_until(received("PLAIN", accepted[-1:]), 30, "the last event (plain)")

            seq_of = {p.id: p.seq for p in accepted}
            persistent = client.envelopes("PERSISTENT")
            plain = client.envelopes("PLAIN")
            summary = (f"X={x.ws_url} Y={y.ws_url}; accepted {len(accepted)} "
                       f"({sum(p.phase == 'outage' for p in accepted)} during the outage), "
                       f"X refused {refused_by_x}; client printed: {client.seen}")
            assert refused_by_x > 0, summary
            assert [e["id"] for e in persistent] == [p.id for p in sorted(accepted, key=lambda p: p.seq)], summary
            assert all(e["seq"] == seq_of[e["id"]] for e in persistent), summary
            assert all(a["seq"] < b["seq"] for a, b in pairwise(persistent)), summary
            assert all(e["id"] in seq_of and e["seq"] == seq_of[e["id"]] for e in plain), summary
            assert all(a["seq"] < b["seq"] for a, b in pairwise(plain)), summary
            problems = [line for line in client.seen if line.split(" ", 1)[0] in ("GAP", "REMOVED", "CLOSED")]
            assert not problems, summary
        finally:
            if client is not None:
                client.close()
            stop_cluster(nodes)
