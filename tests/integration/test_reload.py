"""Hot reload of event definitions while clients stay connected."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import API_KEY, GatewayNode, running_node
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TOPIC = "gateway.event.live.note"

YAML_V1 = textwrap.dedent("""\
    events:
      live.note:
        description: A note.
        fields:
          text: {type: string}
""")
YAML_V2 = textwrap.dedent("""\
    events:
      live.note:
        description: A note, now with a priority.
        fields:
          text: {type: string}
          priority: {type: integer, minimum: 1, maximum: 5}
      live.extra:
        description: A class that did not exist before.
        fields:
          n: {type: integer}
""")
BROKEN = textwrap.dedent("""\
    events:
      live.note:
        fields:
          text: {type: strng}
""")
MODULE_V1 = textwrap.dedent('''\
    from components.events import Event

    class Ping(Event, name="live.ping"):
        """A ping."""
        n: int
''')
MODULE_V2 = MODULE_V1 + "    label: str\n"


def write_v1(workdir: Path) -> None:
    (workdir / "live.yaml").write_text(YAML_V1)
    (workdir / "live_events.py").write_text(MODULE_V1)


def live_config(watch: bool) -> dict[str, Any]:
    # Both files are in the node's workdir: on its PYTHONPATH, and where relative files are found.
    # Without the hand-off: new connections reach both bridges, and each must have the reload.
    return {"events": {"modules": ["live_events"], "files": ["live.yaml"], "watch": watch,
                       "watch_interval": 0.2}, "bridge": {"hand_off": False}}


@pytest.fixture
def live_node() -> Iterator[GatewayNode]:
    with running_node(live_config(watch=False), prepare=write_v1) as node:
        yield node


def reload(node: GatewayNode):  # type: ignore[no-untyped-def]
    return node.request("POST", "/admin/reload", b"", AUTH)


def test_a_reload_swaps_definitions_and_no_client_notices(live_node: GatewayNode) -> None:
    node = live_node
    with WampClient(node.ws_url) as client:
        client.subscribe(TOPIC)
        session = client.session_id
        before = node.post_event("live.note", {"text": "before"})
        assert before.status == 202
        assert node.post_event("live.note", {"text": "x", "priority": 3}).status == 400  # not yet a field

        (node.workdir / "live.yaml").write_text(YAML_V2)
        r = reload(node)
        assert r.status == 200, r.body
        assert r.body["previous"] != r.body["version"] and r.body["components"] == 4
        assert {"live.note", "live.extra", "live.ping"} <= set(r.body["classes"])

        # Every bridge and dispatcher runs the new version: post several times so both bridges answer.
        answers = [node.post_event("live.note", {"text": f"after {i}", "priority": 2}) for i in range(6)]
        assert all(a.status == 202 for a in answers), [a.body for a in answers]
        assert node.post_event("live.extra", {"n": 1}).status == 202
        assert node.post_event("live.note", {"text": "x", "priority": 9}).status == 400

        got = client.take(7)
        assert [e["data"]["text"] for e in got] == ["before"] + [f"after {i}" for i in range(6)]
        assert client.is_attached and client.session_id == session


def test_a_python_module_edit_is_picked_up(live_node: GatewayNode) -> None:
    node = live_node
    assert node.post_event("live.ping", {"n": 1}).status == 202
    time.sleep(1.1)  # a new mtime second, so the edited source is compiled afresh
    (node.workdir / "live_events.py").write_text(MODULE_V2)
    assert reload(node).status == 200
    missing = node.post_event("live.ping", {"n": 1})
    assert missing.status == 400 and missing.body["details"][0]["path"] == "data.label"
    assert node.post_event("live.ping", {"n": 1, "label": "x"}).status == 202


def test_a_broken_definition_is_reported_and_the_old_one_keeps_serving(live_node: GatewayNode) -> None:
    node = live_node
    version = node.get("/healthz").body["definitions"]
    (node.workdir / "live.yaml").write_text(BROKEN)
    r = reload(node)
    assert r.status == 422 and r.body["error"] == "invalid_definitions"
    assert "live.yaml" in r.body["message"] and "live.note" in r.body["message"] and "strng" in r.body["message"]
    assert node.post_event("live.note", {"text": "still fine"}).status == 202
    assert node.get("/healthz").body["definitions"] == version
    assert "reload refused" in node.log_text()


def test_watching_reloads_by_itself() -> None:
    with running_node(live_config(watch=True), prepare=write_v1) as node:
        assert node.post_event("live.extra", {"n": 1}).status == 404
        (node.workdir / "live.yaml").write_text(YAML_V2)
        deadline = time.monotonic() + 10
        statuses: list[int] = []
        while time.monotonic() < deadline:
            # Several posts: both bridges must have picked the change up.
            statuses = [node.post_event("live.extra", {"n": 1}).status for _ in range(4)]
            if statuses == [202] * 4:
                break
            time.sleep(0.2)
        assert statuses == [202] * 4
        with WampClient(node.ws_url) as client:
            # Both dispatchers answer the catalog in turn; each reloaded on its own.
            catalogs = [client.call("gateway.catalog") for _ in range(4)]
        assert all("live.extra" in [c["name"] for c in cat["classes"]] for cat in catalogs)


STRICTER = YAML_V1.replace("    description: A note.\n", "    description: A note.\n    visibility: authenticated\n")
ROW_FILTERED = YAML_V1.replace("    description: A note.\n", "    description: A note.\n    row_filter: \"text = $user\"\n")
assert STRICTER != YAML_V1 and ROW_FILTERED != YAML_V1


def test_a_reload_that_makes_a_class_stricter_takes_effect_for_those_already_subscribed(
        live_node: GatewayNode) -> None:
    node = live_node
    with WampClient(node.ws_url) as anonymous, node.client("alice") as alice:
        for c in (anonymous, alice):
            c.subscribe(TOPIC)
            c.subscribe(c.call("gateway.subscribe", "live.note")["topic"])
        (node.workdir / "live.yaml").write_text(STRICTER)
        assert reload(node).status == 200
        after = node.post_event("live.note", {"text": "members only"}).body["seq"]
        assert [e["seq"] for e in alice.take(2)] == [after, after]
        # The anonymous client may no longer see the class: its subscriptions stay, silent.
        (node.workdir / "live.yaml").write_text(YAML_V1)
        assert reload(node).status == 200
        public = node.post_event("live.note", {"text": "public again"}).body["seq"]
        assert [e["seq"] for e in anonymous.take(2)] == [public, public], "nothing in between"
        (node.workdir / "live.yaml").write_text(ROW_FILTERED)
        assert reload(node).status == 200
        # A class topic of a class that now has a row filter carries nothing, nor do query
        # subscriptions made under the old rules; a new subscription gets the filtered rows.
        fresh = alice.call("gateway.subscribe", "live.note")
        alice.subscribe(fresh["topic"])
        assert node.post_event("live.note", {"text": "bob"}).status == 202
        mine = node.post_event("live.note", {"text": "alice"}).body["seq"]
        (node.workdir / "live.yaml").write_text(YAML_V1)
        assert reload(node).status == 200
        last = node.post_event("live.note", {"text": "end"}).body["seq"]
        # Back to the rules they were made under, the old subscriptions deliver again; the new
        # one was made under the filter, which is gone now: it no longer delivers.
        assert [e["seq"] for e in alice.take(5)] == [public, public, mine, last, last]
