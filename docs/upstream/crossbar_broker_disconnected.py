"""Minimal reproduction, bare Crossbar.io (no gateway code): acknowledged events lost when one subscriber leaves.

Run with the Python that has Crossbar installed (Linux: it reads /proc/net/tcp)::

    .venv/bin/python docs/upstream/crossbar_broker_disconnected.py

It starts a Crossbar node (one router, realm ``realm1``, anonymous may do
anything, WAMP-JSON over WebSocket) in a temporary directory, and connects:

* 8 *readers*: subscribe to ``com.example.topic`` and read everything;
* 3 *leavers*: subscribe, stop reading, and once the router holds unsent
  data for them (their sockets' send queues are full) send a WebSocket close
  frame, as a browser tab that is closed on a slow link does;
* a *publisher*: publishes with ``acknowledge=True``, one event at a time.

Then it publishes 500 events, each acknowledged (PUBLISHED), and counts what
each reader received. Expected: 500 each. Observed with Crossbar 26.10.1 /
autobahn 26.11.1 / Twisted 26.10: the readers the broker iterates *after* the
first leaver (the subscribers are a set: which ones varies from run to run)
receive nothing more, for as long as the node runs, e.g.
``each reader received: [0, 0, 500, 500, 0, 500, 0, 500]``.

Why: the leaver's close frame puts its WebSocket in CLOSING, then CLOSED
(autobahn ``onCloseFrame`` -> ``dropConnection(abort=False)``), but the TCP
connection is only lost once Twisted has flushed the data it holds for the
leaver, which never happens: the WAMP session stays attached. Each EVENT to
it raises ``autobahn.exception.Disconnected`` ("Attempt to send on a closed
protocol", autobahn/websocket/protocol.py ``sendMessage``) from
``Router.send``; the broker's delivery loop (crossbar/router/broker.py,
``_notify_some`` in ``processPublish``) catches only ``PayloadExceededError``,
so the exception ends the loop and every receiver after the leaver misses the
event, after the publisher was told it was published. The same happens, for a
shorter time, whenever a subscriber is dropped between two publications (the
WebSocket ping timeout drops with ``abort=True`` and the session detaches one
reactor turn later).

Exit status 0 if no reader missed an event, 1 otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TOPIC = "com.example.topic"
READERS = 8
LEAVERS = 3
EVENTS = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_config(port: int) -> dict[str, Any]:
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [{
                "uri": "", "match": "prefix", "allow": {"call": True, "register": True, "publish": True,
                                                          "subscribe": True},
                "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                            "serializers": ["json"]}],
        }],
    }


class Peer:
    """WAMP-JSON over a raw WebSocket: enough to subscribe, publish and count."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.lock = threading.Lock()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        self.buf = self.buf.split(b"\r\n\r\n", 1)[1]
        self.send([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}}}])
        assert self.recv()[0] == 2, "no WELCOME"
        self.events = 0

    def frame(self, payload: bytes, opcode: int = 1) -> None:
        n, mask = len(payload), os.urandom(4)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(head + mask + body)

    def send(self, message: Any) -> None:
        self.frame(json.dumps(message).encode())

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self) -> Any:
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if b0 & 0x0F == 9:
                self.frame(payload, 10)  # pong
            elif b0 & 0x0F == 1:
                return json.loads(payload)
            elif b0 & 0x0F == 8:
                raise ConnectionError("closed")

    def subscribe(self) -> None:
        self.send([32, 1, {}, TOPIC])
        assert self.recv()[0] == 33, "no SUBSCRIBED"

    def count_forever(self) -> None:
        try:
            while True:
                message = self.recv()
                if message[0] == 36 and str(message[4][0]).startswith("event "):
                    self.events += 1
        except (OSError, ConnectionError):
            pass


def router_send_queue(router_port: int, client_port: int) -> int:
    """Bytes in the kernel send queue of the router's socket to ``client_port`` (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == router_port and int(remote.split(":")[1], 16) == client_port:
            return int(fields[4].split(":")[0], 16)
    return 0


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cb-repro-"))
    port = free_port()
    (workdir / "config.json").write_text(json.dumps(node_config(port)))
    crossbar = Path(sys.executable).parent / "crossbar"
    log = open(workdir / "node.log", "wb")
    node = subprocess.Popen([str(crossbar), "start", "--cbdir", str(workdir)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or node.poll() is not None:
                    print("the node did not start:\n" + (workdir / "node.log").read_text()[-3000:])
                    return 2
                time.sleep(0.2)
        readers = [Peer(port) for _ in range(READERS)]
        for r in readers:
            r.subscribe()
            threading.Thread(target=r.count_forever, daemon=True).start()
        leavers = [Peer(port, rcvbuf=4096) for _ in range(LEAVERS)]
        for leaver in leavers:
            leaver.subscribe()
        publisher = Peer(port)
        request = 100

        def publish(text: str) -> None:
            nonlocal request
            request += 1
            publisher.send([16, request, {"acknowledge": True}, TOPIC, [text]])
            while publisher.recv()[:2] != [17, request]:
                pass

        # The leavers stop reading: publish until the router's kernel send queues to them are full,
        # then a few more (now held by Twisted, well under its 64 KiB), and the leavers close.
        leaver_ports = [leaver.sock.getsockname()[1] for leaver in leavers]
        filler, last, steady = "f" * 1000, [-1], 0
        while steady < 20:
            publish(filler)
            queued = [router_send_queue(port, p) for p in leaver_ports]
            steady = steady + 1 if queued == last else 0
            last = queued
        for _ in range(5):
            publish(filler)
        for leaver in leavers:
            leaver.frame(struct.pack("!H", 1000), opcode=8)

        for i in range(EVENTS):
            publish(f"event {i}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(r.events < EVENTS for r in readers):
            time.sleep(0.1)
        got = [r.events for r in readers]
        print(f"published and acknowledged: {EVENTS} events; each reader received: {got}")
        lost = sum(EVENTS - g for g in got)
        print("OK: no event lost" if not lost else f"LOST: {lost} acknowledged deliveries did not happen")
        return 0 if not lost else 1
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
