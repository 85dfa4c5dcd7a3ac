// Every WAMP URI the client uses, defined once: procedures, topics, error URIs
// (the gateway's, the router's, and the client's own), and close reasons.
//
// The rest of the client refers to these names, never to literal strings. The
// gateway defines the same ones in components/uris.py; its table JS_CLIENT
// holds these names and values, and tests/unit/test_js_uris.py keeps the two
// equal.

// -- procedures the client calls ------------------------------------------------

/** `gateway.subscribe(query, {persistent, batch})` -> `{id, topic, query, persistent, last_seq?, batch?}` */
export const SUBSCRIBE = 'gateway.subscribe';
/** `gateway.unsubscribe(id)`: the subscription ends on the gateway. */
export const UNSUBSCRIBE = 'gateway.unsubscribe';
/** `gateway.replay(id, after_seq, limit)` -> `{events, truncated, more, next_after, last_seq}` */
export const REPLAY = 'gateway.replay';
/** `gateway.ack(id, seq)`: delivered up to seq. */
export const ACK = 'gateway.ack';
/** `gateway.catalog()`: the event classes the caller may see. */
export const CATALOG = 'gateway.catalog';
/** `gateway.whoami()`: who the session is. */
export const WHOAMI = 'gateway.whoami';
/** `gateway.status()`: the node's figures, for users holding the operator role (the status page). */
export const STATUS = 'gateway.status';

// -- topics -------------------------------------------------------------------------

/** Told to the owner's sessions when the gateway ended one of its subscriptions. */
export const META_SUBSCRIPTION_REMOVED = 'gateway.meta.subscription_removed';
/** A query's topic: `gateway.query.<key>`, one envelope per event. */
export const QUERY_TOPIC_PREFIX = 'gateway.query.';
/** Its batched twin, `gateway.batch.query.<key>` (gateway.subscribe with batch): each event carries
 * one or more envelopes, one per positional argument, in seq order. */
export const BATCH_QUERY_TOPIC_PREFIX = 'gateway.batch.query.';

// -- errors the gateway answers with ------------------------------------------------

/** The subscription does not exist (any more): an ack refused with it is a removal. */
export const ERROR_NO_SUCH_SUBSCRIPTION = 'gateway.error.no_such_subscription';
/** A call's arguments were wrong; `kwargs.argument` names the argument. */
export const ERROR_INVALID_ARGUMENT = 'gateway.error.invalid_argument';
/** The gateway's authenticator refused the credential (an ABORT at login). */
export const ERROR_AUTHENTICATION_FAILED = 'gateway.error.authentication_failed';

// -- the router's (WAMP) errors and close reasons -----------------------------------

/** A call whose callee went away while it ran (a worker died mid-call): transient. */
export const WAMP_ERROR_CANCELED = 'wamp.error.canceled';
/** No component registered the procedure at the moment (one restarting): transient. */
export const WAMP_ERROR_NO_SUCH_PROCEDURE = 'wamp.error.no_such_procedure';
/** Registered, but no callee can take the call now: transient. */
export const WAMP_ERROR_NO_AVAILABLE_CALLEE = 'wamp.error.no_available_callee';
/** ABORT reasons at login that mean "this credential was refused". */
export const WAMP_ERROR_AUTHENTICATION_FAILED = 'wamp.error.authentication_failed';
export const WAMP_ERROR_NOT_AUTHORIZED = 'wamp.error.not_authorized';
export const WAMP_ERROR_NO_AUTH_METHOD = 'wamp.error.no_auth_method';
/** The reason close() leaves the session with. */
export const WAMP_CLOSE_NORMAL = 'wamp.close.normal';

// -- the client's own error URIs (ClientErrors in errors.js) ------------------------

export const CLIENT_ERROR_INVALID_ARGUMENT = 'gateway.client.invalid_argument';
export const CLIENT_ERROR_CONNECTION_LOST = 'gateway.client.connection_lost';
export const CLIENT_ERROR_CLOSED = 'gateway.client.closed';
export const CLIENT_ERROR_NO_CREDENTIALS = 'gateway.client.no_credentials';
export const CLIENT_ERROR_INVALID_CREDENTIALS = 'gateway.client.invalid_credentials';
export const CLIENT_ERROR_GAVE_UP = 'gateway.client.gave_up';
export const CLIENT_ERROR_TIMEOUT = 'gateway.client.timeout';
export const CLIENT_ERROR_HANDLER_ERROR = 'gateway.client.handler_error';
export const CLIENT_ERROR_GAP = 'gateway.client.gap';
export const CLIENT_ERROR_SUBSCRIPTION_REMOVED = 'gateway.client.subscription_removed';
export const CLIENT_ERROR_BAD_EVENT = 'gateway.client.bad_event';
export const CLIENT_ERROR_STORE_FAILED = 'gateway.client.store_failed';
