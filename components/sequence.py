"""Strictly increasing event sequence numbers that survive restarts.

The dispatcher numbers every accepted event. Writing the counter to disk for
each event would cost a disk sync per event, so the sequencer reserves a
block ahead instead: it records "everything up to N may be in use", then
hands out numbers below N from memory. After a crash or restart it starts
above the last reservation, so a number is never handed out twice and never
goes backwards; the price is a gap of at most one block, which is why seq
is documented as strictly increasing, not as contiguous.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

#: Numbers reserved per disk write: one write per this many events.
DEFAULT_BLOCK = 1000


class Sequencer:
    """Hands out seq numbers above ``reserved``; calls ``reserve(n)`` before using any above it."""

    def __init__(self, reserved: int, reserve: Callable[[int], None], block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self._next = reserved + 1
        self._limit = reserved
        self._reserve = reserve
        self._block = block

    def next(self) -> int:
        if self._next > self._limit:
            limit = self._next + self._block - 1
            self._reserve(limit)  # durable before any number up to it leaves this object
            self._limit = limit
        seq = self._next
        self._next += 1
        return seq

    @property
    def last(self) -> int:
        """The last number handed out (or the reservation it started above)."""
        return self._next - 1


class SqliteReservations:
    """Keeps the sequencer's reservation in a small SQLite table of the store file.

    A reservation is one tiny write per block of events, so it runs inline.
    """

    def __init__(self, path: str | Path, name: str = "events") -> None:
        self._name = name
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS sequence (name TEXT PRIMARY KEY, reserved INTEGER NOT NULL)")

    def load(self) -> int:
        row = self._db.execute("SELECT reserved FROM sequence WHERE name = ?", (self._name,)).fetchone()
        return int(row[0]) if row else 0

    def save(self, reserved: int) -> None:
        self._db.execute(
            "INSERT INTO sequence (name, reserved) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET reserved = excluded.reserved",
            (self._name, reserved),
        )

    def close(self) -> None:
        self._db.close()
