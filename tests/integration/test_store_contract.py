"""The store contract: every test runs against both implementations of ``Store``.

- ``sqlite``: a file in a temporary directory;
- ``postgresql``: a fresh schema of its own in the database ``test`` on 127.0.0.1:5432 (user
  postgres, trust auth; another server with GATEWAY_TEST_POSTGRESQL_URL), dropped after the test.
  Skipped, saying why, when the server cannot be reached.

No Crossbar node here: these tests take milliseconds each.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
import pytest
from twisted.python.failure import Failure

from components.store import postgres as pgstore

from components.store import sqlite as store
from components.config import StoreConfig
from components.exceptions import StoreUnavailable
from components.delivery.sequence import DEFAULT_BLOCK, Sequencer
from components.store.base import TERMS, DuplicateId, LoggedEvent, PersistentSubscription, Store, Superseded, \
    open_store
from components.store.thread import Inline
from tests.integration.conftest import postgresql_schema

POSTGRESQL_URL = os.environ.get("GATEWAY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: What a failed statement raises, whichever the store.
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


@dataclass
class Backend:
    """Opens store objects on one store (each its own connection) and closes them after the test."""

    name: str
    opener: Callable[[], Store]
    #: (the version recorded in the store, the number of migrations it has been through).
    recorded_version: Callable[[], tuple[int, int]]
    latest: int
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        s = self.opener()
        self.opened.append(s)
        return s


@pytest.fixture(scope="session")
def postgresql_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection of the suite's own, to look inside stores and drop their schemas."""
    try:
        admin = psycopg.connect(POSTGRESQL_URL, connect_timeout=3, autocommit=True)
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {StoreConfig.redact(POSTGRESQL_URL)}: {str(exc).strip()}")
    with admin:
        yield admin


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite3"

        def sqlite_version() -> tuple[int, int]:
            with sqlite3.connect(path) as db:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
            return version, version

        b = Backend("sqlite", lambda: store.SqliteStore(path), sqlite_version, len(store.MIGRATIONS))
        yield b
        for s in b.opened:
            s.close()
        return

    admin = request.getfixturevalue("postgresql_admin")
    schema = f"contract_{uuid.uuid4().hex[:16]}"

    def pg_version() -> tuple[int, int]:
        row = admin.execute(f"SELECT max(version), count(*) FROM {schema}.schema_version").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    b = Backend("postgresql", lambda: pgstore.PostgresStore(POSTGRESQL_URL, schema=schema), pg_version,
                len(pgstore.MIGRATIONS))
    try:
        yield b
    finally:
        for s in b.opened:
            s.close()
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def st(backend: Backend) -> Store:
    return backend.open()


def ev(seq: int, event: str = "demo.message", *, at: float = 1000.0, data: str | None = None,
       audience: str | None = None, event_id: str | None = None) -> LoggedEvent:
    return LoggedEvent(seq=seq, event=event, id=event_id or f"id-{seq}", time="2026-11-28T09:30:01.123Z",
                       data=data if data is not None else json.dumps({"n": seq}), audience=audience, logged_at=at)


def sub(sid: str, *, owner: str = "user:alice", classes: tuple[str, ...] = ("demo.message",),
        created: float = 100.0, last_seq: int = 0) -> PersistentSubscription:
    return PersistentSubscription(
        id=sid, owner=owner, user=owner.removeprefix("user:") if owner.startswith("user:") else None,
        query=" or ".join(classes), key=f"key-{sid}", parts=list(classes),
        filters={c: None for c in classes}, classes=list(classes), last_seq=last_seq, created=created)


def seqs(events: list[LoggedEvent]) -> list[int]:
    return [e.seq for e in events]


# -- the interface and its set-up ------------------------------------------------------------


def test_both_stores_are_stores(st: Store) -> None:
    assert isinstance(st, Store)


def test_migrations_run_once_and_the_version_is_recorded(backend: Backend) -> None:
    first = backend.open()
    first.take(5)
    second = backend.open()  # migrates nothing, loses nothing
    assert backend.recorded_version() == (backend.latest, backend.latest)
    assert second.taken() == 5
    second.close()
    backend.opened.remove(second)
    assert backend.open().take(1) == 6


def test_stores_opened_at_once_migrate_once(backend: Backend) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            backend.open()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(backend.opened) == 4
    assert backend.recorded_version() == (backend.latest, backend.latest)


def test_open_store_chooses_by_url(tmp_path: Path) -> None:
    s = open_store(StoreConfig(path=str(tmp_path / "x.sqlite3")))
    assert isinstance(s, store.SqliteStore)
    s.close()
    with postgresql_schema() as section:
        pg = open_store(StoreConfig(path="ignored", **section))
        try:
            assert isinstance(pg, pgstore.PostgresStore)
            assert pg.take(5) == 5 and pg.taken() == 5  # in the schema named, created for it
        finally:
            pg.close()


def test_a_server_that_cannot_be_reached_is_named_without_the_password() -> None:
    with pytest.raises(psycopg.OperationalError) as err:  # port 1 on loopback: refused at once
        pgstore.PostgresStore("postgresql://gw:s3cret-pw@127.0.0.1:1/events?connect_timeout=2")
    assert "postgresql://gw:***@127.0.0.1:1/events" in str(err.value) and "s3cret-pw" not in str(err.value)


def test_a_lost_connection_is_made_again(postgresql_admin: psycopg.Connection[tuple[object, ...]]) -> None:
    schema = f"contract_{uuid.uuid4().hex[:16]}"
    s = pgstore.PostgresStore(POSTGRESQL_URL, schema=schema)
    try:
        s.take(5)
        postgresql_admin.execute("SELECT pg_terminate_backend(%s)", (s._db.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            s.taken()  # the call in flight fails
        assert s.take(1) == 6, "the next one connects again, in the same schema"
    finally:
        s.close()
        postgresql_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_events_logged_before_the_published_mark_count_as_published(
        postgresql_admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A schema of the version before: its logged events are not published again by a dispatcher
    that takes over (whether they were is not known; the whole log again would be worse)."""
    schema = f"contract_{uuid.uuid4().hex[:16]}"
    # The version before the migration that added the published mark (later ones come after it).
    before = next(n for n, m in enumerate(pgstore.MIGRATIONS) if any("ADD COLUMN IF NOT EXISTS published" in st
                                                                      for st in m))
    try:
        postgresql_admin.execute(f"CREATE SCHEMA {schema}")
        postgresql_admin.execute(f"SET search_path TO {schema}")
        postgresql_admin.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                                 " applied_at DOUBLE PRECISION NOT NULL)")
        for n in range(before):
            postgresql_admin.execute(";\n".join(pgstore.MIGRATIONS[n]))
            postgresql_admin.execute("INSERT INTO schema_version VALUES (%s, 0)", (n + 1,))
        postgresql_admin.execute("INSERT INTO event_log (seq, event, id, time, data, audience, logged_at)"
                                 " VALUES (1, 'demo.message', 'old', 't', '{}', NULL, 1.0)")
        postgresql_admin.execute("SET search_path TO public")
        s = pgstore.PostgresStore(POSTGRESQL_URL, schema=schema)
        try:
            s.log_events([ev(2)])
            assert [(e.seq, e.published) for e in s.events_after(["demo.message"], 0, 10)] == [(1, True), (2, False)]
            assert seqs(s.unpublished(0, 10)) == [2]
        finally:
            s.close()
    finally:
        postgresql_admin.execute("SET search_path TO public")
        postgresql_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_statement_past_the_statement_timeout_fails_instead_of_waiting(
        postgresql_admin: psycopg.Connection[tuple[object, ...]]) -> None:
    schema = f"contract_{uuid.uuid4().hex[:16]}"
    s = pgstore.PostgresStore(POSTGRESQL_URL, schema=schema, statement_timeout=0.3)
    try:
        s.take(1)
        with psycopg.connect(POSTGRESQL_URL, autocommit=False) as holder:
            holder.execute(f"LOCK TABLE {schema}.counters IN ACCESS EXCLUSIVE MODE")  # held until the end
            started = time.monotonic()
            failures: list[Failure] = []
            Inline(s).run(lambda st: st.take(1)).addErrback(failures.append)
            waited = time.monotonic() - started
            holder.rollback()
        assert failures and failures[0].check(StoreUnavailable), failures
        assert "store.statement_timeout" in str(failures[0].value)
        assert 0.25 < waited < 3, waited
        assert s.take(1) == 2, "the connection is still good: the next statement goes through"
    finally:
        s.close()
        postgresql_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_server_that_does_not_answer_fails_the_connection_after_the_connect_timeout() -> None:
    with socket.socket() as silent:  # takes connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="cannot connect"):
            pgstore.PostgresStore(f"postgresql://gw@127.0.0.1:{port}/events", connect_timeout=2)
        assert 1.5 < time.monotonic() - started < 10


# -- seq ---------------------------------------------------------------------------------------


def sequencer(store: Store, block: int = DEFAULT_BLOCK) -> Sequencer:
    """A Sequencer over a store, its blocks taken inline (as its store thread would)."""
    return Sequencer(lambda n: Inline(store).run(lambda s: s.take(n)), block)


def numbers(seq: Sequencer, n: int) -> list[int]:
    seq.reserve(n)  # fired already: inline
    return [seq.next() for _ in range(n)]


def test_counter_survives_reopening_and_is_shared(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    a = sequencer(first, block=100)
    used = numbers(a, 3)
    b = sequencer(second, block=100)
    assert numbers(b, 1) == [101]
    first.close()
    second.close()
    backend.opened.clear()
    reopened = backend.open()
    assert reopened.taken() == 200 and reopened.taken("other") == 0
    assert numbers(sequencer(reopened), 1)[0] > max(used)
    assert reopened.take(3, counter="other") == 3 and reopened.taken() == 200 + DEFAULT_BLOCK \
        and reopened.taken("other") == 3


def test_two_store_objects_taking_at_once_never_get_the_same_number(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    got: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def work(i: int) -> None:
        start.wait()
        for _ in range(40):
            got[i].append(stores[i].take(1 + i))  # blocks of 1 and of 2

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = got[0] + [n for end in got[1] for n in (end - 1, end)]
    assert len(numbers) == len(set(numbers)) == 120, "no number handed out twice"
    assert sorted(numbers) == list(range(1, 121)), "and none lost"
    assert got[0] == sorted(got[0]) and got[1] == sorted(got[1])
    assert stores[0].taken() == 120


# -- idempotency --------------------------------------------------------------------------------


def test_ids_are_remembered_and_forgotten_after_the_window(st: Store) -> None:
    assert st.accepted("a") is None
    st.remember("a", "demo.message", 7, at=100.0)
    st.remember("b", "demo.order", 8, at=200.0)
    st.remember("a", "demo.order", 9, at=300.0)  # the first acceptance wins
    assert st.accepted("a") == ("demo.message", 7)
    assert st.forget_before(150.0) == 1
    assert st.accepted("a") is None and st.accepted("b") == ("demo.order", 8)


def test_many_ids_are_remembered_in_one_go(st: Store) -> None:
    st.remember_many([("a", "demo.message", 1), ("b", "demo.order", 2), ("a", "demo.order", 3)])
    assert st.accepted("a") == ("demo.message", 1) and st.accepted("b") == ("demo.order", 2)
    st.remember_many([])


def test_many_ids_are_looked_up_in_one_go(st: Store) -> None:
    st.remember_many([(f"id-{i}", "demo.message", i) for i in range(1, 1501)])
    asked = [f"id-{i}" for i in range(0, 3001, 2)] + ["it's", "\u00e9\"", ""]
    assert st.accepted_many(asked) == {f"id-{i}": ("demo.message", i) for i in range(2, 1501, 2)}
    assert st.accepted_many([]) == {}


def test_forgetting_goes_at_most_limit_at_a_time(st: Store) -> None:
    st.remember_many([(f"id-{i}", "demo.message", i) for i in range(25)], at=10.0)
    st.remember("late", "demo.message", 99, at=50.0)
    assert st.forget_before(20.0, limit=10) == 10
    assert st.forget_before(20.0, limit=10) == 10
    assert st.forget_before(20.0, limit=10) == 5
    assert st.forget_before(20.0, limit=10) == 0
    assert st.accepted("late") == ("demo.message", 99)


def test_seq_and_session_numbers_up_to_2_to_the_53(st: Store) -> None:
    big = 2**53
    st.remember("x", "demo.message", big)
    assert st.accepted("x") == ("demo.message", big)
    st.save_query("k", "demo.message")
    st.grant("s", big, "k")
    assert st.granted(big, "k") and st.subscriptions_of(big) == [("s", "k", "demo.message")]
    assert st.take(big) == big


# -- query subscriptions ----------------------------------------------------------------------------


def test_query_grants_by_session(st: Store) -> None:
    st.save_query("k1", 'demo.message where room = "a"')
    st.save_query("k1", "ignored: the first text stays")
    st.grant("sub-1", 11, "k1")
    st.grant("sub-2", 22, "k1")
    assert st.query_text("k1") == 'demo.message where room = "a"' and st.query_text("k2") is None
    assert st.granted(11, "k1") and not st.granted(11, "k2") and not st.granted(33, "k1")
    assert st.subscriptions_of(11) == [("sub-1", "k1", 'demo.message where room = "a"')]
    assert st.revoke("sub-1", 22) is None, "only the owner may revoke"
    assert st.revoke("sub-1", 11) == "k1" and not st.granted(11, "k1")
    assert st.revoke("sub-1", 11) is None
    st.grant("sub-3", 33, "k1")
    st.grant("sub-5", 55, "k1")
    assert st.granted_sessions() == {22, 33, 55}
    st.revoke_sessions({33, 55, 66})
    assert st.granted(22, "k1") and not st.granted(33, "k1") and not st.granted(55, "k1")
    st.revoke_sessions(set())
    assert st.granted_sessions() == {22}
    st.revoke_session(22)
    assert not st.granted(22, "k1") and st.granted_sessions() == set()


def test_a_subscription_id_is_granted_once(st: Store) -> None:
    st.save_query("k", "demo.message")
    st.grant("sub-1", 1, "k")
    with pytest.raises(DB_ERRORS):
        st.grant("sub-1", 2, "k")
    assert st.subscriptions_of(1) == [("sub-1", "k", "demo.message")] and st.subscriptions_of(2) == []


def test_a_sessions_subscriptions_oldest_first(st: Store) -> None:
    for key in ("ka", "kb", "kc"):
        st.save_query(key, f"query {key}")
    for sid, key in (("s-z", "kc"), ("s-a", "ka"), ("s-m", "kb")):
        st.grant(sid, 5, key)
    assert [s[0] for s in st.subscriptions_of(5)] == ["s-z", "s-a", "s-m"]


def test_query_parts_and_filters(st: Store) -> None:
    st.save_query("plain", "demo.message")
    assert st.query_parts("plain") == ["demo.message"] and st.query_filters("plain") is None
    assert st.query_parts("nothing") is None and st.query_filters("nothing") is None
    filters: dict[str, str | None] = {"demo.order": "user = $user", "demo.message": None}
    st.save_query("k", "demo.message or demo.order", ["demo.message", "demo.order"], filters)
    assert st.query_parts("k") == ["demo.message", "demo.order"]
    assert st.query_filters("k") == filters
    st.save_query("k", "other", ["x"], {"x": None})  # recorded filters stay
    assert st.query_text("k") == "demo.message or demo.order" and st.query_filters("k") == filters
    st.save_query("plain", "ignored", ["a", "b"], {"a": None, "b": "n > 1"})  # a row without filters gets them
    assert st.query_text("plain") == "demo.message" and st.query_parts("plain") == ["a", "b"]
    assert st.query_filters("plain") == {"a": None, "b": "n > 1"}


# -- client tokens and tickets ----------------------------------------------------------------------


def test_tokens_are_renewed_only_for_their_identity(st: Store) -> None:
    assert st.token("h1") is None
    st.save_token("h1", "user:alice", 100.5)
    st.save_token("h1", "user:alice", 200.25)
    assert st.token("h1") == ("user:alice", 200.25)
    st.save_token("h1", "user:mallory", 900.0)  # neither taken over nor renewed
    assert st.token("h1") == ("user:alice", 200.25)


def test_a_ticket_is_used_once(st: Store) -> None:
    st.save_ticket("t1", "alice", ["staff", "admin"], 50.0)
    with pytest.raises(DB_ERRORS):
        st.save_ticket("t1", "bob", [], 60.0)
    assert st.use_ticket("t1") == ("alice", ["staff", "admin"], 50.0)
    assert st.use_ticket("t1") is None and st.use_ticket("never") is None


def test_expired_credentials_are_dropped(st: Store) -> None:
    st.save_token("old", "anonymous", 10.0)
    st.save_token("new", "anonymous", 30.0)
    st.save_ticket("t-old", "alice", [], 10.0)
    st.save_ticket("t-new", "alice", [], 30.0)
    assert st.forget_expired_credentials(20.0) == 2
    assert st.token("old") is None and st.token("new") == ("anonymous", 30.0)
    assert st.use_ticket("t-old") is None and st.use_ticket("t-new") == ("alice", [], 30.0)
    for i in range(5):
        st.save_token(f"x{i}", "anonymous", 1.0)
    assert st.forget_expired_credentials(20.0, limit=2) == 2


def test_tokens_no_subscription_holds_are_dropped_by_identity(st: Store) -> None:
    held, loose, other = "aa" * 32, "bb" * 32, "cc" * 32
    st.save_persistent(sub("p", owner=f"token:{held}"), keep_token=(held, "anonymous", 500.0))
    st.save_token(loose, "anonymous", 500.0)
    st.save_token(other, "user:alice", 500.0)
    assert st.token(held) == ("anonymous", 500.0), "saved with its subscription"
    assert st.forget_unheld_tokens("anonymous") == 1
    assert st.token(loose) is None and st.token(held) is not None and st.token(other) is not None
    st.delete_persistent("p")
    for i in range(5):
        st.save_token(f"x{i}", "anonymous", 500.0)
    assert st.forget_unheld_tokens("anonymous", limit=2) == 2
    assert st.forget_unheld_tokens("anonymous") == 4 and st.token(held) is None
    assert st.token(other) == ("user:alice", 500.0), "only the identity named"


def test_a_subscription_saved_with_its_token_renews_it_but_never_takes_it_over(st: Store) -> None:
    st.save_token("t", "user:alice", 100.0)
    st.save_persistent(sub("p1", owner="token:t"), keep_token=("t", "user:alice", 300.0))
    assert st.token("t") == ("user:alice", 300.0)
    st.save_persistent(sub("p2", owner="token:t"), keep_token=("t", "anonymous", 900.0))
    assert st.token("t") == ("user:alice", 300.0)
    with pytest.raises(DuplicateId):
        st.save_persistent(sub("p1", owner="token:u"), keep_token=("u", "anonymous", 1.0))
    assert st.token("u") is None, "both or neither"


# -- event log ------------------------------------------------------------------------------------


def test_event_log_rows_by_class(st: Store) -> None:
    assert st.event_log_rows() == {}
    st.log_events([ev(1, "b"), ev(2, "a"), ev(3, "b"), ev(4, "B")])
    assert st.event_log_rows() == {"B": 1, "a": 1, "b": 2}
    assert list(st.event_log_rows()) == ["B", "a", "b"], "in byte order, whichever the store"
    st.drop_events("b", before=0.0, keep_at_most=1)
    assert st.event_log_rows() == {"B": 1, "a": 1, "b": 1}


def test_logged_events_come_back_as_they_went_in(st: Store) -> None:
    data = '{"z": 1,  "a": [1, 2.50, "é"], "nested": {"b": null}}'  # not normalised: byte for byte
    audience = '{"users": ["alice"], "roles": []}'
    rows = [ev(3, data=data, audience=audience, at=12.5), ev(4, "demo.order")]
    st.log_events(rows)
    assert st.events_after(["demo.message", "demo.order"], 0, 10) == rows


def test_logging_is_idempotent(st: Store) -> None:
    st.log_events([ev(1), ev(2)])
    st.log_events([ev(2, data='{"changed": true}'), ev(3)])  # seq 2 again: ignored, 3 logged
    st.log_events([])
    got = st.events_after(["demo.message"], 0, 10)
    assert seqs(got) == [1, 2, 3] and got[1] == ev(2)
    assert st.last_logged_seq() == 3


def test_log_and_remember_does_both(st: Store) -> None:
    st.remember("a", "demo.message", 1, at=5.0)
    st.log_and_remember([ev(1, event_id="a", at=7.0), ev(2, "demo.order", event_id="b", at=8.0)])
    st.log_and_remember([ev(2, "demo.order", event_id="b", at=9.0)])  # again: nothing changes
    assert st.accepted("a") == ("demo.message", 1) and st.accepted("b") == ("demo.order", 2)
    assert seqs(st.events_after(["demo.message", "demo.order"], 0, 10)) == [1, 2]
    assert st.forget_before(7.5) == 1, "b is remembered as accepted at its logged_at"
    assert st.accepted("a") is None and st.accepted("b") == ("demo.order", 2)


@pytest.mark.parametrize("bad", [
    pytest.param(ev(3, data="{not json"), id="data not JSON"),
    pytest.param(ev(3, audience="[unclosed"), id="audience not JSON"),
    pytest.param(replace(ev(3), event=None), id="no event class"),
])
def test_log_and_remember_does_neither_when_a_row_fails(st: Store, bad: LoggedEvent) -> None:
    st.log_and_remember([ev(1)])
    with pytest.raises(DB_ERRORS):
        st.log_and_remember([ev(2), bad, ev(4)])
    assert seqs(st.events_after(["demo.message"], 0, 10)) == [1]
    assert st.accepted("id-2") is None and st.accepted("id-3") is None and st.accepted("id-4") is None
    with pytest.raises(DB_ERRORS):
        st.log_events([ev(2), bad])
    assert seqs(st.events_after(["demo.message"], 0, 10)) == [1]
    st.log_and_remember([ev(2)])  # the store is usable after the failure
    assert st.accepted("id-2") == ("demo.message", 2)


def test_a_logged_event_is_unpublished_until_marked(st: Store) -> None:
    st.log_and_remember([ev(5, "demo.order"), ev(2), ev(9), ev(7, "demo.other")])
    st.log_events([replace(ev(11), published=True)])
    assert seqs(st.unpublished(0, 10)) == [2, 5, 7, 9], "every class, in seq order"
    st.mark_published([5, 9, 404])  # 404 was never logged: ignored
    st.mark_published([5])  # again: nothing changes
    st.mark_published([])
    assert seqs(st.unpublished(0, 10)) == [2, 7]
    assert seqs(st.unpublished(2, 10)) == [7] and seqs(st.unpublished(0, 1)) == [2] and st.unpublished(0, 0) == []
    got = {e.seq: e.published for e in st.events_after(["demo.message", "demo.order", "demo.other"], 0, 10)}
    assert got == {2: False, 5: True, 7: False, 9: True, 11: True}
    assert st.unpublished(0, 10)[0] == ev(2), "the row as it went in"


def test_the_last_published_seq(st: Store) -> None:
    assert st.last_published_seq() == 0
    st.log_and_remember([ev(1), ev(2), ev(3), ev(4)])
    assert st.last_published_seq() == 0, "none marked"
    st.mark_published([1, 3])
    assert st.last_published_seq() == 3, "2 (unpublished, below 3) is superseded; 4 is not"


def test_a_retry_moves_an_unpublished_row_and_its_id_to_a_new_seq(st: Store) -> None:
    """``moved``: a logged event never published (its publish refused) renumbered, in one transaction."""
    st.log_and_remember([ev(1, event_id="a", at=5.0), ev(2, event_id="b")])
    st.mark_published([2])
    st.log_and_remember([ev(3, event_id="a", at=9.0)], moved=[1])
    assert seqs(st.events_after(["demo.message"], 0, 10)) == [2, 3]
    assert st.accepted("a") == ("demo.message", 3) and st.accepted("b") == ("demo.message", 2)
    assert seqs(st.unpublished(0, 10)) == [3]
    # A published row is never moved (nor its id): only the new row is written.
    st.log_and_remember([ev(4, event_id="b")], moved=[2])
    assert seqs(st.events_after(["demo.message"], 0, 10)) == [2, 3, 4] and st.accepted("b") == ("demo.message", 2)


def test_a_move_in_a_failed_log_write_moves_nothing(st: Store) -> None:
    st.log_and_remember([ev(1, event_id="a")])
    with pytest.raises(DB_ERRORS):
        st.log_and_remember([ev(2, event_id="a"), ev(3, data="{not json")], moved=[1])
    assert seqs(st.events_after(["demo.message"], 0, 10)) == [1] and st.accepted("a") == ("demo.message", 1)


def test_a_move_of_a_term_that_is_over_moves_nothing(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    term = first.take(1, TERMS)
    first.log_and_remember([ev(1, event_id="a")], term=term)
    second.take(1, TERMS)
    with pytest.raises(Superseded):
        first.log_and_remember([ev(2, event_id="a")], term=term, moved=[1])
    assert seqs(second.events_after(["demo.message"], 0, 10)) == [1] and second.accepted("a") == ("demo.message", 1)


def test_unpublished_pages_through_a_big_log(st: Store) -> None:
    st.log_events([ev(n, at=float(n)) for n in range(1, 5_001)])
    st.mark_published([n for n in range(1, 5_001) if n % 1000])
    assert seqs(st.unpublished(0, 3)) == [1000, 2000, 3000] and seqs(st.unpublished(3000, 3)) == [4000, 5000]


def test_a_log_write_of_a_term_that_is_over_writes_nothing(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    term = first.take(1, TERMS)
    first.log_and_remember([ev(1, event_id="a")], term=term)
    assert second.take(1, TERMS) == term + 1
    with pytest.raises(Superseded):
        first.log_and_remember([ev(2, event_id="b")], term=term)
    assert seqs(second.events_after(["demo.message"], 0, 10)) == [1] and second.accepted("b") is None
    second.log_and_remember([ev(2, event_id="b")], term=term + 1)
    first.log_and_remember([ev(3, event_id="c")])  # no term: not checked
    assert seqs(first.unpublished(0, 10)) == [1, 2, 3]


def test_a_term_that_begins_sees_every_row_written_under_the_one_before(backend: Backend) -> None:
    """The old term's writer keeps writing while the new term begins: what it wrote is exactly
    what the new term's holder reads as unpublished (none lands after the read)."""
    writer, taker = backend.open(), backend.open()
    term = writer.take(1, TERMS)
    written: list[int] = []
    started = threading.Event()

    def write() -> None:
        n = 0
        try:
            while n < 100_000:
                rows = [ev(n + i, event_id=f"w{n + i}") for i in range(1, 6)]
                writer.log_and_remember(rows, term=term)
                written.extend(r.seq for r in rows)
                n += 5
                started.set()
        except Superseded:
            pass
        finally:
            started.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert started.wait(20)
        taker.take(1, TERMS)
        seen = seqs(taker.unpublished(0, 1_000_000))
    finally:
        thread.join(30)
    assert written and seen == written


def test_events_after_filters_orders_and_limits(st: Store) -> None:
    classes = ["demo.message", "demo.order", "demo.other"]
    st.log_events([ev(n, classes[n % 3]) for n in (9, 3, 1, 4, 7, 5, 2, 8, 6, 10)])
    assert seqs(st.events_after(["demo.message"], 0, 100)) == [3, 6, 9]
    assert seqs(st.events_after(["demo.order", "demo.message"], 0, 100)) == [1, 3, 4, 6, 7, 9, 10]
    assert seqs(st.events_after(("demo.order", "demo.message", "demo.order"), 4, 3)) == [6, 7, 9]
    assert seqs(st.events_after(classes, 10, 5)) == []
    assert st.events_after([], 0, 5) == [] and st.events_after(["nope"], 0, 5) == []
    assert st.events_after(classes, 0, 0) == []


def test_events_after_pages_through_a_big_log(st: Store) -> None:
    st.log_events([ev(n, "demo.order" if n % 100 == 0 else "demo.message", at=float(n)) for n in range(1, 10_001)])
    assert st.last_logged_seq() == 10_000
    paged: list[int] = []
    after = 0
    while page := st.events_after(["demo.order"], after, 50):
        paged += seqs(page)
        after = page[-1].seq
    assert paged == list(range(100, 10_001, 100))
    assert seqs(st.events_after(["demo.message", "demo.order"], 9_995, 10)) == list(range(9_996, 10_001))


def test_last_logged_seq(st: Store) -> None:
    assert st.last_logged_seq() == 0
    st.log_events([ev(5), ev(3)])
    assert st.last_logged_seq() == 5
    assert st.drop_events("demo.message", before=float("inf"), keep_at_most=None) == 2
    assert st.last_logged_seq() == 5, "dropped events were logged all the same"


# -- retention ----------------------------------------------------------------------------------


def test_drop_events_by_age(st: Store) -> None:
    st.log_events([ev(n, at=float(n * 10)) for n in range(1, 7)] + [ev(7, "demo.order", at=1.0)])
    assert st.dropped_through(["demo.message"]) == 0
    assert st.drop_events("demo.message", before=35.0, keep_at_most=None) == 3  # logged at 10, 20, 30
    assert seqs(st.events_after(["demo.message"], 0, 100)) == [4, 5, 6]
    assert seqs(st.events_after(["demo.order"], 0, 100)) == [7], "other classes are not touched"
    assert st.drop_events("demo.message", before=35.0, keep_at_most=None) == 0
    assert st.dropped_through(["demo.message"]) == 3 and st.dropped_through(["demo.order"]) == 0


def test_drop_events_by_count(st: Store) -> None:
    st.log_events([ev(n, at=float(n)) for n in range(1, 11)] + [ev(11, "demo.order", at=1.0)])
    assert st.drop_events("demo.message", before=0.0, keep_at_most=4) == 6
    assert seqs(st.events_after(["demo.message", "demo.order"], 0, 100)) == [7, 8, 9, 10, 11]
    assert st.drop_events("demo.message", before=0.0, keep_at_most=4) == 0
    assert st.drop_events("demo.message", before=0.0, keep_at_most=10) == 0
    assert st.dropped_through(["demo.message"]) == 6
    assert st.drop_events("demo.message", before=8.5, keep_at_most=3) == 2, "by age beyond the count"
    assert seqs(st.events_after(["demo.message"], 0, 100)) == [9, 10]
    assert st.drop_events("demo.message", before=0.0, keep_at_most=0) == 2
    assert st.events_after(["demo.message"], 0, 100) == [] and st.dropped_through(["demo.message"]) == 10
    assert st.drop_events("demo.message", before=0.0, keep_at_most=0) == 0


def test_drop_events_at_most_limit_per_call_oldest_first(st: Store) -> None:
    st.log_events([ev(n, at=float(n)) for n in range(1, 26)])
    assert st.drop_events("demo.message", before=100.0, keep_at_most=None, limit=10) == 10
    assert st.events_after(["demo.message"], 0, 1)[0].seq == 11 and st.dropped_through(["demo.message"]) == 10
    assert st.drop_events("demo.message", before=18.5, keep_at_most=5, limit=4) == 4
    assert st.events_after(["demo.message"], 0, 1)[0].seq == 15
    assert st.drop_events("demo.message", before=18.5, keep_at_most=5, limit=100) == 6  # 15..20: the newest 5 stay
    assert seqs(st.events_after(["demo.message"], 0, 100)) == [21, 22, 23, 24, 25]
    assert st.drop_events("demo.message", before=100.0, keep_at_most=None, limit=0) == 0


def test_dropped_through_is_the_highest_over_the_classes(st: Store) -> None:
    st.log_events([ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "c"), ev(5, "b")])
    st.drop_events("a", before=float("inf"), keep_at_most=None)
    st.drop_events("b", before=0.0, keep_at_most=1)
    assert st.dropped_through(["a"]) == 3 and st.dropped_through(["b"]) == 2
    assert st.dropped_through(["a", "b", "c"]) == 3 and st.dropped_through(["b", "c"]) == 2
    assert st.dropped_through(["c", "d"]) == 0 and st.dropped_through([]) == 0
    st.log_events([ev(6, "b")])
    st.drop_events("b", before=float("inf"), keep_at_most=None)
    assert st.dropped_through(["b"]) == 6 and st.dropped_through(["a", "b"]) == 6


# -- persistent subscriptions ------------------------------------------------------------------------


def test_persistent_subscriptions_are_saved_found_and_deleted(st: Store) -> None:
    p = PersistentSubscription(
        id="p1", owner="token:" + "ab" * 32, user=None, query='demo.message where room = "a" or demo.order',
        key="k1", parts=['demo.message where room = "a"', "demo.order"],
        filters={"demo.message": None, "demo.order": "user = $user"}, classes=["demo.order", "demo.message"],
        last_seq=42, created=1234.5)
    assert st.persistent("p1") is None and st.all_persistent() == []
    st.save_persistent(p)
    assert st.persistent("p1") == p
    with pytest.raises(DuplicateId):
        st.save_persistent(replace(p, owner="user:mallory"))
    assert st.persistent("p1") == p
    assert st.delete_persistent("p1") == p
    assert st.persistent("p1") is None and st.delete_persistent("p1") is None
    assert st.persistent_classes() == set() and st.persistent_for_class("demo.order") == []
    st.save_persistent(p)  # the id is free again
    assert st.all_persistent() == [p]


def test_persistent_subscriptions_by_owner_and_class(st: Store) -> None:
    b = sub("b", owner="user:alice", classes=("demo.message", "demo.order"), created=20.0)
    a = sub("a", owner="user:bob", classes=("demo.order",), created=30.0)
    c = sub("c", owner="token:" + "00" * 32, classes=("demo.message",), created=10.0)
    d = sub("d", owner="user:alice", classes=("demo.other",), created=20.0)
    for s in (b, a, c, d):
        st.save_persistent(s)
    assert st.all_persistent() == [c, b, d, a], "oldest first, then by id"
    assert st.persistent_of(["user:alice"]) == [b, d]
    assert st.persistent_of(["user:alice", "token:" + "00" * 32]) == [c, b, d]
    assert st.persistent_of(["user:nobody"]) == [] and st.persistent_of([]) == []
    assert st.persistent_for_class("demo.message") == [c, b]
    assert st.persistent_for_class("demo.order") == [b, a]
    assert st.persistent_for_class("demo.nothing") == []
    assert st.persistent_classes() == {"demo.message", "demo.order", "demo.other"}
    st.delete_persistent("d")
    assert st.persistent_classes() == {"demo.message", "demo.order"}
    st.delete_persistent("a")
    assert st.persistent_for_class("demo.order") == [b]
    assert st.persistent_classes() == {"demo.message", "demo.order"}


def test_persistent_subscriptions_are_counted_by_user(st: Store) -> None:
    st.save_persistent(sub("a1", owner="user:alice"))
    st.save_persistent(replace(sub("a2", owner="token:" + "11" * 32), user="alice"))  # by one of alice's clients
    st.save_persistent(sub("b1", owner="user:bob"))
    st.save_persistent(sub("n1", owner="token:" + "22" * 32))
    st.save_persistent(sub("n2", owner="token:" + "33" * 32))
    assert (st.count_persistent("alice"), st.count_persistent("bob"), st.count_persistent("carol")) == (2, 1, 0)
    assert st.count_persistent(None) == 2, "those of anonymous clients"
    st.delete_persistent("n1")
    assert st.count_persistent(None) == 1


def test_ack_only_moves_forward(st: Store) -> None:
    st.save_persistent(sub("p", last_seq=10))
    assert st.ack("p", 15) == 15
    assert st.ack("p", 12) == 15, "never back"
    assert st.ack("p", 15) == 15
    assert st.ack("p", 2**53) == 2**53
    assert st.persistent("p") == sub("p", last_seq=2**53)
    with pytest.raises(KeyError):
        st.ack("unknown", 1)


def test_persistent_subscriptions_are_shared_by_store_objects(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    first.save_persistent(sub("p"))
    assert second.ack("p", 7) == 7
    assert first.persistent("p") == sub("p", last_seq=7)
    with pytest.raises(DuplicateId):
        second.save_persistent(sub("p"))


# -- metrics -----------------------------------------------------------------------------


def test_saved_metrics_only_rise_and_are_kept_per_component(backend: Backend) -> None:
    st = backend.open()
    st.save_metrics("components-1", [("gateway_events_accepted_total", '{"event":"demo.message"}', 5.0),
                                     ("gateway_logins_total", "{}", 2.0)])
    st.save_metrics("components-2", [("gateway_events_accepted_total", '{"event":"demo.message"}', 3.0)])
    # A lower value (a process that lost its last seconds) never lowers what was saved; a higher one raises it.
    st.save_metrics("components-1", [("gateway_events_accepted_total", '{"event":"demo.message"}', 4.0),
                                     ("gateway_logins_total", "{}", 7.5)])
    st.save_metrics("components-1", [])
    again = backend.open()  # another connection (another process) sees the same
    assert again.saved_metrics() == {
        "components-1": {("gateway_events_accepted_total", '{"event":"demo.message"}'): 5.0,
                         ("gateway_logins_total", "{}"): 7.5},
        "components-2": {("gateway_events_accepted_total", '{"event":"demo.message"}'): 3.0},
    }


def test_a_schema_migrated_by_a_newer_gateway_says_whether_this_one_may_run_beside_it(
        postgresql_admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """A rolling upgrade of a cluster: the newest migration says from which schema version gateways may
    run on it (``RUNS_WITH_FROM``); an older gateway outside that refuses to start, saying what to do."""
    schema = f"contract_{uuid.uuid4().hex[:16]}"
    known = len(pgstore.MIGRATIONS)
    try:
        pgstore.PostgresStore(POSTGRESQL_URL, schema=schema).close()
        rows = postgresql_admin.execute(
            f"SELECT version, runs_with_from FROM {schema}.schema_version WHERE version >= 5 ORDER BY version").fetchall()
        assert rows == [(v, pgstore.RUNS_WITH_FROM[v - 1]) for v in range(5, known + 1)]
        # A newer gateway's migration that older ones may run beside (it only adds).
        postgresql_admin.execute(f"INSERT INTO {schema}.schema_version VALUES (%s, 0, %s)", (known + 1, known))
        store = pgstore.PostgresStore(POSTGRESQL_URL, schema=schema)
        assert store.take(1) == 1
        store.close()
        # And one that changes what older gateways read or write.
        postgresql_admin.execute(f"INSERT INTO {schema}.schema_version VALUES (%s, 0, %s)", (known + 2, known + 2))
        with pytest.raises(pgstore.SchemaTooNew, match=f"version {known + 2}.*upgrade this node"):
            pgstore.PostgresStore(POSTGRESQL_URL, schema=schema)
    finally:
        postgresql_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
