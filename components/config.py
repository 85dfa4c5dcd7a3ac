"""The shared configuration (gateway.yaml): parsed once, validated, immutable.

Every error names the config path and the bad value, and where a value came
from an environment variable, that variable too. Unknown keys are refused so
that a typo ("bridge.prot") is not silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.exceptions import ConfigError
from components.limits import DEFAULT_MAX_DEPTH
from components.router_guard.addresses import is_loopback, networks
from components.router_guard.origins import origin_pattern

#: bridge.max_in_flight's default: what one bridge process on a 2-core machine answers within about a
#: second, so that a burst far past it is answered within seconds (bench/README.md, ``overload.py``).
DEFAULT_MAX_IN_FLIGHT = 1000
#: bridge.max_connections' default: twice max_in_flight, room for the requests in flight and as many again
#: being read or refused; with the listen queue (4096 a process) a burst of 12,000 waits in the kernel,
#: not in memory (bench/README.md, ``overload.py``).
DEFAULT_MAX_CONNECTIONS = 2000

#: bridge.drain_timeout's ceiling: a stop that takes longer is a hang to a service manager (systemd's
#: TimeoutStopSec must exceed it plus gateway run's stop grace: docs/gateway.service).
MAX_DRAIN_TIMEOUT = 600.0

#: The API key shipped in the example gateway.yaml. Fine on loopback for a
#: demo; the bridge refuses to listen anywhere else while it is in use.
EXAMPLE_API_KEY = "example-key-change-me"
#: Same rule for the secret our components present to the router.
EXAMPLE_BACKEND_SECRET = "example-backend-secret-change-me"

Port = Annotated[int, Field(ge=1, le=65535)]

#: env variable -> (config path, how to turn the string into config data)
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "GATEWAY_ROUTER_HOST": ("router.host", "str"),
    "GATEWAY_ROUTER_PORT": ("router.port", "str"),
    "GATEWAY_BRIDGE_HOST": ("bridge.host", "str"),
    "GATEWAY_BRIDGE_PORT": ("bridge.port", "str"),
    "GATEWAY_API_KEY": ("bridge.api_keys", "list"),
    "GATEWAY_BACKEND_SECRET": ("backend.secret", "str"),
    "GATEWAY_SECRET": ("auth.secret", "str"),
    "GATEWAY_STORE_URL": ("store.url", "str"),
    "GATEWAY_STORE_SCHEMA": ("store.schema_name", "str"),
    "GATEWAY_AMQP_URL": ("amqp.url", "str"),
    "GATEWAY_PROXY_TRANSPORT": ("proxy.transport", "str"),
    "GATEWAY_ROUTER_ALLOWED_ORIGINS": ("router.allowed_origins", "list"),
    "GATEWAY_ROUTER_MAX_CLIENT_BUFFER": ("router.max_client_buffer", "str"),
    "GATEWAY_ROUTER_MAX_CONNECTIONS_PER_ADDRESS": ("router.max_connections_per_address", "str"),
    "GATEWAY_METRICS_ENABLED": ("metrics.enabled", "str"),
    "GATEWAY_STATUS_OPERATOR_ROLE": ("status.operator_role", "str"),
    "GATEWAY_CLUSTER": ("cluster.enabled", "str"),
    "GATEWAY_NODE_NAME": ("cluster.node_name", "str"),
}


#: Config paths whose values are secrets: an error about them never shows the value.
#: (URLs with passwords are redacted by their own validators.)
SECRET_PATHS = ("bridge.api_keys", "backend.secret", "auth.secret", "proxy.url")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouterConfig(_Section):
    """Where browsers and other WAMP clients connect."""

    host: str = "127.0.0.1"
    port: Port = 8080
    realm: str = Field(default="gateway", pattern=r"^[a-z][a-z0-9_.]*$")
    ws_path: str = Field(default="ws", pattern=r"^[a-z0-9_-]+$")
    #: The WebSocket URL browsers use, when it is not ws://host:port/ws (behind a TLS proxy:
    #: wss://example.com/ws). What web-apps hand to the JS client.
    public_url: str | None = Field(default=None, pattern=r"^wss?://[^\s]+$")
    #: Browser pages (origins) allowed to open WebSocket connections besides the gateway's own
    #: (http://host:port and public_url's): ``https://app.example.com``, ``http://localhost:3000``,
    #: ``https://*.example.com``; ``*``: any page. Connections without an Origin header (programs)
    #: are not checked. Stored as autobahn matches them (``https://app.example.com:443``).
    allowed_origins: tuple[str, ...] = ()
    #: WebSocket connections open at once from one client address; one more is closed (1013) with
    #: the reason. None: no cap.
    max_connections_per_address: int | None = Field(default=100, ge=1, le=1_000_000)
    #: Peers (addresses or networks) whose X-Forwarded-For header names the client's address (a
    #: reverse proxy); from anyone else the header is ignored.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    #: Bytes waiting to be sent to one client (it stopped reading); past this it is disconnected.
    #: Well above the largest burst a reading client gets at once (a call result, the events of
    #: one read from our components): hence at least 256 KiB.
    max_client_buffer: int = Field(default=4 * 1024 * 1024, ge=256 * 1024, le=1024 * 1024 * 1024)
    #: How deep a client's WAMP message may nest (arrays and maps, the message itself counting 1);
    #: a deeper one closes its connection before it is parsed. At most 256: the router forwards
    #: calls to our components over msgpack, which packs 511 levels at most.
    max_message_depth: int = Field(default=64, ge=16, le=256)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(origin_pattern(v) for v in value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        networks(value)
        return value


class ApiKey(_Section):
    """A web-app's key to the bridge. The name (never the key) is what the access log shows."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    key: str = Field(min_length=8, repr=False)
    #: Events a second this key may publish through one bridge process (a request publishing none
    #: counts one); past it, 429 with Retry-After. None (the default): no rate limit. Per process:
    #: a key whose connections reach both bridges of a node may get up to twice this.
    rate: float | None = Field(default=None, gt=0, le=1_000_000)
    #: Events it may publish at once, beyond the rate; default the rate (one second's worth), at least 1.
    burst: int | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> ApiKey:
        if self.burst is not None and self.rate is None:
            raise ValueError(f"the key named {self.name!r} has a burst but no rate: give both, or neither for no limit")
        return self

    @property
    def limit(self) -> tuple[float, int] | None:
        """(rate, burst) of the key's rate limit, None when it has none."""
        if self.rate is None:
            return None
        return self.rate, self.burst if self.burst is not None else max(1, math.ceil(self.rate))


class BridgeConfig(_Section):
    """The HTTP interface that web-apps post events to."""

    host: str = "127.0.0.1"
    port: Port = 8081
    #: Each key either ``{name, key}`` or a bare key string (named ``key-1``, ``key-2``, ... by position).
    api_keys: tuple[ApiKey, ...] = Field(default=(ApiKey(name="example", key=EXAMPLE_API_KEY),), min_length=1)
    #: A file (relative to the node directory) getting one line per request: method, path,
    #: status, the API key's name (never the key) and the time taken. null: no access log.
    access_log: str | None = "access.log"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    #: How deep arrays and objects may nest in a request: a JSON body (HTTP or RabbitMQ; the body is
    #: level 1, so an event's data starts at level 2, in a batch at 4) or the document an XML-RPC call
    #: stands for. Deeper is a 400 ``too_deep``, found before parsing (components.limits). At least 4
    #: (a batch of one event); at most 256, well within what msgpack carries to our components.
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=4, le=256)
    #: Events (and other requests to our components, one each) each bridge process holds in flight at
    #: most; past it, 503 ``overloaded`` with Retry-After at once, and RabbitMQ ingest waits. At least
    #: max_batch, so that every batch can get in. Per process: a node (two bridges) holds up to twice this.
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=1_000_000)
    #: HTTP connections each bridge process keeps open at most; past it, it accepts no more until one
    #: closes (they wait in the kernel's listen queue). Bounds the memory a burst of clients costs.
    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, ge=16, le=1_000_000)
    #: Seconds a node that is stopped (SIGTERM to ``gateway run``) drains before it stops: its bridges take
    #: no new event (503 ``draining``, /healthz 503) and it waits until the requests it accepted are
    #: answered, then stops (docs/operations.md, "Stopping a node"). 0: it stops at once, without draining.
    drain_timeout: float = 10.0
    #: Whether a bridge beside a standby dispatcher passes the connections it accepts to the bridge beside
    #: the active one (webapp_bridge.server.handoff): one process serves every request it has room for (the
    #: lowest latency and CPU). false: each bridge serves the connections the kernel gives it, and both parse
    #: HTTP (a higher top rate with few subscribers, for more CPU and latency).
    hand_off: bool = True
    #: With ``hand_off``: whether kept-alive connections move between the bridges, between two requests, by
    #: how busy each one is (webapp_bridge.server.balance): given to the other bridges while the one beside
    #: the active dispatcher falls behind, called back once it keeps up alone. false: a connection stays with
    #: the bridge that first served it.
    balance: bool = True
    #: Whether a bridge beside a standby dispatcher sends the events of the requests it serves to the bridge
    #: beside the active one over a Unix socket (webapp_bridge.server.forward), the router carrying no call
    #: for them (over WAMP until it reaches that bridge, and again for those whose answer does not come).
    #: false: it calls the active dispatcher over WAMP.
    forward: bool = True

    @field_validator("drain_timeout")
    @classmethod
    def _drain_timeout(cls, value: float) -> float:
        if not 0 <= value <= MAX_DRAIN_TIMEOUT:  # NaN too
            raise ValueError(f"drain_timeout is the seconds a stopping node waits for the requests it accepted: "
                             f"0 (stop at once, no drain) up to {MAX_DRAIN_TIMEOUT:g}")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _name_bare_keys(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [{"name": f"key-{i}", "key": v} if isinstance(v, str) else v for i, v in enumerate(value, 1)]
        return value

    @model_validator(mode="after")
    def _distinct_keys(self) -> BridgeConfig:
        names = [k.name for k in self.api_keys]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"api_keys: the name {twice[0]!r} is used twice; each key needs its own name")
        if len({k.key for k in self.api_keys}) < len(self.api_keys):
            raise ValueError("api_keys: the same key is listed twice")
        if self.max_in_flight < self.max_batch:
            raise ValueError(f"max_in_flight ({self.max_in_flight}) is below max_batch ({self.max_batch}): a full "
                             "batch could never get in; raise max_in_flight or lower max_batch")
        return self

    def has_key(self, key: str) -> bool:
        return any(k.key == key for k in self.api_keys)


class BackendConfig(_Section):
    """How our own components authenticate to the router (role ``backend``)."""

    secret: str = Field(default=EXAMPLE_BACKEND_SECRET, min_length=16)


class AuthConfig(_Section):
    """How clients log in, and the client tokens they get."""

    #: HS256 secret that web-apps sign JWT logins with (the shared-configuration policy).
    #: None (the default): JWT logins are off; tickets from POST /tickets still work.
    #: There is no example value: a published secret would let anyone log in as anyone.
    secret: str | None = Field(default=None, min_length=32, repr=False)
    #: The longest a JWT may still have to live when presented (its exp at most this far ahead).
    max_jwt_ttl: float = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)
    #: The WAMP role of logged-in users (their own roles go in authextra.roles).
    user_role: str = Field(default="user", pattern=r"^[a-z][a-z0-9_]*$")
    #: Seconds a client token lives after its last use (renewed on each connection).
    client_token_ttl: float = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    #: Seconds a ticket from POST /tickets is valid when the request names no ttl, and at most.
    ticket_ttl: float = Field(default=60, ge=1)
    max_ticket_ttl: float = Field(default=3600, ge=1, le=30 * 24 * 3600)

    @model_validator(mode="after")
    def _ttl_within_max(self) -> AuthConfig:
        if self.ticket_ttl > self.max_ticket_ttl:
            raise ValueError(f"ticket_ttl ({self.ticket_ttl:g}) is over max_ticket_ttl ({self.max_ticket_ttl:g})")
        if self.user_role in ("anonymous", "backend"):
            raise ValueError(f"user_role cannot be {self.user_role!r}: that role is the gateway's own")
        return self


class EventsConfig(_Section):
    """Where event definitions come from, and how changes to them are picked up."""

    #: Python modules; every Event subclass defined in them is loaded.
    modules: tuple[str, ...] = ("examples.demo_events",)
    #: YAML definition files; a relative path is relative to gateway.yaml's folder.
    files: tuple[str, ...] = ("examples/demo_events.yaml",)
    #: Reload by itself when a module's source or a file changes (else only on POST /admin/reload).
    watch: bool = True
    watch_interval: float = Field(default=1.0, gt=0, le=3600)


class QueriesConfig(_Section):
    """Limits on subscription queries and client calls, so that no client can make the gateway work for nothing."""

    max_length: int = Field(default=2000, ge=10, le=100_000)
    max_depth: int = Field(default=32, ge=2, le=100)
    max_per_session: int = Field(default=100, ge=1, le=100_000)
    #: Persistent subscriptions one logged-in client token may keep (each one logs its classes' events).
    max_persistent_per_token: int = Field(default=50, ge=1, le=100_000)
    #: Persistent subscriptions of one user in all: those the user's clients made and those web-apps
    #: made for the user (POST /subscriptions).
    max_persistent_per_user: int = Field(default=200, ge=1, le=1_000_000)
    #: Whether anonymous clients may keep persistent subscriptions at all; if so, how many each
    #: (per anonymous token), and how many all anonymous clients together (which also bounds the
    #: client tokens the store keeps for anonymous clients: only those holding one are stored).
    anonymous_persistent: bool = True
    max_persistent_per_anonymous_token: int = Field(default=5, ge=1, le=100_000)
    max_anonymous_persistent: int = Field(default=10_000, ge=1, le=10_000_000)
    #: Calls one client session may make to the gateway's procedures: call_burst at once, refilled
    #: at calls_per_second; past it, gateway.error.rate_limited with the seconds to wait.
    calls_per_second: float = Field(default=50, gt=0, le=1_000_000)
    call_burst: int = Field(default=200, ge=1, le=1_000_000)


class StoreConfig(_Section):
    """Durable state: an SQLite file (the default) or a PostgreSQL database (``url``).

    A relative path is relative to the Crossbar node directory.
    """

    path: str = "gateway.sqlite3"
    #: ``postgresql://user[:password]@host[:port]/database`` (``postgres://`` too; libpq's URL
    #: syntax, query parameters included): when set, the store is that PostgreSQL database and
    #: ``path`` is ignored. Its password never shows in a repr or an error message.
    url: str | None = Field(default=None, repr=False)
    #: The PostgreSQL schema the gateway's tables live in (created if missing).
    schema_name: str = Field(default="public", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    #: At most this many events of one class are kept in the event log (besides its retention).
    max_logged_per_class: int | None = Field(default=1_000_000, ge=1)
    #: How long an event id is remembered, so that posting it again is not a second event.
    idempotency_window: float = Field(default=24 * 3600, ge=60)
    #: Seconds between two rounds of housekeeping: forgetting old ids, ending orphaned
    #: persistent subscriptions, dropping events past their class's retention.
    prune_interval: float = Field(default=60, ge=0.5, le=3600)
    #: PostgreSQL: seconds one statement may run before the server cancels it (a lock held elsewhere, an
    #: overloaded server); the operation then fails (503 for a request) instead of holding a store thread.
    statement_timeout: float = 5.0
    #: PostgreSQL: whole seconds connecting (or connecting again) may take; libpq's minimum is 2. A
    #: ``connect_timeout`` in ``url``'s query takes precedence.
    connect_timeout: int = 5

    @field_validator("statement_timeout")
    @classmethod
    def _statement_timeout(cls, value: float) -> float:
        if not 0.1 <= value <= 3600:
            raise ValueError("seconds one statement may run before PostgreSQL cancels it: from 0.1 to 3600 "
                             "(default 5)")
        return value

    @field_validator("connect_timeout")
    @classmethod
    def _connect_timeout(cls, value: int) -> int:
        if not 2 <= value <= 600:
            raise ValueError("whole seconds connecting to PostgreSQL may take: from 2 (libpq's minimum) to 600 "
                             "(default 5)")
        return value

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme not in ("postgresql", "postgres"):
            problem = "not a PostgreSQL URL: expected postgresql://user@host:port/database (or postgres://...)"
            # Raised as a ValidationError of our own so that the value it shows is the redacted URL.
            raise ValidationError.from_exception_data(cls.__name__, [
                {"type": "value_error", "loc": (), "input": cls.redact(value), "ctx": {"error": problem}}])
        return value

    @staticmethod
    def redact(url: str) -> str:
        """The URL with its password (in the user part or a ``password=`` parameter) as ``***``."""
        import re

        scheme, sep, rest = url.partition("://")
        if not sep:
            scheme, rest = "", url
        userinfo, at, hostpart = rest.rpartition("@")  # the last @: a password may hold one unescaped
        if at and ":" in userinfo:
            rest = userinfo.split(":", 1)[0] + ":***@" + hostpart
        return scheme + sep + re.sub(r"(?i)(\bpassword=)[^&#]*", r"\1***", rest)


#: RabbitMQ queue and exchange names: letters, digits, - _ . : (at most 255 bytes).
_AMQP_NAME = r"^[A-Za-z0-9_.:\-]{1,255}$"


class AmqpConfig(_Section):
    """RabbitMQ ingest: the bridge consumes events (POST /events bodies) from a durable queue.

    Off while ``url`` is not set. A message is acknowledged once its event is
    accepted; one that can never be accepted goes to ``dead_letter_queue``
    with its error in the headers.
    """

    #: ``amqp://user:password@host:port/vhost`` (env GATEWAY_AMQP_URL). Its password never shows.
    url: str | None = Field(default=None, repr=False)
    queue: str = Field(default="gateway.events", pattern=_AMQP_NAME)
    dead_letter_queue: str = Field(default="gateway.events.dead", pattern=_AMQP_NAME)
    #: Messages each bridge holds unacknowledged at most (being validated and published).
    prefetch: int = Field(default=100, ge=1, le=10_000)
    #: The longest wait between two attempts to reach the broker after it went away.
    reconnect_max_delay: float = Field(default=30, ge=0.1, le=3600)

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, value: str | None) -> str | None:
        if value is None or value.partition("://")[0].lower() in ("amqp", "amqps") and "://" in value:
            return value
        problem = "not an AMQP URL: expected amqp://user:password@host:5672/vhost (or amqps://...)"
        raise ValidationError.from_exception_data(cls.__name__, [
            {"type": "value_error", "loc": (), "input": StoreConfig.redact(value), "ctx": {"error": problem}}])

    @model_validator(mode="after")
    def _two_queues(self) -> AmqpConfig:
        if self.queue == self.dead_letter_queue:
            raise ValueError(f"queue and dead_letter_queue are both {self.queue!r}: bad messages would come back")
        return self


class MetricsConfig(_Section):
    """``GET /metrics`` on the bridge port: the node's Prometheus metrics (docs/operations.md)."""

    #: Count at all. false: nothing is counted (the meter's count and observe do nothing), GET /metrics
    #: answers 404 ``metrics_disabled`` and the status page shows gauges and health only.
    enabled: bool = True
    #: Demand ``Authorization: Bearer <api key>`` (one of bridge.api_keys); off by default, like /healthz.
    require_key: bool = False


class StatusConfig(_Section):
    """The live status page the router serves at ``/status`` (docs/operations.md#the-status-page)."""

    #: The role (as a ticket's or JWT's ``roles`` give it; the WAMP role stays auth.user_role) a signed-in
    #: user must hold to see the page's data (``gateway.status``). Anyone else gets an error, never data.
    operator_role: str = Field(default="staff", pattern=r"^[a-z][a-z0-9_]{0,63}$")


class ProxyConfig(_Section):
    """How web-apps' ``GatewayProxy.from_config`` reaches the gateway (webapp_bridge.proxy)."""

    #: http (POST /events), xmlrpc (POST /RPC2) or amqp (the amqp.queue; needs amqp.url and pika).
    transport: Literal["http", "xmlrpc", "amqp"] = "http"
    #: The bridge's base URL as web-apps reach it; default http://bridge.host:bridge.port.
    #: No ``user:password@``: the key comes from bridge.api_keys (and a URL gets shown in errors).
    url: str | None = Field(default=None, pattern=r"^https?://[^\s/@]+(/[^\s]*)?$")
    #: The name of the bridge.api_keys entry the proxy sends; default the first.
    api_key_name: str | None = None
    #: Seconds one attempt may take.
    timeout: float = Field(default=10, gt=0, le=600)
    #: Attempts after the first when the gateway is unreachable or answers 503
    #: (each with the same idempotency id, so a retry never duplicates).
    retries: int = Field(default=5, ge=0, le=100)
    #: The first wait between attempts (doubled each time, with jitter), and the longest.
    backoff: float = Field(default=0.2, ge=0, le=60)
    max_backoff: float = Field(default=5, ge=0, le=600)


class ClusterConfig(_Section):
    """Several nodes as one gateway (docs/cluster.md): every node takes events and delivers every event.

    Needs the PostgreSQL store (``store.url``), shared by every node: it numbers events cluster-wide
    and keeps the shared event log the nodes deliver from. ``enabled`` and ``log_retention`` are the
    cluster's (the same on every node); ``node_name`` is each node's own, best from env.
    """

    #: Join the cluster the store is shared with (env GATEWAY_CLUSTER=1).
    enabled: bool = False
    #: This node's name, unique in the cluster (env GATEWAY_NODE_NAME). Not set: ``gateway run`` derives
    #: one from the host name and the node directory.
    node_name: str | None = None
    #: Seconds an event of a class without a persistent subscription stays in the shared log: how far
    #: behind a node may fall (a pause, a restart of its dispatcher) and still deliver it.
    log_retention: float = Field(default=300, ge=10, le=7 * 86400)

    @field_validator("node_name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}", value):
            raise ValueError("a node's name is 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or "
                             "digit")
        return value


def derived_node_name(cbdir: Path) -> str:
    """A cluster node's name when none is set: this host and the node directory's name."""
    import re
    import socket

    import hashlib

    where = cbdir.resolve()
    # The directory's name for people, a digest of its path so that two nodes never share a name
    # (a node's name holds its place in the shared log and its sessions' grants).
    name = f"{socket.gethostname()[:40]}-{where.name.lstrip('.')[:12] or 'node'}-"
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", name) + hashlib.sha256(str(where).encode()).hexdigest()[:6]


class GatewayConfig(_Section):
    router: RouterConfig = RouterConfig()
    bridge: BridgeConfig = BridgeConfig()
    backend: BackendConfig = BackendConfig()
    auth: AuthConfig = AuthConfig()
    events: EventsConfig = EventsConfig()
    queries: QueriesConfig = QueriesConfig()
    store: StoreConfig = StoreConfig()
    amqp: AmqpConfig = AmqpConfig()
    metrics: MetricsConfig = MetricsConfig()
    status: StatusConfig = StatusConfig()
    proxy: ProxyConfig = ProxyConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _no_example_secrets_in_the_open(self) -> GatewayConfig:
        if self.bridge.has_key(EXAMPLE_API_KEY) and not is_loopback(self.bridge.host):
            raise ValueError(
                f"bridge.host is {self.bridge.host!r}, not a loopback address, while "
                f"bridge.api_keys still holds the example key {EXAMPLE_API_KEY!r}: "
                "set your own key (or env GATEWAY_API_KEY) before listening beyond this machine"
            )
        if self.router.port == self.bridge.port and self.router.host == self.bridge.host:
            raise ValueError(f"router.port and bridge.port are both {self.router.port}")
        names = [k.name for k in self.bridge.api_keys]
        if self.proxy.api_key_name is not None and self.proxy.api_key_name not in names:
            raise ValueError(f"proxy.api_key_name is {self.proxy.api_key_name!r}, which is not the name of any "
                             f"bridge.api_keys entry ({', '.join(names)})")
        if self.proxy.transport == "amqp" and self.amqp.url is None:
            raise ValueError("proxy.transport is amqp but amqp.url is not set: name the RabbitMQ broker "
                             "(amqp://user:password@host:5672/vhost, or env GATEWAY_AMQP_URL)")
        if self.cluster.enabled and self.store.url is None:
            raise ValueError("cluster.enabled is on but store.url is not set: a cluster's nodes share a PostgreSQL "
                             "store (postgresql://user@host:5432/database, or env GATEWAY_STORE_URL)")
        return self


def parse_config(
    raw: Any, env: Mapping[str, str] | None = None, source: str = "gateway.yaml"
) -> GatewayConfig:
    """Validate config data (as loaded from YAML) with env overrides applied.

    Raises ConfigError naming the source, the config path and the bad value.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(raw).__name__}")
    data: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    from_env: dict[str, str] = {}
    for var, (path, kind) in ENV_OVERRIDES.items():
        value = (env or {}).get(var)
        if value is None or value == "":
            continue
        section, key = path.split(".")
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            break  # the validation error below names the section
        target[key] = [v.strip() for v in value.split(",") if v.strip()] if kind == "list" else value
        from_env[path] = var
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, from_env)) from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a gateway.yaml file (see parse_config).

    Relative ``events.files`` are made absolute against the file's folder, so
    that every process (whatever its working directory) finds the same files.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    cfg = parse_config(raw, env, source=str(path))
    base = path.resolve().parent
    files = tuple(str(base / f) for f in cfg.events.files)
    return cfg.model_copy(update={"events": cfg.events.model_copy(update={"files": files})})


def _describe(exc: ValidationError, source: str, from_env: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        where = f"in {path}" if path else "in the configuration"
        env_var = from_env.get(path) or from_env.get(".".join(str(p) for p in err["loc"][:2]))
        if env_var:
            where += f" (from env {env_var})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        value = f" (got {err['input']!r})" if path and err["type"] != "extra_forbidden" else ""
        if path.startswith(SECRET_PATHS):
            value = ""  # a key or a secret, even a wrong one, never goes to a log
        lines.append(f"{where}: {msg}{value}")
    return f"{source}: " + "; ".join(lines)
