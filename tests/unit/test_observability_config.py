"""metrics.enabled and status.operator_role: in gateway.yaml with env overrides, and where the router serves
the status page (and uPlot's files) from."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import parse_config
from components.exceptions import ConfigError
from components.nodeconfig import RenderPaths, render

REPO = Path(__file__).resolve().parents[2]


def test_metrics_count_and_the_operator_role_is_staff_by_default() -> None:
    cfg = parse_config({})
    assert cfg.metrics.enabled is True
    assert cfg.status.operator_role == "staff"


@pytest.mark.parametrize(("text", "enabled"), [("false", False), ("0", False), ("true", True), ("off", False)])
def test_metrics_enabled_from_env(text: str, enabled: bool) -> None:
    assert parse_config({"metrics": {"enabled": True}}, {"GATEWAY_METRICS_ENABLED": text}).metrics.enabled is enabled


def test_the_operator_role_from_gateway_yaml_and_env() -> None:
    assert parse_config({"status": {"operator_role": "ops"}}).status.operator_role == "ops"
    env = {"GATEWAY_STATUS_OPERATOR_ROLE": "oncall"}
    assert parse_config({"status": {"operator_role": "ops"}}, env).status.operator_role == "oncall"


@pytest.mark.parametrize(("raw", "env", "said"), [
    ({"metrics": {"enabled": "maybe"}}, {}, "in metrics.enabled"),
    ({}, {"GATEWAY_METRICS_ENABLED": "maybe"}, "in metrics.enabled (from env GATEWAY_METRICS_ENABLED)"),
    ({"status": {"operator_role": "Staff!"}}, {}, "in status.operator_role"),
    ({}, {"GATEWAY_STATUS_OPERATOR_ROLE": "a b"}, "in status.operator_role (from env GATEWAY_STATUS_OPERATOR_ROLE)"),
    ({"status": {"role": "staff"}}, {}, "in status.role: unknown key"),
])
def test_mistakes_name_the_key(raw: dict[str, object], env: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env)
    assert said in str(caught.value)


def test_the_router_serves_the_status_page_and_uplot_without_listing_them() -> None:
    node = render(parse_config({}))
    router = next(w for w in node["workers"] if w["type"] == "router")
    paths = next(t for t in router["transports"] if t["type"] == "web")["paths"]
    assert paths["status"] == {"type": "static", "directory": "../clients/status/page",
                               "options": {"enable_directory_listing": False}}
    assert paths["uplot"] == {"type": "static", "directory": "../node_modules/uplot/dist",
                              "options": {"enable_directory_listing": False}}


def test_paths_in_a_checkout_are_absolute_and_exist_once_installed() -> None:
    paths = RenderPaths.in_repo(REPO, REPO / "gateway.yaml")
    assert (Path(paths.status) / "index.html").is_file()
    assert Path(paths.lib, "uris.js").is_file()
    # node_modules/ is npm's (make install): the page's chart library and the JS client's autobahn.
    assert (Path(paths.uplot) / "uPlot.esm.js").is_file() and (Path(paths.uplot) / "uPlot.min.css").is_file()
    assert (Path(paths.vendor) / "autobahn.min.js").is_file()
