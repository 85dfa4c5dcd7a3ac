"""The client sessions on the router, as the dispatcher knows them: who each is, and audiences.

Kept from the router's meta events (``wamp.session.on_join`` /
``on_leave``), rebuilt from ``wamp.session.list`` at start. The identity
comes from what our authenticator put in WELCOME ``authextra`` (the user
and their roles), so it is trusted: a client cannot change it.

An event's audience (``{"users": [...], "roles": [...]}``) is a set of
sessions: those of the users named, and those holding one of the roles
named (their WAMP role or one of their roles). Crossbar delivers to them
only (``eligible``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.events.rules import BACKEND_ROLE, visible_to
from components.auth.credentials import digest


@dataclass(frozen=True)
class Restriction:
    """Whom Crossbar may deliver a publication to: sessions (``eligible``) and/or WAMP roles."""

    eligible: list[int] | None = None
    eligible_authrole: list[str] | None = None


@dataclass(frozen=True)
class SessionInfo:
    session: int
    authid: str
    authrole: str
    #: The logged-in user (None for anonymous clients).
    user: str | None
    roles: tuple[str, ...]
    client_token: str | None = None

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> SessionInfo:
        extra = details.get("authextra")
        extra = extra if isinstance(extra, Mapping) else {}
        user = extra.get("user")
        roles = extra.get("roles")
        token = extra.get("client_token")
        return cls(
            session=int(details["session"]),
            authid=str(details.get("authid") or ""),
            authrole=str(details.get("authrole") or ""),
            user=user if isinstance(user, str) else None,
            roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
            client_token=token if isinstance(token, str) else None,
        )


class Sessions:
    def __init__(self, user_role: str = "user") -> None:
        self._user_role = user_role
        self._by_id: dict[int, SessionInfo] = {}
        self._by_user: dict[str, set[int]] = {}
        self._by_role: dict[str, set[int]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, session: int) -> SessionInfo | None:
        return self._by_id.get(session)

    def count_by_authrole(self) -> dict[str, int]:
        """How many client sessions hold each WAMP role (``gateway_sessions{role}``)."""
        counts: dict[str, int] = {}
        for info in self._by_id.values():
            counts[info.authrole] = counts.get(info.authrole, 0) + 1
        return counts

    def joined(self, details: Mapping[str, Any]) -> None:
        info = SessionInfo.from_details(details)
        if info.authrole == BACKEND_ROLE:
            return  # our own components are never an event's audience
        self.left(info.session)
        self._by_id[info.session] = info
        if info.user is not None:
            self._by_user.setdefault(info.user, set()).add(info.session)
        for role in {info.authrole, *info.roles}:
            self._by_role.setdefault(role, set()).add(info.session)

    def left(self, session: int) -> None:
        info = self._by_id.pop(int(session), None)
        if info is None:
            return
        if info.user is not None:
            _discard(self._by_user, info.user, info.session)
        for role in {info.authrole, *info.roles}:
            _discard(self._by_role, role, info.session)

    def keep_only(self, sessions: Iterable[int]) -> None:
        live = set(sessions)
        for session in [s for s in self._by_id if s not in live]:
            self.left(session)

    def audience(self, users: Iterable[str] = (), roles: Iterable[str] = ()) -> list[int]:
        """The sessions an event with this audience may reach, sorted."""
        found: set[int] = set()
        for user in users:
            found |= self._by_user.get(user, set())
        for role in roles:
            found |= self._by_role.get(role, set())
        return sorted(found)


    def of_owner(self, owner: str) -> list[int]:
        """The sessions speaking for a persistent subscription's owner (``user:<id>`` or ``token:<sha256>``)."""
        kind, _, value = owner.partition(":")
        if kind == "user":
            return sorted(self._by_user.get(value, ()))
        if kind == "token":
            return sorted(s for s, info in self._by_id.items()
                          if info.client_token is not None and digest(info.client_token) == value)
        return []

    def restriction(self, visibility: str, audience: Mapping[str, Iterable[str]] | None = None) -> Restriction:
        """Who may receive an event of a class with this visibility (and audience), now.

        The authorizer already keeps clients off topics they may not see; this
        holds at delivery too, so that a reload making a class stricter takes
        effect at once for those already subscribed.
        """
        if audience is not None:
            named = self.audience(audience.get("users", ()), audience.get("roles", ()))
            if visibility != "public":
                named = [s for s in named if visible_to(visibility, self._by_id[s].authrole, self._by_id[s].roles)]
            return Restriction(eligible=named)
        if visibility == "public":
            return Restriction()
        if visibility == "authenticated":
            return Restriction(eligible_authrole=[self._user_role])
        return Restriction(eligible=sorted(self._by_role.get(visibility.removeprefix("role:"), ())))


def _discard(index: dict[str, set[int]], key: str, session: int) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(session)
        if not members:
            del index[key]
