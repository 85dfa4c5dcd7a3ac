"""Query subscriptions: the client procedures and the authorizer, over the store, the policy and the live index.

A client calls ``gateway.subscribe(query)``; the query is parsed, checked
against the event classes the client may see and put in canonical form,
whose hash names its topic, ``gateway.query.<key>``. The client is granted
that topic (a row in the store, so every dispatcher's authorizer knows) and
then subscribes to it like to any WAMP topic. Clients with equal canonical
queries share the topic: an event is published to it once, whatever the
number of subscribers.

Which queries are live, and which topics an event goes to, is the live
index's (``live_queries``): this module feeds it the router's meta events,
the grants it makes and the parts each query topic is matched with now
(as the store keeps them, less the classes whose row filter changed since).

The store's part of each procedure is a function of its own below (``apply_plan``,
``end_grant``, ...), run on a store thread in one go; the reactor thread only
parses, checks and indexes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from components import uris
from components.config import QueriesConfig
from components.events import EventClass, Registry
from components.events.rules import ANONYMOUS_ROLE
from components.auth.policy import OPERATOR_ROLE, Decision, authorize
from components.query import Query, QueryError, QueryNotAuthorized, canonical, check, parse, to_text
from components.query.index import QueryIndex
from components.delivery.live_queries import LiveQueries, Made
from components.delivery.rowfilter import parts, parts_key, session_params, visible_with_row_filter
from components.delivery.sessions import SessionInfo, Sessions
from components.delivery.persistent import PERSISTENT_PREFIX, OverLimit, check_room, owners, token_owner
from components.auth.credentials import digest, identity_of
from components.store.base import PersistentSubscription, Store
from components.store.thread import StoreRunner

log = Logger()

#: Calls into the router's meta API: (procedure, *args) -> result.
Caller = Callable[..., Any]


class QuerySubscriptions:
    """The query subscription procedures of one dispatcher, and its live index (``live``).

    The store's part of each runs where ``store`` runs it (the dispatcher's store thread): those
    methods answer with a Deferred (or are coroutines), and the live index, which is the reactor
    thread's, changes once the store answered. Parsing and checking queries stays here.
    """

    def __init__(self, store: StoreRunner, registry: Callable[[], Registry], limits: QueriesConfig,
                 sessions: Sessions | None = None, high_water: Callable[[], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, token_ttl: float = 7 * 24 * 3600,
                 operator_role: str = OPERATOR_ROLE) -> None:
        """``high_water``: where a new persistent subscription starts (the dispatcher's
        ``Sequencer.high_water``; None from it: the store's counter); None: no persistent subscriptions
        here. ``token_ttl``: auth.client_token_ttl, the life of the row a persistent subscription's
        token gets."""
        self._store = store
        self._high_water = high_water
        self._sessions = sessions if sessions is not None else Sessions()
        self._registry = registry
        self._limits = limits
        self._token_ttl = token_ttl
        self._operator_role = operator_role  # status.operator_role: who may call gateway.status
        self.live = LiveQueries(self._current_parts, clock, _unindexable)

    @property
    def index(self) -> QueryIndex[str]:
        """The live index's compiled queries."""
        return self.live.index

    # -- the client procedures -------------------------------------------------

    async def subscribe(self, query: str, persistent: bool = False, details: CallDetails | None = None,
                        batch: bool = False) -> dict[str, Any]:
        """``gateway.subscribe`` in one go (the dispatcher splits it: see ``plan``, ``apply_plan``, ``settle``)."""
        plan = self.plan(query, persistent, details, batch)
        last_seq = self._high_water() if self._high_water is not None else 0
        result: dict[str, Any] = await self._store.run(apply_plan, plan, self._limits, last_seq)
        self.settle(plan)
        return result

    def plan(self, query: str, persistent: bool = False, details: CallDetails | None = None,
             batch: bool = False) -> Plan:
        """Check the arguments and derive the query's canonical form and parts (no store work). ``batch``:
        the answer's topic is the query's batched one (``batching``)."""
        who = self._who(details)
        if not isinstance(persistent, bool):
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, f"persistent must be true or false, not {persistent!r}")
        if not isinstance(batch, bool):
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, f"batch must be true or false, not {batch!r}")
        keep_token = None
        if persistent:
            if self._high_water is None or who.client_token is None:
                raise ApplicationError(uris.ERROR_NOT_SUPPORTED, "this session has no client token to keep a "
                                       "persistent subscription with")
            if who.user is None and not self._limits.anonymous_persistent:
                raise ApplicationError(uris.ERROR_NOT_AUTHORIZED, "anonymous clients may not keep persistent "
                                       "subscriptions on this gateway (queries.anonymous_persistent is false): "
                                       "log in first, or subscribe without persistent")
            # Stored with the subscription (an anonymous client's token has no row before): it then
            # lives as long as the token, renewed on each connection.
            keep_token = (digest(who.client_token), identity_of(who.user), time.time() + self._token_ttl)
        text, texts, filters = self._derive_or_refuse(query, session_params(who.user, who.authrole, who.roles))
        return Plan(who, text, texts, parts_key(texts), filters, sorted(filters), persistent, keep_token, batch)

    def _derive_or_refuse(self, query: object, params: dict[str, Any]
                          ) -> tuple[str, list[str], dict[str, str | None]]:
        """(canonical query, parts, row filter of each class selected), or the WAMP error saying why not."""
        if not isinstance(query, str):
            raise ApplicationError(uris.ERROR_INVALID_QUERY, f"the query must be a string, not {type(query).__name__}")
        try:
            text, texts = self._derive(query, params)
        except QueryNotAuthorized as exc:
            raise ApplicationError(uris.ERROR_NOT_AUTHORIZED, str(exc), message=exc.message) from None
        except QueryError as exc:
            raise ApplicationError(uris.ERROR_INVALID_QUERY, str(exc), message=exc.message, position=exc.position,
                                   query=query) from None
        registry = self._registry()
        classes = {name for part in texts for name in parse(part, max_length=1_000_000, max_depth=100).selectors}
        return text, texts, {name: registry.get(name).row_filter for name in sorted(classes)}

    def settle(self, plan: Plan) -> None:
        """After the store took the grant: index the query until its subscriber comes."""
        self.live.grant(plan.key, plan.who.session, (plan.texts, plan.filters), plan.batch)

    def plan_for_user(self, user: str, roles: tuple[str, ...], query: str, user_role: str) -> UserPlan:
        """A persistent subscription a web-app makes for a user, checked and derived (no store work):
        ``apply_user_plan`` makes it."""
        if self._high_water is None:
            raise ApplicationError(uris.ERROR_NOT_SUPPORTED, "no persistent subscriptions here")
        text, texts, filters = self._derive_or_refuse(query, session_params(user, user_role, roles))
        return UserPlan(user, text, texts, parts_key(texts), filters)

    async def create_for_user(self, user: str, roles: tuple[str, ...], query: str, user_role: str) -> dict[str, Any]:
        """A persistent subscription a web-app makes for a user (connected or not), in one go (the
        dispatcher splits it: ``plan_for_user``, then ``apply_user_plan`` between batches): any client of
        the user finds it in ``gateway.subscriptions()``; events that match are kept from now on."""
        plan = self.plan_for_user(user, roles, query, user_role)
        assert self._high_water is not None
        made: dict[str, Any] = await self._store.run(apply_user_plan, plan, self._limits, self._high_water())
        return made

    def _derive(self, query: str, params: dict[str, Any]) -> tuple[str, list[str]]:
        """(the canonical query, its parts) for a subscriber with these parameters, under the current classes.

        Wildcards are expanded to the classes this subscriber may see: the topic of
        "demo.*" for an anonymous client must never carry staff-only events. Row
        filters are ANDed in with the subscriber's parameters: the topic of alice's
        "orders.*" carries alice's orders only.
        """
        registry = self._registry()
        user, role, roles = params["user"], str(params["role"]), tuple(params["roles"])

        def visible(cls: EventClass) -> bool:
            return cls.visible_to(role, roles) and visible_with_row_filter(cls, user)

        checked = check(parse(query, max_length=self._limits.max_length, max_depth=self._limits.max_depth,
                              params=params), registry, visible=visible)
        text = to_text(canonical(Query(checked.classes, checked.query.where)))
        return text, parts(checked, registry, params)

    def _current_parts(self, key: str, made: Made) -> list[str] | None:
        """The parts to match a query topic with now: as made, less the classes whose row filter changed
        since (a reload). Those are no longer delivered on it, rather than delivered under rules its
        subscribers never had: they subscribe again to get them under the new filter."""
        texts, made_under = made
        if made_under is None:
            # Made before row filters were recorded, i.e. before there were any.
            made_under = {name: None for text in texts
                          for name in parse(text, max_length=1_000_000, max_depth=100).selectors}
        registry = self._registry()
        changed = {name for name, rule in made_under.items()
                   if name not in registry or registry.get(name).row_filter != rule}
        if not changed:
            return texts
        log.info("query topic {key}: the row filter of {classes} changed; no longer delivered on it",
                 key=key, classes=", ".join(sorted(changed)))
        kept = []
        for text in texts:
            part = parse(text, max_length=1_000_000, max_depth=100)
            selectors = tuple(s for s in part.selectors if s not in changed)
            if selectors:
                kept.append(to_text(Query(selectors, part.where)))
        return kept or None

    async def unsubscribe(self, subscription_id: str, details: CallDetails | None = None) -> tuple[int, str]:
        """Revoke the grant (and end a persistent subscription for good); returns (session, key)."""
        who = self._who(details)
        persistent = str(subscription_id).startswith(PERSISTENT_PREFIX) and self._high_water is not None
        key, still_granted = await self._store.run(end_grant, who, str(subscription_id), persistent)
        if not still_granted:
            self.live.exclude(key, who.session)
        return who.session, key

    async def subscriptions(self, details: CallDetails | None = None) -> list[dict[str, Any]]:
        """The session's subscriptions: its own, then the persistent ones of its token and user (their
        topics granted to this session, so that a client that comes back can subscribe to them again)."""
        who = self._who(details)
        found, granted = await self._store.run(list_subscriptions, who, self._high_water is not None)
        for key, made in granted:
            self.live.grant(key, who.session, made)
        return found

    async def authorize(self, session: dict[str, Any], uri: str, action: str,
                        options: dict[str, Any] | None = None) -> Decision:
        """The authorizer's answer. For a subscribe to a query topic, whether the session was granted it
        (or it is the topic of a persistent subscription of the session's token or user: granted now,
        and indexed) is looked up in the store first."""
        session_id = int(session.get("session", 0))
        # authextra is what our authenticator answered for this session: trusted.
        who = SessionInfo.from_details({**session, "session": session_id})
        granted = False
        query = uris.query_key(uri) if action == "subscribe" else None
        if query is not None:
            key, batched = query  # a query topic or its batched twin: the same grant
            mine = owners(who) if self._high_water is not None else []
            granted, made = await self._store.run(look_up_grant, session_id, key, mine)
            if made is not None:
                self.live.grant(key, session_id, made, batched)
            elif granted:
                self.live.want(key, batched)
        return authorize(str(session.get("authrole", "")), who.roles, uri, action, options or {}, self._registry(),
                         lambda key: granted, self._operator_role)

    # -- the live index: the router's meta events, grants lost, time, reloads ------

    def topics_for(self, event: str, data: dict[str, Any]) -> list[tuple[str, list[int]]]:
        """(topic, sessions to exclude) for every live unbatched query topic the event matches."""
        return self.live.topics_for(event, data)

    def targets(self, event: str, data: dict[str, Any]
                ) -> tuple[list[tuple[str, list[int]]], Sequence[tuple[str, list[int]]]]:
        """(unbatched, batched) query topics the event goes to, each with the sessions to exclude."""
        return self.live.targets(event, data)

    def created(self, session_id: int, subscription: dict[str, Any]) -> None:
        """``wamp.subscription.on_create``: the first subscriber of a topic arrived (indexed once the
        store said how its query was made, unless it was indexed already)."""
        key = self.live.created(session_id, subscription)
        if key is not None:
            self._look_up_made([key]).addErrback(_logged, "cannot index query topic {key}: {err}", key=key)

    def unsubscribed(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_unsubscribe``: a session left a topic; nothing to exclude any more."""
        self.live.unsubscribed(session_id, subscription_id)

    def deleted(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_delete``: the last subscriber left; the query costs nothing more."""
        self.live.deleted(session_id, subscription_id)

    async def ended(self, sub: PersistentSubscription, sessions: list[int]) -> None:
        """A persistent subscription ended (by the web-app, or with its token): the sessions that
        held its topic through it stop receiving on it, unless they hold it another way too."""
        if not sessions:
            return
        for session in await self._store.run(end_grants, sub, sessions):
            self.live.exclude(sub.key, session)

    def session_left(self, session_id: int) -> None:
        """``wamp.session.on_leave``: the session's grants go, and it is excluded from nothing any more."""
        self.live.session_left(session_id)
        self._store.run(lambda store: store.revoke_session(int(session_id))).addErrback(
            _logged, "cannot forget the grants of session {session}: {err}", session=session_id)

    async def rebuild(self, call: Caller) -> None:
        """Index every query topic that has subscribers now (every dispatcher, at start: no store write)."""
        listing = await call(uris.META_SUBSCRIPTION_LIST)
        wanted = []
        for subscription_id in listing.get("exact", []):
            try:
                info = await call(uris.META_SUBSCRIPTION_GET, subscription_id)
            except ApplicationError:
                continue  # gone meanwhile
            # Each as it arrives: an on_delete that comes in meanwhile then finds it, and it is not indexed.
            key = self.live.created(0, info)
            if key is not None:
                wanted.append(key)
        await self._look_up_made(wanted)

    async def forget_gone_sessions(self, call: Caller) -> int:
        """The active dispatcher's, when it takes over: revoke the grants of sessions that left unseen
        (the router restarted, an ``on_leave`` missed); how many sessions' grants went.

        The holders are read first, then the router's sessions: a session that held a grant before the
        router's list was asked for and is not in it is gone. A grant made in between (the active
        dispatcher granting a client that joined after the list was read, or any dispatcher's
        authorizer granting a persistent topic) belongs to a session not among the holders read, and
        stays; "every session but those listed" would delete it, and the client's subscribe would be
        refused."""
        held: set[int] = await self._store.run(lambda store: store.granted_sessions())
        if not held:
            return 0
        gone = held - {int(s) for s in await call(uris.META_SESSION_LIST)}
        if gone:
            await self._store.run(lambda store: store.revoke_sessions(gone))
        return len(gone)

    def _look_up_made(self, keys: list[str]) -> Deferred[None]:
        """Tell the live index how these query topics were made (from the store)."""
        def tell(found: dict[str, Made | None]) -> None:
            for key, made in found.items():
                self.live.made(key, made)

        return self._store.run(made_of, keys).addCallback(tell)

    def expire_unconfirmed(self) -> None:
        """Drop the queries granted a while ago (``live_queries.UNCONFIRMED_TTL``) that nobody subscribed to."""
        self.live.expire_unconfirmed()

    def recompile(self) -> None:
        """After a reload: compile every live query again (less classes whose row filter changed)."""
        self.live.recompile()

    def who(self, details: CallDetails | None) -> SessionInfo:
        """The caller, as the session table knows it (or, if it does not yet, as the call says)."""
        return self._who(details)

    def _who(self, details: CallDetails | None) -> SessionInfo:
        """The caller, as the session table knows it (or, if it does not yet, as the call says)."""
        if details is None or details.caller is None:
            raise ApplicationError(uris.ERROR_NOT_AUTHORIZED, "the caller's identity was not disclosed")
        known = self._sessions.get(int(details.caller))
        if known is not None:
            return known
        role = str(details.caller_authrole or ANONYMOUS_ROLE)
        user = None if role == ANONYMOUS_ROLE else str(details.caller_authid)
        return SessionInfo(int(details.caller), str(details.caller_authid or ""), role, user, ())


def _logged(failure: Failure, /, message: str, **fields: Any) -> None:
    log.error(message, err=failure.getErrorMessage(), **fields)


def _unindexable(key: str, texts: list[str], error: QueryError) -> None:
    # A canonical text we wrote ourselves: only a bug gets here.
    log.error("cannot index query {key} ({texts}): {err}", key=key, texts=texts, err=error)


@dataclass(frozen=True)
class Plan:
    """A ``gateway.subscribe`` checked and derived, for the store to take."""

    who: SessionInfo
    text: str
    texts: list[str]
    key: str
    filters: dict[str, str | None]
    classes: list[str]
    persistent: bool
    #: For a persistent one: its token's row (hash, identity, expires), saved with it.
    keep_token: tuple[str, str, float] | None = None
    #: ``gateway.subscribe(..., batch=True)``: answered with the query's batched topic.
    batch: bool = False


@dataclass(frozen=True)
class UserPlan:
    """A persistent subscription a web-app makes for a user, checked and derived, for the store to take."""

    user: str
    text: str
    texts: list[str]
    key: str
    filters: dict[str, str | None]


# -- the store's parts: each runs on a store thread, in one go -------------------------------


def apply_plan(store: Store, plan: Plan, limits: QueriesConfig, last_seq: int | None) -> dict[str, Any]:
    """The store's part of ``gateway.subscribe``: the limits, the query's row, the session's grant, and
    for a persistent one its row, starting after ``last_seq`` (None: the seq counter's value, read here)."""
    session = plan.who.session
    held = store.subscriptions_of(session)
    batched = {"batch": True} if plan.batch else {}
    if len(held) >= limits.max_per_session:
        raise ApplicationError(uris.ERROR_INVALID_QUERY,
                               f"a session may hold at most {limits.max_per_session} subscriptions")
    store.save_query(plan.key, plan.text, plan.texts, plan.filters)
    topic = uris.batch_query_topic(plan.key) if plan.batch else uris.query_topic(plan.key)
    if plan.persistent:
        assert plan.who.client_token is not None
        # The same query again, from the same token or user: the same subscription, with its cursor.
        # So a page can subscribe on every load and replay what it missed, never starting anew.
        for existing in store.persistent_of(owners(plan.who)):
            if existing.key == plan.key:
                grant = f"{existing.id}@{session}"
                if all(held_id != grant for held_id, _, _ in held):
                    _grant_once(store, grant, session, plan.key)
                return {"id": existing.id, "topic": topic, "query": existing.query, "persistent": True,
                        "last_seq": existing.last_seq, "resumed": True, **batched}
        try:
            check_room(store, limits, plan.who.user, plan.who.client_token)
        except OverLimit as exc:
            raise over_limit(exc) from None
        start = last_seq if last_seq is not None else store.taken()
        sub = PersistentSubscription(
            id=PERSISTENT_PREFIX + secrets.token_urlsafe(12), owner=token_owner(plan.who.client_token),
            user=plan.who.user, query=plan.text, key=plan.key, parts=list(plan.texts), filters=dict(plan.filters),
            classes=list(plan.classes), last_seq=start, created=time.time())
        store.save_persistent(sub, keep_token=plan.keep_token)
        store.grant(f"{sub.id}@{session}", session, plan.key)
        return {"id": sub.id, "topic": topic, "query": plan.text, "persistent": True, "last_seq": start,
                "resumed": False, **batched}
    subscription_id = "s_" + secrets.token_urlsafe(12)
    store.grant(subscription_id, session, plan.key)
    return {"id": subscription_id, "topic": topic, "query": plan.text, "persistent": False, **batched}


def apply_user_plan(store: Store, plan: UserPlan, limits: QueriesConfig, last_seq: int | None) -> dict[str, Any]:
    """The store's part of a persistent subscription made for a user: the limits, the query's row and
    the subscription's, starting after ``last_seq`` (None: the seq counter's value, read here)."""
    try:
        check_room(store, limits, plan.user, None)
    except OverLimit as exc:
        raise over_limit(exc) from None
    store.save_query(plan.key, plan.text, plan.texts, plan.filters)
    sub = PersistentSubscription(
        id=PERSISTENT_PREFIX + secrets.token_urlsafe(12), owner=f"user:{plan.user}", user=plan.user, query=plan.text,
        key=plan.key, parts=list(plan.texts), filters=dict(plan.filters), classes=sorted(plan.filters),
        last_seq=last_seq if last_seq is not None else store.taken(), created=time.time())
    store.save_persistent(sub)
    return describe(sub)


def end_grant(store: Store, who: SessionInfo, grant_id: str, persistent: bool) -> tuple[str, bool]:
    """The store's part of ``gateway.unsubscribe``: revoke the session's grant (and, ``persistent``, end the
    persistent subscription of the caller's for good). (its topic key, whether the session still holds the
    topic another way); ApplicationError if there is no such subscription of the caller's."""
    session = who.session
    if persistent:
        sub = store.persistent(grant_id)
        if sub is None or sub.owner not in owners(who):
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION,
                                   f"no persistent subscription {grant_id!r} of this client")
        store.delete_persistent(sub.id)
        if store.revoke(f"{sub.id}@{session}", session) is None:
            return sub.key, True  # ended; this session had not subscribed to its topic
        return sub.key, store.granted(session, sub.key)
    key = store.revoke(grant_id, session)
    if key is None:
        raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, f"no subscription {grant_id!r} of this session")
    return key, store.granted(session, key)


def list_subscriptions(store: Store, who: SessionInfo, persistent: bool
                       ) -> tuple[list[dict[str, Any]], list[tuple[str, Made]]]:
    """The store's part of ``gateway.subscriptions``: (the list, the persistent topics granted to the session
    now, with how each was made)."""
    found: list[dict[str, Any]] = [
        {"id": sid, "topic": uris.query_topic(key), "query": text, "persistent": False}
        for sid, key, text in store.subscriptions_of(who.session) if "@" not in sid]
    granted: list[tuple[str, Made]] = []
    mine = owners(who) if persistent else []
    for sub in store.persistent_of(mine) if mine else []:
        if not store.granted(who.session, sub.key):
            _grant_once(store, f"{sub.id}@{who.session}", who.session, sub.key)
            granted.append((sub.key, (list(sub.parts), dict(sub.filters))))
        found.append({"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "persistent": True,
                      "last_seq": sub.last_seq})
    return found, granted


def look_up_grant(store: Store, session: int, key: str, owners_: list[str]) -> tuple[bool, Made | None]:
    """The store's part of the authorizer: was the session granted the query topic, or is it the topic
    of a persistent subscription of the session's token or user (then it is granted now, for this
    session, and how it was made is the second value, to index it)?"""
    if store.granted(session, key):
        return True, None
    for sub in store.persistent_of(owners_) if owners_ else []:
        if sub.key == key:
            _grant_once(store, f"{sub.id}@{session}", session, key)
            return True, (list(sub.parts), dict(sub.filters))
    return False, None


def end_grants(store: Store, sub: PersistentSubscription, sessions: list[int]) -> list[int]:
    """The store's part of a persistent subscription's end: the grants of its topic it gave these sessions
    go; the sessions left holding the topic no other way (to be published around)."""
    lost = []
    for session in sessions:
        store.revoke(f"{sub.id}@{session}", session)
        if not store.granted(session, sub.key):
            lost.append(session)
    return lost


def made_of(store: Store, keys: list[str]) -> dict[str, Made | None]:
    """How each of these query topics was made, as the store keeps it (None: not known)."""
    found: dict[str, Made | None] = {}
    for key in keys:
        texts = store.query_parts(key)
        found[key] = None if texts is None else (texts, store.query_filters(key))
    return found


def _grant_once(store: Store, grant_id: str, session: int, key: str) -> None:
    """Grant, unless the same grant was made meanwhile (on another store thread: the authorizer's
    look-up, gateway.subscriptions and a persistent subscribe may each grant a persistent topic)."""
    try:
        store.grant(grant_id, session, key)
    except Exception:
        if not store.granted(session, key):
            raise


def over_limit(exc: OverLimit) -> ApplicationError:
    return ApplicationError(uris.ERROR_LIMIT_EXCEEDED, str(exc), limit=exc.limit, maximum=exc.maximum)


def describe(sub: PersistentSubscription) -> dict[str, Any]:
    """A persistent subscription as the web-app interface shows it."""
    return {"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "persistent": True,
            "user": sub.user, "owner": "user" if sub.owner.startswith("user:") else "client",
            "classes": list(sub.classes), "last_seq": sub.last_seq}
