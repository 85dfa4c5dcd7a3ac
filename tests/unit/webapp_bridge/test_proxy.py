"""The proxy's own rules, without sockets: reading gateway.yaml (held to the gateway's reader), JWTs (held to the
gateway's verifier), the envelope rules (held to the bridge's), backoff, what answers mean, local validation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import GatewayConfig, load_config
from components.exceptions import ConfigError
from components.auth.credentials import AuthFailure, verify_jwt
from components.auth.credentials import check_roles as gateway_check_roles
from components.auth.credentials import check_user as gateway_check_user
from components.config import ApiKey
from components.events import Registry
from webapp_bridge.server.api import Answer, BridgeLogic
from webapp_bridge.server.api import check_audience as gateway_check_audience
from webapp_bridge.proxy import (EventRejected, GatewayProxy, GatewayUnavailable, ProxyConfigError, ProxyError,
                                 RequestRejected, read_settings)
from webapp_bridge.proxy import _jwt
from webapp_bridge.proxy._answers import batch_item_details, check_answer, from_fault, from_http_body
from webapp_bridge.proxy._envelope import check_audience, check_roles, check_user, json_data
from webapp_bridge.proxy._retry import Backoff, Transient, with_retries
from webapp_bridge.proxy._settings import PROXY_KEYS, ProxySettings, parse_settings
from webapp_bridge.proxy._connections import Connections
from webapp_bridge.proxy._validation import REFETCH_AFTER, LocalValidator

REPO = Path(__file__).resolve().parents[3]
SECRET = "s" * 40

# -- gateway.yaml: the proxy's reader and the gateway's agree -----------------------------------------------

FULL = {
    "router": {"host": "::1", "port": 9000, "realm": "shop.events", "ws_path": "live",
               "public_url": "wss://example.com/live"},
    "bridge": {"host": "::", "port": 9001, "max_body_bytes": 4096, "max_batch": 50, "max_depth": 12,
               "api_keys": [{"name": "first", "key": "first-key-123"}, {"name": "second", "key": "second-key-456"}]},
    "auth": {"secret": SECRET, "max_jwt_ttl": 600},
    "amqp": {"url": "amqp://user:pa55word@rabbit:5672/%2F", "queue": "shop.events"},
    "proxy": {"transport": "amqp", "url": "https://gw.example.com/bridge/", "api_key_name": "second",
              "timeout": "2.5", "retries": 0, "backoff": 0, "max_backoff": 0},
    "events": {"modules": [], "files": ["defs/a.yaml", "/abs/b.yaml"]},
}
STORE_URL = "postgresql://gateway@db:5432/gateway"
ENV = {"GATEWAY_API_KEY": "env-key-1234, env-key-5678", "GATEWAY_BRIDGE_PORT": "9101", "GATEWAY_SECRET": SECRET,
       "GATEWAY_AMQP_URL": "amqps://u:p@broker/vh", "GATEWAY_PROXY_TRANSPORT": "xmlrpc",
       "GATEWAY_ROUTER_HOST": "10.0.0.5", "GATEWAY_ROUTER_PORT": "9443", "GATEWAY_BRIDGE_HOST": "0.0.0.0"}
GOOD: list[tuple[Any, dict[str, str]]] = [
    ({}, {}),
    (yaml.safe_load((REPO / "gateway.yaml").read_text()), {}),
    (FULL, {}),
    ({"proxy": {"url": "http://127.0.0.1:9999"}, "bridge": {"api_keys": ["bare-key-123"]}}, ENV),
    ({"bridge": {"port": "8082"}, "proxy": {"retries": 3.0, "backoff": 1, "max_backoff": "7"}}, {}),
    ({"router": {"port": 9500}}, {"GATEWAY_ROUTER_PORT": "", "GATEWAY_PROXY_TRANSPORT": ""}),
    ({"bridge": {"api_keys": [{"name": "a", "key": "aaaaaaaa"}, {"name": "b", "key": "bbbbbbbb"}]},
      "proxy": {"api_key_name": "b"}, "auth": {"secret": None}}, {}),
    (None, {}),
    # cluster.enabled (the gateway wants store.url with it; the proxy does not read the store)
    ({"cluster": {"enabled": True, "node_name": "n1"}, "store": {"url": STORE_URL}}, {}),
    ({"cluster": {"enabled": "Yes"}, "store": {"url": STORE_URL}}, {}),
    ({"cluster": {"enabled": 0}}, {}),
    ({"store": {"url": STORE_URL}}, {"GATEWAY_CLUSTER": "1"}),
    ({"cluster": {"enabled": True}, "store": {"url": STORE_URL}}, {"GATEWAY_CLUSTER": "off"}),
    ({"cluster": {"enabled": True}, "store": {"url": STORE_URL}}, {"GATEWAY_CLUSTER": ""}),
]
BAD: list[tuple[Any, dict[str, str], str]] = [
    ({"bridge": {"port": 70000}}, {}, "in bridge.port: must be an integer, at least 1 and at most 65535 (got 70000)"),
    ({"bridge": {"port": 80.5}}, {}, "in bridge.port"),
    ({}, {"GATEWAY_BRIDGE_PORT": "eighty"}, "in bridge.port (from env GATEWAY_BRIDGE_PORT): must be an integer"),
    ({"proxy": {"transport": "smtp"}}, {}, "in proxy.transport: must be one of http, xmlrpc, amqp (got 'smtp')"),
    ({"proxy": {"retires": 3}}, {}, "in proxy.retires: unknown key"),
    ({"proxy": {"api_key_name": "nobody"}}, {}, "'nobody' is not the name of any bridge.api_keys entry (example)"),
    ({"proxy": {"transport": "amqp"}}, {}, "proxy.transport is amqp but amqp.url is not set"),
    ({"proxy": {"timeout": 0}}, {}, "in proxy.timeout: must be a number, more than 0 and at most 600 (got 0)"),
    ({"proxy": {"timeout": "nan"}}, {}, "in proxy.timeout"),
    ({"proxy": {"retries": 101}}, {}, "in proxy.retries"),
    ({"proxy": {"url": "ftp://x"}}, {}, "in proxy.url: must be an http:// or https:// URL"),
    ({"proxy": {"url": "http://x:secret-key-123@127.0.0.1:8081"}}, {}, "in proxy.url: must be an http:// or "
                                                                       "https:// URL with no user:password@"),
    ({"auth": {"secret": "too-short-secret"}}, {}, "in auth.secret: must be a string of at least 32 characters "
                                                   "(got a string of 16 characters)"),
    ({"auth": {"max_jwt_ttl": 10}}, {}, "in auth.max_jwt_ttl"),
    ({"bridge": {"api_keys": []}}, {}, "in bridge.api_keys: must be a list of at least one key"),
    ({"bridge": {"api_keys": ["shortk"]}}, {}, "in bridge.api_keys.0 (named key-1): the key must be a string of at "
                                               "least 8 characters (got a string of 6 characters)"),
    ({"bridge": {"api_keys": [{"name": "a", "key": "12345678"}, {"name": "a", "key": "87654321"}]}}, {},
     "the name 'a' is used twice"),
    ({"bridge": {"api_keys": ["12345678", "12345678"]}}, {}, "the same key is listed twice"),
    ({"bridge": {"api_keys": [{"name": "no spaces", "key": "12345678"}]}}, {}, "in bridge.api_keys.0.name"),
    ({"bridge": {"api_keys": [{"key": "12345678"}]}}, {}, "in bridge.api_keys.0: must be {name: ..., key: ...}"),
    ({"bridge": {"max_batch": 0}}, {}, "in bridge.max_batch"),
    ({"bridge": {"max_depth": 3}}, {}, "in bridge.max_depth"),
    ({"bridge": {"max_depth": 257}}, {}, "in bridge.max_depth"),
    ({"bridge": None}, {}, "in bridge: must be a mapping of keys (got null)"),
    ({"amqp": {"url": "http://user:hunter2@rabbit"}}, {}, "in amqp.url: not an AMQP URL"),
    ({"amqp": {"queue": "a queue"}}, {}, "in amqp.queue"),
    ({"router": {"realm": "Bad Realm"}}, {}, "in router.realm"),
    ({"router": {"public_url": "http://x"}}, {}, "in router.public_url"),
    ({"events": {"modules": "examples.demo_events"}}, {}, "in events.modules: must be a list of strings"),
    ({"events": {"files": ["a.yaml", 5]}}, {}, "in events.files"),
    ({"cluster": {"enabled": "maybe"}}, {}, "in cluster.enabled: must be true or false (got 'maybe')"),
    ({"cluster": {"enabled": 2}}, {}, "in cluster.enabled: must be true or false (got 2)"),
    ({"store": {"url": STORE_URL}}, {"GATEWAY_CLUSTER": "2"},
     "in cluster.enabled (from env GATEWAY_CLUSTER): must be true or false (got '2')"),
    ({"cluster": None}, {}, "in cluster: must be a mapping of keys (got null)"),
]


def gateway_view(cfg: GatewayConfig) -> dict[str, Any]:
    """What the proxy must read, derived from the gateway's own reading of the same file."""
    named = cfg.proxy.api_key_name
    key = next(k for k in cfg.bridge.api_keys if k.name == named) if named else cfg.bridge.api_keys[0]
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(cfg.bridge.host, cfg.bridge.host)
    router_host = f"[{cfg.router.host}]" if ":" in cfg.router.host else cfg.router.host
    return {
        "transport": cfg.proxy.transport,
        "url": cfg.proxy.url.rstrip("/") if cfg.proxy.url else f"http://{host}:{cfg.bridge.port}",
        "api_key_name": key.name, "api_key": key.key, "timeout": cfg.proxy.timeout, "retries": cfg.proxy.retries,
        "backoff": cfg.proxy.backoff, "max_backoff": cfg.proxy.max_backoff, "max_batch": cfg.bridge.max_batch,
        "max_body_bytes": cfg.bridge.max_body_bytes, "max_depth": cfg.bridge.max_depth, "realm": cfg.router.realm,
        "router_url": cfg.router.public_url or f"ws://{router_host}:{cfg.router.port}/{cfg.router.ws_path}",
        "jwt_secret": cfg.auth.secret, "max_jwt_ttl": cfg.auth.max_jwt_ttl, "amqp_url": cfg.amqp.url,
        "amqp_queue": cfg.amqp.queue, "cluster": cfg.cluster.enabled, "event_modules": cfg.events.modules, "event_files": cfg.events.files,
    }


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "conf" / "gateway.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("doc,env", GOOD)
def test_the_proxy_reads_every_value_it_uses_as_the_gateway_does(tmp_path: Path, doc: Any,
                                                                 env: dict[str, str]) -> None:
    path = write(tmp_path, doc)
    mine = dataclasses.asdict(read_settings(path, env))
    assert mine.pop("source") == str(path)
    assert mine == gateway_view(load_config(path, env))


@pytest.mark.parametrize("doc,env,expected", BAD)
def test_what_the_gateway_refuses_the_proxy_refuses_naming_the_file_key_and_value(
        tmp_path: Path, doc: Any, env: dict[str, str], expected: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError):
        load_config(path, env)
    with pytest.raises(ProxyConfigError) as exc:
        read_settings(path, env)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and expected in message
    for secret in ("too-short-secret", "shortk", "hunter2", "12345678", "secret-key-123"):
        assert secret not in message


def test_the_proxy_section_has_the_gateways_keys() -> None:
    from components.config import ProxyConfig

    assert set(PROXY_KEYS) == set(ProxyConfig.model_fields)


def test_the_proxy_reads_gateway_cluster_and_creates_the_queue_as_the_clusters_bridges_declare_it() -> None:
    from webapp_bridge.proxy._amqp import queue_arguments
    from webapp_bridge.server.amqp_rules import queue_arguments as bridge_queue_arguments

    assert parse_settings({}, {}).cluster is False
    assert parse_settings({"cluster": {"enabled": True}}, {}).cluster is True
    assert parse_settings({"cluster": {"enabled": True}}, {"GATEWAY_CLUSTER": "false"}).cluster is False
    assert parse_settings({}, {"GATEWAY_CLUSTER": "TRUE"}).cluster is True
    for cluster in (False, True):
        assert queue_arguments(cluster) == bridge_queue_arguments(cluster)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ProxyConfigError) as exc:
        read_settings(write(tmp_path, {"bridge": {"port": 0}, "proxy": {"timeout": -1, "colour": 1}}), {})
    assert all(f"in {key}" in str(exc.value) for key in ("bridge.port", "proxy.timeout", "proxy.colour"))


def test_env_none_is_the_process_environment_and_a_transport_argument_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BRIDGE_PORT", "9876")
    monkeypatch.setenv("GATEWAY_PROXY_TRANSPORT", "xmlrpc")
    settings = read_settings(write(tmp_path, {}))
    assert settings.url == "http://127.0.0.1:9876" and settings.transport == "xmlrpc"
    assert read_settings(write(tmp_path, {}), transport="http").transport == "http"
    with pytest.raises(ProxyConfigError, match=r"the transport asked for \('ftp'\) must be one of http"):
        read_settings(write(tmp_path, {}), transport="ftp")


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ProxyConfigError, match="nothing.yaml: cannot read the configuration: No such file"):
        read_settings(tmp_path / "nothing.yaml", {})
    (tmp_path / "bad.yaml").write_text("bridge: [unclosed\n")
    with pytest.raises(ProxyConfigError, match="bad.yaml: not valid YAML"):
        read_settings(tmp_path / "bad.yaml", {})
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ProxyConfigError, match="list.yaml: the top level must be a mapping, not list"):
        read_settings(tmp_path / "list.yaml", {})


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    settings = read_settings(write(tmp_path, FULL), {})
    proxy = GatewayProxy(settings)
    shown = repr(settings) + repr(proxy) + repr(proxy._http) + repr(proxy._amqp)
    for secret in ("second-key-456", SECRET, "pa55word"):
        assert secret not in shown
    assert "amqp://user:***@rabbit:5672/%2F" in repr(proxy)


# -- JWT: minted here, accepted by the gateway's verifier ---------------------------------------------------


def jwt_proxy(**auth: Any) -> GatewayProxy:
    return GatewayProxy(parse_settings({"auth": {"secret": SECRET, **auth}}, {}))


def test_a_jwt_minted_here_passes_the_gateways_check() -> None:
    token = jwt_proxy().jwt("alice", roles=("staff", "red"))
    login = verify_jwt(token, SECRET, "gateway", 24 * 3600)
    assert (login.user, login.roles, login.method) == ("alice", ("red", "staff"), "jwt")
    claims = json.loads(_b64decode(token.split(".")[1]))
    assert claims["aud"] == "gateway" and claims["exp"] - claims["iat"] == 3600
    with pytest.raises(AuthFailure, match="signature does not match"):
        verify_jwt(token, "x" * 40, "gateway")


def test_a_jwts_lifetime_is_capped_at_max_jwt_ttl() -> None:
    token = jwt_proxy(max_jwt_ttl=600).jwt("alice", ttl=10 * 24 * 3600)
    claims = json.loads(_b64decode(token.split(".")[1]))
    assert claims["exp"] - claims["iat"] <= 600
    verify_jwt(token, SECRET, "gateway", max_ttl=600)  # the gateway takes it: not too far ahead
    assert _jwt.lifetime(None, 600) == 600 and _jwt.lifetime(30, 600) == 30


@pytest.mark.parametrize("user,roles,ttl,expected", [
    ("", (), None, "user must be 1 to 255 characters"),
    (5, (), None, "user must be a string, not a number"),
    ("alice", ["Staff"], None, r"roles\[0\] \('Staff'\) must be a lower-case name"),
    ("alice", ["backend"], None, "the gateway's own role"),
    ("alice", "staff", None, "roles must be a list of role names, not a string"),
    ("alice", (), 0, "ttl must be a number of seconds more than 0"),
    ("alice", (), "60", "ttl must be a number of seconds more than 0"),
])
def test_bad_jwt_requests_are_refused_before_signing(user: Any, roles: Any, ttl: Any, expected: str) -> None:
    with pytest.raises(RequestRejected, match=expected) as exc:
        jwt_proxy().jwt(user, roles, ttl)
    assert exc.value.status == 400 and exc.value.code == "invalid_request"


def test_without_auth_secret_jwt_is_a_config_error() -> None:
    with pytest.raises(ProxyConfigError, match="auth.secret is not set"):
        GatewayProxy(parse_settings({}, {})).jwt("alice")


def _b64decode(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- the envelope rules are the bridge's ----------------------------------------------------------------------

AUDIENCES: list[Any] = [
    {"users": ["bob", "alice", "bob"]}, {"roles": ["staff"]}, {"users": [], "roles": []}, {}, [],
    {"users": "alice"}, {"users": [5]}, {"users": [" alice"]}, {"roles": ["Staff"]}, {"groups": ["x"]},
    {"users": ["a\x00b"]}, {"users": ["x" * 256]}, {"users": ["alice"], "roles": ["red", "blue"]}, None, "alice",
]


@pytest.mark.parametrize("audience", AUDIENCES)
def test_an_audience_is_judged_as_the_bridge_judges_it(audience: Any) -> None:
    theirs = gateway_check_audience(audience)
    try:
        mine: Any = check_audience(audience)
    except EventRejected as exc:
        assert isinstance(theirs, Answer)
        assert (exc.status, exc.code, exc.message, exc.details) == \
               (theirs.status, theirs.body["error"], theirs.body["message"], theirs.body["details"])
    else:
        assert mine == theirs


def test_an_audience_may_be_given_with_tuples_and_sets() -> None:
    assert check_audience({"users": ("b", "a"), "roles": {"staff"}}) == {"users": ["a", "b"], "roles": ["staff"]}


@pytest.mark.parametrize("value", ["alice", "", " alice", "a" * 256, "a\nb", 5, None, "Ünïcode user"])
def test_users_are_judged_as_the_gateway_judges_them(value: Any) -> None:
    _same(lambda: check_user(value), lambda: gateway_check_user(value))


@pytest.mark.parametrize("value", [None, [], ["staff"], ["b", "a", "a"], ["Staff"], ["backend"], "staff",
                                   ["x"] * 33, [5], ["anonymous"]])
def test_roles_are_judged_as_the_gateway_judges_them(value: Any) -> None:
    _same(lambda: check_roles(value), lambda: list(gateway_check_roles(value)))


def _same(mine: Any, theirs: Any) -> None:
    try:
        expected = theirs()
    except AuthFailure as exc:
        with pytest.raises(ValueError) as got:
            mine()
        assert str(got.value) == str(exc)
    else:
        assert mine() == expected


class Colour(enum.Enum):
    RED = "red"


def test_data_is_made_json_as_pydantic_writes_it() -> None:
    when = dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.timezone.utc)
    data = {"when": when, "day": dt.date(2025, 1, 31), "amount": decimal.Decimal("1.10"), "ids": (1, 2),
            "tags": {"b", "a"}, "colour": Colour.RED, "uid": uuid.UUID(int=1), "n": None}
    assert json_data(data) == {"when": "2025-01-31T09:30:00+00:00", "day": "2025-01-31", "amount": "1.10",
                               "ids": [1, 2], "tags": ["a", "b"], "colour": "red",
                               "uid": "00000000-0000-0000-0000-000000000001", "n": None}


@pytest.mark.parametrize("data,path,message,code", [
    ({"x": math.nan}, "data.x", "NaN and Infinity are not JSON numbers", "invalid_number"),
    ({"x": [1, object()]}, "data.x.1", "must be JSON data, not a object object", "invalid_event"),
    ({"x": {1: "a"}}, "data.x", "object keys must be strings, not a number (1)", "invalid_event"),
    ({"x": decimal.Decimal("Infinity")}, "data.x", "NaN and Infinity", "invalid_number"),
])
def test_data_json_cannot_hold_is_refused_naming_where(data: Any, path: str, message: str, code: str) -> None:
    with pytest.raises(EventRejected) as exc:
        json_data(data)
    assert exc.value.details[0]["path"] == path and message in exc.value.details[0]["message"]
    assert exc.value.status == 400 and exc.value.code == code


#: The gateway's rules, as the bridge applies them to a POST /events body.
BRIDGE = BridgeLogic((ApiKey(name="k", key="key-12345678"),),
                     Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO), 1 << 20)


@pytest.mark.parametrize("data", [
    {"order_id": 10**40, "amount": 1},
    {"order_id": 2**63, "amount": 1.5},
    {"order_id": -2**63 - 1, "amount": 1.5},
    {"order_id": 1, "amount": math.nan},
    {"order_id": 1, "amount": -math.inf, "tags": [1, 10**400], "customer": {"id": 2**64}},
    {"order_id": 1, "amount": 1, "tags": list(range(2**63, 2**63 + 30))},  # more than are listed
])
def test_numbers_the_gateway_cannot_carry_are_refused_here_in_its_words(offline: GatewayProxy, data: Any) -> None:
    # The gateway reads the body as JSON; Python's json writes NaN and Infinity as the literals it refuses.
    gateway = BRIDGE.parse_event(json.dumps({"event": "demo.order", "id": "x-1", "data": data}).encode())
    assert isinstance(gateway, Answer) and gateway.body["error"] == "invalid_number"
    for call in (lambda: offline.publish("demo.order", data, id="x-1"),
                 lambda: _raise_first(offline.publish_many([("demo.order", data)]))):
        with pytest.raises(EventRejected) as exc:
            call()
        assert (exc.value.status, exc.value.code, exc.value.message, exc.value.details) == (
            gateway.status, gateway.body["error"], gateway.body["message"], gateway.body["details"])
    with pytest.raises(EventRejected) as unchecked:  # validate=False: the edge's rules still hold
        GatewayProxy(offline.settings, validate=False).publish("demo.order", data)
    assert unchecked.value.code == "invalid_number"


def test_the_64_bit_edges_pass_here_as_at_the_gateway(offline: GatewayProxy) -> None:
    body = offline._body("demo.order", {"order_id": 2**63 - 1, "amount": -2**63, "country": "AR", "tags": [],
                                        "customer": {"id": -2**63, "name": "A"}}, None, None)
    assert body["data"]["order_id"] == 2**63 - 1


def _raise_first(results: list[Any]) -> None:
    assert len(results) == 1
    if isinstance(results[0], Exception):
        raise results[0]


def test_data_nested_past_bridge_max_depth_is_refused_here(offline: GatewayProxy) -> None:
    def nested(levels: int) -> Any:
        deep: Any = "x"
        for _ in range(levels):
            deep = [deep]
        return deep

    limit = offline.settings.max_depth
    # A single body puts the data at level 2; a batch (HTTP, XML-RPC) at level 4.
    single = {"room": "r", "text": "t", "author": "a", "x": nested(limit - 2)}
    with pytest.raises(EventRejected, match="does not match the event class"):  # not too deep: the class refuses x
        offline.publish("demo.message", single)
    with pytest.raises(EventRejected) as exc:
        offline.publish("demo.message", {**single, "x": nested(limit - 1)})
    assert exc.value.code == "too_deep" and "more than 32 levels deep (bridge.max_depth), at data.x" in str(exc.value)
    [batched] = offline.publish_many([("demo.message", single)])
    assert isinstance(batched, EventRejected) and batched.code == "too_deep"
    assert "a batch holds the data of its events 2 levels deeper" in batched.message
    with pytest.raises(EventRejected, match="too_deep"):  # a hundred thousand levels: refused, no RecursionError
        offline.publish("demo.message", {**single, "x": nested(100_000)})


# -- retries --------------------------------------------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_ceiling_with_full_jitter() -> None:
    backoff = Backoff(retries=7, first=0.2, longest=5)
    assert [backoff.ceiling(i) for i in range(7)] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5, 5])
    assert backoff.delay(3, rng=lambda: 0.5) == pytest.approx(0.8)
    assert backoff.delay(3, rng=lambda: 0.0) == 0.0
    assert Backoff(3, 0, 5).ceiling(2) == 0 and Backoff(200, 1, 10).ceiling(1000) == 10


def test_transient_failures_are_retried_then_the_result_returned() -> None:
    attempts: list[int] = []
    slept: list[float] = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Transient("connection refused", False)
        return "done"

    assert with_retries(attempt, Backoff(5, 0.1, 1), "publishing x", ["id-1"], sleep=slept.append) == "done"
    assert len(attempts) == 3 and len(slept) == 2 and slept[0] <= 0.1 and slept[1] <= 0.2


def test_after_the_last_retry_gateway_unavailable_says_how_many_why_and_what_to_do() -> None:
    reasons = iter([Transient("no answer within 10 s", True), Transient("connection refused", False),
                    Transient("connection refused", False)])

    def attempt() -> None:
        raise next(reasons)

    with pytest.raises(GatewayUnavailable) as exc:
        with_retries(attempt, Backoff(2, 0, 0), "publishing demo.message", ["id-1"], sleep=lambda s: None)
    error = exc.value
    assert (error.attempts, error.last_error, error.maybe_accepted, error.ids) == \
           (3, "connection refused", True, ["id-1"])
    assert str(error) == ("publishing demo.message failed after 3 attempts; the last: connection refused. It may "
                          "have been accepted: retry later with id 'id-1' (accepted at most once)")


def test_a_refusal_is_never_retried() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise EventRejected(400, "invalid_event", "bad")

    with pytest.raises(EventRejected):
        with_retries(attempt, Backoff(5, 0, 0), "x", sleep=lambda s: None)
    assert calls == [1]


# -- what the gateway's answers mean --------------------------------------------------------------------------


@pytest.mark.parametrize("status,message,raised,maybe", [
    (202, "", None, None),
    (503, "no dispatcher is running; the event was not accepted", Transient, False),
    (503, "the dispatcher stopped while publishing; it may or may not have been delivered", Transient, True),
    (502, "bad gateway", Transient, True),
    (504, "gateway timeout", Transient, True),
    (400, "the data does not match", EventRejected, None),
    (404, "no event class named 'x'", EventRejected, None),
    (409, "the id was used by another class", EventRejected, None),
    (413, "too large", EventRejected, None),
    (401, "the API key is not valid", ProxyConfigError, None),
    (403, "forbidden", ProxyConfigError, None),
    (500, "the gateway failed", ProxyError, None),
])
def test_each_status_means_one_thing(status: int, message: str, raised: type[Exception] | None,
                                     maybe: bool | None) -> None:
    if raised is None:
        check_answer(status, "ok", message, None, EventRejected, "web", "the gateway")
        return
    with pytest.raises(raised) as exc:
        check_answer(status, "code", message, [{"path": "data.x"}], EventRejected, "web", "the gateway")
    if maybe is not None:
        assert isinstance(exc.value, Transient) and exc.value.maybe_accepted is maybe
    if raised is ProxyConfigError:
        assert "refused the API key named 'web'" in str(exc.value)
    if raised is EventRejected:
        assert isinstance(exc.value, EventRejected) and exc.value.status == status
        assert exc.value.details == [{"path": "data.x"}]


def test_answers_of_any_shape_are_read() -> None:
    assert from_http_body(400, {"error": "invalid_event", "message": "m", "details": [{"path": "data"}]}) == \
           ("invalid_event", "m", [{"path": "data"}])
    assert from_http_body(502, "<html><body>\n  Bad   Gateway</body></html>") == \
           ("http_502", "<html><body> Bad Gateway</body></html>", None)
    assert from_http_body(504, b"") == ("http_504", "no explanation in the answer", None)
    assert from_fault(404, "unknown_event: no event class named 'x'") == \
           (404, "unknown_event", "no event class named 'x'")
    assert from_fault(-32602, "publish: parameter 2 (data) must be a struct") == \
           (500, "fault", "publish: parameter 2 (data) must be a struct")
    assert batch_item_details([{"path": "events.12.data.x", "message": "m"}, {"path": "events.3.id"}]) == \
           [{"path": "data.x", "message": "m"}, {"path": "id"}]


# -- the proxy refuses bad calls before any request ----------------------------------------------------------


@pytest.fixture
def offline() -> GatewayProxy:
    """A proxy whose gateway is nowhere: these calls must fail before sending anything."""
    return GatewayProxy(parse_settings({"bridge": {"port": 1, "max_body_bytes": 2048}, "proxy": {"retries": 0}},
                                       {}, base=REPO))


@pytest.mark.parametrize("call,expected", [
    (lambda p: p.publish("demo.message"), (TypeError, r"publish\('demo.message'\) needs the event's data")),
    (lambda p: p.publish(42, {}), (TypeError, "takes an Event instance, or an event class name and its data")),
    (lambda p: p.publish("demo.message", {}, id="has space"), (EventRejected, "'id' must be a string of 1 to 128")),
    (lambda p: p.publish("demo.message", {}, audience={"users": []}), (EventRejected, "names no users and no roles")),
    (lambda p: p.publish("demo.message", {"room": "r", "text": "x" * 3000, "author": "a"}),
     (EventRejected, "over the gateway's limit of 2048 bytes")),
    (lambda p: p.publish("demo.message", {"room": 1}), (EventRejected, "does not match the event class demo.message")),
    (lambda p: p.client_config(credentials="cookie"), (ValueError, "credentials must be 'ticket' or 'jwt'")),
    (lambda p: p.client_config(roles=["staff"]), (ValueError, "roles were given without a user")),
    (lambda p: p.ticket("alice", ttl=-1), (RequestRejected, "ttl must be a number of seconds, more than 0")),
    (lambda p: p.ticket("", ["staff"]), (RequestRejected, "user must be 1 to 255 characters")),
])
def test_bad_calls_fail_before_anything_is_sent(offline: GatewayProxy, call: Any,
                                                expected: tuple[type[Exception], str]) -> None:
    with pytest.raises(expected[0], match=expected[1]):
        call(offline)


def test_an_event_instance_is_named_by_its_class_and_takes_no_data(offline: GatewayProxy) -> None:
    from examples.demo_events import Message

    with pytest.raises(TypeError, match="takes an Message instance alone"):
        offline.publish(Message(room="r", text="t", author="a"), {"room": "r"})
    assert offline._named(Message(room="r", text="t", author="a"), None) == \
           ("demo.message", {"room": "r", "text": "t", "author": "a"})


def test_publish_many_refuses_each_bad_item_in_place(offline: GatewayProxy) -> None:
    results = offline.publish_many([42, {"event": "demo.message"}, {"event": "demo.message", "data": {},
                                    "colour": 1}, ("demo.message", {"room": 1, "text": "t", "author": "a"}),
                                    {"event": 5, "data": {}}])
    assert all(isinstance(r, EventRejected) for r in results)
    assert [r.message for r in results if isinstance(r, EventRejected)] == [
        "item 0 is int: expected an Event instance, a (name, data) pair or a dict like a POST /events body",
        "item 1 has no 'data'",
        "unknown key(s) in item 2: colour (expected event, data, id, audience)",
        "the data does not match the event class demo.message",
        "item 4: 'event' must be a string",
    ]
    assert offline.publish_many([]) == []


# -- local validation by the catalog (when the event classes cannot be loaded here) -------------------------

ROOM = {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"],
        "additionalProperties": False}


class Catalog:
    """A fake GET /catalog: the schemas it serves, how often it was asked, whether it is down."""

    def __init__(self) -> None:
        self.classes: dict[str, Any] = {"demo.room": ROOM}
        self.fetches = 0
        self.down = False

    def __call__(self) -> Any:
        self.fetches += 1
        if self.down:
            raise Transient("connection refused", False)
        return {"version": "v", "classes": [{"name": n, "schema": s} for n, s in self.classes.items()]}


@pytest.fixture
def by_catalog() -> tuple[LocalValidator, Catalog, list[float]]:
    catalog, now = Catalog(), [1000.0]
    settings = ProxySettings(source="test", event_modules=("no_such_module_here",))
    validator = LocalValidator(settings, catalog, clock=lambda: now[0])
    assert validator.tier == "catalog"  # the classes could not be loaded: the catalog serves
    return validator, catalog, now


def test_the_catalog_is_fetched_once_and_checks_data(by_catalog: Any) -> None:
    validator, catalog, _ = by_catalog
    assert validator.check("demo.room", {"room": "lobby"}) == {"room": "lobby"}
    with pytest.raises(EventRejected) as exc:
        validator.check("demo.room", {"room": 5, "x": 1})
    assert exc.value.code == "invalid_event" and [d["path"] for d in exc.value.details] == ["data.room", "data.x"]
    assert catalog.fetches == 1


def test_an_unknown_class_fetches_the_catalog_again_at_most_every_few_seconds(by_catalog: Any) -> None:
    validator, catalog, now = by_catalog
    validator.check("demo.room", {"room": "a"})
    with pytest.raises(EventRejected, match=r"no event class named 'demo.new' \(known: demo.room\)"):
        validator.check("demo.new", {})
    assert catalog.fetches == 1  # fetched a moment ago: not again
    catalog.classes["demo.new"] = {"type": "object"}  # the gateway reloaded its definitions
    now[0] += REFETCH_AFTER
    assert validator.check("demo.new", {"n": 1}) == {"n": 1} and catalog.fetches == 2


def test_a_refusal_is_checked_again_against_a_fresher_catalog(by_catalog: Any) -> None:
    validator, catalog, now = by_catalog
    validator.check("demo.room", {"room": "a"})
    catalog.classes["demo.room"] = {**ROOM, "additionalProperties": True}  # a field was allowed since
    now[0] += REFETCH_AFTER
    assert validator.check("demo.room", {"room": "a", "x": 1}) == {"room": "a", "x": 1}


def test_without_a_catalog_events_go_unchecked(by_catalog: Any) -> None:
    validator, catalog, now = by_catalog
    catalog.down = True
    assert validator.check("demo.room", {"room": 5}) == {"room": 5}  # the gateway (or dead-lettering) judges
    assert validator.check("demo.room", {"room": 6}) == {"room": 6} and catalog.fetches == 1
    catalog.down = False
    now[0] += REFETCH_AFTER
    with pytest.raises(EventRejected):
        validator.check("demo.room", {"room": 7})


def test_the_event_classes_themselves_check_when_they_load(offline: GatewayProxy) -> None:
    validator = offline._validator
    assert validator.tier == "classes"
    assert validator.check("demo.order", {"order_id": 1, "amount": 5, "country": "AR", "tags": [],
                                          "customer": {"id": 1, "name": "x"}})["amount"] == 5
    with pytest.raises(EventRejected) as exc:
        validator.check("demo.order", {"order_id": "1"})
    assert exc.value.details[0] == {"path": "data.order_id", "message": "Input should be a valid integer, not a "
                                    "string", "type": "int_type"}


def test_a_refusal_by_older_classes_here_is_judged_by_the_gateways_newer_catalog() -> None:
    from components.events import Registry

    settings = ProxySettings(source="test", event_modules=("examples.demo_events",))
    loaded = Registry.load(["examples.demo_events"])
    catalog, now = Catalog(), [1000.0]
    catalog.classes = {"demo.message": {"type": "object"}}  # the gateway has since relaxed demo.message
    validator = LocalValidator(settings, lambda: {**catalog(), "version": version[0]}, clock=lambda: now[0])
    version = [loaded.version]  # first the same definitions as here: the refusal stands
    with pytest.raises(EventRejected):
        validator.check("demo.message", {"room": "lobby"})
    version[0] = "newer"
    now[0] += REFETCH_AFTER
    assert validator.check("demo.message", {"room": "lobby"}) == {"room": "lobby"}
    assert validator.tier == "classes"


# -- connections per thread and process -----------------------------------------------------------------------


class Conn:
    def __init__(self) -> None:
        self.closed = 0


def test_each_thread_has_its_own_connection_closed_when_the_thread_ends() -> None:
    import gc
    import threading

    from webapp_bridge.proxy._connections import Connections

    closed: list[Conn] = []
    connections = Connections(closed.append)
    mine = Conn()
    connections.keep(mine)
    seen: list[Any] = []

    def other_thread() -> None:
        seen.append(connections.get())  # nothing yet in this thread
        connections.keep(Conn())

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    gc.collect()
    assert seen == [None] and len(closed) == 1 and closed[0] is not mine  # the ended thread's, at once
    assert connections.get() is mine
    connections.close_all()
    assert closed[-1] is mine and connections.get() is None


def test_a_connection_made_before_a_fork_is_not_used_nor_closed_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    from webapp_bridge.proxy import _connections

    closed: list[Conn] = []
    connections = _connections.Connections(closed.append)
    parents = Conn()
    connections.keep(parents)
    monkeypatch.setattr(_connections.os, "getpid", lambda: -1)  # now "in the child"
    assert connections.get() is None
    connections.keep(Conn())
    connections.close_all()
    assert len(closed) == 1 and closed[0] is not parents


def test_the_amqp_transport_without_pika_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pika", None)  # import pika now raises ImportError
    settings = parse_settings({"amqp": {"url": "amqp://guest:guest@127.0.0.1:1/%2F"}, "proxy": {"transport": "amqp"}},
                              {})
    with pytest.raises(ProxyConfigError, match=r"needs the pika package: pip install pika"):
        GatewayProxy(settings)


def test_a_child_forked_while_the_connections_lock_is_held_does_not_deadlock() -> None:
    import signal

    conns = Connections(lambda c: None)
    with conns._lock:  # as if another thread held it at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the child: keep() must not wait for a lock no thread of it will release
            try:
                conns.keep(object())
                conns.close_all()
            finally:
                os._exit(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child deadlocked on the lock it inherited held")
