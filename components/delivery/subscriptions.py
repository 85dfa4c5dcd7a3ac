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
(from the store, less the classes whose row filter changed since).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails
from twisted.logger import Logger

from components import uris
from components.config import QueriesConfig
from components.events import EventClass, Registry
from components.events.rules import ANONYMOUS_ROLE
from components.auth.policy import Decision, authorize
from components.query import Query, QueryError, QueryNotAuthorized, canonical, check, parse, to_text
from components.query.index import QueryIndex
from components.delivery.live_queries import LiveQueries
from components.delivery.rowfilter import parts, parts_key, session_params, visible_with_row_filter
from components.delivery.sessions import SessionInfo, Sessions
from components.delivery.persistent import PERSISTENT_PREFIX, NotYours, PersistentBook, owners, token_owner
from components.store.base import PersistentSubscription, Store

log = Logger()

#: Calls into the router's meta API: (procedure, *args) -> result.
Caller = Callable[..., Any]


class QuerySubscriptions:
    """The query subscription procedures of one dispatcher, and its live index (``live``)."""

    def __init__(self, store: Store, registry: Callable[[], Registry], limits: QueriesConfig,
                 sessions: Sessions | None = None, book: PersistentBook | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._book = book
        self._sessions = sessions if sessions is not None else Sessions()
        self._registry = registry
        self._limits = limits
        self.live = LiveQueries(self._current_parts, clock, _unindexable)

    @property
    def index(self) -> QueryIndex[str]:
        """The live index's compiled queries."""
        return self.live.index

    # -- the client procedures -------------------------------------------------

    def subscribe(self, query: str, persistent: bool = False, details: CallDetails | None = None) -> dict[str, Any]:
        """``gateway.subscribe`` in one go, on this thread (the dispatcher splits it: see ``plan``)."""
        plan = self.plan(query, persistent, details)
        last_seq = self._book.high_water() if self._book is not None else 0
        result = apply_plan(self._store, plan, self._limits.max_per_session, last_seq)
        self.settle(plan)
        return result

    def plan(self, query: str, persistent: bool = False, details: CallDetails | None = None) -> Plan:
        """Check the arguments and derive the query's canonical form and parts (no store work)."""
        who = self._who(details)
        if not isinstance(persistent, bool):
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, f"persistent must be true or false, not {persistent!r}")
        if persistent and (self._book is None or who.client_token is None):
            raise ApplicationError(uris.ERROR_NOT_SUPPORTED, "this session has no client token to keep a "
                                   "persistent subscription with")
        text, texts, filters = self._derive_or_refuse(query, session_params(who.user, who.authrole, who.roles))
        return Plan(who, text, texts, parts_key(texts), filters, sorted(filters), persistent)

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
        self.live.grant(plan.key, plan.who.session, plan.texts)

    def create_for_user(self, user: str, roles: tuple[str, ...], query: str, user_role: str) -> dict[str, Any]:
        """A persistent subscription a web-app makes for a user (connected or not): any client of the
        user finds it in ``gateway.subscriptions()``; events that match are kept from now on."""
        if self._book is None:
            raise ApplicationError(uris.ERROR_NOT_SUPPORTED, "no persistent subscriptions here")
        text, texts, filters = self._derive_or_refuse(query, session_params(user, user_role, roles))
        key = parts_key(texts)
        self._store.save_query(key, text, texts, filters)
        return describe(self._book.create(f"user:{user}", user, text, key, texts, filters, list(filters)))

    def _grant(self, grant_id: str, session: int, key: str) -> None:
        """Let the session subscribe to the query topic; index the query until its subscriber comes."""
        self._store.grant(grant_id, session, key)
        self.live.grant(key, session)

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

    def _current_parts(self, key: str) -> list[str] | None:
        """The parts to match a query topic with now: as made, less the classes whose row filter changed
        since (a reload). Those are no longer delivered on it, rather than delivered under rules its
        subscribers never had: they subscribe again to get them under the new filter."""
        texts = self._store.query_parts(key)
        if texts is None:
            return None
        made_under = self._store.query_filters(key)
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

    def unsubscribe(self, subscription_id: str, details: CallDetails | None = None) -> tuple[int, str]:
        """Revoke the grant (and end a persistent subscription for good); returns (session, key)."""
        who = self._who(details)
        session = who.session
        grant_id = str(subscription_id)
        if grant_id.startswith(PERSISTENT_PREFIX) and self._book is not None:
            try:
                sub = self._book.delete(who, grant_id)
            except NotYours as exc:
                raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, str(exc)) from None
            grant_id = f"{sub.id}@{session}"
            if self._store.revoke(grant_id, session) is None:
                return session, sub.key  # ended; this session had not subscribed to its topic
            if not self._store.granted(session, sub.key):
                self.live.exclude(sub.key, session)
            return session, sub.key
        key = self._store.revoke(grant_id, session)
        if key is None:
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION,
                                   f"no subscription {subscription_id!r} of this session")
        if not self._store.granted(session, key):
            self.live.exclude(key, session)
        return session, key

    def subscriptions(self, details: CallDetails | None = None) -> list[dict[str, Any]]:
        """The session's subscriptions: its own, then the persistent ones of its token and user (their
        topics granted to this session, so that a client that comes back can subscribe to them again)."""
        who = self._who(details)
        found = [{"id": sid, "topic": uris.query_topic(key), "query": text, "persistent": False}
                 for sid, key, text in self._store.subscriptions_of(who.session) if "@" not in sid]
        for sub in self._book.of(who) if self._book is not None else []:
            if not self._store.granted(who.session, sub.key):
                self._grant(f"{sub.id}@{who.session}", who.session, sub.key)
            found.append({"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "persistent": True,
                          "last_seq": sub.last_seq})
        return found

    def authorize(self, session: dict[str, Any], uri: str, action: str, options: dict[str, Any] | None = None,
                  granted: Callable[[str], bool] | None = None) -> Decision:
        """The authorizer's answer; ``granted(key)`` when the caller looked the grant up already (the
        dispatcher does, on its store thread), else it is looked up here."""
        session_id = int(session.get("session", 0))
        # authextra is what our authenticator answered for this session: trusted.
        roles = SessionInfo.from_details({**session, "session": session_id}).roles
        return authorize(str(session.get("authrole", "")), roles, uri, action, options or {}, self._registry(),
                         granted or (lambda key: self._granted(session, session_id, key)))

    def _granted(self, session: dict[str, Any], session_id: int, key: str) -> bool:
        """Granted to this session, or the topic of a persistent subscription of its token or user."""
        if self._store.granted(session_id, key):
            return True
        if self._book is None:
            return False
        who = SessionInfo.from_details({**session, "session": session_id})
        for sub in self._book.of(who):
            if sub.key == key:
                self._grant(f"{sub.id}@{session_id}", session_id, key)
                return True
        return False

    # -- the live index: the router's meta events, grants lost, time, reloads ------

    def topics_for(self, event: str, data: dict[str, Any]) -> list[tuple[str, list[int]]]:
        """(topic, sessions to exclude) for every live query the event matches."""
        return self.live.topics_for(event, data)

    def created(self, session_id: int, subscription: dict[str, Any]) -> None:
        """``wamp.subscription.on_create``: the first subscriber of a topic arrived."""
        self.live.created(session_id, subscription)

    def unsubscribed(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_unsubscribe``: a session left a topic; nothing to exclude any more."""
        self.live.unsubscribed(session_id, subscription_id)

    def deleted(self, session_id: int, subscription_id: int) -> None:
        """``wamp.subscription.on_delete``: the last subscriber left; the query costs nothing more."""
        self.live.deleted(session_id, subscription_id)

    def ended(self, sub: PersistentSubscription, sessions: list[int]) -> None:
        """A persistent subscription ended (by the web-app, or with its token): the sessions that
        held its topic through it stop receiving on it, unless they hold it another way too."""
        for session in sessions:
            self._store.revoke(f"{sub.id}@{session}", session)
            if not self._store.granted(session, sub.key):
                self.live.exclude(sub.key, session)

    def session_left(self, session_id: int) -> None:
        """``wamp.session.on_leave``: the session's grants go, and it is excluded from nothing any more."""
        self._store.revoke_session(int(session_id))
        self.live.session_left(session_id)

    async def rebuild(self, call: Caller) -> None:
        """Index every query topic that has subscribers now; forget grants of sessions that are gone."""
        listing = await call(uris.META_SUBSCRIPTION_LIST)
        for subscription_id in listing.get("exact", []):
            try:
                info = await call(uris.META_SUBSCRIPTION_GET, subscription_id)
            except ApplicationError:
                continue  # gone meanwhile
            # One at a time, as each arrives: an on_delete that comes in meanwhile then finds it indexed.
            self.live.created(0, info)
        self._store.revoke_all_but(set(await call(uris.META_SESSION_LIST)))

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


def apply_plan(store: Store, plan: Plan, max_per_session: int, last_seq: int) -> dict[str, Any]:
    """The store's part of ``gateway.subscribe`` (it may run on the store thread): the limit, the query's
    row, the session's grant, and for a persistent one its row, starting after ``last_seq``."""
    session = plan.who.session
    held = store.subscriptions_of(session)
    if len(held) >= max_per_session:
        raise ApplicationError(uris.ERROR_INVALID_QUERY, f"a session may hold at most {max_per_session} subscriptions")
    store.save_query(plan.key, plan.text, plan.texts, plan.filters)
    topic = uris.query_topic(plan.key)
    if plan.persistent:
        assert plan.who.client_token is not None
        # The same query again, from the same token or user: the same subscription, with its cursor.
        # So a page can subscribe on every load and replay what it missed, never starting anew.
        for existing in store.persistent_of(owners(plan.who)):
            if existing.key == plan.key:
                grant = f"{existing.id}@{session}"
                if all(held_id != grant for held_id, _, _ in held):
                    store.grant(grant, session, plan.key)
                return {"id": existing.id, "topic": topic, "query": existing.query, "persistent": True,
                        "last_seq": existing.last_seq, "resumed": True}
        sub = PersistentSubscription(
            id=PERSISTENT_PREFIX + secrets.token_urlsafe(12), owner=token_owner(plan.who.client_token),
            user=plan.who.user, query=plan.text, key=plan.key, parts=list(plan.texts), filters=dict(plan.filters),
            classes=list(plan.classes), last_seq=last_seq, created=time.time())
        store.save_persistent(sub)
        store.grant(f"{sub.id}@{session}", session, plan.key)
        return {"id": sub.id, "topic": topic, "query": plan.text, "persistent": True, "last_seq": last_seq,
                "resumed": False}
    subscription_id = "s_" + secrets.token_urlsafe(12)
    store.grant(subscription_id, session, plan.key)
    return {"id": subscription_id, "topic": topic, "query": plan.text, "persistent": False}


def describe(sub: PersistentSubscription) -> dict[str, Any]:
    """A persistent subscription as the web-app interface shows it."""
    return {"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "persistent": True,
            "user": sub.user, "owner": "user" if sub.owner.startswith("user:") else "client",
            "classes": list(sub.classes), "last_seq": sub.last_seq}
