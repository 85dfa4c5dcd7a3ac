"""The live status page on a real node: gateway.status answers operators only (the authorizer refuses anyone
else, whatever who asked before), its figures are the node's metrics and move, and the page itself, in
headless Chromium (tests/browser/status_page.mjs): the sign-in prompt and no data for anyone else, the
numbers moving for an operator."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.integration.test_browser import CHROMIUM, run_script
from tests.support.harness import REPO, GatewayNode, make_jwt, running_node
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration

MESSAGE = {"room": "status", "text": "t", "author": "a"}
NOT_AUTHORIZED = "wamp.error.not_authorized"


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    with running_node() as n:
        yield n


def refusal(client: WampClient) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        client.call("gateway.status")
    return caught.value


def test_anonymous_clients_and_users_without_the_operator_role_get_an_error_never_data(node: GatewayNode) -> None:
    operator = node.client("ops", ["staff"])
    try:
        # Asked in turns: a decision for one session is never another's (the authorizer's answers for
        # gateway.status are not cached by the router, whose cache is per WAMP role).
        for _ in range(2):
            assert operator.call("gateway.status")["health"]["ok"] is True
            for user, roles in ((None, None), ("bob", ["red"]), ("carol", None), ("dave", ["staffer", "sta"])):
                with node.client(user, roles) as other:
                    err = refusal(other)
                    assert err.error == NOT_AUTHORIZED, (user, err)
                    assert "gateway.status" in str(err.args[0])
    finally:
        operator.close()


def test_a_jwt_with_the_operator_role_is_an_operator_too(node: GatewayNode) -> None:
    staff = make_jwt({"sub": "jane", "roles": ["staff"], "exp": int(time.time()) + 600})
    plain = make_jwt({"sub": "joe", "roles": ["red"], "exp": int(time.time()) + 600})
    with WampClient(node.ws_url, ticket=staff).connect() as jane:
        assert jane.call("gateway.status")["dispatchers"] == {"active": 1, "standby": 1}
        # The WAMP role stays the user role: the operator role is one of the login's roles.
        assert jane.call("gateway.whoami")["role"] == "user"
    with WampClient(node.ws_url, ticket=plain).connect() as joe:
        assert refusal(joe).error == NOT_AUTHORIZED


def test_the_figures_are_the_node_metrics_and_they_move(node: GatewayNode) -> None:
    with node.client("ops", ["staff"]) as ops:
        before = ops.call("gateway.status")
        assert node.post_event("demo.message", MESSAGE).status == 202
        assert node.post_event("demo.nope", {}).status == 404
        # A bridge's answer serves the callers of a second (STATUS_SHARED): the next may be one made before.
        def moved() -> dict[str, Any] | None:
            answer: dict[str, Any] = ops.call("gateway.status")
            moved = (answer["events"]["accepted"].get("demo.message", 0)
                     >= before["events"]["accepted"].get("demo.message", 0) + 1
                     and answer["events"]["refused"].get("unknown_event", 0)
                     >= before["events"]["refused"].get("unknown_event", 0) + 1)
            return answer if moved else None
        after = wait_for(moved, timeout=10, what="the event and the refusal counted")
        accepted = after["events"]["accepted"].get("demo.message", 0)
        assert after["time"] > before["time"]
        assert after["answered_by"] in ("components-1", "components-2")
        assert after["sessions"].get("user", 0) >= 1
        assert set(after["processes"]) >= {"controller", "router", "components-1", "components-2"}
        assert after["bridges"] == {"count": 2, "amqp": {"off": 2}}
        assert after["authenticators"] == 2 and after["metrics_enabled"] is True
        assert len(after["definitions"]["versions"]) == 1
        # The same numbers GET /metrics gives (it only ever shows as much or more, later).
        scraped = node.get("/metrics").body
        line = next(x for x in scraped.splitlines()
                    if x.startswith('gateway_events_accepted_total{event="demo.message"}'))
        assert float(line.split()[-1]) >= accepted


def test_operators_asking_together_share_one_answer_per_bridge(node: GatewayNode) -> None:
    # Six questions at once, three to each bridge (round robin): each bridge makes one answer for its three
    # (webapp_bridge/server/component.py STATUS_SHARED), rather than reading every process and the store
    # three times.
    with node.client("ops", ["staff"]) as ops:
        async def together() -> list[Any]:
            assert ops.session is not None
            return list(await asyncio.gather(*(ops.session.call("gateway.status") for _ in range(6))))
        answers = ops._run(together(), timeout=30)
        by_bridge: dict[str, set[float]] = {}
        for answer in answers:
            by_bridge.setdefault(answer["answered_by"], set()).add(answer["time"])
        assert set(by_bridge) == {"components-1", "components-2"}
        assert all(len(times) == 1 for times in by_bridge.values()), by_bridge


def test_the_busiest_live_queries_with_their_subscribers(node: GatewayNode) -> None:
    query = 'demo.message where room = "busiest"'
    clients = [node.client(f"sub{i}") for i in range(3)]
    try:
        for c in clients:
            c.subscribe(c.call("gateway.subscribe", query)["topic"])
        with node.client("ops", ["staff"]) as ops:
            def listed() -> dict[str, Any] | None:
                status = ops.call("gateway.status")
                mine = [q for q in status["live_queries"]["busiest"] if q["query"] == query]
                return mine[0] if mine and mine[0]["subscribers"] == 3 else None
            # Counted every few seconds (webapp_bridge.server.status.REFRESH), by whichever bridge answers.
            found = wait_for(listed, what="the query listed with its 3 subscribers")
            assert found["topic"].startswith("gateway.query.")
            assert ops.call("gateway.status")["live_queries"]["count"] >= 1
    finally:
        for c in clients:
            c.close()


@pytest.fixture(scope="module")
def browser_ready() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    if shutil.which("node") is None:
        pytest.fail("node (Node.js 20+) is not on PATH")
    for package in ("playwright-core", "uplot"):
        if not (REPO / "node_modules" / package).is_dir():
            pytest.fail(f"node_modules/{package} is missing: run `make install`")


def test_the_page_shows_operators_the_numbers_moving_and_anyone_else_a_sign_in_prompt(
        node: GatewayNode, browser_ready: None, tmp_path: Path) -> None:
    output = run_script("status_page", node, tmp_path)
    assert "status_page: ok" in output
    assert (tmp_path / "status.png").stat().st_size > 10_000
