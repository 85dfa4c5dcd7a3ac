"""The PostgreSQL store (``store.url``): the same ``Store`` as the SQLite file, in a database.

One psycopg 3 connection per store object, in autocommit: a single statement is its own
transaction, and the writes of several statements run in an explicit one, as in SqliteStore.
The connection's ``search_path`` is the store's schema (created if missing), so several
gateways (or test runs) can share a database, each in its own schema. A lost connection
(a server restart) fails the call in flight; the next call connects again.

``MIGRATIONS[n]`` brings a schema from version n to n+1; each version applied is a row of
``schema_version``. They run at start-up in one transaction holding a transaction-level
advisory lock (per schema), so that processes starting together migrate once: the others
wait, then find the work done.

Commits are durable (the server's ``synchronous_commit``, on by default); taking seq
numbers forces it on whatever the server's setting, because a number must never be
handed out twice. Values come back as SqliteStore gives them: JSON columns that are
handed back as texts (an event's data and audience) are TEXT checked to be JSON, kept
byte for byte; the others are JSONB.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from components.config import StoreConfig
from components.store.base import TERMS, DuplicateId, LoggedEvent, NewEvent, PersistentSubscription, Superseded
from components.store.guard import off_the_reactor

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The seq counter(s), and the ids of events accepted within the idempotency window.
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, taken BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS event_ids (id TEXT PRIMARY KEY, event TEXT NOT NULL, seq BIGINT NOT NULL,"
        " accepted_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS event_ids_accepted_at ON event_ids (accepted_at)",
        # Query topics by key: the canonical text, its parts, the row filter of each class it selects.
        "CREATE TABLE IF NOT EXISTS queries (key TEXT PRIMARY KEY, text TEXT NOT NULL, parts JSONB, filters JSONB,"
        " created DOUBLE PRECISION NOT NULL)",
        # Which WAMP session (ids up to 2^53) was granted which query topic.
        "CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, session BIGINT NOT NULL, key TEXT NOT NULL,"
        " created DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS subscriptions_session ON subscriptions (session, key)",
        # Client tokens and one-time tickets, by the SHA-256 of the credential.
        "CREATE TABLE IF NOT EXISTS client_tokens (hash TEXT PRIMARY KEY, identity TEXT NOT NULL,"
        " created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS client_tokens_expires ON client_tokens (expires)",
        "CREATE TABLE IF NOT EXISTS tickets (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, roles JSONB NOT NULL,"
        " expires DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS tickets_expires ON tickets (expires)",
        # Every accepted event, once, by seq; data and audience as the JSON texts that went out.
        "CREATE TABLE IF NOT EXISTS event_log (seq BIGINT PRIMARY KEY, event TEXT NOT NULL, id TEXT NOT NULL,"
        " time TEXT NOT NULL, data TEXT NOT NULL CHECK (data::json IS NOT NULL),"
        " audience TEXT CHECK (audience IS NULL OR audience::json IS NOT NULL),"
        " logged_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS event_log_event_seq ON event_log (event, seq)",
        "CREATE INDEX IF NOT EXISTS event_log_event_logged_at ON event_log (event, logged_at)",
        # Per class, the highest seq retention ever dropped.
        "CREATE TABLE IF NOT EXISTS dropped_events (event TEXT PRIMARY KEY, through BIGINT NOT NULL)",
        # Query subscriptions that outlive their session, and the classes each selects.
        "CREATE TABLE IF NOT EXISTS persistent_subscriptions (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
        " user_id TEXT, query TEXT NOT NULL, key TEXT NOT NULL, parts JSONB NOT NULL, filters JSONB NOT NULL,"
        " classes JSONB NOT NULL, last_seq BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS persistent_subscriptions_owner ON persistent_subscriptions (owner, created)",
        "CREATE TABLE IF NOT EXISTS persistent_classes (event TEXT NOT NULL, subscription TEXT NOT NULL"
        " REFERENCES persistent_subscriptions (id) ON DELETE CASCADE, PRIMARY KEY (event, subscription))",
        "CREATE INDEX IF NOT EXISTS persistent_classes_subscription ON persistent_classes (subscription)",
    ),
    (
        # Persistent subscriptions are counted per user (and those of anonymous clients, user_id NULL);
        # anonymous clients' tokens are stored only while a persistent subscription holds them.
        "CREATE INDEX IF NOT EXISTS persistent_subscriptions_user ON persistent_subscriptions (user_id)",
        "CREATE INDEX IF NOT EXISTS client_tokens_identity ON client_tokens (identity)",
    ),
    (
        # Whether the router acknowledged a logged event's publish (see SqliteStore's migration):
        # rows logged before this version count as published, new rows are written with false.
        "ALTER TABLE event_log ADD COLUMN IF NOT EXISTS published BOOLEAN NOT NULL DEFAULT true",
        "ALTER TABLE event_log ALTER COLUMN published SET DEFAULT false",
        "CREATE INDEX IF NOT EXISTS event_log_unpublished ON event_log (seq) WHERE NOT published",
    ),
    (
        # GET /metrics: each process's cumulative counters (and the node's high water, component
        # "*node*"), so that the node's totals survive a process killed and never go back.
        "CREATE TABLE IF NOT EXISTS metric_totals (component TEXT NOT NULL, name TEXT NOT NULL,"
        " labels TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, PRIMARY KEY (component, name, labels))",
    ),
    (
        # Which gateways may run on a schema (``RUNS_WITH_FROM``): written with each version from this one on.
        "ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS runs_with_from INTEGER",
        # A cluster (docs/cluster.md). Session ids are each router's own: a grant is its node's.
        "ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS node TEXT NOT NULL DEFAULT ''",
        # Each node's place in the shared log (what its router was given), for the node run that
        # wrote it (a node started again begins at the head: its router has no client of before).
        "CREATE TABLE IF NOT EXISTS node_cursors (node TEXT PRIMARY KEY, run TEXT NOT NULL, cursor BIGINT NOT NULL,"
        " updated DOUBLE PRECISION NOT NULL)",
        # A turn of events, appended in one round trip: the row lock on the counter is held to the commit,
        # so commits come in seq order and numbers are contiguous (a rolled-back turn takes none); ids
        # are looked up after the lock, so an id committed by another node's turn is a duplicate here.
        # Each item: (its position, its seq, the class it was first accepted as when it is a duplicate).
        """CREATE OR REPLACE FUNCTION gateway_append(p_ids TEXT[], p_events TEXT[], p_times TEXT[], p_data TEXT[],
            p_audiences TEXT[], p_at DOUBLE PRECISION, p_channel TEXT)
        RETURNS TABLE (n INTEGER, seq BIGINT, earlier TEXT) LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
        DECLARE
            base BIGINT;
            top BIGINT;
        BEGIN
            PERFORM set_config('synchronous_commit', 'on', true);
            INSERT INTO counters (name, taken) VALUES ('events', 0) ON CONFLICT (name) DO NOTHING;
            SELECT c.taken INTO base FROM counters c WHERE c.name = 'events' FOR UPDATE;
            RETURN QUERY
            WITH r AS (
                SELECT u.id, u.event, u.time, u.data, u.audience, u.k::INTEGER AS k
                FROM unnest(p_ids, p_events, p_times, p_data, p_audiences)
                     WITH ORDINALITY AS u (id, event, time, data, audience, k)),
            fresh AS (
                SELECT r.*, base + row_number() OVER (ORDER BY r.k) AS s FROM r
                WHERE NOT EXISTS (SELECT 1 FROM r r2 WHERE r2.id = r.id AND r2.k < r.k)
                  AND NOT EXISTS (SELECT 1 FROM event_ids e WHERE e.id = r.id)),
            logged AS (
                INSERT INTO event_log (seq, event, id, time, data, audience, logged_at, published)
                SELECT f.s, f.event, f.id, f.time, f.data, f.audience, p_at, true FROM fresh f),
            remembered AS (
                INSERT INTO event_ids (id, event, seq, accepted_at) SELECT f.id, f.event, f.s, p_at FROM fresh f),
            bumped AS (
                UPDATE counters SET taken = base + (SELECT count(*) FROM fresh) WHERE name = 'events')
            SELECT r.k, COALESCE(f.s, e.seq, first.s), CASE WHEN f.s IS NULL THEN COALESCE(e.event, first.event) END
            FROM r LEFT JOIN fresh f ON f.k = r.k
                   LEFT JOIN event_ids e ON e.id = r.id
                   LEFT JOIN fresh first ON first.id = r.id AND f.s IS NULL
            ORDER BY r.k;
            SELECT c.taken INTO top FROM counters c WHERE c.name = 'events';
            IF top > base THEN
                PERFORM pg_notify(p_channel, top::TEXT);
            END IF;
        END
        $f$""",
    ),
)

#: For each schema version (1-based, as ``MIGRATIONS``), the oldest schema version whose gateway may run
#: on it, side by side with newer ones (a rolling upgrade of a cluster): a migration that only adds
#: (columns with defaults, tables, functions older gateways do not call) keeps the version before it;
#: one that changes what older gateways read or write raises it to itself. A gateway that finds the
#: schema newer than it knows refuses to start if it is older than that (``SchemaTooNew``).
RUNS_WITH_FROM: tuple[int, ...] = (1, 2, 3, 4, 4)
assert len(RUNS_WITH_FROM) == len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The store's schema was migrated by a newer gateway that this one may not run beside."""


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LOG_COLUMNS = "seq, event, id, time, data, audience, logged_at, published"
_PERSISTENT_COLUMNS = "id, owner, user_id, query, key, parts, filters, classes, last_seq, created"
#: Ties in time are broken by id in byte order, as SQLite does (not by the database's collation).
_OLDEST_FIRST = 'ORDER BY created, id COLLATE "C"'


class PostgresStore:
    """One connection to a PostgreSQL database, tables in ``schema``; used by one thread at a time."""

    def __init__(self, url: str, schema: str = "public", statement_timeout: float = 5.0,
                 connect_timeout: int = 5, node: str = "", migrate: bool = True) -> None:
        """``statement_timeout``: seconds a statement may run before the server cancels it (it then fails
        with QueryCanceled); ``connect_timeout``: whole seconds connecting may take (libpq's, at least 2;
        a ``connect_timeout`` in the URL's query wins). ``store.statement_timeout`` and
        ``store.connect_timeout`` in gateway.yaml."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"not a usable PostgreSQL schema name: {schema!r} (letters, digits and _)")
        self._url = url
        self._schema = schema
        self._statement_timeout_ms = max(1, round(statement_timeout * 1000))
        self._connect_timeout = connect_timeout
        #: The cluster node this store object works for ('' alone): its grants are its router's sessions'.
        self._node = node
        self._conn = self._connect()
        if not migrate:  # a connection for what needs no tables (a cluster's listener): no migration lock
            return
        try:
            self._migrate()
        except BaseException:
            self._conn.close()  # a store that cannot start leaves no connection behind
            raise

    def _connect(self) -> psycopg.Connection[TupleRow]:
        off_the_reactor()
        try:
            given = conninfo_to_dict(self._url)
            extra: dict[str, Any] = {
                "connect_timeout": self._connect_timeout, "application_name": "events-gateway",
                # A server that vanished without closing the connection (a host gone, a partition) is
                # noticed after about 25 s of silence instead of the system's two hours: the statement
                # waiting for its answer fails rather than holding its store thread for good.
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
            conn = psycopg.connect(self._url, autocommit=True,
                                   **{k: v for k, v in extra.items() if k not in given})
        except psycopg.Error as exc:
            raise psycopg.OperationalError(
                f"cannot connect to the PostgreSQL store at {StoreConfig.redact(self._url)}: "
                f"{_scrub(str(exc).strip(), self._url)}") from None
        # The server cancels a statement that runs longer than statement_timeout (a lock held elsewhere,
        # a server that is overloaded): the operation fails instead of holding its thread. One round trip.
        conn.execute(sql.SQL("SET search_path TO {}; SET statement_timeout TO {}").format(
            sql.Identifier(self._schema), sql.Literal(self._statement_timeout_ms)))
        return conn

    @property
    def _db(self) -> psycopg.Connection[TupleRow]:
        off_the_reactor()  # every statement passes here
        if self._conn.broken:  # lost (a server restart, the network): connect again
            self._conn = self._connect()
        return self._conn

    def _migrate(self) -> None:
        lock = int.from_bytes(hashlib.sha256(f"events-gateway store {self._schema}".encode()).digest()[:8],
                              "big", signed=True)
        with self._db.transaction():
            # Waiting for another process's migration, or building an index on a large table, may
            # well take longer than statement_timeout: not limited here.
            self._db.execute("SET LOCAL statement_timeout TO 0")
            # Held until this transaction ends: a process starting at the same time waits here.
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            if self._db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,)).fetchone() is None:
                self._db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self._schema)))
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                             " applied_at DOUBLE PRECISION NOT NULL)")
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > len(MIGRATIONS):
                self._check_runs_with(version)
            for n in range(version, len(MIGRATIONS)):
                self._db.execute(";\n".join(MIGRATIONS[n]))  # one round trip (no parameters: allowed)
                if n + 1 >= 5:  # the column came with version 5
                    self._db.execute("INSERT INTO schema_version (version, applied_at, runs_with_from)"
                                     " VALUES (%s, %s, %s)", (n + 1, time.time(), RUNS_WITH_FROM[n]))
                else:
                    self._db.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                                     (n + 1, time.time()))

    def _check_runs_with(self, version: int) -> None:
        """A schema newer than this gateway knows: run on it only if its newest version says gateways of
        this one's version may (``RUNS_WITH_FROM``), else refuse to start, saying what to do."""
        row = self._db.execute("SELECT runs_with_from FROM schema_version WHERE version = %s", (version,)).fetchone()
        oldest = int(row[0]) if row and row[0] is not None else version
        if len(MIGRATIONS) < oldest:
            raise SchemaTooNew(
                f"the store's schema {self._schema!r} is at version {version}, migrated by a newer gateway; this "
                f"gateway knows versions up to {len(MIGRATIONS)} and version {version} runs only with gateways of "
                f"schema version {oldest} or newer: upgrade this node (docs/cluster.md#upgrading)")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[TupleRow]]:
        db = self._db
        with db.transaction():
            yield db

    # -- seq ---------------------------------------------------------------

    def take(self, n: int, counter: str = "events") -> int:
        """Advance the counter by n (durably) and return its new value."""
        with self._transaction() as db:
            db.execute("SET LOCAL synchronous_commit TO on")
            row = db.execute(
                "INSERT INTO counters (name, taken) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET taken = counters.taken + excluded.taken RETURNING taken",
                (counter, n)).fetchone()
        assert row is not None
        return int(row[0])

    def taken(self, counter: str = "events") -> int:
        row = self._db.execute("SELECT taken FROM counters WHERE name = %s", (counter,)).fetchone()
        return int(row[0]) if row else 0

    # -- idempotency -------------------------------------------------------

    def accepted(self, event_id: str) -> tuple[str, int] | None:
        """(event class, seq) of an event accepted earlier with this id, if remembered."""
        row = self._db.execute("SELECT event, seq FROM event_ids WHERE id = %s", (event_id,)).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def accepted_many(self, event_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``accepted`` for many ids in one statement (one round trip)."""
        rows = self._db.execute("SELECT id, event, seq FROM event_ids WHERE id = ANY(%s::text[])",
                                (list(event_ids),)).fetchall()
        return {str(i): (str(e), int(s)) for i, e, s in rows}

    def remember(self, event_id: str, event: str, seq: int, at: float | None = None) -> None:
        self.remember_many([(event_id, event, seq)], at)

    def remember_many(self, accepted: list[tuple[str, str, int]], at: float | None = None) -> None:
        """Remember (id, event class, seq) of accepted events, in one transaction."""
        moment = time.time() if at is None else at
        self._remember(self._db, [(event_id, event, seq, moment) for event_id, event, seq in accepted])

    @staticmethod
    def _remember(db: psycopg.Connection[TupleRow], rows: list[tuple[str, str, int, float]]) -> None:
        # One statement (atomic by itself) whatever the number of rows; in their order, so the first of an id wins.
        db.execute(
            "INSERT INTO event_ids (id, event, seq, accepted_at)"
            " SELECT id, event, seq, accepted_at FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::float8[])"
            " WITH ORDINALITY AS r (id, event, seq, accepted_at, n) ORDER BY n ON CONFLICT (id) DO NOTHING",
            [list(column) for column in zip(*rows)] if rows else [[], [], [], []])

    def forget_before(self, moment: float, limit: int = 10_000) -> int:
        """Forget ids accepted before ``moment``, at most ``limit`` at a time (short transactions)."""
        return self._db.execute(
            "DELETE FROM event_ids WHERE id IN (SELECT id FROM event_ids WHERE accepted_at < %s LIMIT %s)",
            (moment, limit)).rowcount

    # -- query subscriptions -------------------------------------------------

    def save_query(self, key: str, text: str, parts: list[str] | None = None,
                   filters: dict[str, str | None] | None = None) -> None:
        """A query topic: the client's canonical query, the canonical parts events are matched with,
        and the row filter of each class it selects, as they were."""
        self._db.execute(
            "INSERT INTO queries (key, text, parts, filters, created) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET parts = excluded.parts, filters = excluded.filters"
            " WHERE queries.filters IS NULL",
            (key, text, Jsonb(parts if parts is not None else [text]), None if filters is None else Jsonb(filters),
             time.time()))

    def query_filters(self, key: str) -> dict[str, str | None] | None:
        """The row filters (by class) a query topic was made under; None if not recorded."""
        row = self._db.execute("SELECT filters FROM queries WHERE key = %s", (key,)).fetchone()
        return None if row is None or row[0] is None else dict(row[0])

    def query_text(self, key: str) -> str | None:
        row = self._db.execute("SELECT text FROM queries WHERE key = %s", (key,)).fetchone()
        return str(row[0]) if row else None

    def query_parts(self, key: str) -> list[str] | None:
        row = self._db.execute("SELECT text, parts FROM queries WHERE key = %s", (key,)).fetchone()
        if row is None:
            return None
        return [str(p) for p in row[1]] if row[1] is not None else [str(row[0])]

    def grant(self, subscription_id: str, session: int, key: str) -> None:
        self._db.execute("INSERT INTO subscriptions (id, session, key, created, node) VALUES (%s, %s, %s, %s, %s)",
                         (subscription_id, session, key, time.time(), self._node))

    def granted(self, session: int, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM subscriptions WHERE session = %s AND key = %s LIMIT 1",
                               (session, key)).fetchone()
        return row is not None

    def subscriptions_of(self, session: int) -> list[tuple[str, str, str]]:
        """(subscription id, topic key, canonical query) of a session's subscriptions, oldest first."""
        rows = self._db.execute(
            "SELECT s.id, s.key, q.text FROM subscriptions s JOIN queries q ON q.key = s.key"
            ' WHERE s.session = %s ORDER BY s.created, s.id COLLATE "C"', (session,)).fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def revoke(self, subscription_id: str, session: int) -> str | None:
        """Remove a session's subscription; the topic key it was for, or None if there was none."""
        row = self._db.execute("DELETE FROM subscriptions WHERE id = %s AND session = %s RETURNING key",
                               (subscription_id, session)).fetchone()
        return str(row[0]) if row else None

    def revoke_session(self, session: int) -> None:
        self._db.execute("DELETE FROM subscriptions WHERE session = %s", (session,))

    def granted_sessions(self) -> set[int]:
        return {int(r[0]) for r in self._db.execute("SELECT DISTINCT session FROM subscriptions WHERE node = %s",
                                                    (self._node,)).fetchall()}

    def revoke_sessions(self, sessions: Collection[int]) -> None:
        """Forget the subscriptions of sessions that no longer exist (one statement)."""
        if sessions:
            self._db.execute("DELETE FROM subscriptions WHERE session = ANY(%s::bigint[]) AND node = %s",
                             (sorted(sessions), self._node))

    # -- client tokens and tickets ---------------------------------------------

    def token(self, token_hash: str) -> tuple[str, float] | None:
        """(identity, expires) of a client token, if known."""
        row = self._db.execute("SELECT identity, expires FROM client_tokens WHERE hash = %s",
                               (token_hash,)).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def save_token(self, token_hash: str, identity: str, expires: float) -> None:
        """Record a new token, or renew one (its identity never changes)."""
        self._save_token(self._db, token_hash, identity, expires)

    @staticmethod
    def _save_token(db: psycopg.Connection[TupleRow], token_hash: str, identity: str, expires: float) -> None:
        db.execute(
            "INSERT INTO client_tokens (hash, identity, created, expires) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (hash) DO UPDATE SET expires = excluded.expires"
            " WHERE client_tokens.identity = excluded.identity",
            (token_hash, identity, time.time(), expires))

    def forget_unheld_tokens(self, identity: str, limit: int = 10_000) -> int:
        """Drop tokens of ``identity`` that no persistent subscription is owned by, at most ``limit``."""
        return int(self._db.execute(
            "DELETE FROM client_tokens WHERE hash IN (SELECT t.hash FROM client_tokens t WHERE t.identity = %s"
            " AND NOT EXISTS (SELECT 1 FROM persistent_subscriptions p WHERE p.owner = 'token:' || t.hash)"
            " LIMIT %s)", (identity, limit)).rowcount)

    def save_ticket(self, ticket_hash: str, user: str, roles: list[str], expires: float) -> None:
        self._db.execute("INSERT INTO tickets (hash, user_id, roles, expires) VALUES (%s, %s, %s, %s)",
                         (ticket_hash, user, Jsonb(roles), expires))

    def use_ticket(self, ticket_hash: str) -> tuple[str, list[str], float] | None:
        """Take a ticket (it is gone after this, even when expired): (user, roles, expires)."""
        row = self._db.execute("DELETE FROM tickets WHERE hash = %s RETURNING user_id, roles, expires",
                               (ticket_hash,)).fetchone()
        return (str(row[0]), [str(r) for r in row[1]], float(row[2])) if row else None

    def forget_expired_credentials(self, moment: float, limit: int = 10_000) -> int:
        """Drop expired tokens and tickets, at most ``limit`` of each at a time."""
        n = 0
        for table in ("client_tokens", "tickets"):
            n += self._db.execute(
                sql.SQL("DELETE FROM {t} WHERE hash IN (SELECT hash FROM {t} WHERE expires < %s LIMIT %s)").format(
                    t=sql.Identifier(table)), (moment, limit)).rowcount
        return n

    # -- event log -------------------------------------------------------------

    def log_events(self, rows: list[LoggedEvent]) -> None:
        """Log accepted events (one statement); a seq already logged is ignored (idempotent)."""
        self._log(self._db, rows)

    def log_and_remember(self, rows: list[LoggedEvent], term: int | None = None, moved: Sequence[int] = ()) -> None:
        """Log events and remember their ids (at logged_at) in one transaction: both or neither;
        with ``term``, only while it is the current one (else ``Superseded``); ``moved``: the
        unpublished rows these renumber go, with their ids' entries."""
        db = self._db
        # On an event's way: pipelined, with the transaction's BEGIN and COMMIT as plain statements
        # (psycopg's transaction() waits for each), the batch costs one round trip, two with a term.
        try:
            with db.pipeline() if psycopg.Pipeline.is_supported() else nullcontext():
                db.execute("BEGIN")
                if moved:
                    db.execute("DELETE FROM event_ids i USING event_log l WHERE l.seq = ANY(%s::bigint[])"
                               " AND NOT l.published AND i.id = l.id AND i.seq = l.seq", (list(moved),))
                    db.execute("DELETE FROM event_log WHERE seq = ANY(%s::bigint[]) AND NOT published", (list(moved),))
                self._remember(db, [(r.id, r.event, r.seq, r.logged_at) for r in rows])
                self._log(db, rows)
                if term is not None:
                    # FOR SHARE, before the commit: a term that begins (take's UPDATE of this row) waits
                    # for this transaction, and this one, if it comes second, reads the new term.
                    row = db.execute("SELECT taken FROM counters WHERE name = %s FOR SHARE", (TERMS,)).fetchone()
                    current = int(row[0]) if row else 0
                    if current != term:
                        raise Superseded(f"dispatcher term {term} is over (term {current} began)")
                db.execute("COMMIT")
        except BaseException:
            try:
                if db.info.transaction_status != pq.TransactionStatus.IDLE:
                    db.execute("ROLLBACK")
            except psycopg.Error:  # the connection is gone (the next call connects again): so is the transaction
                pass
            raise

    @staticmethod
    def _log(db: psycopg.Connection[TupleRow], rows: list[LoggedEvent]) -> None:
        # One statement for the batch: a thousand rows cost one round trip, not a thousand.
        db.execute(
            f"INSERT INTO event_log ({_LOG_COLUMNS}) SELECT {_LOG_COLUMNS} FROM unnest(%s::bigint[], %s::text[],"
            " %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::boolean[])"
            f" WITH ORDINALITY AS r ({_LOG_COLUMNS}, n) ORDER BY n ON CONFLICT (seq) DO NOTHING",
            ([r.seq for r in rows], [r.event for r in rows], [r.id for r in rows], [r.time for r in rows],
             [r.data for r in rows], [r.audience for r in rows], [r.logged_at for r in rows],
             [r.published for r in rows]))

    def mark_published(self, seqs: Sequence[int]) -> None:
        """Record that the router acknowledged these logged events' publishes (one statement)."""
        if seqs:
            self._db.execute("UPDATE event_log SET published = true WHERE seq = ANY(%s::bigint[]) AND NOT published",
                             (list(seqs),))

    def unpublished(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events not marked published, seq > after_seq, in seq order, at most ``limit``."""
        if limit <= 0:
            return []
        rows = self._db.execute(f"SELECT {_LOG_COLUMNS} FROM event_log WHERE NOT published AND seq > %s"
                                " ORDER BY seq LIMIT %s", (after_seq, limit)).fetchall()
        return [_logged(row) for row in rows]

    def last_published_seq(self) -> int:
        # Down the primary key from the top: the newest rows are published, save a few in flight.
        row = self._db.execute("SELECT seq FROM event_log WHERE published ORDER BY seq DESC LIMIT 1").fetchone()
        return int(row[0]) if row else 0

    def events_after(self, classes: Sequence[str], after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events of those classes with seq > after_seq, in seq order, at most ``limit``."""
        names = sorted(set(classes))
        if not names or limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE event = ANY(%s) AND seq > %s ORDER BY seq LIMIT %s",
            (names, after_seq, limit)).fetchall()
        return [_logged(row) for row in rows]

    def last_logged_seq(self) -> int:
        """The highest seq ever logged (dropped events included), 0 if none ever was."""
        row = self._db.execute("SELECT GREATEST(COALESCE((SELECT max(seq) FROM event_log), 0),"
                               " COALESCE((SELECT max(through) FROM dropped_events), 0))").fetchone()
        assert row is not None
        return int(row[0])

    def drop_events(self, event: str, before: float, keep_at_most: int | None, limit: int = 10_000) -> int:
        """Delete a class's events logged before ``before`` or beyond its newest ``keep_at_most``,
        at most ``limit`` per call (a short transaction), oldest first; how many were deleted."""
        if limit <= 0:
            return 0
        with self._transaction() as db:
            dropped: list[int] = []
            if keep_at_most is not None:
                cut = db.execute("SELECT seq FROM event_log WHERE event = %s ORDER BY seq DESC LIMIT 1 OFFSET %s",
                                 (event, max(keep_at_most, 0))).fetchone()
                if cut is not None:
                    dropped += [int(r[0]) for r in db.execute(
                        "DELETE FROM event_log WHERE seq IN (SELECT seq FROM event_log WHERE event = %s AND seq <= %s"
                        " ORDER BY seq LIMIT %s) RETURNING seq", (event, int(cut[0]), limit)).fetchall()]
            if len(dropped) < limit:
                dropped += [int(r[0]) for r in db.execute(
                    "DELETE FROM event_log WHERE seq IN (SELECT seq FROM event_log WHERE event = %s AND logged_at < %s"
                    " ORDER BY logged_at, seq LIMIT %s) RETURNING seq", (event, before, limit - len(dropped))).fetchall()]
            if dropped:
                db.execute("INSERT INTO dropped_events (event, through) VALUES (%s, %s) ON CONFLICT (event)"
                           " DO UPDATE SET through = GREATEST(dropped_events.through, excluded.through)",
                           (event, max(dropped)))
        return len(dropped)

    def dropped_through(self, classes: Sequence[str]) -> int:
        """The highest seq ever dropped from any of those classes (0 if none was)."""
        names = sorted(set(classes))
        if not names:
            return 0
        row = self._db.execute("SELECT max(through) FROM dropped_events WHERE event = ANY(%s)", (names,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def event_log_rows(self) -> dict[str, int]:
        """How many events the log holds now, by class."""
        return {str(event): int(n) for event, n in self._db.execute(
            'SELECT event, count(*) FROM event_log GROUP BY event ORDER BY event COLLATE "C"').fetchall()}

    # -- the cluster's shared log (docs/cluster.md) ----------------------------------------

    @property
    def log_channel(self) -> str:
        """The notification channel ``append`` wakes every node on: one per schema (at most 63 bytes)."""
        return "gateway_log_" + hashlib.sha256(self._schema.encode()).hexdigest()[:24]

    @property
    def control_channel(self) -> str:
        """The channel ``announce`` tells every node on (what is not an event: a subscription that ended)."""
        return "gateway_ctl_" + hashlib.sha256(self._schema.encode()).hexdigest()[:24]

    def announce(self, message: dict[str, Any]) -> None:
        """Tell every node's listener (``LogListener.wait``'s second part) this JSON object, best effort:
        a node not listening now misses it (at most 7,000 bytes: PostgreSQL's payload limit is 8,000)."""
        text = json.dumps(message, separators=(",", ":"))
        if len(text.encode()) > 7000:
            raise ValueError(f"a cluster announcement of {len(text.encode())} bytes is too long")
        self._db.execute("SELECT pg_notify(%s, %s)", (self.control_channel, text))

    def append(self, rows: Sequence[NewEvent], at: float | None = None) -> list[tuple[int, str | None]]:
        """Number and log a turn of events cluster-wide, in one round trip and one transaction (see
        ``gateway_append``): for each row in order, (its seq, None) if new, or (the seq it was accepted
        under, that event's class) if its id was accepted before, in this turn or earlier, on any node."""
        if not rows:
            return []
        moment = time.time() if at is None else at
        answers = self._db.execute(
            "SELECT n, seq, earlier FROM gateway_append(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s, %s)",
            ([r.id for r in rows], [r.event for r in rows], [r.time for r in rows], [r.data for r in rows],
             [r.audience for r in rows], moment, self.log_channel)).fetchall()
        return [(int(seq), None if earlier is None else str(earlier)) for _, seq, earlier in answers]

    def log_after(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events of every class with seq > after_seq, in seq order, at most ``limit``."""
        rows = self._db.execute(f"SELECT {_LOG_COLUMNS} FROM event_log WHERE seq > %s ORDER BY seq LIMIT %s",
                                (after_seq, limit)).fetchall()
        return [_logged(row) for row in rows]

    def node_cursor(self, node: str) -> tuple[str, int] | None:
        """(run, cursor) a node saved last, if it ever did."""
        row = self._db.execute("SELECT run, cursor FROM node_cursors WHERE node = %s", (node,)).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def save_node_cursor(self, node: str, run: str, cursor: int) -> None:
        """A node's place in the log; within one run it never goes back."""
        self._db.execute(
            "INSERT INTO node_cursors (node, run, cursor, updated) VALUES (%s, %s, %s, extract(epoch FROM"
            " clock_timestamp())) ON CONFLICT (node) DO UPDATE"
            " SET run = excluded.run, updated = excluded.updated, cursor = CASE WHEN node_cursors.run = excluded.run"
            " THEN GREATEST(node_cursors.cursor, excluded.cursor) ELSE excluded.cursor END",
            (node, run, cursor))

    def nodes(self) -> list[tuple[str, int, float]]:
        """Every node that saved its place within the last day: (name, cursor, seconds since it last did, by
        the database's clock: the nodes' clocks may differ), by name."""
        return [(str(n), int(c), max(0.0, float(a))) for n, c, a in self._db.execute(
            "SELECT node, cursor, extract(epoch FROM clock_timestamp()) - updated FROM node_cursors"
            ' WHERE updated > extract(epoch FROM clock_timestamp()) - 86400 ORDER BY node COLLATE "C"').fetchall()]

    def listener(self) -> LogListener:
        """A connection of its own that waits for ``append``'s and ``announce``'s notifications (one thread
        uses it)."""
        return LogListener(self._connect(), self.log_channel, self.control_channel)

    # -- metrics ---------------------------------------------------------------------------

    def save_metrics(self, component: str, series: Sequence[tuple[str, str, float]]) -> None:
        """Raise a component's saved totals to these (name, labels, value): a value never goes down."""
        if not series:
            return
        with self._transaction() as db, db.cursor() as cur:
            cur.executemany("INSERT INTO metric_totals (component, name, labels, value) VALUES (%s, %s, %s, %s)"
                            " ON CONFLICT (component, name, labels) DO UPDATE"
                            " SET value = GREATEST(metric_totals.value, excluded.value)",
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
            with self._transaction() as db, db.cursor() as cur:
                if keep_token is not None:
                    self._save_token(db, *keep_token)
                cur.execute(
                    f"INSERT INTO persistent_subscriptions ({_PERSISTENT_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (sub.id, sub.owner, sub.user, sub.query, sub.key, Jsonb(sub.parts), Jsonb(sub.filters),
                     Jsonb(sub.classes), sub.last_seq, sub.created))
                cur.executemany("INSERT INTO persistent_classes (event, subscription) VALUES (%s, %s)",
                                [(name, sub.id) for name in sorted(set(sub.classes))])
        except psycopg.errors.UniqueViolation as exc:
            if self.persistent(sub.id) is not None:
                raise DuplicateId(f"a persistent subscription {sub.id!r} exists already") from exc
            raise

    def count_persistent(self, user: str | None) -> int:
        """How many persistent subscriptions have this user; None: how many have none (anonymous clients')."""
        if user is None:  # IS NOT DISTINCT FROM would not use the index
            row = self._db.execute("SELECT count(*) FROM persistent_subscriptions WHERE user_id IS NULL").fetchone()
        else:
            row = self._db.execute("SELECT count(*) FROM persistent_subscriptions WHERE user_id = %s",
                                   (user,)).fetchone()
        assert row is not None
        return int(row[0])

    def persistent(self, id: str) -> PersistentSubscription | None:
        """A persistent subscription by id, None if there is none."""
        row = self._db.execute(f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE id = %s",
                               (id,)).fetchone()
        return _persistent(row) if row else None

    def persistent_of(self, owners: Sequence[str]) -> list[PersistentSubscription]:
        """The persistent subscriptions of any of those owners, oldest first."""
        names = sorted(set(owners))
        if not names:
            return []
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE owner = ANY(%s) {_OLDEST_FIRST}",
            (names,)).fetchall()]

    def persistent_for_class(self, event: str) -> list[PersistentSubscription]:
        """The persistent subscriptions that select that event class, oldest first."""
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions WHERE id IN"
            f" (SELECT subscription FROM persistent_classes WHERE event = %s) {_OLDEST_FIRST}",
            (event,)).fetchall()]

    def all_persistent(self) -> list[PersistentSubscription]:
        """Every persistent subscription, oldest first."""
        return [_persistent(row) for row in self._db.execute(
            f"SELECT {_PERSISTENT_COLUMNS} FROM persistent_subscriptions {_OLDEST_FIRST}").fetchall()]

    def persistent_classes(self) -> set[str]:
        """The event classes selected by at least one persistent subscription."""
        return {str(r[0]) for r in self._db.execute("SELECT DISTINCT event FROM persistent_classes").fetchall()}

    def ack(self, id: str, seq: int) -> int:
        """Move a subscription's last_seq forward to seq (never back); the resulting last_seq (KeyError if unknown)."""
        row = self._db.execute("UPDATE persistent_subscriptions SET last_seq = GREATEST(last_seq, %s) WHERE id = %s"
                               " RETURNING last_seq", (seq, id)).fetchone()
        if row is None:
            raise KeyError(id)
        return int(row[0])

    def delete_persistent(self, id: str) -> PersistentSubscription | None:
        """Delete a persistent subscription (its classes go with it); what was deleted, None if there was none."""
        row = self._db.execute(
            f"DELETE FROM persistent_subscriptions WHERE id = %s RETURNING {_PERSISTENT_COLUMNS}",
            (id,)).fetchone()
        return _persistent(row) if row else None

    def close(self) -> None:
        self._conn.close()


class LogListener:
    """Waits for the shared log's notifications (``PostgresStore.append``) on a connection of its own."""

    def __init__(self, conn: psycopg.Connection[TupleRow], channel: str, control: str) -> None:
        self._conn = conn
        self._channel = channel
        conn.execute(sql.SQL("LISTEN {}; LISTEN {}").format(sql.Identifier(channel), sql.Identifier(control)))

    def wait(self, timeout: float) -> tuple[int | None, list[dict[str, Any]]]:
        """What was notified within ``timeout`` seconds (and whatever else had arrived by then): the highest
        seq appended (None if none was) and the announcements, in order. Raises when the connection is
        lost (open another listener)."""
        off_the_reactor()
        top: int | None = None
        said: list[dict[str, Any]] = []
        for waited in (timeout, 0.0):  # the first, then whatever else has arrived: a burst is one wake-up
            for note in self._conn.notifies(timeout=waited, stop_after=1 if waited else None):
                try:
                    if note.channel == self._channel:
                        top = max(top or 0, int(note.payload))
                    else:
                        message = json.loads(note.payload)
                        if isinstance(message, dict):
                            said.append(message)
                except ValueError:
                    continue
            if top is None and not said:
                break
        return top, said

    def close(self) -> None:
        self._conn.close()


def _logged(row: TupleRow) -> LoggedEvent:
    seq, event, event_id, moment, data, audience, logged_at, published = row
    return LoggedEvent(seq=int(seq), event=str(event), id=str(event_id), time=str(moment), data=str(data),
                       audience=None if audience is None else str(audience), logged_at=float(logged_at),
                       published=bool(published))


def _persistent(row: TupleRow) -> PersistentSubscription:
    sid, owner, user, query, key, parts, filters, classes, last_seq, created = row
    return PersistentSubscription(
        id=str(sid), owner=str(owner), user=None if user is None else str(user), query=str(query), key=str(key),
        parts=[str(p) for p in parts], filters=dict(filters), classes=[str(c) for c in classes],
        last_seq=int(last_seq), created=float(created))


def _scrub(text: str, url: str) -> str:
    """An error message with the URL's password (if it quotes it) replaced by ***."""
    secrets = set()
    try:
        secrets.add(str(conninfo_to_dict(url).get("password") or ""))
    except psycopg.Error:
        pass
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if ":" in userinfo:
        secrets.add(userinfo.split(":", 1)[1])
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
