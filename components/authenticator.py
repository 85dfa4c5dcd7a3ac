"""The authenticator: the router asks it who every connecting client is.

Crossbar's websocket transport is configured with a *dynamic* authenticator
for both ``anonymous`` (no credentials) and ``ticket`` (a one-time ticket
from ``POST /tickets``, or a JWT signed with ``auth.secret``): it calls
``gateway.authenticate(realm, authid, details)`` and the answer decides the
session's authid, role and WELCOME ``authextra``:

    {"client_token": "ct_...", "client_token_expires": "2026-12-05T10:00:00Z",
     "user": "alice" | null, "roles": ["staff"]}

Refusals are WAMP errors ``gateway.error.authentication_failed`` whose
message says why; the client gets them in its ABORT.

Every container worker runs one; they share the store, so a ticket is used
once whichever answers, and a token issued by one is known to the others.
The same component issues tickets for the bridge and answers
``gateway.whoami``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CloseDetails, RegisterOptions, SessionDetails
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from components import uris
from components.backend import BackendSession
from components.config import AuthConfig
from components.identity import ANONYMOUS, AuthFailure, Login, TICKET_PREFIX, check_credential, check_roles, \
    check_user, digest, identity_of, is_jwt, may_reuse, new_client_token, new_ticket, presented_token, rfc3339, \
    verify_jwt
from components.events.rules import ANONYMOUS_ROLE
from components.store import SqliteStore

log = Logger()

#: How often expired tokens and tickets are dropped from the store.
PRUNE_INTERVAL = 300.0


class Identities:
    """The authentication rules applied with the store (no WAMP here: unit-tested on a temporary file)."""

    def __init__(self, store: SqliteStore, cfg: AuthConfig, realm: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._cfg = cfg
        self._realm = realm
        self._clock = clock

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
            login = verify_jwt(text, self._cfg.secret, self._realm)
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
        """The token presented again (renewed) if it was issued to this identity and lives; else a new one."""
        now = self._clock()
        presented = presented_token(authextra)
        token = None
        if presented is not None:
            known = self._store.token(digest(presented))
            if may_reuse(known, identity, now):
                token = presented
            elif known is not None and known[0] != identity:
                # Never the token itself in the log, nor the identity it belongs to.
                log.warn("a client token issued to another identity was presented by {who}; a new one was issued",
                         who="an anonymous client" if identity == ANONYMOUS else identity)
        if token is None:
            token = new_client_token()
        expires = now + self._cfg.client_token_ttl
        self._store.save_token(digest(token), identity, expires)
        return token, expires

    def prune(self) -> None:
        self._store.forget_expired_credentials(self._clock())


class Authenticator(BackendSession):
    _store: SqliteStore | None = None
    _identities: Identities
    _pruner: LoopingCall | None = None

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        self._store = SqliteStore(cfg.store.path)
        self._identities = Identities(self._store, cfg.auth, cfg.router.realm)
        self._pruner = LoopingCall(self._identities.prune)
        self._pruner.start(PRUNE_INTERVAL, now=True)
        shared = RegisterOptions(invoke="roundrobin")
        await self.register(self._authenticate, uris.AUTHENTICATE, options=shared)
        await self.register(self._issue_ticket, uris.INTERNAL_TICKET, options=shared)
        await self.register(self._whoami, uris.WHOAMI, options=RegisterOptions(invoke="roundrobin",
                                                                               details_arg="details"))
        self.log.info("authenticator ready")

    def _authenticate(self, realm: str, authid: str | None, details: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._identities.authenticate(realm, authid, details if isinstance(details, dict) else {})
        except AuthFailure as exc:
            self.log.info("login refused ({method}): {why}", method=_method(details), why=exc)
            raise ApplicationError(uris.ERROR_AUTHENTICATION_FAILED, str(exc)) from None

    def _issue_ticket(self, user: object, roles: object = None, ttl: object = None) -> dict[str, Any]:
        try:
            return self._identities.issue_ticket(user, roles, ttl)
        except AuthFailure as exc:
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, str(exc)) from None

    async def _whoami(self, details: CallDetails) -> dict[str, Any]:
        info = await self.call("wamp.session.get", details.caller)
        extra = info.get("authextra") or {}
        return {"session": details.caller, "authid": info.get("authid"), "role": info.get("authrole"),
                "user": extra.get("user"), "roles": extra.get("roles", []),
                "client_token": extra.get("client_token"),
                "client_token_expires": extra.get("client_token_expires")}

    def onLeave(self, details: CloseDetails) -> None:
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        super().onLeave(details)


def _method(details: object) -> str:
    return str(details.get("authmethod")) if isinstance(details, dict) else "?"
