// Handing events and notices to the application: the handler, onGap, onRemoved,
// and the cursor store that remembers what was handed over. No WAMP here.

import { ClientErrors, GatewayError, errorText } from './errors.js';

/** @typedef {import('./subscription.js').SubscriptionState} SubscriptionState */
/** @typedef {import('./types.js').Envelope} Envelope */

export class Delivery {
  #cursorStore;
  #report;
  #delivered;

  /**
   * @param {object} deps
   * @param {import('./types.js').CursorStore} deps.cursorStore
   * @param {(error: GatewayError) => void} deps.report
   * @param {() => void} deps.delivered called when a persistent subscription handed something over (an ack is due)
   */
  constructor({ cursorStore, report, delivered }) {
    this.#cursorStore = cursorStore;
    this.#report = report;
    this.#delivered = delivered;
  }

  /** The last seq the cursor store says was handed over on `id` (0: none, or the store failed). */
  cursor(/** @type {string} */ id) {
    try {
      const seq = this.#cursorStore.get(id);
      return Number.isSafeInteger(seq) && /** @type {number} */ (seq) >= 0 ? /** @type {number} */ (seq) : 0;
    } catch (err) {
      this.#report(new GatewayError(`reading the cursor of ${id} failed: ${errorText(err)}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      return 0;
    }
  }

  /** Forget the cursor of a subscription that ended. */
  forget(/** @type {string} */ id) {
    try { this.#cursorStore.delete?.(id); } catch { /* only a cleanup */ }
  }

  /**
   * Hand `envelope` to the handler. A persistent subscription's cursor is stored first: it counts
   * as handed over when its handler was called (a promise the handler returns is not awaited).
   * @param {SubscriptionState} sub @param {Envelope} envelope
   */
  event(sub, envelope) {
    if (!sub.active) return;
    if (sub.persistent) {
      try {
        this.#cursorStore.set(/** @type {string} */ (sub.id), envelope.seq);
      } catch (err) {
        this.#report(new GatewayError(`storing the cursor of ${sub.id} failed: ${errorText(err)}`, { uri: ClientErrors.STORE_FAILED, cause: err }));
      }
      this.#delivered();
    }
    const failed = (/** @type {unknown} */ err) => this.#report(new GatewayError(
      `the handler of ${sub.query} threw on seq ${envelope.seq}: ${errorText(err)}`,
      { uri: ClientErrors.HANDLER_ERROR, cause: err, details: { subscription: sub.id, seq: envelope.seq } }));
    try {
      const result = sub.handler(envelope, sub.view);
      if (result && typeof result.then === 'function') result.then(undefined, failed);
    } catch (err) {
      failed(err);
    }
  }

  /** Retention dropped events after `afterSeq` before they could be replayed: onGap, else 'error'. */
  gap(/** @type {SubscriptionState} */ sub, /** @type {number} */ afterSeq) {
    if (sub.onGap) {
      try {
        sub.onGap({ subscription: sub.view, afterSeq });
      } catch (err) {
        this.#report(new GatewayError(`onGap of ${sub.query} threw: ${errorText(err)}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
      return;
    }
    this.#report(new GatewayError(`events of the persistent subscription ${sub.id} (${sub.query}) after seq ${afterSeq} `
      + 'were dropped by retention before they could be replayed; pass onGap to handle this',
    { uri: ClientErrors.GAP, details: { subscription: sub.id, afterSeq } }));
  }

  /**
   * The gateway ended the subscription: onRemoved, else 'error'.
   * @param {SubscriptionState} sub
   * @param {{id?: string, topic?: string, query?: string, reason?: string}} info what the gateway said
   * @param {unknown} cause
   */
  removed(sub, info, cause) {
    const notice = {
      id: info.id ?? /** @type {string} */ (sub.id),
      // The topic it was delivered on (the gateway names the query's unbatched one; this one may be its batched twin).
      topic: sub.topic ?? /** @type {string} */ (info.topic),
      query: info.query ?? sub.query,
      reason: info.reason ?? 'ended by the gateway',
    };
    if (sub.onRemoved) {
      try {
        sub.onRemoved(notice);
      } catch (err) {
        this.#report(new GatewayError(`onRemoved of ${sub.query} threw: ${errorText(err)}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
      return;
    }
    this.#report(new GatewayError(`the gateway ended the subscription ${notice.id} (${notice.query}): ${notice.reason}`,
      { uri: ClientErrors.SUBSCRIPTION_REMOVED, cause: cause ?? undefined, details: notice }));
  }
}
