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

import json
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
    (
        # Client tokens, by the SHA-256 of the token (a copy of the file gives no one a token):
        # the identity it was issued to ("user:<id>" or "anonymous") and when it expires.
        "CREATE TABLE IF NOT EXISTS client_tokens (hash TEXT PRIMARY KEY, identity TEXT NOT NULL,"
        " created REAL NOT NULL, expires REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS client_tokens_expires ON client_tokens (expires)",
        # One-time tickets from POST /tickets, by hash; a ticket is deleted when used.
        "CREATE TABLE IF NOT EXISTS tickets (hash TEXT PRIMARY KEY, user TEXT NOT NULL, roles TEXT NOT NULL,"
        " expires REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS tickets_expires ON tickets (expires)",
        # A query topic is one or more parts (a class's row filter splits a query by class): JSON list.
        "ALTER TABLE queries ADD COLUMN parts TEXT",
    ),
    (
        # The row filter of each class a query topic selects, as it was when the topic was
        # made (JSON): after a reload, a class whose row filter changed is no longer delivered on it.
        "ALTER TABLE queries ADD COLUMN filters TEXT",
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

    def save_query(self, key: str, text: str, parts: list[str] | None = None,
                   filters: dict[str, str | None] | None = None) -> None:
        """A query topic: the client's canonical query, the canonical parts events are matched with,
        and the row filter of each class it selects, as they were."""
        # A row from before parts and filters were recorded gets them now.
        self._db.execute(
            "INSERT INTO queries (key, text, parts, filters, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET parts = excluded.parts, filters = excluded.filters"
            " WHERE queries.filters IS NULL",
            (key, text, json.dumps(parts if parts is not None else [text]),
             None if filters is None else json.dumps(filters), time.time()))

    def query_filters(self, key: str) -> dict[str, str | None] | None:
        """The row filters (by class) a query topic was made under; None if not recorded."""
        row = self._db.execute("SELECT filters FROM queries WHERE key = ?", (key,)).fetchone()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    def query_text(self, key: str) -> str | None:
        row = self._db.execute("SELECT text FROM queries WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def query_parts(self, key: str) -> list[str] | None:
        row = self._db.execute("SELECT text, parts FROM queries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return [str(p) for p in json.loads(row[1])] if row[1] is not None else [str(row[0])]

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

    # -- client tokens and tickets ---------------------------------------------

    def token(self, token_hash: str) -> tuple[str, float] | None:
        """(identity, expires) of a client token, if known."""
        row = self._db.execute("SELECT identity, expires FROM client_tokens WHERE hash = ?",
                               (token_hash,)).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def save_token(self, token_hash: str, identity: str, expires: float) -> None:
        """Record a new token, or renew one (its identity never changes)."""
        self._db.execute(
            "INSERT INTO client_tokens (hash, identity, created, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires WHERE identity = excluded.identity",
            (token_hash, identity, time.time(), expires))

    def save_ticket(self, ticket_hash: str, user: str, roles: list[str], expires: float) -> None:
        self._db.execute("INSERT INTO tickets (hash, user, roles, expires) VALUES (?, ?, ?, ?)",
                         (ticket_hash, user, json.dumps(roles), expires))

    def use_ticket(self, ticket_hash: str) -> tuple[str, list[str], float] | None:
        """Take a ticket (it is gone after this, even when expired): (user, roles, expires)."""
        row = self._db.execute("DELETE FROM tickets WHERE hash = ? RETURNING user, roles, expires",
                               (ticket_hash,)).fetchone()
        return (str(row[0]), [str(r) for r in json.loads(row[1])], float(row[2])) if row else None

    def forget_expired_credentials(self, moment: float, limit: int = 10_000) -> int:
        """Drop expired tokens and tickets, at most ``limit`` of each at a time."""
        n = 0
        for table in ("client_tokens", "tickets"):
            n += self._db.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE expires < ? LIMIT ?)",
                (moment, limit)).rowcount
        return n

    def close(self) -> None:
        self._db.close()
