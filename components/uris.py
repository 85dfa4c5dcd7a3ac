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
#: Each component offers ``gateway.internal.metrics.<session id>``: its process's metrics snapshot
#: (``components.metrics.Snapshot.to_wire``), which the bridge answering ``GET /metrics`` sums.
INTERNAL_METRICS_PREFIX = "gateway.internal.metrics."
#: Each bridge offers ``gateway.internal.drain.<session id>``: take no new event from now on (the node is
#: leaving: ``POST /admin/drain``) and answer ``{"process", "in_flight", "amqp"}``; asked again, the same.
INTERNAL_DRAIN_PREFIX = "gateway.internal.drain."

#: The event classes the caller may see: ``{"version", "classes": [...]}``.
CATALOG = "gateway.catalog"

#: ``gateway.subscribe(query, persistent=False, *, batch=False)`` -> ``{"id", "topic", "query", "persistent"}``
#: (and ``"batch": true`` with batch, whose topic is then the query's batched one).
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
#: Prefix of the batched twins of the query topics: ``gateway.batch.query.<key>``, for subscribers that
#: called ``gateway.subscribe(query, batch=True)``. Each event carries one or more envelopes, one per
#: positional argument, in seq order (a batch of one is exactly the unbatched event). Whoever may subscribe
#: to ``gateway.query.<key>`` may subscribe to it, and no one else.
BATCH_QUERY_TOPIC_PREFIX = "gateway.batch.query."

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
#: Held (registered, invoke ``single``) by the one active dispatcher of a node: only its holder
#: registers the procedures that write or order (publishing, numbering, subscriptions, replay,
#: ack); the other dispatchers stand by and take over when its session ends. Calling it says
#: which dispatcher that is: ``{"session", "pid", "since"}``.
INTERNAL_DISPATCHER_LEADER = "gateway.internal.dispatcher.leader"
#: Called by the bridge: the dispatcher's figures of the store, as of its last housekeeping round:
#: ``{"event_log": {"rows", "by_class", "counted_at"}, "persistent_subscriptions"}``.
INTERNAL_STATS = "gateway.internal.stats"
#: ``gateway.whoami()`` -> authid, role, user, roles, client token and its expiry.
WHOAMI = "gateway.whoami"
#: ``gateway.status()`` -> the node's figures for the status page (``components.metrics.status``): only
#: for signed-in users holding ``status.operator_role``; anyone else is refused (``wamp.error.not_authorized``
#: by the authorizer, ``gateway.error.not_authorized`` by the procedure).
STATUS = "gateway.status"

#: The authid each of our components joins with (role backend).
DISPATCHER_AUTHID = "dispatcher"
BRIDGE_AUTHID = "bridge"
AUTHENTICATOR_AUTHID = "authenticator"

# Crossbar's own meta API (the router's, not ours), as our components use it.
#: Meta events: a client session joined / left the realm.
META_SESSION_ON_JOIN = "wamp.session.on_join"
META_SESSION_ON_LEAVE = "wamp.session.on_leave"
#: Meta events: a topic got its first subscriber / a session unsubscribed / the last one left.
META_SUBSCRIPTION_ON_CREATE = "wamp.subscription.on_create"
META_SUBSCRIPTION_ON_UNSUBSCRIBE = "wamp.subscription.on_unsubscribe"
META_SUBSCRIPTION_ON_DELETE = "wamp.subscription.on_delete"
#: Meta procedures: the sessions there are, one session's details.
META_SESSION_LIST = "wamp.session.list"
META_SESSION_GET = "wamp.session.get"
#: Meta procedures: the topics with subscribers, one subscription's details.
META_SUBSCRIPTION_LIST = "wamp.subscription.list"
META_SUBSCRIPTION_GET = "wamp.subscription.get"
#: Meta procedure: how many sessions subscribe to a subscription (the status page's live queries).
META_SUBSCRIPTION_COUNT_SUBSCRIBERS = "wamp.subscription.count_subscribers"
#: Meta procedures: the registrations, one registration's details, by procedure, its callees.
META_REGISTRATION_LIST = "wamp.registration.list"
META_REGISTRATION_GET = "wamp.registration.get"
META_REGISTRATION_LOOKUP = "wamp.registration.lookup"
META_REGISTRATION_LIST_CALLEES = "wamp.registration.list_callees"
#: Meta event: a procedure's last callee went (its session ended or it unregistered):
#: ``(session id, registration id)``.
META_REGISTRATION_ON_DELETE = "wamp.registration.on_delete"

# Errors (WAMP error URIs with readable messages).
ERROR_UNKNOWN_EVENT = "gateway.error.unknown_event"
ERROR_NOT_AUTHORIZED = "gateway.error.not_authorized"
ERROR_INVALID_DEFINITIONS = "gateway.error.invalid_definitions"
ERROR_INVALID_QUERY = "gateway.error.invalid_query"
ERROR_NO_SUCH_SUBSCRIPTION = "gateway.error.no_such_subscription"
ERROR_NOT_SUPPORTED = "gateway.error.not_supported"
ERROR_AUTHENTICATION_FAILED = "gateway.error.authentication_failed"
#: A call's arguments do not match the procedure (the message names the argument and what was expected;
#: kwargs ``argument`` and ``expected``).
ERROR_INVALID_ARGUMENT = "gateway.error.invalid_argument"
#: A configured bound was reached (persistent subscriptions per token, per user, ...): the message names
#: the config key; kwargs ``limit`` (the key) and ``maximum``. Not a permission: freeing one makes room.
ERROR_LIMIT_EXCEEDED = "gateway.error.limit_exceeded"
#: The session called too often (``queries.calls_per_second`` / ``queries.call_burst``); kwargs
#: ``retry_after``: seconds until a call would be taken.
ERROR_RATE_LIMITED = "gateway.error.rate_limited"
#: The gateway failed on a call (our fault, logged with its traceback); the message says nothing of how.
ERROR_INTERNAL = "gateway.error.internal"
#: The gateway's store did not answer in time (``store.statement_timeout``) or cannot be reached: the call
#: failed and may be retried later (the bridge answers 503).
ERROR_UNAVAILABLE = "gateway.error.unavailable"
#: The reason a component gives when it leaves because it could not start (config, port in use, ...).
ERROR_START_FAILED = "gateway.error.start_failed"


def event_topic(name: str) -> str:
    """The topic every event of class ``name`` is published to."""
    return EVENT_TOPIC_PREFIX + name


def internal_metrics(session_id: int) -> str:
    """The procedure a component offers its process's metrics at."""
    return f"{INTERNAL_METRICS_PREFIX}{session_id}"


def internal_reload(session_id: int) -> str:
    return f"{INTERNAL_RELOAD_PREFIX}{session_id}"


def internal_drain(session_id: int) -> str:
    """The procedure a bridge drains at (``POST /admin/drain`` reaches every bridge of the node by it)."""
    return f"{INTERNAL_DRAIN_PREFIX}{session_id}"


def query_topic(key: str) -> str:
    return QUERY_TOPIC_PREFIX + key


def batch_query_topic(key: str) -> str:
    """The batched twin of ``query_topic(key)``."""
    return BATCH_QUERY_TOPIC_PREFIX + key


def query_key(topic: str) -> tuple[str, bool] | None:
    """(key, batched) of a query topic or its batched twin; None for any other URI."""
    if topic.startswith(QUERY_TOPIC_PREFIX):
        return topic[len(QUERY_TOPIC_PREFIX):], False
    if topic.startswith(BATCH_QUERY_TOPIC_PREFIX):
        return topic[len(BATCH_QUERY_TOPIC_PREFIX):], True
    return None


# -- The JS client (clients/js/src/uris.js) ------------------------------------------------
# URIs only the JS client uses: the router's errors it acts on, and its own error URIs
# (raised in the client, never sent by the gateway; listed so that they are defined here too).
# The status page (clients/status/) takes STATUS from the same module.

#: Router errors a call may end with while the session stays up (a component restarting, a
#: worker dying mid-call): the client asks again.
WAMP_ERROR_CANCELED = "wamp.error.canceled"
WAMP_ERROR_NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
WAMP_ERROR_NO_AVAILABLE_CALLEE = "wamp.error.no_available_callee"
#: ABORT reasons at login that mean the credential was refused.
WAMP_ERROR_AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
WAMP_ERROR_NOT_AUTHORIZED = "wamp.error.not_authorized"
WAMP_ERROR_NO_AUTH_METHOD = "wamp.error.no_auth_method"
#: The reason a client leaves with when the application closes it.
WAMP_CLOSE_NORMAL = "wamp.close.normal"

CLIENT_ERROR_INVALID_ARGUMENT = "gateway.client.invalid_argument"
CLIENT_ERROR_CONNECTION_LOST = "gateway.client.connection_lost"
CLIENT_ERROR_CLOSED = "gateway.client.closed"
CLIENT_ERROR_NO_CREDENTIALS = "gateway.client.no_credentials"
CLIENT_ERROR_INVALID_CREDENTIALS = "gateway.client.invalid_credentials"
CLIENT_ERROR_GAVE_UP = "gateway.client.gave_up"
CLIENT_ERROR_TIMEOUT = "gateway.client.timeout"
CLIENT_ERROR_HANDLER_ERROR = "gateway.client.handler_error"
CLIENT_ERROR_GAP = "gateway.client.gap"
CLIENT_ERROR_SUBSCRIPTION_REMOVED = "gateway.client.subscription_removed"
CLIENT_ERROR_BAD_EVENT = "gateway.client.bad_event"
CLIENT_ERROR_STORE_FAILED = "gateway.client.store_failed"

#: Every URI the JS client uses, under the name clients/js/src/uris.js exports it by
#: (tests/unit/test_js_uris.py holds the two equal).
JS_CLIENT: dict[str, str] = {
    "SUBSCRIBE": SUBSCRIBE,
    "UNSUBSCRIBE": UNSUBSCRIBE,
    "REPLAY": REPLAY,
    "ACK": ACK,
    "CATALOG": CATALOG,
    "WHOAMI": WHOAMI,
    "STATUS": STATUS,
    "META_SUBSCRIPTION_REMOVED": META_SUBSCRIPTION_REMOVED,
    "QUERY_TOPIC_PREFIX": QUERY_TOPIC_PREFIX,
    "BATCH_QUERY_TOPIC_PREFIX": BATCH_QUERY_TOPIC_PREFIX,
    "ERROR_NO_SUCH_SUBSCRIPTION": ERROR_NO_SUCH_SUBSCRIPTION,
    "ERROR_INVALID_ARGUMENT": ERROR_INVALID_ARGUMENT,
    "ERROR_AUTHENTICATION_FAILED": ERROR_AUTHENTICATION_FAILED,
    "WAMP_ERROR_CANCELED": WAMP_ERROR_CANCELED,
    "WAMP_ERROR_NO_SUCH_PROCEDURE": WAMP_ERROR_NO_SUCH_PROCEDURE,
    "WAMP_ERROR_NO_AVAILABLE_CALLEE": WAMP_ERROR_NO_AVAILABLE_CALLEE,
    "WAMP_ERROR_AUTHENTICATION_FAILED": WAMP_ERROR_AUTHENTICATION_FAILED,
    "WAMP_ERROR_NOT_AUTHORIZED": WAMP_ERROR_NOT_AUTHORIZED,
    "WAMP_ERROR_NO_AUTH_METHOD": WAMP_ERROR_NO_AUTH_METHOD,
    "WAMP_CLOSE_NORMAL": WAMP_CLOSE_NORMAL,
    "CLIENT_ERROR_INVALID_ARGUMENT": CLIENT_ERROR_INVALID_ARGUMENT,
    "CLIENT_ERROR_CONNECTION_LOST": CLIENT_ERROR_CONNECTION_LOST,
    "CLIENT_ERROR_CLOSED": CLIENT_ERROR_CLOSED,
    "CLIENT_ERROR_NO_CREDENTIALS": CLIENT_ERROR_NO_CREDENTIALS,
    "CLIENT_ERROR_INVALID_CREDENTIALS": CLIENT_ERROR_INVALID_CREDENTIALS,
    "CLIENT_ERROR_GAVE_UP": CLIENT_ERROR_GAVE_UP,
    "CLIENT_ERROR_TIMEOUT": CLIENT_ERROR_TIMEOUT,
    "CLIENT_ERROR_HANDLER_ERROR": CLIENT_ERROR_HANDLER_ERROR,
    "CLIENT_ERROR_GAP": CLIENT_ERROR_GAP,
    "CLIENT_ERROR_SUBSCRIPTION_REMOVED": CLIENT_ERROR_SUBSCRIPTION_REMOVED,
    "CLIENT_ERROR_BAD_EVENT": CLIENT_ERROR_BAD_EVENT,
    "CLIENT_ERROR_STORE_FAILED": CLIENT_ERROR_STORE_FAILED,
}
