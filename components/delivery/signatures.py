"""The dispatcher's procedures' signatures, declared once (``components.arguments``): what each
argument is and what it may hold. Pure, so that the checks are unit-tested without a router (and
without choosing Twisted for txaio in the test process)."""

from __future__ import annotations

from components import uris
from components.arguments import Flag, OrNull, Param, Signature, Text, TextList
from components.auth.credentials import MAX_ROLES, MAX_USER_LENGTH
from components.delivery.replay import SUBSCRIPTION_ID

# The procedures' arguments, as their documentation (components/uris.py) names them. A query's length
# is the parser's to judge (gateway.error.invalid_query, naming queries.max_length).
SUBSCRIBE = Signature(uris.SUBSCRIBE, Param("query", Text()), Param("persistent", Flag(), False),
                      Param("batch", Flag(), False, keyword_only=True))
UNSUBSCRIBE = Signature(uris.UNSUBSCRIBE, Param("id", SUBSCRIPTION_ID))
SUBSCRIPTIONS = Signature(uris.SUBSCRIPTIONS)
CATALOG = Signature(uris.CATALOG)
# The bridge's: it checked the request already; these hold the dispatcher to what it can take.
USER = Text(max_length=MAX_USER_LENGTH, min_length=1)
INTERNAL_CREATE = Signature(uris.INTERNAL_SUBSCRIPTION_CREATE, Param("user", USER),
                            Param("roles", TextList(MAX_ROLES, 64)), Param("query", Text()))
INTERNAL_LIST = Signature(uris.INTERNAL_SUBSCRIPTION_LIST, Param("user", OrNull(USER), None),
                          Param("event", OrNull(Text()), None))
INTERNAL_DELETE = Signature(uris.INTERNAL_SUBSCRIPTION_DELETE, Param("id", Text()))
INTERNAL_STATS = Signature(uris.INTERNAL_STATS)
