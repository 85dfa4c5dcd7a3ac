"""``gateway.replay`` and ``gateway.ack``: a client's persistent subscription read back and acknowledged.

The rules (which events a page holds, what an ack may move) are ``persistent``'s; this module
finds the caller's subscription and runs the store's part on the store thread. The arguments
were checked before (the dispatcher registers these behind their signatures: ``REPLAY``, ``ACK``). ``ReplayAndAck`` holds no WAMP session: the dispatcher gives it the store thread, the
query subscriptions (who the caller is) and a way to make sure the session table knows the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails

from components import uris
from components.metrics.families import REPLAY_TRUNCATIONS, REPLAYED_EVENTS
from components.metrics.process_meter import METER
from components.arguments import SEQ_MAX, Param, Signature, Text, WholeNumber
from components.delivery.persistent import MAX_PAGE, PAGE, check_ack, compile_parts, owners, read_replay
from components.delivery.sessions import SessionInfo
from components.delivery.subscriptions import QuerySubscriptions
from components.events import Registry
from components.store.base import PersistentSubscription
from components.store.thread import StoreThread

#: Makes sure the session table knows the caller (the dispatcher's ``_know_caller``).
KnowCaller = Callable[[CallDetails | None], Awaitable[None]]

#: A subscription id as clients pass it back (ours are 18 characters).
SUBSCRIPTION_ID = Text(max_length=128, min_length=1)
SEQ = WholeNumber(0, SEQ_MAX)
#: ``gateway.replay(id, after_seq, limit=500)``: a limit past MAX_PAGE is taken as MAX_PAGE, 0 as 1.
REPLAY = Signature(uris.REPLAY, Param("id", SUBSCRIPTION_ID), Param("after_seq", SEQ), Param("limit", SEQ, PAGE))
#: ``gateway.ack(id, seq)``.
ACK = Signature(uris.ACK, Param("id", SUBSCRIPTION_ID), Param("seq", SEQ))


class ReplayAndAck:
    def __init__(self, thread: StoreThread, queries: QuerySubscriptions, registry: Callable[[], Registry],
                 know_caller: KnowCaller) -> None:
        self._thread = thread
        self._queries = queries
        self._registry = registry
        self._know_caller = know_caller

    async def replay(self, subscription_id: str, after_seq: int, limit: int = PAGE,
                     details: CallDetails | None = None) -> dict[str, Any]:
        who, sub = await self._mine(subscription_id, details)
        registry = self._registry()
        compiled = compile_parts(sub, registry)  # parsing stays on the reactor thread
        page: dict[str, Any] = await self._thread.run(read_replay, who, sub, compiled, registry, after_seq,
                                                      max(1, min(limit, MAX_PAGE)))
        METER.count(REPLAYED_EVENTS, (), len(page.get("events", ())))
        if page.get("truncated"):
            METER.count(REPLAY_TRUNCATIONS)
        return page

    async def ack(self, subscription_id: str, seq: int, details: CallDetails | None = None) -> dict[str, Any]:
        try:
            check_ack(seq)
        except ValueError as exc:
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, str(exc)) from None
        _, sub = await self._mine(subscription_id, details)
        try:
            last: int = await self._thread.run(lambda store: store.ack(sub.id, seq))
        except KeyError:  # ended meanwhile (another session of its owner, the web-app)
            raise ApplicationError(uris.ERROR_NO_SUCH_SUBSCRIPTION,
                                   f"no persistent subscription {subscription_id!r} of this client") from None
        return {"id": sub.id, "last_seq": last}

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
