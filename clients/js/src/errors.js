// GatewayError and the error URIs this client raises itself. Imports nothing local but uris.js.
//
// Errors the gateway sends (WAMP errors such as 'gateway.error.invalid_query')
// keep the gateway's URI and message; errors that happen in the client (a call
// cut off by a lost connection, a ticket that cannot be used again, ...) have
// a URI under 'gateway.client.' so an application can tell them apart.

import {
  CLIENT_ERROR_BAD_EVENT, CLIENT_ERROR_CLOSED, CLIENT_ERROR_CONNECTION_LOST, CLIENT_ERROR_GAP, CLIENT_ERROR_GAVE_UP,
  CLIENT_ERROR_HANDLER_ERROR, CLIENT_ERROR_INVALID_ARGUMENT, CLIENT_ERROR_INVALID_CREDENTIALS, CLIENT_ERROR_NO_CREDENTIALS,
  CLIENT_ERROR_STORE_FAILED, CLIENT_ERROR_SUBSCRIPTION_REMOVED, CLIENT_ERROR_TIMEOUT, WAMP_ERROR_CANCELED,
  WAMP_ERROR_NO_AVAILABLE_CALLEE, WAMP_ERROR_NO_SUCH_PROCEDURE,
} from './uris.js';

/** URIs of the errors the client raises itself. */
export const ClientErrors = Object.freeze({
  /** A bad argument or option given to the library (a programming error): the message names it. */
  INVALID_ARGUMENT: CLIENT_ERROR_INVALID_ARGUMENT,
  /** The connection was lost while a call was in flight: its outcome is unknown. */
  CONNECTION_LOST: CLIENT_ERROR_CONNECTION_LOST,
  /** The Gateway was closed (by close(), or for good) before the operation could run. */
  CLOSED: CLIENT_ERROR_CLOSED,
  /** The credential is used up (a ticket works once, a JWT expires) and there is no getCredentials(). */
  NO_CREDENTIALS: CLIENT_ERROR_NO_CREDENTIALS,
  /** getCredentials() returned something that is not {ticket}, {jwt} or null, or threw. */
  INVALID_CREDENTIALS: CLIENT_ERROR_INVALID_CREDENTIALS,
  /** reconnect.maxAttempts connection attempts in a row failed. */
  GAVE_UP: CLIENT_ERROR_GAVE_UP,
  /** One connection attempt did not open within connectTimeout. */
  TIMEOUT: CLIENT_ERROR_TIMEOUT,
  /** A subscription handler threw (reported on 'error'; delivery goes on). */
  HANDLER_ERROR: CLIENT_ERROR_HANDLER_ERROR,
  /** A replay was truncated by retention and the subscription has no onGap (reported on 'error'). */
  GAP: CLIENT_ERROR_GAP,
  /** The gateway ended a subscription and it has no onRemoved (reported on 'error'). */
  SUBSCRIPTION_REMOVED: CLIENT_ERROR_SUBSCRIPTION_REMOVED,
  /** The gateway sent an event that is not an envelope {event, id, seq, time, data}. */
  BAD_EVENT: CLIENT_ERROR_BAD_EVENT,
  /** A token or cursor store failed (e.g. localStorage full or disabled). */
  STORE_FAILED: CLIENT_ERROR_STORE_FAILED,
});

export class GatewayError extends Error {
  /**
   * @param {string} message what went wrong, readable
   * @param {{uri?: string | null, position?: number, query?: string, details?: Record<string, unknown>, cause?: unknown}} [info]
   */
  constructor(message, info = {}) {
    super(message, info.cause !== undefined ? { cause: info.cause } : undefined);
    /** @type {'GatewayError'} */
    this.name = 'GatewayError';
    this.uri = info.uri ?? null;
    this.position = info.position ?? null;
    this.query = info.query ?? null;
    this.details = info.details ?? {};
  }
}

/** A short description of a value for an error message: strings quoted, objects by kind. */
export function describe(/** @type {unknown} */ value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** A GatewayError for a bad argument; `where` names the argument or option. */
export function invalidArgument(/** @type {string} */ where, /** @type {string} */ message) {
  return new GatewayError(`${where}: ${message}`, { uri: ClientErrors.INVALID_ARGUMENT });
}

/**
 * The GatewayError for whatever a WAMP call rejected with: an autobahn.Error
 * ({error, args, kwargs}) from the gateway, a string autobahn threw, or an Error.
 * @param {unknown} err
 * @param {{query?: string}} [context]
 * @returns {GatewayError}
 */
export function fromWampError(err, context = {}) {
  if (err instanceof GatewayError) return err;
  const failure = /** @type {{error?: unknown, args?: unknown, kwargs?: unknown}} */ (err);
  if (failure && typeof failure === 'object' && typeof failure.error === 'string') {
    const args = Array.isArray(failure.args) ? failure.args : [];
    /** @type {Record<string, unknown>} */
    const kwargs = failure.kwargs && typeof failure.kwargs === 'object' ? /** @type {Record<string, unknown>} */ (failure.kwargs) : {};
    const message = typeof args[0] === 'string' ? args[0] : typeof kwargs.message === 'string' ? kwargs.message : failure.error;
    return new GatewayError(message, {
      uri: failure.error,
      position: typeof kwargs.position === 'number' ? kwargs.position : undefined,
      query: typeof kwargs.query === 'string' ? kwargs.query : context.query,
      details: { ...kwargs, args },
    });
  }
  if (typeof err === 'string') {
    // autobahn-js throws plain strings for local states ("session not open").
    const lost = /not open|closed/i.test(err);
    return new GatewayError(err, { uri: lost ? ClientErrors.CONNECTION_LOST : null });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError(message, { cause: err });
}

/** Whether the error means the connection went away (the operation may be retried on the next session). */
export function isConnectionLost(/** @type {unknown} */ err) {
  return err instanceof GatewayError && err.uri === ClientErrors.CONNECTION_LOST;
}

/**
 * Errors the router answers a call with while the session stays up, because the
 * gateway component that serves the procedure is away for a moment: it was
 * restarted, or its worker died mid-call ('wamp.error.canceled': "callee
 * disconnected from in-flight request") and a standby takes over. Worth asking
 * again on the same session; the outcome of the cancelled call is unknown.
 */
export const TRANSIENT_ERRORS = Object.freeze(/** @type {string[]} */ ([WAMP_ERROR_CANCELED, WAMP_ERROR_NO_SUCH_PROCEDURE, WAMP_ERROR_NO_AVAILABLE_CALLEE]));

/** Whether the error is one of TRANSIENT_ERRORS (not a lost connection: see isConnectionLost). */
export function isTransient(/** @type {unknown} */ err) {
  return err instanceof GatewayError && err.uri !== null && TRANSIENT_ERRORS.includes(err.uri);
}

/** The message of whatever was thrown, for a message of ours. */
export function errorText(/** @type {unknown} */ err) {
  return /** @type {{message?: unknown} | null | undefined} */ (err)?.message ?? err;
}
