"""Persistent subscriptions as web-apps manage them (the bridge's ``/subscriptions``), and their end.

``gateway.internal.subscription.create`` / ``.list`` / ``.delete``: a subscription made for a user
who may not be connected, the subscriptions of a user or of a class, one removed by the web-app.
Whenever a persistent subscription ends (removed here, or its client token expired: see
``housekeeping``) its owner's sessions stop receiving on its topic and are told (``end``).

The store's part of each runs on a store thread. A subscription is made between batches of
events (the lock they take turns with), on the store thread those batches use (``in_turn``),
so that it waits for no other store work while batches wait for it; listing and removing need
no turn and run on the bookkeeping store thread (``store``).

``WebAppSubscriptions`` holds no WAMP session: the dispatcher gives it the query subscriptions,
the store threads, the session table, the lock batches take turns with, where a new subscription
starts (``high_water``), and a ``Send`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from components import uris
from components.config import QueriesConfig
from components.delivery.publishing import Send
from components.delivery.sessions import Restriction, Sessions
from components.delivery.subscriptions import QuerySubscriptions, apply_user_plan, describe
from components.store.base import PersistentSubscription, Store
from components.store.thread import StoreRunner

log = Logger()


class WebAppSubscriptions:
    def __init__(self, queries: QuerySubscriptions, store: StoreRunner, in_turn: StoreRunner, sessions: Sessions,
                 turn: DeferredLock, high_water: Callable[[], int | None], limits: QueriesConfig, user_role: str,
                 send: Send) -> None:
        self._queries = queries
        self._store = store
        self._in_turn = in_turn
        self._sessions = sessions
        self._turn = turn
        self._high_water = high_water
        self._limits = limits
        self._user_role = user_role
        self._send = send

    async def create_for_user(self, user: str, roles: list[str], query: str) -> dict[str, Any]:
        plan = self._queries.plan_for_user(user, tuple(roles), query, self._user_role)
        await self._turn.acquire()  # between batches, as for gateway.subscribe(persistent=True)
        try:
            made: dict[str, Any] = await self._in_turn.run(apply_user_plan, plan, self._limits, self._high_water())
        finally:
            self._turn.release()
        return made

    async def list(self, user: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Persistent subscriptions of a user (theirs, and those their clients made), or of a class."""
        listed: list[dict[str, Any]] = await self._store.run(_listed, user, event)
        return listed

    async def delete(self, subscription_id: str) -> dict[str, Any]:
        sub = await self._store.run(lambda store: store.delete_persistent(subscription_id))
        if sub is None:
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, f"no persistent subscription {subscription_id!r}")
        await self.end(sub, "removed by the web-app")
        return describe(sub)

    #: A cluster node's: tells the other nodes that a subscription ended (``cluster``), so that their
    #: sessions of its owner stop receiving on it and are told too (``end_here`` there).
    announce: Callable[[PersistentSubscription, str], object] | None = None

    def end(self, sub: PersistentSubscription, reason: str) -> Deferred[None]:
        """A persistent subscription ended: its owner's sessions stop receiving on its topic and are
        told (nobody else receives the notice); in a cluster, on every node. A failure is logged here
        (housekeeping does not wait)."""
        if self.announce is not None:
            self.announce(sub, reason)
        return self.end_here(sub, reason)

    def end_here(self, sub: PersistentSubscription, reason: str) -> Deferred[None]:
        """``end`` for this node's sessions only (another node of the cluster ended it)."""
        sessions = self._sessions.of_owner(sub.owner)
        notice = {"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "reason": reason}

        def lost(failure: Failure) -> None:
            log.error("persistent subscription {id} ended, but its sessions' grants could not be revoked: {err}",
                      id=sub.id, err=failure.getErrorMessage())

        def tell(_: object) -> None:
            self._send(uris.META_SUBSCRIPTION_REMOVED, notice, Restriction(eligible=sessions))

        return ensureDeferred(self._queries.ended(sub, sessions)).addErrback(lost).addCallback(tell)


def _listed(store: Store, user: str | None, event: str | None) -> list[dict[str, Any]]:
    """On a store thread: the persistent subscriptions of a class, or of a user, or all of them, described."""
    if event is not None:
        subs = store.persistent_for_class(event)
    elif user is not None:
        subs = [s for s in store.all_persistent() if s.user == user]
    else:
        subs = store.all_persistent()
    return [describe(sub) for sub in subs]
