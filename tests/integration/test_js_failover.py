"""The JS client given a list of router URLs moves to another node by itself (clients/js/README.md, *Several nodes*).

Two independent real nodes, each with its own store (no cluster is needed to see the client move):
the client is given both URLs, connects to one (drawn at random: call it A), and subscribes; A is
stopped; the client must come to B by itself, restore its subscription there, and receive an event
posted to B. Nothing is posted to A: independent nodes number their events each from 1, and the
client drops an event whose seq is not above the last it handed over (in a cluster seq is shared).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from tests.support.harness import REPO, GatewayNode, remove_workdir, temp_workdir

pytestmark = pytest.mark.integration

#: The client, with quick retries: prints "OPEN <url>", "SUBSCRIBED", "LOST <url>", "RESUMED <url>",
#: "EVENT <envelope>", "ERROR ...", "CLOSED ..."; exits after 120 s whatever happens.
CLIENT = """
import autobahn from 'autobahn';
import { Gateway } from './clients/js/src/gateway.js';
autobahn.log.warn = () => {};  // autobahn's own lines on every closed connection
const [urls, query] = [JSON.parse(process.argv[1]), process.argv[2]];
const say = (line) => process.stdout.write(`${line}\\n`);
const gw = new Gateway({ url: urls, autobahn, reconnect: { initialDelay: 0.1, maxDelay: 1 } });
gw.on('open', (d) => say(`OPEN ${d.url}`));
gw.on('lost', (d) => say(`LOST ${d.url} ${d.reason}`));
gw.on('resumed', (d) => say(`RESUMED ${d.url}`));
gw.on('error', (e) => say(`ERROR ${e.uri ?? ''} ${e.message}`));
gw.on('closed', (d) => { say(`CLOSED ${d.reason}`); process.exit(1); });
setTimeout(() => { say('CLOSED timeout'); process.exit(1); }, 120_000).unref();
await gw.connect();
await gw.subscribe(query, (envelope) => say(`EVENT ${JSON.stringify(envelope)}`));
say('SUBSCRIBED');
"""


class Client:
    """The client script in a Node process of its own; its lines in a queue, read by a thread."""

    def __init__(self, urls: list[str], query: str) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            ["node", "--experimental-websocket", "--input-type=module", "-e", CLIENT, json.dumps(urls), query],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, name="js-failover-client", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if match(line):
                return line
        raise TimeoutError(f"the JS client did not print {what} in {timeout} s; it printed: {self.seen}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


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
