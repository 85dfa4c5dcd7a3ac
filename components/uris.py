"""Every WAMP URI the gateway uses, defined once.

Anything outside this module refers to these names, never to literal strings,
so that renaming a URI is a one-line change and a grep finds every use.
"""

#: Prefix of the per-class topics: ``gateway.event.<class name>``.
EVENT_TOPIC_PREFIX = "gateway.event."

#: Called by the bridge (role backend) to hand an accepted event to the
#: dispatcher, which assigns seq and time and publishes it.
INTERNAL_PUBLISH = "gateway.internal.publish"

#: Each component offers ``gateway.internal.reload.<session id>``: reload the
#: event definitions now and say which version runs.
INTERNAL_RELOAD_PREFIX = "gateway.internal.reload."

#: The event classes the caller may see: ``{"version", "classes": [...]}``.
CATALOG = "gateway.catalog"

#: ``gateway.subscribe(query, persistent=False)`` -> ``{"id", "topic", "query", "persistent"}``.
SUBSCRIBE = "gateway.subscribe"
#: ``gateway.unsubscribe(id)``: the subscription ends; its topic stops delivering to the caller.
UNSUBSCRIBE = "gateway.unsubscribe"
#: ``gateway.subscriptions()`` -> the caller's subscriptions.
SUBSCRIPTIONS = "gateway.subscriptions"
#: ``gateway.replay(id, after_seq, limit=500)`` -> ``{"events", "truncated", "more", "next_after", "last_seq"}``.
REPLAY = "gateway.replay"
#: ``gateway.ack(id, seq)`` -> ``{"id", "last_seq"}``: delivered up to seq; the cursor only moves forward.
ACK = "gateway.ack"
#: Called by the bridge: server-side subscriptions for a user (POST/GET/DELETE /subscriptions).
INTERNAL_SUBSCRIPTION_CREATE = "gateway.internal.subscriptions.create"
INTERNAL_SUBSCRIPTION_LIST = "gateway.internal.subscriptions.list"
INTERNAL_SUBSCRIPTION_DELETE = "gateway.internal.subscriptions.delete"
#: A session is told here (only its owner's sessions receive it) that a subscription of its was removed.
META_SUBSCRIPTION_REMOVED = "gateway.meta.subscription_removed"
#: Prefix of the topics of queries: ``gateway.query.<key>``, one per canonical query.
QUERY_TOPIC_PREFIX = "gateway.query."

#: The dynamic authorizer the router asks about every client action.
AUTHORIZE = "gateway.authorize"
#: The dynamic authenticator the router asks about every connecting client:
#: ``(realm, authid, details)`` -> ``{"role", "authid"?, "extra"}``.
AUTHENTICATE = "gateway.authenticate"
#: Called by the bridge: ``(user, roles, ttl)`` -> ``{"ticket", "expires_at", ...}``, a one-time WAMP-ticket.
INTERNAL_TICKET = "gateway.internal.ticket"
#: Held (registered) by the one bridge of a node that consumes the RabbitMQ queue; the
#: node's other bridges stand by and take over when its session ends.
INTERNAL_AMQP_CONSUMER = "gateway.internal.amqp.consumer"
#: ``gateway.whoami()`` -> authid, role, user, roles, client token and its expiry.
WHOAMI = "gateway.whoami"

#: The authid each of our components joins with (role backend).
DISPATCHER_AUTHID = "dispatcher"
BRIDGE_AUTHID = "bridge"
AUTHENTICATOR_AUTHID = "authenticator"

# Errors (WAMP error URIs with readable messages).
ERROR_UNKNOWN_EVENT = "gateway.error.unknown_event"
ERROR_NOT_AUTHORIZED = "gateway.error.not_authorized"
ERROR_INVALID_DEFINITIONS = "gateway.error.invalid_definitions"
ERROR_INVALID_QUERY = "gateway.error.invalid_query"
ERROR_NO_SUCH_SUBSCRIPTION = "gateway.error.no_such_subscription"
ERROR_NOT_SUPPORTED = "gateway.error.not_supported"
ERROR_AUTHENTICATION_FAILED = "gateway.error.authentication_failed"
ERROR_INVALID_ARGUMENT = "gateway.error.invalid_argument"


def event_topic(name: str) -> str:
    """The topic every event of class ``name`` is published to."""
    return EVENT_TOPIC_PREFIX + name


def internal_reload(session_id: int) -> str:
    return f"{INTERNAL_RELOAD_PREFIX}{session_id}"


def query_topic(key: str) -> str:
    return QUERY_TOPIC_PREFIX + key
