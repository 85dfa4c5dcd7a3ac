"""Clients' resources are bounded, against a real node with small limits.

- persistent subscriptions: per anonymous token, for anonymous clients in all, per token and per
  user (over the user's clients and the web-app's ``gateway.internal.subscriptions.create``);
  resuming one never counts twice;
- the token table: a flood of anonymous connections leaves it as it was;
- the event log: retention's count bound holds for a class an anonymous client made logged, and
  its size is visible (``gateway.internal.stats``);
- calls: a burst past one session's rate is ``gateway.error.rate_limited``; another session is not.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.wamp import WampClient, host_port

LIMITS = {"max_persistent_per_token": 3, "max_persistent_per_user": 4, "max_persistent_per_anonymous_token": 2,
          "max_anonymous_persistent": 4, "calls_per_second": 5, "call_burst": 30}
ROOMS = [f"demo.message where room = 'bound{i}'" for i in range(8)]


@pytest.fixture(scope="module")
def bounded() -> Iterator[GatewayNode]:
    with running_node({"queries": LIMITS, "store": {"max_logged_per_class": 5, "prune_interval": 0.5}}) as node:
        yield node


def refused(client: WampClient, procedure: str, *args: Any, **kwargs: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as exc:
        client.call(procedure, *args, **kwargs)
    return exc.value


def persistent(client: WampClient, query: str) -> dict[str, Any]:
    result: dict[str, Any] = client.call("gateway.subscribe", query, persistent=True)
    return result


def end_all(client: WampClient) -> None:
    for sub in client.call("gateway.subscriptions"):
        if sub["persistent"]:
            client.call("gateway.unsubscribe", sub["id"])


# -- persistent subscriptions ---------------------------------------------------------------------


def test_an_anonymous_token_keeps_few_and_resuming_is_free(bounded: GatewayNode) -> None:
    with WampClient(bounded.ws_url) as anon:
        try:
            first = persistent(anon, ROOMS[0])
            persistent(anon, ROOMS[1])
            for _ in range(2):
                assert persistent(anon, ROOMS[0])["resumed"] is True and persistent(anon, ROOMS[1])["resumed"]
            exc = refused(anon, "gateway.subscribe", ROOMS[2], persistent=True)
            assert exc.error == "gateway.error.limit_exceeded"
            assert exc.kwargs == {"limit": "queries.max_persistent_per_anonymous_token", "maximum": 2}
            assert "queries.max_persistent_per_anonymous_token" in exc.args[0]
            assert anon.call("gateway.subscribe", ROOMS[2])["persistent"] is False, "a plain one is not bounded so"
            anon.call("gateway.unsubscribe", first["id"])
            assert persistent(anon, ROOMS[2])["resumed"] is False, "one ended: room for another"
        finally:
            end_all(anon)


def test_anonymous_clients_keep_few_in_all_and_users_are_not_held_back(bounded: GatewayNode) -> None:
    clients = [WampClient(bounded.ws_url).connect() for _ in range(3)]
    try:
        for client in clients[:2]:
            persistent(client, ROOMS[0])
            persistent(client, ROOMS[1])
        exc = refused(clients[2], "gateway.subscribe", ROOMS[0], persistent=True)
        assert exc.error == "gateway.error.limit_exceeded"
        assert exc.kwargs == {"limit": "queries.max_anonymous_persistent", "maximum": 4} and "log in" in exc.args[0]
        with bounded.client("uma") as uma:
            assert persistent(uma, ROOMS[0])["resumed"] is False
            end_all(uma)
    finally:
        for client in clients:
            end_all(client)
            client.close()


def test_a_user_keeps_at_most_its_limit_over_its_clients_and_the_web_app(bounded: GatewayNode) -> None:
    backend = bounded.backend_client().connect()
    try:
        with bounded.client("ulla") as ulla:
            made = [persistent(ulla, q)["id"] for q in ROOMS[:3]]
            exc = refused(ulla, "gateway.subscribe", ROOMS[3], persistent=True)
            assert exc.kwargs == {"limit": "queries.max_persistent_per_token", "maximum": 3}
            for_her = backend.call("gateway.internal.subscriptions.create", "ulla", [], ROOMS[4])
            assert for_her["owner"] == "user"
            with pytest.raises(ApplicationError) as web_app:
                backend.call("gateway.internal.subscriptions.create", "ulla", [], ROOMS[5])
            assert web_app.value.error == "gateway.error.limit_exceeded"
            assert web_app.value.kwargs == {"limit": "queries.max_persistent_per_user", "maximum": 4}
            over = bounded.request("POST", "/subscriptions",
                                   json.dumps({"user": "ulla", "query": ROOMS[5], "persistent": True}).encode(),
                                   {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
            assert over.status == 409 and over.body["error"] == "limit_exceeded", over
            assert "queries.max_persistent_per_user" in over.body["message"], over
            assert persistent(ulla, ROOMS[4])["resumed"] is True, "the web-app's, resumed by her client: free"
            ulla.call("gateway.unsubscribe", made[0])
            assert backend.call("gateway.internal.subscriptions.create", "ulla", [], ROOMS[5])["user"] == "ulla"
            end_all(ulla)
        with pytest.raises(ApplicationError) as bad:
            backend.call("gateway.internal.subscriptions.create", "ulla", "staff", ROOMS[0])
        assert bad.value.error == "gateway.error.invalid_argument" and "roles must be a list" in bad.value.args[0]
    finally:
        backend.close()


# -- the token table --------------------------------------------------------------------------------


def token_rows(node: GatewayNode) -> int:
    with sqlite3.connect(f"file:{node.workdir / 'store.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM client_tokens").fetchone()[0])


async def anonymous_connections(url: str, n: int, at_once: int, authextra: dict[str, Any] | None = None
                                ) -> list[str]:
    """n anonymous WAMP sessions, at most ``at_once`` open at a time: HELLO, WELCOME, close. Their tokens."""
    tokens: list[str] = []
    host, port = host_port(url)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with slots:
            closed = loop.create_future()

            class Peer(WebSocketClientProtocol):
                def onOpen(self) -> None:
                    details = {"roles": {"caller": {}}, "authmethods": ["anonymous"]}
                    if authextra:
                        details["authextra"] = authextra
                    self.sendMessage(json.dumps([1, "gateway", details]).encode())

                def onMessage(self, payload: bytes, is_binary: bool) -> None:
                    message = json.loads(payload)
                    if message[0] == 2:  # WELCOME
                        tokens.append(message[2]["authextra"]["client_token"])
                    self.sendClose(1000)

                def onClose(self, was_clean: bool, code: int | None, reason: str | None) -> None:
                    if not closed.done():
                        closed.set_result(None)

            factory = WebSocketClientFactory(url, protocols=["wamp.2.json"])
            factory.protocol = Peer
            transport, _ = await loop.create_connection(factory, host, port)
            try:
                await asyncio.wait_for(closed, 30)
            finally:
                transport.close()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 300)
    return tokens


def test_a_flood_of_anonymous_connections_does_not_grow_the_token_table(bounded: GatewayNode) -> None:
    before = token_rows(bounded)
    tokens = asyncio.run(anonymous_connections(bounded.ws_url, 2000, at_once=20))
    assert len(tokens) == 2000 and len(set(tokens)) == 2000, "each its own token"
    assert token_rows(bounded) <= before + 5, "signed, not stored"
    # They are tokens all the same: one presented again comes back unchanged.
    again = asyncio.run(anonymous_connections(bounded.ws_url, 3, at_once=3, authextra={"client_token": tokens[7]}))
    assert again == [tokens[7]] * 3
    # Stored once a persistent subscription hangs on it, and kept across connections while it does.
    with WampClient(bounded.ws_url, authextra={"client_token": tokens[9]}) as c:
        assert c.authextra_welcome["client_token"] == tokens[9]
        sub = persistent(c, ROOMS[6])
    with WampClient(bounded.ws_url, authextra={"client_token": tokens[9]}) as c:
        assert c.authextra_welcome["client_token"] == tokens[9]
        assert [s["id"] for s in c.call("gateway.subscriptions") if s["persistent"]] == [sub["id"]]
        c.call("gateway.unsubscribe", sub["id"])


# -- the event log ----------------------------------------------------------------------------------


def test_the_event_log_of_an_anonymous_subscription_is_bounded_and_visible(bounded: GatewayNode) -> None:
    backend = bounded.backend_client().connect()
    try:
        with WampClient(bounded.ws_url) as anon:
            sub = persistent(anon, "demo.message where room = 'logged'")
            try:
                body = json.dumps({"events": [{"event": "demo.message", "data": {"room": "logged", "text": str(i),
                                                                                 "author": "t"}}
                                              for i in range(20)]}).encode()
                r = bounded.request("POST", "/events/batch", body, {"Authorization": f"Bearer {API_KEY}"})
                assert r.status == 200, r.body
                posted = time.time()
                deadline = time.monotonic() + 60
                while True:  # housekeeping every 0.5 s: the log is cut to store.max_logged_per_class
                    stats = backend.call("gateway.internal.stats")
                    log = stats["event_log"]
                    if log["counted_at"] is not None and log["counted_at"] > posted and \
                            log["by_class"].get("demo.message", 0) <= 5:
                        break
                    assert time.monotonic() < deadline, stats
                    time.sleep(0.2)
                assert log["rows"] == sum(log["by_class"].values()) and log["by_class"]["demo.message"] == 5
                page = anon.call("gateway.replay", sub["id"], sub["last_seq"])
                assert page["truncated"] is True, "the client is told what retention dropped"
                assert [e["data"]["text"] for e in page["events"]] == [str(i) for i in range(15, 20)]
            finally:
                anon.call("gateway.unsubscribe", sub["id"])
    finally:
        backend.close()


# -- calls ------------------------------------------------------------------------------------------


def burst(client: WampClient, n: int) -> list[Any]:
    """n calls sent at once from the client's session: each result or ApplicationError."""
    async def all_at_once() -> list[Any]:
        assert client.session is not None
        return await asyncio.gather(*(client.session.call("gateway.subscriptions") for _ in range(n)),
                                    return_exceptions=True)

    results: list[Any] = client._run(all_at_once(), 60)
    return results


def test_a_burst_past_the_rate_is_refused_and_another_session_is_unaffected(bounded: GatewayNode) -> None:
    with WampClient(bounded.ws_url) as hasty, WampClient(bounded.ws_url) as calm:
        started = time.monotonic()
        results = burst(hasty, 80)
        elapsed = time.monotonic() - started
        refusals = [r for r in results if isinstance(r, ApplicationError)]
        answered = [r for r in results if isinstance(r, list)]
        assert len(refusals) + len(answered) == 80, results
        assert {r.error for r in refusals} == {"gateway.error.rate_limited"}
        assert 30 <= len(answered) <= 30 + 5 * elapsed + 1, (len(answered), elapsed)
        assert "5 calls a second, 30 in a burst (queries.calls_per_second, queries.call_burst)" in refusals[0].args[0]
        assert 0 < refusals[0].kwargs["retry_after"] <= 0.2
        assert calm.call("gateway.subscriptions") == [], "another session has its own bucket"
        assert isinstance(calm.call("gateway.catalog"), dict)
        deadline = time.monotonic() + 10
        while True:  # the hasty one may call again once its bucket refilled a little
            try:
                assert hasty.call("gateway.subscriptions") == []
                break
            except ApplicationError as exc:
                assert exc.error == "gateway.error.rate_limited" and time.monotonic() < deadline
                time.sleep(exc.kwargs["retry_after"])
