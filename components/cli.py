"""The ``gateway`` command: check the configuration, render the Crossbar config, run the node.

    gateway check-config [--config gateway.yaml]
    gateway render [--config gateway.yaml] [--out .crossbar/config.yaml]
    gateway run [--config gateway.yaml] [--cbdir .crossbar] [--node-name NAME]
                (or env GATEWAY_NODE_DIR, GATEWAY_NODE_NAME)

``gateway run`` supervises the node it starts (components/supervision/, docs/operations.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from components.config import GatewayConfig, StoreConfig, derived_node_name as node_name, load_config
from components.events import Registry
from components.exceptions import GatewayError
from components.nodeconfig import RenderPaths, render
from components.supervision import BridgeDrain, Endpoint, NodeShape, Settings, configure_logging, supervise
from components.events.row_filters import check_row_filters

HEADER = """\
# Crossbar node configuration of the gateway. GENERATED from gateway.yaml by
# `gateway render` (`make crossbar-config`): edit gateway.yaml instead.
# `crossbar start` uses this file as it is; `make run` renders a fresh one
# (.crossbar/run.yaml) with env overrides and a random backend secret.
"""


def _load(config: str) -> tuple[GatewayConfig, Registry]:
    # Event modules are imported by name, from the repo root (or the installed package).
    root = str(Path(config).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    cfg = load_config(config, os.environ)
    registry = Registry.load(cfg.events.modules, cfg.events.files)
    check_row_filters(registry)
    return cfg, registry


def render_text(cfg: GatewayConfig, paths: RenderPaths = RenderPaths(), backend_secret: str | None = None) -> str:
    node = render(cfg, paths, backend_secret)
    return HEADER + yaml.safe_dump(node, sort_keys=False, default_flow_style=False)


def _check(args: argparse.Namespace) -> int:
    cfg, registry = _load(args.config)
    print(f"{args.config}: OK")
    print(f"  router  ws://{cfg.router.host}:{cfg.router.port}/{cfg.router.ws_path}  realm {cfg.router.realm!r}")
    print(f"  bridge  http://{cfg.bridge.host}:{cfg.bridge.port}/  ({len(cfg.bridge.api_keys)} API key(s))")
    print(f"  events  {', '.join(f'{c.name} ({c.visibility})' for c in registry)}  version {registry.version}")
    jwt = "and JWT (HS256, auth.secret set)" if cfg.auth.secret else "only (JWT off: auth.secret not set)"
    print(f"  logins  tickets {jwt} -> role {cfg.auth.user_role!r}; client tokens live "
          f"{cfg.auth.client_token_ttl / 86400:g} days")
    store = (f"PostgreSQL {StoreConfig.redact(cfg.store.url)} (schema {cfg.store.schema_name})" if cfg.store.url
             else f"SQLite {cfg.store.path}")
    print(f"  store   {store}")
    if cfg.cluster.enabled:
        name = cfg.cluster.node_name or f"{node_name(Path(os.environ.get('GATEWAY_NODE_DIR') or '.crossbar'))} (derived)"
        print(f"  cluster on: node {name}; events of classes without a persistent subscription stay "
              f"{cfg.cluster.log_retention:g} s in the shared log")
    return 0



def _render(args: argparse.Namespace) -> int:
    cfg, _ = _load(args.config)  # the definitions too: render nothing for a broken gateway
    text = render_text(cfg)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.node_name:  # as env GATEWAY_NODE_NAME, which the node's workers read with gateway.yaml
        os.environ["GATEWAY_NODE_NAME"] = args.node_name
    cfg, _ = _load(args.config)  # refuse to start on broken definitions, before Crossbar does anything
    cbdir = Path(args.cbdir or os.environ.get("GATEWAY_NODE_DIR") or ".crossbar").resolve()
    if cfg.cluster.enabled and not cfg.cluster.node_name:
        # The node's workers read gateway.yaml and env themselves: they inherit its name from here.
        os.environ["GATEWAY_NODE_NAME"] = node_name(cbdir)
    cbdir.mkdir(parents=True, exist_ok=True)
    repo = Path(args.config).resolve().parent
    paths = RenderPaths.in_repo(repo, Path(args.config).resolve())
    run_config = cbdir / "run.yaml"
    # A fresh secret each `gateway run` (kept across the node's restarts): only this node's own
    # components ever know it.
    text = render_text(cfg, paths, backend_secret=secrets.token_urlsafe(32))
    run_config.unlink(missing_ok=True)
    with os.fdopen(os.open(run_config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    shape = NodeShape.from_node_config(yaml.safe_load(text))
    crossbar = shutil.which("crossbar") or str(Path(sys.executable).with_name("crossbar"))
    print(f"gateway: router on http://{cfg.router.host}:{cfg.router.port}/ "
          f"(WAMP at /{cfg.router.ws_path}), bridge on http://{cfg.bridge.host}:{cfg.bridge.port}/", flush=True)
    if cfg.cluster.enabled:
        print(f"gateway: cluster node {os.environ.get('GATEWAY_NODE_NAME') or cfg.cluster.node_name} "
              f"(node directory {cbdir})", flush=True)
    argv = [crossbar, "start", "--cbdir", str(cbdir), "--config", str(run_config), "--logformat", "standard"]
    # Not exec: `gateway run` stays as the node's supervisor (components/supervision/).
    configure_logging(sys.stdout)
    bridge = Endpoint.of(cfg.bridge.host, cfg.bridge.port)
    # On a stop signal the node is drained first (bridge.drain_timeout), through its bridge's POST /admin/drain.
    return supervise(argv, shape, Endpoint.of(cfg.router.host, cfg.router.port), bridge,
                     Settings(drain_timeout=cfg.bridge.drain_timeout),
                     drain=BridgeDrain(bridge, cfg.bridge.api_keys[0].key))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate gateway.yaml and the event modules it names, start nothing")
    p.add_argument("--config", default="gateway.yaml")
    p.set_defaults(func=_check)
    p = sub.add_parser("render", help="write the Crossbar node configuration for gateway.yaml")
    p.add_argument("--config", default="gateway.yaml")
    p.add_argument("--out", default=".crossbar/config.yaml", help="file to write, or - for stdout")
    p.set_defaults(func=_render)
    p = sub.add_parser("run", help="render the node configuration, start Crossbar in the foreground and keep it "
                                   "serving (the node is restarted if its router or every container dies)")
    p.add_argument("--config", default="gateway.yaml")
    p.add_argument("--cbdir", default=None, help="the node directory (default: env GATEWAY_NODE_DIR, else .crossbar)")
    p.add_argument("--node-name", default=None, help="a cluster node's name (as env GATEWAY_NODE_NAME; default: "
                                                     "derived from the host and the node directory)")
    p.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
