"""The router guards (components/router_guard/) against a real node, with raw sockets doing what clients should not.

One node for the module, with a small client buffer (so that stuck clients
are cut after little data) and a per-address cap that the tests reach through
X-Forwarded-For (loopback is a trusted proxy), so that the other tests'
connections from 127.0.0.1 stay well below it.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cbor2
import msgpack
import pytest

from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

HELLO, WELCOME, ABORT, ERROR, SUBSCRIBE, SUBSCRIBED = 1, 2, 3, 8, 32, 33
EVENT, CALL, RESULT, REGISTER = 36, 48, 50, 64
TOPIC = "gateway.event.demo.message"
MESSAGE = {"room": "guard", "text": "hi", "author": "ann"}
CLIENT_BUFFER = 256 * 1024
CAP = 40
WEB_APP = "http://webapp.test:3000"


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    with running_node({"router": {"max_client_buffer": CLIENT_BUFFER, "max_connections_per_address": CAP,
                                  "allowed_origins": [WEB_APP]}}) as gateway:
        yield gateway


# -- a raw WebSocket peer ---------------------------------------------------------------------


class RawWebSocket:
    """A blocking WebSocket client that sends whatever it is told and reads frames one by one."""

    ENCODE: dict[str, Callable[[Any], bytes]] = {
        "json": lambda m: json.dumps(m).encode(), "msgpack": msgpack.packb, "cbor": cbor2.dumps}
    DECODE: dict[str, Callable[[bytes], Any]] = {
        "json": json.loads, "msgpack": lambda b: msgpack.unpackb(b, raw=False), "cbor": cbor2.loads}

    def __init__(self, port: int, serializer: str = "json", headers: dict[str, str] | None = None,
                 rcvbuf: int | None = None, timeout: float = 30) -> None:
        self.serializer = serializer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connecting: the window the router sees stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self._send_lock = threading.Lock()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Protocol: wamp.2.{serializer}",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        self.response = head.decode(errors="replace")
        self.status = int(self.response.split(" ", 2)[1]) if self.response.startswith("HTTP/") else 0

    # -- frames

    def send_frame(self, payload: bytes, opcode: int | None = None) -> None:
        opcode = opcode if opcode is not None else (1 if self.serializer == "json" else 2)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") \
            if n else b""
        with self._send_lock:
            self.sock.sendall(head + mask + masked)

    def send(self, message: Any) -> None:
        self.send_frame(self.ENCODE[self.serializer](message))

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            if not chunk:
                raise ConnectionError("closed by the router")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        """The next data or close frame (pings are answered here)."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            opcode, payload = b0 & 0x0F, self._read(n)
            if opcode == 9:
                self.send_frame(payload, opcode=10)
                continue
            if opcode == 10:
                continue
            return opcode, payload

    def recv(self) -> Any:
        opcode, payload = self.recv_frame()
        if opcode == 8:
            raise ConnectionError(f"closed by the router: {close_of(payload)}")
        return self.DECODE[self.serializer](payload)

    def recv_until(self, kind: int) -> Any:
        while True:
            message = self.recv()
            if message[0] == kind:
                return message

    def close_frame(self) -> tuple[int, str]:
        """Read until the router's close frame: (code, reason)."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 8:
                return close_of(payload)

    def join(self, **details: Any) -> Any:
        self.send([HELLO, "gateway", {"roles": {"caller": {}, "subscriber": {}, "callee": {}}, **details}])
        return self.recv_until(WELCOME)

    def subscribe(self, topic: str, request: int = 1) -> None:
        self.send([SUBSCRIBE, request, {}, topic])
        assert self.recv_until(SUBSCRIBED)[1] == request

    def call(self, request: int, procedure: str, args: list[Any] | None = None,
             kwargs: dict[Any, Any] | None = None, options: dict[str, Any] | None = None) -> Any:
        """Send a CALL; the router's RESULT or ERROR to it."""
        self.send([CALL, request, options or {}, procedure, args or [], kwargs or {}])
        while True:
            message = self.recv()
            if message[0] in (RESULT, ERROR) and message[1 if message[0] == RESULT else 2] == request:
                return message

    def abort(self) -> None:
        """Drop the connection with a TCP reset, as a crashed client would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def close_of(payload: bytes) -> tuple[int, str]:
    return (struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")) if payload else (1005, "")


class Subscriber(RawWebSocket):
    """Subscribes to demo.message and counts the seq of every EVENT in a thread until told to stop."""

    def __init__(self, port: int, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.join()
        self.subscribe(TOPIC)
        self.seqs: list[int] = []
        self.details: list[dict[str, Any]] = []
        self.ended: str | None = None
        self._thread = threading.Thread(target=self._count, daemon=True)

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def _count(self) -> None:
        try:
            while True:
                message = self.recv()
                if message[0] == EVENT:
                    self.details.append(message[3])
                    self.seqs.append(message[4][0]["seq"])
        except (OSError, ConnectionError) as exc:
            self.ended = str(exc)

    def wait_for(self, seqs: set[int], timeout: float) -> set[int]:
        """Until every seq in ``seqs`` arrived (or timeout): those still missing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = seqs - set(self.seqs)
            if not missing or self.ended:
                return missing
            time.sleep(0.05)
        return seqs - set(self.seqs)


def post_batch(node: GatewayNode, n: int, text: str = "x") -> list[int]:
    """POST /events/batch of n demo.message events; the seqs of those accepted."""
    body = json.dumps({"events": [{"event": "demo.message", "data": {**MESSAGE, "text": text}} for _ in range(n)]})
    r = node.request("POST", "/events/batch", body.encode(), {"Authorization": f"Bearer {API_KEY}",
                                                             "Content-Type": "application/json"}, timeout=60)
    assert r.status == 200, (r.status, r.body)
    return [item["seq"] for item in r.body["results"] if "seq" in item]


def drain(peer: RawWebSocket, limit: int = 64 * 1024 * 1024) -> int:
    """Read what the router sent ``peer`` until it closed the connection: how many bytes."""
    got = len(peer._buffer)
    try:
        while got < limit:
            chunk = peer.sock.recv(1 << 20)
            if not chunk:
                return got
            got += len(chunk)
    except ConnectionResetError:
        return got
    raise AssertionError(f"the router sent {got} bytes and did not close the connection")


def router_send_queue(router_port: int, client_port: int) -> int:
    """Bytes in the kernel send queue of the router's socket to ``client_port`` (from /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == router_port
                    and int(fields[2].split(":")[1], 16) == client_port):
                return int(fields[4].split(":")[0], 16)
    return 0


def new_log(node: GatewayNode, since: int) -> str:
    with open(node.log_path, "rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace")


def router_rss(node: GatewayNode) -> int:
    """Resident bytes of the node's router worker process."""
    assert node.process is not None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The worker's title (nodeconfig), or its command line before the title is set.
        if int(fields[2]) == node.process.pid and ("gateway router" in cmdline or "RouterController" in cmdline):
            with open(f"/proc/{entry}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024  # type: ignore[union-attr]
    raise AssertionError("no router worker process found")


# -- 1. deep frames --------------------------------------------------------------------------

DEEP = 100_000
DEEP_FRAMES = {
    "json": b"[" * DEEP + b"]" * DEEP,
    "msgpack": b"\x91" * DEEP + b"\xc0",
    "cbor": b"\x81" * DEEP + b"\xf6",
}


def test_deep_frames_are_refused_at_once_and_nobody_else_waits(node: GatewayNode) -> None:
    since = node.log_path.stat().st_size
    attackers = [RawWebSocket(node.router_port, serializer) for serializer in DEEP_FRAMES for _ in range(2)]
    started = time.monotonic()
    for attacker in attackers:  # before HELLO
        attacker.send_frame(DEEP_FRAMES[attacker.serializer])
    # Meanwhile an ordinary client connects, subscribes and gets an event.
    with node.client() as c:
        c.subscribe(TOPIC)
        seq = node.post_event("demo.message", MESSAGE).body["seq"]
        assert c.take(1, timeout=10)[0]["seq"] == seq
    for attacker in attackers:
        assert attacker.close_frame() == (1008, "WAMP message nested more than 64 levels deep")
        attacker.close()
    assert time.monotonic() - started < 15  # the router used to stall 34-81 s on one such frame
    log = new_log(node, since)
    assert len(log) < 64 * 1024, f"the node log grew by {len(log)} bytes"
    assert "Traceback" not in log and "RecursionError" not in log
    assert log.count("nested more than 64 levels deep") >= len(attackers)
    assert "Python recursion limit 10000 (was 100000)" in node.log_text()  # py_ecc's raise, undone


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_a_deep_argument_after_joining_closes_the_connection(node: GatewayNode, serializer: str) -> None:
    client = RawWebSocket(node.router_port, serializer)
    try:
        client.join()
        deep: Any = "leaf"
        for _ in range(70):
            deep = {"k": [deep]} if serializer == "cbor" else [deep]
        client.send([CALL, 1, {}, "gateway.subscribe", [deep], {}])
        assert client.close_frame() == (1008, "WAMP message nested more than 64 levels deep")
    finally:
        client.close()


# -- 4. values our components cannot receive ------------------------------------------------------------


def test_integers_beyond_64_bits_are_answered_with_invalid_argument(node: GatewayNode) -> None:
    since = node.log_path.stat().st_size
    client = RawWebSocket(node.router_port, "json")
    try:
        welcome = client.join()
        for request, args, kwargs, where, value in [
            (1, [10**40], {}, "args[0]", "an integer of about 41 digits"),
            (2, ["demo.message"], {"persistent": 2**63}, "kwargs.persistent", "9223372036854775808"),
            (3, [-(2**63) - 1], {}, "args[0]", "-9223372036854775809"),
        ]:
            answer = client.call(request, "gateway.subscribe", args, kwargs)
            assert answer[0] == ERROR and answer[4] == "gateway.error.invalid_argument", answer
            assert answer[5] == [f"{where}: integers must be within the signed 64-bit range, "
                                 f"-9223372036854775808 to 9223372036854775807, not {value}"]
        # The session goes on, and the gateway still knows who calls.
        me = client.call(4, "gateway.whoami")
        assert me[0] == RESULT and me[3][0]["session"] == welcome[1]
    finally:
        client.close()
    # The router's lines reach the node log through Crossbar's controller, a moment after the answers.
    log = wait_for(lambda: (text := new_log(node, since)).count("refused a request of") >= 3 and text,
                   timeout=10, what="the three refusals in the node log")
    assert "Traceback" not in log and log.count("refused a request of") == 3


def test_values_only_cbor_or_msgpack_can_say_are_answered_too(node: GatewayNode) -> None:
    cbor = RawWebSocket(node.router_port, "cbor")
    packed = RawWebSocket(node.router_port, "msgpack")
    try:
        cbor.join()
        answer = cbor.call(1, "gateway.subscribe", ["demo.message"], {1: "x"})
        assert answer[4] == "gateway.error.invalid_argument" and "map keys must be strings" in answer[5][0]
        answer = cbor.call(2, "gateway.subscribe", [datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)])
        assert answer[4] == "gateway.error.invalid_argument" and answer[5][0].startswith("args[0] is a datetime")
        packed.join()
        answer = packed.call(1, "gateway.subscribe", [2**64 - 1])
        assert answer[4] == "gateway.error.invalid_argument"
        assert packed.call(2, "gateway.whoami")[0] == RESULT
    finally:
        cbor.close()
        packed.close()


def test_a_hello_beyond_64_bits_is_aborted_with_the_reason(node: GatewayNode) -> None:
    client = RawWebSocket(node.router_port, "json")
    try:
        client.send([HELLO, "gateway", {"roles": {"caller": {}}, "authextra": {"client_token": 10**30}}])
        abort = client.recv()
        assert abort[0] == ABORT and abort[2] == "gateway.error.invalid_argument"
        assert abort[1]["message"].startswith("details.authextra.client_token: integers must be within")
    finally:
        client.close()


# -- 5. nothing disclosed, nothing registered -----------------------------------------------------------------


def test_clients_never_learn_our_sessions(node: GatewayNode) -> None:
    subscriber = Subscriber(node.router_port).start()
    client = RawWebSocket(node.router_port, "json")
    try:
        welcome = client.join()
        details = welcome[2]
        assert not [k for k in [*details, *details.get("authextra", {})] if k.startswith("x_cb_")], details
        result = client.call(1, "gateway.whoami")
        assert result[0] == RESULT and result[2] == {}, result[2]  # no callee, callee_authid, callee_authrole
        assert result[3][0]["session"] == welcome[1]  # while our component saw who called
        seq = node.post_event("demo.message", MESSAGE).body["seq"]
        assert subscriber.wait_for({seq}, timeout=10) == set()
        assert subscriber.details[-1] == {}, subscriber.details[-1]  # no publisher, publisher_authid/_authrole
    finally:
        client.close()
        subscriber.close()


def test_registering_anything_is_not_authorized(node: GatewayNode) -> None:
    client = RawWebSocket(node.router_port, "json")
    try:
        client.join()
        attempts = [("gateway.whoami", {}), ("gateway.whoami", {"invoke": "roundrobin"}),
                    ("gateway.whoami", {"invoke": "first"}), ("gateway.whoami", {"invoke": "last"}),
                    ("gateway.whoami", {"invoke": "random"}), ("gateway.whoami", {"force_reregister": True}),
                    ("gateway.subscribe", {"invoke": "single"}), ("gateway.mine", {}),
                    ("gateway.", {"match": "prefix"}), ("wamp.session.get", {})]
        for request, (procedure, options) in enumerate(attempts, 1):
            client.send([REGISTER, request, options, procedure])
            answer = client.recv_until(ERROR)
            assert answer[2] == request and answer[4] == "wamp.error.not_authorized", (procedure, options, answer)
        assert client.call(99, "gateway.whoami")[0] == RESULT  # still registered, still ours
    finally:
        client.close()


# -- 2. a subscriber vanishing mid-fan-out ------------------------------------------------------------


def test_subscribers_that_vanish_mid_flood_cost_the_others_nothing(node: GatewayNode) -> None:
    """Crossbar's broker ended its delivery loop at a subscriber that was closing (Disconnected): the
    subscribers after it missed every event published meanwhile (docs/upstream/crossbar_broker_disconnected.py)."""
    readers = [Subscriber(node.router_port).start() for _ in range(6)]
    # Leavers stop reading, then close (a WebSocket close frame) while the router still holds data
    # for them, as a browser tab closed on a slow link: the router's closing never completes.
    leavers = [Subscriber(node.router_port, rcvbuf=4096) for _ in range(3)]
    crashers = [Subscriber(node.router_port).start() for _ in range(3)]  # these end with a TCP reset
    accepted: list[int] = []
    try:
        # Until the router's kernel send queues to the leavers are full (about 2 MB on loopback),
        # in steps small enough that what the router holds beyond stays under Twisted's 64 KiB (it
        # stops reading a WebSocket holding more, and would not see the close frame).
        ports = [leaver.sock.getsockname()[1] for leaver in leavers]
        last: list[int] = []
        for _ in range(400):
            accepted += post_batch(node, 10, "f" * 4000)
            for reader in readers:  # delivered to all: the router has written to the leavers too
                assert not reader.wait_for(set(accepted), timeout=30), reader.ended
            queued = [router_send_queue(node.router_port, port) for port in ports]
            if queued == last:
                break
            last = queued
        else:
            raise AssertionError(f"the router's send queues never filled up: {last}")
        for leaver in leavers:
            leaver.send_frame(struct.pack("!H", 1000), opcode=8)
        for i in range(10):
            accepted += post_batch(node, 150, "v" * 1000)
            if i < len(crashers):
                crashers[i].abort()
        for reader in readers:
            missing = reader.wait_for(set(accepted), timeout=90)
            assert not missing, f"a reader missed {len(missing)} of {len(accepted)} accepted events: {reader.ended}"
            assert reader.seqs == sorted(reader.seqs)
        for leaver in leavers:  # and the router does not keep them for ever
            drain(leaver)
    finally:
        for peer in [*readers, *leavers, *crashers]:
            peer.close()


# -- 3. slow clients -------------------------------------------------------------------------------------------


def test_clients_that_stop_reading_are_cut_off_and_router_memory_stays_bounded(node: GatewayNode) -> None:
    readers = [Subscriber(node.router_port).start() for _ in range(3)]
    stuck = [Subscriber(node.router_port, rcvbuf=4096) for _ in range(20)]  # never read again
    since = node.log_path.stat().st_size
    before = router_rss(node)
    text = "s" * 30_000
    accepted: list[int] = []
    try:
        for _ in range(16):  # 400 events of 30 kB: 12 MB for each subscriber that would take them
            accepted += post_batch(node, 25, text)
        for reader in readers:
            assert not reader.wait_for(set(accepted), timeout=90), reader.ended
        grown = router_rss(node) - before
        assert grown < 60 * 1024 * 1024, f"the router grew by {grown / 2**20:.0f} MiB"
        log = new_log(node, since)
        # Only the stuck ones (a client left over from an earlier test may be cut now too).
        cut = set(re.findall(r"disconnecting tcp4:127.0.0.1:(\d+): \d+ bytes wait", log))
        assert {str(peer.sock.getsockname()[1]) for peer in stuck} <= cut
        assert not {str(peer.sock.getsockname()[1]) for peer in readers} & cut
        for peer in stuck:  # what reached each one is bounded; then the router's reset
            assert drain(peer) < 16 * 1024 * 1024
    finally:
        for peer in [*readers, *stuck]:
            peer.close()


# -- 6. origins and connections per address ---------------------------------------------------------------------


def test_browsers_pages_must_be_on_the_allow_list(node: GatewayNode) -> None:
    since = node.log_path.stat().st_size
    port = node.router_port
    for origin in [None, f"http://127.0.0.1:{port}", f"http://localhost:{port}", WEB_APP]:
        peer = RawWebSocket(port, headers={"Origin": origin} if origin else {})
        try:
            assert peer.status == 101, (origin, peer.response)
            assert peer.join()[0] == WELCOME
        finally:
            peer.close()
    for origin in ["http://evil.example", f"http://127.0.0.1:{port + 1}", "https://webapp.test:3000", "null"]:
        peer = RawWebSocket(port, headers={"Origin": origin})
        try:
            assert peer.status == 400 and "not allowed" in peer.response, (origin, peer.response)
        finally:
            peer.close()
    assert "Traceback" not in new_log(node, since)


def test_connections_per_address_are_capped(node: GatewayNode) -> None:
    since = node.log_path.stat().st_size
    address = {"X-Forwarded-For": "203.0.113.7"}  # from a proxy of ours (loopback): this client
    peers = [RawWebSocket(node.router_port, headers=address) for _ in range(CAP)]
    try:
        for peer in peers[:3]:
            assert peer.join()[0] == WELCOME
        extra = RawWebSocket(node.router_port, headers=address)
        try:
            assert extra.status == 101
            assert extra.close_frame() == (1013, f"too many connections from 203.0.113.7: at most {CAP} at once "
                                                 "(router.max_connections_per_address)")
        finally:
            extra.close()
        other = RawWebSocket(node.router_port, headers={"X-Forwarded-For": "203.0.113.8"})
        try:
            assert other.join()[0] == WELCOME  # another client is not affected
        finally:
            other.close()
        peers.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the router counts the closed one out when it sees it closed
            again = RawWebSocket(node.router_port, headers=address)
            try:
                again.join()
                break
            except ConnectionError:
                assert time.monotonic() < deadline, "a closed connection was never counted out"
            finally:
                again.close()
    finally:
        for peer in peers:
            peer.close()
    assert "Traceback" not in new_log(node, since)
