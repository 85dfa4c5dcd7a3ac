"""docs/cluster.md's load balancer, run: docs/haproxy.cfg in Debian's haproxy in front of two real nodes.

The config is the docs' own file with the nodes' addresses, a free port and a certificate made here put
in (and a runtime API socket added, to read the servers' states from). Through it, over TLS: an event
posted is accepted, a WAMP client over wss:// receives it, and with one node stopped the health check
takes that node out and both go on on the other. haproxy runs in the foreground (`haproxy -db`) and is
killed afterwards; the system's haproxy service, if any, is not used.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import postgresql_schema
from tests.integration.test_cluster import TOPIC, message, start_cluster, stop_cluster
from tests.support.harness import API_KEY, REPO, GatewayNode, Response, free_port, remove_workdir, temp_workdir
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient

HAPROXY = Path("/usr/sbin/haproxy")  # Debian's haproxy 2.6: `make test` installs it
CONFIG = REPO / "docs" / "haproxy.cfg"
#: A server line of docs/haproxy.cfg: its name, the example node's number (10.0.0.N) and port.
SERVER = re.compile(r"^(\s*server (\w+) )10\.0\.0\.(\d+):(8080|8081)( .*)$")


def render(template: str, nodes: list[GatewayNode], port: int, pem: Path, admin: Path) -> tuple[str, dict[str, int]]:
    """The config with ``nodes`` for the example's first servers (the others dropped), haproxy on
    127.0.0.1:``port`` with the certificate ``pem``, and a runtime API on the unix socket ``admin``;
    and which node (index) each server name stands for."""

    def once(text: str, old: str, new: str) -> str:
        assert text.count(old) == 1, f"docs/haproxy.cfg no longer has one {old!r}: update this test"
        return text.replace(old, new)

    text = once(template, "bind :443 ", f"bind 127.0.0.1:{port} ")
    text = once(text, "/etc/haproxy/gateway.pem", str(pem))
    text = once(text, "\nglobal\n", f"\nglobal\n    stats socket {admin} level admin\n")
    lines: list[str] = []
    names: dict[str, int] = {}
    for line in text.splitlines():
        m = SERVER.match(line)
        if m is None:
            lines.append(line)
            continue
        head, name, number, example_port, rest = m.groups()
        index = int(number) - 1
        if index >= len(nodes):
            continue
        node = nodes[index]
        assert names.setdefault(name, index) == index, f"server {name} stands for two nodes"
        real = node.router_port if example_port == "8080" else node.bridge_port
        assert example_port == "8081" or " port 8081 " in rest, "a router's check asks its node's bridge"
        lines.append(f"{head}127.0.0.1:{real}{rest.replace(' port 8081 ', f' port {node.bridge_port} ')}")
    rendered = "\n".join(lines) + "\n"
    assert "10.0.0." not in rendered, rendered
    assert len(names) == len(nodes) and rendered.count("    server ") == 2 * len(nodes), rendered
    return rendered, names


@dataclass
class Balancer:
    """A running haproxy: TLS on ``port`` with a certificate trusted by ``tls``; its runtime API on ``admin``."""

    port: int
    admin: Path
    tls: ssl.SSLContext
    names: dict[str, int]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"wss://localhost:{self.port}/ws"

    def client(self) -> WampClient:
        return WampClient(self.ws_url, ssl=self.tls).connect()

    def post_event(self, event: str, data: Any) -> Response:
        req = urllib.request.Request(f"https://localhost:{self.port}/events", method="POST",
                                     data=json.dumps({"event": event, "data": data}).encode(),
                                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.tls) as resp:
                return Response(resp.status, json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.read().decode(errors="replace"))

    def servers(self) -> dict[tuple[str, str], dict[str, str]]:
        """``show stat`` of the runtime API: (backend, server) -> its row (status, scur, stot, ...)."""
        if self.process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.admin))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        header, *rows = data.decode().strip().splitlines()
        fields = header.lstrip("# ").split(",")
        table = [dict(zip(fields, row)) for row in csv.reader(rows)]
        return {(r["pxname"], r["svname"]): r for r in table if r["svname"] not in ("FRONTEND", "BACKEND")}

    def states(self) -> dict[tuple[str, str], str] | None:
        """Each server's status (UP, DOWN, "UP 1/2" while changing); None while haproxy is starting."""
        try:
            return {key: row["status"] for key, row in self.servers().items()}
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def haproxy(nodes: list[GatewayNode]) -> Iterator[Balancer]:
    """docs/haproxy.cfg for ``nodes``, running until every server is UP; killed afterwards."""
    if not HAPROXY.exists():
        pytest.fail(f"{HAPROXY} is missing: `make test` installs it (apt-get install haproxy)")
    workdir = temp_workdir("gw-lb-")
    try:
        cert, key, pem = workdir / "cert.pem", workdir / "key.pem", workdir / "gateway.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=30)
        pem.write_text(cert.read_text() + key.read_text())  # haproxy wants the certificate and its key in one file
        port, admin = free_port(), workdir / "admin.sock"
        config, names = render(CONFIG.read_text(), nodes, port, pem, admin)
        (workdir / "haproxy.cfg").write_text(config)
        log_path = workdir / "haproxy.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([str(HAPROXY), "-db", "-f", str(workdir / "haproxy.cfg")], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            balancer = Balancer(port, admin, ssl.create_default_context(cafile=str(cert)), names, process, log_path)
            wait_for(lambda: (s := balancer.states()) is not None and set(s.values()) == {"UP"}
                     and len(s) == 2 * len(nodes), timeout=30, what="haproxy with every server UP")
            yield balancer
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    finally:
        remove_workdir(workdir)


@pytest.fixture(scope="module")
def balanced() -> Iterator[tuple[list[GatewayNode], Balancer]]:
    with postgresql_schema() as store:
        nodes = start_cluster(store, ["a", "b"])
        try:
            with haproxy(nodes) as balancer:
                yield nodes, balancer
        finally:
            stop_cluster(nodes)


def test_the_docs_quote_the_tested_config() -> None:
    """docs/cluster.md shows docs/haproxy.cfg as it is: what readers copy is what these tests run."""
    doc = (REPO / "docs" / "cluster.md").read_text(encoding="utf-8")
    assert f"```\n{CONFIG.read_text(encoding='utf-8')}```\n" in doc, "docs/cluster.md's quote of docs/haproxy.cfg differs"


def test_an_event_posted_over_https_through_the_balancer_is_accepted_by_either_node(
        balanced: tuple[list[GatewayNode], Balancer]) -> None:
    _, balancer = balanced
    before = {key: int(row["stot"]) for key, row in balancer.servers().items()}
    answers = [balancer.post_event("demo.message", message(i)) for i in range(4)]
    assert [r.status for r in answers] == [202] * 4, [r.body for r in answers]
    after = {key: int(row["stot"]) for key, row in balancer.servers().items()}
    assert all(after[("bridges", name)] > before[("bridges", name)] for name in balancer.names), \
        "round robin: both bridges took posts"


def test_a_client_over_wss_through_the_balancer_receives_an_event_posted_through_it(
        balanced: tuple[list[GatewayNode], Balancer]) -> None:
    _, balancer = balanced
    with balancer.client() as client:
        client.subscribe(TOPIC)
        posted = balancer.post_event("demo.message", message(1, "wss"))
        assert posted.status == 202, posted.body
        got = client.take(1, timeout=20)
    assert got[0]["id"] == posted.body["id"] and got[0]["data"]["room"] == "wss"


def test_a_stopped_node_is_taken_out_and_the_balancer_goes_on_with_the_other(
        balanced: tuple[list[GatewayNode], Balancer]) -> None:
    """The node the client is on is stopped: its client is let go, the health checks take the node out of
    both backends, posts all go to the other node, and the client, connected again, gets events there."""
    nodes, balancer = balanced
    client = balancer.client()
    try:
        def on_one_node() -> str | None:
            on = [name for name in balancer.names if int(balancer.servers()[("routers", name)]["scur"]) > 0]
            return on[0] if len(on) == 1 else None

        name = wait_for(on_one_node, timeout=10, what="the client's connection on one router")
        (other,) = [n for n in balancer.names if n != name]
        nodes[balancer.names[name]].stop()
        assert client.disconnected.wait(20), "the stopped node's client was let go"
    finally:
        client.close()

    wait_for(lambda: all((s := balancer.states() or {}).get((backend, name), "").startswith("DOWN")
                         and s.get((backend, other)) == "UP" for backend in ("routers", "bridges")),
             timeout=30, what=f"haproxy seeing node {name} down and {other} up")
    before = {key: int(row["stot"]) for key, row in balancer.servers().items()}
    answers = [balancer.post_event("demo.message", message(i, "after")) for i in range(4)]
    assert [r.status for r in answers] == [202] * 4, [r.body for r in answers]
    after = {key: int(row["stot"]) for key, row in balancer.servers().items()}
    assert after[("bridges", name)] == before[("bridges", name)], "nothing sent to the stopped node"
    with balancer.client() as again:
        assert int(balancer.servers()[("routers", other)]["scur"]) > 0, "connected to the node left"
        again.subscribe(TOPIC)
        posted = balancer.post_event("demo.message", message(9, "after"))
        assert posted.status == 202, posted.body
        assert again.take(1, timeout=20)[0]["id"] == posted.body["id"]
