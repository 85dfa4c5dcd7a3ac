"""JWT logins minted by the web-app itself: HS256 with the shared auth.secret, standard library only.

The gateway checks them with PyJWT (components.auth.credentials.verify_jwt); a web-app
need not install it to sign one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

#: A JWT lives this long unless asked otherwise (and never longer than auth.max_jwt_ttl).
DEFAULT_TTL = 3600.0


def mint(secret: str, user: str, roles: Sequence[str], now: float, ttl: float, audience: str) -> str:
    """A signed JWT: claims sub, roles, iat, exp (``now + ttl``, rounded down) and aud."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": user, "roles": list(roles), "iat": int(now), "exp": int(now + ttl), "aud": audience}
    signing_input = _part(header) + b"." + _part(claims)
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def lifetime(ttl: float | None, max_ttl: float) -> float:
    """The ttl asked for (default an hour), at most ``max_ttl``; ValueError when not a positive number."""
    if ttl is None:
        return min(DEFAULT_TTL, max_ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number of seconds more than 0, not {ttl!r}")
    return min(float(ttl), max_ttl)


def _part(doc: Mapping[str, object]) -> bytes:
    return _b64(json.dumps(doc, separators=(",", ":")).encode())


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")
