"""The proxy refuses text the gateway refuses at its edge (a lone UTF-16 surrogate), before sending, in its words.

Before, such text raised UnicodeEncodeError out of the proxy (HTTP, AMQP) or became a -32700 fault (XML-RPC),
while the gateway answered 500 (issue 15). The gateway's rule is ``components.limits``; the proxy's copy is
``webapp_bridge.schemacheck.string_problems``: these tests hold the two together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import limits
from components.config import ApiKey
from components.events import Registry
from webapp_bridge import schemacheck
from webapp_bridge.proxy import EventRejected, GatewayProxy
from webapp_bridge.proxy._settings import parse_settings
from webapp_bridge.server.api import Answer, BridgeLogic

REPO = Path(__file__).resolve().parents[3]
#: The gateway's rules, as the bridge applies them to a POST /events body.
BRIDGE = BridgeLogic((ApiKey(name="k", key="key-12345678"),),
                     Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO), 1 << 20)
MESSAGE = {"room": "lobby", "text": "hi", "author": "a"}
TEXT = st.text(st.characters(codec=None, categories=["Cs", "Ll"]) | st.sampled_from("😀é"), max_size=4)
#: No empty key: the gateway's path drops an empty part ("0", not ".0"), as for numbers (test_schemacheck).
KEYS = st.text(st.characters(codec=None, categories=["Cs", "Ll"]), min_size=1, max_size=3)


@pytest.fixture
def offline() -> GatewayProxy:
    """A proxy whose gateway is nowhere: these calls must fail before sending anything."""
    return GatewayProxy(parse_settings({"bridge": {"port": 1}, "proxy": {"retries": 0}}, {}, base=REPO))


@pytest.mark.parametrize("data,audience", [
    ({**MESSAGE, "text": "a\ud800"}, None),
    ({**MESSAGE, "\udfff": 1}, None),
    ({**MESSAGE, "tags": {"ok", "\udc00"}}, None),
    (MESSAGE, {"users": ["alice", "b\ud800b"]}),
])
@pytest.mark.parametrize("validate", [True, False])
def test_a_lone_surrogate_is_refused_here_as_the_gateway_refuses_it(offline: GatewayProxy, data: Any,
                                                                     audience: Any, validate: bool) -> None:
    body = {"event": "demo.message", "data": data, **({"audience": audience} if audience else {})}
    # ASCII: the surrogates as escapes, as a JSON client sends them; a set in the order the proxy sends it.
    wire = json.dumps(body, default=lambda items: sorted(items, key=repr))
    gateway = BRIDGE.parse_event(wire.encode())
    assert isinstance(gateway, Answer) and gateway.body["error"] == "invalid_unicode"
    proxy = offline if validate else GatewayProxy(offline.settings, validate=False)
    for call in (lambda: proxy.publish("demo.message", data, audience=audience),
                 lambda: _raise_first(proxy.publish_many([body]))):
        with pytest.raises(EventRejected) as exc:
            call()
        assert (exc.value.status, exc.value.code, exc.value.message, exc.value.details) == (
            gateway.status, gateway.body["error"], gateway.body["message"], gateway.body["details"])


@settings(max_examples=200, deadline=None)
@given(st.recursive(TEXT | st.integers(-5, 5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                    max_leaves=8))
def test_the_proxys_copy_of_the_rule_finds_what_the_gateways_finds(value: Any) -> None:
    assert [p.as_dict() for p in schemacheck.string_problems(value)] == \
        [p.as_dict() for p in limits.string_problems(value, limit=None)]
    assert schemacheck.LONE_SURROGATE == limits.LONE_SURROGATE


def _raise_first(results: list[Any]) -> None:
    assert len(results) == 1
    if isinstance(results[0], Exception):
        raise results[0]
