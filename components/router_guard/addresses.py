"""Connections per client address: which address a connection counts against, and the counts.

Behind a reverse proxy every client arrives from the proxy's address; the
proxy names the client in ``X-Forwarded-For``. That header is believed only
from ``trusted`` peers (by default loopback, where a local proxy sits), and
read from the right: the first address that is not itself a trusted proxy is
the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks (``10.0.0.0/8``) as networks; ValueError naming a bad entry."""
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (e.g. 127.0.0.1, ::1, 10.0.0.0/8)") from None
    return tuple(found)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address a connection from ``peer`` counts against."""
    if not forwarded_for or not _within(peer, trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # a header we cannot read names nobody: count the proxy
        if not _within(address, trusted):
            return address
    return peer


def _within(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in trusted if net.version == ip.version)


class ConnectionCounter:
    """Open connections per address, refusing one past ``cap`` (None: no cap).

    Holds an entry only while its address has connections open, so its size
    is bounded by the connections the router holds anyway.
    """

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address``; False (and nothing counted) if it is at the cap."""
        n = self._open.get(address, 0)
        if self.cap is not None and n >= self.cap:
            return False
        self._open[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self._open.get(address, 0) - 1
        if n > 0:
            self._open[address] = n
        else:
            self._open.pop(address, None)

    def open(self, address: str) -> int:
        return self._open.get(address, 0)

    def __len__(self) -> int:
        return len(self._open)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for anything else, 0.0.0.0 included."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
