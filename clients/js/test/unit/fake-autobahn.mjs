// A fake autobahn-js and a fake gateway behind it, to drive the Gateway through
// situations a real router cannot be made to produce on cue (a call cancelled
// while the session stays up, an answer that arrives after an unsubscribe, a
// connection lost between two calls). The real protocol is tested against real
// nodes in test/integration/; this keeps only what the client relies on:
//
//   gateway.subscribe(query, {persistent, batch}) -> {id, topic, query, persistent, last_seq?, resumed?, batch?}
//     (a persistent one is resumed for the same query: same id, its acked cursor; with batch, the
//     query's batched topic, where one event carries one or more envelopes)
//   gateway.unsubscribe(id), gateway.replay(id, after_seq, limit), gateway.ack(id, seq)
//
// server.post(query, data) numbers an event, logs it for the persistent
// subscriptions of that query and publishes it to every open session
// subscribed to the query's topic (and as a batch of one to its batched topic);
// server.postBatch(query, [data, ...]) numbers several, published one by one to the
// topic and as one event to the batched topic. server.override(uri, fn) replaces a
// procedure: fn(args, kwargs, session, original) may return, throw or hang.
//
// One FakeServer may stand for several nodes of a cluster (one state, one seq): a
// connection's URL is in connection.options.url, and a URL in server.down is
// unreachable (the attempt fails as a refused connection does).

import { Gateway } from '../../src/gateway.js';

export const ENVELOPE = (seq, data = {}) => ({ event: 'demo.message', id: `e${seq}`, seq, time: '2030-01-01T00:00:00Z', data });

export const topicOf = (query) => `gateway.query.${query}`;
export const batchTopicOf = (query) => `gateway.batch.query.${query}`;

const wampError = (error, message, kwargs = {}) => ({ error, args: [message], kwargs });

export class FakeServer {
  constructor() {
    this.calls = [];          // [sessionId, uri, args, kwargs]
    this.sessions = [];       // every FakeSession, in order
    this.connections = [];    // every Connection made
    this.persistent = new Map(); // id -> {id, query, topic, lastSeq}
    this.log = [];            // {topic, envelope}
    this.seq = 0;
    this.overrides = new Map();
    this.beforeOpen = null;   // async (connection) => void: delays a login (e.g. to hold a reconnect)
    this.down = new Set();    // router URLs that refuse connections
    this.#ids = 0;
    this.autobahn = makeAutobahn(this);
  }

  #ids;

  override(uri, fn) {
    this.overrides.set(uri, fn);
  }

  callsOf(uri) {
    return this.calls.filter((c) => c[1] === uri);
  }

  get lastSession() {
    return this.sessions[this.sessions.length - 1];
  }

  /** A new event on `query`'s topic: logged for its persistent subscriptions, published to open sessions. */
  post(query, data = {}) {
    return this.postBatch(query, [data]);
  }

  /** Several events in one turn: one event each on the query's topic, one event carrying them all on its batched topic. */
  postBatch(query, datas) {
    const envelopes = datas.map((data) => ENVELOPE(++this.seq, data));
    const topic = topicOf(query);
    for (const envelope of envelopes) this.log.push({ topic, envelope });
    for (const session of this.sessions) {
      if (!session.isOpen) continue;
      for (const envelope of envelopes) session.deliver(topic, envelope);
      session.deliverArgs(batchTopicOf(query), envelopes);
    }
    return this.seq;
  }

  handle(uri, args, kwargs, session) {
    const original = () => this.#procedure(uri, args, kwargs);
    const override = this.overrides.get(uri);
    return override ? override(args, kwargs, session, original) : original();
  }

  #procedure(uri, args, kwargs) {
    switch (uri) {
      case 'gateway.subscribe': {
        const query = String(args[0]).trim();
        const batch = kwargs.batch === true ? { batch: true } : {};
        const topic = kwargs.batch === true ? batchTopicOf(query) : topicOf(query);
        if (!kwargs.persistent) return { id: `s_${++this.#ids}`, topic, query, persistent: false, ...batch };
        for (const sub of this.persistent.values()) {
          if (sub.query === query) return { id: sub.id, topic, query, persistent: true, last_seq: sub.lastSeq, resumed: true, ...batch };
        }
        const sub = { id: `p_${++this.#ids}`, query, topic: topicOf(query), lastSeq: this.seq };
        this.persistent.set(sub.id, sub);
        return { id: sub.id, topic, query, persistent: true, last_seq: sub.lastSeq, resumed: false, ...batch };
      }
      case 'gateway.unsubscribe': {
        const [id] = args;
        if (typeof id === 'string' && id.startsWith('s_')) return null;
        if (!this.persistent.delete(id)) throw wampError('gateway.error.no_such_subscription', `no subscription ${id}`);
        return null;
      }
      case 'gateway.replay': {
        const [id, after, limit = 500] = args;
        const sub = this.persistent.get(id);
        if (!sub) throw wampError('gateway.error.no_such_subscription', `no subscription ${id}`);
        const events = this.log.filter((e) => e.topic === sub.topic && e.envelope.seq > after).map((e) => e.envelope);
        const page = events.slice(0, limit);
        const more = events.length > limit;
        const nextAfter = more ? page[page.length - 1].seq : Math.max(after, this.seq);
        return { events: page, truncated: false, more, next_after: nextAfter, last_seq: sub.lastSeq };
      }
      case 'gateway.ack': {
        const [id, seq] = args;
        const sub = this.persistent.get(id);
        if (!sub) throw wampError('gateway.error.no_such_subscription', `no subscription ${id}`);
        sub.lastSeq = Math.max(sub.lastSeq, seq);
        return { id, last_seq: sub.lastSeq };
      }
      case 'gateway.subscriptions':
        return [...this.persistent.values()].map((s) => ({ id: s.id, query: s.query, topic: s.topic, last_seq: s.lastSeq }));
      case 'gateway.whoami':
        return { authid: 'anonymous-1' };
      default:
        throw wampError('wamp.error.no_such_procedure', `no callee registered for procedure <${uri}>`);
    }
  }
}

export const canceled = () => wampError('wamp.error.canceled', 'callee disconnected from in-flight request');
export const noSuchProcedure = (uri = 'gateway.replay') => wampError('wamp.error.no_such_procedure', `no callee registered for procedure <${uri}>`);

class FakeSession {
  constructor(server, id) {
    this.server = server;
    this.id = id;
    this.isOpen = true;
    this.subs = []; // {topic, handler}
  }

  call(uri, args = [], kwargs = {}) {
    if (!this.isOpen) return Promise.reject('session not open');
    this.server.calls.push([this.id, uri, args, kwargs]);
    return Promise.resolve().then(() => this.server.handle(uri, args, kwargs, this));
  }

  subscribe(topic, handler) {
    if (!this.isOpen) return Promise.reject('session not open');
    const sub = { topic, handler };
    this.subs.push(sub);
    return Promise.resolve(sub);
  }

  /** Like a router: events already on their way still arrive until UNSUBSCRIBED. */
  unsubscribe(sub) {
    return new Promise((resolve) => setTimeout(() => {
      this.subs = this.subs.filter((s) => s !== sub);
      resolve(true);
    }, 1));
  }

  /** WAMP subscriptions this session holds on a query's `topic` or its batched twin (one per subscribe() the client made). */
  on(topic) {
    const twin = topic.replace(/^gateway\.query\./, 'gateway.batch.query.');
    return this.subs.filter((s) => s.topic === topic || s.topic === twin).length;
  }

  deliver(topic, envelope) {
    this.deliverArgs(topic, [envelope]);
  }

  /** One WAMP event on `topic` with these positional arguments. */
  deliverArgs(topic, args) {
    for (const sub of this.subs.filter((s) => s.topic === topic)) sub.handler([...args], {}, {});
  }
}

function makeAutobahn(server) {
  const registered = new Map();
  let sessionIds = 0;
  class Connection {
    constructor(options) {
      this.options = options;
      this.session = null;
      this.closed = false;
      this.onopen = null;
      this.onclose = null;
      server.connections.push(this);
    }

    open() {
      setTimeout(async () => {
        if (server.down.has(this.options.url)) {
          this.closed = true;
          this.onclose?.('unreachable', { reason: null, message: 'connection refused' });
          return;
        }
        if (server.beforeOpen) await server.beforeOpen(this);
        if (this.closed) return;
        this.session = new FakeSession(server, ++sessionIds);
        server.sessions.push(this.session);
        this.onopen(this.session, {
          authid: 'anonymous-1', authrole: 'anonymous',
          authextra: { client_token: 'ct_fake', client_token_expires: '2030-01-01T00:00:00Z' },
        });
      }, 1);
    }

    close() {
      if (this.closed) throw 'connection already closed';
      this.closed = true;
      if (this.session) this.session.isOpen = false;
      setTimeout(() => this.onclose?.('closed', { reason: 'wamp.close.normal' }), 1);
    }

    /** The network goes away: the client is told at once, the session is gone. */
    drop() {
      this.closed = true;
      if (this.session) this.session.isOpen = false;
      this.onclose?.('lost', { reason: null, message: '' });
    }
  }
  return {
    Connection,
    transports: {
      isRegistered: (type) => registered.has(type),
      register: (type, factory) => registered.set(type, factory),
    },
  };
}

/** Resolves after `ms` (for the fake's own pacing only; tests wait for conditions with waitFor). */
export const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `condition` until truthy; fail with `what` after `timeout` ms. */
export async function waitFor(condition, what, timeout = 3000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await tick(2);
  }
}

/** A promise with its resolve function outside. */
export function gate() {
  let open;
  const promise = new Promise((resolve) => { open = resolve; });
  return { promise, open };
}

/** `promise`, or a failure naming `what` if it has not settled within `ms` (a test must not hang). */
export function settles(promise, what, ms = 5000) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Tests' reconnect timing: fast, so retries do not slow the suite. */
export const FAST = { initialDelay: 0.01, maxDelay: 0.02 };

/** A Gateway on `server`'s fake autobahn, its 'error' events collected, closed after the test. */
export function gateway(t, server, options = {}) {
  const gw = new Gateway({ url: 'ws://fake/ws', autobahn: server.autobahn, reconnect: FAST, ...options });
  const errors = [];
  gw.on('error', (err) => errors.push(err));
  t.after(() => gw.close());
  return { gw, errors };
}

/** The seqs acked so far (gateway.ack's second argument, in call order). */
export const acks = (server) => server.callsOf('gateway.ack').map((c) => c[2][1]);
