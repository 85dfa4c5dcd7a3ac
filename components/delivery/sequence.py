"""Strictly increasing event sequence numbers that survive restarts and failover.

The dispatcher numbers every accepted event. Writing the counter to disk for
each event would cost a disk sync per event, so a sequencer takes a block of
numbers from a shared, durable counter ("everything up to N is taken") and
hands them out from memory. It takes its first block only when it numbers
its first event, so a standby dispatcher that takes over later starts above
every number the failed one could have used. After a crash, the unused rest
of a block is skipped: seq is strictly increasing, never repeated, never
going back, but not contiguous.
"""

from __future__ import annotations

from collections.abc import Callable

#: Numbers taken per disk write: one write per this many events.
DEFAULT_BLOCK = 1000


class Sequencer:
    """Hands out numbers from blocks; ``take(n)`` atomically advances the shared counter by n
    and returns its new value (the last number of the block)."""

    def __init__(self, take: Callable[[int], int], block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self._take = take
        self._block = block
        self._next = 1
        self._limit = 0

    def next(self) -> int:
        if self._next > self._limit:
            limit = self._take(self._block)  # durable before any number of the block leaves this object
            self._next = limit - self._block + 1
            self._limit = limit
        seq = self._next
        self._next += 1
        return seq

    def high_water(self, taken: Callable[[], int]) -> int:
        """A seq no later event can have: the last number handed out, or, before the first block,
        everything taken so far (``taken()``: the shared counter), since this sequencer's block will
        start above it."""
        return self._next - 1 if self._limit else taken()
