// Which credential the next connection attempt presents. Pure: no I/O, the
// caller passes the time and does the asking (getCredentials()).
//
// Rules (docs/identity.md): a ticket works once; a JWT works until its exp or
// until the gateway refuses it. When the credential in hand can no longer be
// used, getCredentials() is asked for a new one ({ticket}, {jwt}, or null for
// anonymous). Without getCredentials(), a client that was given a user
// credential does not quietly carry on as anonymous: it stops, with an error
// saying why. A client given no credential at all is anonymous throughout.

import { ClientErrors, GatewayError, describe } from './errors.js';

/** @typedef {{kind: 'ticket' | 'jwt', value: string}} Credential */
/**
 * What the next attempt does (CredentialPlan.next()).
 * @typedef {{action: 'use', credential: Credential | null} | {action: 'ask'} | {action: 'fail', error: GatewayError}} Decision
 */

/**
 * The `exp` claim (seconds since the epoch) of a JWT, or null if it has none or cannot be read.
 * @param {unknown} jwt
 * @returns {number | null}
 */
export function jwtExpiry(jwt) {
  const parts = typeof jwt === 'string' ? jwt.split('.') : [];
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * A credential from options or from getCredentials(): {kind: 'ticket'|'jwt', value} or null (anonymous).
 * Throws a GatewayError saying what is wrong with anything else.
 * @param {unknown} answer
 * @returns {Credential | null}
 */
export function parseCredentials(answer, where = 'getCredentials() result') {
  if (answer === null || answer === undefined) return null;
  if (typeof answer !== 'object' || Array.isArray(answer)) {
    throw new GatewayError(`${where} must be {ticket}, {jwt} or null, not ${describe(answer)}`,
      { uri: ClientErrors.INVALID_CREDENTIALS });
  }
  const value = /** @type {Record<string, unknown>} */ (answer);
  const given = /** @type {const} */ (['ticket', 'jwt']).filter((k) => value[k] !== undefined && value[k] !== null);
  const unknown = Object.keys(value).filter((k) => k !== 'ticket' && k !== 'jwt');
  if (unknown.length) {
    throw new GatewayError(`${where} has unknown key ${JSON.stringify(unknown[0])} (expected ticket or jwt)`,
      { uri: ClientErrors.INVALID_CREDENTIALS });
  }
  if (given.length !== 1) {
    throw new GatewayError(`${where} must hold exactly one of ticket and jwt, not ${given.length ? 'both' : 'neither'}`,
      { uri: ClientErrors.INVALID_CREDENTIALS });
  }
  const kind = given[0];
  if (typeof value[kind] !== 'string' || value[kind] === '') {
    throw new GatewayError(`${where}.${kind} must be a non-empty string, not ${describe(value[kind])}`,
      { uri: ClientErrors.INVALID_CREDENTIALS });
  }
  return { kind, value: /** @type {string} */ (value[kind]) };
}

export class CredentialPlan {
  /** @type {Credential | null} */
  #current;
  #presented = false; // the current credential was sent in an answer to a CHALLENGE
  /** @type {string | null} the gateway's message if it refused the current credential */
  #refused = null;
  #canAsk;

  /** @param {{ticket?: string | null, jwt?: string | null, canAsk: boolean}} options */
  constructor({ ticket, jwt, canAsk }) {
    /** @type {Record<string, string>} */
    const given = {};
    if (ticket !== undefined && ticket !== null) given.ticket = ticket;
    if (jwt !== undefined && jwt !== null) given.jwt = jwt;
    this.#current = Object.keys(given).length ? parseCredentials(given, 'options') : null;
    this.#canAsk = Boolean(canAsk);
  }

  /** The credential the last decision chose (null: anonymous). */
  get current() {
    return this.#current;
  }

  /**
   * What the next attempt does:
   *   {action: 'use', credential}   present this credential (null: connect anonymously)
   *   {action: 'ask'}               call getCredentials(), then supplied(result)
   *   {action: 'fail', error}       stop: the credential is used up and there is no way to get another
   */
  /** @returns {Decision} */
  next(nowSeconds = Date.now() / 1000) {
    const why = this.#unusable(nowSeconds);
    if (why === null) return { action: 'use', credential: this.#current };
    if (this.#canAsk) return { action: 'ask' };
    return {
      action: 'fail',
      error: new GatewayError(`${why}, and there is no getCredentials() to get another; `
        + 'not connecting as anonymous instead', { uri: ClientErrors.NO_CREDENTIALS }),
    };
  }

  /** getCredentials() answered: the credential to use now (or throws a GatewayError for a bad answer). */
  /** @param {unknown} result @returns {{action: 'use', credential: Credential | null}} */
  supplied(result) {
    this.#current = parseCredentials(result);
    this.#presented = false;
    this.#refused = null;
    return { action: 'use', credential: this.#current };
  }

  /** The credential was sent to the gateway (a ticket is spent, whatever happens next). */
  presented() {
    this.#presented = true;
  }

  /** The gateway refused the credential (ABORT at login) with this message. */
  refused(/** @type {string} */ message) {
    this.#refused = message || 'refused';
  }

  /** Why the credential in hand cannot be used (now: seconds since the epoch), or null. @param {number} now */
  #unusable(now) {
    const c = this.#current;
    if (c === null) {
      // With getCredentials(), it decides every connection that has no credential in hand (a
      // null answer last time included: the user may have logged in since); without it and
      // without any credential given, the client is anonymous throughout.
      return this.#canAsk ? 'no credential in hand' : null;
    }
    if (this.#refused !== null) return `the gateway refused the ${c.kind === 'jwt' ? 'JWT' : 'ticket'} (${this.#refused})`;
    if (c.kind === 'ticket') return this.#presented ? 'the ticket was used (a ticket works once)' : null;
    const exp = jwtExpiry(c.value);
    if (exp !== null && exp <= now) return `the JWT expired at ${new Date(exp * 1000).toISOString()}`;
    return null;
  }
}
