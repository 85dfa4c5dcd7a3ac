// The events gateway's JavaScript client: ES modules for browsers and Node 20+.
//
//   const gw = new Gateway({url: 'ws://127.0.0.1:8080/ws', getCredentials});   // or url: [a list of nodes]
//   gw.on('state', (state, detail) => ...);
//   await gw.subscribe("demo.message where room = 'lobby'", (envelope) => ...);
//   await gw.connect();
//
// This module is the public surface (its types: gateway.d.ts). The Gateway puts
// together the reconnect loop (connection.js), the current session and the
// calls on it (calls.js), and the engine that restores every subscription on
// every session, replays and acks the persistent ones (restore.js), following
// the gateway's protocol: docs/identity.md and docs/persistent.md. The pure
// parts are in their own modules (backoff, merge, credentials, cookies,
// options) and tested alone.

import { Calls } from './calls.js';
import { Connection } from './connection.js';
import { Emitter } from './emitter.js';
import { ClientErrors, GatewayError } from './errors.js';
import { callArguments, gatewayOptions, subscribeArguments } from './options.js';
import { Restorer } from './restore.js';
import { CookieTokenStore, LocalCursorStore, MemoryCursorStore, MemoryTokenStore } from './stores.js';
import { Subscription } from './subscription.js';
import { CATALOG, WHOAMI } from './uris.js';

export { EVENTS } from './emitter.js';
export { GatewayError, ClientErrors } from './errors.js';
export { CookieTokenStore, LocalCursorStore, MemoryCursorStore, MemoryTokenStore } from './stores.js';
export { Subscription };

/** @typedef {import('./emitter.js').EventName} EventName */

const inBrowser = () => typeof globalThis.document === 'object' && globalThis.document !== null
  && typeof globalThis.document.cookie === 'string';

export class Gateway {
  #o;
  #events = new Emitter();
  #calls = new Calls();
  #subscriptions;
  #connection;

  /** @param {import('./types.js').GatewayOptions} options */
  constructor(options) {
    const o = gatewayOptions(options);
    const tokenStore = o.tokenStore ?? (inBrowser() ? new CookieTokenStore() : new MemoryTokenStore());
    const cursorStore = o.cursorStore ?? (inBrowser() && globalThis.localStorage ? new LocalCursorStore() : new MemoryCursorStore());
    this.#o = { ...o, tokenStore, cursorStore };
    this.#subscriptions = new Restorer({
      calls: this.#calls, cursorStore, reconnect: o.reconnect, ackInterval: o.ackInterval,
      report: (err) => this.#events.report(err),
    });
    this.#connection = new Connection(this.#o, this.#events, this.#calls, this.#subscriptions);
  }

  /** 'idle' | 'connecting' | 'open' | 'lost' | 'closed' */
  get state() {
    return this.#connection.state;
  }

  /** The client token from the last WELCOME, and when it expires (RFC 3339). */
  get clientToken() {
    return this.#connection.clientToken;
  }

  get clientTokenExpires() {
    return this.#connection.clientTokenExpires;
  }

  /** {authid, role, user, roles} of the current (or last) session. */
  get identity() {
    return this.#connection.identity;
  }

  /** The router URL (one of options.url) of the current (or last) session; null before the first. */
  get url() {
    return this.#connection.url;
  }

  get tokenStore() {
    return this.#o.tokenStore;
  }

  get cursorStore() {
    return this.#o.cursorStore;
  }

  /** The application's active subscriptions, in the order they were made. */
  get subscriptions() {
    return this.#subscriptions.active;
  }

  /**
   * @template {EventName} K
   * @param {K} name
   * @param {import('./types.js').GatewayEvents[K]} fn
   * @returns {this}
   */
  on(name, fn) {
    this.#events.on(name, fn);
    return this;
  }

  /**
   * @template {EventName} K
   * @param {K} name
   * @param {import('./types.js').GatewayEvents[K]} fn
   * @returns {this}
   */
  off(name, fn) {
    this.#events.off(name, fn);
    return this;
  }

  /**
   * Connect (and keep reconnecting); resolves on the first open, rejects if the Gateway ends 'closed' first.
   * @returns {Promise<void>}
   */
  connect() {
    return this.#connection.connect();
  }

  /**
   * Ack what was delivered, leave, and stop for good. Idempotent; leaves no timer behind.
   * @returns {Promise<void>}
   */
  close() {
    return this.#connection.close();
  }

  /** For tests: drop the WebSocket as a network failure would, without leaving the session. */
  _debugDropConnection() {
    return this.#connection.dropConnection();
  }

  /**
   * Call a procedure; waits for a session if there is none yet. Errors are GatewayErrors.
   * @template [T=unknown]
   * @param {string} uri
   * @param {unknown[]} [args]
   * @param {Record<string, unknown>} [kwargs]
   * @returns {Promise<T>}
   */
  async call(uri, args = [], kwargs = {}) {
    callArguments(uri, args, kwargs);
    return /** @type {T} */ (await this.#calls.call(uri, args, kwargs));
  }

  /** @returns {Promise<import('./types.js').Catalog>} */
  catalog() {
    return this.call(CATALOG);
  }

  /** @returns {Promise<import('./types.js').WhoAmI>} */
  whoami() {
    return this.call(WHOAMI);
  }

  /**
   * Subscribe by query. Resolves once subscribed (and, if persistent, once the missed events were
   * delivered); works before connect() resolves and is restored on every new session.
   * @template [D=Record<string, unknown>]
   * @param {string} query
   * @param {import('./types.js').Handler<D>} handler
   * @param {import('./types.js').SubscribeOptions} [options]
   * @returns {Promise<Subscription>}
   */
  subscribe(query, handler, options = {}) {
    let args;
    try {
      args = subscribeArguments(query, handler, options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#calls.closing) return Promise.reject(new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED }));
    return this.#subscriptions.subscribe(args);
  }
}
