"""Node tests against a real node: wampy.js interop, and the JS client over a flaky network.

The tests themselves are in clients/js/test/integration/ (wampy.test.mjs, flaky.test.mjs, run by
``node --test``); this starts the node they talk to and fails with node's whole output if they do.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.harness import API_KEY, REPO, GatewayNode, running_node

pytestmark = pytest.mark.integration
TESTS = REPO / "clients" / "js" / "test" / "integration"


@pytest.fixture(scope="module")
def js_node() -> Iterator[GatewayNode]:
    """One node for this module: the Node tests use their own rooms and query topics, and the flaky
    test breaks only its own TCP proxy, never the node."""
    with running_node() as gateway:
        yield gateway


def run_node_tests(node: GatewayNode, test_file: str, timeout: float = 90) -> str:
    """Run one test file with ``node --test``; fail with the whole output unless every test passed."""
    env = {**os.environ, "GW_TEST_WS_URL": node.ws_url, "GW_TEST_ROUTER_PORT": str(node.router_port),
           "GW_TEST_BRIDGE_URL": node.bridge_url, "GW_TEST_API_KEY": API_KEY}
    command = ["node", "--experimental-websocket", "--test", "--test-reporter=tap", str(TESTS / test_file)]
    # Its own process group: node --test runs the file in a child process, which must not
    # outlive a timeout either.
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        pytest.fail(f"node --test {test_file} did not finish in {timeout} s:\n{output}")
    finally:
        _kill_group(proc)
    counts = {name: int(n) for name, n in re.findall(r"^# (tests|pass|fail|skipped|cancelled|todo) (\d+)$",
                                                      output, re.MULTILINE)}
    if proc.returncode != 0 or counts.get("fail", 1) or counts.get("cancelled", 1):
        pytest.fail(f"node --test {test_file} failed (exit {proc.returncode}):\n{output}", pytrace=False)
    # A skipped Node test means it did not get the gateway: that is not a pass.
    assert counts.get("pass", 0) > 0 and counts.get("skipped", 0) == 0 and counts.get("todo", 0) == 0, output
    return output


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(5)


def test_wampy_speaks_the_gateway_protocol(js_node: GatewayNode) -> None:
    output = run_node_tests(js_node, "wampy.test.mjs")
    assert "# pass 4" in output, output


def test_the_js_client_misses_nothing_over_a_flaky_network(js_node: GatewayNode) -> None:
    output = run_node_tests(js_node, "flaky.test.mjs")
    print(output)  # the chaos seed and the counts, for pytest -s and for a failure report
