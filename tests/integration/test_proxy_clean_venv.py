"""The proxy works in a web-app's virtualenv that has only PyYAML and pika: no pydantic, Twisted, autobahn
or Crossbar. Its events are then checked by the gateway's catalog (JSON Schemas), over all three transports,
against a real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import Broker, amqp_config, temporary_queues
from tests.support.harness import REPO, GatewayNode, remove_workdir, running_node, temp_workdir
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
#: What a web-app must not need (and the clean venv does not have).
SERVER_PACKAGES = ("twisted", "autobahn", "crossbar", "txaio", "pydantic", "pydantic_core", "jwt", "lark")

SCRIPT = textwrap.dedent('''\
    """Run in the clean venv: use the proxy over each transport, report what happened as JSON."""
    import importlib.util
    import json
    import sys

    from webapp_bridge.proxy import EventRejected, GatewayProxy, Published

    config, room = sys.argv[1:]
    report = {"transports": {}}
    for transport in ("http", "xmlrpc", "amqp"):
        with GatewayProxy.from_config(config, transport=transport, env={}) as proxy:
            one = proxy.publish("demo.message", {"room": room, "text": transport, "author": "venv"})
            many = proxy.publish_many([("demo.message", {"room": room, "text": transport + " 2", "author": "venv"}),
                                       ("demo.message", {"room": 5, "text": "t", "author": "a", "colour": "red"})])
            refusals = []
            for name, data in (("demo.message", {"room": room, "text": 1}), ("demo.nothing", {})):
                try:
                    proxy.publish(name, data)
                except EventRejected as exc:
                    refusals.append({"status": exc.status, "code": exc.code, "details": exc.details})
            report["transports"][transport] = {
                "ids": [one.id] + [r.id for r in many if isinstance(r, Published)],
                "queued": one.queued,
                "batch_refusal": [d["path"] for d in many[1].details],
                "refusals": refusals,
                "tier": proxy._validator.tier,
                "ticket": proxy.ticket("alice", roles=["staff"]).ticket,
                "jwt": proxy.jwt("bob"),
            }
    server = %r
    report["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in server)
    report["installed"] = sorted(p for p in server if importlib.util.find_spec(p) is not None)
    print(json.dumps(report))
''' % (list(SERVER_PACKAGES),))


@pytest.fixture(scope="session")
def clean_python() -> Iterator[Path]:
    """The python of a virtualenv without site packages holding only PyYAML and pika; removed afterwards."""
    where = temp_workdir("gw-venv-")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True,
                       capture_output=True, timeout=120)
        python = where / "venv" / "bin" / "python"
        # This venv's pip installs into the clean one (from its cache, else from PyPI): quicker than ensurepip.
        done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                               "--no-deps", "--disable-pip-version-check", "pyyaml>=6,<7", "pika>=1.3,<2"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"pip could not install pyyaml and pika:\n{done.stdout}\n{done.stderr}"
        yield python
    finally:
        remove_workdir(where)


@pytest.fixture(scope="module")
def amqp_node() -> Iterator[GatewayNode]:
    with Broker() as broker, temporary_queues(broker, "venv", "venv-dead") as (queue, dead), \
            running_node({"amqp": amqp_config(queue, dead)}) as node:
        yield node


def test_the_proxy_needs_only_pyyaml_and_pika(clean_python: Path, amqp_node: GatewayNode) -> None:
    room = "clean-venv"
    script = clean_python.parent.parent / "use_proxy.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(REPO)  # components is importable, but without pydantic its events are not
    with amqp_node.client() as client:
        client.subscribe("gateway.event.demo.message")
        done = subprocess.run([str(clean_python), str(script), str(amqp_node.workdir / "gateway.yaml"), room],
                              capture_output=True, text=True, timeout=120, cwd=script.parent, env=env)
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        sent = [i for t in report["transports"].values() for i in t["ids"]]
        arrived = client.take(len(sent), timeout=30)
    assert report["installed"] == [] and report["loaded"] == []
    assert sorted(e["id"] for e in arrived) == sorted(sent) and len(set(sent)) == 6
    assert {e["data"]["text"] for e in arrived} == {"http", "http 2", "xmlrpc", "xmlrpc 2", "amqp", "amqp 2"}
    for transport, seen in report["transports"].items():
        assert seen["tier"] == "catalog" and seen["queued"] == (transport == "amqp")
        assert seen["batch_refusal"] == ["data.room", "data.colour"]
        invalid, unknown = seen["refusals"]
        assert (invalid["status"], invalid["code"]) == (400, "invalid_event")
        assert [d["path"] for d in invalid["details"]] == ["data.text", "data.author"]
        assert (unknown["status"], unknown["code"]) == (404, "unknown_event")
        with WampClient(amqp_node.ws_url, ticket=seen["ticket"]) as alice:
            assert alice.authextra_welcome["roles"] == ["staff"]
        with WampClient(amqp_node.ws_url, ticket=seen["jwt"]) as bob:
            assert bob.authextra_welcome["user"] == "bob"
