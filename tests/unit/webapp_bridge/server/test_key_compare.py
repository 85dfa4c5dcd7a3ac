"""API keys are compared in constant time (issue 14, "what held"): the bridge's key check goes through
``hmac.compare_digest`` with the presented key and each configured one, the decision is compare_digest's
(no ``==`` beside it), and every key is compared whichever matches, so timing tells nothing of which key
failed where. The check lives in ``webapp_bridge.server.api`` (pure); its ``hmac`` is replaced by a spy."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server import api
from webapp_bridge.server.api import Answer, BridgeLogic

KEYS = (ApiKey(name="shop", key="key-one-12345"), ApiKey(name="blog", key="key-two-67890"),
        ApiKey(name="feed", key="key-three-abcde"))
CONFIGURED = [k.key.encode() for k in KEYS]

Compare = Callable[[bytes, bytes], bool]


def spy(monkeypatch: pytest.MonkeyPatch, answer: Compare = hmac.compare_digest) -> list[tuple[bytes, bytes]]:
    """Every (presented, configured) pair api's key check compares, answered by ``answer``."""
    calls: list[tuple[bytes, bytes]] = []

    def compare_digest(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return answer(a, b)

    monkeypatch.setattr(api, "hmac", SimpleNamespace(compare_digest=compare_digest))
    return calls


def logic() -> BridgeLogic:
    return BridgeLogic(KEYS, Registry(), 1024)


@pytest.mark.parametrize("presented,name", [("key-one-12345", "shop"), ("key-two-67890", "blog"),
                                            ("key-three-abcde", "feed")])
def test_every_configured_key_is_compared_with_compare_digest_whichever_matches(
        monkeypatch: pytest.MonkeyPatch, presented: str, name: str) -> None:
    calls = spy(monkeypatch)
    assert logic().authenticate(f"Bearer {presented}") == name
    assert calls == [(presented.encode(), key) for key in CONFIGURED], "each key once, in order, no early exit"


def test_a_wrong_key_is_compared_with_every_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy(monkeypatch)
    answer = logic().authenticate("Bearer key-one-12346")  # one byte off the first key
    assert isinstance(answer, Answer) and answer.status == 401
    assert calls == [(b"key-one-12346", key) for key in CONFIGURED]


def test_basic_credentials_are_compared_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy(monkeypatch)
    header = "Basic " + base64.b64encode(b"anyone:key-two-67890").decode()
    assert logic().authenticate(header) == "blog"
    assert calls == [(b"key-two-67890", key) for key in CONFIGURED]


def test_the_decision_is_compare_digests_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compare_digest that says no refuses the right key (nothing else decides it matches); one that says
    yes only for the second key lets a wrong key in as that key (nothing else decides it does not)."""
    spy(monkeypatch, lambda a, b: False)
    refused = logic().authenticate("Bearer key-one-12345")
    assert isinstance(refused, Answer) and refused.status == 401
    spy(monkeypatch, lambda a, b: b == CONFIGURED[1])
    assert logic().authenticate("Bearer not-any-key-at-all") == "blog"
