"""Store work stays off the reactor thread: the guard, what a store that does not answer becomes, the
timeouts' configuration. No reactor runs here: the reactor's thread is this one, marked as Twisted
marks it when a reactor starts (``threadable.registerAsIOThread``)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from twisted.python import threadable
from twisted.python.failure import Failure

from components.config import StoreConfig, parse_config
from components.exceptions import ConfigError, StoreOnReactorThread, StoreUnavailable
from components.store.sqlite import SqliteStore
from components.store.thread import Inline, unavailable


@pytest.fixture
def reactor_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This thread is the reactor's, as when a reactor runs here."""
    monkeypatch.setattr(threadable, "ioThread", threadable.getThreadID())
    yield


def elsewhere(work: Callable[[], Any]) -> Any:
    """``work()`` on a thread of its own (as on a store thread); its result, or raise what it raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_a_store_statement_on_the_reactor_thread_is_refused(tmp_path: Path, reactor_thread: None) -> None:
    store = elsewhere(lambda: SqliteStore(tmp_path / "s.sqlite3"))
    try:
        with pytest.raises(StoreOnReactorThread, match="reactor thread"):
            store.take(1)
        refused: list[Failure] = []
        Inline(store).run(lambda s: s.taken()).addErrback(refused.append)
        assert refused and refused[0].check(StoreOnReactorThread), "inline on the reactor thread: no way around"
        assert elsewhere(lambda: store.take(1)) == 1, "on another thread (a store thread): fine"
    finally:
        store.close()  # closing sends nothing: allowed anywhere


def test_opening_a_store_on_the_reactor_thread_is_refused(tmp_path: Path, reactor_thread: None) -> None:
    with pytest.raises(StoreOnReactorThread):
        SqliteStore(tmp_path / "s.sqlite3")


def test_without_a_running_reactor_every_thread_may_use_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")  # the command line, tools, unit tests
    try:
        assert store.take(2) == 2
    finally:
        store.close()


def test_a_store_that_does_not_answer_fails_the_work_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SqliteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    quick = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        failures: list[Failure] = []
        Inline(SqliteStore.__new__(SqliteStore)).run(lambda s: quick.execute("BEGIN IMMEDIATE")).addErrback(
            failures.append)
        assert failures and failures[0].check(StoreUnavailable), failures
        assert "locked" in str(failures[0].value)
        other: list[Failure] = []
        Inline(SqliteStore.__new__(SqliteStore)).run(lambda s: quick.execute("SELEC 1")).addErrback(other.append)
        assert other and other[0].check(sqlite3.OperationalError), "a bug of ours stays what it is"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        quick.close()


def test_what_a_postgresql_error_amounts_to() -> None:
    timed_out = unavailable(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert isinstance(timed_out, StoreUnavailable) and "store.statement_timeout" in str(timed_out)
    lost = unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert isinstance(lost, StoreUnavailable) and "cannot be reached" in str(lost)
    assert unavailable(psycopg.errors.UniqueViolation("duplicate key")) is None, "refused, not unavailable"
    assert unavailable(KeyError("p_x")) is None


def test_the_timeouts_are_configured_with_their_limits_named() -> None:
    cfg = StoreConfig()
    assert (cfg.statement_timeout, cfg.connect_timeout) == (5.0, 5)
    assert parse_config({"store": {"statement_timeout": 0.5, "connect_timeout": 2}}).store.statement_timeout == 0.5
    for bad, named in [({"statement_timeout": 0}, "store.statement_timeout"),
                       ({"statement_timeout": 7200}, "store.statement_timeout"),
                       ({"connect_timeout": 1}, "store.connect_timeout"),
                       ({"connect_timeout": 2.5}, "store.connect_timeout")]:
        with pytest.raises(ConfigError, match=named.replace(".", r"\.")) as err:
            parse_config({"store": bad})
        assert "2 (libpq's minimum)" in str(err.value) or "0.1 to 3600" in str(err.value) or "integer" in str(err.value)
