"""The demo page (examples/page/) on the JS client, in headless Chromium (tests/browser/*.mjs).

Each test runs one playwright-core script with node against a real gateway node; the script
prints what it checked and exits 0, or says what failed. A script asks the test for what it cannot
do itself (stop or start the gateway, wait for its pruner) with a line "@control <what>" and waits
for the answer "ok" on stdin. Chromium is Debian's
(/usr/bin/chromium; `make test` installs it); the scripts close it, and killing a script's process
group takes its browser with it (Chromium exits when playwright's pipe closes).
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.store.sqlite import SqliteStore
from tests.support.harness import API_KEY, REPO, GatewayNode, make_jwt, remove_workdir, running_node, temp_workdir

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCRIPTS = REPO / "tests" / "browser"
#: A script's whole run, browser start included; each of its waits is bounded (20 s) well below.
SCRIPT_TIMEOUT = 120.0


@pytest.fixture(scope="module", autouse=True)
def _needs_node_and_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    if shutil.which("node") is None:
        pytest.fail("node (Node.js 20+) is not on PATH")
    if not (REPO / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules/playwright-core is missing: run `make install` (npm ci)")


@pytest.fixture(scope="module")
def shared_node() -> Iterator[GatewayNode]:
    """One node for the tests that do not stop it; each uses its own users and browser contexts."""
    with running_node() as gateway:
        yield gateway


def run_script(name: str, node: GatewayNode, artifacts: Path, on_control: Callable[[str], None] | None = None,
               env: dict[str, str] | None = None) -> str:
    """Run tests/browser/<name>.mjs against ``node``; its output, or the test fails with it."""
    full_env = {**os.environ, "DEMO_PAGE_URL": f"http://127.0.0.1:{node.router_port}/",
                "DEMO_BRIDGE_URL": node.bridge_url, "DEMO_API_KEY": API_KEY, "DEMO_ARTIFACTS": str(artifacts),
                "CHROMIUM_PATH": str(CHROMIUM), **(env or {})}
    proc = subprocess.Popen(["node", str(SCRIPTS / f"{name}.mjs")], cwd=REPO, env=full_env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.put(line)
        except (OSError, ValueError):
            pass  # closed by _end() after a timeout
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    output: list[str] = []
    deadline = time.monotonic() + SCRIPT_TIMEOUT
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{name}.mjs ran over {SCRIPT_TIMEOUT}s:\n{''.join(output)}")
            if line is None:
                break
            if line.startswith("@control "):
                assert on_control is not None, f"{name}.mjs asked for {line.strip()} and this test has no control"
                assert proc.stdin is not None
                try:
                    on_control(line.split(" ", 1)[1].strip())
                    answer = "ok"
                except Exception as exc:  # the script says it failed, with why
                    answer = f"error {exc!r}".replace("\n", " ")
                proc.stdin.write(answer + "\n")
                proc.stdin.flush()
                output.append(f"{line.rstrip()} -> {answer}\n")
                continue
            output.append(line)
        proc.wait(timeout=30)
    finally:
        _end(proc, reader)
    text = "".join(output)
    print(text)  # what the script checked, for -s / -rA
    if proc.returncode != 0:
        pytest.fail(f"{name}.mjs failed (exit {proc.returncode}):\n{text}")
    return text


def _end(proc: subprocess.Popen[str], reader: threading.Thread) -> None:
    """The script and its browser gone: SIGTERM (it closes Chromium), then SIGKILL for the group.
    Only while the script is not reaped yet: after that its group id may belong to someone else."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
    reader.join(5)  # it reads to the end of the pipe, which the dead script closed
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def test_the_page_shows_an_event_posted_over_http(shared_node: GatewayNode, tmp_path: Path) -> None:
    run_script("live_event", shared_node, tmp_path)
    assert (tmp_path / "live.png").stat().st_size > 10_000 and (tmp_path / "live-narrow.png").exists()


def test_the_cookie_holds_the_client_token_until_it_expires(shared_node: GatewayNode, tmp_path: Path) -> None:
    run_script("token_cookie", shared_node, tmp_path)


def test_a_query_error_shows_the_message_and_a_caret(shared_node: GatewayNode, tmp_path: Path) -> None:
    run_script("query_error", shared_node, tmp_path)


def test_a_reopened_page_shows_every_missed_order_once_in_order(shared_node: GatewayNode, tmp_path: Path) -> None:
    run_script("persistent_reopen", shared_node, tmp_path)


@pytest.fixture(scope="module")
def small_log_node() -> Iterator[GatewayNode]:
    """A node whose event log keeps 5 events per class, pruned every half second: for the gap test,
    and for the restart test, which stops and starts it (it never has more than 2 orders to replay)."""
    workdir = temp_workdir()
    node = GatewayNode(workdir, extra_config={"store": {"max_logged_per_class": 5, "prune_interval": 0.5}})
    try:
        node.start()
        yield node
    finally:
        node.stop()
        remove_workdir(workdir)


def test_a_gap_in_the_replay_shows_a_notice(small_log_node: GatewayNode, tmp_path: Path) -> None:
    def control(what: str) -> None:
        command, seq = what.split()
        assert command == "dropped-through", what
        wait_dropped_through(small_log_node, "demo.order", int(seq))

    run_script("gap_notice", small_log_node, tmp_path, control)


def wait_dropped_through(node: GatewayNode, event: str, seq: int, timeout: float = 15) -> None:
    """Until the node's store says retention dropped ``event`` events up to ``seq`` (its pruner runs
    on its own schedule)."""
    store = SqliteStore(node.workdir / "store.sqlite3")
    try:
        deadline = time.monotonic() + timeout
        while (through := store.dropped_through([event])) < seq:
            assert time.monotonic() < deadline, f"{event} dropped through {through} only, not {seq}"
            time.sleep(0.05)
    finally:
        store.close()


def test_the_page_resumes_after_the_gateway_restarts(small_log_node: GatewayNode, tmp_path: Path) -> None:
    node = small_log_node
    ports = (node.router_port, node.bridge_port)

    def control(what: str) -> None:
        if what == "stop":
            node.stop()  # SIGTERM to the node's process group: router, bridge and components
        elif what == "start":
            node.start()  # the same ports and workdir: the store (subscriptions, log) survives
            assert (node.router_port, node.bridge_port) == ports
        else:
            raise ValueError(f"unknown control {what!r}")

    # A JWT can log in again by itself after the restart (a ticket cannot: the page asks for one).
    jwt = make_jwt({"sub": "rita", "exp": int(time.time()) + 600})
    run_script("router_restart", node, tmp_path, control, env={"DEMO_JWT": jwt})
