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

from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallDetails, CloseDetails, RegisterOptions, SessionDetails
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from components import uris
from components.metrics.families import LOGINS
from components.metrics.process_meter import METER
from components.arguments import Signature
from components.backend import BackendSession
from components.auth.logins import Identities
from components.auth.credentials import AuthFailure, anonymous_token_key
from components.exceptions import StoreUnavailable
from components.procedures import checked
from components.ratelimit import CallBuckets
from components.store.base import Store, open_store
from components.store.thread import StoreThread


#: How often expired tokens and tickets are dropped from the store, up to 10,000 of each at a time:
#: more than the router can create (~150 logins/s), so the store never grows without bound.
PRUNE_INTERVAL = 5.0


class Authenticator(BackendSession):
    """Every store read and write of a login runs on the store thread: the reactor never waits on it."""

    _thread: StoreThread | None = None
    _pruner: LoopingCall | None = None

    async def start(self, details: SessionDetails) -> None:
        cfg = self.load_gateway_config()
        identities: list[Identities] = []
        token_key = anonymous_token_key(cfg.backend.secret)

        def open_identities() -> Store:
            store = open_store(cfg.store)
            identities.append(Identities(store, cfg.auth, cfg.router.realm, token_key=token_key))
            return store

        self._thread = StoreThread(open_identities, name="authenticator-store")
        # The rules, on the store thread, with the Identities bound to that thread's store.
        self._on_thread = lambda method, *args: self._run(lambda _: getattr(identities[0], method)(*args))
        await self._run(lambda store: None)  # opens the store (and migrates it) before anyone may log in
        self._pruner = LoopingCall(lambda: self._on_thread("prune").addErrback(
            lambda f: self.log.error("pruning expired tokens failed: {err}", err=f.getErrorMessage())))
        self._pruner.start(PRUNE_INTERVAL, now=True)
        shared = RegisterOptions(invoke="roundrobin")
        await self.register(self._authenticate, uris.AUTHENTICATE, options=shared)
        await self.register(self._issue_ticket, uris.INTERNAL_TICKET, options=shared)
        # A client procedure: its arguments checked, its calls counted against the session's rate
        # (per authenticator: calls spread round-robin over the containers' authenticators).
        buckets = CallBuckets(cfg.queries.calls_per_second, cfg.queries.call_burst)
        await self.register(checked(Signature(uris.WHOAMI), self._whoami, self.log, buckets), uris.WHOAMI,
                            options=RegisterOptions(invoke="roundrobin", details_arg="details"))
        await self.offer_metrics(cfg)
        self.log.info("authenticator ready")

    def _run(self, work: Callable[[Store], Any]) -> Deferred[Any]:
        assert self._thread is not None
        return self._thread.run(work)

    async def _authenticate(self, realm: str, authid: str | None, details: dict[str, Any]) -> dict[str, Any]:
        try:
            principal: dict[str, Any] = await self._on_thread(
                "authenticate", realm, authid, details if isinstance(details, dict) else {})
            _count_login(details, "accepted")
            return principal
        except AuthFailure as exc:
            _count_login(details, "refused")
            self.log.info("login refused ({method}): {why}", method=_method(details), why=exc)
            raise ApplicationError(uris.ERROR_AUTHENTICATION_FAILED, str(exc)) from None
        except StoreUnavailable as exc:
            _count_login(details, "unavailable")
            self.log.warn("login not decided ({method}): {err}", method=_method(details), err=exc)
            raise ApplicationError(uris.ERROR_UNAVAILABLE, "the gateway's store did not answer; connect again "
                                   "later") from None

    async def _issue_ticket(self, user: object, roles: object = None, ttl: object = None) -> dict[str, Any]:
        try:
            ticket: dict[str, Any] = await self._on_thread("issue_ticket", user, roles, ttl)
            return ticket
        except AuthFailure as exc:
            raise ApplicationError(uris.ERROR_INVALID_ARGUMENT, str(exc)) from None
        except StoreUnavailable as exc:
            raise ApplicationError(uris.ERROR_UNAVAILABLE, f"the gateway's store did not answer; try again later "
                                   f"({exc})") from None

    async def _whoami(self, details: CallDetails) -> dict[str, Any]:
        info = await self.call(uris.META_SESSION_GET, details.caller)
        extra = info.get("authextra") or {}
        return {"session": details.caller, "authid": info.get("authid"), "role": info.get("authrole"),
                "user": extra.get("user"), "roles": extra.get("roles", []),
                "client_token": extra.get("client_token"),
                "client_token_expires": extra.get("client_token_expires")}

    def onLeave(self, details: CloseDetails) -> None:
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        super().onLeave(details)


#: gateway_logins_total's ``method``: WAMP's authmethods our authenticator answers; anything else is ``other``
#: (a label's values must stay few, whatever a client sends).
_LOGIN_METHODS = frozenset({"anonymous", "ticket", "wampcra", "cookie", "tls", "cryptosign", "scram"})


def _count_login(details: object, outcome: str) -> None:
    method = _method(details)
    METER.count(LOGINS, (("method", method if method in _LOGIN_METHODS else "other"), ("outcome", outcome)))


def _method(details: object) -> str:
    return str(details.get("authmethod")) if isinstance(details, dict) else "?"
