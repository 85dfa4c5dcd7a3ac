"""The store's interface, held by two implementations to one contract test suite.

- ``components/store/sqlite.py``: ``SqliteStore``, one SQLite file (the embedded default, ``store.path``);
- ``components/store/postgres.py``: ``PostgresStore``, a PostgreSQL database (``store.url``, psycopg 3).

Both keep: the seq counter, the ids of accepted events (idempotency), query topics and which
WAMP session holds which, client tokens and tickets (by hash), the event log (every accepted
event once, by seq, and whether the router acknowledged its publish) with its retention, the
dispatchers' leadership term (``TERMS``), and persistent subscriptions. Both migrate their schema
at start-up (a versioned list of migrations, applied once however many processes start at once).

Every method is synchronous and may block on I/O: callers run them on a thread, and each store
object is used by one thread at a time (open one per thread otherwise). Several store objects,
in one process or several, may share one store: every write is atomic, and ``take`` never hands
out a number twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from components.config import StoreConfig


@dataclass(frozen=True)
class LoggedEvent:
    """An accepted event as the log keeps it."""

    seq: int
    event: str
    id: str
    #: RFC 3339, as in the envelope.
    time: str
    #: The envelope's data, as JSON text (kept byte for byte).
    data: str
    #: The audience ({"users": [...], "roles": [...]}) as JSON text; None: everyone who may see the class.
    audience: str | None
    #: When it was logged (seconds since the epoch); retention by age counts from this.
    logged_at: float
    #: Whether the router acknowledged its publish (``mark_published``). Until then a dispatcher
    #: that takes over publishes it (``unpublished``), and a duplicate of it is published again.
    published: bool = False


@dataclass(frozen=True)
class NewEvent:
    """An event to append to a cluster's shared log (``ClusterLog.append``), before it has a seq."""

    event: str
    id: str
    #: RFC 3339, as in the envelope.
    time: str
    #: The envelope's data, as JSON text.
    data: str
    #: The audience as JSON text; None: everyone who may see the class.
    audience: str | None


@dataclass(frozen=True)
class PersistentSubscription:
    """A query subscription that outlives its session: events are kept for it until acknowledged."""

    id: str
    #: "token:<sha256 hex of the client token>" or "user:<user id>".
    owner: str
    user: str | None
    #: The canonical query text.
    query: str
    #: Its topic key.
    key: str
    #: The canonical parts events are matched with.
    parts: list[str]
    #: The row filter of each class it selects, as it was when it was made.
    filters: dict[str, str | None]
    #: The event classes it selects.
    classes: list[str]
    #: The highest seq acknowledged (or skipped) by its owner.
    last_seq: int
    created: float


class DuplicateId(ValueError):
    """Saving something under an id that is already taken."""


#: The counter (``take``) whose value is the current term of dispatcher leadership: a dispatcher
#: that takes over begins a term (``take(1, TERMS)``) before it reads what is ``unpublished``.
TERMS = "dispatcher_terms"


class Superseded(RuntimeError):
    """An event-log write of a dispatcher whose term is over: another took over since (and read what
    was unpublished then), so an event logged now would be published by no one, or out of seq order."""


@runtime_checkable
class Store(Protocol):
    """What the gateway keeps durably; see the module docstring for the threading rules."""

    # -- seq ---------------------------------------------------------------

    def take(self, n: int, counter: str = "events") -> int:
        """Advance the counter by n, durably and atomically across processes; return its new value."""
        ...

    def taken(self, counter: str = "events") -> int:
        """The counter's value (0 for a counter never taken from)."""
        ...

    # -- idempotency -------------------------------------------------------

    def accepted(self, event_id: str) -> tuple[str, int] | None:
        """(event class, seq) of an event accepted earlier with this id, if remembered."""
        ...

    def accepted_many(self, event_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``accepted`` for many ids in one statement (one round trip): id -> (event class, seq) of
        those remembered; ids not remembered are left out."""
        ...

    def remember(self, event_id: str, event: str, seq: int, at: float | None = None) -> None:
        """Remember one accepted event's id (the first acceptance of an id wins); ``at`` defaults to now."""
        ...

    def remember_many(self, accepted: list[tuple[str, str, int]], at: float | None = None) -> None:
        """Remember (id, event class, seq) of accepted events in one transaction; the first of an id wins."""
        ...

    def forget_before(self, moment: float, limit: int = 10_000) -> int:
        """Forget ids accepted before ``moment``, at most ``limit`` per call; how many were forgotten."""
        ...

    # -- query subscriptions -------------------------------------------------

    def save_query(self, key: str, text: str, parts: list[str] | None = None,
                   filters: dict[str, str | None] | None = None) -> None:
        """Record a query topic (the first text stays; parts and filters are filled in once if missing)."""
        ...

    def query_filters(self, key: str) -> dict[str, str | None] | None:
        """The row filters (by class) a query topic was made under; None if unknown or not recorded."""
        ...

    def query_text(self, key: str) -> str | None:
        """The canonical query text of a topic key, None if unknown."""
        ...

    def query_parts(self, key: str) -> list[str] | None:
        """The canonical parts of a topic (its text alone if parts were not recorded), None if unknown."""
        ...

    def grant(self, subscription_id: str, session: int, key: str) -> None:
        """Grant a WAMP session a query topic under a new subscription id (an id used before is an error)."""
        ...

    def granted(self, session: int, key: str) -> bool:
        """Whether the session holds that query topic."""
        ...

    def subscriptions_of(self, session: int) -> list[tuple[str, str, str]]:
        """(subscription id, topic key, canonical query) of a session's subscriptions, oldest first."""
        ...

    def revoke(self, subscription_id: str, session: int) -> str | None:
        """Remove a session's own subscription; the topic key it was for, or None if there was none."""
        ...

    def revoke_session(self, session: int) -> None:
        """Remove every subscription of a session."""
        ...

    def granted_sessions(self) -> set[int]:
        """The sessions that hold at least one grant now."""
        ...

    def revoke_sessions(self, sessions: Collection[int]) -> None:
        """Remove every subscription of each of those sessions, in one transaction.

        To forget sessions that left unseen (the router restarted, a meta event missed), list the
        holders first (``granted_sessions``), then the router's sessions, and revoke those listed
        first that the router no longer has: a grant made meanwhile, to a session that joined after
        the router's list was read, is never among them (unlike "every session but those listed")."""
        ...

    # -- client tokens and tickets ---------------------------------------------

    def token(self, token_hash: str) -> tuple[str, float] | None:
        """(identity, expires) of a client token by its hash, if known (expired or not)."""
        ...

    def save_token(self, token_hash: str, identity: str, expires: float) -> None:
        """Record a new token, or renew one (only if bound to the same identity, which never changes)."""
        ...

    def save_ticket(self, ticket_hash: str, user: str, roles: list[str], expires: float) -> None:
        """Record a one-time ticket by its hash (a hash used before is an error)."""
        ...

    def use_ticket(self, ticket_hash: str) -> tuple[str, list[str], float] | None:
        """Take a ticket, atomically (it is gone after this, even when expired): (user, roles, expires)."""
        ...

    def forget_expired_credentials(self, moment: float, limit: int = 10_000) -> int:
        """Drop tokens and tickets that expired before ``moment``, at most ``limit`` of each; how many."""
        ...

    def forget_unheld_tokens(self, identity: str, limit: int = 10_000) -> int:
        """Drop tokens of ``identity`` that no persistent subscription is owned by (``token:<hash>``),
        at most ``limit``; how many. Atomic: a token saved with its subscription (``save_persistent``'s
        ``keep_token``) is never dropped."""
        ...

    # -- event log -----------------------------------------------------------------

    def log_events(self, rows: list[LoggedEvent]) -> None:
        """Log accepted events in one transaction; a seq already logged is ignored (idempotent)."""
        ...

    def log_and_remember(self, rows: list[LoggedEvent], term: int | None = None, moved: Sequence[int] = ()) -> None:
        """log_events and remember_many (at each row's logged_at) in ONE transaction: both or neither.

        ``moved``: seqs of logged events that ``rows`` renumber (never published, their publish refused:
        a retry of one goes out under a new seq, never below one published since). In the same
        transaction, each of those rows that is still unpublished is deleted, and its id forgotten, so
        that the row at its new seq and the id's entry for it take their place.

        With ``term`` (what ``take(1, TERMS)`` gave the writer): only while no later term has begun,
        else ``Superseded`` and nothing is written. A term that begins waits for a write that checked
        the one before to commit, so whoever begins it sees every row written under the old one.
        """
        ...

    def mark_published(self, seqs: Sequence[int]) -> None:
        """Record that the router acknowledged the publish of these logged events (seqs not logged: ignored)."""
        ...

    def unpublished(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events not marked published with seq > after_seq, of every class, in seq order, at most ``limit``."""
        ...

    def last_published_seq(self) -> int:
        """The highest seq of a logged event marked published (0 if none is in the log). An unpublished
        one below it is superseded: its publish was refused (or never made) while higher seqs went out."""
        ...

    def events_after(self, classes: Sequence[str], after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events of those classes with seq > after_seq, in seq order, at most ``limit``."""
        ...

    def last_logged_seq(self) -> int:
        """The highest seq ever logged (dropped events included), 0 if none ever was."""
        ...

    def drop_events(self, event: str, before: float, keep_at_most: int | None, limit: int = 10_000) -> int:
        """Delete a class's events logged before ``before`` or beyond its newest ``keep_at_most``,
        at most ``limit`` per call, oldest first; how many were deleted."""
        ...

    def dropped_through(self, classes: Sequence[str]) -> int:
        """The highest seq ever dropped from any of those classes (0 if none was)."""
        ...

    def event_log_rows(self) -> dict[str, int]:
        """How many events the log holds now, by class (classes with none are left out).

        Counts every row: as costly as reading an index of the log (retention's rounds read as much).
        """
        ...

    # -- metrics ---------------------------------------------------------------------------

    def save_metrics(self, component: str, series: Sequence[tuple[str, str, float]]) -> None:
        """Raise a component's saved metric totals to these (series name, labels text, value), in one
        transaction: a saved value never goes down (``components.metrics``: the node's counters never do)."""
        ...

    def saved_metrics(self) -> dict[str, dict[tuple[str, str], float]]:
        """Every component's saved metric totals: component -> (series name, labels text) -> value."""
        ...

    # -- persistent subscriptions ------------------------------------------------------

    def save_persistent(self, sub: PersistentSubscription, keep_token: tuple[str, str, float] | None = None) -> None:
        """Record a new persistent subscription; an id already saved raises DuplicateId.

        ``keep_token`` (hash, identity, expires): in the same transaction, record the client token
        it is owned by, or renew it (``save_token``): a subscription is never without its token's row.
        """
        ...

    def count_persistent(self, user: str | None) -> int:
        """How many persistent subscriptions have this user (those of a user's clients and those made
        for the user); None: how many anonymous clients' there are (no user)."""
        ...

    def persistent(self, id: str) -> PersistentSubscription | None:
        """A persistent subscription by id, None if there is none."""
        ...

    def persistent_of(self, owners: Sequence[str]) -> list[PersistentSubscription]:
        """The persistent subscriptions of any of those owners, oldest first."""
        ...

    def persistent_for_class(self, event: str) -> list[PersistentSubscription]:
        """The persistent subscriptions that select that event class, oldest first."""
        ...

    def all_persistent(self) -> list[PersistentSubscription]:
        """Every persistent subscription, oldest first."""
        ...

    def persistent_classes(self) -> set[str]:
        """The event classes selected by at least one persistent subscription."""
        ...

    def ack(self, id: str, seq: int) -> int:
        """Move a subscription's last_seq forward to seq (never back); the resulting last_seq.
        An unknown id raises KeyError."""
        ...

    def delete_persistent(self, id: str) -> PersistentSubscription | None:
        """Delete a persistent subscription; what was deleted, None if there was none."""
        ...

    def close(self) -> None:
        """Close the connection; the object is not used after this."""
        ...


@runtime_checkable
class ClusterLog(Protocol):
    """What a cluster's nodes share beyond ``Store`` (docs/cluster.md): the PostgreSQL store only."""

    log_channel: str

    def append(self, rows: Sequence[NewEvent], at: float | None = None) -> list[tuple[int, str | None]]:
        """Number and log a turn of events cluster-wide, in one transaction whose commits come in seq order:
        for each row, (its seq, None) if new, or (its earlier seq, that event's class) if its id was
        accepted before (in this turn or earlier, on any node)."""
        ...

    def log_after(self, after_seq: int, limit: int) -> list[LoggedEvent]:
        """Logged events of every class with seq > after_seq, in seq order, at most ``limit``."""
        ...

    def node_cursor(self, node: str) -> tuple[str, int] | None:
        """(run, cursor) the node saved last, if it ever did."""
        ...

    def save_node_cursor(self, node: str, run: str, cursor: int) -> None:
        """A node's place in the log for a run of it; within one run it never goes back."""
        ...

    def nodes(self) -> list[tuple[str, int, float]]:
        """Every node that saved its place lately: (name, cursor, seconds since it last did, by the store's clock)."""
        ...

    def announce(self, message: dict[str, Any]) -> None:
        """Tell every node listening now this JSON object (best effort; a few KB at most)."""
        ...


def open_store(cfg: StoreConfig, node: str = "") -> Store:
    """The store the configuration names: PostgreSQL when ``url`` is set, else the SQLite file ``path``.
    ``node``: the cluster node it works for (PostgreSQL; its grants are its router's sessions')."""
    if cfg.url:
        from components.store.postgres import PostgresStore  # psycopg is imported only when it is used

        return PostgresStore(cfg.url, cfg.schema_name, cfg.statement_timeout, cfg.connect_timeout, node)
    from components.store.sqlite import SqliteStore

    return SqliteStore(cfg.path)
