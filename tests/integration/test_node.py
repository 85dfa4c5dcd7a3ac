"""The node as an operator meets it: the commands, the committed config, a clean start log."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import REPO, VENV_BIN, GatewayNode

pytestmark = pytest.mark.integration


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "gateway"), *args], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


def test_the_start_log_is_clean(node: GatewayNode) -> None:
    log = node.log_text()
    boot = log[: log.index("NODE_BOOT_COMPLETE")]
    scary = [line for line in boot.splitlines()
             if re.search(r"(?i)traceback|warn|error|fail|could not|cannot|deprecat|exception", line)]
    assert scary == []
    assert "bridge listening on http://127.0.0.1:" in boot
    assert boot.count("dispatcher ready") == 2


def test_crossbar_accepts_the_committed_node_config() -> None:
    result = subprocess.run([str(VENV_BIN / "crossbar"), "check", "--cbdir", str(REPO / ".crossbar")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_summarises_a_good_config() -> None:
    result = gateway("check-config")
    assert result.returncode == 0, result.stderr
    assert "ws://127.0.0.1:8080/ws" in result.stdout and "demo.message (public)" in result.stdout


def test_check_config_names_a_bad_env_override() -> None:
    result = gateway("check-config", env={"GATEWAY_ROUTER_PORT": "99999"})
    assert result.returncode == 2
    assert "in router.port (from env GATEWAY_ROUTER_PORT)" in result.stderr and "99999" in result.stderr


def test_the_example_key_is_refused_off_loopback() -> None:
    result = gateway("check-config", env={"GATEWAY_BRIDGE_HOST": "0.0.0.0"})
    assert result.returncode == 2 and "example key" in result.stderr


def test_render_writes_a_config_with_env_ports(tmp_path: Path) -> None:
    out = tmp_path / "config.yaml"
    result = gateway("render", "--out", str(out), env={"GATEWAY_ROUTER_PORT": "9123"})
    assert result.returncode == 0, result.stderr
    assert "port: 9123" in out.read_text()


def test_run_refuses_to_start_with_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text("bridge:\n  prot: 1\n")
    result = gateway("run", "--config", str(bad), "--cbdir", str(tmp_path / "node"))
    assert result.returncode == 2 and "in bridge.prot: unknown key" in result.stderr
    assert not (tmp_path / "node" / "run.yaml").exists()
