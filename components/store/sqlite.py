"""The embedded store (SQLite): the seq counter and the ids of accepted events.

Several dispatcher processes share one file (one active, the others standing
by), so every write is a single atomic statement. The file is in WAL mode:
readers never wait for the writer, and a commit costs no disk sync
(``synchronous=NORMAL``) except where a lost write would break a promise:
taking a block of seq numbers syncs (``FULL``), because a number must never
be handed out twice.

The schema version is kept in SQLite's ``user_version``; ``MIGRATIONS[n]``
brings a file from version n to n+1 and runs at start-up.

The interface (and the contract both stores are tested against) is ``Store``
in ``components/store/base.py``; ``components/store/postgres.py`` is the PostgreSQL one.
Writes of several statements run in one transaction, taken ``IMMEDIATE`` when
it reads before it writes (so that two processes never both read, then wait
for each other).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.store.base import TERMS, DuplicateId, LoggedEvent, PersistentSubscription, Superseded
from components.store.guard import off_the_reactor

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
    (
        # Every accepted event, once, by seq: what persistent subscriptions are served from.
        # data and audience are JSON texts, kept byte for byte (and checked to be JSON).
        "CREATE TABLE IF NOT EXISTS event_log (seq INTEGER PRIMARY KEY, event TEXT NOT NULL, id TEXT NOT NULL,"
        " time TEXT NOT NULL, data TEXT NOT NULL CHECK (json_valid(data)),"
        " audience TEXT CHECK (audience IS NULL OR json_valid(audience)), logged_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS event_log_event_seq ON event_log (event, seq)",
        "CREATE INDEX IF NOT EXISTS event_log_event_logged_at ON event_log (event, logged_at)",
        # Per class, the highest seq retention ever dropped (a subscriber behind it missed events).
        "CREATE TABLE IF NOT EXISTS dropped_events (event TEXT PRIMARY KEY, through INTEGER NOT NULL)",
        # Query subscriptions that outlive their session; parts, filters and classes are JSON.
        "CREATE TABLE IF NOT EXISTS persistent_subscriptions (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
        " user_id TEXT, query TEXT NOT NULL, key TEXT NOT NULL, parts TEXT NOT NULL, filters TEXT NOT NULL,"
        " classes TEXT NOT NULL, last_seq INTEGER NOT NULL, created REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS persistent_subscriptions_owner ON persistent_subscriptions (owner, created)",
        # Which persistent subscriptions select which class (rows go with their subscription).
        "CREATE TABLE IF NOT EXISTS persistent_classes (event TEXT NOT NULL, subscription TEXT NOT NULL,"
        " PRIMARY KEY (event, subscription)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS persistent_classes_subscription ON persistent_classes (subscription)",
    ),
    (
        # Persistent subscriptions are counted per user (and those of anonymous clients, user_id NULL)
        # against queries.max_persistent_per_user / max_anonymous_persistent.
        "CREATE INDEX IF NOT EXISTS persistent_subscriptions_user ON persistent_subscriptions (user_id)",
        # Anonymous clients' tokens are stored only while a persistent subscription holds them:
        # the others are found by identity and dropped (forget_unheld_tokens).
        "CREATE INDEX IF NOT EXISTS client_tokens_identity ON client_tokens (identity)",
    ),
    (
        # Whether the router acknowledged a logged event's publish: a dispatcher that takes over
        # publishes those that are not (in seq order), and a duplicate of one that is is not
        # published again. Rows logged before this version count as published: whether they were
        # is not known, and publishing a whole log again would be worse than the rare one missed.
        "ALTER TABLE event_log ADD COLUMN published INTEGER NOT NULL DEFAULT 1 CHECK (published IN (0, 1))",
        "CREATE INDEX IF NOT EXISTS event_log_unpublished ON event_log (seq) WHERE published = 0",
    ),
    (
        # GET /metrics: each process's cumulative counters (and the node's high water, component
        # "*node*"), so that the node's totals survive a process killed and never go back.
        "CREATE TABLE IF NOT EXISTS metric_totals (component TEXT NOT NULL, name TEXT NOT NULL,"
        " labels TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (component, name, labels))",
    ),
)

_LOG_COLUMNS = "seq, event, id, time, data, audience, logged_at, published"
_PERSISTENT_COLUMNS = "id, owner, user_id, query, key, parts, filters, classes, last_seq, created"


class SqliteStore:
    """One connection to the store file; used by one thread at a time (see ``components/store/base.py``)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    @property
    def _db(self) -> sqlite3.Connection:
        off_the_reactor()  # every statement passes here
        return self._conn

    def _wal(self) -> None:
        # Turning a new file to WAL fails at once ("database is locked", the busy timeout is not
        # applied) while another process opening it at the same moment holds a lock: try again.
        deadline = time.monotonic() + 10
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

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

    def accepted_many(self, event_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``accepted`` for many ids in one statement (the ids as one JSON array, however many)."""
        rows = self._db.execute("SELECT id, event, seq FROM event_ids WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(list(event_ids)),)).fetchall()
        return {str(i): (str(e), int(s)) for i, e, s in rows}

    def remember(self, event_id: str, event: str, seq: int, at: float | None = None) -> None:
        self.remember_many([(event_id, event, seq)], at)

    def remember_many(self, accepted: list[tuple[str, str, int]], at: float | None = None) -> None:
        """Remember (id, event class, seq) of accepted events: one statement (``_rows``), so one transaction."""
        moment = time.time() if at is None else at
        self._db.execute(f"INSERT OR IGNORE INTO event_ids (id, event, seq, accepted_at) SELECT {_columns(3)}, ?"
                         " FROM json_each(?)", (moment, _rows(accepted)))

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

    def granted_sessions(self) -> set[int]:
        return {int(r[0]) for r in self._db.execute("SELECT DISTINCT session FROM subscriptions").fetchall()}

    def revoke_sessions(self, sessions: Collection[int]) -> None:
        """Forget the subscriptions of sessions that no longer exist (one transaction)."""
        if not sessions:
            return
        with self._transaction():
            self._db.executemany("DELETE FROM subscriptions WHERE session = ?", [(s,) for s in sorted(sessions)])

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

    def forget_unheld_tokens(self, identity: str, limit: int = 10_000) -> int:
        """Drop tokens of ``identity`` that no persistent subscription is owned by, at most ``limit``."""
        return int(self._db.execute(
            "DELETE FROM client_tokens WHERE rowid IN (SELECT t.rowid FROM client_tokens t WHERE t.identity = ?"
            " AND NOT EXISTS (SELECT 1 FROM persistent_subscriptions p WHERE p.owner = 'token:' || t.hash) LIMIT ?)",
            (identity, limit)).rowcount)

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

    # -- event log -------------------------------------------------------------

    def log_events(self, rows: list[LoggedEvent]) -> None:
        """Log accepted events in one transaction; a seq already logged is ignored (idempotent)."""
        with self._transaction():
            self._log(rows)

    def log_and_remember(self, rows: list[LoggedEvent], term: int | None = None, moved: Sequence[int] = ()) -> None:
        """Log events and remember their ids (at logged_at) in one transaction: both or neither;
        with ``term``, only while it is the current one (else ``Superseded``); ``moved``: the
        unpublished rows these renumber go, with their ids' entries."""
        with self._transaction():
            # The transaction holds the file's write lock: a term cannot begin until it ends.
            if term is not None and (current := self.taken(TERMS)) != term:
                raise Superseded(f"dispatcher term {term} is over (term {current} began)")
            for seq in moved:
                for (event_id,) in self._db.execute("DELETE FROM event_log WHERE seq = ? AND published = 0"
                                                    " RETURNING id", (seq,)).fetchall():
                    self._db.execute("DELETE FROM event_ids WHERE id = ? AND seq = ?", (event_id, seq))
            # ON CONFLICT (not OR IGNORE, which would skip a row breaking any constraint, silently);
            # WHERE true: SQLite's rule for an upsert whose rows come from a SELECT.
            self._db.execute(f"INSERT INTO event_ids (id, event, seq, accepted_at) SELECT {_columns(4)}"
                             " FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING",
                             (_rows([(r.id, r.event, r.seq, r.logged_at) for r in rows]),))
            self._log(rows)

    def _log(self, rows: list[LoggedEvent]) -> None:
        self._db.execute(f"INSERT INTO event_log ({_LOG_COLUMNS}) SELECT {_columns(8)} FROM json_each(?)"
                         " WHERE true ON CONFLICT (seq) DO NOTHING",
                         (_rows([(r.seq, r.event, r.id, r.time, r.data, r.audience, r.logged_at, int(r.published))
                                 for r in rows]),))

    def mark_published(self, seqs: Sequence[int]) -> None:
        """Record that the router acknowledged these logged events' publishes (one statement)."""
        if not seqs:
            return
        self._db.execute("UPDATE event_log SET published = 1 WHERE published = 0"
                         " AND seq IN (SELECT value FROM json_each(?))", (json.dumps(list(seqs)),))

    def unpublished(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events not marked published, seq > after_seq, in seq order, at most ``limit``."""
        if limit <= 0:
            return []
        rows = self._db.execute(f"SELECT {_LOG_COLUMNS} FROM event_log WHERE published = 0 AND seq > ?"
                                " ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [_logged(row) for row in rows]

    def last_published_seq(self) -> int:
        # From the top of the seq order down: the newest rows are published, save a few in flight.
        row = self._db.execute("SELECT seq FROM event_log WHERE published = 1 ORDER BY seq DESC LIMIT 1").fetchone()
        return int(row[0]) if row else 0

    def events_after(self, classes: Sequence[str], after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events of those classes with seq > after_seq, in seq order, at most ``limit``."""
        names = sorted(set(classes))
        if not names or limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE event IN ({','.join('?' * len(names))}) AND seq > ?"
            " ORDER BY seq LIMIT ?", (*names, after_seq, limit)).fetchall()
        return [_logged(row) for row in rows]

    def last_logged_seq(self) -> int:
        """The highest seq ever logged (dropped events included), 0 if none ever was."""
        row = self._db.execute("SELECT max(coalesce((SELECT max(seq) FROM event_log), 0),"
                               " coalesce((SELECT max(through) FROM dropped_events), 0))").fetchone()
        return int(row[0])

    def drop_events(self, event: str, before: float, keep_at_most: int | None, limit: int = 10_000) -> int:
        """Delete a class's events logged before ``before`` or beyond its newest ``keep_at_most``,
        at most ``limit`` per call (a short write lock), oldest first; how many were deleted."""
        if limit <= 0:
            return 0
        with self._transaction():
            dropped: list[int] = []
            if keep_at_most is not None:
                cut = self._db.execute("SELECT seq FROM event_log WHERE event = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                       (event, max(keep_at_most, 0))).fetchone()
                if cut is not None:
                    dropped += [int(r[0]) for r in self._db.execute(
                        "DELETE FROM event_log WHERE seq IN (SELECT seq FROM event_log WHERE event = ? AND seq <= ?"
                        " ORDER BY seq LIMIT ?) RETURNING seq", (event, int(cut[0]), limit)).fetchall()]
            if len(dropped) < limit:
                dropped += [int(r[0]) for r in self._db.execute(
                    "DELETE FROM event_log WHERE seq IN (SELECT seq FROM event_log WHERE event = ? AND logged_at < ?"
                    " ORDER BY logged_at, seq LIMIT ?) RETURNING seq", (event, before, limit - len(dropped))).fetchall()]
            if dropped:
                self._db.execute(
                    "INSERT INTO dropped_events (event, through) VALUES (?, ?)"
                    " ON CONFLICT (event) DO UPDATE SET through = max(through, excluded.through)",
                    (event, max(dropped)))
        return len(dropped)

    def dropped_through(self, classes: Sequence[str]) -> int:
        """The highest seq ever dropped from any of those classes (0 if none was)."""
        names = sorted(set(classes))
        if not names:
            return 0
        row = self._db.execute(f"SELECT max(through) FROM dropped_events WHERE event IN ({','.join('?' * len(names))})",
                               names).fetchone()
        return int(row[0] or 0)

    def event_log_rows(self) -> dict[str, int]:
        """How many events the log holds now, by class."""
        return {str(event): int(n) for event, n in
                self._db.execute("SELECT event, count(*) FROM event_log GROUP BY event ORDER BY event").fetchall()}

    # -- metrics ---------------------------------------------------------------------------

    def save_metrics(self, component: str, series: Sequence[tuple[str, str, float]]) -> None:
        """Raise a component's saved totals to these (name, labels, value): a value never goes down."""
        with self._transaction():
            self._db.executemany("INSERT INTO metric_totals (component, name, labels, value) VALUES (?, ?, ?, ?)"
                                 " ON CONFLICT (component, name, labels) DO UPDATE"
                                 " SET value = max(value, excluded.value)",
                                 [(component, name, labels, float(value)) for name, labels, value in series])

    def saved_metrics(self) -> dict[str, dict[tuple[str, str], float]]:
        """Every component's saved totals: component -> (name, labels) -> value."""
        saved: dict[str, dict[tuple[str, str], float]] = {}
        for component, name, labels, value in self._db.execute(
                "SELECT component, name, labels, value FROM metric_totals").fetchall():
            saved.setdefault(str(component), {})[(str(name), str(labels))] = float(value)
        return saved

    # -- persistent subscriptions ------------------------------------------------------

    def save_persistent(self, sub: PersistentSubscription, keep_token: tuple[str, str, float] | None = None) -> None:
        """Record a new persistent subscription (and its token's row); an id already saved raises DuplicateId."""
        try:
            with self._transaction():
                if keep_token is not None:
                    self.save_token(*keep_token)
                self._db.execute(
                    f"INSERT INTO persistent_subscriptions ({_PERSISTENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (sub.id, sub.owner, sub.user, sub.query, sub.key, json.dumps(sub.parts), json.dumps(sub.filters),
                     json.dumps(sub.classes), sub.last_seq, sub.created))
                self._db.executemany("INSERT INTO persistent_classes (event, subscription) VALUES (?, ?)",
                                     [(name, sub.id) for name in sorted(set(sub.classes))])
        except sqlite3.IntegrityError as exc:
            if self.persistent(sub.id) is not None:
                raise DuplicateId(f"a persistent subscription {sub.id!r} exists already") from exc
            raise

    def count_persistent(self, user: str | None) -> int:
        """How many persistent subscriptions have this user; None: how many have none (anonymous clients')."""
        row = self._db.execute("SELECT count(*) FROM persistent_subscriptions WHERE user_id IS ?", (user,)).fetchone()
        return int(row[0])

    def persistent(self, id: str) -> PersistentSubscription | None:
        """A persistent subscription by id, None if there is none."""
        row = self._db.execute(f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE id = ?",
                               (id,)).fetchone()
        return _persistent(row) if row else None

    def persistent_of(self, owners: Sequence[str]) -> list[PersistentSubscription]:
        """The persistent subscriptions of any of those owners, oldest first."""
        names = sorted(set(owners))
        if not names:
            return []
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE owner IN ({','.join('?' * len(names))})"
            " ORDER BY created, id", names).fetchall()]

    def persistent_for_class(self, event: str) -> list[PersistentSubscription]:
        """The persistent subscriptions that select that event class, oldest first."""
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE id IN"
            " (SELECT subscription FROM persistent_classes WHERE event = ?) ORDER BY created, id", (event,)).fetchall()]

    def all_persistent(self) -> list[PersistentSubscription]:
        """Every persistent subscription, oldest first."""
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions ORDER BY created, id").fetchall()]

    def persistent_classes(self) -> set[str]:
        """The event classes selected by at least one persistent subscription."""
        return {str(r[0]) for r in self._db.execute("SELECT DISTINCT event FROM persistent_classes").fetchall()}

    def ack(self, id: str, seq: int) -> int:
        """Move a subscription's last_seq forward to seq (never back); the resulting last_seq (KeyError if unknown)."""
        row = self._db.execute("UPDATE persistent_subscriptions SET last_seq = max(last_seq, ?) WHERE id = ?"
                               " RETURNING last_seq", (seq, id)).fetchone()
        if row is None:
            raise KeyError(id)
        return int(row[0])

    def delete_persistent(self, id: str) -> PersistentSubscription | None:
        """Delete a persistent subscription; what was deleted, None if there was none."""
        with self._transaction():
            row = self._db.execute(f"DELETE FROM persistent_subscriptions WHERE id = ? RETURNING {_PERSISTENT_COLUMNS}",
                                   (id,)).fetchone()
            self._db.execute("DELETE FROM persistent_classes WHERE subscription = ?", (id,))
        return _persistent(row) if row else None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


def _logged(row: Any) -> LoggedEvent:
    seq, event, event_id, moment, data, audience, logged_at, published = row
    return LoggedEvent(seq=int(seq), event=str(event), id=str(event_id), time=str(moment), data=str(data),
                       audience=None if audience is None else str(audience), logged_at=float(logged_at),
                       published=bool(published))


def _persistent(row: Any) -> PersistentSubscription:
    sid, owner, user, query, key, parts, filters, classes, last_seq, created = row
    return PersistentSubscription(
        id=str(sid), owner=str(owner), user=None if user is None else str(user), query=str(query), key=str(key),
        parts=[str(p) for p in json.loads(parts)], filters=dict(json.loads(filters)),
        classes=[str(c) for c in json.loads(classes)], last_seq=int(last_seq), created=float(created))


# Rows written on the per-event path go in as one JSON array bound to one statement (``json_each``), not
# one execution per row (``executemany``): Python's sqlite3 releases the GIL around every step of a
# statement and takes it back after, and while the reactor thread is busy each take-back waits for its
# switch interval (5 ms). 600 ids written with executemany took 26-170 ms on the store thread under load
# (3.4 s with the reactor thread always busy), and every look-up queued behind them; as one statement, one
# wait. bench/README.md (Stop 22, the store thread's GIL waits) has the measurements.


def _rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays, for ``json_each``."""
    return json.dumps(rows, separators=(",", ":"))


def _columns(n: int) -> str:
    """The first ``n`` values of each ``json_each`` row (an array), as columns."""
    return ", ".join(f"json_extract(value, '$[{i}]')" for i in range(n))
