"""Strictly increasing event sequence numbers that survive restarts and failover.

The dispatcher numbers every accepted event. Writing the counter to disk for
each event would cost a disk sync per event, so a sequencer takes a block of
numbers from a shared, durable counter ("everything up to N is taken") and
hands them out from memory. It takes its first block only when it numbers
its first event, so a standby dispatcher that takes over later starts above
every number the failed one could have used. After a crash, the unused rest
of a block (and of the block taken ahead, below) is skipped: seq is strictly
increasing, never repeated, never going back, but not contiguous.

Taking a block is a store round trip on a store thread, so it is kept off an
event's way: once half a block is left in hand, the next block is taken in
the background, and a batch waits for numbers (``reserve``) only when those in
hand would not last it: at the first event, or after a burst of more than
half a block. One block is being taken at a time, so blocks arrive in the
counter's order and numbers are handed out in increasing order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: Numbers taken per disk write: one write per this many events. Ten times a turn's most (MOST_TOGETHER): a
#: block of 1,000 ran out in the middle of RabbitMQ's batches of several hundred, and the turn waited for the
#: write (27-160 ms, a disk sync) instead of finding the next block taken ahead.
DEFAULT_BLOCK = 10_000

#: ``take(n)``: atomically advance the shared counter by n, durably; its new value (the last number of
#: the block), in a Deferred (the store thread's answer).
Take = Callable[[int], Deferred[int]]


class NoNumbers(RuntimeError):
    """No seq number is in hand: ``reserve`` did not succeed (the store could not give a block)."""


class Sequencer:
    """Hands out numbers from blocks of the shared counter, taking the next block ahead of need."""

    def __init__(self, take: Take, block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self._take = take
        self._block = block
        #: [next, last] of each block in hand, lowest first.
        self._blocks: deque[list[int]] = deque()
        self._in_hand = 0
        #: The last number handed out (0: none yet).
        self._last = 0
        self._taken_once = False
        #: Who waits for the block being taken; None while none is.
        self._waiting: list[Deferred[None]] | None = None
        #: The last block taken ahead failed: the next is taken when a batch needs it, not ahead.
        self._ahead_failed = False

    @property
    def in_hand(self) -> int:
        """How many numbers can be handed out without waiting."""
        return self._in_hand

    def reserve(self, n: int) -> Deferred[None]:
        """Fires once at least ``n`` numbers are in hand: at once if they are, else once the block being
        taken (and, for a large ``n``, one of the numbers still missing) arrived. Fails if the store
        could not give a block; nothing is handed out then."""
        return ensureDeferred(self._reserve(n))

    async def _reserve(self, n: int) -> None:
        while self._in_hand < n:
            await self._take_block(max(self._block, n - self._in_hand))

    def next(self) -> int:
        """The next number (from those in hand: ``reserve`` first); NoNumbers if none is."""
        if not self._blocks:
            raise NoNumbers("no seq number in hand: the store could not give a block of them")
        current = self._blocks[0]
        seq = current[0]
        current[0] += 1
        if current[0] > current[1]:
            self._blocks.popleft()
        self._in_hand -= 1
        self._last = seq
        if self._in_hand <= self._block // 2 and self._waiting is None and not self._ahead_failed:
            self._take_block(self._block).addErrback(self._ahead_lost)
        return seq

    def high_water(self) -> int | None:
        """A seq no later event can have, and no earlier one exceeds: one below the next number in hand,
        or the last handed out. None before this sequencer's first block: the shared counter's value
        (``store.taken()``) is then the high water, read where no block can be taken meanwhile (the
        dispatcher reads it between batches: the first block is taken within a batch)."""
        if self._blocks:
            return self._blocks[0][0] - 1
        return self._last if self._taken_once else None

    def _take_block(self, count: int) -> Deferred[None]:
        """Fires when the block being taken arrived (or one of ``count`` numbers, if none was being taken)."""
        waiter: Deferred[None] = Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
            return waiter
        self._waiting = [waiter]

        def got(last: int) -> None:
            # Durable before any number of the block leaves this object.
            self._blocks.append([last - count + 1, last])
            self._in_hand += count
            self._taken_once = True
            self._ahead_failed = False

        def settle(outcome: Failure | None) -> None:
            waiting, self._waiting = self._waiting or [], None
            for d in waiting:
                if isinstance(outcome, Failure):
                    d.errback(outcome)
                else:
                    d.callback(None)

        maybeDeferred(self._take, count).addCallback(got).addBoth(settle)
        return waiter

    def _ahead_lost(self, failure: Failure) -> None:
        self._ahead_failed = True
        log.warn("could not take the next block of seq numbers ahead of need: {err}; a batch takes it when it "
                 "needs it", err=failure.getErrorMessage())
