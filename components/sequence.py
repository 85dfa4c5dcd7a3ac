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

import sqlite3
from collections.abc import Callable
from pathlib import Path

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


class SqliteCounter:
    """The shared counter in a small table of the SQLite store file.

    Several dispatcher processes may share the file; each ``take`` is one
    atomic statement, so two never get the same block.
    """

    def __init__(self, path: str | Path, name: str = "events") -> None:
        self._name = name
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, taken INTEGER NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO counters (name, taken) VALUES (?, 0)", (name,))

    def take(self, n: int) -> int:
        row = self._db.execute(
            "UPDATE counters SET taken = taken + ? WHERE name = ? RETURNING taken", (n, self._name)
        ).fetchone()
        return int(row[0])

    def taken(self) -> int:
        return int(self._db.execute("SELECT taken FROM counters WHERE name = ?", (self._name,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()
