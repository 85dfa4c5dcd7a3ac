"""The router guards' settings, as they travel from gateway.yaml to the router process.

``nodeconfig`` renders them into the guard component's ``extra`` (plain
YAML data); the component turns them back into a ``GuardSettings``. Values are
validated once, by ``components.config``; this only carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Python's recursion limit in the router process. py_ecc, imported with
#: Crossbar, raises it to 100,000, past the point where C code that honours it
#: (json, repr, pickle, comparisons) overflows the 8 MiB main-thread stack
#: (measured here: about 70,000 levels). 10,000 is ten times Python's default,
#: far more than the router needs once messages are at most
#: ``max_message_depth`` deep, and an order of magnitude below the crash.
RECURSION_LIMIT = 10_000


@dataclass(frozen=True)
class GuardSettings:
    """What the router guards enforce (see components.config.RouterConfig for each key)."""

    max_message_depth: int = 64
    max_client_buffer: int = 4 * 1024 * 1024
    #: None: no cap.
    max_connections_per_address: int | None = 100
    #: Addresses and networks whose X-Forwarded-For header names the client.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")

    def to_extra(self) -> dict[str, Any]:
        data = asdict(self)
        data["trusted_proxies"] = list(self.trusted_proxies)
        return data

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> GuardSettings:
        """From the component's ``extra`` (other keys, such as Crossbar's ``cbdir``, are ignored)."""
        cap = extra.get("max_connections_per_address", cls.max_connections_per_address)
        return cls(
            max_message_depth=int(extra.get("max_message_depth", cls.max_message_depth)),
            max_client_buffer=int(extra.get("max_client_buffer", cls.max_client_buffer)),
            max_connections_per_address=None if cap is None else int(cap),
            trusted_proxies=tuple(str(p) for p in extra.get("trusted_proxies", cls.trusted_proxies)),
        )
