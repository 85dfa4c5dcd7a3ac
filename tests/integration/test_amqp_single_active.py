"""RabbitMQ ingest in a cluster (``cluster.enabled``): the queue's single active consumer makes one consumer of the
whole cluster get messages, and another take over when its connection ends; a queue declared without it is said
once, in words, and taken as soon as someone deleted it. Real RabbitMQ (this machine's), no gateway node: each
node's consuming bridge is an ``AmqpIngest`` (what the bridge runs), two of them in one process standing for two
nodes, each with a dispatcher that records what it was handed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import yaml

from tests.support.amqp import BROKER_URL, Broker, amqp_config, unique_name
from webapp_bridge.proxy import GatewayProxy
from webapp_bridge.server.amqp_rules import queue_arguments

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

#: Runs the ingests in a reactor of their own; ``sys.argv``: the amqp section (JSON), then the scenario.
SCRIPT = r"""
import json, sys, time
from pathlib import Path

import pika
from twisted.internet import reactor, task
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogBeginner

from components.config import AmqpConfig, ApiKey
from components.events import Registry
from webapp_bridge.server import amqp
from webapp_bridge.server.api import BridgeLogic

cfg = AmqpConfig(**json.loads(sys.argv[1]))
scenario = sys.argv[2]
lines = []
globalLogBeginner.beginLoggingTo([lambda event: lines.append(formatEvent(event))], redirectStandardIO=False)
registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=Path.cwd())
logic = BridgeLogic((ApiKey(name="tests", key="key-one-12345"),), registry, 65536)
got, seq, attempts = {}, [0], [0]
serve = amqp.AmqpIngest._serve

async def counted(self, connection):
    attempts[0] += 1
    return await serve(self, connection)
amqp.AmqpIngest._serve = counted


def ingest(name):
    got[name] = []

    async def dispatch(requests):
        results = []
        for request in requests:
            got[name].append(request.id)
            seq[0] += 1
            results.append({"id": request.id, "seq": seq[0]})
        return results
    return amqp.AmqpIngest(cfg, lambda: logic, dispatch, f"events-gateway tests single-active {name}",
                           single_active=True)


def blocking(work):
    # pika's blocking connection, in a thread: the reactor runs the ingests meanwhile.
    def run():
        connection = pika.BlockingConnection(pika.URLParameters(cfg.url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            return work(channel)
        finally:
            connection.close()
    return deferToThread(run)


def publish(ids):
    def work(channel):
        for message_id in ids:
            body = {"event": "demo.message", "data": {"room": "sac", "text": message_id, "author": "queue"}}
            channel.basic_publish("", cfg.queue, json.dumps(body).encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=message_id), mandatory=True)
    return blocking(work)


def consumers():
    return blocking(lambda channel: channel.queue_declare(cfg.queue, passive=True).method.consumer_count)


async def until(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await task.deferLater(reactor, 0.1, lambda: None)


async def received(n):
    return sum(len(ids) for ids in got.values()) >= n


async def takeover():
    first, second = ingest("first"), ingest("second")
    first.start()
    await until("the first consumer", lambda: ensureDeferred(_is(consumers(), 1)))
    second.start()
    await until("the second consumer", lambda: ensureDeferred(_is(consumers(), 2)))
    before = [f"before-{i}" for i in range(10)]
    await publish(before)
    await until("the messages before", lambda: received(10))
    await task.deferLater(reactor, 0.5, lambda: None)  # a message given to both would show by now
    # The first dies as a process does: its TCP connection ends without a word to the broker.
    first._connection.transport.abortConnection()
    # It connects again and registers again: behind the second, which the broker made active.
    await until("the first back as a consumer", lambda: ensureDeferred(_is(consumers(), 2)))
    after = [f"after-{i}" for i in range(10)]
    await publish(after)
    await until("the messages after", lambda: received(20))
    await task.deferLater(reactor, 0.5, lambda: None)
    await first.stop()
    await second.stop()
    return {}


async def misdeclared():
    only = ingest("only")
    only.start()
    await task.deferLater(reactor, 2.0, lambda: None)
    state = only.state
    tried = attempts[0]
    # Someone deletes the queue, as the log line says: the ingest declares it again and consumes.
    await blocking(lambda channel: channel.queue_delete(cfg.queue))
    await until("the queue declared again", lambda: ensureDeferred(_is(consumers(), 1)))
    await publish(["after-delete"])
    await until("the message", lambda: received(1))
    await only.stop()
    return {"state_while_refused": state, "attempts_while_refused": tried}


async def _is(d, expected):
    try:
        return (await d) == expected
    except Exception:  # the queue is not there yet
        return False


async def main():
    extra = await {"takeover": takeover, "misdeclared": misdeclared}[scenario]()
    print(json.dumps({"got": got, "log": lines, **extra}))


def done(result):
    if reactor.running:
        reactor.stop()
    return result

d = ensureDeferred(main())
d.addErrback(lambda failure: print(json.dumps({"error": failure.getTraceback(), "got": got, "log": lines})))
d.addBoth(done)
reactor.callLater(90, lambda: reactor.running and reactor.stop())
reactor.run()
"""


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    """A queue and a dead-letter queue of this test's own, deleted afterwards whatever happens."""
    names = unique_name("single-active"), unique_name("single-active-dead")
    try:
        yield names
    finally:
        with Broker() as broker:
            broker.delete(*names)


def run(scenario: str, queue: str, dead: str, **amqp: Any) -> dict[str, Any]:
    config = amqp_config(queue, dead, **amqp)
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(config), scenario], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in report, report["error"] + "\n" + "\n".join(report["log"])
    assert not [line for line in report["log"] if "Traceback" in line or "Unhandled" in line], report["log"]
    return report


def test_one_consumer_gets_the_messages_and_another_takes_over_when_its_connection_ends(
        queues: tuple[str, str]) -> None:
    queue, dead = queues
    report = run("takeover", queue, dead, reconnect_max_delay=1)
    got = report["got"]
    assert got["first"] == [f"before-{i}" for i in range(10)], "the first to consume was the active one, alone"
    assert got["second"] == [f"after-{i}" for i in range(10)], "the second took over, and the first came back idle"
    assert sum("single active consumer" in line and f"consuming {queue}" in line for line in report["log"]) >= 2
    with Broker() as broker:
        # Declared with the argument: the declaration a cluster's bridges make is accepted, a plain one refused.
        broker.channel.queue_declare(queue, durable=True, arguments={"x-single-active-consumer": True})
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            broker.channel.queue_declare(queue, durable=True)
        assert refused.value.reply_code == 406


def test_a_queue_declared_without_single_active_consumer_is_said_once_and_taken_once_deleted(
        queues: tuple[str, str]) -> None:
    queue, dead = queues
    with Broker() as broker:
        broker.declare(queue)  # as a single node, or a publisher, declares it: no arguments
    report = run("misdeclared", queue, dead, reconnect_max_delay=0.2)
    said = [line for line in report["log"] if "exists without single active consumer" in line]
    assert len(said) == 1, report["log"]
    assert f"'{queue}'" in said[0] and f"rabbitmqctl delete_queue {queue}" in said[0] and "amqp.queue" in said[0]
    assert "amqp://guest:***@127.0.0.1:" in said[0] and BROKER_URL not in said[0]
    assert report["state_while_refused"] == "connecting"
    assert report["attempts_while_refused"] >= 3, "checked again meanwhile, without a word"
    assert not [line for line in report["log"] if "trying again in" in line], "not the retry loop's line each time"
    assert report["got"]["only"] == ["after-delete"]
    assert any(f"the queue {queue} is declared with single active consumer now" in line for line in report["log"])


# -- publishers: the proxy (and the example script) use a queue as it is, and create one as the bridges would --


def publishing_proxy(tmp_path: Path, queue: str, cluster: bool, env: dict[str, str] | None = None) -> GatewayProxy:
    """A proxy publishing to ``queue`` over AMQP, as a web-app's gateway.yaml sets it up."""
    config = tmp_path / f"gateway-{queue}.yaml"
    config.write_text(yaml.safe_dump({"amqp": {"url": BROKER_URL, "queue": queue}, "cluster": {"enabled": cluster},
                                      "proxy": {"transport": "amqp", "retries": 0}}))
    return GatewayProxy.from_config(config, env=env or {}, validate=False)


def assert_single_active(broker: Broker, queue: str) -> None:
    """The queue has single active consumer: declared with it, accepted; plainly, refused (406)."""
    broker.channel.queue_declare(queue, durable=True, arguments=queue_arguments(True))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        broker.channel.queue_declare(queue, durable=True)
    assert refused.value.reply_code == 406


def test_the_proxy_publishes_to_a_clusters_queue_and_creates_a_missing_one_as_the_cluster_declares_it(
        tmp_path: Path) -> None:
    declared, missing = unique_name("proxy-cluster"), unique_name("proxy-cluster-new")
    try:
        with Broker() as broker:
            # Declared as a cluster's bridges declare it.
            broker.channel.queue_declare(declared, durable=True, arguments=queue_arguments(True))
            # A proxy configured as for a single node (which would have declared the queue plainly: refused) ...
            with publishing_proxy(tmp_path, declared, cluster=False) as proxy:
                first = proxy.publish("demo.message", {"room": "sac", "text": "to the cluster", "author": "proxy"})
            # ... and one of a cluster (env GATEWAY_CLUSTER, as a deployment sets it) whose queue nobody declared.
            with publishing_proxy(tmp_path, missing, cluster=False, env={"GATEWAY_CLUSTER": "1"}) as proxy:
                second = proxy.publish("demo.message", {"room": "sac", "text": "created", "author": "proxy"})
                again = proxy.publish("demo.message", {"room": "sac", "text": "once more", "author": "proxy"})
            assert first.queued and second.queued and again.queued
            assert broker.wait_get(declared).properties.message_id == first.id
            assert [m.properties.message_id for m in (broker.wait_get(missing), broker.wait_get(missing))] == \
                [second.id, again.id]
            for queue in (declared, missing):
                assert_single_active(broker, queue)
    finally:
        with Broker() as broker:
            broker.delete(declared, missing)


def test_the_example_script_publishes_to_a_clusters_queue_and_creates_a_missing_one_with_cluster() -> None:
    declared, missing = unique_name("example-cluster"), unique_name("example-cluster-new")
    script = str(REPO / "examples" / "webapp" / "publish_amqp.py")
    try:
        with Broker() as broker:
            broker.channel.queue_declare(declared, durable=True, arguments=queue_arguments(True))
            for queue, extra in ((declared, []), (missing, ["--cluster"])):
                done = subprocess.run([sys.executable, script, "--amqp", BROKER_URL, "--queue", queue, *extra],
                                      capture_output=True, text=True, timeout=60)
                assert done.returncode == 0 and f"on {queue}" in done.stdout, done.stderr[-3000:]
                assert broker.wait_get(queue).json()["event"] == "demo.message"
                assert_single_active(broker, queue)
    finally:
        with Broker() as broker:
            broker.delete(declared, missing)
