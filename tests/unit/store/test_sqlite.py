"""What is particular to the SQLite store, on a temporary file (a local file, no sockets), and the
store's configuration. The behaviour both stores share is tested once, against each, in
tests/integration/test_store_contract.py."""

import sqlite3
from pathlib import Path

import pytest

from components.config import StoreConfig, parse_config
from components.exceptions import ConfigError
from components.store.base import LoggedEvent, open_store
from components.store.sqlite import MIGRATIONS, SqliteStore


def test_a_file_from_an_older_version_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:4]:  # a file as the gateway left it before the event log
        for statement in statements:
            old.execute(statement)
    old.execute("PRAGMA user_version = 4")
    old.execute("INSERT INTO counters (name, taken) VALUES ('events', 3000)")
    old.execute("INSERT INTO event_ids (id, event, seq, accepted_at) VALUES ('a', 'demo.message', 2999, 1.0)")
    old.execute("INSERT INTO queries (key, text, parts, filters, created) VALUES ('k', 'demo.message', NULL, NULL, 1.0)")
    old.close()

    store = SqliteStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.take(1000) == 4000 and store.accepted("a") == ("demo.message", 2999)
    assert store.query_parts("k") == ["demo.message"] and store.query_filters("k") is None
    row = LoggedEvent(4000, "demo.message", "b", "2026-11-28T09:30:01.123Z", "{}", None, 2.0)
    store.log_and_remember([row])
    assert store.events_after(["demo.message"], 0, 10) == [row] and store.accepted("b") == ("demo.message", 4000)
    store.close()


def test_events_logged_before_the_published_mark_count_as_published(tmp_path: Path) -> None:
    """Whether they were is not known: a dispatcher that takes over does not publish the whole log again."""
    path = tmp_path / "s.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:-1]:
        for statement in statements:
            old.execute(statement)
    old.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    old.execute("INSERT INTO event_log (seq, event, id, time, data, audience, logged_at)"
                " VALUES (1, 'demo.message', 'old', 't', '{}', NULL, 1.0)")
    old.close()
    store = SqliteStore(path)
    store.log_events([LoggedEvent(2, "demo.message", "new", "t", "{}", None, 2.0)])
    assert [(e.seq, e.published) for e in store.events_after(["demo.message"], 0, 10)] == [(1, True), (2, False)]
    assert [e.seq for e in store.unpublished(0, 10)] == [2]
    store.close()


def test_the_file_is_in_wal_mode_and_syncs_only_when_taking(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteStore(path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.take(10)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1, "NORMAL again after taking (FULL)"
    store.close()


def test_open_store_defaults_to_the_sqlite_file(tmp_path: Path) -> None:
    store = open_store(StoreConfig(path=str(tmp_path / "sub" / "s.sqlite3")))
    assert isinstance(store, SqliteStore) and (tmp_path / "sub" / "s.sqlite3").exists()
    store.close()


# -- store.url -------------------------------------------------------------------------------


def test_a_postgresql_url_is_taken_from_the_file_or_the_environment() -> None:
    assert parse_config({}).store.url is None
    assert parse_config({"store": {"url": "postgresql://gw@db:5432/events"}}).store.url == "postgresql://gw@db:5432/events"
    cfg = parse_config({"store": {"url": "postgresql://a@b/c"}}, env={"GATEWAY_STORE_URL": "postgres://gw@db/events"})
    assert cfg.store.url == "postgres://gw@db/events"


@pytest.mark.parametrize("url", ["mysql://gw:s3cret-pw@db/events", "gw:s3cret-pw@db/events", "", "sqlite:///x.db"])
def test_a_store_url_that_is_not_postgresql_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"store": {"url": url}})
    assert "store.url" in str(err.value) and "postgresql://" in str(err.value)
    assert "s3cret-pw" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({}, env={"GATEWAY_STORE_URL": "http://gw:s3cret-pw@db"})
    assert "GATEWAY_STORE_URL" in str(err.value) and "s3cret-pw" not in str(err.value)


def test_the_store_urls_password_never_shows() -> None:
    cfg = parse_config({"store": {"url": "postgresql://gw:s3cret-pw@db:5432/events?sslmode=require"}})
    assert "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in str(cfg.store)
    assert StoreConfig.redact("postgresql://gw:s3cret-pw@db:5432/events") == "postgresql://gw:***@db:5432/events"
    assert StoreConfig.redact("postgres://gw@db/events?password=s3cret-pw&sslmode=require") == (
        "postgres://gw@db/events?password=***&sslmode=require")
    assert StoreConfig.redact("postgresql://gw:p@ss@db/events") == "postgresql://gw:***@db/events"
    assert StoreConfig.redact("postgresql://gw@db/events") == "postgresql://gw@db/events"

