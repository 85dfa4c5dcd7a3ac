"""RabbitMQ ingest: the bridge consumes ``POST /events`` bodies from a durable queue.

What becomes of each message (accept, dead-letter, retry) is decided in
``webapp_bridge.server.amqp_rules``; this module does the I/O with pika's Twisted
adapter, inside the bridge's container worker.

- Both queues are declared ``durable=True`` with no arguments, exactly as
  publishers (the gateway's proxy) declare them, so whoever comes first
  creates them and nobody's declaration is refused. Messages arrive by the
  default exchange (routing key = queue name). In a cluster of gateway
  nodes (``cluster.enabled``) the ingest queue is declared with single active
  consumer instead (``amqp_rules.queue_arguments``; below).
- A message is acked only once the dispatcher accepted its event (or had it
  already, under the same id), or once the broker confirmed its copy in the
  dead-letter queue. Whatever is unacked when a bridge goes away goes back to
  the queue: the broker does that.
- Events are handed to the dispatcher in batches of what is in hand (at most
  ``amqp.prefetch``), in queue order, so they are numbered in queue order.
- One bridge per gateway node consumes; the others stand by, connected (see
  ``WampLease``). Two competing consumers would interleave the queue and so
  publish events out of order; with one, order holds, and a standby takes
  over within ``LEASE_RETRY`` once the consumer's WAMP session ends. Bridges
  of separate gateway nodes would be competing consumers of the same queue;
  in a cluster the queue's single active consumer keeps them one: every node's
  lease holder is a consumer, the broker delivers to one of them at a time and
  makes the next active when that one's channel or connection ends (its
  unacked messages go back to the queue first). An existing queue declared
  without it is refused by the broker (406); that is logged once, saying what
  to do (``amqp_rules.misdeclared``), and checked again quietly.
- The events it hands over hold places of the bridge's in-flight limit
  (``bridge.max_in_flight``, shared with HTTP: ``webapp_bridge.server.overload``).
  While the bridge is at its limit the ingest takes nothing more (state
  ``paused``): the broker holds the rest of the queue, and sends no more than
  ``amqp.prefetch`` unacknowledged; nothing is refused, nacked or
  dead-lettered for it. It takes at most the room there is.
- A lost broker connection (broker restart, connection closed by an operator)
  is logged and retried with exponential backoff and jitter up to
  ``amqp.reconnect_max_delay``; so is a broker that is down when the bridge
  starts, while HTTP goes on being served.
- When the node leaves (``drain()``: ``POST /admin/drain``, which ``gateway run`` sends on SIGTERM), the
  ingest takes no more messages: the batch in hand is handed to the dispatcher and acked as ever (state
  ``draining``), then the consumer is cancelled and the connection closed (``drained``): what the broker
  had sent ahead, unacked, goes back to the queue, and another consumer (another node's, in a cluster:
  single active consumer) becomes the active one.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

import pika
from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from pika.adapters.twisted_connection import TwistedChannel, TwistedProtocolConnection
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import deferLater
from twisted.logger import Logger

from components import uris
from components.config import AmqpConfig, StoreConfig
from components.metrics.families import AMQP_MESSAGES
from components.metrics.meter import Labels
from components.metrics.process_meter import METER
from webapp_bridge.server.amqp_rules import (SINGLE_ACTIVE_CONSUMER, Accepted, Refusal, backoff_delay,
                                             dead_letter_headers, dead_letter_properties, judge, misdeclared,
                                             queue_arguments, read_message)
from webapp_bridge.server.api import Answer, BridgeLogic, PublishRequest
from webapp_bridge.server.overload import InFlight

#: Registered by the one bridge of a gateway node that consumes the queue (see WampLease);
#: calling it says which connection that is. (To move to components.uris.)
CONSUMER_LEASE = uris.INTERNAL_AMQP_CONSUMER

#: Seconds for the TCP connection and then for the AMQP handshake, each.
CONNECT_TIMEOUT = 10.0
#: The first pause before reconnecting (doubling up to amqp.reconnect_max_delay).
FIRST_RECONNECT_DELAY = 0.5
#: How often a standby bridge asks whether the consumer's place is free.
LEASE_RETRY = 1.0
#: Pauses between attempts to hand events to a dispatcher that is away (503): from the
#: first, doubling, to the longest. Never given up: a 503 is the gateway's state, not the event's.
DISPATCH_RETRY_FIRST = 0.25
DISPATCH_RETRY_MAX = 5.0
#: Unexpected failures (an exception, not a 503) of one dispatch before the batch is sent one
#: event at a time, and then before the event that still fails is dead-lettered as an
#: internal error: one event the gateway cannot handle must not hold up the queue for ever.
MAX_STRIKES = 5
#: Seconds between two log lines saying consumption waits for room under the in-flight limit.
PAUSE_LOG_INTERVAL = 60.0

#: ``paused``: consuming, but waiting for room under the bridge's in-flight limit; ``draining``: the node is
#: leaving and the batch in hand is being handed over; ``drained``: it consumes no more, for good.
State = Literal["off", "connecting", "connected", "paused", "draining", "drained"]
Dispatch = Callable[[list[PublishRequest]], Awaitable["list[dict[str, Any]] | Answer"]]
Item = tuple[Any, PublishRequest]  # (the pika ReceivedMessage, its event)

# pika logs each connection loss and returned message on its own, some at ERROR level; every
# such happening is logged here once, in words, with the URL's password hidden.
logging.getLogger("pika").setLevel(logging.CRITICAL)
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's


#: gateway_amqp_messages_total's outcomes (components.metrics).
_ACCEPTED: Labels = (("outcome", "accepted"),)
_RETRIED: Labels = (("outcome", "retried"),)
_DEAD_LETTERED: Labels = (("outcome", "dead_lettered"),)

class Lease(Protocol):
    """Leave to consume: held by one bridge at a time."""

    async def acquire(self, info: Callable[[], dict[str, Any]]) -> bool:
        """True once held; ``info`` answers who holds it."""

    async def release(self) -> None: ...


class WampLease:
    """The lease as a WAMP registration: a procedure URI has one callee at most.

    The bridge whose registration of ``CONSUMER_LEASE`` succeeds consumes; the
    router drops the registration when that bridge's session ends (its process
    died, or it left), and the next standby to try takes over.
    """

    def __init__(self, session: ApplicationSession) -> None:
        self._session = session
        self._registration: Any = None

    async def acquire(self, info: Callable[[], dict[str, Any]]) -> bool:
        if not self._session.is_attached():
            return False
        try:
            self._registration = await self._session.register(info, CONSUMER_LEASE)
        except ApplicationError as exc:
            if exc.error == ApplicationError.PROCEDURE_ALREADY_EXISTS:
                return False
            raise
        return True

    async def release(self) -> None:
        registration, self._registration = self._registration, None
        if registration is not None and registration.active and self._session.is_attached():
            try:
                await registration.unregister()
            except Exception:  # the session is going; the router drops the registration with it
                pass


class _Connection(TwistedProtocolConnection):
    """pika's Twisted connection, keeping the reason the broker gave for closing or refusing it.

    pika's adapter replaces the broker's reason (``403 ACCESS_REFUSED``, ``320
    CONNECTION_FORCED``, ...) with the TCP close that follows it, and its
    ``ready`` errback with a bare count of attempts; the logs need the reason.
    """

    #: The broker's Connection.Close, or whatever else ended the AMQP connection first.
    reason: BaseException | None = None

    def connectionLost(self, reason: Any = connectionDone) -> None:
        pending = getattr(self._impl, "_error", None)
        if self.reason is None and isinstance(pending, BaseException):
            self.reason = pending
        super().connectionLost(reason)

    def _on_connection_failed(self, _connection: Any, _error_message: Any = None) -> None:
        if self.reason is None and isinstance(_error_message, BaseException):
            self.reason = _error_message
        super()._on_connection_failed(_connection, _error_message)


class _Factory(Factory):
    """Hands the endpoint our one connection; quiet, unlike connectProtocol's (two log lines per attempt)."""

    noisy = False

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def buildProtocol(self, addr: Any) -> _Connection:
        return self._connection


class Unreachable(Exception):
    """The broker could not be reached or refused the connection; the message says why."""


class CannotDeclare(Exception):
    """The broker refused the queue: it exists with other settings, or the user may not use it."""


class QueueMisdeclared(CannotDeclare):
    """The queue exists with other arguments than a cluster needs: a person must delete it or name another."""


class DeadLetterFailed(Exception):
    """The broker did not confirm a dead-lettered copy: the original stays unacked and comes back."""


class AmqpIngest:
    """Consume ``cfg.queue`` for as long as it runs: ``start()``, then ``stop()``.

    ``logic`` gives the bridge's current rules (they change on a reload of the
    event definitions); ``dispatch`` hands events to the dispatcher the way
    POST /events does (``Bridge._dispatch``); ``lease``, when given, is taken
    before consuming; ``in_flight``, when given, is the bridge's limit the
    events handed over count in (none: ``amqp.prefetch`` alone bounds them);
    ``single_active``: the node is in a cluster (``cluster.enabled``): the queue
    is declared with single active consumer.
    """

    log = Logger()

    def __init__(self, cfg: AmqpConfig, logic: Callable[[], BridgeLogic], dispatch: Dispatch, name: str,
                 lease: Lease | None = None, in_flight: InFlight | None = None, single_active: bool = False) -> None:
        assert cfg.url is not None, "amqp.url is not set"
        self._cfg = cfg
        self._logic = logic
        self._dispatch = dispatch
        self._lease = lease
        self._single_active = single_active
        #: The misdeclared queue's problem last logged: logged once, not at every attempt.
        self._told: str | None = None
        self._in_flight = in_flight if in_flight is not None else InFlight(cfg.prefetch)
        #: When a pause for room was last logged (one line a minute at most under sustained overload).
        self._pause_logged = float("-inf")
        self.name = name
        self._params = pika.URLParameters(cfg.url)
        self._params.client_properties = {"connection_name": name, "product": "events-gateway bridge"}
        #: The broker's URL as logs show it (no password).
        self.where = StoreConfig.redact(cfg.url)
        self.state: State = "off"
        self._running = False
        self._connection: _Connection | None = None
        self._pause: Deferred[None] | None = None
        self._done: Deferred[None] | None = None
        #: Waiting for the next message (``drain()`` ends the wait).
        self._getting: Deferred[Any] | None = None
        #: The node is leaving: no more messages are taken (``drain()``).
        self._draining = False
        #: A batch is being handed to the dispatcher (and acked): what a drain waits for.
        self._holding = False
        #: This connection got as far as consuming (or standing by): the broker works.
        self._worked = False

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self.state = "connecting"
        self._done = ensureDeferred(self._run())
        self._done.addErrback(lambda f: self.log.failure("RabbitMQ ingest stopped on an error", f))

    def stop(self) -> Deferred[None]:
        """Stop consuming and close the connection; what is unacked goes back to the queue."""
        self._running = False
        self.state = "off"
        if self._pause is not None:
            self._pause.cancel()
        if self._connection is not None:
            _close(self._connection)
        done, self._done = self._done, None
        return done if done is not None else succeed(None)

    def drain(self) -> None:
        """Take no more messages, for good: the node is leaving. The batch in hand, if any, is handed to the
        dispatcher and acked as ever (state ``draining``); then the consumer is cancelled and the connection
        closed (``drained``): what the broker had sent ahead goes back to the queue, for another consumer.
        Asked again: nothing more."""
        if self._draining:
            return
        self._draining = True
        if not self._running:
            return
        # Nothing in hand (connecting, standing by, waiting for a message): nothing to wait for.
        self.state = "draining" if self._holding else "drained"
        self.log.info("draining: taking no more messages from {queue}; the batch in hand is handed over and acked "
                      "first", queue=self._cfg.queue)
        for waiting in (self._getting, self._pause):  # a wait for a message, for room, for the lease, a backoff
            if waiting is not None:
                waiting.cancel()

    def info(self) -> dict[str, Any]:
        """What the consumer's lease procedure answers."""
        return {"connection": self.name, "queue": self._cfg.queue, "state": self.state, "pid": os.getpid(),
                "single_active": self._single_active}

    # -- connection -------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while self._running and not self._draining:
            self.state = "connecting"
            try:
                connection = await self._connect()
            except Exception as exc:  # Unreachable, or anything unforeseen: never give up
                if not self._running or self._draining:
                    break
                delay = self._reconnect_delay(failures)
                failures += 1
                self.log.warn("cannot connect to RabbitMQ at {where}: {err}; trying again in {delay}s "
                              "(attempt {n})", where=self.where, err=exc if isinstance(exc, Unreachable)
                              else _describe(exc), delay=round(delay, 1), n=failures)
                await self._sleep(delay)
                continue
            if not self._running or self._draining:
                _close(connection)
                break
            self._connection = connection
            self._worked = False
            problem = None
            lasting = False
            try:
                await self._serve(connection)
            except QueueMisdeclared as exc:
                problem, lasting = str(exc), True
            except CannotDeclare as exc:
                problem = str(exc)
            except Exception as exc:
                problem = _describe(connection.reason or exc)
            finally:
                self._connection = None
                _close(connection)  # what is unacked (sent ahead, never handed over) goes back to the queue
            if not self._running or self._draining:
                break
            if lasting:
                await self._misdeclared(str(problem))
                continue
            if problem is None and connection.reason is not None:
                problem = _describe(connection.reason)  # a standby's connection, closed by the broker
            self.state = "connecting"
            # A connection that worked starts the backoff anew; one that failed on the way counts on.
            failures = 0 if self._worked else failures + 1
            delay = self._reconnect_delay(failures)
            if self._worked:
                self.log.warn("lost the RabbitMQ connection to {where}{why}; reconnecting in {delay}s",
                              where=self.where, why=f" ({problem})" if problem else "", delay=round(delay, 1))
            else:
                self.log.error("RabbitMQ at {where}: {problem}; trying again in {delay}s (attempt {n})",
                               where=self.where, problem=problem, delay=round(delay, 1), n=failures)
            await self._sleep(delay)
        if self._running and self._draining:
            self.state = "drained"
            self.log.info("drained: consuming {queue} no more (what this bridge held is acked; what it had not "
                          "taken is back in the queue)", queue=self._cfg.queue)
        else:
            self.state = "off"

    async def _connect(self) -> _Connection:
        params = self._params
        endpoint: Any = HostnameEndpoint(reactor, params.host, params.port, timeout=CONNECT_TIMEOUT)
        if params.ssl_options is not None:
            endpoint = wrapClientTLS(optionsForClientTLS(params.ssl_options.server_hostname or params.host),
                                     endpoint)
        connection = _Connection(params)
        try:
            await endpoint.connect(_Factory(connection))
        except Exception as exc:
            raise Unreachable(_describe(exc)) from None
        # A peer that takes the TCP connection but never speaks AMQP must not hold the bridge for ever.
        timer = _REACTOR.callLater(CONNECT_TIMEOUT, _abort, connection)
        ready = connection.ready
        try:
            if ready is None:
                raise Unreachable("the connection closed during the AMQP handshake")
            await ready
        except Unreachable:
            raise
        except Exception as exc:
            if not timer.active():
                raise Unreachable(f"no AMQP handshake within {CONNECT_TIMEOUT:g}s (is it a RabbitMQ port?)") from None
            raise Unreachable(_describe(connection.reason or exc)) from None
        finally:
            if timer.active():
                timer.cancel()
        return connection

    async def _misdeclared(self, problem: str) -> None:
        """The queue exists without the arguments a cluster needs: said once (again only if what the broker
        says changes), then checked again every ``amqp.reconnect_max_delay`` without a word, so that the node
        consumes as soon as someone deleted the queue."""
        self.state = "connecting"
        delay = self._cfg.reconnect_max_delay
        if problem != self._told:
            self._told = problem
            self.log.error("RabbitMQ at {where}: {problem}; checking again every {delay}s without logging it",
                           where=self.where, problem=problem, delay=round(delay, 1))
        await self._sleep(delay)

    def _reconnect_delay(self, failures: int) -> float:
        cap = self._cfg.reconnect_max_delay
        return backoff_delay(failures, min(FIRST_RECONNECT_DELAY, cap), cap, random.random())

    async def _serve(self, connection: _Connection) -> None:
        """Declare, take the lease, consume until the connection or channel ends (or the ingest stops)."""
        channel: TwistedChannel = await connection.channel()
        for queue in (self._cfg.queue, self._cfg.dead_letter_queue):
            arguments = queue_arguments(self._single_active) if queue == self._cfg.queue else None
            try:
                await channel.queue_declare(queue, durable=True, arguments=arguments)
            except Exception as exc:
                if isinstance(exc, ChannelClosedByBroker):
                    problem = misdeclared(queue, arguments is not None, exc.reply_code, exc.reply_text)
                    if problem is not None:
                        raise QueueMisdeclared(problem) from None
                how = "no arguments, as the gateway's publishers declare it" if arguments is None else \
                    f"{SINGLE_ACTIVE_CONSUMER}: true, as a cluster needs it"
                raise CannotDeclare(f"cannot declare the queue {queue!r} (durable, {how}): {_describe(exc)}") from None
        if self._told is not None:
            self._told = None
            self.log.info("the queue {queue} is declared with single active consumer now", queue=self._cfg.queue)
        await channel.basic_qos(prefetch_count=self._cfg.prefetch)
        await channel.confirm_delivery()
        if self._draining:
            return
        self.state = "connected"
        self.log.info("connected to RabbitMQ at {where} as {name!r}; queue {queue}, dead letters to {dlq}",
                      where=self.where, name=self.name, queue=self._cfg.queue, dlq=self._cfg.dead_letter_queue)
        if not await self._take_lease(connection):
            return
        try:
            messages, tag = await channel.basic_consume(self._cfg.queue)
            self._worked = True
            if self._single_active:
                self.log.info("consuming {queue} (single active consumer: the broker delivers to one consumer in "
                              "the cluster at a time, to this one while it is the active one)", queue=self._cfg.queue)
            else:
                self.log.info("consuming {queue}", queue=self._cfg.queue)
            while self._running and not self._draining:
                self._getting = messages.get()
                try:
                    batch = [await self._getting]
                except CancelledError:  # drain(): nothing in hand
                    break
                finally:
                    self._getting = None
                room = await self._room()
                if not self._running or self._draining:
                    break  # unacked: the broker hands it out again
                while messages.pending and len(batch) < min(self._cfg.prefetch, room):
                    batch.append(messages.pending.pop(0))
                taken = self._in_flight.take(len(batch))
                assert taken, "room was there, and nothing else ran since"
                self._holding = True
                try:
                    await self._handle(channel, batch)
                finally:
                    self._holding = False
                    self._in_flight.release(len(batch))
            if self._draining and self._running and channel.is_open:
                await self._cancel(channel, tag)
            if self._draining and self._running:
                self.state = "drained"
        finally:
            if self._lease is not None:
                await self._lease.release()

    async def _cancel(self, channel: TwistedChannel, tag: str) -> None:
        """No more deliveries to this consumer (the node drains): the broker makes another consumer the active
        one. What it sent ahead goes back to the queue when the connection closes, right after."""
        try:
            await channel.basic_cancel(tag).addTimeout(CONNECT_TIMEOUT, _REACTOR)
        except Exception as exc:  # closing the connection cancels it too
            self.log.warn("cancelling the consumer of {queue}: {err}; closing the connection instead",
                          queue=self._cfg.queue, err=_describe(exc))

    async def _room(self) -> int:
        """The room under the bridge's in-flight limit, once there is some (``paused`` until then)."""
        while self._running and not self._draining and self._in_flight.room < 1:
            if self.state == "connected":
                self.state = "paused"
                now = _REACTOR.seconds()
                if now - self._pause_logged >= PAUSE_LOG_INTERVAL:
                    self._pause_logged = now
                    self.log.info("the bridge is at its limit of {limit} events in flight: {queue} waits in the "
                                  "broker until there is room", limit=self._in_flight.limit, queue=self._cfg.queue)
            room: Deferred[None] = Deferred()
            self._in_flight.when_room(lambda: None if room.called else room.callback(None))
            self._pause = room
            try:
                await room
            except CancelledError:  # stop()
                pass
            finally:
                self._pause = None
        if self.state == "paused":
            self.state = "connected"
        return self._in_flight.room

    async def _take_lease(self, connection: _Connection) -> bool:
        """Wait (connected) until this bridge may consume; False if the connection or the ingest ended first."""
        if self._lease is None:
            return True
        told = False
        while self._running and not self._draining and connection.is_open:
            if await self._lease.acquire(self.info):
                if told:
                    self.log.info("taking over the consumption of {queue}", queue=self._cfg.queue)
                return True
            if not told:
                self.log.info("another bridge of this gateway consumes {queue}; standing by", queue=self._cfg.queue)
                told = self._worked = True
            await self._sleep(LEASE_RETRY)
        return False

    # -- messages ---------------------------------------------------------

    async def _handle(self, channel: TwistedChannel, batch: list[Any]) -> None:
        logic = self._logic()
        good: list[Item] = []
        refused: list[tuple[Any, Refusal]] = []
        for message in batch:
            read = read_message(logic, message.body, message.properties.message_id)
            if isinstance(read, Refusal):
                refused.append((message, read))
            else:
                good.append((message, read))
        dead = ensureDeferred(self._dead_letter(channel, refused)) if refused else None
        try:
            await self._publish(channel, good)
        finally:
            if dead is not None:
                await dead

    async def _publish(self, channel: TwistedChannel, items: list[Item]) -> None:
        """Hand the events to the dispatcher, in order, until each is accepted or refused for good."""
        pending = list(items)
        solo = False  # one event at a time, to find the one that makes the gateway fail
        strikes = 0
        waits = 0
        while pending and self._running:
            batch = pending[:1] if solo else pending
            try:
                results = await self._dispatch([request for _, request in batch])
                if not isinstance(results, Answer) and len(results) != len(batch):
                    raise RuntimeError(f"the dispatcher answered {len(results)} results for {len(batch)} events")
            except Exception as exc:
                strikes += 1
                if strikes < MAX_STRIKES:
                    self.log.error("handing {n} events from {queue} to the dispatcher failed: {err}; trying again",
                                   n=len(batch), queue=self._cfg.queue, err=_describe(exc))
                    await self._sleep(backoff_delay(strikes - 1, DISPATCH_RETRY_FIRST, DISPATCH_RETRY_MAX,
                                                    random.random()))
                elif len(batch) > 1:
                    solo, strikes = True, 0
                else:
                    await self._dead_letter(channel, [(batch[0][0], Refusal(
                        "internal_error", f"the gateway failed on this event {MAX_STRIKES} times in a row "
                        f"({_describe(exc)}); it may or may not have been published: publish the body again "
                        "with the same id (its body id or message_id) to be sure, without a duplicate", 500))])
                    pending, strikes = pending[1:], 0
                continue
            strikes = 0
            outcomes = [judge(results)] * len(batch) if isinstance(results, Answer) else [judge(r) for r in results]
            retry: list[Item] = []
            refused: list[tuple[Any, Refusal]] = []
            reasons: list[str] = []
            for item, outcome in zip(batch, outcomes):
                if isinstance(outcome, Accepted):
                    channel.basic_ack(item[0].method.delivery_tag)
                    METER.count(AMQP_MESSAGES, _ACCEPTED)
                elif isinstance(outcome, Refusal):
                    refused.append((item[0], outcome))
                else:
                    retry.append(item)
                    reasons.append(outcome.reason)
                    METER.count(AMQP_MESSAGES, _RETRIED)
            if refused:
                await self._dead_letter(channel, refused)
            pending = retry + pending[len(batch):]
            if retry and self._running and channel.is_open:
                delay = backoff_delay(waits, DISPATCH_RETRY_FIRST, DISPATCH_RETRY_MAX, random.random())
                waits += 1
                self.log.warn("{n} events from {queue} were not accepted yet ({reason}); trying again in {delay}s",
                              n=len(retry), queue=self._cfg.queue, reason=reasons[0], delay=round(delay, 2))
                await self._sleep(delay)
            elif not retry:
                waits = 0
            if not channel.is_open:
                return  # unacked: the broker hands them out again

    async def _dead_letter(self, channel: TwistedChannel, refused: list[tuple[Any, Refusal]]) -> None:
        """Copy each message to the dead-letter queue with its refusal; ack each original once its copy is confirmed."""
        now = datetime.now(timezone.utc)
        sends = []
        for message, refusal in refused:
            headers = dead_letter_headers(message.properties.headers, refusal, self._cfg.queue, now)
            # mandatory: should the dead-letter queue be gone, the broker returns the copy
            # instead of dropping it, and the original is not acked.
            sends.append(channel.basic_publish("", self._cfg.dead_letter_queue, message.body,
                                               dead_letter_properties(message.properties, headers), mandatory=True))
            self.log.warn("dead-lettering a message from {queue} (message_id {mid}) to {dlq}: {status} {error}: "
                          "{message}", queue=self._cfg.queue, mid=message.properties.message_id,
                          dlq=self._cfg.dead_letter_queue, status=refusal.status, error=refusal.error,
                          message=refusal.message)
        confirmed = await DeferredList(sends, consumeErrors=True)
        failed = None
        for (ok, value), (message, _) in zip(confirmed, refused):
            if ok:
                channel.basic_ack(message.method.delivery_tag)
                METER.count(AMQP_MESSAGES, _DEAD_LETTERED)
            else:
                failed = value
        if failed is not None:
            raise DeadLetterFailed(f"the broker did not take a copy into {self._cfg.dead_letter_queue}: "
                                   f"{_describe(failed.value)}")

    async def _sleep(self, seconds: float) -> None:
        """A pause that ``stop()`` cuts short."""
        self._pause = deferLater(reactor, seconds)
        try:
            await self._pause
        except CancelledError:
            pass
        finally:
            self._pause = None


def _close(connection: TwistedProtocolConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
        elif connection.transport is not None:
            connection.transport.loseConnection()
    except Exception:  # closing already, or closed
        pass


def _abort(connection: TwistedProtocolConnection) -> None:
    if connection.transport is not None:
        connection.transport.abortConnection()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    if isinstance(exc, AMQPConnectionError) and exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

