"""Who a connecting client is: the rules for tickets, JWT logins and client tokens.

Pure: strings and times in, answers or ``AuthFailure`` (with a reason a
developer can act on) out. ``components.auth.authenticator`` applies them with the
store.

- A **ticket** (``gt_`` + 256 random bits) comes from ``POST /tickets``; it
  names a user and roles, works once, and expires.
- A **JWT** (HS256, signed with ``auth.secret``) is minted by the web-app
  itself: claims ``sub`` (the user), ``exp`` and optionally ``roles``.
- A **client token** (``ct_`` + 24 bytes, base64url) is handed to every client
  on connection and identifies it again on the next one, as long as it is
  presented by the same identity before it expires. A user's is 192 random
  bits, stored (by hash) from the first login. An anonymous client's is
  *signed*: 128 random bits and a 64-bit HMAC of them under a key derived
  from ``backend.secret`` (``anonymous_token_key``), so it is known again
  without a row; it is stored only while a persistent subscription hangs on
  it (then its row's expiry rules, as for a user's). A flood of anonymous
  connections thus costs the store nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt

TICKET_PREFIX = "gt_"
TOKEN_PREFIX = "ct_"
#: Longest credential looked at; anything longer is refused before any work is done on it.
MAX_CREDENTIAL_LENGTH = 8192
MAX_USER_LENGTH = 255
MAX_ROLES = 32
ROLE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOKEN = re.compile(r"^ct_[A-Za-z0-9_-]{32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The identity anonymous clients' tokens are bound to.
ANONYMOUS = "anonymous"
#: Seconds of clock difference tolerated on a JWT's exp/nbf/iat.
JWT_LEEWAY = 5


class AuthFailure(Exception):
    """A login refused; ``str()`` is the reason the client is told."""


@dataclass(frozen=True)
class Login:
    """A user proven by a ticket or a JWT."""

    user: str
    roles: tuple[str, ...]
    method: str  # "ticket" or "jwt"


def new_ticket() -> str:
    return TICKET_PREFIX + secrets.token_urlsafe(32)


def new_client_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


#: An anonymous client token's parts: random bits, then the start of their HMAC-SHA256.
_NONCE_BYTES = 16
_TAG_BYTES = 8


def anonymous_token_key(backend_secret: str) -> bytes:
    """The key anonymous client tokens are signed with: every authenticator of a node derives the same
    one (they share gateway.yaml), and it lasts across restarts. Changing ``backend.secret`` makes the
    anonymous tokens no persistent subscription holds unknown: their clients just get new ones."""
    return hmac.new(backend_secret.encode(), b"events-gateway anonymous client tokens v1", hashlib.sha256).digest()


def new_anonymous_token(key: bytes) -> str:
    """A signed anonymous client token: known again by ``is_anonymous_token`` without being stored."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + _tag(key, nonce)).decode("ascii")


def is_anonymous_token(token: str, key: bytes) -> bool:
    """Whether ``token`` (already of the right shape: ``presented_token``) was signed with ``key``."""
    try:
        raw = base64.urlsafe_b64decode(token.removeprefix(TOKEN_PREFIX))
    except ValueError:
        return False
    if len(raw) != _NONCE_BYTES + _TAG_BYTES:
        return False
    return hmac.compare_digest(raw[_NONCE_BYTES:], _tag(key, raw[:_NONCE_BYTES]))


def _tag(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, b"anonymous:" + nonce, hashlib.sha256).digest()[:_TAG_BYTES]


def digest(credential: str) -> str:
    """What the store keeps instead of a credential: a copy of it gives no one a login."""
    return hashlib.sha256(credential.encode()).hexdigest()


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_user(user: object, what: str = "user") -> str:
    """A user id: any non-empty text up to 255 characters without control characters."""
    if not isinstance(user, str):
        raise AuthFailure(f"{what} must be a string, not {_kind(user)}")
    if not user or len(user) > MAX_USER_LENGTH or _CONTROL.search(user) or user != user.strip():
        raise AuthFailure(f"{what} must be 1 to {MAX_USER_LENGTH} characters, without control characters "
                          "or surrounding spaces")
    return user


def check_roles(roles: object, what: str = "roles") -> tuple[str, ...]:
    """A user's roles: a list of lower-case names (e.g. ``["staff"]``), at most 32."""
    if roles is None:
        return ()
    if not isinstance(roles, list):
        raise AuthFailure(f"{what} must be a list of role names, not {_kind(roles)}")
    if len(roles) > MAX_ROLES:
        raise AuthFailure(f"{what} holds {len(roles)} roles; at most {MAX_ROLES}")
    for i, role in enumerate(roles):
        if not isinstance(role, str) or not ROLE.match(role):
            raise AuthFailure(f"{what}[{i}] ({role!r}) must be a lower-case name: letters, digits, _ "
                              "(e.g. 'staff')")
        if role in ("anonymous", "backend"):
            raise AuthFailure(f"{what}[{i}]: {role!r} is the gateway's own role and cannot be given to a user")
    return tuple(sorted(set(roles)))


def check_credential(credential: object) -> str:
    """The WAMP-ticket a client sent: a string of sane length."""
    if not isinstance(credential, str):
        raise AuthFailure(f"the ticket must be a string, not {_kind(credential)}")
    if not credential:
        raise AuthFailure("the ticket is empty")
    if len(credential) > MAX_CREDENTIAL_LENGTH:
        raise AuthFailure(f"the ticket is {len(credential)} characters long; at most {MAX_CREDENTIAL_LENGTH}")
    return credential


def is_jwt(credential: str) -> bool:
    return not credential.startswith(TICKET_PREFIX) and credential.count(".") == 2


def verify_jwt(token: str, secret: str, audience: str, max_ttl: float = 24 * 3600) -> Login:
    """Check a JWT login: HS256 with ``secret``, ``sub`` and ``exp`` present, ``aud`` (if any) = ``audience``,
    and ``exp`` at most ``max_ttl`` seconds ahead (a JWT that lives for ever is a password)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise AuthFailure("the JWT is malformed: not three base64url parts with a JSON header") from None
    if header.get("alg") != "HS256":
        raise AuthFailure(f"the JWT is signed with {header.get('alg')!r}; only HS256 is accepted")
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], leeway=JWT_LEEWAY,
                                            options={"require": ["exp", "sub"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise AuthFailure("the JWT has expired (its exp is in the past)") from None
    except jwt.InvalidSignatureError:
        raise AuthFailure("the JWT's signature does not match: it was not signed with this gateway's "
                          "auth.secret") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthFailure(f"the JWT has no {exc.claim!r} claim; it needs 'sub' (the user) and 'exp'") from None
    except jwt.ImmatureSignatureError:
        raise AuthFailure("the JWT is not valid yet (nbf or iat is in the future)") from None
    except jwt.InvalidTokenError as exc:
        raise AuthFailure(f"the JWT is not valid: {exc}") from None
    left = float(claims["exp"]) - time.time()  # PyJWT checked exp against the same clock
    if left > max_ttl + JWT_LEEWAY:
        raise AuthFailure(f"the JWT's exp is {left:.0f} s ahead; this gateway accepts at most {max_ttl:.0f} s "
                          "(auth.max_jwt_ttl)")
    # aud is optional; when present it must name this gateway (its realm).
    aud = claims.get("aud", audience)
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise AuthFailure(f"the JWT's aud claim ({aud!r}) does not name this gateway ({audience!r})")
    user = check_user(claims.get("sub"), "the JWT's sub claim")
    roles = check_roles(claims.get("roles"), "the JWT's roles claim")
    return Login(user, roles, "jwt")


def identity_of(user: str | None) -> str:
    """The identity a client token is bound to."""
    return ANONYMOUS if user is None else f"user:{user}"


def presented_token(authextra: object) -> str | None:
    """The client token in HELLO authextra, if there is one of the right shape (anything else is ignored)."""
    if not isinstance(authextra, Mapping):
        return None
    token = authextra.get("client_token")
    return token if isinstance(token, str) and _TOKEN.match(token) else None


def may_reuse(known: tuple[str, float] | None, identity: str, now: float) -> bool:
    """Whether a presented token (``known``: its stored identity and expiry) goes on for ``identity``."""
    return known is not None and known[0] == identity and known[1] > now


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
