"""Batches that arrive while one is being worked on go together as the next one (group commit).

The dispatcher's per-batch store work (looking ids up, taking its turn, writing the event log)
costs a few store round trips whatever the batch's size. Done batch by batch, fifty concurrent
single-event requests would wait for fifty times those round trips; gathered, they wait for two
rounds: the one under way when they came, and their own.

``Coalescer(work)`` is called with a list of items; ``work(items)`` runs for one group at a time.
Items that arrive while a group is being worked on join the next group (at most ``most`` items a
group, unless one call alone brings more), in the order they came; each caller gets the results
of its own items, in order, or the failure of its group. When nothing is being worked on, a call
starts its group at once: a lone batch waits for nothing. With ``concurrent`` above one, that many
groups may be worked on at once (started in the order they were formed): a slow group then holds
up only the callers in it, and the next group starts while the one before waits for its end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

T = TypeVar("T")
R = TypeVar("R")


class _Group(Generic[T, R]):
    def __init__(self) -> None:
        self.items: list[T] = []
        #: What its calls weigh together (``Coalescer.__call__``'s ``weight``).
        self.weight = 0
        #: (its first item's index, how many, the caller's Deferred) of each call in the group
        self.calls: list[tuple[int, int, Deferred[list[R]]]] = []


class Coalescer(Generic[T, R]):
    """``work(items)`` for one group of items at a time; calls that come meanwhile go together next."""

    def __init__(self, work: Callable[[list[T]], Awaitable[list[R]]], most: int, budget: int | None = None,
                 concurrent: int = 1) -> None:
        """``most``: items a group holds at most; ``budget``: what its calls may weigh together at
        most (their ``weight``, e.g. bytes), unbounded when None. A call alone may exceed either.
        ``concurrent``: groups worked on at once at most."""
        if most < 1 or (budget is not None and budget < 1) or concurrent < 1:
            raise ValueError("most, budget and concurrent must be at least 1")
        self._work = work
        self._most = most
        self._budget = budget
        self._concurrent = concurrent
        self._waiting: deque[_Group[T, R]] = deque()
        self._running = 0

    def __call__(self, items: list[T], weight: int = 0) -> Deferred[list[R]]:
        """The results of ``items`` (one each, in order), once their group was worked on."""
        group = self._waiting[-1] if self._waiting else None
        if group is None or len(group.items) + len(items) > self._most or (
                self._budget is not None and group.calls and group.weight + weight > self._budget):
            group = _Group()
            self._waiting.append(group)
        mine: Deferred[list[R]] = Deferred()
        group.calls.append((len(group.items), len(items), mine))
        group.items.extend(items)
        group.weight += weight
        self._next()
        return mine

    def _next(self) -> None:
        if not self._waiting or self._running >= self._concurrent:
            return
        group = self._waiting.popleft()
        self._running += 1

        def answer(outcome: list[R] | Failure) -> None:
            for start, count, caller in group.calls:
                if caller.called:  # the caller gave up (cancelled) meanwhile
                    continue
                if isinstance(outcome, Failure):
                    caller.errback(outcome)
                else:
                    caller.callback(outcome[start:start + count])
            self._running -= 1
            self._next()

        ensureDeferred(_awaited(self._work(group.items))).addBoth(answer)


async def _awaited(work: Awaitable[list[R]]) -> list[R]:
    return await work
