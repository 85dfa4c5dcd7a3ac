from typing import Any

from components.config import parse_config
from components.nodeconfig import render



def _node(raw: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return render(parse_config(raw or {}), **kw)


def _router(node: dict[str, Any]) -> dict[str, Any]:
    return next(w for w in node["workers"] if w["type"] == "router")


def test_web_transport_binds_the_configured_address_and_serializers() -> None:
    node = _node({"router": {"host": "127.0.0.2", "port": 9999}})
    web = next(t for t in _router(node)["transports"] if t["type"] == "web")
    assert web["endpoint"] == {"type": "tcp", "interface": "127.0.0.2", "port": 9999}
    assert web["paths"]["ws"]["serializers"] == ["json", "msgpack", "cbor"]
    assert web["paths"]["/"]["type"] == "static"


def test_no_tcp_endpoint_is_left_on_all_interfaces() -> None:
    def endpoints(obj: Any) -> list[dict[str, Any]]:
        if isinstance(obj, dict):
            found = [obj] if obj.get("type") == "tcp" else []
            return found + [e for v in obj.values() for e in endpoints(v)]
        if isinstance(obj, list):
            return [e for v in obj for e in endpoints(v)]
        return []

    eps = endpoints(_node())
    assert eps and all(e.get("interface") == "127.0.0.1" for e in eps)


def test_components_authenticate_as_backend_over_the_unix_socket() -> None:
    node = _node(backend_secret="s3cret-s3cret-s3cret")
    backend = next(t for t in _router(node)["transports"] if t["type"] == "rawsocket")
    assert backend["endpoint"]["type"] == "unix"
    users = backend["auth"]["wampcra"]["users"]
    assert set(users) == {"authenticator", "dispatcher", "bridge"}
    assert all(u == {"secret": "s3cret-s3cret-s3cret", "role": "backend"} for u in users.values())
    assert "anonymous" not in backend["auth"]
    containers = [w for w in node["workers"] if w["type"] == "container"]
    assert len(containers) == 2, "two containers, so that either may die without an outage"
    for c in containers:
        assert c["options"]["restart"] == "restart-always"
        # The authorizer (in the dispatcher) first: no client joins before it can be authorized.
        assert [comp["classname"] for comp in c["components"]] == [
            "components.delivery.dispatcher.Dispatcher", "components.auth.authenticator.Authenticator",
            "webapp_bridge.server.component.Bridge"]
        for component in c["components"]:
            assert component["extra"]["secret"] == "s3cret-s3cret-s3cret"
            assert component["transport"]["endpoint"] == backend["endpoint"]


def test_a_worker_exit_does_not_shut_the_node_down() -> None:
    assert _node()["controller"]["options"]["shutdown"] == ["shutdown_on_shutdown_requested"]


def test_clients_are_judged_by_our_authorizer_and_the_backend_by_static_rules() -> None:
    roles = {r["name"]: r for r in _router(_node())["realms"][0]["roles"]}
    assert roles["anonymous"] == {"name": "anonymous", "authorizer": "gateway.authorize"}
    assert roles["user"] == {"name": "user", "authorizer": "gateway.authorize"}
    assert roles["backend"]["permissions"][0]["uri"] == "" and roles["backend"]["permissions"][0]["match"] == "prefix"


def test_the_user_role_is_the_configured_one() -> None:
    roles = {r["name"] for r in _router(_node({"auth": {"user_role": "member"}}))["realms"][0]["roles"]}
    assert roles == {"backend", "anonymous", "member"}


def test_every_client_is_authenticated_by_our_authenticator_in_the_gateway_realm() -> None:
    web = next(t for t in _router(_node())["transports"] if t["type"] == "web")
    auth = web["paths"]["ws"]["auth"]
    assert set(auth) == {"anonymous", "ticket"}
    for method in auth.values():
        assert method == {"type": "dynamic", "authenticator": "gateway.authenticate",
                          "authenticator-realm": "gateway"}


def _ws_options(node: dict[str, Any]) -> dict[str, Any]:
    web = next(t for t in _router(node)["transports"] if t["type"] == "web")
    options: dict[str, Any] = web["paths"]["ws"]["options"]
    return options


def test_the_router_worker_embeds_our_guards_with_their_settings() -> None:
    node = _node({"router": {"max_client_buffer": 1048576, "max_connections_per_address": None,
                             "max_message_depth": 32, "trusted_proxies": ["10.0.0.0/8"]}})
    [guard] = _router(node)["components"]
    assert guard["classname"] == "components.router_guard.component.RouterGuard"
    assert guard["role"] == "trusted" and guard["realm"] == "gateway"
    assert guard["extra"] == {"max_message_depth": 32, "max_client_buffer": 1048576,
                              "max_connections_per_address": None, "trusted_proxies": ["10.0.0.0/8"]}


def test_browsers_pages_are_the_gateways_own_public_url_and_the_listed_ones() -> None:
    options = _ws_options(_node({"router": {"port": 9000, "public_url": "wss://gw.example.com/ws",
                                            "allowed_origins": ["https://shop.example.com"]}}))
    assert options["allowed_origins"] == ["http://127.0.0.1:9000", "http://localhost:9000", "http://::1:9000",
                                          "https://gw.example.com:443", "https://shop.example.com:443"]
    assert options["allow_null_origin"] is False
    anything = _ws_options(_node({"router": {"allowed_origins": ["*"]}}))
    assert anything["allowed_origins"] == ["*"] and anything["allow_null_origin"] is True


def test_clients_never_learn_which_of_our_sessions_published() -> None:
    roles = {r["name"]: r for r in _router(_node())["realms"][0]["roles"]}
    assert roles["backend"]["permissions"][0]["disclose"] == {"caller": True, "publisher": False}
