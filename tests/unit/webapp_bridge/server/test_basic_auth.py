"""Basic auth on the bridge: ``Basic base64(<anything>:<api key>)``, for clients that only do Basic (XML-RPC's)."""

import base64
import xmlrpc.client

import pytest

from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server.api import Answer, BridgeLogic

LOGIC = BridgeLogic((ApiKey(name="shop", key="key-one-12345"), ApiKey(name="blog", key="key-two-67890")),
                    Registry(), 1024)


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize("header,name", [
    (basic(b"anyone:key-one-12345"), "shop"),
    (basic(b":key-two-67890"), "blog"),
    (basic(b"shop:key-one-12345"), "shop"),
    ("basic  " + base64.b64encode(b"x:key-one-12345").decode() + " ", "shop"),
])
def test_the_password_of_basic_credentials_is_the_api_key(header: str, name: str) -> None:
    assert LOGIC.authenticate(header) == name


def test_what_python_xmlrpc_client_sends_for_a_user_and_key_in_the_url() -> None:
    _, headers, _ = xmlrpc.client.Transport().get_host_info("web%40app:key-one-12345@127.0.0.1:8081")
    (name, value), = headers
    assert name == "Authorization" and LOGIC.authenticate(value) == "shop"


def test_the_user_part_is_ignored_and_a_colon_in_the_password_is_kept() -> None:
    assert LOGIC.authenticate(basic(b"key-one-12345:x")) != "shop"  # the key must be the password
    other = BridgeLogic((ApiKey(name="odd", key="has:colon-123"),), Registry(), 1024)
    assert other.authenticate(basic(b"u:has:colon-123")) == "odd"


@pytest.mark.parametrize("header,reason", [
    ("Basic", "must be 'Bearer <api key>' or 'Basic ' + base64 of '<anything>:<api key>'"),
    ("Basic not*base64", "must be 'Bearer <api key>' or 'Basic"),
    (basic(b"key-one-12345"), "must be 'Bearer <api key>' or 'Basic"),  # no colon: not Basic credentials
    (basic(b"user:"), "must be 'Bearer <api key>' or 'Basic"),  # no key
    (basic(b"user:key-one-1234"), "the API key is not valid"),
    (basic(b"user:key-one-12345 "), "the API key is not valid"),
    ("Digest key-one-12345", "must be 'Bearer <api key>' or 'Basic"),
])
def test_bad_basic_credentials_are_401_with_a_reason(header: str, reason: str) -> None:
    answer = LOGIC.authenticate(header)
    assert isinstance(answer, Answer) and answer.status == 401
    assert answer.body["error"] == "unauthorized" and reason in answer.body["message"]
    assert dict(answer.headers)["WWW-Authenticate"].startswith("Bearer")


def test_bearer_is_unchanged() -> None:
    assert LOGIC.authenticate("Bearer key-one-12345") == "shop"
    answer = LOGIC.authenticate("Bearer " + base64.b64encode(b"x:key-one-12345").decode())
    assert isinstance(answer, Answer) and answer.body["message"] == "the API key is not valid"
