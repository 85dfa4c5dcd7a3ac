"""The dispatcher: numbers accepted events and publishes them to their topics.

Events reach it from the bridge through ``gateway.internal.publish``, in
batches (a single event is a batch of one). For each it checks the event id
against the ids it accepted before (idempotency: the same id twice is one
event, and the second answer says so), gives it a ``seq`` (strictly
increasing, durable across restarts) and a ``time``, and publishes the
envelope to ``gateway.event.<class>``, asking the router to acknowledge, so
that the bridge answers 202 only for events the router took.

Every container worker runs a dispatcher; one is active, the others stand by
(``leadership``). Only the one holding leadership registers the procedures that
write or order (``gateway.internal.publish``, the client's subscription
procedures, replay and ack, the bridge's /subscriptions); when its session
ends, a standby takes leadership, publishes what its predecessor logged but
may not have published, and registers them. seq stays in order because only
one numbers events at a time and a standby takes its first block of numbers
only when it takes over. The catalog and the authorizer are answered by any.

Store work never runs on the reactor thread (the store objects refuse it:
``components.store.guard``). Each dispatcher has three store threads, each
with its own connection: *events* (batches' look-ups, numbers and log writes,
the seq blocks, and what is done between batches: persistent subscribes),
*bookkeeping* (grants, the authorizer's look-ups, listing, replay and ack, the
bridge's listing and removal) and *housekeeping* (the periodic pruning, whose
rounds may be long). One thread would make a batch wait behind any client's
bookkeeping, and everything wait behind a pruning round.

This module is the WAMP component: start-up, the registrations, the meta-event
subscriptions, the authorizer, the catalog and lifecycle. The procedures' bodies
live beside it: ``publishing`` (the per-event path), ``replay`` (replay and ack),
``webapp_subscriptions`` (the bridge's /subscriptions) and ``housekeeping``.

Every procedure a client or the bridge calls is registered behind its signature
(``components.procedures.checked``): wrong arguments are answered
``gateway.error.invalid_argument`` before a body runs, a fault of ours
``gateway.error.internal``; a client's calls also count against its session's rate
(``queries.calls_per_second``, ``queries.call_burst``), per dispatcher.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CloseDetails, PublishOptions, RegisterOptions, SessionDetails
from twisted.internet.defer import Deferred, DeferredLock

from components import uris
from components.metrics.families import LIVE_QUERIES, SESSIONS
from components.metrics.meter import Labels
from components.metrics.process_meter import METER
from components.arguments import Signature
from components.backend import START_RETRY_DELAYS, BackendSession, sleep
from components.delivery import local
from components.delivery.cluster import (ClusterPublisher, LogTail, default_node_name, ended_message,
                                         ended_subscription, node_run)
from components.delivery.housekeeping import Housekeeping
from components.delivery.leadership import HELD_ELSEWHERE, Leadership, retry_delay
from components.delivery.publishing import ANYONE, Publisher, Turn
from components.delivery.replay import ACK, REPLAY, SUBSCRIPTION_ID, ReplayAndAck
from components.delivery.rowfilter import visible_with_row_filter
from components.delivery.sequence import Sequencer
from components.delivery.signatures import (CATALOG, INTERNAL_CREATE, INTERNAL_DELETE, INTERNAL_LIST,
                                             INTERNAL_STATS, SUBSCRIBE, SUBSCRIPTIONS, UNSUBSCRIBE)
from components.delivery.sessions import Restriction, Sessions
from components.delivery.subscriptions import QuerySubscriptions, apply_plan
from components.delivery.webapp_subscriptions import WebAppSubscriptions
from components.config import GatewayConfig
from components.events import Registry
from components.events.rules import BACKEND_ROLE
from components.procedures import checked
from components.ratelimit import CallBuckets
from components.sending import send_now
from components.store.base import TERMS, ClusterLog, Store, open_store
from components.store.thread import StoreThread

_ACK = PublishOptions(acknowledge=True)

# The procedures' signatures: components/delivery/signatures.py.


class Dispatcher(BackendSession):
    #: The store threads (see the module docstring): events, bookkeeping, housekeeping.
    _thread: StoreThread | None = None
    _bookkeeping: StoreThread | None = None
    _housekeeping_thread: StoreThread | None = None
    #: A cluster node's: its tail of the shared log reads there (``cluster``).
    _tail_thread: StoreThread | None = None
    #: A cluster node's tail of the shared log (``cluster.LogTail``); None on a single node.
    _tail: LogTail | None = None
    _node = ""
    #: Takeovers that failed in a row in this process (``_take_over`` backs off on them).
    _failed_takeovers = 0
    _publisher: Publisher | None = None
    _housekeeping: Housekeeping | None = None
    _queries: QuerySubscriptions
    _sessions: Sessions
    _sequencer: Sequencer
    #: Batches of events take their turn with it, and so do persistent subscribes (see _subscribe).
    _turn: Turn
    #: Each client session's calls (its token bucket); forgotten when the session leaves.
    _buckets: CallBuckets | None = None
    _leadership: Leadership | None = None
    #: When this dispatcher became the active one (None: standing by).
    _active_since: float | None = None
    #: The procedures that write or order, registered once leadership is held: (body, URI, options).
    _writers: list[tuple[Callable[..., Any], str, RegisterOptions]]

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self.start_registry(cfg)
        # A cluster's node (``cluster``): its grants are its own router's sessions', its term its own.
        self._node = node = (cfg.cluster.node_name or default_node_name()) if cfg.cluster.enabled else ""
        # Each store thread opens its connection on first use; none is opened on the reactor thread.
        self._thread = thread = StoreThread(lambda: open_store(cfg.store, node), name="dispatcher-events")
        self._bookkeeping = bookkeeping = StoreThread(lambda: open_store(cfg.store, node),
                                                      name="dispatcher-bookkeeping")
        self._housekeeping_thread = StoreThread(lambda: open_store(cfg.store, node), name="dispatcher-housekeeping")
        self._turn = Turn()
        self._sequencer = sequencer = Sequencer(lambda n: thread.run(_take, n))
        self._limits = cfg.queries
        self._sessions = Sessions(cfg.auth.user_role)
        self._queries = QuerySubscriptions(bookkeeping, lambda: self.registry, cfg.queries, self._sessions,
                                           sequencer.high_water, token_ttl=cfg.auth.client_token_ttl,
                                           operator_role=cfg.status.operator_role)
        self._buckets = buckets = CallBuckets(cfg.queries.calls_per_second, cfg.queries.call_burst)
        if cfg.cluster.enabled:
            # The node's tail of the shared log has a store thread of its own: a read never waits behind
            # a turn's append in the store thread's queue, nor a turn behind a read (a wake-up that comes
            # during this node's own append waits for it: ``LogTail.hold``).
            self._tail_thread = tail_thread = StoreThread(lambda: open_store(cfg.store, node), name="dispatcher-tail")
            publisher = ClusterPublisher(thread, self._turn, sequencer, lambda: self.registry, self._sessions,
                                         self._queries, self._send, self._send_now)
            publisher.tail = self._tail = LogTail(tail_thread, lambda: _listener(cfg, node), node, node_run(),
                                     publisher.hand_to_router)
            self._publisher = publisher
        else:
            self._publisher = Publisher(thread, self._turn, sequencer, lambda: self.registry, self._sessions,
                                        self._queries, self._send, self._send_now)
        replay = ReplayAndAck(bookkeeping, self._queries, lambda: self.registry, self._know_caller)
        web_app = WebAppSubscriptions(self._queries, bookkeeping, thread, self._sessions, self._turn,
                                      sequencer.high_water, cfg.queries, cfg.auth.user_role, self._send)
        tail = self._tail
        if tail is not None:  # a subscription ended on one node ends on every node
            web_app.announce = lambda sub, reason: tail.announce(ended_message(sub, reason))

            def announced(message: dict[str, Any]) -> None:
                ended = ended_subscription(message)
                if ended is not None:
                    web_app.end_here(*ended)

            tail.on_announcement = announced
        self._housekeeping = Housekeeping(self._housekeeping_thread, self._queries, lambda: self.registry,
                                          cfg.store.idempotency_window, cfg.store.max_logged_per_class, web_app.end,
                                          cfg.cluster.log_retention if cfg.cluster.enabled else None)
        self._prune_interval = cfg.store.prune_interval  # housekeeping is the active dispatcher's (_take_over)
        # Live queries: follow the router's subscriptions, then catch up with what exists now.
        await self.subscribe(self._queries.created, uris.META_SUBSCRIPTION_ON_CREATE)
        await self.subscribe(self._queries.unsubscribed, uris.META_SUBSCRIPTION_ON_UNSUBSCRIBE)
        await self.subscribe(self._queries.deleted, uris.META_SUBSCRIPTION_ON_DELETE)
        await self.subscribe(self._sessions.joined, uris.META_SESSION_ON_JOIN)
        await self.subscribe(self._session_left, uris.META_SESSION_ON_LEAVE)
        await self._rebuild_sessions()
        await self._queries.rebuild(self.call)
        def client(signature: Signature, body: Callable[..., Any]) -> Callable[..., Any]:
            return checked(signature, body, self.log, buckets)

        def internal(signature: Signature, body: Callable[..., Any]) -> Callable[..., Any]:
            return checked(signature, body, self.log, details=False)

        # Read-only, answered by any dispatcher. The authorizer first: until it is registered,
        # clients can do nothing at all.
        await self.register(self._authorize, uris.AUTHORIZE, options=RegisterOptions(invoke="roundrobin"))
        await self.register(client(CATALOG, self._catalog), uris.CATALOG,
                            options=RegisterOptions(invoke="roundrobin", details_arg="details"))
        await self.register_reload()
        # What writes or orders: registered by the active dispatcher only, once it holds leadership
        # (``leadership``), in this order; ``single``, so that nobody else can serve any of them meanwhile.
        with_caller = RegisterOptions(invoke="single", details_arg="details")
        alone = RegisterOptions(invoke="single")
        self._writers = [
            (self._publish, uris.INTERNAL_PUBLISH, alone),
            (client(SUBSCRIBE, self._subscribe), uris.SUBSCRIBE, with_caller),
            (client(UNSUBSCRIBE, self._end_subscription), uris.UNSUBSCRIBE, with_caller),
            (client(SUBSCRIPTIONS, self._list_subscriptions), uris.SUBSCRIPTIONS, with_caller),
            (client(REPLAY, replay.replay), uris.REPLAY, with_caller),
            (client(ACK, replay.ack), uris.ACK, with_caller),
            (internal(INTERNAL_CREATE, web_app.create_for_user), uris.INTERNAL_SUBSCRIPTION_CREATE, alone),
            (internal(INTERNAL_LIST, web_app.list), uris.INTERNAL_SUBSCRIPTION_LIST, alone),
            (internal(INTERNAL_DELETE, web_app.delete), uris.INTERNAL_SUBSCRIPTION_DELETE, alone),
            (internal(INTERNAL_STATS, self._stats), uris.INTERNAL_STATS, alone),
        ]
        self._leadership = Leadership(self, self._take_over, self._leader_info)
        await self._leadership.start()
        # Every dispatcher sees the node's sessions and live queries: the node takes the largest count.
        METER.provide("dispatcher", self._gauges, "max")
        await self.offer_metrics(cfg)
        self.log.info("dispatcher ready: {n} event classes, version {v}; active once it holds leadership",
                      n=len(self.registry), v=self.registry.version)

    def _gauges(self) -> list[tuple[str, Labels, float]]:
        readings: list[tuple[str, Labels, float]] = [
            (SESSIONS, (("role", role),), n) for role, n in self._sessions.count_by_authrole().items()]
        readings.append((LIVE_QUERIES, (), self._queries.live.subscribed))
        if self._tail is not None and self._active_since is not None:  # the active one's view of the cluster
            readings += self._tail.gauges()
        return readings

    def _leader_info(self) -> dict[str, Any]:
        """What ``gateway.internal.dispatcher.leader`` answers: which dispatcher is active."""
        return {"session": self._session_id, "pid": os.getpid(), "since": self._active_since,
                "node": self._node or None}

    async def _take_over(self) -> None:
        """Leadership is held: begin a term, publish what the last one left unpublished, then serve.

        Nothing new is numbered before that: ``gateway.internal.publish`` is registered after it.
        Should any of it fail, this dispatcher leaves (and is restarted), so that another takes over.
        """
        assert self._thread is not None and self._publisher is not None and self._housekeeping is not None
        self._active_since = time.time()
        try:
            if not self._node:
                members = await self._thread.run(_cluster_members)
                if members:  # numbering on its own there would put events below what the cluster delivered
                    raise RuntimeError(
                        f"the store is a cluster's (nodes {', '.join(members)} were seen in the last minute): start "
                        "this node with cluster.enabled (env GATEWAY_CLUSTER=1), or give it a store of its own")
            terms = f"{TERMS}:{self._node}" if self._node else TERMS  # a cluster's nodes: each its own
            term = await self._thread.run(lambda store: store.take(1, terms))
            published = await self._publisher.take_over(term)
            for body, procedure, options in self._writers:
                await self._register_alone(body, procedure, options)
            local.offer(self._publish)  # the bridge beside it: no WAMP call (``local``)
        except Exception as exc:
            # Backing off as a failed start does (``BackendSession``): a takeover that keeps failing (a
            # store that is a cluster's, a store down) must not spin, nor keep the container from
            # starting its other components.
            type(self)._failed_takeovers += 1
            n = type(self)._failed_takeovers
            delay = START_RETRY_DELAYS[min(n, len(START_RETRY_DELAYS)) - 1]
            self.log.error("taking over as the active dispatcher failed (attempt {n}): {err}; leaving in {delay}s, "
                           "to be restarted", n=n, err=exc, delay=delay)
            await sleep(delay)
            if self.is_attached():
                self.leave(uris.ERROR_START_FAILED, f"taking over failed: {exc}")
            return
        type(self)._failed_takeovers = 0
        self._housekeeping.start(self._prune_interval)
        if self._node:
            self.log.info("dispatcher active (term {term}) on cluster node {node}", term=term, node=self._node)
        else:
            self.log.info("dispatcher active (term {term}); {n} logged events its predecessor left unpublished "
                          "were published", term=term, n=published)
        # Grants of sessions that left unseen: swept by the active dispatcher only, and only those of
        # sessions that held them before the router's list was read (``forget_gone_sessions``).
        try:
            gone = await self._queries.forget_gone_sessions(self.call)
        except Exception as exc:  # harmless to leave: a gone session's grant serves no one
            self.log.warn("cannot forget the grants of sessions that are gone: {err}", err=exc)
        else:
            if gone:
                self.log.info("forgot the grants of {n} sessions that are gone", n=gone)

    async def _register_alone(self, body: Callable[..., Any], procedure: str, options: RegisterOptions) -> None:
        """Register a procedure that writes or orders. Held by a session that is not the leader (a gateway
        of another version, an operator's tool): wait until it is free rather than share it."""
        refusals = 0
        while True:
            try:
                await self.register(body, procedure, options=options)
                return
            except ApplicationError as exc:
                if exc.error not in HELD_ELSEWHERE:
                    raise
            refusals += 1
            if refusals == 1:
                self.log.warn("{procedure} is registered by a session that is not the active dispatcher; "
                              "waiting until it is free", procedure=procedure)
            await sleep(retry_delay(refusals))

    async def _rebuild_sessions(self) -> None:
        """Know every client session there is now (the meta events tell of those that come later)."""
        for session_id in await self.call(uris.META_SESSION_LIST):
            try:
                self._sessions.joined(await self.call(uris.META_SESSION_GET, session_id))
            except ApplicationError:
                continue  # gone meanwhile

    def _session_left(self, session_id: int, *rest: Any) -> None:
        self._sessions.left(session_id)
        self._queries.session_left(session_id)
        if self._buckets is not None:
            self._buckets.forget(session_id)

    async def _publish(self, items: list[list[Any]]) -> list[dict[str, Any]]:
        """``gateway.internal.publish``: one result per item, as ``results`` puts them on the wire."""
        assert self._publisher is not None
        return [result.to_wire() for result in await self._publisher.publish(items)]

    def _send(self, topic: str, payload: dict[str, Any], restriction: Restriction = ANYONE,
              exclude: Sequence[int] = (), acknowledge: bool = False, more: Sequence[dict[str, Any]] = ()
              ) -> Deferred[Any] | None:
        """Publish to whom ``restriction`` allows but the ``exclude``d sessions (``publishing.Send``); ``more``:
        further positional arguments (a batch's envelopes after the first)."""
        if restriction == ANYONE and not exclude:
            return self.publish(topic, payload, *more, options=_ACK if acknowledge else None)  # type: ignore[no-any-return]
        eligible = restriction.eligible
        if eligible is not None and not eligible:
            # No one may have it, but an empty eligible list would mean "no restriction":
            # this session, which never receives its own publications, stands in.
            assert self._session_id is not None
            eligible = [self._session_id]
        options = PublishOptions(acknowledge=acknowledge or None, eligible=eligible,
                                 eligible_authrole=restriction.eligible_authrole, exclude=list(exclude) or None)
        return self.publish(topic, payload, *more, options=options)  # type: ignore[no-any-return]

    def _send_now(self) -> None:
        """What was published goes to the router now (``components.sending``): its transport's
        (autobahn's protocol's) Twisted connection."""
        send_now(getattr(self._transport, "transport", None))

    async def _subscribe(self, query: str, persistent: bool = False, batch: bool = False,
                         details: CallDetails | None = None) -> dict[str, Any]:
        """Checked and derived here; the store's part on a store thread; then indexed here."""
        assert self._thread is not None and self._bookkeeping is not None
        await self._know_caller(details)
        plan = self._queries.plan(query, persistent, details, batch)
        if not persistent:
            result: dict[str, Any] = await self._bookkeeping.run(apply_plan, plan, self._limits, 0)
        else:
            # Between batches (the lock): every event numbered after its start (high water) is
            # looked up by a batch that already sees it, so it is logged; none falls in between.
            # On the batches' store thread: what batches wait for here is this subscribe's store
            # work only, not the bookkeeping queued before it. (No block of seq numbers is being
            # taken when high_water() is None: the first is taken within a batch.)
            await self._turn.acquire()
            try:
                result = await self._thread.run(apply_plan, plan, self._limits, self._sequencer.high_water())
            finally:
                self._turn.release()
        self._queries.settle(plan)
        return result

    async def _authorize(self, session: dict[str, Any], uri: str, action: str,
                         options: dict[str, Any] | None = None) -> dict[str, bool]:
        """The dynamic authorizer: whether a query topic was granted is looked up on a store thread."""
        return await self._queries.authorize(session if isinstance(session, dict) else {}, uri, action, options)

    async def _list_subscriptions(self, details: CallDetails | None) -> list[dict[str, Any]]:
        await self._know_caller(details)
        return await self._queries.subscriptions(details=details)

    def _stats(self) -> dict[str, Any]:
        """``gateway.internal.stats``: the event log's rows by class, as of the last housekeeping round."""
        stats: dict[str, Any] = {
            "event_log": dict(self._housekeeping.event_log) if self._housekeeping is not None else None}
        if self._tail is not None:  # a cluster node: what it sees of the cluster (``cluster.LogTail.status``)
            stats["cluster"] = self._tail.status()
        return stats

    async def _know_caller(self, details: CallDetails | None) -> None:
        """Make sure the session table knows the caller. Its join event comes before anything it
        can call, but should it not have arrived, ask the router rather than guess its roles."""
        if (details is not None and details.caller is not None and details.caller_authrole != BACKEND_ROLE
                and self._sessions.get(int(details.caller)) is None):
            self._sessions.joined(await self.call(uris.META_SESSION_GET, details.caller))

    async def _end_subscription(self, subscription_id: str, details: CallDetails) -> None:
        await self._queries.unsubscribe(subscription_id, details)

    def registry_changed(self, old: Registry, new: Registry) -> None:
        self._queries.recompile()

    async def _catalog(self, details: CallDetails) -> dict[str, Any]:
        await self._know_caller(details)
        known = self._sessions.get(int(details.caller)) if details.caller is not None else None
        if known is None:  # our own components (not in the table of client sessions)
            return self.registry.catalog(BACKEND_ROLE if details.caller_authrole == BACKEND_ROLE else "anonymous")
        catalog = self.registry.catalog(known.authrole, known.roles)
        # A class whose row filter compares with $user is invisible to a client with no user.
        hidden = {c.name for c in self.registry if not visible_with_row_filter(c, known.user)}
        if hidden:
            catalog = {**catalog, "classes": [c for c in catalog["classes"] if c["name"] not in hidden]}
        return catalog

    def onLeave(self, details: CloseDetails) -> None:
        local.withdraw(self._publish)
        if self._leadership is not None:
            self._leadership.stop()
        if self._housekeeping is not None:
            self._housekeeping.stop()
        if self._publisher is not None:
            self._publisher.close()  # writes the ids not yet written, on the store thread
        for thread in (self._thread, self._bookkeeping, self._housekeeping_thread, self._tail_thread):
            if thread is not None:
                thread.stop()  # after the writes asked for above; the reactor does not wait for them
        self._thread = self._bookkeeping = self._housekeeping_thread = self._tail_thread = None
        super().onLeave(details)


def _listener(cfg: GatewayConfig, node: str) -> Any:
    """On the cluster listener thread: a connection waiting for the shared log's notifications (opened
    without migrating: it needs no table, and must not wait for another node's migration)."""
    from components.store.postgres import PostgresStore  # a cluster's store is PostgreSQL

    assert cfg.store.url is not None
    store = PostgresStore(cfg.store.url, cfg.store.schema_name, cfg.store.statement_timeout,
                          cfg.store.connect_timeout, node, migrate=False)
    try:
        return store.listener()
    finally:
        store.close()


def _cluster_members(store: Store) -> list[str]:
    """The cluster nodes that saved their place in this store within the last minute (none for SQLite)."""
    return [name for name, _, age in store.nodes() if age < 60] if isinstance(store, ClusterLog) else []


def _take(store: Store, n: int) -> int:
    """On the events store thread: a block of n seq numbers (the Sequencer's ``take``)."""
    return store.take(n)
