// The current session and the calls on it.
//
// A call is made on one session and rejected (CONNECTION_LOST) if that session
// goes away first: its outcome is unknown, and the caller decides what to do
// on the next one. Calls made with no session wait for the next one. The
// restore engine's calls are asked again after short pauses while the router
// answers with a transient error (errors.js), on the same session.

import { ClientErrors, GatewayError, fromWampError, isTransient } from './errors.js';

/** @typedef {import('./types.js').AutobahnSession} AutobahnSession */

/**
 * Pauses (ms) before asking again after a transient error (errors.js: a gateway component
 * restarting, or a worker that died mid-call while a standby takes over): about 5 s in all, as a
 * takeover on a busy machine took more than 2 s (the first 1.5 s of pauses were not always enough).
 * A subscription still not restored after them is reported on 'error' and tried again with
 * the reconnect backoff, on the same session and on every new one (restore.js).
 */
const TRANSIENT_PAUSES_MS = [50, 100, 200, 400, 800, 1500, 2000];

const lostError = () => new GatewayError('the connection to the gateway was lost', { uri: ClientErrors.CONNECTION_LOST });
const closedError = () => new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED });

export class Calls {
  /** @type {AutobahnSession | null} */
  #session = null;
  /** @type {Set<{reject: (error: Error) => void}>} calls in flight on the current session */
  #pending = new Set();
  /** @type {Array<{resolve: (session: AutobahnSession) => void, reject: (error: Error) => void}>} calls waiting for a session */
  #waiters = [];
  /** @type {Set<{timer: ReturnType<typeof setTimeout> | undefined, resolve: () => void}>} retry pauses: shutdown() ends them at once */
  #pauses = new Set();
  #closing = false;

  /** The joined autobahn session, or null. */
  get session() {
    return this.#session;
  }

  /** The Gateway is closing (or closed): nothing waits for a session or pauses any more. */
  get closing() {
    return this.#closing;
  }

  /** A session joined: the calls waiting for one go ahead on it. */
  opened(/** @type {AutobahnSession} */ session) {
    this.#session = session;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(session);
  }

  /** The session went away: the calls in flight on it are rejected (CONNECTION_LOST). */
  lost() {
    this.#session = null;
    const lost = lostError();
    for (const call of this.#pending) call.reject(lost);
    this.#pending.clear();
  }

  /** The Gateway closes: retry pauses end now and no new call waits; calls in flight go on (the last acks). */
  shutdown() {
    this.#closing = true;
    for (const entry of this.#pauses) {
      clearTimeout(entry.timer);
      entry.resolve();
    }
    this.#pauses.clear();
  }

  /** The session is let go (the Gateway closes): calls wait for none any more. */
  left() {
    this.#session = null;
  }

  /** Closed for good: every call waiting for a session or in flight is rejected with `error`. */
  fail(/** @type {Error} */ error) {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const call of this.#pending) call.reject(error);
    this.#pending.clear();
  }

  /** Whether `session` is no longer the current one (lost), or the Gateway is closing. */
  gone(/** @type {AutobahnSession} */ session) {
    return session !== this.#session || this.#closing;
  }

  /** @returns {Promise<AutobahnSession>} */
  #whenSession() {
    if (this.#session !== null) return Promise.resolve(this.#session);
    if (this.#closing) return Promise.reject(closedError());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Call a procedure; waits for a session if there is none yet. Errors are GatewayErrors.
   * @param {string} uri @param {unknown[]} args @param {Record<string, unknown>} kwargs
   */
  async call(uri, args, kwargs) {
    const session = await this.#whenSession();
    const result = await this.callOn(session, uri, args, kwargs);
    if (isResult(result)) return { args: result.args, kwargs: result.kwargs };
    return result;
  }

  /**
   * A call on `session` that is rejected (CONNECTION_LOST) if the session goes away first.
   * @param {AutobahnSession} session @param {string} uri @param {unknown[]} [args] @param {Record<string, unknown>} [kwargs]
   */
  callOn(session, uri, args = [], kwargs = {}) {
    return this.track(session, () => session.call(uri, args, kwargs));
  }

  /**
   * `start()` (an operation on `session`), rejected (CONNECTION_LOST) if the session goes away
   * before it settles; its errors as GatewayErrors.
   * @template T
   * @param {AutobahnSession} session
   * @param {() => T | Promise<T>} start
   * @returns {Promise<T>}
   */
  track(session, start) {
    return new Promise((resolve, reject) => {
      if (session !== this.#session) {
        reject(lostError());
        return;
      }
      const entry = { reject };
      this.#pending.add(entry);
      let started;
      try {
        started = start();
      } catch (err) {
        this.#pending.delete(entry);
        reject(fromWampError(err));
        return;
      }
      Promise.resolve(started).then(
        (value) => { this.#pending.delete(entry); resolve(value); },
        (err) => { this.#pending.delete(entry); reject(fromWampError(err)); },
      );
    });
  }

  /**
   * `work()` (a call on `session`), asked again after a pause while it fails with a transient
   * error: the session is up but the gateway component serving it is away for a moment. Throws
   * what `work` threw otherwise, after the last pause, or once the session is gone.
   * @template T
   * @param {AutobahnSession} session
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  async withRetries(session, work) {
    for (let tries = 0; ; tries += 1) {
      try {
        return await work();
      } catch (raw) {
        if (!isTransient(fromWampError(raw)) || tries >= TRANSIENT_PAUSES_MS.length || this.gone(session)) throw raw;
        await this.pause(TRANSIENT_PAUSES_MS[tries]);
        if (this.gone(session)) throw raw;
      }
    }
  }

  /**
   * Resolves after `ms`, or at once when the Gateway closes (no timer keeps Node alive).
   * @param {number} ms
   * @returns {Promise<void>}
   */
  pause(ms) {
    if (this.#closing) return Promise.resolve();
    return new Promise((resolve) => {
      /** @type {{timer: ReturnType<typeof setTimeout> | undefined, resolve: () => void}} */
      const entry = { resolve, timer: undefined };
      entry.timer = setTimeout(() => {
        this.#pauses.delete(entry);
        resolve();
      }, ms);
      this.#pauses.add(entry);
    });
  }
}

/**
 * An autobahn Result: what a procedure answering with several values (or with keyword
 * results) gives; handed to the application as {args, kwargs}.
 * @param {unknown} value
 * @returns {value is {args: unknown[], kwargs: Record<string, unknown>}}
 */
function isResult(value) {
  const result = /** @type {{args?: unknown, kwargs?: unknown, constructor?: {name?: string}} | null} */ (value);
  return Boolean(result && typeof result === 'object' && Array.isArray(result.args) && result.kwargs
    && result.constructor?.name === 'Result');
}
