// Acking persistent subscriptions: gateway.ack(id, seq) every ackInterval ms for
// those that handed something over since their last ack, and on close().

import { fromWampError, isConnectionLost, isTransient } from './errors.js';
import { ACK, ERROR_NO_SUCH_SUBSCRIPTION } from './uris.js';

/** @typedef {import('./subscription.js').SubscriptionState} SubscriptionState */

export class Acks {
  #calls;
  #interval;
  #subscriptions;
  #report;
  #removed;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #timer = null;

  /**
   * @param {object} deps
   * @param {import('./calls.js').Calls} deps.calls
   * @param {number} deps.interval ms between acks
   * @param {() => Iterable<SubscriptionState>} deps.subscriptions the active ones
   * @param {(error: import('./errors.js').GatewayError) => void} deps.report
   * @param {(info: {id: string, reason: string}, cause: unknown) => void} deps.removed the gateway no longer has one
   */
  constructor({ calls, interval, subscriptions, report, removed }) {
    this.#calls = calls;
    this.#interval = interval;
    this.#subscriptions = subscriptions;
    this.#report = report;
    this.#removed = removed;
  }

  /** An ack in `interval` ms, unless one is scheduled already (or there is no session). */
  schedule() {
    if (this.#timer !== null || this.#calls.closing || this.#calls.session === null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush();
    }, this.#interval);
  }

  stop() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** gateway.ack for every persistent subscription that delivered something since its last ack. */
  async flush() {
    const session = this.#calls.session;
    if (session === null) return;
    const due = [...this.#subscriptions()].flatMap((sub) => {
      const ack = sub.toAck(session);
      return ack === null ? [] : [{ sub, ...ack }];
    });
    let again = false;
    await Promise.all(due.map(async ({ sub, id, seq }) => {
      try {
        await this.#calls.callOn(session, ACK, [id, seq]);
        sub.acked(seq);
      } catch (raw) {
        const err = fromWampError(raw);
        if (isConnectionLost(err) || session !== this.#calls.session) return; // the next session acks
        if (isTransient(err)) {
          again = true;
        } else if (err.uri === ERROR_NO_SUCH_SUBSCRIPTION) {
          // Ended on the gateway and the notice did not reach this client (or it was another
          // holder's unsubscribe): it is a removal, not something to ack again forever.
          this.#removed({ id, reason: `the gateway no longer has this subscription (${ACK} answered: ${err.message})` }, err);
        } else {
          this.#report(err);
        }
      }
    }));
    if (again) this.schedule();
  }
}
