"""GET /metrics on a real node: the node's totals move as they should, whichever bridge answers, and never
go back (across scrapes on new connections, a component killed, a container killed)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest
from autobahn.wamp.exception import ApplicationError
from prometheus_client.parser import text_string_to_metric_families

from components.metrics.families import FAMILIES
from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.waiting import wait_for
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
MESSAGE = {"room": "r", "text": "t", "author": "a"}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def node() -> Iterator[GatewayNode]:
    with running_node() as n:
        yield n


def scrape(node: GatewayNode, headers: dict[str, str] | None = None) -> Samples:
    """One scrape on a new connection (the kernel picks the bridge), parsed by prometheus_client's parser."""
    r = node.request("GET", "/metrics", headers=headers, timeout=30)
    assert r.status == 200, (r.status, r.body)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert isinstance(r.body, str)
    samples: Samples = {}
    for family in text_string_to_metric_families(r.body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(node: GatewayNode, check: Callable[[Samples], bool], what: str) -> Samples:
    return wait_for(lambda: (lambda s: s if check(s) else None)(scrape(node)), what=what)


def test_every_family_is_announced_and_the_node_is_seen(node: GatewayNode) -> None:
    r = node.request("GET", "/metrics", timeout=30)
    assert r.status == 200
    names = {f.name for f in text_string_to_metric_families(r.body)}
    for family in FAMILIES.values():
        assert family.name.removesuffix("_total") in names, family.name
    s = scrape(node)
    assert value(s, "gateway_dispatchers", state="active") == 1
    assert value(s, "gateway_dispatchers", state="standby") == 1
    for process in ("router", "controller", "components-1", "components-2"):
        assert value(s, "gateway_process_resident_memory_bytes", process=process) > 0, process
    assert any(n == "gateway_definitions_info" and v == 1 for (n, _), v in s.items())


def test_the_metrics_move_as_they_should(node: GatewayNode) -> None:
    before = scrape(node)
    ok = node.post_event("demo.message", MESSAGE, id="metrics-once")
    assert ok.status == 202
    assert node.post_event("demo.message", MESSAGE, id="metrics-once").status == 202  # a duplicate
    assert node.post_event("demo.unknown", {}).status == 404
    assert node.post_event("demo.message", MESSAGE, key="not-the-key-at-all").status == 401
    with WampClient(node.ws_url, ticket=node.ticket("alice")).connect() as alice:
        granted = alice.call("gateway.subscribe", 'demo.message where room = "metrics"')
        alice.subscribe(granted["topic"])  # a live query: its topic has a subscriber on the router

        def grew(s: Samples) -> bool:
            return (value(s, "gateway_events_accepted_total", event="demo.message")
                    >= value(before, "gateway_events_accepted_total", event="demo.message") + 1
                    and value(s, "gateway_events_duplicate_total", event="demo.message")
                    >= value(before, "gateway_events_duplicate_total", event="demo.message") + 1
                    and value(s, "gateway_events_refused_total", reason="unknown_event")
                    >= value(before, "gateway_events_refused_total", reason="unknown_event") + 1
                    and value(s, "gateway_events_refused_total", reason="unauthorized")
                    >= value(before, "gateway_events_refused_total", reason="unauthorized") + 1
                    and value(s, "gateway_logins_total", method="ticket", outcome="accepted")
                    >= value(before, "gateway_logins_total", method="ticket", outcome="accepted") + 1
                    and value(s, "gateway_ingest_duration_seconds_count", transport="http")
                    >= value(before, "gateway_ingest_duration_seconds_count", transport="http") + 4
                    and value(s, "gateway_publishes_total", kind="class")
                    >= value(before, "gateway_publishes_total", kind="class") + 1
                    and value(s, "gateway_sessions", role="user") >= 1
                    and value(s, "gateway_live_queries") >= 1)
        s = moved(node, grew, "events, refusals, a login, a session and a live query counted")
        assert value(s, "gateway_match_duration_seconds_count") >= 1
        assert any(n == "gateway_store_duration_seconds_count" and v > 0 for (n, _), v in s.items())
    reloaded = node.request("POST", "/admin/reload", b"", AUTH)
    assert reloaded.status == 200
    # Every component that reloads counts its own (the answer says how many did).
    n = reloaded.body["components"]
    assert n >= 4
    moved(node, lambda s: value(s, "gateway_reloads_total", outcome="loaded")
          >= value(before, "gateway_reloads_total", outcome="loaded") + n, "every component's reload counted")


def counters(samples: Samples) -> Samples:
    """The samples that must never go down (a process's own CPU time resets with the process)."""
    return {k: v for k, v in samples.items()
            if k[0].endswith(("_total", "_bucket", "_count", "_sum")) and not k[0].startswith("gateway_process_")}


def assert_not_below(earlier: Samples, later: Samples) -> None:
    for key, v in counters(earlier).items():
        assert later.get(key, 0.0) >= v, (key, v, later.get(key))


def test_require_key() -> None:
    with running_node({"metrics": {"require_key": True}}) as keyed:
        r = keyed.request("GET", "/metrics", timeout=30)
        assert r.status == 401 and r.body["error"] == "unauthorized"
        assert value(scrape(keyed, AUTH), "gateway_dispatchers", state="active") == 1


def sessions_of(admin: WampClient, authid: str) -> list[int]:
    found = []
    for session_id in admin.call("wamp.session.list"):
        try:
            if admin.call("wamp.session.get", session_id)["authid"] == authid and session_id != admin.session_id:
                found.append(session_id)
        except ApplicationError:  # it left between the list and the look-up
            continue
    return found


def container_pid(node: GatewayNode, name: str) -> int:
    assert node.process is not None
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(node.process.pid)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        pid, _, title = line.strip().partition(" ")
        if title.strip() == f"gateway {name}":
            return int(pid)
    raise AssertionError(f"no process titled 'gateway {name}' in {out!r}")


def test_counters_never_go_back_whichever_bridge_answers_and_whatever_dies() -> None:
    # A node of its own: a container is killed here. Without the hand-off, so that either bridge answers.
    with running_node({"bridge": {"hand_off": False}}) as own:
        last = scrape(own)
        accepted = 0

        def step(n: int) -> None:
            nonlocal last, accepted
            for _ in range(n):
                try:
                    if own.post_event("demo.message", MESSAGE).status == 202:
                        accepted += 1
                    now = scrape(own)  # a new connection each time: either bridge answers
                except OSError:
                    continue  # a connection the killed bridge had accepted but not answered: reset
                assert_not_below(last, now)
                last = now

        step(15)
        # A component killed by an operator: Crossbar starts it again in the same process.
        with own.backend_client().connect() as admin:
            for session_id in sessions_of(admin, "dispatcher")[:1] + sessions_of(admin, "bridge")[:1]:
                admin.call("wamp.session.kill", session_id, reason="gateway.test.kill", message="test")
            step(10)
            wait_for(lambda: len(sessions_of(admin, "dispatcher")) == 2 and len(sessions_of(admin, "bridge")) == 2,
                     what="the killed components back")
        step(10)
        # A whole container killed (SIGKILL: nothing saved at the end): what it counted still counts.
        os.kill(container_pid(own, "components-2"), signal.SIGKILL)
        wait_for(lambda: own.not_ready() is None, what="the node serving again")
        step(15)
        assert value(last, "gateway_events_accepted_total", event="demo.message") >= accepted
