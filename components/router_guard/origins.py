"""Which web pages may open WebSocket connections to the gateway: the Origin allow-list.

Crossbar checks it itself (the websocket option ``allowed_origins``, handed to
autobahn): autobahn turns the ``Origin`` header into ``scheme://host:port``
(the port always written out, 80/443 by default) and matches that against
each entry, ``*`` matching anything. A connection without an Origin header
(a program, not a browser) is not checked. So entries are normalised here to
exactly that form: ``https://app.example.com`` -> ``https://app.example.com:443``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from components.router_guard.addresses import is_loopback

#: Any page.
ANY = "*"

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# scheme://host[:port][/]: host a name (``*`` wildcards allowed), an IPv4 or a bracketed IPv6 address.
_ORIGIN = re.compile(r"(?i)(https?)://(\[[0-9a-f:.]+\]|[a-z0-9*_.-]+)(?::(\d{1,5}|\*))?/?")


def origin_pattern(origin: str) -> str:
    """The allow-list entry for an origin as written in gateway.yaml; ValueError saying what is expected."""
    text = origin.strip()
    if text == ANY:
        return ANY
    match = _ORIGIN.fullmatch(text)
    if match is None:
        raise ValueError(f"{origin!r} is not an origin: expected scheme://host[:port] (http or https, "
                         "no path), e.g. https://app.example.com or http://localhost:3000, or * for any page")
    scheme, host, port = match.group(1).lower(), match.group(2).lower(), match.group(3)
    if port is not None and port != "*" and not 1 <= int(port) <= 65535:
        raise ValueError(f"{origin!r}: the port {port} is not between 1 and 65535")
    # autobahn writes the host without IPv6 brackets, and the port always.
    return f"{scheme}://{host.strip('[]')}:{port or _DEFAULT_PORTS[scheme]}"


def page_origins(host: str, port: int, public_url: str | None) -> list[str]:
    """The gateway's own pages: http://host:port (every name of it, on loopback) and public_url's origin.

    Listening on every interface (0.0.0.0 or ::), the page's host name is not
    known: any host on the gateway's port counts as its own.
    """
    if host in ("0.0.0.0", "::", ""):
        own = [f"http://*:{port}"]
    elif is_loopback(host):
        own = [f"http://{name}:{port}" for name in ("127.0.0.1", "localhost", "::1")]
    else:
        own = [origin_pattern(f"http://{_bracketed(host)}:{port}")]
    if public_url:
        parts = urlsplit(public_url)
        scheme = "https" if parts.scheme == "wss" else "http"
        netloc = parts.netloc.rsplit("@", 1)[-1]
        own.append(origin_pattern(f"{scheme}://{netloc}"))
    return list(dict.fromkeys(own))


def allow_list(host: str, port: int, public_url: str | None, configured: tuple[str, ...]) -> list[str]:
    """The gateway's own pages and the configured origins (already normalised), or ``["*"]``."""
    if ANY in configured:
        return [ANY]
    return list(dict.fromkeys([*page_origins(host, port, public_url), *configured]))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
