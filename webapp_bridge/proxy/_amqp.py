"""Publishing events to the gateway's RabbitMQ queue (amqp.queue) with publisher confirms.

The broker holds each confirmed message durably until the bridge takes it,
so an event published while the gateway is down is delivered once it is
back. pika is imported only here, and only when the amqp transport is used.
One BlockingConnection per thread and process (pika connections are neither
thread- nor fork-safe).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from webapp_bridge.proxy._errors import ProxyConfigError
from webapp_bridge.proxy._connections import Connections
from webapp_bridge.proxy._retry import Transient
from webapp_bridge.proxy._settings import redact_url

#: The queue argument by which RabbitMQ delivers to one consumer at a time: a cluster's bridges declare
#: amqp.queue with it (webapp_bridge.server.amqp_rules.SINGLE_ACTIVE_CONSUMER; the proxy does not import the server).
SINGLE_ACTIVE_CONSUMER = "x-single-active-consumer"


def queue_arguments(cluster: bool) -> dict[str, Any] | None:
    """The arguments the proxy creates amqp.queue with, when nobody declared it yet: those the gateway's
    bridges declare it with (single active consumer in a cluster, ``cluster.enabled``; none otherwise)."""
    return {SINGLE_ACTIVE_CONSUMER: True} if cluster else None


def _pika() -> Any:
    try:
        import pika
    except ImportError:
        raise ProxyConfigError("proxy.transport is amqp, which needs the pika package: pip install pika "
                               "(or pip install 'events-gateway[amqp]')") from None
    return pika


class AmqpPublisher:
    """Publishes POST /events bodies to ``queue`` on the broker at ``url``; ``publish`` is one attempt.

    ``cluster``: the gateway is a cluster (``cluster.enabled``): a queue the proxy creates has single active
    consumer."""

    def __init__(self, url: str, queue: str, timeout: float, cluster: bool = False) -> None:
        self._pika = _pika()
        self._url = url
        self.shown_url = redact_url(url)
        self.queue = queue
        self._arguments = queue_arguments(cluster)
        self._timeout = timeout
        self._connections = Connections(lambda held: _close_quietly(held[0]))

    def __repr__(self) -> str:  # never the password
        return f"AmqpPublisher({self.shown_url!r}, queue={self.queue!r})"

    def publish(self, payload: bytes, event_id: str) -> None:
        """Send one message and wait for the broker's confirm; Transient when that cannot be had now."""
        pika = self._pika
        held = self._channel()
        connection, channel = held
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event_id)
        where = f"the broker at {self.shown_url}"
        try:
            channel.basic_publish(exchange="", routing_key=self.queue, body=payload, properties=properties,
                                  mandatory=True)
        except pika.exceptions.UnroutableError:
            self._drop(held)  # the queue was deleted meanwhile: a new connection declares it again
            raise Transient(f"{where} could not route the message to queue {self.queue!r}", False) from None
        except pika.exceptions.NackError:
            raise Transient(f"{where} refused the message (nack)", False) from None
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._drop(held)
            raise Transient(f"the connection to {where} was lost while publishing ({_reason(exc)})", True) \
                from None

    def close(self) -> None:
        self._connections.close_all()

    def _channel(self) -> tuple[Any, Any]:
        held: Any = self._connections.get()
        if held is not None:
            try:
                held[0].process_data_events(0)  # notices a connection the broker closed while idle
                if held[0].is_open and held[1].is_open:
                    return held  # type: ignore[no-any-return]
            except Exception:  # any failure here only means: open a new one
                pass
            self._drop(held)
        opened = self._open()
        self._connections.keep(opened)
        return opened

    def _open(self) -> tuple[Any, Any]:
        pika = self._pika
        params = pika.URLParameters(self._url)
        params.socket_timeout = self._timeout
        params.stack_timeout = self._timeout
        params.blocked_connection_timeout = self._timeout
        params.connection_attempts = 1
        params.client_properties = {"connection_name": f"events-gateway proxy {os.getpid()}"}
        where = f"the broker at {self.shown_url}"
        exceptions = pika.exceptions
        try:
            connection = pika.BlockingConnection(params)
        except (exceptions.ProbableAuthenticationError, exceptions.AuthenticationError):
            raise ProxyConfigError(f"{where} refused the login: check the user and password of amqp.url "
                                   "(or env GATEWAY_AMQP_URL)") from None
        except exceptions.ProbableAccessDeniedError:
            raise ProxyConfigError(f"{where} refused access to the virtual host of amqp.url: check its "
                                   "vhost and the user's permissions") from None
        except exceptions.ConnectionClosedByBroker as exc:
            if exc.reply_code in (403, 530):
                raise ProxyConfigError(f"{where} refused the connection ({exc.reply_code} {exc.reply_text}): "
                                       "check amqp.url's user, password and vhost") from None
            raise Transient(f"{where} closed the connection ({exc.reply_code} {exc.reply_text})", False) from None
        except Exception as exc:  # AMQPError, OSError, and pika's connection-workflow errors (handshake timeout)
            raise Transient(f"cannot connect to {where}: {_reason(exc)}", False) from None
        creating = False
        try:
            channel = connection.channel()
            try:
                # Passively first: a queue that exists is used whatever its arguments (a cluster's bridges
                # declare it with single active consumer, a single node's with none, and the broker refuses a
                # declaration that differs from the queue: 406, closing the channel).
                channel.queue_declare(self.queue, passive=True)
            except exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                # It does not exist (404 closed the channel): created as the gateway's bridges declare it.
                creating = True
                channel = connection.channel()
                channel.queue_declare(self.queue, durable=True, arguments=self._arguments)
            channel.confirm_delivery()
        except exceptions.ChannelClosedByBroker as exc:
            _close_quietly(connection)
            if not creating:
                raise ProxyConfigError(f"{where} refused to look up the queue {self.queue!r} ({exc.reply_code} "
                                       f"{exc.reply_text}); check that amqp.url's user may use amqp.queue") from None
            how = f"with {SINGLE_ACTIVE_CONSUMER}: true, as a cluster's bridges (cluster.enabled) declare it" \
                if self._arguments else "with no other arguments, as the gateway's bridge declares it"
            raise ProxyConfigError(f"{where} refused to create the durable queue {self.queue!r} ({exc.reply_code} "
                                   f"{exc.reply_text}); amqp.queue must be a queue the gateway consumes, declared "
                                   f"durable {how}") from None
        except (exceptions.AMQPError, OSError) as exc:
            _close_quietly(connection)
            raise Transient(f"cannot open a channel on {where}: {_reason(exc)}", False) from None
        return connection, channel

    def _drop(self, held: Any) -> None:
        self._connections.forget(held)
        _close_quietly(held[0])


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # the connection is broken already; nothing to close cleanly
        pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return str(exc.strerror or exc)
    text = str(exc) or repr(exc)
    return text if len(text) < 300 else text[:300] + "..."
