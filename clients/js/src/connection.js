// The reconnect loop: one autobahn.Connection per attempt, with autobahn's own
// retries off, so that every attempt presents fresh credentials (credentials.js)
// and the stored client token, waits as backoff.js says, and the Gateway's
// states follow: 'connecting' -> 'open' -> 'lost' -> 'connecting' ... 'closed'.
//
// options.url may list several router URLs (the nodes of a cluster). The first
// attempt goes to one drawn at random, so that a crowd of pages spreads over
// the nodes as a load balancer would spread it; every failed attempt or lost
// session moves on to the next URL in the list (round robin), so the node that
// just failed is tried again only after all the others. Within a round the next
// attempt starts at once: failing over to a live node costs no backoff. The
// backoff applies per full round of failed URLs: with one URL, per attempt,
// exactly as before. The new session restores every subscription as after any
// reconnect (restore.js), on whichever node it reached.
//
// A joined session is handed to calls.js (the calls on it) and to the
// subscriptions engine (restore.js); the session counts as open once the
// engine restored every subscription. docs/identity.md says what the gateway
// expects of a login.

import { backoffDelay } from './backoff.js';
import { CredentialPlan } from './credentials.js';
import { ClientErrors, GatewayError, errorText, fromWampError } from './errors.js';
import { tokenToPresent } from './stores.js';
import { registerTransport } from './transport.js';
import {
  ERROR_AUTHENTICATION_FAILED, WAMP_CLOSE_NORMAL, WAMP_ERROR_AUTHENTICATION_FAILED, WAMP_ERROR_NOT_AUTHORIZED,
  WAMP_ERROR_NO_AUTH_METHOD,
} from './uris.js';

/** @typedef {import('./types.js').Autobahn} Autobahn */
/** @typedef {import('./types.js').AutobahnConnection} AutobahnConnection */
/** @typedef {import('./types.js').AutobahnDetails} AutobahnDetails */
/** @typedef {import('./types.js').AutobahnSession} AutobahnSession */
/** @typedef {'idle' | 'connecting' | 'open' | 'lost' | 'closed'} State */
/** @typedef {{authid: string | null, role: string | null, user: string | null, roles: string[]}} Identity */

/** How long close() waits for the last acks and for the router's GOODBYE before it lets go. */
const CLOSE_GRACE_MS = 3000;
/** ABORT reasons that mean "this credential was refused". */
const LOGIN_REFUSED = new Set([ERROR_AUTHENTICATION_FAILED, WAMP_ERROR_AUTHENTICATION_FAILED,
  WAMP_ERROR_NOT_AUTHORIZED, WAMP_ERROR_NO_AUTH_METHOD]);

/**
 * `promise`, or undefined after `ms`, whichever comes first; leaves no timer behind.
 * @param {Promise<unknown>} promise @param {number} ms
 */
function within(promise, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * autobahn-js: given, or the page's global (autobahn-browser), or the npm package (Node).
 * @param {Autobahn | null} given
 * @returns {Promise<Autobahn>}
 */
async function loadAutobahn(given) {
  if (given) return given;
  const global = /** @type {{autobahn?: Autobahn}} */ (globalThis).autobahn;
  if (global && typeof global.Connection === 'function') return global;
  const specifier = 'autobahn'; // resolved at run time only: a browser page never gets here with autobahn loaded
  const mod = await import(specifier);
  return mod.default ?? mod;
}

export class Connection {
  #o;
  #events;
  #calls;
  #subscriptions;
  #plan;
  /** @type {State} */
  #state = 'idle';
  /** @type {AutobahnConnection | null} the autobahn.Connection of the current attempt or session */
  #conn = null;
  #generation = 0;       // bumped per attempt: callbacks of an older attempt are ignored
  #everOpened = false;
  #failures = 0;         // failed attempts since the last open
  /** @type {string[]} */
  #urls;                 // options.url as a list
  #next = 0;             // index in #urls of the next attempt
  #tried = 0;            // URLs failed in the current round
  #round = 0;            // full rounds failed since the last open: the backoff step
  /** @type {string | null} */
  #url = null;           // of the current (or last) session
  /** @type {ReturnType<typeof setTimeout> | null} */
  #retryTimer = null;
  /** @type {{promise: Promise<void>, resolve: () => void, reject: (error: Error) => void} | null} of connect() */
  #connect = null;
  /** @type {Promise<void> | null} */
  #closePromise = null;
  /** @type {(() => void) | null} resolves close() once the socket is closed */
  #connClosed = null;
  /** @type {Autobahn | null} */
  #autobahn = null;
  /** @type {string | null} */
  #clientToken = null;
  /** @type {string | null} */
  #clientTokenExpires = null;
  /** @type {Identity | null} */
  #identity = null;

  /**
   * @param {import('./types.js').Options} options
   * @param {import('./emitter.js').Emitter} events
   * @param {import('./calls.js').Calls} calls
   * @param {import('./restore.js').Restorer} subscriptions
   */
  constructor(options, events, calls, subscriptions) {
    this.#o = options;
    this.#events = events;
    this.#calls = calls;
    this.#subscriptions = subscriptions;
    this.#plan = new CredentialPlan({ ticket: options.ticket, jwt: options.jwt, canAsk: options.getCredentials !== null });
    this.#urls = options.urls;
    if (this.#urls.length > 1) this.#next = Math.floor(Math.random() * this.#urls.length);
  }

  get state() { return this.#state; }
  /** The client token from the last WELCOME, and when it expires (RFC 3339). */
  get clientToken() { return this.#clientToken; }
  get clientTokenExpires() { return this.#clientTokenExpires; }
  /** {authid, role, user, roles} of the current (or last) session. */
  get identity() { return this.#identity; }
  /** The router URL of the current (or last) session; null before the first. */
  get url() { return this.#url; }

  /** @param {Exclude<State, 'idle'>} state @param {unknown} detail */
  #setState(state, detail) {
    this.#state = state;
    this.#events.emit('state', state, detail);
    if (state !== 'open') this.#events.emit(state, detail);
  }

  /** Connect (and keep reconnecting); resolves on the first open, rejects if it ends 'closed' first. */
  connect() {
    if (this.#calls.closing || this.#state === 'closed') {
      return Promise.reject(new GatewayError('this Gateway was closed; make a new one to connect again', { uri: ClientErrors.CLOSED }));
    }
    if (this.#connect === null) {
      /** @type {() => void} */
      let resolve = () => {};
      /** @type {(error: Error) => void} */
      let reject = () => {};
      /** @type {Promise<void>} */
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      this.#connect = { promise, resolve, reject };
      if (this.#everOpened) resolve();
      else this.#schedule(0);
    }
    return this.#connect.promise;
  }

  /** The next attempt in `delay` seconds, unless the credential in hand is used up with no way to get another. */
  #schedule(/** @type {number} */ delay) {
    if (this.#calls.closing) return;
    const decision = this.#plan.next();
    if (decision.action === 'fail') {
      this.#finish(decision.error);
      return;
    }
    this.#setState('connecting', { attempt: this.#failures + 1, delay, url: this.#urls[this.#next] });
    if (this.#calls.closing) return; // a 'connecting' listener called close()
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#calls.closing) return;
      this.#attempt().catch((err) => this.#finish(fromWampError(err)));
    }, delay * 1000);
  }

  /** The attempt at #urls[#next] failed, or its session was lost: on to the next URL, at once while the round has some left. */
  #failover() {
    this.#next = (this.#next + 1) % this.#urls.length;
    this.#tried += 1;
    if (this.#tried < this.#urls.length) this.#schedule(0);
    else this.#backoff();
  }

  /** A full round failed (or getCredentials() did: no other node helps): wait as backoff.js says for one more round. */
  #backoff() {
    this.#tried = 0;
    this.#round += 1;
    this.#schedule(backoffDelay(this.#o.reconnect, this.#round));
  }

  async #attempt() {
    const generation = ++this.#generation;
    const stale = () => generation !== this.#generation || this.#calls.closing;
    let decision = this.#plan.next();
    if (decision.action === 'fail') return this.#finish(decision.error);
    if (decision.action === 'ask') {
      let answer;
      try {
        answer = await /** @type {() => unknown} */ (this.#o.getCredentials)();
      } catch (err) {
        if (stale()) return undefined;
        this.#events.report(new GatewayError(`getCredentials() failed: ${errorText(err)}`, { uri: ClientErrors.INVALID_CREDENTIALS, cause: err }));
        return this.#attemptFailed(undefined, undefined, false);
      }
      if (stale()) return undefined;
      try {
        decision = this.#plan.supplied(answer);
      } catch (err) {
        return this.#finish(/** @type {GatewayError} */ (err));
      }
    }
    if (this.#autobahn === null) {
      try {
        this.#autobahn = await loadAutobahn(this.#o.autobahn);
      } catch (err) {
        return this.#finish(new GatewayError('autobahn-js is not available: load /vendor/autobahn.min.js in the page, '
          + `pass options.autobahn, or install the npm package autobahn (${errorText(err)})`, { cause: err }));
      }
    }
    if (stale()) return undefined; // closed (or superseded) while asking or loading
    this.#open(decision.credential);
    return undefined;
  }

  #storedToken() {
    try {
      return tokenToPresent(this.#o.tokenStore.get());
    } catch (err) {
      this.#events.report(new GatewayError(`reading the client token failed: ${errorText(err)}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      return null;
    }
  }

  /** One attempt, to #urls[#next]: an autobahn.Connection that presents `credential` (null: anonymous) and the stored token. */
  #open(/** @type {import('./credentials.js').Credential | null} */ credential) {
    const autobahn = /** @type {Autobahn} */ (this.#autobahn);
    const url = this.#urls[this.#next];
    const token = this.#storedToken();
    const autobahnError = (/** @type {unknown} */ err, /** @type {string | undefined} */ message) => this.#events.report(
      new GatewayError(`${message ?? 'autobahn'}: ${errorText(err)}`, { cause: err }));
    /** @type {Record<string, unknown>} */
    const options = {
      url,
      transports: [{ type: registerTransport(autobahn), url }],
      realm: this.#o.realm,
      max_retries: 0,              // the reconnect loop is ours: one Connection per attempt
      retry_if_unreachable: false,
      use_es6_promises: true,
      authextra: token ? { client_token: token } : {},
      on_user_error: autobahnError,
      on_internal_error: autobahnError,
    };
    if (credential !== null) {
      options.authmethods = ['ticket'];
      options.onchallenge = (/** @type {unknown} */ _session, /** @type {string} */ method) => {
        this.#plan.presented();
        if (method !== 'ticket') throw new Error(`the gateway asked for ${method}, this client only answers ticket`);
        return credential.value;
      };
    }
    const conn = new autobahn.Connection(options);
    this.#conn = conn;
    let joined = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      if (joined || this.#conn !== conn) return;
      timedOut = true;
      try { conn.close(); } catch { /* closing already */ }
    }, this.#o.connectTimeout * 1000);
    conn.onopen = (session, details) => {
      clearTimeout(timer);
      if (this.#conn !== conn || this.#calls.closing) {
        try { conn.close(); } catch { /* closed already */ }
        return;
      }
      joined = true;
      this.#joined(session, details ?? {}, url);
    };
    conn.onclose = (reason, details) => {
      clearTimeout(timer);
      if (this.#conn === conn) this.#socketClosed(joined, timedOut, reason, details ?? {}, url);
      return true; // never let autobahn retry by itself
    };
    conn.open();
  }

  /** @param {AutobahnSession} session @param {AutobahnDetails} details @param {string} url */
  #joined(session, details, url) {
    this.#calls.opened(session);
    this.#failures = 0;
    this.#tried = 0;
    this.#round = 0;
    this.#url = url;
    const extra = details.authextra ?? {};
    if (typeof extra.client_token === 'string') {
      this.#clientToken = extra.client_token;
      this.#clientTokenExpires = extra.client_token_expires ?? null;
      try {
        this.#o.tokenStore.set(extra.client_token, this.#clientTokenExpires);
      } catch (err) {
        this.#events.report(new GatewayError(`storing the client token failed: ${errorText(err)}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      }
    }
    this.#identity = {
      authid: details.authid ?? null,
      role: details.authrole ?? null,
      user: extra.user ?? null,
      roles: Array.isArray(extra.roles) ? extra.roles : [],
    };
    this.#subscriptions.restore(session).then(() => {
      if (session !== this.#calls.session || this.#calls.closing) return;
      const detail = { session: session.id, ...this.#identity, clientToken: this.#clientToken, clientTokenExpires: this.#clientTokenExpires, url };
      const first = !this.#everOpened;
      this.#everOpened = true;
      this.#setState('open', detail);
      this.#events.emit(first ? 'open' : 'resumed', detail);
      this.#connect?.resolve();
      this.#subscriptions.opened();
    });
  }

  /**
   * @param {boolean} joined @param {boolean} timedOut @param {string} reason autobahn's ('lost', 'unreachable', ...)
   * @param {AutobahnDetails} details @param {string} url of this connection
   */
  #socketClosed(joined, timedOut, reason, details, url) {
    this.#conn = null;
    this.#generation += 1;
    this.#calls.lost();
    this.#subscriptions.lost();
    if (this.#calls.closing) {
      this.#connClosed?.();
      return;
    }
    const why = details.reason ?? (timedOut ? ClientErrors.TIMEOUT : reason);
    const message = details.message || (timedOut ? `no session within ${this.#o.connectTimeout} s` : '');
    if (joined) {
      this.#setState('lost', { reason: why, message, url });
      if (this.#calls.closing) return; // a 'lost' listener called close()
      this.#tried = 0;
      this.#round = 0;
      this.#failover();
      return;
    }
    if (reason === 'unsupported') { // autobahn could not even make a transport: no retry helps
      this.#finish(new GatewayError(`no WebSocket could be opened to ${url} in this environment `
        + '(Node 20 needs --experimental-websocket; see the error reported before)', { uri: ClientErrors.GAVE_UP }));
      return;
    }
    if (details.reason && LOGIN_REFUSED.has(details.reason)) {
      this.#plan.refused(message || details.reason);
      this.#events.report(new GatewayError(`the gateway refused the login: ${message || details.reason}`, { uri: details.reason }));
    } else if (details.reason) { // any other ABORT (a wrong realm, ...): say so, then retry as for any failure
      this.#events.report(new GatewayError(`the gateway refused the session: ${message || details.reason}`, { uri: details.reason }));
    }
    this.#attemptFailed(why, message);
  }

  /** @param {boolean} [nodeFailed] false: the attempt failed before reaching a node (getCredentials()); no other node helps */
  #attemptFailed(why = 'getCredentials() failed', message = '', nodeFailed = true) {
    this.#failures += 1;
    if (this.#failures >= this.#o.reconnect.maxAttempts) {
      this.#finish(new GatewayError(`gave up after ${this.#failures} failed connection attempt(s) to ${this.#urls.join(', ')}; `
        + `the last: ${why}${message ? ` (${message})` : ''}`, { uri: ClientErrors.GAVE_UP }));
      return;
    }
    if (nodeFailed) this.#failover();
    else this.#backoff();
  }

  /** Closed for good (not by close()): tell everyone who waits. */
  #finish(/** @type {GatewayError} */ error) {
    if (this.#state === 'closed' || this.#calls.closing) return;
    this.#calls.shutdown();
    this.#closePromise = Promise.resolve();
    this.#stopTimers();
    const conn = this.#conn;
    this.#conn = null;
    this.#calls.left();
    if (conn) {
      try { conn.close(); } catch { /* closed already */ }
    }
    this.#settleAll(error);
    this.#setState('closed', { reason: error.message, error });
    this.#events.report(error);
  }

  #stopTimers() {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#subscriptions.stopAcks();
  }

  /** No session any more: whoever waits is rejected with `error`. */
  #settleAll(/** @type {Error} */ error) {
    this.#calls.fail(error);
    this.#subscriptions.fail(error);
    this.#connect?.reject(error);
    this.#connect?.promise.catch(() => {});
  }

  /** Ack what was delivered, leave, and stop for good. Idempotent; leaves no timer behind. */
  close() {
    if (this.#closePromise !== null) return this.#closePromise;
    this.#closePromise = (async () => {
      if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      this.#calls.shutdown();
      if (this.#calls.session !== null) await within(this.#subscriptions.flushAcks(), CLOSE_GRACE_MS);
      this.#stopTimers();
      const conn = this.#conn;
      if (conn !== null) {
        /** @type {ReturnType<typeof setTimeout> | undefined} */
        let grace;
        await new Promise((resolve) => {
          this.#connClosed = () => resolve(undefined);
          grace = setTimeout(() => {
            try { conn.transport?.close?.(1000, 'closing'); } catch { /* closed already */ }
            resolve(undefined);
          }, CLOSE_GRACE_MS);
          try { conn.close(WAMP_CLOSE_NORMAL, 'the application closed the connection'); } catch { resolve(undefined); }
        });
        clearTimeout(grace);
      }
      this.#conn = null;
      this.#calls.left();
      this.#settleAll(new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED }));
      this.#setState('closed', { reason: 'closed by the application' });
    })();
    return this.#closePromise;
  }

  /** For tests: drop the WebSocket as a network failure would, without leaving the session. */
  dropConnection() {
    const transport = this.#conn?.transport;
    if (!transport || typeof transport.drop !== 'function') return false;
    transport.drop();
    return true;
  }
}
