// The events gateway's JavaScript client: one ES module for browsers and Node 20+.
//
//   const gw = new Gateway({url: 'ws://127.0.0.1:8080/ws', getCredentials});
//   gw.on('state', (state, detail) => ...);
//   await gw.subscribe("demo.message where room = 'lobby'", (envelope) => ...);
//   await gw.connect();
//
// It runs its own reconnect loop (one autobahn.Connection per attempt, with
// autobahn's retries off) so that every attempt gets fresh credentials and the
// stored client token, and so that what happens after a loss (re-subscribing,
// replaying persistent subscriptions, acking) follows the gateway's protocol:
// docs/identity.md and docs/persistent.md. The pure parts are in their own
// modules (backoff, merge, credentials, cookies, options) and tested alone.

import { backoffDelay } from './backoff.js';
import { CredentialPlan } from './credentials.js';
import { ClientErrors, GatewayError, describe, fromWampError, invalidArgument, isConnectionLost } from './errors.js';
import { isEnvelope } from './merge.js';
import { callArguments, gatewayOptions, subscribeArguments } from './options.js';
import { CookieTokenStore, LocalCursorStore, MemoryCursorStore, MemoryTokenStore, tokenToPresent } from './stores.js';
import { Subscription } from './subscription.js';
import { registerTransport } from './transport.js';

export { GatewayError, ClientErrors } from './errors.js';
export { CookieTokenStore, LocalCursorStore, MemoryCursorStore, MemoryTokenStore } from './stores.js';
export { Subscription } from './subscription.js';

export const EVENTS = Object.freeze(['state', 'connecting', 'open', 'lost', 'resumed', 'closed', 'error']);

/** Events per replay call (the gateway's default page; it allows up to 5,000). */
const REPLAY_PAGE = 500;
/** How long close() waits for the last acks and for the router's GOODBYE before it lets go. */
const CLOSE_GRACE_MS = 3000;
/** A procedure that is briefly missing while a gateway component restarts: worth retrying on the same session. */
const TRANSIENT = new Set(['wamp.error.no_such_procedure', 'wamp.error.no_available_callee']);
const TRANSIENT_RETRIES = 6;
/** ABORT reasons that mean "this credential was refused". */
const LOGIN_REFUSED = new Set(['gateway.error.authentication_failed', 'wamp.error.authentication_failed',
  'wamp.error.not_authorized', 'wamp.error.no_auth_method']);

const URI = Object.freeze({
  SUBSCRIBE: 'gateway.subscribe',
  UNSUBSCRIBE: 'gateway.unsubscribe',
  REPLAY: 'gateway.replay',
  ACK: 'gateway.ack',
  CATALOG: 'gateway.catalog',
  WHOAMI: 'gateway.whoami',
  SUBSCRIPTION_REMOVED: 'gateway.meta.subscription_removed',
});

const inBrowser = () => typeof globalThis.document === 'object' && globalThis.document !== null
  && typeof globalThis.document.cookie === 'string';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or undefined after `ms`, whichever comes first; leaves no timer behind. */
function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** autobahn-js: given, or the page's global (autobahn-browser), or the npm package (Node). */
async function loadAutobahn(given) {
  if (given) return given;
  if (globalThis.autobahn && typeof globalThis.autobahn.Connection === 'function') return globalThis.autobahn;
  const specifier = 'autobahn'; // resolved at run time only: a browser page never gets here with autobahn loaded
  const mod = await import(specifier);
  return mod.default ?? mod;
}

export class Gateway {
  #o;
  #plan;
  #listeners = new Map();
  #state = 'idle';
  #subs = [];            // in the order they were made: restored in this order
  #toEnd = new Set();    // persistent ids unsubscribed while offline: ended on the next session
  #conn = null;          // the autobahn.Connection of the current attempt or session
  #session = null;       // the joined autobahn session, or null
  #generation = 0;       // bumped per attempt: callbacks of an older attempt are ignored
  #queue = Promise.resolve(); // (re)subscriptions on the current session, one at a time, in order
  #pending = new Set();  // calls in flight on the current session: rejected if it is lost
  #waiters = [];         // calls waiting for a session
  #everOpened = false;
  #failures = 0;         // failed attempts since the last open
  #retry = 0;            // number of the next retry (backoff step)
  #retryTimer = null;
  #ackTimer = null;
  #connect = null;       // {promise, resolve, reject} of connect()
  #closing = false;
  #closePromise = null;
  #connClosed = null;    // resolves close() once the socket is closed
  #autobahn = null;

  /** The client token from the last WELCOME, and when it expires (RFC 3339). */
  clientToken = null;
  clientTokenExpires = null;
  /** {authid, role, user, roles} of the current (or last) session. */
  identity = null;

  constructor(options) {
    this.#o = gatewayOptions(options);
    this.#o.tokenStore ??= inBrowser() ? new CookieTokenStore() : new MemoryTokenStore();
    this.#o.cursorStore ??= inBrowser() && globalThis.localStorage ? new LocalCursorStore() : new MemoryCursorStore();
    this.#plan = new CredentialPlan({ ticket: this.#o.ticket, jwt: this.#o.jwt, canAsk: this.#o.getCredentials !== null });
  }

  /** 'idle' | 'connecting' | 'open' | 'lost' | 'closed' */
  get state() {
    return this.#state;
  }

  get tokenStore() {
    return this.#o.tokenStore;
  }

  get cursorStore() {
    return this.#o.cursorStore;
  }

  /** The application's active subscriptions, in the order they were made. */
  get subscriptions() {
    return this.#subs.filter((s) => s._active);
  }

  // -- events ------------------------------------------------------------------

  on(name, fn) {
    if (!EVENTS.includes(name)) throw invalidArgument(`on(${describe(name)})`, `unknown event (known: ${EVENTS.join(', ')})`);
    if (typeof fn !== 'function') throw invalidArgument(`on('${name}', fn)`, `fn must be a function, not ${describe(fn)}`);
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(fn);
    return this;
  }

  off(name, fn) {
    this.#listeners.get(name)?.delete(fn);
    return this;
  }

  #emit(name, ...args) {
    for (const fn of [...(this.#listeners.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        if (name === 'error') console.error('events-gateway-client: an error listener threw', err);
        else this.#error(new GatewayError(`a '${name}' listener threw: ${err?.message ?? err}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
    }
  }

  /** Tell the application; never swallowed: without an 'error' listener it goes to the console. */
  #error(err) {
    if (this.#listeners.get('error')?.size) this.#emit('error', err);
    else console.warn('events-gateway-client:', err);
  }

  #setState(state, detail) {
    this.#state = state;
    this.#emit('state', state, detail);
    if (state !== 'open') this.#emit(state, detail);
  }

  // -- connecting ----------------------------------------------------------------

  /** Connect (and keep reconnecting); resolves on the first open, rejects if the Gateway ends 'closed' first. */
  connect() {
    if (this.#closing || this.#state === 'closed') {
      return Promise.reject(new GatewayError('this Gateway was closed; make a new one to connect again', { uri: ClientErrors.CLOSED }));
    }
    if (this.#connect === null) {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      this.#connect = { promise, resolve, reject };
      if (this.#everOpened) resolve();
      else this.#schedule(0);
    }
    return this.#connect.promise;
  }

  /** The next attempt in `delay` seconds, unless the credential in hand is used up with no way to get another. */
  #schedule(delay) {
    const decision = this.#plan.next();
    if (decision.action === 'fail') {
      this.#finish(decision.error);
      return;
    }
    this.#setState('connecting', { attempt: this.#failures + 1, delay });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#attempt().catch((err) => this.#finish(fromWampError(err)));
    }, delay * 1000);
  }

  #retryLater() {
    this.#retry += 1;
    this.#schedule(backoffDelay(this.#o.reconnect, this.#retry));
  }

  async #attempt() {
    const generation = ++this.#generation;
    const stale = () => generation !== this.#generation || this.#closing;
    let decision = this.#plan.next();
    if (decision.action === 'fail') return this.#finish(decision.error);
    if (decision.action === 'ask') {
      let answer;
      try {
        answer = await this.#o.getCredentials();
      } catch (err) {
        if (stale()) return undefined;
        this.#error(new GatewayError(`getCredentials() failed: ${err?.message ?? err}`, { uri: ClientErrors.INVALID_CREDENTIALS, cause: err }));
        return this.#attemptFailed();
      }
      if (stale()) return undefined;
      try {
        decision = this.#plan.supplied(answer);
      } catch (err) {
        return this.#finish(err);
      }
    }
    if (this.#autobahn === null) {
      try {
        this.#autobahn = await loadAutobahn(this.#o.autobahn);
      } catch (err) {
        return this.#finish(new GatewayError('autobahn-js is not available: load /vendor/autobahn.min.js in the page, '
          + `pass options.autobahn, or install the npm package autobahn (${err?.message ?? err})`, { cause: err }));
      }
      if (stale()) return undefined;
    }
    this.#open(decision.credential);
    return undefined;
  }

  #storedToken() {
    try {
      return tokenToPresent(this.#o.tokenStore.get());
    } catch (err) {
      this.#error(new GatewayError(`reading the client token failed: ${err?.message ?? err}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      return null;
    }
  }

  #open(credential) {
    const token = this.#storedToken();
    const options = {
      url: this.#o.url,
      transports: [{ type: registerTransport(this.#autobahn), url: this.#o.url }],
      realm: this.#o.realm,
      max_retries: 0,              // the reconnect loop is ours: one Connection per attempt
      retry_if_unreachable: false,
      use_es6_promises: true,
      authextra: token ? { client_token: token } : {},
      on_user_error: (err, message) => this.#error(new GatewayError(`${message ?? 'autobahn'}: ${err?.message ?? err}`, { cause: err })),
      on_internal_error: (err, message) => this.#error(new GatewayError(`${message ?? 'autobahn'}: ${err?.message ?? err}`, { cause: err })),
    };
    if (credential !== null) {
      options.authmethods = ['ticket'];
      options.onchallenge = (_session, method) => {
        this.#plan.presented();
        if (method !== 'ticket') throw new Error(`the gateway asked for ${method}, this client only answers ticket`);
        return credential.value;
      };
    }
    const conn = new this.#autobahn.Connection(options);
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
      if (this.#conn !== conn || this.#closing) {
        try { conn.close(); } catch { /* closed already */ }
        return;
      }
      joined = true;
      this.#joined(session, details ?? {});
    };
    conn.onclose = (reason, details) => {
      clearTimeout(timer);
      if (this.#conn === conn) this.#socketClosed(joined, timedOut, reason, details ?? {});
      return true; // never let autobahn retry by itself
    };
    conn.open();
  }

  #joined(session, details) {
    this.#session = session;
    this.#failures = 0;
    this.#retry = 0;
    const extra = details.authextra ?? {};
    if (typeof extra.client_token === 'string') {
      this.clientToken = extra.client_token;
      this.clientTokenExpires = extra.client_token_expires ?? null;
      try {
        this.#o.tokenStore.set(this.clientToken, this.clientTokenExpires);
      } catch (err) {
        this.#error(new GatewayError(`storing the client token failed: ${err?.message ?? err}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      }
    }
    this.identity = {
      authid: details.authid ?? null,
      role: details.authrole ?? null,
      user: extra.user ?? null,
      roles: Array.isArray(extra.roles) ? extra.roles : [],
    };
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(session);

    this.#queue = Promise.resolve();
    this.#enqueue(session, () => this.#watchRemovals(session));
    for (const id of [...this.#toEnd]) {
      this.#enqueue(session, () => this.#callOn(session, URI.UNSUBSCRIBE, [id]).then(
        () => this.#toEnd.delete(id),
        (err) => { if (!isConnectionLost(fromWampError(err))) this.#toEnd.delete(id); }));
    }
    for (const sub of this.#subs) {
      if (sub._active) this.#enqueueSubscription(sub, session);
    }
    this.#queue.then(() => {
      if (session !== this.#session || this.#closing) return;
      const detail = { session: session.id, ...this.identity, clientToken: this.clientToken, clientTokenExpires: this.clientTokenExpires };
      const first = !this.#everOpened;
      this.#everOpened = true;
      this.#setState('open', detail);
      this.#emit(first ? 'open' : 'resumed', detail);
      this.#connect?.resolve();
      if (this.#subs.some((s) => s.persistent && s._active && s._merger.lastSeq > s._acked)) this.#scheduleAck();
    });
  }

  #socketClosed(joined, timedOut, reason, details) {
    this.#conn = null;
    this.#session = null;
    this.#generation += 1;
    const lost = new GatewayError('the connection to the gateway was lost', { uri: ClientErrors.CONNECTION_LOST });
    for (const call of this.#pending) call.reject(lost);
    this.#pending.clear();
    for (const sub of this.#subs) {
      sub._session = null;
      sub._ab = null;
      sub._queuedFor = null;
      sub._merger.abort();
    }
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.#closing) {
      this.#connClosed?.();
      return;
    }
    const why = details.reason ?? (timedOut ? ClientErrors.TIMEOUT : reason);
    const message = details.message || (timedOut ? `no session within ${this.#o.connectTimeout} s` : '');
    if (joined) {
      this.#setState('lost', { reason: why, message });
      this.#retry = 0;
      this.#retryLater();
      return;
    }
    if (reason === 'unsupported') { // autobahn could not even make a transport: no retry helps
      this.#finish(new GatewayError(`no WebSocket could be opened to ${this.#o.url} in this environment `
        + '(Node 20 needs --experimental-websocket; see the error reported before)', { uri: ClientErrors.GAVE_UP }));
      return;
    }
    if (LOGIN_REFUSED.has(details.reason)) {
      this.#plan.refused(message || details.reason);
      this.#error(new GatewayError(`the gateway refused the login: ${message || details.reason}`, { uri: details.reason }));
    } else if (details.reason) { // any other ABORT (a wrong realm, ...): say so, then retry as for any failure
      this.#error(new GatewayError(`the gateway refused the session: ${message || details.reason}`, { uri: details.reason }));
    }
    this.#attemptFailed(why, message);
  }

  #attemptFailed(why = 'getCredentials() failed', message = '') {
    this.#failures += 1;
    if (this.#failures >= this.#o.reconnect.maxAttempts) {
      this.#finish(new GatewayError(`gave up after ${this.#failures} failed connection attempt(s) to ${this.#o.url}; `
        + `the last: ${why}${message ? ` (${message})` : ''}`, { uri: ClientErrors.GAVE_UP }));
      return;
    }
    this.#retryLater();
  }

  /** Closed for good (not by close()): tell everyone who waits. */
  #finish(error) {
    if (this.#state === 'closed' || this.#closing) return;
    this.#closing = true;
    this.#closePromise = Promise.resolve();
    this.#stopTimers();
    const conn = this.#conn;
    this.#conn = null;
    this.#session = null;
    if (conn) {
      try { conn.close(); } catch { /* closed already */ }
    }
    this.#settleAll(error);
    this.#setState('closed', { reason: error.message, error });
    this.#error(error);
  }

  #stopTimers() {
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#ackTimer);
    this.#retryTimer = null;
    this.#ackTimer = null;
  }

  #settleAll(error) {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const call of this.#pending) call.reject(error);
    this.#pending.clear();
    for (const sub of this.#subs) if (!sub._established) sub._rejectReady(error);
    this.#connect?.reject(error);
    this.#connect?.promise.catch(() => {});
  }

  /** Ack what was delivered, leave, and stop for good. Idempotent; leaves no timer behind. */
  close() {
    if (this.#closePromise !== null) return this.#closePromise;
    this.#closing = true;
    this.#closePromise = (async () => {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      if (this.#session !== null) await within(this.#flushAcks(), CLOSE_GRACE_MS);
      this.#stopTimers();
      const conn = this.#conn;
      if (conn !== null) {
        let grace;
        await new Promise((resolve) => {
          this.#connClosed = resolve;
          grace = setTimeout(() => {
            try { conn.transport?.close?.(1000, 'closing'); } catch { /* closed already */ }
            resolve();
          }, CLOSE_GRACE_MS);
          try { conn.close('wamp.close.normal', 'the application closed the connection'); } catch { resolve(); }
        });
        clearTimeout(grace);
      }
      this.#conn = null;
      this.#session = null;
      const error = new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED });
      this.#settleAll(error);
      this.#setState('closed', { reason: 'closed by the application' });
    })();
    return this.#closePromise;
  }

  /** For tests: drop the WebSocket as a network failure would, without leaving the session. */
  _debugDropConnection() {
    const transport = this.#conn?.transport;
    if (!transport || typeof transport.drop !== 'function') return false;
    transport.drop();
    return true;
  }

  // -- calls ------------------------------------------------------------------

  #whenSession() {
    if (this.#session !== null) return Promise.resolve(this.#session);
    if (this.#closing) return Promise.reject(new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED }));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** A call on `session` that is rejected (CONNECTION_LOST) if the session goes away first. */
  #callOn(session, uri, args = [], kwargs = {}) {
    return this.#track(session, () => session.call(uri, args, kwargs));
  }

  #track(session, start) {
    return new Promise((resolve, reject) => {
      if (session !== this.#session) {
        reject(new GatewayError('the connection to the gateway was lost', { uri: ClientErrors.CONNECTION_LOST }));
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

  /** Call a procedure; waits for a session if there is none yet. Errors are GatewayErrors. */
  async call(uri, args = [], kwargs = {}) {
    callArguments(uri, args, kwargs);
    const session = await this.#whenSession();
    const result = await this.#callOn(session, uri, args, kwargs);
    if (result && typeof result === 'object' && Array.isArray(result.args) && result.kwargs
        && result.constructor?.name === 'Result') {
      return { args: result.args, kwargs: result.kwargs };
    }
    return result;
  }

  catalog() {
    return this.call(URI.CATALOG);
  }

  whoami() {
    return this.call(URI.WHOAMI);
  }

  // -- subscriptions ------------------------------------------------------------

  /**
   * Subscribe by query. Resolves once subscribed (and, if persistent, once the missed events were
   * delivered); works before connect() resolves and is restored on every new session.
   */
  subscribe(query, handler, options = {}) {
    let args;
    try {
      args = subscribeArguments(query, handler, options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return Promise.reject(new GatewayError('the Gateway was closed', { uri: ClientErrors.CLOSED }));
    const sub = new Subscription(args, { unsubscribe: (s) => this.#unsubscribe(s) });
    this.#subs.push(sub);
    if (this.#session !== null) this.#enqueueSubscription(sub, this.#session);
    return sub._ready.then(() => sub);
  }

  #enqueue(session, work) {
    const run = this.#queue.then(() => (session === this.#session ? work() : undefined));
    this.#queue = run.catch(() => {});
    return this.#queue;
  }

  #enqueueSubscription(sub, session) {
    if (sub._queuedFor === session) return this.#queue;
    sub._queuedFor = session;
    return this.#enqueue(session, () => this.#establish(sub, session));
  }

  async #establish(sub, session, tries = 0) {
    if (!sub._active || session !== this.#session) return;
    try {
      const granted = await this.#callOn(session, URI.SUBSCRIBE, [sub._text], { persistent: sub.persistent });
      if (!granted || typeof granted.id !== 'string' || typeof granted.topic !== 'string') {
        throw new GatewayError(`gateway.subscribe answered ${describe(granted)}, not {id, topic, query}`, { query: sub._text });
      }
      if (!sub._active) { // unsubscribed while the gateway answered: undo it there
        this.#callOn(session, URI.UNSUBSCRIBE, [granted.id]).catch(() => {});
        return;
      }
      sub.id = granted.id;
      sub.topic = granted.topic;
      if (typeof granted.query === 'string') sub.query = granted.query;
      let from = 0;
      if (sub.persistent) {
        sub._acked = Number.isSafeInteger(granted.last_seq) ? granted.last_seq : 0;
        from = Math.max(sub._acked, this.#cursor(sub.id), sub._merger.lastSeq);
        sub._merger.startReplay(from); // live events are held until the replay is merged in
      }
      const ab = await this.#track(session, () => session.subscribe(granted.topic, (args) => this.#onEvent(sub, session, args)));
      sub._ab = ab;
      sub._session = session;
      if (!sub._active) {
        this.#track(session, () => session.unsubscribe(ab)).catch(() => {});
        return;
      }
      if (sub.persistent) await this.#replay(sub, session, from);
      sub._established = true;
      sub._resolveReady();
    } catch (raw) {
      const err = fromWampError(raw, { query: sub._text });
      sub._merger.abort();
      if (isConnectionLost(err) || session !== this.#session || !sub._active) return; // the next session tries again
      if (TRANSIENT.has(err.uri) && tries < TRANSIENT_RETRIES) {
        await sleep(100 * 2 ** tries); // a gateway component is restarting: it is back within a second
        return this.#establish(sub, session, tries + 1);
      }
      this.#drop(sub);
      if (!sub._established) {
        sub._rejectReady(err);
      } else {
        this.#removed(sub, { id: sub.id, topic: sub.topic, query: sub.query, reason: err.message }, err);
      }
    }
  }

  #cursor(id) {
    try {
      const seq = this.#o.cursorStore.get(id);
      return Number.isSafeInteger(seq) && seq >= 0 ? seq : 0;
    } catch (err) {
      this.#error(new GatewayError(`reading the cursor of ${id} failed: ${err?.message ?? err}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      return 0;
    }
  }

  async #replay(sub, session, from) {
    let after = from;
    let gapTold = false;
    for (;;) {
      const page = await this.#callOn(session, URI.REPLAY, [sub.id, after, REPLAY_PAGE]);
      if (!sub._active || session !== this.#session) return;
      if (page?.truncated === true && !gapTold) {
        gapTold = true;
        this.#gap(sub, from);
      }
      const events = Array.isArray(page?.events) ? page.events.filter(isEnvelope) : [];
      const lastInPage = events.length ? events[events.length - 1].seq : after;
      const through = Number.isSafeInteger(page?.next_after) ? Math.max(page.next_after, lastInPage) : lastInPage;
      for (const envelope of sub._merger.page(events, through)) this.#deliver(sub, envelope);
      if (page?.more !== true) break;
      if (!(through > after)) {
        throw new GatewayError(`gateway.replay said more but did not move past seq ${after}`, { uri: URI.REPLAY });
      }
      after = through;
    }
    for (const envelope of sub._merger.finish()) this.#deliver(sub, envelope);
  }

  #gap(sub, afterSeq) {
    if (sub._onGap) {
      try {
        sub._onGap({ subscription: sub, afterSeq });
      } catch (err) {
        this.#error(new GatewayError(`onGap of ${sub.query} threw: ${err?.message ?? err}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
      return;
    }
    this.#error(new GatewayError(`events of the persistent subscription ${sub.id} (${sub.query}) after seq ${afterSeq} `
      + 'were dropped by retention before they could be replayed; pass onGap to handle this',
    { uri: ClientErrors.GAP, details: { subscription: sub.id, afterSeq } }));
  }

  #onEvent(sub, session, args) {
    if (!sub._active || session !== this.#session) return;
    const envelope = Array.isArray(args) ? args[0] : undefined;
    if (!isEnvelope(envelope)) {
      this.#error(new GatewayError(`subscription ${sub.id} received something that is not an event envelope: ${describe(envelope)}`,
        { uri: ClientErrors.BAD_EVENT }));
      return;
    }
    for (const out of sub._merger.live(envelope)) this.#deliver(sub, out);
  }

  #deliver(sub, envelope) {
    if (!sub._active) return;
    if (sub.persistent) {
      try {
        this.#o.cursorStore.set(sub.id, envelope.seq);
      } catch (err) {
        this.#error(new GatewayError(`storing the cursor of ${sub.id} failed: ${err?.message ?? err}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      }
      this.#scheduleAck();
    }
    const failed = (err) => this.#error(new GatewayError(
      `the handler of ${sub.query} threw on seq ${envelope.seq}: ${err?.message ?? err}`,
      { uri: ClientErrors.HANDLER_ERROR, cause: err, details: { subscription: sub.id, seq: envelope.seq } }));
    try {
      const result = sub._handler(envelope, sub);
      if (result && typeof result.then === 'function') result.then(undefined, failed);
    } catch (err) {
      failed(err);
    }
  }

  #scheduleAck() {
    if (this.#ackTimer !== null || this.#closing || this.#session === null) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null;
      this.#flushAcks();
    }, this.#o.ackInterval);
  }

  /** gateway.ack for every persistent subscription that delivered something since its last ack. */
  async #flushAcks() {
    const session = this.#session;
    if (session === null) return;
    const due = this.#subs.filter((s) => s.persistent && s._active && s._session === session && s._merger.lastSeq > s._acked);
    await Promise.all(due.map(async (sub) => {
      const seq = sub._merger.lastSeq;
      try {
        await this.#callOn(session, URI.ACK, [sub.id, seq]);
        sub._acked = Math.max(sub._acked, seq);
      } catch (raw) {
        const err = fromWampError(raw);
        if (!isConnectionLost(err) && err.uri !== 'gateway.error.no_such_subscription') this.#error(err);
      }
    }));
  }

  async #watchRemovals(session) {
    try {
      await this.#track(session, () => session.subscribe(URI.SUBSCRIPTION_REMOVED, (args) => {
        const info = Array.isArray(args) ? args[0] : null;
        if (!info || typeof info.id !== 'string') return;
        for (const sub of this.#subs.filter((s) => s._active && s.id === info.id)) {
          this.#drop(sub);
          this.#removed(sub, info, null);
        }
      }));
    } catch (raw) {
      const err = fromWampError(raw);
      if (!isConnectionLost(err)) this.#error(err);
    }
  }

  /** Stop delivering on `sub` and forget it locally (the gateway's side is dealt with by the caller). */
  #drop(sub) {
    sub._active = false;
    this.#subs = this.#subs.filter((s) => s !== sub);
    const { _session: session, _ab: ab } = sub;
    sub._ab = null;
    if (ab && session && session === this.#session) this.#track(session, () => session.unsubscribe(ab)).catch(() => {});
    if (sub.persistent && sub.id) {
      try { this.#o.cursorStore.delete?.(sub.id); } catch { /* only a cleanup */ }
    }
  }

  #removed(sub, info, cause) {
    const notice = { id: info.id ?? sub.id, topic: info.topic ?? sub.topic, query: info.query ?? sub.query, reason: info.reason ?? 'ended by the gateway' };
    if (sub._onRemoved) {
      try {
        sub._onRemoved(notice);
      } catch (err) {
        this.#error(new GatewayError(`onRemoved of ${sub.query} threw: ${err?.message ?? err}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
      return;
    }
    this.#error(new GatewayError(`the gateway ended the subscription ${notice.id} (${notice.query}): ${notice.reason}`,
      { uri: ClientErrors.SUBSCRIPTION_REMOVED, cause: cause ?? undefined, details: notice }));
  }

  async #unsubscribe(sub) {
    if (!sub._active) return;
    const session = this.#session;
    const id = sub.id;
    this.#drop(sub);
    if (!sub._established) sub._rejectReady(new GatewayError('unsubscribed before it was subscribed', { uri: ClientErrors.CLOSED }));
    if (id === null) return; // never reached the gateway (a pending establishment undoes itself)
    if (session === null) {
      if (sub.persistent) this.#toEnd.add(id); // ended on the next session
      return;
    }
    try {
      await this.#callOn(session, URI.UNSUBSCRIBE, [id]);
    } catch (raw) {
      const err = fromWampError(raw);
      if (isConnectionLost(err)) {
        if (sub.persistent) this.#toEnd.add(id);
      } else if (err.uri !== 'gateway.error.no_such_subscription') {
        throw err;
      }
    }
  }
}
