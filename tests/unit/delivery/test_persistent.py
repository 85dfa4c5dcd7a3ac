"""Persistent subscriptions without a router: the book, replay pages, retention and truncation (a temp store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.events import Registry
from components.delivery.persistent import NotYours, PersistentBook, may_receive, owners, token_owner
from components.delivery.sessions import SessionInfo
from components.store.base import LoggedEvent
from components.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[3]
REGISTRY = Registry.load(["examples.demo_events"], [str(REPO / "examples" / "demo_events.yaml"),
                                                  str(REPO / "tests" / "integration" / "identity_events.yaml")])
ALICE = SessionInfo(1, "alice", "user", "alice", ("red",), "ct_" + "a" * 32)
ANON = SessionInfo(2, "X", "anonymous", None, (), "ct_" + "b" * 32)


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqliteStore(tmp_path / "s.sqlite3")
    yield s
    s.close()


def log(store: SqliteStore, seq: int, event: str, data: dict[str, Any], audience: Any = None,
        at: float = 1_000_000.0) -> None:
    store.log_events([LoggedEvent(seq, event, f"id-{seq}", "2026-11-28T10:00:00.000Z", json.dumps(data),
                                  None if audience is None else json.dumps(audience), at)])


def message(room: str) -> dict[str, str]:
    return {"room": room, "text": "t", "author": "a"}


def book(store: SqliteStore, clock: Clock | None = None) -> PersistentBook:
    return PersistentBook(store, lambda: REGISTRY, lambda: 0, clock or Clock())


def subscribe(b: PersistentBook, who: SessionInfo, parts: list[str], classes: list[str]) -> Any:
    return b.create(owners(who)[0], who.user, parts[0], "k", parts, {c: REGISTRY.get(c).row_filter for c in classes},
                    classes)


def test_replay_pages_through_what_the_query_selects_in_order(store: SqliteStore) -> None:
    b = book(store)
    sub = subscribe(b, ALICE, ['demo.message where room = "a"'], ["demo.message"])
    for seq in range(1, 41):
        log(store, seq, "demo.message", message("a" if seq % 2 else "b"))
    first = b.replay(ALICE, sub, 0, limit=7)
    assert [e["seq"] for e in first["events"]] == [1, 3, 5, 7, 9, 11, 13] and first["more"]
    assert first["events"][0] == {"event": "demo.message", "id": "id-1", "seq": 1,
                                  "time": "2026-11-28T10:00:00.000Z", "data": message("a")}
    seqs: list[int] = []
    after = 0
    while True:
        page = b.replay(ALICE, sub, after, limit=6)
        seqs += [e["seq"] for e in page["events"]]
        if not page["more"]:
            break
        after = page["next_after"]
    assert seqs == list(range(1, 41, 2)) and not page["truncated"]


def test_replay_applies_visibility_and_audience_now(store: SqliteStore) -> None:
    b = book(store)
    sub = subscribe(b, ALICE, ["demo.message"], ["demo.message"])
    log(store, 1, "demo.message", message("x"), {"users": ["alice"]})
    log(store, 2, "demo.message", message("x"), {"users": ["bob"]})
    log(store, 3, "demo.message", message("x"), {"roles": ["red"]})
    log(store, 4, "demo.message", message("x"), {"roles": ["user"]})
    log(store, 5, "demo.message", message("x"))
    assert [e["seq"] for e in b.replay(ALICE, sub, 0)["events"]] == [1, 3, 4, 5]
    assert not may_receive(ANON, REGISTRY, "demo.order", None)
    assert may_receive(ANON, REGISTRY, "demo.message", {"roles": ["anonymous"]})


def test_truncated_says_retention_dropped_what_was_asked_for(store: SqliteStore) -> None:
    clock = Clock()
    b = book(store, clock)
    sub = subscribe(b, ALICE, ["demo.message"], ["demo.message"])
    log(store, 1, "demo.message", message("x"), at=clock.now - 25 * 3600)  # past the 24 h retention
    log(store, 2, "demo.message", message("x"), at=clock.now)
    assert b.retain(None) == 1
    page = b.replay(ALICE, sub, 0)
    assert [e["seq"] for e in page["events"]] == [2] and page["truncated"]
    assert not b.replay(ALICE, sub, 1)["truncated"], "nothing after seq 1 was dropped"
    log(store, 3, "demo.message", message("x"))
    log(store, 4, "demo.message", message("x"))
    assert b.retain(2) == 1, "at most 2 kept per class"
    assert b.replay(ALICE, sub, 1)["truncated"]


def test_in_a_cluster_classes_without_a_persistent_subscription_stay_log_retention_the_others_at_least(
        store: SqliteStore) -> None:
    """Every event is in a cluster's shared log: one of a class no persistent subscription selects for
    ``cluster.log_retention`` (``transient``), one of a subscribed class for its retention (24 h for
    demo.message) but never less than that."""
    clock = Clock()
    b = book(store, clock)
    subscribe(b, ALICE, ["demo.message"], ["demo.message"])
    log(store, 1, "demo.order", {}, at=clock.now - 301)  # no persistent subscription: past 300 s
    log(store, 2, "demo.order", {}, at=clock.now - 299)
    log(store, 3, "demo.message", {}, at=clock.now - 3600)  # subscribed: kept by its class's 24 h
    log(store, 4, "demo.message", {}, at=clock.now - 25 * 3600)
    assert b.retain(None, transient=300) == 2
    assert [r.seq for r in store.events_after(["demo.order", "demo.message"], 0, 10)] == [2, 3]
    # A retention shorter than the cluster's log_retention is raised to it (a lagging node still reads it).
    log(store, 5, "demo.message", {}, at=clock.now - 100_000)
    assert b.retain(None, transient=200_000) == 0


def test_only_the_owner_gets_at_a_subscription(store: SqliteStore) -> None:
    b = book(store)
    sub = subscribe(b, ALICE, ["demo.message"], ["demo.message"])
    assert sub.owner == token_owner(ALICE.client_token or "") and b.get(ALICE, sub.id) == sub
    for who in (ANON, SessionInfo(3, "bob", "user", "bob", (), "ct_" + "c" * 32)):
        with pytest.raises(NotYours):
            b.get(who, sub.id)
    with pytest.raises(NotYours):
        b.get(ALICE, 42)
    assert b.ack(ALICE, sub.id, 9) == 9 and b.ack(ALICE, sub.id, 3) == 9
    with pytest.raises(ValueError):
        b.ack(ALICE, sub.id, -1)


def test_a_class_whose_row_filter_changed_is_not_replayed(store: SqliteStore, tmp_path: Path) -> None:
    b = book(store)
    sub = subscribe(b, ALICE, ['test.notice where user = "alice"'], ["test.notice"])
    log(store, 1, "test.notice", {"user": "alice", "text": "t"})
    assert len(b.replay(ALICE, sub, 0)["events"]) == 1
    changed = tmp_path / "changed.yaml"
    changed.write_text((REPO / "tests" / "integration" / "identity_events.yaml").read_text()
                       .replace('row_filter: "user = $user"', 'row_filter: "text = $user"'))
    other = PersistentBook(store, lambda: Registry.load([], [str(changed)]), lambda: 0, Clock())
    assert other.replay(ALICE, sub, 0)["events"] == []


def test_a_subscription_lives_as_long_as_its_token(store: SqliteStore) -> None:
    from components.auth.credentials import digest

    b = book(store)
    kept = subscribe(b, ALICE, ["demo.message"], ["demo.message"])
    orphan = subscribe(b, ANON, ["demo.message"], ["demo.message"])
    for_user = b.create("user:erin", "erin", "demo.message", "k", ["demo.message"], {"demo.message": None},
                        ["demo.message"])
    store.save_token(digest(ALICE.client_token or ""), "user:alice", 2e9)  # ANON's token: never seen / pruned
    assert [s.id for s in b.forget_orphans()] == [orphan.id]
    assert {s.id for s in b.everyone()} == {kept.id, for_user.id}


def test_a_selective_replay_over_a_long_log_stops_early_and_says_where_to_go_on(store: SqliteStore,
                                                                                 monkeypatch: Any) -> None:
    import components.delivery.persistent as persistent

    monkeypatch.setattr(persistent, "MAX_SCAN", 100)
    b = book(store)
    sub = subscribe(b, ALICE, ['demo.message where room = "needle"'], ["demo.message"])
    for seq in range(1, 301):
        log(store, seq, "demo.message", message("needle" if seq == 250 else "hay"))
    page = b.replay(ALICE, sub, 0, limit=5)  # reads 64 rows at a time: stops after 128
    assert page["events"] == [] and page["more"] and 100 <= page["next_after"] < 250
    pages = [page]
    while pages[-1]["more"]:
        pages.append(b.replay(ALICE, sub, pages[-1]["next_after"], limit=5))
    assert [e["seq"] for p in pages for e in p["events"]] == [250] and pages[-1]["next_after"] == 300
