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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CloseDetails, PublishOptions, RegisterOptions, SessionDetails
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, succeed
from twisted.internet import reactor
from twisted.internet.base import DelayedCall
from twisted.internet.task import LoopingCall

from components import uris
from components.backend import BackendSession
from components.envelope import make_envelope, new_event_id
from components.delivery.sequence import Sequencer
from components.events import Registry
from components.store.base import LoggedEvent, PersistentSubscription, Store, open_store
from components.store.thread import StoreThread
from components.events.rules import BACKEND_ROLE
from components.delivery.rowfilter import visible_with_row_filter
from components.delivery.persistent import MAX_PAGE, PAGE, PersistentBook, check_ack, compile_parts, owners, read_replay
from components.delivery.sessions import Restriction, SessionInfo, Sessions
from components.delivery.subscriptions import QuerySubscriptions, apply_plan, describe

_ACK = PublishOptions(acknowledge=True)
_ANYONE = Restriction()
_NO_ONE = Restriction(eligible=[])
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's

Result = dict[str, Any]


class Dispatcher(BackendSession):
    _store: Store | None = None
    _sequencer: Sequencer
    _pruner: LoopingCall | None = None
    _window: float
    #: id -> the result of an event being published right now, so that the
    #: same id arriving meanwhile waits for it instead of publishing twice.
    _pending: dict[str, Deferred[Result]]
    _queries: QuerySubscriptions
    _sessions: Sessions
    _book: PersistentBook
    #: ids accepted in this reactor turn, not yet written: id -> (event class, seq)
    _unsaved: dict[str, tuple[str, int]]
    _flush: DelayedCall | None
    _thread: StoreThread
    _turn: DeferredLock

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self.start_registry(cfg)
        # The reactor thread's own connection, for the quick bookkeeping of grants and queries
        # (and a block of seq numbers now and then); events' ids and the event log are read and
        # written on the store thread, with a connection of its own.
        self._store = open_store(cfg.store)
        self._thread = StoreThread(lambda: open_store(cfg.store), name="dispatcher-store")
        self._turn = DeferredLock()
        self._sequencer = Sequencer(self._store.take)
        self._window = cfg.store.idempotency_window
        self._max_logged = cfg.store.max_logged_per_class
        self._max_per_session = cfg.queries.max_per_session
        self._pending = {}
        self._unsaved = {}
        self._flush = None
        self._sessions = Sessions(cfg.auth.user_role)
        self._user_role = cfg.auth.user_role
        store = self._store
        self._book = PersistentBook(store, lambda: self.registry, lambda: self._sequencer.high_water(store.taken))
        self._queries = QuerySubscriptions(self._store, lambda: self.registry, cfg.queries, self._sessions,
                                           self._book)
        self._pruner = LoopingCall(self._prune)
        self._pruner.start(cfg.store.prune_interval, now=True)
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
        await self.register(self._replay, uris.REPLAY, options=with_caller)
        await self.register(self._ack, uris.ACK, options=with_caller)
        web_app = RegisterOptions(invoke="first")
        await self.register(self._create_for_user, uris.INTERNAL_SUBSCRIPTION_CREATE, options=web_app)
        await self.register(self._list_subscriptions, uris.INTERNAL_SUBSCRIPTION_LIST, options=web_app)
        await self.register(self._delete_subscription, uris.INTERNAL_SUBSCRIPTION_DELETE, options=web_app)
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

    async def _publish(self, items: list[list[Any]]) -> list[Result]:
        """Publish a batch, in order; one result per item, never an exception for one bad item.

        Each item is ``[event, data, id]`` or ``[event, data, id, audience]``. Events of classes
        with a persistent subscription are written to the event log (with their ids, in one
        transaction) before any of the batch is published, so before any 202.

        The store is read and written on the store thread. Batches take their turn for that
        part (the lock): whether an id was accepted before is decided, and its seq taken, by
        one batch at a time; publishing and waiting for the router overlap freely. Every id is
        looked up, pending or not: the store thread answers in order, so an id written before
        the look-up is found there, and one written after is still in ``_unsaved``.
        """
        items = [[item[0], item[1], item[2] or new_event_id(), item[3] if len(item) > 3 else None]
                 for item in items]
        await self._turn.acquire()
        try:
            earlier, logged, rows = await self._thread.run(_look_up, [i for _, _, i, _ in items])
            batch = _Batch()
            results = [self._publish_safely(event, data, event_id, audience, logged, batch, earlier, rows)
                       for event, data, event_id, audience in items]
            if batch.rows:
                try:
                    await self._thread.run(lambda store: store.log_and_remember(batch.rows))
                except Exception as exc:
                    self.log.error("cannot write {n} events to the event log: {err}", n=len(batch.rows), err=exc)
                    for _, failed in batch.sends:
                        failed.errback(exc)
                    batch.sends.clear()
            for send, d in batch.sends:
                try:
                    send()
                except Exception as exc:  # never leave an id pending for ever
                    if not d.called:
                        d.errback(exc)
        finally:
            self._turn.release()
        pairs: list[tuple[bool, Result]] = await DeferredList(results, consumeErrors=True)
        return [r for _, r in pairs]

    def _publish_safely(self, *args: Any) -> Deferred[Result]:
        try:
            return self._publish_one(*args)
        except Exception as exc:  # e.g. the store could not give a block of seq numbers
            self.log.error("could not number an event: {err}", err=exc)
            return succeed({"error": "unavailable", "status": 503,
                            "message": "the gateway could not number the event; it was not accepted"})

    def _publish_one(self, event: str, data: dict[str, Any], event_id: str,
                     audience: dict[str, list[str]] | None, logged: set[str], batch: _Batch,
                     earlier_ids: dict[str, tuple[str, int]], logged_rows: dict[str, LoggedEvent]) -> Deferred[Result]:
        if event not in self.registry:
            return succeed({"error": "unknown_event", "message": f"no event class named {event!r}", "status": 404})
        pending = self._pending.get(event_id)
        if pending is not None:
            return _follow(pending, event)
        earlier = self._unsaved.get(event_id) or earlier_ids.get(event_id)
        row = logged_rows.get(event_id)
        if earlier is not None and not (row is not None and row.event == event):
            return succeed(_as_duplicate({"id": event_id, "seq": earlier[1], "event": earlier[0]}, event))
        persisted = False
        if row is not None and earlier is not None:
            # Accepted and logged before, but it may never have been published (the dispatcher
            # died between the log write and the publish): publish it again, with its seq. A
            # subscriber that had it drops it by seq; one that had not gets it now.
            seq = row.seq
            envelope = {"event": row.event, "id": row.id, "seq": row.seq, "time": row.time,
                        "data": json.loads(row.data)}
            audience = json.loads(row.audience) if row.audience is not None else None
            data = envelope["data"]
            again = True
        else:
            again = False
            seq = self._sequencer.next()
            now = datetime.now(timezone.utc)
            envelope = make_envelope(event, event_id, seq, now, data)
            persisted = event in logged
            if persisted:
                batch.rows.append(LoggedEvent(seq=seq, event=event, id=event_id, time=envelope["time"],
                                              data=json.dumps(data, separators=(",", ":")),
                                              audience=None if audience is None else json.dumps(audience),
                                              logged_at=now.timestamp()))
        cls = self.registry.get(event)
        restriction = self._sessions.restriction(cls.visibility, audience)
        d: Deferred[Any] = Deferred()

        def send() -> None:
            # One publish per matching query (not per client), then the class topic. The
            # router handles a session's messages in order: its acknowledgement of the
            # last publish means it took them all.
            for topic, exclude in self._queries.topics_for(event, data):
                if exclude or restriction != _ANYONE:
                    self.publish(topic, envelope, options=self._options(restriction, exclude))
                else:
                    self.publish(topic, envelope)
            # No client may hold the class topic of a class with a row filter (the authorizer
            # says so); should one have it from before a reload added the filter, it gets nothing.
            final = _NO_ONE if cls.row_filter is not None else restriction
            options = _ACK if final == _ANYONE else self._options(final, (), acknowledge=True)
            self.publish(uris.event_topic(event), envelope, options=options).chainDeferred(d)

        batch.sends.append((send, d))
        outcome: Deferred[Result] = Deferred()
        self._pending[event_id] = outcome

        def done(_: Any) -> Result:
            if not persisted and not again:  # a logged event's id was written with it
                self._remember(event_id, event, seq)
            result: Result = {"id": event_id, "seq": seq, "event": event}
            return {**result, "duplicate": True} if again else result

        def failed(failure: Any) -> Result:
            self.log.warn("publishing {event} (seq {seq}) failed: {err}", event=event, seq=seq,
                          err=failure.getErrorMessage())
            if persisted or again:
                # Its id is remembered with the logged event: a retry with the same id publishes
                # it again with the same seq, and persistent subscribers have it on replay.
                return {"error": "unavailable", "status": 503, "message": "the router did not take the event; "
                        "retry with the same id (it is in the event log, and will not be doubled)"}
            return {"error": "unavailable", "message": "the router did not take the event; it was not accepted",
                    "status": 503}

        def settle(r: Result) -> Result:
            del self._pending[event_id]
            outcome.callback(r)
            return {k: v for k, v in r.items() if k != "event"}

        return d.addCallbacks(done, failed).addCallback(settle)

    def _options(self, restriction: Restriction, exclude: list[int] | tuple[int, ...],
                 acknowledge: bool = False) -> PublishOptions:
        eligible = restriction.eligible
        if eligible is not None and not eligible:
            # No one may have it, but an empty eligible list would mean "no restriction":
            # this session, which never receives its own publications, stands in.
            assert self._session_id is not None
            eligible = [self._session_id]
        return PublishOptions(acknowledge=acknowledge or None, eligible=eligible,
                              eligible_authrole=restriction.eligible_authrole, exclude=list(exclude) or None)

    async def _subscribe(self, query: str, persistent: bool = False, details: CallDetails | None = None
                         ) -> dict[str, Any]:
        """Checked and derived here; the store's part on the store thread; then indexed here."""
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
            session_id = int(session.get("session", 0))
            mine = owners(SessionInfo.from_details({**session, "session": session_id}))
            granted = await self._thread.run(_look_up_grant, session_id, uri[len(uris.QUERY_TOPIC_PREFIX):], mine)
        return self._queries.authorize(session, uri, action, options, granted=lambda key: granted)

    # -- persistent subscriptions: replay and ack, on the store thread ----------

    async def _mine(self, subscription_id: object, details: CallDetails | None) -> tuple[SessionInfo,
                                                                                          PersistentSubscription]:
        await self._know_caller(details)
        who = self._queries.who(details)
        sub = await self._thread.run(lambda store: store.persistent(subscription_id)
                                     if isinstance(subscription_id, str) else None)
        if sub is None or sub.owner not in owners(who):
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION,
                                   f"no persistent subscription {subscription_id!r} of this client")
        return who, sub

    async def _replay(self, subscription_id: str, after_seq: int, limit: int = PAGE,
                      details: CallDetails | None = None) -> dict[str, Any]:
        for name, value in (("after_seq", after_seq), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, f"{name} must be a whole number, not {value!r}")
        who, sub = await self._mine(subscription_id, details)
        registry = self.registry
        compiled = compile_parts(sub, registry)  # parsing stays on the reactor thread
        page: dict[str, Any] = await self._thread.run(read_replay, who, sub, compiled, registry, after_seq,
                                                      max(1, min(limit, MAX_PAGE)))
        return page

    async def _ack(self, subscription_id: str, seq: int, details: CallDetails | None = None) -> dict[str, Any]:
        try:
            check_ack(seq)
        except ValueError as exc:
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, str(exc)) from None
        _, sub = await self._mine(subscription_id, details)
        last: int = await self._thread.run(lambda store: store.ack(sub.id, seq))
        return {"id": sub.id, "last_seq": last}

    # -- server-side subscriptions (the bridge's /subscriptions) ----------------

    async def _create_for_user(self, user: str, roles: list[str], query: str) -> dict[str, Any]:
        await self._turn.acquire()  # between batches, as for gateway.subscribe(persistent=True)
        try:
            return self._queries.create_for_user(user, tuple(roles), query, self._user_role)
        finally:
            self._turn.release()

    def _list_subscriptions(self, user: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Persistent subscriptions of a user (theirs, and those their clients made), or of a class."""
        if event is not None:
            subs = self._book.for_class(event)
        elif user is not None:
            subs = self._book.for_user(user)
        else:
            subs = self._book.everyone()
        return [describe(sub) for sub in subs]

    def _delete_subscription(self, subscription_id: str) -> dict[str, Any]:
        sub = self._book.remove(subscription_id)
        if sub is None:
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, f"no persistent subscription {subscription_id!r}")
        self._end(sub, "removed by the web-app")
        return describe(sub)

    def _end(self, sub: PersistentSubscription, reason: str) -> None:
        """A persistent subscription ended: its owner's sessions stop receiving on its topic and are
        told (nobody else receives the notice)."""
        sessions = self._sessions.of_owner(sub.owner)
        self._queries.ended(sub, sessions)
        notice = {"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "reason": reason}
        self.publish(uris.META_SUBSCRIPTION_REMOVED, notice,
                     options=self._options(Restriction(eligible=sessions), ()))

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

    def _remember(self, event_id: str, event: str, seq: int) -> None:
        # Acknowledgements of a batch arrive together: write their ids in one
        # transaction at the end of this reactor turn instead of one each.
        # Until then they are looked up here.
        self._unsaved[event_id] = (event, seq)
        if self._flush is None:
            self._flush = _REACTOR.callLater(0, self._save)

    def _save(self) -> None:
        """Write the ids accepted this turn, on the store thread. They stay in ``_unsaved`` (where
        lookups find them) until written: a lookup queued before the write still sees them here."""
        self._flush = None
        if not self._unsaved:
            return
        written = dict(self._unsaved)

        def forget(_: object) -> None:
            for event_id in written:
                if self._unsaved.get(event_id) == written[event_id]:
                    del self._unsaved[event_id]

        def failed(failure: Any) -> None:
            self.log.error("cannot remember {n} accepted event ids: {err}", n=len(written),
                           err=failure.getErrorMessage())

        rows = [(i, e, s) for i, (e, s) in written.items()]
        if "_thread" not in self.__dict__:  # leaving: the thread is gone, write them here
            if self._store is not None:
                self._store.remember_many(rows)
            return
        self._thread.run(lambda store: store.remember_many(rows)).addCallbacks(forget, failed)

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

    def _prune(self) -> None:
        """Every minute: forget ids past the idempotency window, drop events past their retention.
        On the store thread, in short transactions: delivery never waits for it."""
        self._queries.expire_unconfirmed()
        registry, window, most = self.registry, self._window, self._max_logged

        def prune(store: Store) -> tuple[list[PersistentSubscription], int]:
            store.forget_before(time.time() - window)
            book = PersistentBook(store, lambda: registry, lambda: 0)
            return book.forget_orphans(), book.retain(most)

        def done(counts: tuple[list[PersistentSubscription], int]) -> None:
            orphans, dropped = counts
            for sub in orphans:
                self._end(sub, "its client token expired")
            if orphans:
                self.log.info("{n} persistent subscriptions ended with their expired client tokens", n=len(orphans))
            if dropped:
                self.log.info("event log: {n} events past their class's retention dropped", n=dropped)

        def failed(failure: Any) -> None:
            self.log.error("pruning the store failed: {err}", err=failure.getErrorMessage())

        if "_thread" in self.__dict__:
            self._thread.run(prune).addCallbacks(done, failed)

    def onLeave(self, details: CloseDetails) -> None:
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        flush = getattr(self, "_flush", None)
        if flush is not None:
            flush.cancel()
            self._save()
        thread: StoreThread | None = self.__dict__.pop("_thread", None)
        if thread is not None:
            thread.stop()  # after the writes asked for above
        if self._store is not None:
            self._store.close()
            self._store = None
        super().onLeave(details)


def _look_up(store: Store, ids: list[str]) -> tuple[dict[str, tuple[str, int]], set[str], dict[str, LoggedEvent]]:
    """On the store thread: id -> (class, seq) of those accepted before, the classes that are
    logged, and id -> the logged event for those accepted before that are in the event log."""
    earlier: dict[str, tuple[str, int]] = {}
    rows: dict[str, LoggedEvent] = {}
    for event_id in ids:
        found = store.accepted(event_id)
        if found is not None:
            earlier[event_id] = found
            logged = store.events_after([found[0]], found[1] - 1, 1)
            if logged and logged[0].seq == found[1] and logged[0].id == event_id:
                rows[event_id] = logged[0]
    return earlier, store.persistent_classes(), rows


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


class _Batch:
    """What a batch writes to the event log, and its publishes, sent once the log has them."""

    def __init__(self) -> None:
        self.rows: list[LoggedEvent] = []
        self.sends: list[tuple[Callable[[], None], Deferred[Any]]] = []


def _follow(pending: Deferred[Result], event: str) -> Deferred[Result]:
    """The answer for an id whose first event is being published right now, once it is."""
    waiter: Deferred[Result] = Deferred()

    def relay(first: Result) -> Result:
        waiter.callback(_as_duplicate(first, event))
        return first

    pending.addCallback(relay)
    return waiter


def _as_duplicate(first: Result, event: str) -> Result:
    """The answer for an id seen before: the same seq, or a conflict if it named another class."""
    if "error" in first:
        return {k: v for k, v in first.items()}
    if first["event"] != event:
        return {"error": "conflict", "status": 409,
                "message": f"id {first['id']!r} was already used by a {first['event']} event (seq {first['seq']})"}
    return {"id": first["id"], "seq": first["seq"], "duplicate": True}
