"""The dispatcher's store work run inline (``components.store.thread.Inline``), for tests without a reactor.

With an inline store, a Deferred or coroutine of the query subscriptions has its result when the call
returns: ``now`` takes it (or raises its failure), and ``Now`` does so for every method of an object.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

from components.config import QueriesConfig
from components.delivery.publishing import Publisher, Turn
from components.delivery.sequence import Sequencer
from components.delivery.sessions import Sessions
from components.delivery.subscriptions import QuerySubscriptions
from components.events import Registry
from components.store.thread import Inline

T = TypeVar("T")


def now(outcome: Deferred[T] | Awaitable[T]) -> T:
    """The result of a Deferred or coroutine that does not wait for anything but inline store work."""
    d = outcome if isinstance(outcome, Deferred) else ensureDeferred(cast(Awaitable[T], outcome))
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "still waiting: for something other than inline store work"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return cast(T, results[0])


class Now:
    """``target``'s methods, their Deferreds and coroutines resolved at once (``now``)."""

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._target, name)
        if not callable(found):
            return found
        method = cast(Callable[..., Any], found)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return now(result) if isinstance(result, Deferred) or inspect.isawaitable(result) else result

        return call


def publisher_on(thread: Inline, registry: Registry, send: Any,
                 sessions: Sessions | None = None, sent: Callable[[], None] = lambda: None,
                 ) -> tuple[Publisher, QuerySubscriptions]:
    """A dispatcher's publisher (and its query subscriptions) on ``thread``, publishing through ``send``;
    ``sent()`` as the dispatcher's, once a turn's publishes are queued."""
    sessions = sessions if sessions is not None else Sessions()
    queries = QuerySubscriptions(thread, lambda: registry, QueriesConfig(), sessions)
    sequencer = Sequencer(lambda n: thread.run(lambda s, k: s.take(k), n))
    return Publisher(thread, Turn(), sequencer, lambda: registry, sessions, queries, send, sent), queries
