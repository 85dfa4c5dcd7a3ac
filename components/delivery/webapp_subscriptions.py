"""Persistent subscriptions as web-apps manage them (the bridge's ``/subscriptions``), and their end.

``gateway.internal.subscription.create`` / ``.list`` / ``.delete``: a subscription made for a user
who may not be connected, the subscriptions of a user or of a class, one removed by the web-app.
Whenever a persistent subscription ends (removed here, or its client token expired: see
``housekeeping``) its owner's sessions stop receiving on its topic and are told (``end``).

``WebAppSubscriptions`` holds no WAMP session: the dispatcher gives it the query subscriptions,
the book, the session table, the lock batches take turns with, and a ``Send`` function.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import DeferredLock

from components import uris
from components.delivery.persistent import PersistentBook
from components.delivery.publishing import Send
from components.delivery.sessions import Restriction, Sessions
from components.delivery.subscriptions import QuerySubscriptions, describe
from components.store.base import PersistentSubscription


class WebAppSubscriptions:
    def __init__(self, queries: QuerySubscriptions, book: PersistentBook, sessions: Sessions,
                 turn: DeferredLock, user_role: str, send: Send) -> None:
        self._queries = queries
        self._book = book
        self._sessions = sessions
        self._turn = turn
        self._user_role = user_role
        self._send = send

    async def create_for_user(self, user: str, roles: list[str], query: str) -> dict[str, Any]:
        await self._turn.acquire()  # between batches, as for gateway.subscribe(persistent=True)
        try:
            return self._queries.create_for_user(user, tuple(roles), query, self._user_role)
        finally:
            self._turn.release()

    def list(self, user: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """Persistent subscriptions of a user (theirs, and those their clients made), or of a class."""
        if event is not None:
            subs = self._book.for_class(event)
        elif user is not None:
            subs = self._book.for_user(user)
        else:
            subs = self._book.everyone()
        return [describe(sub) for sub in subs]

    def delete(self, subscription_id: str) -> dict[str, Any]:
        sub = self._book.remove(subscription_id)
        if sub is None:
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION, f"no persistent subscription {subscription_id!r}")
        self.end(sub, "removed by the web-app")
        return describe(sub)

    def end(self, sub: PersistentSubscription, reason: str) -> None:
        """A persistent subscription ended: its owner's sessions stop receiving on its topic and are
        told (nobody else receives the notice)."""
        sessions = self._sessions.of_owner(sub.owner)
        self._queries.ended(sub, sessions)
        notice = {"id": sub.id, "topic": uris.query_topic(sub.key), "query": sub.query, "reason": reason}
        self._send(uris.META_SUBSCRIPTION_REMOVED, notice, Restriction(eligible=sessions))
