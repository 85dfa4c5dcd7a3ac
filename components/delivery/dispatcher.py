"""The dispatcher: numbers accepted events and publishes them to their topics.

Events reach it from the bridge through ``gateway.internal.publish``, in
batches (a single event is a batch of one). For each it checks the event id
against the ids it accepted before (idempotency: the same id twice is one
event, and the second answer says so), gives it a ``seq`` (strictly
increasing, durable across restarts) and a ``time``, and publishes the
envelope to ``gateway.event.<class>``, asking the router to acknowledge, so
that the bridge answers 202 only for events the router took.

Every container worker runs a dispatcher. They register the procedure with
the ``first`` invocation policy: one is active, the others stand by, and
when the active one's process dies the router sends the next call to a
standby at once. seq stays in order because only one numbers events at a
time and a standby takes its first block of numbers only when it takes over.

This module is the WAMP component: start-up, the registrations, the meta-event
subscriptions, the authorizer, the catalog and lifecycle. The procedures' bodies
live beside it: ``publishing`` (the per-event path), ``replay`` (replay and ack),
``webapp_subscriptions`` (the bridge's /subscriptions) and ``housekeeping``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CloseDetails, PublishOptions, RegisterOptions, SessionDetails
from twisted.internet.defer import Deferred, DeferredLock

from components import uris
from components.backend import BackendSession
from components.delivery.housekeeping import Housekeeping
from components.delivery.persistent import PersistentBook, owners
from components.delivery.publishing import ANYONE, Publisher
from components.delivery.replay import ReplayAndAck
from components.delivery.rowfilter import visible_with_row_filter
from components.delivery.sequence import Sequencer
from components.delivery.sessions import Restriction, SessionInfo, Sessions
from components.delivery.subscriptions import QuerySubscriptions, apply_plan
from components.delivery.webapp_subscriptions import WebAppSubscriptions
from components.events import Registry
from components.events.rules import BACKEND_ROLE
from components.store.base import Store, open_store
from components.store.thread import StoreThread

_ACK = PublishOptions(acknowledge=True)


class Dispatcher(BackendSession):
    _store: Store | None = None
    _thread: StoreThread | None = None
    _publisher: Publisher | None = None
    _housekeeping: Housekeeping | None = None
    _queries: QuerySubscriptions
    _sessions: Sessions
    _book: PersistentBook
    #: Batches of events take their turn with it, and so do persistent subscribes (see _subscribe).
    _turn: DeferredLock

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self.start_registry(cfg)
        # The reactor thread's own connection, for the quick bookkeeping of grants and queries
        # (and a block of seq numbers now and then); events' ids and the event log are read and
        # written on the store thread, with a connection of its own.
        self._store = store = open_store(cfg.store)
        self._thread = thread = StoreThread(lambda: open_store(cfg.store), name="dispatcher-store")
        self._turn = DeferredLock()
        sequencer = Sequencer(store.take)
        self._max_per_session = cfg.queries.max_per_session
        self._sessions = Sessions(cfg.auth.user_role)
        self._book = PersistentBook(store, lambda: self.registry, lambda: sequencer.high_water(store.taken))
        self._queries = QuerySubscriptions(store, lambda: self.registry, cfg.queries, self._sessions, self._book)
        self._publisher = Publisher(thread, self._turn, sequencer, lambda: self.registry, self._sessions,
                                    self._queries, self._send)
        replay = ReplayAndAck(thread, self._queries, lambda: self.registry, self._know_caller)
        web_app = WebAppSubscriptions(self._queries, self._book, self._sessions, self._turn, cfg.auth.user_role,
                                      self._send)
        self._housekeeping = Housekeeping(thread, self._queries, lambda: self.registry, cfg.store.idempotency_window,
                                          cfg.store.max_logged_per_class, web_app.end)
        self._housekeeping.start(cfg.store.prune_interval)
        # Live queries: follow the router's subscriptions, then catch up with what exists now.
        await self.subscribe(self._queries.created, uris.META_SUBSCRIPTION_ON_CREATE)
        await self.subscribe(self._queries.unsubscribed, uris.META_SUBSCRIPTION_ON_UNSUBSCRIBE)
        await self.subscribe(self._queries.deleted, uris.META_SUBSCRIPTION_ON_DELETE)
        await self.subscribe(self._sessions.joined, uris.META_SESSION_ON_JOIN)
        await self.subscribe(self._session_left, uris.META_SESSION_ON_LEAVE)
        await self._rebuild_sessions()
        await self._queries.rebuild(self.call)
        # The authorizer first: until it is registered, clients can do nothing at all.
        await self.register(self._authorize, uris.AUTHORIZE, options=RegisterOptions(invoke="roundrobin"))
        await self.register(self._publish, uris.INTERNAL_PUBLISH, options=RegisterOptions(invoke="first"))
        with_caller = RegisterOptions(invoke="first", details_arg="details")
        await self.register(self._subscribe, uris.SUBSCRIBE, options=with_caller)
        await self.register(self._end_subscription, uris.UNSUBSCRIBE, options=with_caller)
        await self.register(self._with_caller(self._queries.subscriptions), uris.SUBSCRIPTIONS, options=with_caller)
        await self.register(replay.replay, uris.REPLAY, options=with_caller)
        await self.register(replay.ack, uris.ACK, options=with_caller)
        for_web_apps = RegisterOptions(invoke="first")
        await self.register(web_app.create_for_user, uris.INTERNAL_SUBSCRIPTION_CREATE, options=for_web_apps)
        await self.register(web_app.list, uris.INTERNAL_SUBSCRIPTION_LIST, options=for_web_apps)
        await self.register(web_app.delete, uris.INTERNAL_SUBSCRIPTION_DELETE, options=for_web_apps)
        await self.register(self._catalog, uris.CATALOG,
                            options=RegisterOptions(invoke="roundrobin", details_arg="details"))
        await self.register_reload()
        self.log.info("dispatcher ready: {n} event classes, version {v}",
                      n=len(self.registry), v=self.registry.version)

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

    async def _publish(self, items: list[list[Any]]) -> list[dict[str, Any]]:
        """``gateway.internal.publish``: one result per item, as ``results`` puts them on the wire."""
        assert self._publisher is not None
        return [result.to_wire() for result in await self._publisher.publish(items)]

    def _send(self, topic: str, payload: dict[str, Any], restriction: Restriction = ANYONE,
              exclude: Sequence[int] = (), acknowledge: bool = False) -> Deferred[Any] | None:
        """Publish to whom ``restriction`` allows but the ``exclude``d sessions (``publishing.Send``)."""
        if restriction == ANYONE and not exclude:
            return self.publish(topic, payload, options=_ACK if acknowledge else None)  # type: ignore[no-any-return]
        eligible = restriction.eligible
        if eligible is not None and not eligible:
            # No one may have it, but an empty eligible list would mean "no restriction":
            # this session, which never receives its own publications, stands in.
            assert self._session_id is not None
            eligible = [self._session_id]
        options = PublishOptions(acknowledge=acknowledge or None, eligible=eligible,
                                 eligible_authrole=restriction.eligible_authrole, exclude=list(exclude) or None)
        return self.publish(topic, payload, options=options)  # type: ignore[no-any-return]

    async def _subscribe(self, query: str, persistent: bool = False, details: CallDetails | None = None
                         ) -> dict[str, Any]:
        """Checked and derived here; the store's part on the store thread; then indexed here."""
        assert self._thread is not None
        await self._know_caller(details)
        plan = self._queries.plan(query, persistent, details)
        if not persistent:
            result: dict[str, Any] = await self._thread.run(apply_plan, plan, self._max_per_session, 0)
        else:
            # Between batches (the lock): every event numbered after its start (high water) is
            # looked up by a batch that already sees it, so it is logged; none falls in between.
            await self._turn.acquire()
            try:
                result = await self._thread.run(apply_plan, plan, self._max_per_session, self._book.high_water())
            finally:
                self._turn.release()
        self._queries.settle(plan)
        return result

    async def _authorize(self, session: dict[str, Any], uri: str, action: str,
                         options: dict[str, Any] | None = None) -> dict[str, bool]:
        """The dynamic authorizer: whether a query topic was granted is looked up on the store thread."""
        granted = False
        if action == "subscribe" and uri.startswith(uris.QUERY_TOPIC_PREFIX) and isinstance(session, dict):
            assert self._thread is not None
            session_id = int(session.get("session", 0))
            mine = owners(SessionInfo.from_details({**session, "session": session_id}))
            granted = await self._thread.run(_look_up_grant, session_id, uri[len(uris.QUERY_TOPIC_PREFIX):], mine)
        return self._queries.authorize(session, uri, action, options, granted=lambda key: granted)

    def _with_caller(self, procedure: Callable[..., Any]) -> Callable[..., Any]:
        """The procedure, once the session table knows the caller (see _know_caller)."""
        async def call(*args: Any, details: CallDetails | None = None, **kwargs: Any) -> Any:
            await self._know_caller(details)
            return procedure(*args, details=details, **kwargs)
        return call

    async def _know_caller(self, details: CallDetails | None) -> None:
        """Make sure the session table knows the caller. Its join event comes before anything it
        can call, but should it not have arrived, ask the router rather than guess its roles."""
        if (details is not None and details.caller is not None and details.caller_authrole != BACKEND_ROLE
                and self._sessions.get(int(details.caller)) is None):
            self._sessions.joined(await self.call(uris.META_SESSION_GET, details.caller))

    def _end_subscription(self, subscription_id: str, details: CallDetails) -> None:
        self._queries.unsubscribe(subscription_id, details)

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
        if self._housekeeping is not None:
            self._housekeeping.stop()
        if self._publisher is not None:
            self._publisher.close()  # writes the ids not yet written, on the store thread
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()  # after the writes asked for above
        if self._store is not None:
            self._store.close()
            self._store = None
        super().onLeave(details)


def _look_up_grant(store: Store, session: int, key: str, owners_: list[str]) -> bool:
    """On the store thread: was the session granted the query topic, or is it the topic of a persistent
    subscription of the session's token or user (then it is granted now, for this session)?"""
    if store.granted(session, key):
        return True
    for sub in store.persistent_of(owners_) if owners_ else []:
        if sub.key == key:
            try:
                store.grant(f"{sub.id}@{session}", session, key)
            except Exception:  # granted meanwhile (gateway.subscriptions on the reactor's connection)
                return store.granted(session, key)
            return True
    return False
