"""Start a real gateway node (Crossbar with our components) for tests and benchmarks.

``CrossbarNode`` starts and stops any Crossbar node; ``GatewayNode`` is ours (``bench/_lib/nodes.py``
adds a bare router for the benchmarks).

A node gets free ports, its own node directory, gateway.yaml and store in a
temporary directory, and runs in its own process group, so that stopping it
takes every worker with it, even when a test fails half-way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from components.cli import render_text
from components.config import load_config
from components.nodeconfig import RenderPaths

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-0123456789"
BACKEND_SECRET = "test-backend-secret-0123456789"
#: The shared secret JWT logins are signed with (auth.secret).
JWT_SECRET = "test-jwt-secret-0123456789abcdef-0123456789"


def make_jwt(claims: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    """A JWT login as a web-app would mint it (``exp`` one minute ahead unless given)."""
    import jwt

    # The "none" algorithm takes no key: PyJWT's annotation has no None, but it reads "" as none.
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, "" if algorithm == "none" else secret,
                      algorithm=algorithm)


VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CrossbarNode:
    """A Crossbar node in its own node directory and process group; subclasses write its config.

    ``start()`` returns once Crossbar says NODE_BOOT_COMPLETE and ``not_ready()`` has nothing to
    add; ``stop()`` takes every worker with it. Use ``start()``/``stop()`` or ``with``.
    """

    workdir: Path
    router_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, kw_only=True)

    @property
    def cbdir(self) -> Path:
        return self.workdir / "node"

    @property
    def log_path(self) -> Path:
        return self.workdir / "node.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.router_port}/ws"

    def write_config(self) -> None:
        """Write ``<cbdir>/config.yaml`` (and whatever else the node reads)."""
        raise NotImplementedError

    def not_ready(self) -> str | None:
        """Once booted: None if the node is ready for use, else what it still waits for."""
        return None

    def start(self, timeout: float = 60) -> Self:
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a node that failed to come up must not outlive the attempt
            raise
        return self

    def launch(self) -> None:
        """Start the node's processes without waiting for it to be ready (``start`` waits)."""
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env["PYTHONPATH"] = f"{REPO}:{self.workdir}"  # the workdir may hold test event modules
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "crossbar"), "start", "--cbdir", str(self.cbdir), "--logformat", "standard",
                 "--color", "false"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env=env, start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker is up (Crossbar says NODE_BOOT_COMPLETE) and ``not_ready()`` says
        nothing. Polls; never a fixed sleep."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the node exited with {self.process.returncode}:\n{self.log_tail()}")
            if "NODE_BOOT_COMPLETE" not in self.log_text():
                last = "still booting"
                time.sleep(0.1)
                continue
            waiting = self.not_ready()
            if waiting is None:
                return
            last = waiting
            time.sleep(0.1)
        raise TimeoutError(f"the node was not ready after {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        if self.process.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        # Workers are in the same process group: make sure none outlives the node.
        _signal_group(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole node (its process group) at once, as a machine that died would leave it."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class GatewayNode(CrossbarNode):
    """One gateway node: the router, our components and the bridge, on free ports."""

    bridge_port: int = field(default_factory=free_port)
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    def write_config(self) -> None:
        raw: dict[str, Any] = {
            "router": {"host": "127.0.0.1", "port": self.router_port},
            "bridge": {"host": "127.0.0.1", "port": self.bridge_port, "api_keys": [API_KEY]},
            "backend": {"secret": BACKEND_SECRET},
            "store": {"path": str(self.workdir / "store.sqlite3")},
            "auth": {"secret": JWT_SECRET},
            "events": {"files": [str(REPO / "examples" / "demo_events.yaml"),
                                 str(REPO / "tests" / "integration" / "identity_events.yaml")]},
        }
        for section, values in self.extra_config.items():
            raw.setdefault(section, {}).update(values)
        config_file = self.workdir / "gateway.yaml"
        config_file.write_text(yaml.safe_dump(raw))
        cfg = load_config(config_file, {})  # relative definition files are relative to the workdir
        paths = RenderPaths.in_repo(REPO, config_file)
        self.cbdir.mkdir(parents=True, exist_ok=True)
        (self.cbdir / "config.yaml").write_text(render_text(cfg, paths))

    def not_ready(self) -> str | None:
        """The bridge says an event posted now would be accepted (GET /healthz answers 200)."""
        try:
            r = self.get("/healthz", timeout=2)
        except OSError as exc:
            return str(exc)
        return None if r.status == 200 else f"{r.status} {r.body}"

    # -- HTTP helpers -----------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 10) -> Response:
        req = urllib.request.Request(self.bridge_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, _json(resp.read()), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return Response(exc.code, _json(exc.read()), dict(exc.headers))

    def backend_client(self) -> Any:
        """A (not yet connected) WAMP client with role backend, over the components' unix socket."""
        from tests.support.wamp import WampClient

        return WampClient("", serializer="msgpack", authid="bridge", secret=BACKEND_SECRET,
                          unix_path=str(self.cbdir / "backend.sock"))

    def get(self, path: str, timeout: float = 10) -> Response:
        return self.request("GET", path, timeout=timeout)

    def post_event(self, event: str, data: Any, key: str = API_KEY, **extra: Any) -> Response:
        body = json.dumps({"event": event, "data": data, **extra}).encode()
        return self.request("POST", "/events", body, {"Authorization": f"Bearer {key}",
                                                       "Content-Type": "application/json"})

    def ticket(self, user: str, roles: list[str] | None = None, ttl: float | None = None) -> str:
        """A one-time WAMP-ticket for ``user`` from POST /tickets."""
        doc: dict[str, Any] = {"user": user}
        if roles is not None:
            doc["roles"] = roles
        if ttl is not None:
            doc["ttl"] = ttl
        r = self.request("POST", "/tickets", json.dumps(doc).encode(), {"Authorization": f"Bearer {API_KEY}"})
        assert r.status == 201, (r.status, r.body)
        return str(r.body["ticket"])

    def client(self, user: str | None = None, roles: list[str] | None = None, **kw: Any) -> Any:
        """A connected WAMP client: anonymous, or logged in as ``user`` with a fresh ticket."""
        from tests.support.wamp import WampClient

        ticket = None if user is None else self.ticket(user, roles)
        return WampClient(self.ws_url, ticket=ticket, **kw).connect()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def running_node(extra_config: dict[str, Any] | None = None, prepare: Callable[[Path], None] | None = None,
                 ) -> Iterator[GatewayNode]:
    """A started node in a fresh temp dir (``prepare`` writes files there first); all gone afterwards."""
    workdir = temp_workdir()
    node = GatewayNode(workdir, extra_config=extra_config or {})
    try:
        if prepare is not None:
            prepare(workdir)
        node.start()
        yield node
    finally:
        node.stop()
        remove_workdir(workdir)


def temp_workdir(prefix: str = "gw-") -> Path:
    # Short paths: a unix socket path must stay under 108 bytes.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
