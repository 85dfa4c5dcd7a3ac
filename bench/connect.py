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
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make bench, tests.support and components importable.
    sys.path.insert(0, str(REPO))

from bench._lib.cpu import CpuMeter, Groups, by_role, settle  # noqa: E402
from bench._lib.demo import REALM  # noqa: E402
from bench._lib.nodes import Run, require_running, run_benchmark, websocket_path  # noqa: E402
from bench._lib.publishers import HttpConnection  # noqa: E402
from bench._lib.report import cpu_cell, fmt_rate, header, table  # noqa: E402
from bench._lib.stats import nearest_rank  # noqa: E402
from bench._lib.websocket import HOST, WebSocketClient  # noqa: E402
from tests.support.harness import JWT_SECRET, make_jwt  # noqa: E402

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


# ---------------------------------------------------------------------------
# One connection
# ---------------------------------------------------------------------------

class _Connection(WebSocketClient):
    """One WAMP session's whole life over WebSocket (json): handshake, HELLO, (CHALLENGE ->
    AUTHENTICATE), WELCOME, GOODBYE and its answer, close. ``welcome`` resolves with the
    WELCOME details (or fails with the reason); ``gone`` when the connection is closed."""

    def __init__(self, port: int, path: str, details: dict[str, Any], credential: str | None) -> None:
        super().__init__(port, path, "wamp.2.json")
        loop = asyncio.get_running_loop()
        self._details = details
        self._credential = credential
        self._goodbye_sent = False
        self._close_sent = False
        self.welcome_at = 0.0
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        #: Set when something went wrong after WELCOME (during the leave).
        self.leave_error: str | None = None

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

    def on_open(self) -> None:
        self._send([_HELLO, REALM, self._details])

    def on_close_frame(self, payload: bytearray) -> None:
        # Ours answered (the router drops the connection next), or the router's own.
        if not self._close_sent:
            self._close_sent = True
            self.send_frame(8, bytes(payload[:2]))
            reason = payload[2:].decode(errors="replace")
            self.fail(f"closed by the router: {reason or 'no reason'}")

    def _send(self, msg: list[Any]) -> None:
        self.send_frame(1, json.dumps(msg).encode())

    def on_message(self, payload: bytearray, now: float) -> None:
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
                self.fail(f"CHALLENGE ({msg[1]}) without a credential to answer it")
            else:
                self._send([_AUTHENTICATE, self._credential, {}])
        elif code == _ABORT:
            message = msg[1].get("message") if isinstance(msg[1], dict) else None
            self.fail(f"ABORT {msg[2]}" + (f": {message}" if message else ""))
        elif code == _GOODBYE and self._goodbye_sent:
            # The router's answer to ours: close the WebSocket; the router drops the TCP connection.
            self._close_sent = True
            self.send_frame(8, (1000).to_bytes(2, "big"))
        elif code == _GOODBYE:
            self.fail(f"GOODBYE from the router before WELCOME: {msg[2]}")

    def fail(self, reason: str) -> None:
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
        return 1000 * nearest_rank(self.latencies, q)


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
    conns = [HttpConnection(port) for _ in range(in_flight)]
    tickets: list[str] = []
    todo = count

    async def fetch(conn: HttpConnection, worker: int) -> None:
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
# Output
# ---------------------------------------------------------------------------

def format_table(rows: list[Result]) -> str:
    head = ("| path | login | connectors | connections | connections/s | p50 ms | p99 ms | errors | gateway/bare "
            "| CPU % router / controller / containers / client / other |")
    return table(head, ([r.path, r.login, str(r.connectors), f"{r.connections:,}", fmt_rate(r.per_second),
                         f"{r.percentile_ms(0.5):.1f}", f"{r.percentile_ms(0.99):.1f}", str(r.error_count),
                         f"{r.ratio:.2f}" if r.ratio is not None else "",
                         cpu_cell(r.cpu, ("router", "controller", "containers", "publisher", "other"))]
                        for r in rows))


def report(row: Result) -> None:
    print(f"#   {row.path}, {row.login}: {fmt_rate(row.per_second)} connections/s, "
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


def _settle(groups: Groups) -> None:
    _, other_load = settle(groups, limit=10.0)
    if other_load > 15:
        print(f"#   rest of the machine {other_load:.0f}% of one core before the next row -- something else "
              "is running: expect lower, noisier figures", flush=True)


def measure(run: Run, args: argparse.Namespace) -> str:
    n = args.connectors
    print(header("connect", f"{args.duration:g}s per row, {n} connectors, "
                 "json over WebSocket, connect -> WELCOME -> GOODBYE -> close"), flush=True)
    gateway = run.gateway(label="gateway node")
    assert gateway.process is not None
    gateway_config = yaml.safe_load((gateway.cbdir / "config.yaml").read_text())
    ws_path = websocket_path(gateway_config)[0]
    groups = by_role(gateway.process.pid)
    port = gateway.router_port
    meter = CpuMeter(groups)
    rows: list[Result] = []

    _settle(groups)
    warm = run_row(port, ws_path, anonymous_login("gateway"), n, WARMUP_SECONDS, None)
    if not warm.connections:
        report(warm)
        raise RuntimeError("no connection succeeded during the warm-up")

    def gateway_row(login: Login) -> Result:
        require_running(gateway)
        _settle(groups)
        row = run_row(port, ws_path, login, n, args.duration, meter)
        require_running(gateway)
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

    bare = run.bare_router(gateway_config)
    assert bare.process is not None
    bare_groups = by_role(bare.process.pid)
    run_row(bare.router_port, ws_path, anonymous_login("bare crossbar"), n, WARMUP_SECONDS, None)
    _settle(bare_groups)
    base = run_row(bare.router_port, ws_path, anonymous_login("bare crossbar"), n, args.duration,
                   CpuMeter(bare_groups))
    require_running(bare)
    rows.append(base)
    report(base)
    bare.stop()

    for r in rows:
        if r is not base and base.per_second:
            r.ratio = r.per_second / base.per_second
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
