"""The authentication rules applied with the store: who a connecting client is, and its token.

No WAMP here (``components.auth.authenticator`` is the component that answers the
router with this); unit-tested on a temporary store file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from components.config import AuthConfig
from components.events.rules import ANONYMOUS_ROLE
from components.auth.credentials import ANONYMOUS, TICKET_PREFIX, AuthFailure, Login, check_credential, check_roles, \
    check_user, digest, identity_of, is_anonymous_token, is_jwt, may_reuse, new_anonymous_token, new_client_token, \
    new_ticket, presented_token, rfc3339, verify_jwt
from components.store.base import Store

log = Logger()
#: Seconds expired tokens and tickets stay in the store before they are pruned.
EXPIRED_KEPT = 3600.0


class Identities:
    """The authentication rules applied with the store (no WAMP here: unit-tested on a temporary file)."""

    def __init__(self, store: Store, cfg: AuthConfig, realm: str, clock: Callable[[], float] = time.time, *,
                 token_key: bytes) -> None:
        """``token_key``: what anonymous tokens are signed with (``credentials.anonymous_token_key``)."""
        self._store = store
        self._cfg = cfg
        self._realm = realm
        self._clock = clock
        self._token_key = token_key

    def authenticate(self, realm: str, authid: str | None, details: dict[str, Any]) -> dict[str, Any]:
        """The principal for a connecting client; AuthFailure with the reason when refused."""
        method = details.get("authmethod")
        if method == "anonymous":
            login = None
        elif method == "ticket":
            login = self.login(details.get("ticket"), authid)
        else:
            raise AuthFailure(f"authentication method {method!r} is not offered; use ticket or none")
        identity = identity_of(login.user if login else None)
        token, expires = self._client_token(details.get("authextra"), identity)
        extra = {"client_token": token, "client_token_expires": rfc3339(expires),
                 "user": login.user if login else None, "roles": list(login.roles) if login else [],
                 "authmethod": login.method if login else "anonymous"}
        if login is None:
            return {"role": ANONYMOUS_ROLE, "extra": extra}
        return {"role": self._cfg.user_role, "authid": login.user, "extra": extra}

    def login(self, credential: object, authid: str | None) -> Login:
        """A ticket or a JWT; refused unless it is valid now and (if an authid was given) names that user."""
        text = check_credential(credential)
        if is_jwt(text):
            if self._cfg.secret is None:
                raise AuthFailure("JWT logins are off on this gateway (auth.secret is not set); "
                                  "log in with a ticket from POST /tickets")
            login = verify_jwt(text, self._cfg.secret, self._realm, self._cfg.max_jwt_ttl)
        elif text.startswith(TICKET_PREFIX):
            found = self._store.use_ticket(digest(text))
            if found is None:
                raise AuthFailure("the ticket is unknown or was used already (a ticket works once; "
                                  "get a new one from POST /tickets)")
            user, roles, expires = found
            if expires <= self._clock():
                raise AuthFailure(f"the ticket expired at {rfc3339(expires)}; get a new one from POST /tickets")
            login = Login(user, tuple(roles), "ticket")
        else:
            raise AuthFailure("the ticket is neither a gateway ticket (gt_..., from POST /tickets) nor a JWT")
        if authid is not None and authid != login.user:
            raise AuthFailure(f"the credential is for another user than the authid {authid!r} given")
        return login

    def issue_ticket(self, user: object, roles: object = None, ttl: object = None) -> dict[str, Any]:
        """A one-time ticket for ``user``: ``{"ticket", "expires_at", "user", "roles"}``."""
        name = check_user(user)
        granted = check_roles(roles)
        if ttl is None:
            seconds = self._cfg.ticket_ttl
        elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= self._cfg.max_ticket_ttl:
            raise AuthFailure(f"ttl must be a number of seconds, more than 0 and at most "
                              f"{self._cfg.max_ticket_ttl:g} (auth.max_ticket_ttl), not {ttl!r}")
        else:
            seconds = float(ttl)
        ticket = new_ticket()
        expires = self._clock() + seconds
        self._store.save_ticket(digest(ticket), name, list(granted), expires)
        return {"ticket": ticket, "expires_at": rfc3339(expires), "user": name, "roles": list(granted)}

    def _client_token(self, authextra: object, identity: str) -> tuple[str, float]:
        """The token presented again (renewed) if it was issued to this identity and lives; else a new one.

        A stored token (a user's; an anonymous one a persistent subscription holds) is renewed in
        the store. An anonymous token with no row is known by its signature: nothing hangs on it,
        so there is nothing to store or renew (its expiry is now + ttl, as for every token).
        """
        now = self._clock()
        expires = now + self._cfg.client_token_ttl
        presented = presented_token(authextra)
        if presented is not None:
            known = self._store.token(digest(presented))
            if may_reuse(known, identity, now):
                self._store.save_token(digest(presented), identity, expires)
                return presented, expires
            if known is not None and known[0] != identity:
                # Never the token itself in the log, nor the identity it belongs to.
                log.warn("a client token issued to another identity was presented by {who}; a new one was issued",
                         who="an anonymous client" if identity == ANONYMOUS else identity)
            elif known is None and identity == ANONYMOUS and is_anonymous_token(presented, self._token_key):
                return presented, expires
        if identity == ANONYMOUS:
            return new_anonymous_token(self._token_key), expires
        token = new_client_token()
        self._store.save_token(digest(token), identity, expires)
        return token, expires

    def prune(self) -> None:
        """Drop tokens and tickets that expired over an hour ago (until then a late ticket is refused
        as "expired", which says more than "unknown"; an expired token is never reused either way),
        and the rows of anonymous tokens that no persistent subscription holds any more (their
        tokens stay good: they are signed)."""
        self._store.forget_expired_credentials(self._clock() - EXPIRED_KEPT)
        self._store.forget_unheld_tokens(ANONYMOUS)
