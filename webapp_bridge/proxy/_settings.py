"""What the proxy needs from gateway.yaml, read with the standard library and PyYAML only.

The gateway parses the same file with pydantic (components.config); a
web-app must not need pydantic, so this reads just the keys the proxy uses,
with the same defaults, limits and env overrides. tests/unit/webapp_bridge/test_proxy.py
holds the two readers to the same values.

Other sections and keys are the gateway's business and are not looked at
(the gateway's ``check-config`` refuses unknown keys there); the ``proxy``
section is the proxy's own, so an unknown key in it is refused. Every error
names the file, the key and the value, except secrets, which are never shown.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from webapp_bridge.proxy._errors import ProxyConfigError

TRANSPORTS = ("http", "xmlrpc", "amqp")
#: env variable -> (section, key); the same names and meaning as components.config.ENV_OVERRIDES.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "GATEWAY_ROUTER_HOST": ("router", "host"),
    "GATEWAY_ROUTER_PORT": ("router", "port"),
    "GATEWAY_BRIDGE_HOST": ("bridge", "host"),
    "GATEWAY_BRIDGE_PORT": ("bridge", "port"),
    "GATEWAY_API_KEY": ("bridge", "api_keys"),
    "GATEWAY_SECRET": ("auth", "secret"),
    "GATEWAY_AMQP_URL": ("amqp", "url"),
    "GATEWAY_PROXY_TRANSPORT": ("proxy", "transport"),
    "GATEWAY_CLUSTER": ("cluster", "enabled"),
}
#: The keys of the proxy section (components.config.ProxyConfig's fields).
PROXY_KEYS = ("transport", "url", "api_key_name", "timeout", "retries", "backoff", "max_backoff")

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_REALM = re.compile(r"[a-z][a-z0-9_.]*")
_WS_PATH = re.compile(r"[a-z0-9_-]+")
_WS_URL = re.compile(r"wss?://[^\s]+")
#: No user:password@ part: the API key comes from bridge.api_keys, and a URL is shown in errors.
_HTTP_URL = re.compile(r"https?://[^\s/@]+(/[^\s]*)?")
_AMQP_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,255}")
#: The strings pydantic reads as booleans (any case), as the gateway reads ``cluster.enabled``.
_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy uses, validated. Secrets are left out of the repr."""

    source: str
    transport: str = "http"
    #: The bridge's base URL (proxy.url, else http://bridge.host:bridge.port).
    url: str = "http://127.0.0.1:8081"
    api_key_name: str = "example"
    api_key: str = field(default="example-key-change-me", repr=False)
    timeout: float = 10.0
    retries: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_batch: int = 1000
    max_body_bytes: int = 1024 * 1024
    #: bridge.max_depth: how deep arrays and objects may nest in a body (the body is level 1).
    max_depth: int = 32
    realm: str = "gateway"
    #: What a browser's WAMP client connects to (router.public_url, else ws://router.host:router.port/ws_path).
    router_url: str = "ws://127.0.0.1:8080/ws"
    jwt_secret: str | None = field(default=None, repr=False)
    max_jwt_ttl: float = 24 * 3600.0
    amqp_url: str | None = field(default=None, repr=False)
    amqp_queue: str = "gateway.events"
    #: cluster.enabled: the gateway is a cluster of nodes, whose bridges declare amqp.queue with single active
    #: consumer; a queue the proxy has to create is created the same way.
    cluster: bool = False
    event_modules: tuple[str, ...] = ("examples.demo_events",)
    #: Absolute paths (relative ones in the file are relative to its folder).
    event_files: tuple[str, ...] = ()


def read_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                  transport: str | None = None) -> ProxySettings:
    """Read gateway.yaml with env overrides (``env`` None: os.environ) into ProxySettings.

    ``transport`` (when given) wins over proxy.transport and its env variable.
    Raises ProxyConfigError naming the file, every bad key and its value.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProxyConfigError(f"{file}: cannot read the configuration: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProxyConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_settings(raw, os.environ if env is None else env, str(file), file.resolve().parent, transport)


def parse_settings(raw: Any, env: Mapping[str, str], source: str = "gateway.yaml", base: Path | None = None,
                   transport: str | None = None) -> ProxySettings:
    """ProxySettings from config data (as loaded from YAML); see read_settings."""
    return _Reader(raw, env, source).settings(base or Path.cwd(), transport)


class _Reader:
    def __init__(self, raw: Any, env: Mapping[str, str], source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.sections: dict[str, Mapping[str, Any]] = {}
        self.from_env: dict[tuple[str, str], tuple[str, Any]] = {}
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ProxyConfigError(f"{source}: the top level must be a mapping, not {type(raw).__name__}")
        for name in ("router", "bridge", "auth", "events", "amqp", "proxy", "cluster"):
            section = raw.get(name, {})
            if not isinstance(section, dict):
                self.problems.append(f"in {name}: must be a mapping of keys (got {_kind(section)})")
                section = {}
            self.sections[name] = section
        for var, (section_name, key) in ENV_OVERRIDES.items():
            value = env.get(var)
            if value:  # an empty variable does not override (as for the gateway)
                parsed: Any = [v.strip() for v in value.split(",") if v.strip()] if key == "api_keys" else value
                self.from_env[(section_name, key)] = (var, parsed)

    # -- one value ---------------------------------------------------------

    def get(self, section: str, key: str, default: Any) -> tuple[Any, str]:
        """The value (env first, then the file, then the default) and where to say it came from."""
        if (section, key) in self.from_env:
            value = self.from_env[(section, key)][1]
        else:
            value = self.sections[section].get(key, default)
        return value, self.where(section, key)

    def where(self, section: str, key: str, suffix: str = "") -> str:
        env = self.from_env.get((section, key))
        return f"in {section}.{key}{suffix}" + (f" (from env {env[0]})" if env else "")

    def bad(self, where: str, expected: str, value: Any, secret: bool = False) -> None:
        self.problems.append(f"{where}: {expected} (got {_secret(value) if secret else _shown(value)})")

    def string(self, section: str, key: str, default: str | None, pattern: re.Pattern[str] | None = None,
               expected: str = "a string", min_length: int = 0, secret: bool = False) -> str | None:
        value, where = self.get(section, key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, str) or len(value) < min_length or (pattern and not pattern.fullmatch(value)):
            self.bad(where, f"must be {expected}", value, secret)
            return default
        return value

    def number(self, section: str, key: str, default: float, low: float, high: float, *, integer: bool = False,
               low_open: bool = False) -> float:
        value, where = self.get(section, key, default)
        number = _number(value, integer)
        lowest = f"more than {low:g}" if low_open else f"at least {low:g}"
        if number is None or not (low < number if low_open else low <= number) or number > high:
            kind = "an integer" if integer else "a number"
            self.bad(where, f"must be {kind}, {lowest} and at most {high:g}", value)
            return default
        return number

    def boolean(self, section: str, key: str, default: bool) -> bool:
        """true or false, as pydantic's lax mode reads one (also 1/0, and yes/no, on/off ... as strings)."""
        value, where = self.get(section, key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        self.bad(where, "must be true or false", value)
        return default

    def names(self, section: str, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value, where = self.get(section, key, list(default))
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            self.bad(where, "must be a list of strings", value)
            return default
        return tuple(value)

    # -- the whole ---------------------------------------------------------

    def settings(self, base: Path, transport_override: str | None) -> ProxySettings:
        unknown = sorted(set(map(str, self.sections["proxy"])) - set(PROXY_KEYS))
        for key in unknown:
            self.problems.append(f"in proxy.{key}: unknown key (the proxy section has {', '.join(PROXY_KEYS)})")

        router_host = self.string("router", "host", "127.0.0.1") or "127.0.0.1"
        router_port = int(self.number("router", "port", 8080, 1, 65535, integer=True))
        realm = self.string("router", "realm", "gateway", _REALM, "lower-case dotted words like 'gateway'")
        ws_path = self.string("router", "ws_path", "ws", _WS_PATH, "a path segment of a-z 0-9 _ -")
        public_url = self.string("router", "public_url", None, _WS_URL, "a ws:// or wss:// URL")
        bridge_host = self.string("bridge", "host", "127.0.0.1") or "127.0.0.1"
        bridge_port = int(self.number("bridge", "port", 8081, 1, 65535, integer=True))
        keys = self.api_keys()
        max_body = int(self.number("bridge", "max_body_bytes", 1024 * 1024, 1024, 64 * 1024 * 1024, integer=True))
        max_batch = int(self.number("bridge", "max_batch", 1000, 1, 100_000, integer=True))
        max_depth = int(self.number("bridge", "max_depth", 32, 4, 256, integer=True))
        secret = self.string("auth", "secret", None, None, "a string of at least 32 characters", 32, secret=True)
        max_jwt_ttl = self.number("auth", "max_jwt_ttl", 24 * 3600, 60, 366 * 24 * 3600)
        modules = self.names("events", "modules", ("examples.demo_events",))
        files = self.names("events", "files", ("examples/demo_events.yaml",))
        amqp_url = self.amqp_url()
        queue = self.string("amqp", "queue", "gateway.events", _AMQP_NAME,
                            "a queue name of 1 to 255 letters, digits or _ . : -")
        transport = self.string("proxy", "transport", "http", re.compile("http|xmlrpc|amqp"),
                                "one of http, xmlrpc, amqp")
        if transport_override is not None:
            if transport_override not in TRANSPORTS:
                self.problems.append(f"the transport asked for ({transport_override!r}) must be one of "
                                     f"{', '.join(TRANSPORTS)}")
            else:
                transport = transport_override
        url = self.string("proxy", "url", None, _HTTP_URL, "an http:// or https:// URL with no user:password@ "
                          "(the key comes from bridge.api_keys)", secret=True)
        key_name = self.string("proxy", "api_key_name", None, None, "the name of a bridge.api_keys entry")
        timeout = self.number("proxy", "timeout", 10, 0, 600, low_open=True)
        retries = int(self.number("proxy", "retries", 5, 0, 100, integer=True))
        backoff = self.number("proxy", "backoff", 0.2, 0, 60)
        max_backoff = self.number("proxy", "max_backoff", 5, 0, 600)
        cluster = self.boolean("cluster", "enabled", False)

        chosen = keys[0] if keys else ("example", "")
        if key_name is not None and keys:
            named = [k for k in keys if k[0] == key_name]
            if named:
                chosen = named[0]
            else:
                self.problems.append(f"in proxy.api_key_name: {key_name!r} is not the name of any bridge.api_keys "
                                     f"entry ({', '.join(k[0] for k in keys)})")
        if transport == "amqp" and amqp_url is None:
            self.problems.append("proxy.transport is amqp but amqp.url is not set: name the RabbitMQ broker "
                                 "(amqp://user:password@host:5672/vhost, or env GATEWAY_AMQP_URL)")
        if self.problems:
            raise ProxyConfigError(f"{self.source}: " + "; ".join(self.problems))
        assert realm is not None and ws_path is not None and queue is not None and transport is not None
        return ProxySettings(
            source=self.source, transport=transport,
            url=(url or f"http://{_connectable(bridge_host)}:{bridge_port}").rstrip("/"),
            api_key_name=chosen[0], api_key=chosen[1],
            timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff,
            max_batch=max_batch, max_body_bytes=max_body, max_depth=max_depth, realm=realm,
            router_url=public_url or f"ws://{_bracketed(router_host)}:{router_port}/{ws_path}",
            jwt_secret=secret, max_jwt_ttl=max_jwt_ttl, amqp_url=amqp_url, amqp_queue=queue,
            cluster=cluster, event_modules=modules, event_files=tuple(str(base / f) for f in files),
        )

    def api_keys(self) -> list[tuple[str, str]]:
        """``(name, key)`` per bridge.api_keys entry; bare keys are named key-1, key-2, ... by position."""
        value, where = self.get("bridge", "api_keys", [{"name": "example", "key": "example-key-change-me"}])
        if not isinstance(value, (list, tuple)) or not value:
            self.problems.append(f"{where}: must be a list of at least one key, each {{name, key}} or a bare key "
                                 f"(got {'an empty list' if isinstance(value, (list, tuple)) else _kind(value)})")
            return []
        keys: list[tuple[str, str]] = []
        for i, item in enumerate(value, 1):
            at = self.where("bridge", "api_keys", f".{i - 1}")
            if isinstance(item, str):
                name, key = f"key-{i}", item
            # rate and burst are the gateway's business (its rate limit for the key), not the proxy's.
            elif isinstance(item, dict) and set(item) <= {"name", "key", "rate", "burst"} and "key" in item \
                    and "name" in item:
                name, key = item["name"], item["key"]
            else:
                has = f" with the keys {', '.join(map(str, item))}" if isinstance(item, dict) else ""
                self.problems.append(f"{at}: must be {{name: ..., key: ...}} or a bare key string "
                                     f"(got {_kind(item)}{has})")
                continue
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.problems.append(f"{at}.name: must be 1 to 64 letters, digits or _ . - (got {_shown(name)})")
                continue
            if not isinstance(key, str) or len(key) < 8:
                self.problems.append(f"{at} (named {name}): the key must be a string of at least 8 characters "
                                     f"(got {_secret(key)})")
                continue
            keys.append((name, key))
        names = [k[0] for k in keys]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            self.problems.append(f"{where}: the name {twice[0]!r} is used twice; each key needs its own name")
        if len({k[1] for k in keys}) < len(keys):
            self.problems.append(f"{where}: the same key is listed twice")
        return keys

    def amqp_url(self) -> str | None:
        value, where = self.get("amqp", "url", None)
        if value is None:
            return None
        if not isinstance(value, str) or "://" not in value or \
                value.partition("://")[0].lower() not in ("amqp", "amqps"):
            shown = redact_url(value) if isinstance(value, str) else _kind(value)
            self.problems.append(f"{where}: not an AMQP URL: expected amqp://user:password@host:5672/vhost "
                                 f"(or amqps://...) (got {shown!r})")
            return None
        return value


def redact_url(url: str) -> str:
    """The URL with the password of its user part as ``***`` (as components.config.StoreConfig.redact)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, hostpart = rest.rpartition("@")  # the last @: a password may hold one unescaped
    if at and ":" in userinfo:
        rest = userinfo.split(":", 1)[0] + ":***@" + hostpart
    return scheme + sep + re.sub(r"(?i)(\bpassword=)[^&#]*", r"\1***", rest)


def _number(value: Any, integer: bool) -> float | None:
    """A number as pydantic's lax mode reads one (numbers, numeric strings; integers also from 8081.0)."""
    if isinstance(value, bool):
        return None  # `port: true` is a mistake, whatever pydantic makes of it
    if isinstance(value, str):
        try:
            value = float(value.strip()) if not integer else int(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if integer and value != int(value):
        return None
    return int(value) if integer else float(value)


def _connectable(host: str) -> str:
    # A bind-everywhere address is where the bridge listens, not where to connect to.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, _bracketed(host))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _shown(value: Any) -> str:
    return repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 80 else _kind(value)


def _secret(value: Any) -> str:
    return f"a string of {len(value)} characters" if isinstance(value, str) else _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)
