"""Persistent subscriptions against a real node: kept with the client token, replayed from the event log."""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, GatewayNode
from tests.integration.test_continuous_service import container_pids, wait_for
from tests.support.wamp import WampClient

LOBBY = "demo.message where room = 'persist'"


def message(text: str, room: str = "persist") -> dict[str, str]:
    return {"room": room, "text": text, "author": "test"}


def post_batch(node: GatewayNode, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = node.request("POST", "/events/batch", json.dumps({"events": events}).encode(),
                     {"Authorization": f"Bearer {API_KEY}"})
    assert r.status == 200, r.body
    results: list[dict[str, Any]] = r.body["results"]
    assert all("seq" in result for result in results), results
    return results


def replay_all(client: WampClient, subscription_id: str, after_seq: int, limit: int = 500) -> list[dict[str, Any]]:
    """Every page of a replay, as a client would ask for them."""
    events: list[dict[str, Any]] = []
    while True:
        page = client.call("gateway.replay", subscription_id, after_seq, limit)
        assert page["truncated"] is False
        events += page["events"]
        if not page["more"]:
            return events
        after_seq = page["next_after"]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_node(request: pytest.FixtureRequest) -> GatewayNode:
    """The shared node (SQLite store) or the module's PostgreSQL one."""
    return request.getfixturevalue("node" if request.param == "sqlite" else "pg_node")  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_own_node(request: pytest.FixtureRequest) -> GatewayNode:
    return request.getfixturevalue("own_node" if request.param == "sqlite" else "own_pg_node")  # type: ignore[no-any-return]


def test_a_client_that_comes_back_with_its_token_misses_nothing(any_node: GatewayNode) -> None:
    node = any_node
    with WampClient(node.ws_url) as first:
        token = first.authextra_welcome["client_token"]
        sub = first.call("gateway.subscribe", LOBBY, persistent=True)
        assert sub["persistent"] is True and sub["id"].startswith("p_") and isinstance(sub["last_seq"], int)
        first.subscribe(sub["topic"])
        live = node.post_event("demo.message", message("while here")).body["seq"]
        assert first.take(1)[0]["seq"] == live
        assert first.call("gateway.ack", sub["id"], live) == {"id": sub["id"], "last_seq": live}
    # Away: 500 events, and others it must not get.
    sent = post_batch(node, [{"event": "demo.message", "data": message(f"missed {i}")} for i in range(500)])
    post_batch(node, [{"event": "demo.message", "data": message("other room", room="elsewhere")}])
    with WampClient(node.ws_url, authextra={"client_token": token}) as again:
        assert again.authextra_welcome["client_token"] == token
        (listed,) = [s for s in again.call("gateway.subscriptions") if s["persistent"]]
        assert (listed["id"], listed["topic"], listed["last_seq"]) == (sub["id"], sub["topic"], live)
        again.subscribe(listed["topic"])  # first the live topic, then the replay: no gap
        during = node.post_event("demo.message", message("during replay")).body["seq"]
        replayed = replay_all(again, listed["id"], listed["last_seq"], limit=170)
        live_now = again.take(1)
        seen: dict[int, dict[str, Any]] = {}
        for envelope in replayed + live_now:  # the client's merge: drop duplicates by seq
            seen.setdefault(envelope["seq"], envelope)
        seqs = sorted(seen)
        assert seqs == [r["seq"] for r in sent] + [during]
        assert [seen[s]["data"]["text"] for s in seqs[:3]] == ["missed 0", "missed 1", "missed 2"]
        assert again.call("gateway.ack", listed["id"], during)["last_seq"] == during
        assert again.call("gateway.ack", listed["id"], live)["last_seq"] == during, "the cursor never goes back"


def test_subscribing_again_to_the_same_query_resumes_the_same_subscription(node: GatewayNode) -> None:
    query = "demo.message where room = 'resume'"
    with WampClient(node.ws_url) as first:
        token = first.authextra_welcome["client_token"]
        made = first.call("gateway.subscribe", query, persistent=True)
        assert made["resumed"] is False
        seq = node.post_event("demo.message", message("one", room="resume")).body["seq"]
        first.call("gateway.ack", made["id"], seq)
        # The same query written differently is the same subscription; a plain one is not persistent.
        again_here = first.call("gateway.subscribe", "demo.message where (room = \"resume\")", persistent=True)
        assert (again_here["id"], again_here["resumed"], again_here["last_seq"]) == (made["id"], True, seq)
    missed = node.post_event("demo.message", message("two", room="resume")).body["seq"]
    with WampClient(node.ws_url, authextra={"client_token": token}) as back:
        resumed = back.call("gateway.subscribe", query, persistent=True)
        assert (resumed["id"], resumed["topic"], resumed["resumed"], resumed["last_seq"]) == (
            made["id"], made["topic"], True, seq)
        back.subscribe(resumed["topic"])  # this session was granted the topic by the subscribe
        assert [e["seq"] for e in replay_all(back, resumed["id"], resumed["last_seq"])] == [missed]
        assert len([s for s in back.call("gateway.subscriptions") if s["persistent"]]) == 1
    with WampClient(node.ws_url) as stranger:  # another token: a subscription of its own
        other = stranger.call("gateway.subscribe", query, persistent=True)
        assert other["id"] != made["id"] and other["resumed"] is False


def test_only_the_token_that_made_it_sees_it(node: GatewayNode) -> None:
    with node.client("alice") as alice:
        sub = alice.call("gateway.subscribe", "demo.order", persistent=True)
        alice_token = alice.authextra_welcome["client_token"]
    with node.client("bob", authextra={"client_token": alice_token}) as thief, WampClient(node.ws_url) as other:
        for c in (thief, other):
            assert not [s for s in c.call("gateway.subscriptions") if s["persistent"]]
            for procedure, args in (("gateway.replay", (sub["id"], 0)), ("gateway.ack", (sub["id"], 1)),
                                    ("gateway.unsubscribe", (sub["id"],))):
                with pytest.raises(ApplicationError) as exc:
                    c.call(procedure, *args)
                assert exc.value.error == "gateway.error.no_such_subscription", procedure
            with pytest.raises(ApplicationError) as exc:
                c.subscribe(sub["topic"])
            assert exc.value.error == "wamp.error.not_authorized"


def test_replay_gives_only_what_live_delivery_would(any_node: GatewayNode) -> None:
    node = any_node
    with node.client("alice") as alice:
        token = alice.authextra_welcome["client_token"]
        notices = alice.call("gateway.subscribe", "test.notice", persistent=True)
        messages = alice.call("gateway.subscribe", "demo.message where room = 'aud'", persistent=True)
    results = post_batch(node, [
        {"event": "test.notice", "data": {"user": "alice", "text": "mine"}},
        {"event": "test.notice", "data": {"user": "bob", "text": "not mine"}},
        {"event": "demo.message", "data": message("for alice", room="aud"), "audience": {"users": ["alice"]}},
        {"event": "demo.message", "data": message("for bob", room="aud"), "audience": {"users": ["bob"]}},
        {"event": "demo.message", "data": message("for staff", room="aud"), "audience": {"roles": ["staff"]}},
        {"event": "demo.message", "data": message("for all", room="aud")},
    ])
    with node.client("alice", authextra={"client_token": token}) as alice:
        got = alice.call("gateway.replay", notices["id"], notices["last_seq"])
        assert [e["data"]["text"] for e in got["events"]] == ["mine"]
        got = alice.call("gateway.replay", messages["id"], messages["last_seq"])
        assert [e["data"]["text"] for e in got["events"]] == ["for alice", "for all"]
        assert [e["seq"] for e in got["events"]] == [results[2]["seq"], results[5]["seq"]]
        envelope = got["events"][0]
        assert set(envelope) == {"event", "id", "seq", "time", "data"} and envelope["event"] == "demo.message"


def test_a_persistent_subscription_ends_when_unsubscribed(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as c:
        sub = c.call("gateway.subscribe", "demo.message where room = 'gone'", persistent=True)
        c.call("gateway.unsubscribe", sub["id"])
        assert not [s for s in c.call("gateway.subscriptions") if s["id"] == sub["id"]]
        with pytest.raises(ApplicationError) as exc:
            c.call("gateway.replay", sub["id"], 0)
        assert exc.value.error == "gateway.error.no_such_subscription"


@pytest.mark.parametrize("args,where", [
    (("p_nope", 0), "no persistent subscription"),
    ((None, 0), "id must be a string"),
    (("{id}", -1), "after_seq must be a whole number"),
    (("{id}", "3"), "after_seq must be a whole number"),
    (("{id}", 2**63 - 1, 2**63 - 1), None),
    (("{id}", 0, 0), None),
])
def test_bad_replay_arguments(node: GatewayNode, args: tuple[Any, ...], where: str | None) -> None:
    with WampClient(node.ws_url) as c:
        sub = c.call("gateway.subscribe", "demo.message where room = 'args'", persistent=True)
        filled = tuple(sub["id"] if a == "{id}" else a for a in args)
        if where is None:
            assert c.call("gateway.replay", *filled)["events"] == []
            return
        with pytest.raises(ApplicationError) as exc:
            c.call("gateway.replay", *filled)
        assert where in exc.value.args[0]


def test_persistent_subscriptions_survive_a_restart_of_the_whole_node(any_own_node: GatewayNode) -> None:
    own_node = any_own_node
    with own_node.client("alice") as alice:
        token = alice.authextra_welcome["client_token"]
        sub = alice.call("gateway.subscribe", "demo.order where amount > 10", persistent=True)
    order = {"order_id": 1, "amount": 50.0, "country": "AR", "tags": [], "customer": {"id": 1, "name": "C"}}
    sent = [own_node.post_event("demo.order", {**order, "order_id": i}).body["seq"] for i in range(5)]
    own_node.stop()
    own_node.start()
    with own_node.client("alice", authextra={"client_token": token}) as alice:
        (listed,) = [s for s in alice.call("gateway.subscriptions") if s["persistent"]]
        assert listed["id"] == sub["id"]
        alice.subscribe(listed["topic"])
        after = own_node.post_event("demo.order", {**order, "order_id": 99}).body["seq"]
        replayed = [e["seq"] for e in alice.call("gateway.replay", sub["id"], listed["last_seq"])["events"]]
        assert replayed == sent + [after]
        assert alice.take(1)[0]["seq"] == after


def test_a_sigkilled_dispatcher_loses_no_accepted_event_of_a_persistent_subscription(
        any_own_node: GatewayNode) -> None:
    own_node = any_own_node
    with WampClient(own_node.ws_url) as c:
        token = c.authextra_welcome["client_token"]
        sub = c.call("gateway.subscribe", "demo.message where room = 'kill'", persistent=True)
    pids = container_pids(own_node)
    answers: list[Any] = []
    stop = threading.Event()

    def post_forever() -> None:
        i = 0
        while not stop.is_set():
            try:
                answers.append(own_node.post_event("demo.message", message(str(i), room="kill")))
            except OSError as exc:  # a connection to the killed bridge was cut
                answers.append(exc)
            i += 1

    poster = threading.Thread(target=post_forever)
    poster.start()
    try:
        wait_for(lambda: len(answers) >= 30, what="30 events posted before the kill")
        os.kill(pids["components-1"], signal.SIGKILL)  # Crossbar does not restart it
        count_at_kill = len(answers)
        wait_for(lambda: len(answers) >= count_at_kill + 50, what="50 more events after the kill")
    finally:
        stop.set()
        poster.join(30)
    accepted = [a.body["seq"] for a in answers if not isinstance(a, Exception) and a.status == 202]
    assert len(accepted) >= 70
    with WampClient(own_node.ws_url, authextra={"client_token": token}) as again:
        replayed = [e["seq"] for e in replay_all(again, sub["id"], sub["last_seq"])]
    assert set(accepted) <= set(replayed), "every 202 is in the replay"
    assert replayed == sorted(set(replayed)), "in seq order, each once"


def subscriptions_api(node: GatewayNode, method: str, path: str, doc: Any = None) -> Any:
    body = None if doc is None else json.dumps(doc).encode()
    return node.request(method, path, body, {"Authorization": f"Bearer {API_KEY}"})


def test_a_web_app_subscribes_a_user_who_is_not_connected(node: GatewayNode) -> None:
    r = subscriptions_api(node, "POST", "/subscriptions",
                          {"user": "erin", "query": "test.notice", "persistent": True})
    assert r.status == 201, r.body
    made = r.body
    assert made["user"] == "erin" and made["owner"] == "user" and made["query"] == "test.notice"
    sent = [node.post_event("test.notice", {"user": u, "text": "hello"}).body["seq"] for u in ("erin", "fred")]
    listed = subscriptions_api(node, "GET", "/subscriptions?user=erin").body["subscriptions"]
    assert [s["id"] for s in listed] == [made["id"]]
    assert made["id"] in [s["id"] for s in subscriptions_api(node, "GET", "/subscriptions?event=test.notice")
                          .body["subscriptions"]]
    with node.client("erin") as erin:  # any client of erin's, with no token of before
        (mine,) = [s for s in erin.call("gateway.subscriptions") if s["persistent"]]
        assert mine["id"] == made["id"]
        erin.subscribe(mine["topic"])
        erin.subscribe("gateway.meta.subscription_removed")
        replayed = erin.call("gateway.replay", mine["id"], mine["last_seq"])["events"]
        assert [e["seq"] for e in replayed] == sent[:1], "erin's row only"
        gone = subscriptions_api(node, "DELETE", f"/subscriptions/{made['id']}")
        assert gone.status == 200 and gone.body["id"] == made["id"]
        (notice,) = erin.take(1)
        assert notice["id"] == made["id"] and "removed" in notice["reason"]
        # Its topic no longer delivers to erin's session: the next notice for erin does not come.
        node.post_event("test.notice", {"user": "erin", "text": "after"})
        end = node.post_event("demo.message", message("end", room="erin-end")).body["seq"]
        erin.subscribe(erin.call("gateway.subscribe", "demo.message where room = 'erin-end'")["topic"])
        last = node.post_event("demo.message", message("end", room="erin-end")).body["seq"]
        assert [e["seq"] for e in erin.take(1)] == [last] and end < last
    assert subscriptions_api(node, "DELETE", f"/subscriptions/{made['id']}").status == 404
    assert subscriptions_api(node, "GET", "/subscriptions?user=erin").body["subscriptions"] == []


@pytest.mark.parametrize("doc,status,where", [
    ({"user": "erin"}, 400, "missing 'query'"),
    ({"query": "demo.message"}, 400, "missing 'user'"),
    ({"user": "erin", "query": "demo.message", "persistent": False}, 400, "'persistent' must be true"),
    ({"user": "erin", "query": "demo.mesage"}, 400, "demo.message"),
    ({"user": "erin", "query": "demo.alert"}, 403, "demo.alert"),
    ({"user": "erin", "query": "demo.message", "x": 1}, 400, "unknown key(s): x"),
])
def test_bad_server_side_subscriptions_say_what(node: GatewayNode, doc: dict[str, Any], status: int,
                                                 where: str) -> None:
    r = subscriptions_api(node, "POST", "/subscriptions", doc)
    assert r.status == status and where in r.body["message"], r.body


def test_listing_takes_one_user_or_one_class(node: GatewayNode) -> None:
    assert subscriptions_api(node, "GET", "/subscriptions?user=a&event=b").status == 400
    assert subscriptions_api(node, "GET", "/subscriptions?colour=red").status == 400
    assert subscriptions_api(node, "GET", "/subscriptions").status == 200


def test_a_subscription_made_while_events_flow_misses_none_after_its_start(node: GatewayNode) -> None:
    answers: list[Any] = []
    stop = threading.Event()

    def post_forever() -> None:
        i = 0
        while not stop.is_set():
            answers.append(node.post_event("demo.message", message(f"flow {i}", room="flow")))
            i += 1

    poster = threading.Thread(target=post_forever)
    poster.start()
    subs = []
    try:
        wait_for(lambda: len(answers) >= 10, what="events flowing")
        with WampClient(node.ws_url) as c:
            token = c.authextra_welcome["client_token"]
            for _ in range(5):  # several, each made between two batches
                subs.append(c.call("gateway.subscribe", "demo.message where room = 'flow'", persistent=True))
        count = len(answers)
        wait_for(lambda: len(answers) >= count + 20, what="more events after the subscriptions")
    finally:
        stop.set()
        poster.join(30)
    accepted = [a.body["seq"] for a in answers if a.status == 202]
    with WampClient(node.ws_url, authextra={"client_token": token}) as again:
        for sub in subs:
            replayed = [e["seq"] for e in replay_all(again, sub["id"], sub["last_seq"])]
            assert replayed == [s for s in accepted if s > sub["last_seq"]], sub


def test_a_logged_event_posted_again_keeps_its_seq_and_is_logged_once(node: GatewayNode) -> None:
    with WampClient(node.ws_url) as c:
        sub = c.call("gateway.subscribe", "demo.message where room = 'again'", persistent=True)
        c.subscribe(sub["topic"])
        first = node.post_event("demo.message", message("once", room="again"), id="again-1")
        second = node.post_event("demo.message", message("once", room="again"), id="again-1")
        assert first.status == second.status == 202
        assert second.body == {"id": "again-1", "seq": first.body["seq"], "duplicate": True}
        # Its first publish was acknowledged: the duplicate is not published again (the marker is next).
        marker = node.post_event("demo.message", message("marker", room="again"), id="again-marker")
        assert [e["seq"] for e in c.take(2)] == [first.body["seq"], marker.body["seq"]]
        replayed = c.call("gateway.replay", sub["id"], sub["last_seq"])["events"]
        assert [e["seq"] for e in replayed] == [first.body["seq"], marker.body["seq"]]
