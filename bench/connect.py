"""Connect benchmark: WebSocket + WAMP HELLO -> WELCOME and leave, through the authenticator, beside bare Crossbar.

Run by hand, never from the test suite::

    .venv/bin/python bench/connect.py [--duration 8] [--connectors 8]

Every client connection to the gateway goes through our dynamic authenticator
(the router calls ``gateway.authenticate``, which reads and writes the SQLite
store for the client token). This measures how fast clients can come and go.
``--connectors`` connectors each run, back to back for ``--duration`` seconds:
open a TCP connection, WebSocket handshake (``wamp.2.json``), HELLO, answer a
CHALLENGE if one comes, WELCOME, then GOODBYE, the router's GOODBYE, a
WebSocket close, and wait for the router to drop the connection. Rows:

* gateway, anonymous: no credentials, so a fresh client token each time;
* gateway, anonymous with a client token: HELLO ``authextra.client_token`` from
  an earlier WELCOME (one per connector, got before the clock starts), the
  renewal path; a WELCOME with another token counts as an error;
* gateway, one-time ticket: tickets from ``POST /tickets`` fetched in bulk
  before the row (not timed), one per connection (WAMP-ticket: CHALLENGE,
  AUTHENTICATE);
* gateway, JWT: an HS256 JWT signed with the harness's secret, one per
  connector, presented again on each connection;
* bare crossbar: a node with only a router, the same WebSocket path options
  and static anonymous authentication, no components, started after the
  gateway node is stopped.

*connections/s* counts whole cycles (connect to closed) over the row;
*p50/p99* are from the start of the TCP connect to WELCOME. An ABORT, a
refused or dropped connection, a timeout or an unexpected WELCOME is an
error: counted, printed, not in the latency figures.

*CPU %* (of one core, over the row): the ``router``; Crossbar's
``controller``, which writes the node log (Crossbar logs every session's join
and leave at info level, in both nodes); the ``containers`` (our components:
the authenticators, and the dispatchers following the session meta events);
the ``client`` (this script); ``other``, the rest of the machine.

The client is a minimal WAMP-over-WebSocket client (as ``delivery.py``'s
subscribers), not autobahn, so that the client's CPU is not what is measured:
all connectors share one process and one event loop; its share is the
``client`` column, and a warning is printed if it nears a whole core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support.harness and components importable.
    sys.path.insert(0, str(REPO))

from bench.delivery import (  # noqa: E402  (after the path fix)
    _WS_GUID,
    HOST,
    REALM,
    CpuMeter,
    _client_frame,
    _fmt_rate,
    _HttpConnection,
    _raise_interrupt,
    node_processes,
    settle,
)
from tests.support.harness import JWT_SECRET, GatewayNode, make_jwt, remove_workdir, temp_workdir  # noqa: E402

# WAMP message codes the connector handles.
_HELLO, _WELCOME, _ABORT, _CHALLENGE, _AUTHENTICATE, _GOODBYE = 1, 2, 3, 4, 5, 6
#: What a browser subscriber announces (as tests/support/rawwamp.py).
_ROLES: dict[str, Any] = {"caller": {}, "subscriber": {}}

#: From the start of the TCP connect to WELCOME, at most.
CONNECT_TIMEOUT = 10.0
#: From our GOODBYE to the router dropping the connection, at most.
LEAVE_TIMEOUT = 5.0
#: Unmeasured connecting before a node's first row (first-use costs out of the way).
WARMUP_SECONDS = 1.0
#: Tickets fetched for the ticket row: the best rate so far x duration x this, plus some.
TICKET_MARGIN = 1.5
#: Title of the bare node's router process (the gateway's is "gateway router").
BARE_ROUTER_TITLE = "bench bare router"


# ---------------------------------------------------------------------------
# One connection
# ---------------------------------------------------------------------------

class _Connection(asyncio.Protocol):
    """One WAMP session's whole life over WebSocket (json): handshake, HELLO, (CHALLENGE ->
    AUTHENTICATE), WELCOME, GOODBYE and its answer, close. ``welcome`` resolves with the
    WELCOME details (or fails with the reason); ``gone`` when the connection is closed."""

    def __init__(self, port: int, path: str, details: dict[str, Any], credential: str | None) -> None:
        loop = asyncio.get_running_loop()
        self._port = port
        self._path = path
        self._details = details
        self._credential = credential
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: bytearray | None = None
        self._transport: asyncio.Transport | None = None
        self._goodbye_sent = False
        self._close_sent = False
        self.welcome_at = 0.0
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        #: Set when something went wrong after WELCOME (during the leave).
        self.leave_error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
            % (self._path.encode(), HOST.encode(), self._port, self._key)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"connection lost before WELCOME: {exc or 'closed'}"))
        elif not self._close_sent and self.leave_error is None:
            self.leave_error = f"connection lost before the GOODBYE answer: {exc or 'closed'}"
        if not self.gone.done():
            self.gone.set_result(None)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._check_handshake(bytes(buf[:end])):
                return
            del buf[:end + 4]
            self._upgraded = True
            self._send([_HELLO, REALM, self._details])
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            self._on_frame(b0, payload, now)
        del buf[:pos]

    def _check_handshake(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        if b" 101 " not in lines[0] + b" ":
            self._fail(f"handshake refused: {lines[0].decode(errors='replace')}")
            return False
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        if headers.get(b"sec-websocket-accept") != base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest()):
            self._fail("bad Sec-WebSocket-Accept")
            return False
        return True

    def _on_frame(self, b0: int, payload: bytes, now: float) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode in (1, 2):
            if fin:
                self._on_message(payload, now)
            else:
                self._fragments = bytearray(payload)
        elif opcode == 0 and self._fragments is not None:
            self._fragments += payload
            if fin:
                whole, self._fragments = bytes(self._fragments), None
                self._on_message(whole, now)
        elif opcode == 9 and self._transport is not None:  # ping
            self._transport.write(_client_frame(10, payload))
        elif opcode == 8:  # close: ours answered (the router drops the connection next), or the router's own
            if not self._close_sent:
                self._close_sent = True
                if self._transport is not None:
                    self._transport.write(_client_frame(8, payload[:2]))
                reason = payload[2:].decode(errors="replace")
                self._fail(f"closed by the router: {reason or 'no reason'}")

    def _send(self, msg: list[Any]) -> None:
        if self._transport is not None:
            self._transport.write(_client_frame(1, json.dumps(msg).encode()))

    def _on_message(self, payload: bytes, now: float) -> None:
        msg = json.loads(payload)
        code = msg[0]
        if code == _WELCOME:
            self.welcome_at = now
            if not self.welcome.done():
                self.welcome.set_result(msg[2])
            self._goodbye_sent = True
            self._send([_GOODBYE, {}, "wamp.close.normal"])
        elif code == _CHALLENGE:
            if self._credential is None:
                self._fail(f"CHALLENGE ({msg[1]}) without a credential to answer it")
            else:
                self._send([_AUTHENTICATE, self._credential, {}])
        elif code == _ABORT:
            message = msg[1].get("message") if isinstance(msg[1], dict) else None
            self._fail(f"ABORT {msg[2]}" + (f": {message}" if message else ""))
        elif code == _GOODBYE and self._goodbye_sent:
            # The router's answer to ours: close the WebSocket; the router drops the TCP connection.
            self._close_sent = True
            if self._transport is not None:
                self._transport.write(_client_frame(8, (1000).to_bytes(2, "big")))
        elif code == _GOODBYE:
            self._fail(f"GOODBYE from the router before WELCOME: {msg[2]}")

    def _fail(self, reason: str) -> None:
        if not self.welcome.done():
            self.welcome.set_exception(RuntimeError(reason))
        elif self.leave_error is None:
            self.leave_error = reason
        self.abort()


async def connect_once(port: int, path: str, details: dict[str, Any], credential: str | None
                       ) -> tuple[float, dict[str, Any]]:
    """Connect, join, leave. (seconds from the start of the TCP connect to WELCOME, WELCOME details);
    raises with the reason when the session was refused or something else went wrong."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    transport, proto = await asyncio.wait_for(
        loop.create_connection(lambda: _Connection(port, path, details, credential), HOST, port), CONNECT_TIMEOUT)
    try:
        remaining = max(0.001, start + CONNECT_TIMEOUT - time.monotonic())
        try:
            welcome = await asyncio.wait_for(asyncio.shield(proto.welcome), remaining)
        except TimeoutError:
            raise TimeoutError(f"no WELCOME within {CONNECT_TIMEOUT:g}s") from None
        try:
            await asyncio.wait_for(asyncio.shield(proto.gone), LEAVE_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"the router did not close within {LEAVE_TIMEOUT:g}s after GOODBYE") from None
        if proto.leave_error is not None:
            raise RuntimeError(f"while leaving: {proto.leave_error}")
        return proto.welcome_at - start, welcome
    finally:
        transport.close()
        if not proto.welcome.done():
            proto.welcome.cancel()
        elif not proto.welcome.cancelled():
            proto.welcome.exception()  # retrieved: no "exception was never retrieved" noise


# ---------------------------------------------------------------------------
# Logins: what a connector presents, and what its WELCOME must say
# ---------------------------------------------------------------------------

class OutOfCredentials(Exception):
    pass


@dataclass
class Login:
    """How connector ``i`` logs in. ``hello(i)`` -> (HELLO details, credential for a CHALLENGE);
    ``check(i, welcome details)`` -> an error, or None. ``prepare(i)`` runs before the clock starts."""

    path: str
    login: str
    hello: Callable[[int], tuple[dict[str, Any], str | None]]
    check: Callable[[int, dict[str, Any]], str | None]
    prepare: Callable[[int], Awaitable[None]] | None = None


def _expect_role(role: str, authid: Callable[[int], str] | None = None) -> Callable[[int, dict[str, Any]], str | None]:
    def check(i: int, welcome: dict[str, Any]) -> str | None:
        if welcome.get("authrole") != role:
            return f"WELCOME with role {welcome.get('authrole')!r}, not {role!r}"
        if authid is not None and welcome.get("authid") != authid(i):
            return f"WELCOME with authid {welcome.get('authid')!r}, not {authid(i)!r}"
        return None
    return check


def anonymous_login(path: str) -> Login:
    return Login(path, "anonymous", lambda i: ({"roles": _ROLES}, None), _expect_role("anonymous"))


def renewal_login(port: int, ws_path: str, connectors: int) -> Login:
    tokens: list[str] = [""] * connectors

    async def prepare(i: int) -> None:
        _, welcome = await connect_once(port, ws_path, {"roles": _ROLES}, None)
        tokens[i] = str((welcome.get("authextra") or {})["client_token"])

    anonymous = _expect_role("anonymous")

    def check(i: int, welcome: dict[str, Any]) -> str | None:
        if (error := anonymous(i, welcome)) is not None:
            return error
        if (welcome.get("authextra") or {}).get("client_token") != tokens[i]:
            return "the token presented was not renewed: WELCOME carried a fresh one"
        return None

    return Login("gateway", "anonymous, client token again",
                 lambda i: ({"roles": _ROLES, "authextra": {"client_token": tokens[i]}}, None), check, prepare)


def _user(i: int) -> str:
    return f"bench-{i}"


def ticket_login(tickets: list[str]) -> Login:
    def hello(i: int) -> tuple[dict[str, Any], str | None]:
        if not tickets:
            raise OutOfCredentials
        return {"roles": _ROLES, "authmethods": ["ticket"]}, tickets.pop()

    # Tickets are for bench-0 .. bench-<k>, not per connector: check the role and that there is a user.
    return Login("gateway", "one-time ticket", hello, _expect_role("user"))


def jwt_login(connectors: int, duration: float) -> Login:
    exp = int(time.time() + duration + 600)
    jwts = [make_jwt({"sub": _user(i), "roles": ["staff"], "exp": exp}, JWT_SECRET) for i in range(connectors)]
    return Login("gateway", "JWT (HS256)",
                 lambda i: ({"roles": _ROLES, "authmethods": ["ticket"]}, jwts[i]), _expect_role("user", _user))


# ---------------------------------------------------------------------------
# A row
# ---------------------------------------------------------------------------

@dataclass
class Result:
    path: str
    login: str
    connectors: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0
    notes: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    ratio: float | None = None

    @property
    def connections(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def per_second(self) -> float:
        return self.connections / max(1e-9, self.end - self.start)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def _run_connectors(port: int, ws_path: str, login: Login, connectors: int, duration: float,
                          result: Result) -> None:
    if login.prepare is not None:
        await asyncio.gather(*(login.prepare(i) for i in range(connectors)))
    out_of_credentials = False

    async def connector(i: int) -> None:
        nonlocal out_of_credentials
        while time.monotonic() < deadline:
            try:
                details, credential = login.hello(i)
            except OutOfCredentials:
                out_of_credentials = True
                return
            try:
                latency, welcome = await connect_once(port, ws_path, details, credential)
                error = login.check(i, welcome)
            except Exception as exc:  # counted and shown, the row goes on
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                result.latencies.append(latency)
            else:
                key = error[:160]
                result.errors[key] = result.errors.get(key, 0) + 1
                await asyncio.sleep(0.01)  # a dead node must not make this spin

    result.start = time.monotonic()
    deadline = result.start + duration
    await asyncio.gather(*(connector(i) for i in range(connectors)))
    result.end = time.monotonic()
    if out_of_credentials:
        result.notes.append(f"ran out of tickets after {result.end - result.start:.1f}s (of {duration:g}s); "
                            "the rate is over that time")


def run_row(port: int, ws_path: str, login: Login, connectors: int, duration: float,
            meter: CpuMeter | None) -> Result:
    result = Result(login.path, login.login, connectors)
    if meter is not None:
        meter.start()
    asyncio.run(_run_connectors(port, ws_path, login, connectors, duration, result))
    if meter is not None:
        result.cpu = meter.stop()
    return result


# ---------------------------------------------------------------------------
# Tickets in bulk (before the ticket row, not timed)
# ---------------------------------------------------------------------------

async def _fetch_tickets(port: int, count: int, in_flight: int = 16) -> list[str]:
    conns = [_HttpConnection(port) for _ in range(in_flight)]
    tickets: list[str] = []
    todo = count

    async def fetch(conn: _HttpConnection, worker: int) -> None:
        nonlocal todo
        while todo > 0:
            todo -= 1
            body = json.dumps({"user": _user(worker), "roles": ["staff"], "ttl": 3600}).encode()
            status, answer = await conn.post(body, b"/tickets")
            if status != 201:
                raise RuntimeError(f"POST /tickets answered {status} {answer[:200]!r}")
            tickets.append(json.loads(answer)["ticket"])

    try:
        await asyncio.gather(*(fetch(c, i) for i, c in enumerate(conns)))
    finally:
        for c in conns:
            c.close()
    return tickets


# ---------------------------------------------------------------------------
# The bare Crossbar node
# ---------------------------------------------------------------------------

@dataclass
class BareNode(GatewayNode):
    """Bare Crossbar: only a router, with the gateway's WebSocket path options and static anonymous
    authentication, no components. Started and stopped like a GatewayNode (its own process group)."""

    node_config: dict[str, Any] = field(default_factory=dict)

    def write_config(self) -> None:
        self.cbdir.mkdir(parents=True, exist_ok=True)
        (self.cbdir / "config.yaml").write_text(yaml.safe_dump(self.node_config))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the bare node exited with {self.process.returncode}:\n{self.log_tail()}")
            if "NODE_BOOT_COMPLETE" in self.log_text():
                return
            time.sleep(0.1)
        raise TimeoutError(f"the bare node did not boot within {timeout}s:\n{self.log_tail()}")


def websocket_path(node_config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(URL path, websocket service config, realm config) of the gateway's rendered node config."""
    router = next(w for w in node_config["workers"] if w["type"] == "router")
    web = next(t for t in router["transports"] if t["type"] == "web")
    key, service = next((k, s) for k, s in web["paths"].items() if s.get("type") == "websocket")
    return "/" + key.strip("/"), service, router["realms"][0]


def bare_config(gateway_config: dict[str, Any], port: int) -> dict[str, Any]:
    """A router-only node: the gateway's WebSocket path (serializers, options) on its own web transport,
    static anonymous authentication, one realm whose anonymous role may call and subscribe."""
    path, service, realm = websocket_path(gateway_config)
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "id": "router",
            "options": {"title": BARE_ROUTER_TITLE},
            "realms": [{
                "name": realm["name"],
                "options": dict(realm.get("options", {})),
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix",
                        "allow": {"call": True, "register": False, "publish": False, "subscribe": True},
                        "disclose": {"caller": False, "publisher": False},
                        "cache": True,
                    }],
                }],
            }],
            "transports": [{
                "type": "web",
                "id": "web",
                "endpoint": {"type": "tcp", "interface": HOST, "port": port},
                "paths": {path.strip("/"): {**service, "auth": {"anonymous": {"type": "static",
                                                                               "role": "anonymous"}}}},
            }],
        }],
    }


def node_groups(pgid: int) -> dict[str, list[int]]:
    """A node's processes (its own process group) by process title: ``router`` (the gateway's or the
    bare node's), ``controller`` and ``containers`` (everything else: the component containers)."""
    groups: dict[str, list[int]] = {"router": [], "controller": [], "containers": []}
    for kind, pids in node_processes(pgid).items():  # "router": the gateway's router, "workers": the rest
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if kind == "router" or title == BARE_ROUTER_TITLE:
                groups["router"].append(pid)
            elif title == "crossbar-controller":
                groups["controller"].append(pid)
            else:
                groups["containers"].append(pid)
    return groups


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def format_table(rows: list[Result]) -> str:
    head = ("| path | login | connectors | connections | connections/s | p50 ms | p99 ms | errors | gateway/bare "
            "| CPU % router / controller / containers / client / other |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        c = r.cpu
        cpu = " / ".join(f"{c.get(k, 0):.0f}" for k in ("router", "controller", "containers", "publisher", "other"))
        cells = [r.path, r.login, str(r.connectors), f"{r.connections:,}", _fmt_rate(r.per_second),
                 f"{r.percentile_ms(0.5):.1f}", f"{r.percentile_ms(0.99):.1f}", str(r.error_count),
                 f"{r.ratio:.2f}" if r.ratio is not None else "", cpu]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(row: Result) -> None:
    print(f"#   {row.path}, {row.login}: {_fmt_rate(row.per_second)} connections/s, "
          f"p50 {row.percentile_ms(0.5):.1f} ms, p99 {row.percentile_ms(0.99):.1f} ms, "
          f"{row.error_count} errors", flush=True)
    for error, count in sorted(row.errors.items(), key=lambda kv: -kv[1]):
        print(f"#     error x{count}: {error}", flush=True)
    for note in row.notes:
        print(f"#     {note}", flush=True)
    if row.cpu.get("publisher", 0) > 80:
        print(f"#     the client used {row.cpu['publisher']:.0f}% of a core: it may be what limits this row",
              flush=True)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=8.0, help="seconds of connecting per row (default 8)")
    p.add_argument("--connectors", type=int, default=8,
                   help="concurrent connectors, each one connection at a time (default 8)")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.connectors < 1:
        p.error("--duration and --connectors must be positive")
    return args


def _settle(groups: dict[str, list[int]]) -> None:
    # settle() knows router and workers: everything of the node that is not the router is a worker.
    node_load, other_load = settle({"router": groups["router"], "workers": groups["controller"] + groups["containers"]},
                                   limit=10.0)
    if other_load > 15:
        print(f"#   rest of the machine {other_load:.0f}% of one core before the next row -- something else "
              "is running: expect lower, noisier figures", flush=True)


def _require_running(node: GatewayNode) -> None:
    if node.process is None or node.process.poll() is not None:
        raise RuntimeError("the node exited during the run (its log tail follows)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` must clean up like Ctrl-C does, through the finally below.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    n = args.connectors
    print(f"# connect benchmark, {date.today()}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; {args.duration:g}s per row, {n} connectors, "
          "json over WebSocket, connect -> WELCOME -> GOODBYE -> close", flush=True)
    gateway_dir = temp_workdir("gw-bench-")
    gateway = GatewayNode(gateway_dir)
    bare_dir: Path | None = None
    bare: BareNode | None = None
    current: GatewayNode = gateway
    rows: list[Result] = []
    started = time.monotonic()
    try:
        gateway.start()
        print(f"# gateway node ready in {time.monotonic() - started:.1f}s ({gateway_dir})", flush=True)
        assert gateway.process is not None
        gateway_config = yaml.safe_load((gateway.cbdir / "config.yaml").read_text())
        ws_path = websocket_path(gateway_config)[0]
        groups = node_groups(gateway.process.pid)
        port = gateway.router_port
        meter = CpuMeter(groups)

        _settle(groups)
        warm = run_row(port, ws_path, anonymous_login("gateway"), n, WARMUP_SECONDS, None)
        if not warm.connections:
            report(warm)
            raise RuntimeError("no connection succeeded during the warm-up")

        def gateway_row(login: Login) -> Result:
            _require_running(gateway)
            _settle(groups)
            row = run_row(port, ws_path, login, n, args.duration, meter)
            _require_running(gateway)
            rows.append(row)
            report(row)
            return row

        gateway_row(anonymous_login("gateway"))
        gateway_row(renewal_login(port, ws_path, n))

        best = max(r.per_second for r in rows)
        count = max(200, int(best * args.duration * TICKET_MARGIN) + 4 * n)
        t0 = time.monotonic()
        tickets = asyncio.run(_fetch_tickets(gateway.bridge_port, count))
        print(f"# fetched {len(tickets):,} tickets in {time.monotonic() - t0:.1f}s (not timed)", flush=True)
        gateway_row(ticket_login(tickets))
        gateway_row(jwt_login(n, args.duration))
        gateway.stop()

        bare_dir = temp_workdir("cb-bench-")
        bare = BareNode(bare_dir)
        bare.node_config = bare_config(gateway_config, bare.router_port)
        current = bare
        t0 = time.monotonic()
        bare.start()
        print(f"# bare crossbar node ready in {time.monotonic() - t0:.1f}s ({bare_dir})", flush=True)
        assert bare.process is not None
        bare_groups = node_groups(bare.process.pid)
        run_row(bare.router_port, ws_path, anonymous_login("bare crossbar"), n, WARMUP_SECONDS, None)
        _settle(bare_groups)
        base = run_row(bare.router_port, ws_path, anonymous_login("bare crossbar"), n, args.duration,
                       CpuMeter(bare_groups))
        _require_running(bare)
        rows.append(base)
        report(base)
        bare.stop()

        for r in rows:
            if r is not base and base.per_second:
                r.ratio = r.per_second / base.per_second
        print()
        print(format_table(rows))
        print(f"\n# total {time.monotonic() - started:.0f}s")
        return 0
    except KeyboardInterrupt:
        print("\n# interrupted; stopping the node", file=sys.stderr)
        return 130
    except Exception:
        print(f"# node log tail ({current.log_path}):\n{current.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        # Every exit path: no node worker may outlive the run.
        gateway.stop()
        remove_workdir(gateway_dir)
        if bare is not None:
            bare.stop()
        if bare_dir is not None:
            remove_workdir(bare_dir)


if __name__ == "__main__":
    sys.exit(main())
