"""The embedded store (SQLite): the seq counter and the ids of accepted events.

Several dispatcher processes share one file (one active, the others standing
by), so every write is a single atomic statement. The file is in WAL mode:
readers never wait for the writer, and a commit costs no disk sync
(``synchronous=NORMAL``) except where a lost write would break a promise:
taking a block of seq numbers syncs (``FULL``), because a number must never
be handed out twice.

The schema version is kept in SQLite's ``user_version``; ``MIGRATIONS[n]``
brings a file from version n to n+1 and runs at start-up.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, taken INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS event_ids (id TEXT PRIMARY KEY, event TEXT NOT NULL, seq INTEGER NOT NULL,"
        " accepted_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS event_ids_accepted_at ON event_ids (accepted_at)",
    ),
)


class SqliteStore:
    """One connection to the store file; used from the reactor thread only."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            for n in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[n]:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- seq ---------------------------------------------------------------

    def take(self, n: int, counter: str = "events") -> int:
        """Advance the counter by n (durably) and return its new value."""
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("INSERT OR IGNORE INTO counters (name, taken) VALUES (?, 0)", (counter,))
            row = self._db.execute(
                "UPDATE counters SET taken = taken + ? WHERE name = ? RETURNING taken", (n, counter)
            ).fetchone()
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        return int(row[0])

    def taken(self, counter: str = "events") -> int:
        row = self._db.execute("SELECT taken FROM counters WHERE name = ?", (counter,)).fetchone()
        return int(row[0]) if row else 0

    # -- idempotency -------------------------------------------------------

    def accepted(self, event_id: str) -> tuple[str, int] | None:
        """(event class, seq) of an event accepted earlier with this id, if remembered."""
        row = self._db.execute("SELECT event, seq FROM event_ids WHERE id = ?", (event_id,)).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def remember(self, event_id: str, event: str, seq: int, at: float | None = None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO event_ids (id, event, seq, accepted_at) VALUES (?, ?, ?, ?)",
            (event_id, event, seq, time.time() if at is None else at),
        )

    def forget_before(self, moment: float, limit: int = 10_000) -> int:
        """Forget ids accepted before ``moment``, at most ``limit`` at a time (short write locks)."""
        cur = self._db.execute(
            "DELETE FROM event_ids WHERE rowid IN (SELECT rowid FROM event_ids WHERE accepted_at < ? LIMIT ?)",
            (moment, limit),
        )
        return cur.rowcount

    def close(self) -> None:
        self._db.close()
