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
    (
        # The canonical text of every query a client was granted, by topic key.
        "CREATE TABLE IF NOT EXISTS queries (key TEXT PRIMARY KEY, text TEXT NOT NULL, created REAL NOT NULL)",
        # Which WAMP session was granted which query topic (live subscriptions).
        "CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, session INTEGER NOT NULL,"
        " key TEXT NOT NULL, created REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS subscriptions_session ON subscriptions (session, key)",
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
        self.remember_many([(event_id, event, seq)], at)

    def remember_many(self, accepted: list[tuple[str, str, int]], at: float | None = None) -> None:
        """Remember (id, event class, seq) of accepted events, in one transaction."""
        moment = time.time() if at is None else at
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO event_ids (id, event, seq, accepted_at) VALUES (?, ?, ?, ?)",
                [(event_id, event, seq, moment) for event_id, event, seq in accepted],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def forget_before(self, moment: float, limit: int = 10_000) -> int:
        """Forget ids accepted before ``moment``, at most ``limit`` at a time (short write locks)."""
        cur = self._db.execute(
            "DELETE FROM event_ids WHERE rowid IN (SELECT rowid FROM event_ids WHERE accepted_at < ? LIMIT ?)",
            (moment, limit),
        )
        return cur.rowcount

    # -- query subscriptions -------------------------------------------------

    def save_query(self, key: str, text: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO queries (key, text, created) VALUES (?, ?, ?)",
                         (key, text, time.time()))

    def query_text(self, key: str) -> str | None:
        row = self._db.execute("SELECT text FROM queries WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def grant(self, subscription_id: str, session: int, key: str) -> None:
        self._db.execute("INSERT INTO subscriptions (id, session, key, created) VALUES (?, ?, ?, ?)",
                         (subscription_id, session, key, time.time()))

    def granted(self, session: int, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM subscriptions WHERE session = ? AND key = ? LIMIT 1",
                               (session, key)).fetchone()
        return row is not None

    def subscriptions_of(self, session: int) -> list[tuple[str, str, str]]:
        """(subscription id, topic key, canonical query) of a session's subscriptions, oldest first."""
        rows = self._db.execute(
            "SELECT s.id, s.key, q.text FROM subscriptions s JOIN queries q ON q.key = s.key"
            " WHERE s.session = ? ORDER BY s.created, s.id", (session,)).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def revoke(self, subscription_id: str, session: int) -> str | None:
        """Remove a session's subscription; the topic key it was for, or None if there was none."""
        row = self._db.execute("DELETE FROM subscriptions WHERE id = ? AND session = ? RETURNING key",
                               (subscription_id, session)).fetchone()
        return str(row[0]) if row else None

    def revoke_session(self, session: int) -> None:
        self._db.execute("DELETE FROM subscriptions WHERE session = ?", (session,))

    def revoke_all_but(self, sessions: set[int]) -> None:
        """Forget the subscriptions of sessions that no longer exist (after a restart of everything)."""
        live = list(sessions)
        marks = ",".join("?" * len(live)) or "NULL"
        self._db.execute(f"DELETE FROM subscriptions WHERE session NOT IN ({marks})", live)

    def close(self) -> None:
        self._db.close()
