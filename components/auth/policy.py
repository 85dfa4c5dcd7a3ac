"""Who may do what on the router: the rules of the dynamic authorizer, as a pure function.

Crossbar asks ``gateway.authorize`` before a client (any role but our own
``backend``) subscribes, calls, publishes or registers. The component that
answers (the dispatcher) passes the question here with what it knows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from components import uris
from components.events import Registry
from components.events.rules import ANONYMOUS_ROLE

#: Procedures any client may call; they answer by the caller's identity.
CLIENT_PROCEDURES = frozenset({uris.SUBSCRIBE, uris.UNSUBSCRIBE, uris.SUBSCRIPTIONS, uris.CATALOG, uris.WHOAMI,
                               uris.REPLAY, uris.ACK})

Decision = dict[str, bool]

DENY: Decision = {"allow": False, "disclose": False, "cache": False}

#: ``status.operator_role``'s default: the role (in a ticket's or JWT's roles) that may see the status page.
OPERATOR_ROLE = "staff"


def is_operator(authrole: str, roles: Collection[str], operator_role: str) -> bool:
    """Whether a client may call ``gateway.status``: a signed-in user holding ``operator_role`` among the
    roles its ticket or JWT gave it (read from the authextra our authenticator answered)."""
    return authrole != ANONYMOUS_ROLE and operator_role in roles


def session_is_operator(session: Mapping[str, Any] | None, operator_role: str) -> bool:
    """``is_operator`` for a session as the router describes it (``wamp.session.get``): its WAMP role and
    the roles in the ``authextra`` our authenticator answered (the client cannot change them). None (the
    session is gone), or details of another shape: not an operator."""
    if not isinstance(session, Mapping):
        return False
    authrole = session.get("authrole")
    extra = session.get("authextra")
    roles = extra.get("roles") if isinstance(extra, Mapping) else None
    if not isinstance(authrole, str) or not isinstance(roles, list):
        return False
    return is_operator(authrole, [r for r in roles if isinstance(r, str)], operator_role)


def authorize(authrole: str, roles: Collection[str], uri: str, action: str, options: Mapping[str, Any],
              registry: Registry, granted: Callable[[str], bool], operator_role: str = OPERATOR_ROLE) -> Decision:
    """Allow or deny ``action`` on ``uri``. ``granted(key)``: was this session given query topic ``key``?

    Never cached where the answer can change while the session lives, nor where it depends on more than
    the WAMP role: Crossbar caches a decision for every session of the role (its key is realm, authrole,
    URI and action). Class visibility changes with a reload of the definitions, grants with every
    ``gateway.subscribe``; ``gateway.status`` depends on the session's own roles (``operator_role``).
    """
    if action == "call":
        if uri in CLIENT_PROCEDURES:
            # The callee needs to know who calls: disclose the caller.
            return {"allow": True, "disclose": True, "cache": True}
        if uri == uris.STATUS:
            # Never cached: a staff user and another user share the WAMP role.
            return {"allow": is_operator(authrole, roles, operator_role), "disclose": True, "cache": False}
        return DENY
    if action != "subscribe":
        return DENY  # clients never publish or register: events come from web-apps through the bridge
    if options.get("match", "exact") != "exact":
        return DENY  # a pattern would reach topics one by one it was never granted
    if uri.startswith(uris.EVENT_TOPIC_PREFIX):
        name = uri[len(uris.EVENT_TOPIC_PREFIX):]
        # A class with a row filter has no topic a client may take whole: each
        # subscriber's rows come on the topic of their own query (gateway.subscribe).
        allowed = (name in registry and registry.get(name).visible_to(authrole, roles)
                   and registry.get(name).row_filter is None)
        return {"allow": allowed, "disclose": False, "cache": False}
    if uri == uris.META_SUBSCRIPTION_REMOVED:
        # Published only to the sessions of the subscription's owner (eligible).
        return {"allow": True, "disclose": False, "cache": True}
    query = uris.query_key(uri)
    if query is not None:
        # A query topic and its batched twin (gateway.batch.query.<key>): the same grant for both.
        return {"allow": granted(query[0]), "disclose": False, "cache": False}
    return DENY
