// One subscription of the application, as the client keeps it across sessions.
//
// Two objects: the `Subscription` the application holds (read-only: id, topic,
// query, lastSeq, active; unsubscribe()), and the `SubscriptionState` behind
// it. The state changes only through its own methods, which the restore engine
// (restore.js) calls as the protocol goes: the grant (gateway.subscribe), the
// topic subscription on the current session, the merger of replay and live
// events, the cursor the gateway holds, and the promise subscribe() returned.

import { SeqMerger } from './merge.js';

/** @typedef {import('./types.js').AutobahnSession} AutobahnSession */
/** @typedef {import('./types.js').Envelope} Envelope */
/** @typedef {{open: boolean}} Route its topic handler passes events on while open */

export class Subscription {
  #state;
  #unsubscribe;

  /**
   * Made by the client (subscribe()), never by the application.
   * @param {SubscriptionState} state
   * @param {(state: SubscriptionState) => Promise<void>} unsubscribe
   */
  constructor(state, unsubscribe) {
    this.#state = state;
    this.#unsubscribe = unsubscribe;
  }

  /** The id the gateway gave it (persistent ones keep theirs across sessions); null until subscribed. */
  get id() {
    return this.#state.id;
  }

  /** The WAMP topic its events arrive on; null until subscribed. */
  get topic() {
    return this.#state.topic;
  }

  /** The query: as given until the gateway answers, then its canonical form. */
  get query() {
    return this.#state.query;
  }

  get persistent() {
    return this.#state.persistent;
  }

  /** The seq up to which events were handed to the handler (after a resume: the cursor it resumed from); null if none. */
  get lastSeq() {
    return this.#state.lastSeq;
  }

  /** False once unsubscribed or ended by the gateway. */
  get active() {
    return this.#state.active;
  }

  /** Stop delivering; a persistent subscription is also ended on the gateway, for good. */
  unsubscribe() {
    return this.#unsubscribe(this.#state);
  }
}

/**
 * Where a gateway.subscribe stands: none in flight (never sent, answered or refused),
 * in flight, or cut off (sent, and whether the gateway made it is unknown).
 * @typedef {'none' | 'in-flight' | 'cut-off'} Grant
 */

export class SubscriptionState {
  /** @type {string | null} */
  #id = null;
  /** @type {string | null} */
  #topic = null;
  #query;
  #merger = new SeqMerger(0);
  #acked = 0;              // the cursor the gateway holds (persistent)
  #active = true;          // false once unsubscribed or removed: nothing is delivered any more
  /** @type {AutobahnSession | null} the session it is subscribed on */
  #session = null;
  /** @type {unknown} the autobahn Subscription on that session */
  #ab = null;
  /** @type {Route} */
  #route = { open: false };
  /** @type {AutobahnSession | null} the session whose queue holds its (re)subscription */
  #queuedFor = null;
  #established = false;    // subscribe() resolved
  /** @type {string | null} persistent: the gateway id its merger's position belongs to */
  #resumeId = null;
  /** @type {Grant} */
  #grant = 'none';
  #rounds = 0;             // failed restorations in a row (transient errors): the backoff step
  #batched = false;        // the gateway answered its batched topic: every positional argument is an envelope
  /** @type {Promise<void>} */
  #ready;
  /** @type {() => void} */
  #resolveReady = () => {};
  /** @type {(error: Error) => void} */
  #rejectReady = () => {};

  /**
   * @param {import('./types.js').SubscribeArgs} args
   * @param {(state: SubscriptionState) => Promise<void>} unsubscribe the engine's side of Subscription.unsubscribe()
   */
  constructor(args, unsubscribe) {
    /** @readonly what is sent to gateway.subscribe on every session (the application's text) */
    this.text = args.query;
    /** @readonly */
    this.persistent = args.persistent;
    /** @readonly asked for the query's batched topic (gateway.subscribe's batch) */
    this.batch = args.batch;
    /** @readonly */
    this.handler = args.handler;
    /** @readonly */
    this.onGap = args.onGap;
    /** @readonly */
    this.onRemoved = args.onRemoved;
    this.#query = args.query;
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(() => {}); // subscribe() hands this promise out; nobody else must see it unhandled
    /** @readonly what the application holds */
    this.view = new Subscription(this, unsubscribe);
  }

  get id() { return this.#id; }
  get topic() { return this.#topic; }
  get query() { return this.#query; }
  get active() { return this.#active; }
  get established() { return this.#established; }
  get session() { return this.#session; }
  /** Whether its topic is batched (each event's positional arguments are envelopes), as the gateway answered. */
  get batched() { return this.#batched; }
  /** Resolves once subscribed (persistent: once the missed events were handed over). */
  get ready() { return this.#ready; }

  get lastSeq() {
    const seq = this.#merger.lastSeq;
    return seq > 0 ? seq : null;
  }

  /** Persistent, active, and handed over something the gateway's cursor is not at yet. */
  get unacked() {
    return this.persistent && this.#active && this.#merger.lastSeq > this.#acked;
  }

  /** What to ack on `session` now ({id, seq}), or null. */
  toAck(/** @type {AutobahnSession} */ session) {
    if (!this.unacked || this.#session !== session || this.#id === null) return null;
    return { id: this.#id, seq: this.#merger.lastSeq };
  }

  /** The gateway acknowledged `seq` (the cursor only moves forward). */
  acked(/** @type {number} */ seq) {
    this.#acked = Math.max(this.#acked, seq);
  }

  // -- the session's queue ---------------------------------------------------------

  /** Mark it queued on `session`; false if it is already. */
  queueOn(/** @type {AutobahnSession} */ session) {
    if (this.#queuedFor === session) return false;
    this.#queuedFor = session;
    return true;
  }

  /** Its queued attempt ended without subscribing it: it may be queued on the same session again. */
  unqueue() {
    this.#queuedFor = null;
  }

  // -- gateway.subscribe -------------------------------------------------------------

  grantSent() {
    this.#grant = 'in-flight';
  }

  grantAnswered() {
    this.#grant = 'none';
  }

  /** The call failed: refused (nothing was made), or `cutOff` (lost or transient: unknown). */
  grantFailed(/** @type {boolean} */ cutOff) {
    this.#grant = cutOff ? 'cut-off' : 'none';
  }

  /** A gateway.subscribe for it was sent and its answer never came: the gateway may have made it. */
  get grantCutOff() {
    return this.#grant === 'cut-off';
  }

  /**
   * The gateway's answer, checked: its id, topic and canonical query; for a persistent
   * one, the cursor the gateway holds.
   * @param {{id: string, topic: string, query?: unknown, last_seq?: unknown, batch?: unknown}} granted
   */
  granted(granted) {
    this.#id = granted.id;
    this.#topic = granted.topic;
    this.#batched = granted.batch === true;
    if (typeof granted.query === 'string') this.#query = granted.query;
    if (this.persistent) this.#acked = Number.isSafeInteger(granted.last_seq) ? /** @type {number} */ (granted.last_seq) : 0;
  }

  /**
   * A persistent replay starts: hold live events from now on. Returns the seq it replays after.
   * Where it stands is its own merger's position once it has one: the gateway's cursor and the
   * cursor store may have been moved by another holder of the same subscription (another tab,
   * another Gateway on the same stores) past events this one never handed over. The first time
   * (or under a new id), they are where to start.
   * @param {() => number} storedCursor reads the cursor store
   */
  startReplay(storedCursor) {
    const from = this.#resumeId === this.#id ? this.#merger.lastSeq
      : Math.max(this.#acked, storedCursor(), this.#merger.lastSeq);
    this.#resumeId = this.#id;
    this.#merger.startReplay(from);
    return from;
  }

  // -- the topic subscription and the events ---------------------------------------

  /** Subscribed to its topic on `session` (`ab`: autobahn's Subscription; `route`: its handler's gate). */
  attach(/** @type {AutobahnSession} */ session, /** @type {unknown} */ ab, /** @type {Route} */ route) {
    this.#session = session;
    this.#ab = ab;
    this.#route = route;
  }

  /**
   * Let go of the topic: no event gets through any more, a replay in progress is dropped.
   * Returns the session and autobahn Subscription it had, for the caller to unsubscribe.
   */
  detach() {
    const held = { session: this.#session, ab: this.#ab };
    this.#route.open = false;
    this.#session = null;
    this.#ab = null;
    this.#merger.abort();
    return held;
  }

  /** Unsubscribed or removed: nothing is delivered any more. Returns what detach() does. */
  end() {
    this.#active = false;
    return this.detach();
  }

  /** The session went away: the next one subscribes it again. */
  sessionLost() {
    this.#session = null;
    this.#ab = null;
    this.#queuedFor = null;
    this.#merger.abort();
  }

  /** A live event: the events to hand over now (merge.js). */
  live(/** @type {Envelope} */ envelope) {
    return this.#merger.live(envelope);
  }

  /** A replay page: the events to hand over now. */
  page(/** @type {Envelope[]} */ events, /** @type {number} */ scannedThrough) {
    return this.#merger.page(events, scannedThrough);
  }

  /** The replay is complete: the held live events to hand over; live delivery resumes. */
  finishReplay() {
    return this.#merger.finish();
  }

  // -- subscribe()'s promise -----------------------------------------------------------

  /** Subscribed (and, persistent, caught up): subscribe() resolves; a later restoration starts afresh. */
  markEstablished() {
    this.#established = true;
    this.#rounds = 0;
    this.#resolveReady();
  }

  /** subscribe() rejects with `error` (nothing happens once it resolved). */
  refuse(/** @type {Error} */ error) {
    this.#rejectReady(error);
  }

  /** Another restoration failed with a transient error: the backoff step (1 for the first). */
  failedRound() {
    this.#rounds += 1;
    return this.#rounds;
  }
}
