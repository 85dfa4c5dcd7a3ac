// The subscriptions engine: it makes every subscription of the application on
// every session, in the order they were made, and keeps their state.
//
// A plain subscription is gateway.subscribe plus its topic. A persistent one
// also replays what it missed and merges the replay with the live events that
// arrived meanwhile (merge.js), then is acked (acks.js). Each session runs this
// work in one queue, one subscription at a time; the session opens (state
// 'open'/'resumed') once the queue is through. A transient error is asked
// again on the same session (calls.js), then with the reconnect backoff; a
// refusal ends the subscription. Unsubscribing ends it on the gateway
// (ending.js). Events and notices reach the application through delivery.js.

import { Acks } from './acks.js';
import { backoffDelay } from './backoff.js';
import { Delivery } from './delivery.js';
import { Endings } from './ending.js';
import { ClientErrors, GatewayError, describe, fromWampError, isConnectionLost, isTransient } from './errors.js';
import { isEnvelope } from './merge.js';
import { envelopesOf, subscribeKwargs } from './unpack.js';
import { SubscriptionState } from './subscription.js';
import { ERROR_INVALID_ARGUMENT, ERROR_NO_SUCH_SUBSCRIPTION, META_SUBSCRIPTION_REMOVED, REPLAY, SUBSCRIBE, UNSUBSCRIBE }
  from './uris.js';

/** @typedef {import('./types.js').AutobahnSession} AutobahnSession */
/** @typedef {import('./subscription.js').Subscription} Subscription */
/** @typedef {{id: string, topic: string, query?: unknown, last_seq?: unknown, batch?: unknown}} Grant gateway.subscribe's answer */

/** Events per replay call (the gateway's default page; it allows up to 5,000). */
const REPLAY_PAGE = 500;

export class Restorer {
  #calls;
  #reconnect;
  #report;
  #delivery;
  #acks;
  #endings;
  /** @type {SubscriptionState[]} in the order they were made: restored in this order */
  #subs = [];
  /** @type {Promise<unknown>} (re)subscriptions on the current session, one at a time, in order */
  #queue = Promise.resolve();

  /**
   * @param {object} deps
   * @param {import('./calls.js').Calls} deps.calls
   * @param {import('./types.js').CursorStore} deps.cursorStore
   * @param {Readonly<import('./types.js').ReconnectPolicy>} deps.reconnect the backoff of restorations that keep failing
   * @param {number} deps.ackInterval
   * @param {(error: GatewayError) => void} deps.report
   */
  constructor({ calls, cursorStore, reconnect, ackInterval, report }) {
    this.#calls = calls;
    this.#reconnect = reconnect;
    this.#report = report;
    this.#delivery = new Delivery({ cursorStore, report, delivered: () => this.#acks.schedule() });
    this.#acks = new Acks({
      calls, interval: ackInterval, report,
      subscriptions: () => this.#subs,
      removed: (info, cause) => this.#removedByGateway(info, cause),
    });
    this.#endings = new Endings({ calls, report, held: (id) => this.#holders(id).length > 0 });
  }

  /** The application's active subscriptions, in the order they were made. */
  get active() {
    return this.#subs.filter((s) => s.active).map((s) => s.view);
  }

  /**
   * A new subscription: made now if there is a session, else on the next one.
   * @param {import('./types.js').SubscribeArgs} args
   * @returns {Promise<Subscription>} once subscribed (persistent: once the missed events were handed over)
   */
  subscribe(args) {
    const sub = new SubscriptionState(args, (s) => this.#unsubscribe(s));
    this.#subs.push(sub);
    const session = this.#calls.session;
    if (session !== null) this.#enqueueSubscription(sub, session);
    return sub.ready.then(() => sub.view);
  }

  /**
   * A session joined: queue the watch for removals, the ends owed, and every subscription.
   * Resolves once the queue is through (each restored, or reported).
   * @param {AutobahnSession} session
   */
  restore(session) {
    this.#queue = Promise.resolve();
    this.#enqueue(session, () => this.#watchRemovals(session));
    for (const work of this.#endings.owed(session)) this.#enqueue(session, work);
    for (const sub of this.#subs) {
      if (sub.active) this.#enqueueSubscription(sub, session);
    }
    return this.#queue;
  }

  /** The session opened: ack what an earlier session handed over and did not ack. */
  opened() {
    if (this.#subs.some((s) => s.unacked)) this.#acks.schedule();
  }

  /** The session went away: the next one subscribes everything again. */
  lost() {
    for (const sub of this.#subs) sub.sessionLost();
    this.#acks.stop();
  }

  /** Ack now what was handed over (close()). */
  flushAcks() {
    return this.#acks.flush();
  }

  /** No more acks (closing). */
  stopAcks() {
    this.#acks.stop();
  }

  /** Closed for good: every subscribe() still waiting rejects with `error`. */
  fail(/** @type {Error} */ error) {
    for (const sub of this.#subs) if (!sub.established) sub.refuse(error);
  }

  // -- the queue -------------------------------------------------------------------

  /** @param {AutobahnSession} session @param {() => unknown} work */
  #enqueue(session, work) {
    const run = this.#queue.then(() => (session === this.#calls.session ? work() : undefined));
    this.#queue = run.catch(() => {});
    return this.#queue;
  }

  /** @param {SubscriptionState} sub @param {AutobahnSession} session */
  #enqueueSubscription(sub, session) {
    if (!sub.queueOn(session)) return this.#queue;
    return this.#enqueue(session, () => this.#establish(sub, session));
  }

  // -- making one subscription on a session -------------------------------------------

  /**
   * Subscribe `sub` on `session`: gateway.subscribe, the topic, and for a persistent one the
   * replay, merged with the live events held meanwhile. Once the topic is subscribed, live
   * events are held until the replay is merged in, however many times a page is asked again;
   * the topic is never left subscribed with nothing holding its events back.
   * @param {SubscriptionState} sub @param {AutobahnSession} session
   */
  async #establish(sub, session) {
    const calls = this.#calls;
    if (!sub.active || calls.gone(session)) return;
    try {
      const granted = await this.#grant(sub, session);
      if (granted === null) return;
      sub.granted(granted);
      // A persistent one holds live events from here until the replay is merged in.
      const from = sub.persistent ? sub.startReplay(() => this.#delivery.cursor(granted.id)) : 0;
      const route = { open: true }; // closed when this topic subscription is let go: no stray event gets through
      const ab = await calls.withRetries(session, () => calls.track(session,
        () => session.subscribe(granted.topic, (args) => { if (route.open) this.#onEvent(sub, session, args); })));
      if (session !== calls.session) return; // lost: lost() reset it; the next session subscribes again
      sub.attach(session, ab, route);
      if (!sub.active) {
        calls.track(session, () => session.unsubscribe(ab)).catch(() => {});
        return;
      }
      if (sub.persistent) await this.#replay(sub, session, from);
      if (!sub.active || calls.gone(session)) return;
      sub.markEstablished();
    } catch (raw) {
      const err = fromWampError(raw, { query: sub.text });
      if (!sub.active || calls.gone(session) || isConnectionLost(err)) return; // the next session tries again
      if (isTransient(err)) {
        this.#notRestored(sub, session, err);
        return;
      }
      this.#drop(sub);
      if (!sub.established) {
        sub.refuse(err);
      } else {
        this.#delivery.removed(sub, { reason: err.message }, err);
      }
    }
  }

  /**
   * gateway.subscribe for `sub`: its answer, or null if `sub` was unsubscribed meanwhile (then undone).
   * @param {SubscriptionState} sub @param {AutobahnSession} session
   * @returns {Promise<Grant | null>}
   */
  async #grant(sub, session) {
    sub.grantSent();
    let granted;
    const ask = (/** @type {Record<string, unknown>} */ kwargs) =>
      this.#calls.withRetries(session, () => this.#calls.callOn(session, SUBSCRIBE, [sub.text], kwargs));
    try {
      try {
        granted = await ask(subscribeKwargs(sub));
      } catch (raw) {
        // A gateway from before batched delivery refuses the argument by name: ask it unbatched.
        if (!sub.batch || !refusesBatch(raw)) throw raw;
        granted = await ask({ persistent: sub.persistent });
      }
    } catch (raw) {
      const err = fromWampError(raw, { query: sub.text });
      sub.grantFailed(isConnectionLost(err) || isTransient(err)); // else refused: nothing was made
      // Unsubscribed while the call was in flight, and whether the gateway made it is unknown:
      // find it by its query on the next session and end it.
      if (!sub.active && sub.persistent && sub.grantCutOff) this.#endings.endQuery(sub.text);
      throw raw;
    }
    sub.grantAnswered();
    if (!isGrant(granted)) {
      throw new GatewayError(`${SUBSCRIBE} answered ${describe(granted)}, not {id, topic, query}`, { query: sub.text });
    }
    if (!sub.active) { // unsubscribed while the gateway answered: undo it there
      if (!sub.persistent) {
        this.#calls.callOn(session, UNSUBSCRIBE, [granted.id]).catch(() => {}); // ends with the session anyway
      } else if (!this.#holders(granted.id).length) {
        this.#endings.end(session, granted.id).then((refused) => { if (refused) this.#report(refused); });
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
   * @param {SubscriptionState} sub @param {AutobahnSession} session @param {GatewayError} err
   */
  #notRestored(sub, session, err) {
    const { ab } = sub.detach();
    if (ab) this.#calls.track(session, () => session.unsubscribe(ab)).catch(() => {});
    if (!sub.established) {
      this.#drop(sub, { keepCursor: true }); // it still exists on the gateway: a subscribe() again resumes it
      sub.refuse(err);
      return;
    }
    const round = sub.failedRound();
    const delay = backoffDelay(this.#reconnect, round);
    if (round === 1) {
      this.#report(new GatewayError(`the subscription ${sub.query} could not be restored (${err.message}); it receives `
        + 'nothing until it is: trying again with backoff, on this connection and on every new one',
      { uri: err.uri ?? undefined, cause: err, query: sub.query, details: { subscription: sub.id } }));
    }
    this.#calls.pause(delay * 1000).then(() => {
      if (!sub.active || this.#calls.gone(session) || sub.session === session) return;
      sub.unqueue();
      this.#enqueueSubscription(sub, session);
    });
  }

  /**
   * The missed events, page by page, merged with the live ones held meanwhile.
   * @param {SubscriptionState} sub @param {AutobahnSession} session @param {number} from
   */
  async #replay(sub, session, from) {
    const id = /** @type {string} */ (sub.id);
    let after = from;
    let gapTold = false;
    for (;;) {
      // A page cut off by a transient error is asked again from the same seq; live events stay held.
      const page = /** @type {ReplayPage | null} */ (await this.#calls.withRetries(session,
        () => this.#calls.callOn(session, REPLAY, [id, after, REPLAY_PAGE])));
      if (!sub.active || this.#calls.gone(session)) return;
      if (page?.truncated === true && !gapTold) {
        gapTold = true;
        this.#delivery.gap(sub, from);
      }
      const events = Array.isArray(page?.events) ? page.events.filter(isEnvelope) : [];
      const lastInPage = events.length ? events[events.length - 1].seq : after;
      const through = Number.isSafeInteger(page?.next_after) ? Math.max(/** @type {number} */ (page?.next_after), lastInPage) : lastInPage;
      for (const envelope of sub.page(events, through)) this.#delivery.event(sub, envelope);
      if (page?.more !== true) break;
      if (!(through > after)) {
        throw new GatewayError(`${REPLAY} said more but did not move past seq ${after}`, { uri: REPLAY });
      }
      after = through;
    }
    for (const envelope of sub.finishReplay()) this.#delivery.event(sub, envelope);
  }

  /**
   * A live event on the topic: one envelope, or on a batched topic one or more (unpack.js), each
   * taken as a single event would be (dedupe by seq, gaps, acks), in order.
   * @param {SubscriptionState} sub @param {AutobahnSession} session @param {unknown} args
   */
  #onEvent(sub, session, args) {
    if (!sub.active || session !== this.#calls.session) return;
    for (const envelope of envelopesOf(args, sub.batched)) {
      if (!sub.active || this.#calls.gone(session)) return; // a handler unsubscribed or closed meanwhile
      if (!isEnvelope(envelope)) {
        this.#report(new GatewayError(`subscription ${sub.id} received something that is not an event envelope: ${describe(envelope)}`,
          { uri: ClientErrors.BAD_EVENT }));
        continue;
      }
      for (const out of sub.live(envelope)) this.#delivery.event(sub, out);
    }
  }

  // -- removals and unsubscribing ----------------------------------------------------

  /** @param {AutobahnSession} session */
  async #watchRemovals(session) {
    try {
      await this.#calls.track(session, () => session.subscribe(META_SUBSCRIPTION_REMOVED, (args) => {
        const info = Array.isArray(args) ? args[0] : null;
        if (info && typeof info.id === 'string') this.#removedByGateway(info, null);
      }));
    } catch (raw) {
      const err = fromWampError(raw);
      if (!isConnectionLost(err)) this.#report(err);
    }
  }

  /**
   * The gateway ended the subscription `info.id`: every local holder of it stops and is told.
   * @param {{id: string, topic?: string, query?: string, reason?: string}} info @param {unknown} cause
   */
  #removedByGateway(info, cause) {
    for (const sub of this.#subs.filter((s) => s.active && s.id === info.id)) {
      this.#drop(sub);
      this.#delivery.removed(sub, info, cause);
    }
  }

  /** The application's active persistent subscriptions on the gateway subscription `id`. */
  #holders(/** @type {string} */ id) {
    return this.#subs.filter((s) => s.active && s.persistent && s.id === id);
  }

  /**
   * Stop delivering on `sub` and forget it locally (the gateway's side is dealt with by the caller);
   * its stored cursor too, unless another holder or `keepCursor` needs it.
   * @param {SubscriptionState} sub
   */
  #drop(sub, { keepCursor = false } = {}) {
    const { session, ab } = sub.end();
    this.#subs = this.#subs.filter((s) => s !== sub);
    if (ab && session && session === this.#calls.session) this.#calls.track(session, () => session.unsubscribe(ab)).catch(() => {});
    if (sub.persistent && sub.id && !keepCursor && !this.#holders(sub.id).length) this.#delivery.forget(sub.id);
  }

  /** Subscription.unsubscribe(). @param {SubscriptionState} sub */
  async #unsubscribe(sub) {
    if (!sub.active) return;
    const session = this.#calls.session;
    const id = sub.id;
    this.#drop(sub);
    if (!sub.established) sub.refuse(new GatewayError('unsubscribed before it was subscribed', { uri: ClientErrors.CLOSED }));
    if (!sub.persistent) { // a plain subscription ends with its session anyway: this frees it now
      if (id === null || session === null) return;
      try {
        await this.#calls.callOn(session, UNSUBSCRIBE, [id]);
      } catch (raw) {
        const err = fromWampError(raw);
        if (!isConnectionLost(err) && !isTransient(err) && err.uri !== ERROR_NO_SUCH_SUBSCRIPTION) throw err;
      }
      return;
    }
    if (id === null) {
      // Never granted, or its gateway.subscribe is in flight (#grant undoes it when the answer
      // comes), or was cut off by a lost connection: then it is looked up on the next session.
      if (sub.grantCutOff) this.#endings.endQuery(sub.text);
      return;
    }
    if (this.#holders(id).length) return; // another subscription of this Gateway has the same query: it goes on
    const refused = await this.#endings.end(session, id);
    if (refused) throw refused;
  }
}

/**
 * @typedef {object} ReplayPage gateway.replay's answer
 * @property {unknown[]} [events]
 * @property {boolean} [truncated]
 * @property {boolean} [more]
 * @property {number} [next_after]
 */

/** @returns {value is Grant} */
function isGrant(/** @type {unknown} */ value) {
  const granted = /** @type {{id?: unknown, topic?: unknown} | null} */ (value);
  return Boolean(granted) && typeof granted?.id === 'string' && typeof granted?.topic === 'string';
}

/**
 * Whether a gateway.subscribe failure is an older gateway refusing the `batch` argument by name.
 * @param {unknown} raw
 */
function refusesBatch(raw) {
  const err = fromWampError(raw);
  return err.uri === ERROR_INVALID_ARGUMENT && /** @type {Record<string, unknown>} */ (err.details ?? {}).argument === 'batch';
}
