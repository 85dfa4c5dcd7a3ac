"""The web-app examples run as the README says, and what they publish arrives.

Each script runs in its own process, with the documented command line, against
a real node whose RabbitMQ ingest reads a queue of this test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.amqp import BROKER_URL, Broker, amqp_config, temporary_queues
from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "webapp"
TOPIC = "gateway.event.demo.message"


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[GatewayNode, str]]:
    with Broker() as broker, temporary_queues(broker, "examples", "examples-dead") as (queue, dead), \
            running_node({"amqp": amqp_config(queue, dead)}) as node:
        yield node, queue


def run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                               "PYTHONPATH": str(REPO), **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def texts(client: WampClient, n: int) -> list[str]:
    return [envelope["data"]["text"] for envelope in client.take(n)]


def test_publish_http(gateway: tuple[GatewayNode, str]) -> None:
    node, _ = gateway
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        out = run("publish_http.py", "--bridge", node.bridge_url, "--key", API_KEY, "--text", "by http")
        assert texts(client, 1) == ["by http"]
    assert out.startswith("202 {'id': 'example-")


def test_publish_xmlrpc(gateway: tuple[GatewayNode, str]) -> None:
    node, _ = gateway
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        out = run("publish_xmlrpc.py", "--bridge", node.bridge_url, "--key", API_KEY, "--text", "by xml-rpc")
        assert texts(client, 1) == ["by xml-rpc"]
    assert "'seq':" in out and "'ticket': 'gt_" in out


def test_publish_amqp(gateway: tuple[GatewayNode, str]) -> None:
    node, queue = gateway
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        out = run("publish_amqp.py", "--amqp", BROKER_URL, "--queue", queue, "--text", "by rabbitmq")
        assert texts(client, 1) == ["by rabbitmq"]
    assert out.startswith(f"queued example-") and queue in out


@pytest.mark.parametrize("transport", ["http", "xmlrpc", "amqp"])
def test_the_proxy_example_is_the_same_code_over_each_transport(gateway: tuple[GatewayNode, str],
                                                                 transport: str) -> None:
    node, _ = gateway
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        out = run("publish_proxy.py", "--config", str(node.workdir / "gateway.yaml"), "--text", f"via {transport}",
                  env={"GATEWAY_PROXY_TRANSPORT": transport})
        # The message, then the three of the batch; the refused one never left the process.
        assert texts(client, 4) == [f"via {transport}", "#0", "#1", "#2"]
    assert "refused:" in out and "text" in out
    assert "Ticket(" in out
