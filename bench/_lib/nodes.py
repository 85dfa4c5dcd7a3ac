"""A benchmark run: gateway nodes and bare Crossbar routers on free ports, gone on every way out.

``run_benchmark(body, args)`` calls ``body(run, args)``; whatever ``run`` started (nodes,
subscriber pools, anything handed to ``run.on_exit``) is stopped when the body
returns, raises, or is interrupted by Ctrl-C or a plain ``kill``. A node's
directory is removed unless the run failed: then its log is worth reading.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import yaml

from bench._lib.cpu import BARE_ROUTER_TITLE
from bench._lib.subscribers import SubscriberPool
from bench._lib.websocket import HOST
from tests.support.harness import CrossbarNode, GatewayNode, remove_workdir, temp_workdir

__all__ = ["BareRouter", "Run", "bare_config", "require_running", "run_benchmark", "websocket_path"]

#: A benchmark's parsed command line.
A = TypeVar("A")


@dataclass
class BareRouter(CrossbarNode):
    """Bare Crossbar: only a router, with the config it is given (``bare_config``), no components."""

    node_config: dict[str, Any] = field(default_factory=dict)

    def write_config(self) -> None:
        self.cbdir.mkdir(parents=True, exist_ok=True)
        (self.cbdir / "config.yaml").write_text(yaml.safe_dump(self.node_config))


def websocket_path(node_config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(URL path, websocket service config, realm config) of the gateway's rendered node config."""
    router = next(w for w in node_config["workers"] if w["type"] == "router")
    web = next(t for t in router["transports"] if t["type"] == "web")
    key, service = next((k, s) for k, s in web["paths"].items() if s.get("type") == "websocket")
    return "/" + key.strip("/"), service, router["realms"][0]


def bare_config(gateway_config: dict[str, Any], port: int) -> dict[str, Any]:
    """A router-only node: the gateway's WebSocket path (serializers, options) on its own web transport,
    static anonymous authentication, one realm whose anonymous role may call and subscribe."""
    path, service, realm = websocket_path(gateway_config)
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "id": "router",
            "options": {"title": BARE_ROUTER_TITLE},
            "realms": [{
                "name": realm["name"],
                "options": dict(realm.get("options", {})),
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix",
                        "allow": {"call": True, "register": False, "publish": False, "subscribe": True},
                        "disclose": {"caller": False, "publisher": False},
                        "cache": True,
                    }],
                }],
            }],
            "transports": [{
                "type": "web",
                "id": "web",
                "endpoint": {"type": "tcp", "interface": HOST, "port": port},
                "paths": {path.strip("/"): {**service, "auth": {"anonymous": {"type": "static",
                                                                               "role": "anonymous"}}}},
            }],
        }],
    }


def require_running(node: CrossbarNode) -> None:
    if node.process is None or node.process.poll() is not None:
        raise RuntimeError("the node exited during the run (its log tail follows)")


class Run:
    """What one benchmark run started; ``close()`` stops it all, the last started first."""

    def __init__(self) -> None:
        self._exit = ExitStack()
        self._workdirs: list[Path] = []
        #: The node started last: its log tail is printed if the run fails.
        self.current: CrossbarNode | None = None

    def on_exit(self, cleanup: Callable[[], object]) -> None:
        """Call ``cleanup`` when the run ends, before what was started earlier is stopped."""
        self._exit.callback(cleanup)

    def _start(self, node: CrossbarNode, label: str) -> None:
        self.on_exit(node.stop)
        self.current = node
        started = time.monotonic()
        node.start()
        print(f"# {label} ready in {time.monotonic() - started:.1f}s ({node.workdir})", flush=True)

    def _workdir(self, prefix: str) -> Path:
        workdir = temp_workdir(prefix)
        self._workdirs.append(workdir)
        return workdir

    def gateway(self, extra_config: dict[str, Any] | None = None, prefix: str = "gw-bench-",
                prepare: Callable[[Path], None] | None = None, label: str = "node") -> GatewayNode:
        """A started gateway node (``tests/support/harness.py``); ``prepare`` writes files in its dir first."""
        workdir = self._workdir(prefix)
        if prepare is not None:
            prepare(workdir)
        # Every benchmark client connects from 127.0.0.1: the per-address cap, which is there for the
        # internet, would refuse the 101st subscriber. The benchmark's own settings win.
        config: dict[str, Any] = {"router": {"max_connections_per_address": None}}
        for section, values in (extra_config or {}).items():
            config[section] = {**config.get(section, {}), **values}
        node = GatewayNode(workdir, extra_config=config)
        self._start(node, label)
        return node

    def bare_router(self, gateway_config: dict[str, Any], prefix: str = "cb-bench-",
                    label: str = "bare crossbar node") -> BareRouter:
        """A started bare Crossbar node serving the gateway's WebSocket path (``bare_config``)."""
        node = BareRouter(self._workdir(prefix))
        node.node_config = bare_config(gateway_config, node.router_port)
        self._start(node, label)
        return node

    def subscribers(self, port: int, sessions: int, processes: int, serializer: str, queries: Sequence[str] = (),
                    phase_field: str = "room", timeout: float = 60, collect_ids: bool = False,
                    batch: bool = False) -> SubscriberPool:
        """A started ``SubscriberPool``; stopping it earlier (``pool.stop()``) is fine."""
        pool = SubscriberPool(port, sessions, processes, serializer, queries, phase_field, collect_ids, batch)
        self.on_exit(pool.stop)
        pool.start(timeout)
        return pool

    def close(self, keep_workdirs: bool = False) -> None:
        try:
            self._exit.close()
        finally:
            for workdir in self._workdirs:
                if keep_workdirs:
                    print(f"# node directory kept for inspection: {workdir}", file=sys.stderr)
                else:
                    remove_workdir(workdir)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_benchmark(body: Callable[[Run, A], str], args: A) -> int:
    """Run ``body(run, args)`` and print the report it returns (its tables), then the time it took.

    The exit status: 0, or 130 if interrupted. Every process the run started is gone afterwards.
    """
    # A plain `kill` must clean up like Ctrl-C does, through the finally below.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    run = Run()
    keep_workdirs = True  # until the run ends well or is interrupted: a failed node's log is worth reading
    started = time.monotonic()
    try:
        report = body(run, args)
        print()
        print(report)
        print(f"\n# total {time.monotonic() - started:.0f}s", flush=True)
        keep_workdirs = False
        return 0
    except KeyboardInterrupt:
        print("\n# interrupted; stopping the nodes and the subscribers", file=sys.stderr)
        keep_workdirs = False
        return 130
    except Exception:
        if run.current is not None:
            print(f"# node log tail ({run.current.log_path}):\n{run.current.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        run.close(keep_workdirs)
