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
import { ClientErrors, GatewayError, describe, fromWampError, invalidArgument, isConnectionLost, isTransient } from './errors.js';
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
/**
 * Pauses (ms) before asking again after a transient error (errors.js: a gateway component
 * restarting, or a worker that died mid-call while a standby takes over): about 1.5 s in all.
 * A subscription still not restored after them is reported on 'error' and tried again with
 * the reconnect backoff, on the same session and on every new one.
 */
const TRANSIENT_PAUSES_MS = [50, 100, 200, 400, 800];
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
  #toEnd = new Set();    // persistent ids unsubscribed whose end the gateway has not confirmed yet
  #toEndQueries = new Set(); // persistent queries unsubscribed while their gateway.subscribe was cut off
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
  #pauses = new Set();   // {timer, resolve} of retry pauses: close() ends them at once
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
    if (this.#closing) return;
    const decision = this.#plan.next();
    if (decision.action === 'fail') {
      this.#finish(decision.error);
      return;
    }
    this.#setState('connecting', { attempt: this.#failures + 1, delay });
    if (this.#closing) return; // a 'connecting' listener called close()
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#closing) return;
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
    }
    if (stale()) return undefined; // closed (or superseded) while asking or loading
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
    // Persistent subscriptions the application ended whose end the gateway has not confirmed.
    for (const id of [...this.#toEnd]) {
      this.#enqueue(session, async () => {
        const refused = await this.#endOnGateway(session, id);
        if (refused) this.#error(refused);
      });
    }
    for (const text of [...this.#toEndQueries]) this.#enqueue(session, () => this.#endByQuery(session, text));
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
      if (this.#closing) return; // a 'lost' listener called close()
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
    this.#endPauses();
  }

  /** Resolves after `ms`, or at once when the Gateway closes (no timer keeps Node alive). */
  #pause(ms) {
    if (this.#closing) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = { resolve, timer: null };
      entry.timer = setTimeout(() => {
        this.#pauses.delete(entry);
        resolve();
      }, ms);
      this.#pauses.add(entry);
    });
  }

  #endPauses() {
    for (const entry of this.#pauses) {
      clearTimeout(entry.timer);
      entry.resolve();
    }
    this.#pauses.clear();
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
      this.#endPauses();
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

  /** Whether `session` is no longer the current one (lost), or the Gateway is closing. */
  #gone(session) {
    return session !== this.#session || this.#closing;
  }

  /**
   * `work()` (a call on `session`), asked again after a pause while it fails with a transient
   * error: the session is up but the gateway component serving it is away for a moment. Throws
   * what `work` threw otherwise, after the last pause, or once the session is gone.
   */
  async #withRetries(session, work) {
    for (let tries = 0; ; tries += 1) {
      try {
        return await work();
      } catch (raw) {
        if (!isTransient(fromWampError(raw)) || tries >= TRANSIENT_PAUSES_MS.length || this.#gone(session)) throw raw;
        await this.#pause(TRANSIENT_PAUSES_MS[tries]);
        if (this.#gone(session)) throw raw;
      }
    }
  }

  /**
   * Subscribe `sub` on `session`: gateway.subscribe, the topic, and for a persistent one the
   * replay, merged with the live events held meanwhile. Once the topic is subscribed, live
   * events are held until the replay is merged in, however many times a page is asked again;
   * the topic is never left subscribed with nothing holding its events back.
   */
  async #establish(sub, session) {
    if (!sub._active || this.#gone(session)) return;
    try {
      const granted = await this.#grant(sub, session);
      if (granted === null) return;
      sub.id = granted.id;
      sub.topic = granted.topic;
      if (typeof granted.query === 'string') sub.query = granted.query;
      let from = 0;
      if (sub.persistent) {
        sub._acked = Number.isSafeInteger(granted.last_seq) ? granted.last_seq : 0;
        // Where this subscription stands is its own merger's position once it has one: the
        // gateway's cursor and the cursor store may have been moved by another holder of the
        // same subscription (another tab, another Gateway on the same stores) past events this
        // one never handed over. The first time (or under a new id), they are where to start.
        from = sub._resumeId === sub.id ? sub._merger.lastSeq
          : Math.max(sub._acked, this.#cursor(sub.id), sub._merger.lastSeq);
        sub._resumeId = sub.id;
        sub._merger.startReplay(from); // live events are held until the replay is merged in
      }
      const route = { open: true }; // closed when this topic subscription is let go: no stray event gets through
      const ab = await this.#withRetries(session, () => this.#track(session,
        () => session.subscribe(granted.topic, (args) => { if (route.open) this.#onEvent(sub, session, args); })));
      if (session !== this.#session) return; // lost: #socketClosed reset it; the next session subscribes again
      sub._route = route;
      sub._ab = ab;
      sub._session = session;
      if (!sub._active) {
        this.#track(session, () => session.unsubscribe(ab)).catch(() => {});
        return;
      }
      if (sub.persistent) await this.#replay(sub, session, from);
      if (!sub._active || this.#gone(session)) return;
      sub._established = true;
      sub._rounds = 0;
      sub._resolveReady();
    } catch (raw) {
      const err = fromWampError(raw, { query: sub._text });
      if (!sub._active || this.#gone(session) || isConnectionLost(err)) return; // the next session tries again
      if (isTransient(err)) {
        this.#notRestored(sub, session, err);
        return;
      }
      this.#drop(sub);
      if (!sub._established) {
        sub._rejectReady(err);
      } else {
        this.#removed(sub, { id: sub.id, topic: sub.topic, query: sub.query, reason: err.message }, err);
      }
    }
  }

  /** gateway.subscribe for `sub`: its answer, or null if `sub` was unsubscribed meanwhile (then undone). */
  async #grant(sub, session) {
    sub._grantPending = true;
    sub._grantUnknown = true;
    let granted;
    try {
      granted = await this.#withRetries(session,
        () => this.#callOn(session, URI.SUBSCRIBE, [sub._text], { persistent: sub.persistent }));
    } catch (raw) {
      const err = fromWampError(raw, { query: sub._text });
      sub._grantPending = false;
      if (!isConnectionLost(err) && !isTransient(err)) sub._grantUnknown = false; // refused: nothing was made
      // Unsubscribed while the call was in flight, and whether the gateway made it is unknown:
      // find it by its query on the next session and end it.
      if (!sub._active && sub.persistent && sub._grantUnknown) this.#toEndQueries.add(sub._text);
      throw raw;
    }
    sub._grantPending = false;
    sub._grantUnknown = false;
    if (!granted || typeof granted.id !== 'string' || typeof granted.topic !== 'string') {
      throw new GatewayError(`gateway.subscribe answered ${describe(granted)}, not {id, topic, query}`, { query: sub._text });
    }
    if (!sub._active) { // unsubscribed while the gateway answered: undo it there
      if (!sub.persistent) {
        this.#callOn(session, URI.UNSUBSCRIBE, [granted.id]).catch(() => {}); // ends with the session anyway
      } else if (!this.#holders(granted.id).length) {
        this.#toEnd.add(granted.id);
        this.#endOnGateway(session, granted.id).then((refused) => { if (refused) this.#error(refused); });
      }
      return null;
    }
    return granted;
  }

  /**
   * A transient error outlasted the pauses. A subscription the application is still waiting
   * for is refused with it; one that was running is reported on 'error' and tried again with
   * backoff (and on every new session). Either way its topic is left: nothing is handed over
   * past events it could not replay, and nothing is acked.
   */
  #notRestored(sub, session, err) {
    const ab = sub._ab;
    sub._route.open = false;
    sub._ab = null;
    sub._session = null;
    sub._merger.abort();
    if (ab) this.#track(session, () => session.unsubscribe(ab)).catch(() => {});
    if (!sub._established) {
      this.#drop(sub, { keepCursor: true }); // it still exists on the gateway: a subscribe() again resumes it
      sub._rejectReady(err);
      return;
    }
    sub._rounds += 1;
    const delay = backoffDelay(this.#o.reconnect, sub._rounds);
    if (sub._rounds === 1) {
      this.#error(new GatewayError(`the subscription ${sub.query} could not be restored (${err.message}); it receives `
        + 'nothing until it is: trying again with backoff, on this connection and on every new one',
      { uri: err.uri, cause: err, query: sub.query, details: { subscription: sub.id } }));
    }
    this.#pause(delay * 1000).then(() => {
      if (!sub._active || this.#gone(session) || sub._session === session) return;
      sub._queuedFor = null;
      this.#enqueueSubscription(sub, session);
    });
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
      // A page cut off by a transient error is asked again from the same seq; live events stay held.
      const page = await this.#withRetries(session, () => this.#callOn(session, URI.REPLAY, [sub.id, after, REPLAY_PAGE]));
      if (!sub._active || this.#gone(session)) return;
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
    let again = false;
    await Promise.all(due.map(async (sub) => {
      const seq = sub._merger.lastSeq;
      try {
        await this.#callOn(session, URI.ACK, [sub.id, seq]);
        sub._acked = Math.max(sub._acked, seq);
      } catch (raw) {
        const err = fromWampError(raw);
        if (isConnectionLost(err) || session !== this.#session) return; // the next session acks
        if (isTransient(err)) {
          again = true;
        } else if (err.uri === 'gateway.error.no_such_subscription') {
          // Ended on the gateway and the notice did not reach this client (or it was another
          // holder's unsubscribe): it is a removal, not something to ack again forever.
          this.#removedByGateway({ id: sub.id, reason: 'the gateway no longer has this subscription (gateway.ack '
            + `answered: ${err.message})` }, err);
        } else {
          this.#error(err);
        }
      }
    }));
    if (again) this.#scheduleAck();
  }

  async #watchRemovals(session) {
    try {
      await this.#track(session, () => session.subscribe(URI.SUBSCRIPTION_REMOVED, (args) => {
        const info = Array.isArray(args) ? args[0] : null;
        if (info && typeof info.id === 'string') this.#removedByGateway(info, null);
      }));
    } catch (raw) {
      const err = fromWampError(raw);
      if (!isConnectionLost(err)) this.#error(err);
    }
  }

  /** The gateway ended the subscription `info.id`: every local holder of it stops and is told. */
  #removedByGateway(info, cause) {
    for (const sub of this.#subs.filter((s) => s._active && s.id === info.id)) {
      this.#drop(sub);
      this.#removed(sub, info, cause);
    }
  }

  /** The application's active persistent subscriptions on the gateway subscription `id`. */
  #holders(id) {
    return this.#subs.filter((s) => s._active && s.persistent && s.id === id);
  }

  /**
   * Stop delivering on `sub` and forget it locally (the gateway's side is dealt with by the caller);
   * its stored cursor too, unless another holder or `keepCursor` needs it.
   */
  #drop(sub, { keepCursor = false } = {}) {
    sub._active = false;
    this.#subs = this.#subs.filter((s) => s !== sub);
    const { _session: session, _ab: ab } = sub;
    sub._ab = null;
    sub._route.open = false;
    sub._merger.abort();
    if (ab && session && session === this.#session) this.#track(session, () => session.unsubscribe(ab)).catch(() => {});
    if (sub.persistent && sub.id && !keepCursor && !this.#holders(sub.id).length) {
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
    if (!sub.persistent) { // a plain subscription ends with its session anyway: this frees it now
      if (id === null || session === null) return;
      try {
        await this.#callOn(session, URI.UNSUBSCRIBE, [id]);
      } catch (raw) {
        const err = fromWampError(raw);
        if (!isConnectionLost(err) && !isTransient(err) && err.uri !== 'gateway.error.no_such_subscription') throw err;
      }
      return;
    }
    if (id === null) {
      // Never granted, or its gateway.subscribe is in flight (#grant undoes it when the answer
      // comes), or was cut off by a lost connection: then it is looked up on the next session.
      if (sub._grantUnknown && !sub._grantPending) this.#toEndQueries.add(sub._text);
      return;
    }
    if (this.#holders(id).length) return; // another subscription of this Gateway has the same query: it goes on
    this.#toEnd.add(id);
    if (session === null) return; // ended on the next session
    const refused = await this.#endOnGateway(session, id);
    if (refused) throw refused;
  }

  /**
   * gateway.unsubscribe(id) for an id in #toEnd, unless the application holds it again. Leaves it
   * in #toEnd if the connection went (the next session ends it); returns the gateway's refusal
   * other than no_such_subscription (ended already), else null.
   */
  async #endOnGateway(session, id) {
    if (this.#holders(id).length) {
      this.#toEnd.delete(id);
      return null;
    }
    try {
      await this.#withRetries(session, () => this.#callOn(session, URI.UNSUBSCRIBE, [id]));
    } catch (raw) {
      const err = fromWampError(raw);
      if (isConnectionLost(err) || isTransient(err) || session !== this.#session) return null;
      this.#toEnd.delete(id);
      return err.uri === 'gateway.error.no_such_subscription' ? null : err;
    }
    this.#toEnd.delete(id);
    return null;
  }

  /**
   * A persistent query the application unsubscribed while its gateway.subscribe was cut off: the
   * gateway may or may not have made it. Subscribing again gives its id (the same query resumes
   * the same subscription; if there was none, a new one that is ended at once), then it is ended.
   */
  async #endByQuery(session, text) {
    let granted;
    try {
      granted = await this.#withRetries(session, () => this.#callOn(session, URI.SUBSCRIBE, [text], { persistent: true }));
    } catch (raw) {
      const err = fromWampError(raw, { query: text });
      if (!isConnectionLost(err) && !isTransient(err) && session === this.#session) this.#toEndQueries.delete(text); // refused: nothing to end
      return;
    }
    this.#toEndQueries.delete(text);
    if (!granted || typeof granted.id !== 'string' || this.#holders(granted.id).length) return;
    this.#toEnd.add(granted.id);
    const refused = await this.#endOnGateway(session, granted.id);
    if (refused) this.#error(refused);
  }
}
