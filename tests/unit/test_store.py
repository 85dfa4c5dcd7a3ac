"""The SQLite store, on a temporary file (a local file, no sockets)."""

import sqlite3
from pathlib import Path

from components.sequence import Sequencer
from components.store import MIGRATIONS, SqliteStore


def test_counter_survives_reopening_and_is_shared(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    first, second = SqliteStore(path), SqliteStore(path)
    a = Sequencer(first.take, block=100)
    used = [a.next() for _ in range(3)]
    b = Sequencer(second.take, block=100)
    assert b.next() == 101
    first.close()
    second.close()
    reopened = SqliteStore(path)
    assert reopened.taken() == 200
    assert Sequencer(reopened.take).next() > max(used)
    reopened.close()


def test_ids_are_remembered_and_forgotten_after_the_window(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    assert store.accepted("a") is None
    store.remember("a", "demo.message", 7, at=100.0)
    store.remember("b", "demo.order", 8, at=200.0)
    store.remember("a", "demo.order", 9, at=300.0)  # the first acceptance wins
    assert store.accepted("a") == ("demo.message", 7)
    assert store.forget_before(150.0) == 1
    assert store.accepted("a") is None and store.accepted("b") == ("demo.order", 8)
    store.close()


def test_the_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SqliteStore(path).close()
    SqliteStore(path).close()  # a second open migrates nothing
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)


def test_query_grants_by_session(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.save_query("k1", 'demo.message where room = "a"')
    store.save_query("k1", "ignored: the first text stays")
    store.grant("sub-1", 11, "k1")
    store.grant("sub-2", 22, "k1")
    assert store.query_text("k1") == 'demo.message where room = "a"' and store.query_text("k2") is None
    assert store.granted(11, "k1") and not store.granted(11, "k2") and not store.granted(33, "k1")
    assert store.subscriptions_of(11) == [("sub-1", "k1", 'demo.message where room = "a"')]
    assert store.revoke("sub-1", 22) is None, "only the owner may revoke"
    assert store.revoke("sub-1", 11) == "k1" and not store.granted(11, "k1")
    store.grant("sub-3", 33, "k1")
    store.revoke_all_but({22})
    assert store.granted(22, "k1") and not store.granted(33, "k1")
    store.revoke_session(22)
    assert not store.granted(22, "k1")
    store.close()


def test_many_ids_are_remembered_in_one_go(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.remember_many([("a", "demo.message", 1), ("b", "demo.order", 2), ("a", "demo.order", 3)])
    assert store.accepted("a") == ("demo.message", 1) and store.accepted("b") == ("demo.order", 2)
    store.close()
