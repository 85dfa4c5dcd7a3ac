"""The JS client (clients/js) against real gateway nodes: its Node test suites, run by ``node --test``.

Two nodes: the session's shared one, and one of this module whose event log keeps at most 5 events
per class and prunes every half second (so that a replay is truncated for real), and whose tests may
break it (its last test kills the container worker of the active dispatcher). The Node tests find
them through GW_TEST_* environment variables; tiny HTTP endpoints here let them kill a WAMP session
from the router's side (``wamp.session.kill``, called by a backend client), as a network or router
failure would, and stop then kill the process of the gap node's active dispatcher.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, JWT_SECRET, REPO, GatewayNode, remove_workdir, temp_workdir
from tests.integration.test_continuous_service import container_pids

JS = REPO / "clients" / "js"
#: This suite's files only: other files in test/integration are run by their own wrappers.
INTEGRATION_TESTS = [JS / "test" / "integration" / name
                     for name in ("client.test.mjs", "persistent.test.mjs", "gap.test.mjs")]
#: Housekeeping (retention included) every half second, at most 5 logged events per class.
GAP_STORE = {"max_logged_per_class": 5, "prune_interval": 0.5}
NODE_TIMEOUT = 120


@contextmanager
def http_endpoint(name: str, action: Callable[[str, dict[str, Any]], Any]) -> Iterator[str]:
    """A local URL whose POST /<path> with a JSON body runs ``action(path, body)``: 200 with its JSON
    answer, or 500 with the exception (the Node test shows it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                status, body = 200, json.dumps(action(self.path.strip("/"), doc)).encode()
            except Exception as exc:
                status, body = 500, f"{type(exc).__name__}: {exc}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def session_killer(node: GatewayNode) -> Iterator[str]:
    """A URL that takes POST {"session": id} and kills that WAMP session with the router's meta procedure."""
    backend = node.backend_client().connect()

    def kill(_: str, doc: dict[str, Any]) -> str:
        backend.call("wamp.session.kill", int(doc["session"]), reason="wamp.close.killed", message="killed by the test")
        return "killed"

    try:
        with http_endpoint("session-killer", kill) as url:
            yield f"{url}/kill"
    finally:
        backend.close()


@contextmanager
def dispatcher_killer(node: GatewayNode) -> Iterator[str]:
    """A URL for killing the container worker of ``node``'s active dispatcher in the middle of a call:
    POST /freeze stops (SIGSTOP) the container whose dispatcher answers ``gateway.replay`` (the
    dispatchers register it with the ``first`` policy: one answers, the other stands by), so that a
    call made next stays in flight to it; POST /kill then kills it (SIGKILL), and the router cancels
    that call (``wamp.error.canceled``) while the caller's session stays up. Crossbar does not restart
    the worker: the node goes on with the other one. Nothing stays stopped after the test."""
    backend = node.backend_client().connect()
    frozen: list[int] = []

    def answers_replay() -> bool:
        try:
            backend.call("gateway.replay", "p_probe", 0, 1, timeout=0.5)
        except concurrent.futures.TimeoutError:
            return False  # in flight to a stopped dispatcher: cancelled when it is killed
        except ApplicationError:
            pass  # a dispatcher answered (no such subscription)
        return True

    def act(path: str, _: dict[str, Any]) -> dict[str, Any]:
        if path == "freeze":
            assert not frozen, "a dispatcher is stopped already"
            for name, pid in sorted(container_pids(node).items()):
                os.kill(pid, signal.SIGSTOP)
                if not answers_replay():
                    frozen.append(pid)
                    return {"container": name, "pid": pid}
                os.kill(pid, signal.SIGCONT)
            raise AssertionError("gateway.replay was answered whichever container was stopped")
        if path == "kill":
            assert frozen, "no dispatcher is stopped"
            os.kill(frozen[0], signal.SIGKILL)
            return {"killed": frozen.pop()}
        raise ValueError(f"unknown action {path!r}")

    try:
        with http_endpoint("dispatcher-killer", act) as url:
            yield url
    finally:
        for pid in frozen:  # a test that failed in between: let the node stop normally
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        backend.close()


@pytest.fixture(scope="module")
def gap_node() -> Iterator[GatewayNode]:
    workdir = temp_workdir()
    gateway = GatewayNode(workdir, extra_config={"store": GAP_STORE})
    try:
        yield gateway
    finally:
        gateway.stop()
        remove_workdir(workdir)


@pytest.fixture(scope="module")
def js_env(request: pytest.FixtureRequest, gap_node: GatewayNode) -> Iterator[dict[str, str]]:
    """The environment of the Node tests; the gap node starts while the shared one does."""
    failed: list[BaseException] = []

    def start_gap_node() -> None:
        try:
            gap_node.start()
        except BaseException as exc:
            failed.append(exc)

    starter = threading.Thread(target=start_gap_node, name="gap-node")
    starter.start()
    try:
        node: GatewayNode = request.getfixturevalue("node")
    finally:
        starter.join()
    if failed:
        raise failed[0]
    with session_killer(node) as kill_url, dispatcher_killer(gap_node) as gap_dispatcher_url:
        yield {
            "GW_TEST_WS_URL": node.ws_url,
            "GW_TEST_BRIDGE_URL": node.bridge_url,
            "GW_TEST_API_KEY": API_KEY,
            "GW_TEST_JWT_SECRET": JWT_SECRET,
            "GW_TEST_KILL_URL": kill_url,
            "GW_TEST_GAP_WS_URL": gap_node.ws_url,
            "GW_TEST_GAP_BRIDGE_URL": gap_node.bridge_url,
            "GW_TEST_GAP_DISPATCHER_URL": gap_dispatcher_url,
        }


def run_node_tests(files: list[Path], env: dict[str, str] | None = None) -> str:
    """``node --test`` on ``files``; fails with node's whole output if any test fails. Node runs test
    files in child processes: they are in its process group, and none outlives the call."""
    node = shutil.which("node")
    assert node is not None, "Node.js 20+ is needed for the JS client's tests (apt-get install nodejs)"
    missing = [str(f) for f in files if not f.exists()]
    assert not missing, f"missing test files: {missing}"
    proc = subprocess.Popen(
        [node, "--experimental-websocket", "--test", "--test-reporter=spec", f"--test-timeout={NODE_TIMEOUT * 1000 // 2}",
         *(str(f) for f in files)],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"node --test did not finish within {NODE_TIMEOUT} s:\n{out}") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any test file process left behind
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"node --test failed (exit {proc.returncode}):\n{out}"
    return out


def test_the_client_against_real_gateways(js_env: dict[str, str]) -> None:
    out = run_node_tests(INTEGRATION_TESTS, js_env)
    assert "ℹ fail 0" in out and "ℹ skipped 0" in out and "ℹ todo 0" in out, out
