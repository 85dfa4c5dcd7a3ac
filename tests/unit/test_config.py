from pathlib import Path

import pytest
import yaml

from components.cli import render_text
from components.config import EXAMPLE_API_KEY, is_loopback, load_config, parse_config
from components.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_loopback_with_the_documented_ports() -> None:
    cfg = parse_config({})
    assert (cfg.router.host, cfg.router.port, cfg.router.realm) == ("127.0.0.1", 8080, "gateway")
    assert (cfg.bridge.host, cfg.bridge.port) == ("127.0.0.1", 8081)
    assert cfg.bridge.max_body_bytes == 1024 * 1024


def test_the_repo_gateway_yaml_is_valid_and_matches_the_defaults() -> None:
    loaded = load_config(REPO / "gateway.yaml", {})
    assert loaded.model_copy(update={"events": parse_config({}).events}) == parse_config({})
    assert loaded.events.modules == ("examples.demo_events",)


def test_definition_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("events:\n  files: [defs/a.yaml, /abs/b.yaml]\n")
    cfg = load_config(tmp_path / "gateway.yaml", {})
    assert cfg.events.files == (str(tmp_path / "defs" / "a.yaml"), "/abs/b.yaml")


def test_env_overrides_ports_hosts_and_keys() -> None:
    cfg = parse_config({"bridge": {"port": 9000}}, {
        "GATEWAY_ROUTER_PORT": "9100", "GATEWAY_BRIDGE_PORT": "9101",
        "GATEWAY_API_KEY": "first-key-123, second-key-456", "GATEWAY_ROUTER_HOST": "::1",
    })
    assert cfg.router.port == 9100 and cfg.bridge.port == 9101 and cfg.router.host == "::1"
    assert [(k.name, k.key) for k in cfg.bridge.api_keys] == [("key-1", "first-key-123"), ("key-2", "second-key-456")]


def test_an_empty_env_value_does_not_override() -> None:
    assert parse_config({}, {"GATEWAY_ROUTER_PORT": ""}).router.port == 8080


def test_a_bad_env_value_names_the_variable_and_the_path() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({}, {"GATEWAY_BRIDGE_PORT": "eighty"})
    assert "in bridge.port (from env GATEWAY_BRIDGE_PORT)" in str(exc.value)
    assert "'eighty'" in str(exc.value)


def test_errors_name_the_file_the_path_and_the_value() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"router": {"port": 70000}}, source="my.yaml")
    message = str(exc.value)
    assert message.startswith("my.yaml: in router.port:") and "70000" in message


def test_every_error_is_reported_not_just_the_first() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"router": {"port": 0}, "bridge": {"max_body_bytes": -1}})
    assert "router.port" in str(exc.value) and "bridge.max_body_bytes" in str(exc.value)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"in bridge\.prot: unknown key"):
        parse_config({"bridge": {"prot": 80}})
    with pytest.raises(ConfigError, match=r"in routr: unknown key"):
        parse_config({"routr": {}})


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"in bridge"):
        parse_config({"bridge": "8081"})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(["a"])


def test_the_example_key_is_refused_beyond_loopback() -> None:
    with pytest.raises(ConfigError, match="example key"):
        parse_config({"bridge": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="example key"):
        parse_config({}, {"GATEWAY_BRIDGE_HOST": "192.0.2.10"})
    cfg = parse_config({"bridge": {"host": "0.0.0.0", "api_keys": ["a-real-secret-key"]}})
    assert not cfg.bridge.has_key(EXAMPLE_API_KEY)


def test_router_and_bridge_cannot_share_a_port() -> None:
    with pytest.raises(ConfigError, match="both 8081"):
        parse_config({"router": {"port": 8081}})


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org", ""))


def test_unreadable_and_invalid_yaml_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("router: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, {})


def test_the_committed_crossbar_config_is_the_rendering_of_gateway_yaml() -> None:
    # `crossbar start` from the repo root uses .crossbar/config.yaml as it is;
    # if this fails, run `make crossbar-config` after editing gateway.yaml.
    cfg = load_config(REPO / "gateway.yaml", {})
    expected = render_text(cfg)
    assert (REPO / ".crossbar" / "config.yaml").read_text() == expected
    assert yaml.safe_load(expected)["version"] == 2


def test_api_keys_have_names_and_bare_keys_are_named_by_position() -> None:
    cfg = parse_config({"bridge": {"api_keys": [{"name": "shop", "key": "shop-key-123"}, "bare-key-456"]}})
    assert [(k.name, k.key) for k in cfg.bridge.api_keys] == [("shop", "shop-key-123"), ("key-2", "bare-key-456")]
    assert "shop-key-123" not in repr(cfg), "a key never shows in a repr (or a log line made from one)"


@pytest.mark.parametrize("keys,why", [
    ([{"name": "a", "key": "k-123456789"}, {"name": "a", "key": "k-987654321"}], "'a' is used twice"),
    ([{"name": "a", "key": "k-123456789"}, {"name": "b", "key": "k-123456789"}], "same key is listed twice"),
    ([{"name": "a b", "key": "k-123456789"}], "bridge.api_keys.0.name"),
    ([{"name": "a", "key": "short"}], "bridge.api_keys.0.key"),
    ([{"key": "k-123456789"}], "bridge.api_keys.0.name"),
])
def test_bad_api_keys(keys: list[object], why: str) -> None:
    with pytest.raises(ConfigError, match=why.replace(".", r"\.")):
        parse_config({"bridge": {"api_keys": keys}})


def test_auth_settings_and_their_limits() -> None:
    cfg = parse_config({"auth": {"secret": "s" * 32, "user_role": "member", "client_token_ttl": 3600}},
                       {"GATEWAY_SECRET": "e" * 40})
    assert cfg.auth.secret == "e" * 40 and cfg.auth.user_role == "member" and cfg.auth.client_token_ttl == 3600
    with pytest.raises(ConfigError, match=r"auth\.secret \(from env GATEWAY_SECRET\).*at least 32"):
        parse_config({}, {"GATEWAY_SECRET": "short"})
    with pytest.raises(ConfigError, match="over max_ticket_ttl"):
        parse_config({"auth": {"ticket_ttl": 100, "max_ticket_ttl": 50}})
    with pytest.raises(ConfigError, match="gateway's own"):
        parse_config({"auth": {"user_role": "anonymous"}})


def test_jwt_logins_are_off_until_a_secret_is_set() -> None:
    assert parse_config({}).auth.secret is None
    assert parse_config({}, {"GATEWAY_SECRET": "x" * 32}).auth.secret == "x" * 32


@pytest.mark.parametrize("raw,env,secret", [
    ({"bridge": {"api_keys": [{"name": "shop", "key": "short"}]}}, {}, "short"),
    ({"bridge": {"api_keys": [{"name": "a b", "key": "key-secret-123"}]}}, {}, "key-secret-123"),
    ({"bridge": {"api_keys": ["tiny"]}}, {}, "tiny"),
    ({}, {"GATEWAY_API_KEY": "tiny2"}, "tiny2"),
    ({"auth": {"secret": "too-short-secret"}}, {}, "too-short-secret"),
    ({}, {"GATEWAY_SECRET": "too-short-secret"}, "too-short-secret"),
    ({"backend": {"secret": "shortsecret"}}, {}, "shortsecret"),
    ({"amqp": {"url": "http://user:hunter2@host/"}}, {}, "hunter2"),
])
def test_an_error_about_a_secret_never_shows_it(raw: dict[str, object], env: dict[str, str], secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env)
    assert secret not in str(caught.value)
    assert "in " in str(caught.value)  # still says where


def test_amqp_and_proxy_settings() -> None:
    cfg = parse_config({"amqp": {"url": "amqp://guest:guest@127.0.0.1:5672/%2F"}, "proxy": {"transport": "amqp"}})
    assert cfg.amqp.queue == "gateway.events" and cfg.amqp.dead_letter_queue == "gateway.events.dead"
    assert "guest:guest" not in repr(cfg.amqp)
    env = {"GATEWAY_AMQP_URL": "amqps://u:p@broker/vh", "GATEWAY_PROXY_TRANSPORT": "xmlrpc"}
    cfg = parse_config({}, env)
    assert cfg.amqp.url == "amqps://u:p@broker/vh" and cfg.proxy.transport == "xmlrpc"
    with pytest.raises(ConfigError, match="amqp.url is not set"):
        parse_config({"proxy": {"transport": "amqp"}})
    with pytest.raises(ConfigError, match="bad messages would come back"):
        parse_config({"amqp": {"queue": "q", "dead_letter_queue": "q"}})
    with pytest.raises(ConfigError, match=r"proxy\.api_key_name.*'nope'.*not the name"):
        parse_config({"proxy": {"api_key_name": "nope"}})
    with pytest.raises(ConfigError, match=r"in proxy\.transport"):
        parse_config({"proxy": {"transport": "smtp"}})
    with pytest.raises(ConfigError, match=r"in router\.public_url"):
        parse_config({"router": {"public_url": "http://example.com/ws"}})


def test_client_bounds_default_to_generous_and_name_their_key_when_wrong() -> None:
    queries = parse_config({}).queries
    assert (queries.max_persistent_per_token, queries.max_persistent_per_user, queries.anonymous_persistent,
            queries.max_persistent_per_anonymous_token, queries.max_anonymous_persistent) == (50, 200, True, 5, 10_000)
    assert (queries.calls_per_second, queries.call_burst) == (50, 200)
    with pytest.raises(ConfigError, match=r"in queries.calls_per_second: .*greater than 0 \(got 0\)"):
        parse_config({"queries": {"calls_per_second": 0}})
    with pytest.raises(ConfigError, match=r"in queries.max_persistent_per_anonymous_token: .* \(got -1\)"):
        parse_config({"queries": {"max_persistent_per_anonymous_token": -1}})


def test_router_guard_settings_default_and_env() -> None:
    router = parse_config({}).router
    assert (router.allowed_origins, router.max_connections_per_address, router.trusted_proxies,
            router.max_client_buffer, router.max_message_depth) == ((), 100, ("127.0.0.1", "::1"), 4 * 1024 * 1024, 64)
    router = parse_config({"router": {"allowed_origins": ["https://shop.example.com", "http://localhost:3000/"],
                                      "max_connections_per_address": None}}, {
        "GATEWAY_ROUTER_MAX_CLIENT_BUFFER": "1048576", "GATEWAY_ROUTER_MAX_CONNECTIONS_PER_ADDRESS": "7"}).router
    assert router.allowed_origins == ("https://shop.example.com:443", "http://localhost:3000")
    assert router.max_client_buffer == 1048576 and router.max_connections_per_address == 7
    assert parse_config({}, {"GATEWAY_ROUTER_ALLOWED_ORIGINS": "https://a.example, *"}).router.allowed_origins == (
        "https://a.example:443", "*")


@pytest.mark.parametrize("router,env,where", [
    ({"allowed_origins": ["shop.example.com"]}, {}, "in router.allowed_origins: 'shop.example.com' is not an origin"),
    ({}, {"GATEWAY_ROUTER_ALLOWED_ORIGINS": "https://x.com/page"},
     "in router.allowed_origins (from env GATEWAY_ROUTER_ALLOWED_ORIGINS): 'https://x.com/page' is not an origin"),
    ({"trusted_proxies": ["10.0.0.0/8", "proxy.local"]}, {}, "in router.trusted_proxies: 'proxy.local' is not an IP"),
    ({"max_client_buffer": 1000}, {}, "in router.max_client_buffer: Input should be greater than or equal to 262144"),
    ({}, {"GATEWAY_ROUTER_MAX_CONNECTIONS_PER_ADDRESS": "0"},
     "in router.max_connections_per_address (from env GATEWAY_ROUTER_MAX_CONNECTIONS_PER_ADDRESS)"),
    ({"max_message_depth": 1000}, {}, "in router.max_message_depth: Input should be less than or equal to 256"),
])
def test_bad_router_guard_settings_name_their_key(router: dict[str, object], env: dict[str, str], where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"router": router}, env)
    assert where in str(exc.value)


# -- a cluster (docs/cluster.md) ------------------------------------------------------

PG = {"GATEWAY_STORE_URL": "postgresql://gateway@db.internal:5432/gateway"}


def test_a_cluster_is_turned_on_by_env_with_the_postgresql_store() -> None:
    cfg = parse_config({}, {**PG, "GATEWAY_CLUSTER": "1", "GATEWAY_NODE_NAME": "node-a", "GATEWAY_STORE_SCHEMA": "gw"})
    assert (cfg.cluster.enabled, cfg.cluster.node_name, cfg.store.schema_name) == (True, "node-a", "gw")
    assert cfg.cluster.log_retention == 300 and not parse_config({}).cluster.enabled


@pytest.mark.parametrize("raw, env, says", [
    ({"cluster": {"enabled": True}}, {}, "cluster.enabled is on but store.url is not set"),
    ({}, {"GATEWAY_CLUSTER": "1"}, "a cluster's nodes share a PostgreSQL store"),
    ({"cluster": {"enabled": True}}, {**PG, "GATEWAY_NODE_NAME": "bad name"},
     "in cluster.node_name (from env GATEWAY_NODE_NAME): a node's name is 1 to 63 letters"),
    ({"cluster": {"node_name": "-x"}}, {}, "starting with a letter or digit (got '-x')"),
    ({"cluster": {"node_name": "x" * 64}}, {}, "1 to 63"),
    ({"cluster": {"log_retention": 5}}, {}, "in cluster.log_retention"),
    ({"cluster": {"enabled": "maybe"}}, PG, "in cluster.enabled"),
    ({"cluster": {"nodes": 3}}, PG, "in cluster.nodes: unknown key"),
])
def test_bad_cluster_settings_say_what_and_where(raw: dict[str, object], env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env)
    assert says in str(caught.value), str(caught.value)


def test_a_derived_node_name_is_the_hosts_and_the_directorys_and_never_shared(tmp_path: Path) -> None:
    from components.config import derived_node_name

    one, two = tmp_path / "a" / "node", tmp_path / "b" / "node"
    assert derived_node_name(one) == derived_node_name(one), "the same directory: the same name, run after run"
    assert derived_node_name(one) != derived_node_name(two), "two directories of one name: two names"
    assert "-node-" in derived_node_name(one)
    parse_config({"cluster": {"node_name": derived_node_name(tmp_path / ".crossbar")}})  # a valid name
