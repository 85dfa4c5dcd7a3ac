"""Test helpers for the RabbitMQ broker of this machine (blocking pika): queues, publishing, reading.

The broker is shared with other test runs: every test uses queues of its own
(``temporary_queues``: unique names, deleted afterwards even when the test
fails) and touches only the connections it can tell are its own
(``broker_connections`` by a part of their ``connection_name``).

    with Broker() as broker, temporary_queues(broker, "events", "dead") as (queue, dead):
        broker.publish(queue, {"event": "demo.message", "data": {...}}, message_id="m-1")
        message = broker.wait_get(dead)
        assert message.headers["x-gateway-error"] == "invalid_event"

``amqp_config(queue, dead)`` is the gateway.yaml ``amqp`` section pointing at
them. The broker's URL comes from env ``GATEWAY_TEST_AMQP_URL`` (default
guest/guest on 127.0.0.1:5672, vhost /). ``queue_stats``, ``broker_connections``
and ``close_broker_connection`` run ``rabbitmqctl`` (about a second a call on
a busy machine): use them sparingly.

``BrokerGate`` is a door to the broker on a port of its own, which a test
shuts (nothing listens: a broker that is down) and opens again, without
touching the broker that other test runs share.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel

BROKER_URL = os.environ.get("GATEWAY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def unique_name(prefix: str = "test") -> str:
    """A queue name no other test (or test run) uses: ``gw-test.<prefix>.<random>``."""
    return f"gw-test.{prefix}.{uuid.uuid4().hex[:12]}"


def amqp_config(queue: str, dead_letter_queue: str, **extra: Any) -> dict[str, Any]:
    """gateway.yaml's ``amqp`` section for these queues on the test broker (``extra``: other keys)."""
    return {"url": BROKER_URL, "queue": queue, "dead_letter_queue": dead_letter_queue, **extra}


@dataclass(frozen=True)
class Message:
    """A message read from a queue: body, properties, and its headers (never None)."""

    body: bytes
    properties: pika.BasicProperties
    redelivered: bool = False

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def json(self) -> Any:
        return json.loads(self.body)


class Broker:
    """A blocking connection to the test broker; reopened when it was closed. Use ``with``."""

    def __init__(self, url: str = BROKER_URL) -> None:
        self.url = url
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    @property
    def channel(self) -> BlockingChannel:
        """A channel in publisher-confirm mode (publish returns once the broker has the message)."""
        if self._connection is None or not self._connection.is_open:
            params = pika.URLParameters(self.url)
            params.client_properties = {"connection_name": f"events-gateway tests pid {os.getpid()}"}
            # No heartbeats: a blocking connection only answers them inside pika calls, and a test
            # may hold one idle for a while (a node restarting) without the broker dropping it.
            params.heartbeat = 0
            self._connection = pika.BlockingConnection(params)
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        self._connection = self._channel = None

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queues -----------------------------------------------------------

    def declare(self, *queues: str) -> None:
        """Create durable queues with no arguments, as a single node's bridge (and the proxy, outside a cluster)
        creates them. For new queues: a plain declaration of a queue a cluster declared is refused (406)."""
        for queue in queues:
            self.channel.queue_declare(queue, durable=True)

    def delete(self, *queues: str) -> None:
        for queue in queues:
            self.channel.queue_delete(queue)

    def purge(self, *queues: str) -> None:
        for queue in queues:
            self.channel.queue_purge(queue)

    def ready(self, queue: str) -> int:
        """Messages in the queue waiting for a consumer (not those delivered and unacked)."""
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def consumers(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.consumer_count)

    # -- messages ---------------------------------------------------------

    def publish(self, queue: str, body: Any, *, message_id: str | None = None,
                headers: dict[str, Any] | None = None, content_type: str | None = "application/json",
                persistent: bool = True, **properties: Any) -> None:
        """Publish to ``queue`` by the default exchange, as the gateway's proxy does; confirmed.

        ``body``: bytes as they are, anything else as JSON.
        """
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        props = pika.BasicProperties(content_type=content_type, delivery_mode=2 if persistent else 1,
                                     message_id=message_id, headers=headers, **properties)
        self.channel.basic_publish("", queue, data, props, mandatory=True)

    def get(self, queue: str) -> Message | None:
        """The next message of the queue (taken off it), or None if it is empty."""
        method, properties, body = self.channel.basic_get(queue, auto_ack=True)
        if method is None:
            return None
        return Message(body, properties, bool(method.redelivered))

    def wait_get(self, queue: str, timeout: float = 10) -> Message:
        """The next message, waiting for one to arrive (polls; raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.get(queue)
            if message is not None:
                return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message in {queue} after {timeout}s")
            time.sleep(0.05)

    def drain(self, queue: str) -> list[Message]:
        """Every message in the queue now, taken off it."""
        out = []
        while (message := self.get(queue)) is not None:
            out.append(message)
        return out

    def wait_until(self, queue: str, ready: int, timeout: float = 10) -> None:
        """Until the queue holds exactly ``ready`` messages waiting (polls; raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        while (n := self.ready(queue)) != ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue} holds {n} messages after {timeout}s, not {ready}")
            time.sleep(0.05)


@contextmanager
def temporary_queues(broker: Broker, *prefixes: str) -> Iterator[list[str]]:
    """Declared queues with unique names (one per prefix), deleted afterwards whatever happens."""
    names = [unique_name(p) for p in prefixes]
    try:
        broker.declare(*names)
        yield names
    finally:
        # A connection of its own: the test's may be broken by now. Deleting a queue that is
        # gone already is no error in RabbitMQ.
        with Broker(broker.url) as fresh:
            fresh.delete(*names)


# -- rabbitmqctl (the broker on this machine) ----------------------------------


@dataclass(frozen=True)
class QueueStats:
    ready: int
    unacked: int
    consumers: int


@dataclass(frozen=True)
class BrokerConnection:
    name: str  # the client's connection_name
    pid: str  # what rabbitmqctl close_connection takes


def _rabbitmqctl(*args: str) -> str:
    listing = ("-q", "--no-table-headers") if args[0].startswith("list_") else ("-q",)
    done = subprocess.run(["rabbitmqctl", *args, *listing], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def queue_stats(*queues: str) -> dict[str, QueueStats]:
    """Ready and unacknowledged messages and consumers of these queues (rabbitmqctl list_queues)."""
    out = {}
    for line in _rabbitmqctl("list_queues", "name", "messages_ready", "messages_unacknowledged",
                             "consumers").splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] in queues:
            out[parts[0]] = QueueStats(int(parts[1]), int(parts[2]), int(parts[3]))
    return out


def broker_connections(name_contains: str) -> list[BrokerConnection]:
    """The broker's client connections whose connection_name contains this (rabbitmqctl list_connections)."""
    found = []
    for line in _rabbitmqctl("list_connections", "pid", "client_properties").splitlines():
        pid, _, properties = line.partition("\t")
        match = re.search(r'\{"connection_name","((?:[^"\\]|\\.)*)"\}', properties)
        if match and name_contains in match.group(1):
            found.append(BrokerConnection(match.group(1), pid))
    return found


def close_broker_connection(connection: BrokerConnection, reason: str = "closed by a test") -> None:
    """Have the broker close this connection, as an operator (or a broker shutting down) would."""
    _rabbitmqctl("close_connection", connection.pid, reason)


class BrokerGate:
    """A TCP door to the broker that a test opens and shuts. Use ``with``: it is shut at the end.

    Shut, nothing listens on its port: connecting is refused, as when the broker
    is down; shutting it also drops every connection made through it. ``url`` is
    the test broker's URL with the gate's port.
    """

    def __init__(self, url: str = BROKER_URL) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self.url = urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}"))
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        self._spawn(self._accept, listener)

    def shut(self) -> None:
        """Stop listening and drop every connection through the gate."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def __enter__(self) -> BrokerGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shut()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # shut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            self._spawn(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return  # shut: the sockets were closed under us
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass
