// Ending persistent subscriptions on the gateway (gateway.unsubscribe) when the
// application unsubscribed them, including the ends a lost connection cut off:
// those are owed, and carried out on the next session.

import { fromWampError, isConnectionLost, isTransient } from './errors.js';
import { ERROR_NO_SUCH_SUBSCRIPTION, SUBSCRIBE, UNSUBSCRIBE } from './uris.js';

/** @typedef {import('./types.js').AutobahnSession} AutobahnSession */
/** @typedef {import('./errors.js').GatewayError} GatewayError */

export class Endings {
  #calls;
  #held;
  #report;
  /** @type {Set<string>} ids unsubscribed whose end the gateway has not confirmed yet */
  #ids = new Set();
  /** @type {Set<string>} queries unsubscribed while their gateway.subscribe was cut off */
  #queries = new Set();

  /**
   * @param {object} deps
   * @param {import('./calls.js').Calls} deps.calls
   * @param {(id: string) => boolean} deps.held whether the application holds `id` again (then it is not ended)
   * @param {(error: GatewayError) => void} deps.report
   */
  constructor({ calls, held, report }) {
    this.#calls = calls;
    this.#held = held;
    this.#report = report;
  }

  /** The ends a new session owes, as work for its queue, in order: by id, then by query. */
  owed(/** @type {AutobahnSession} */ session) {
    return [
      ...[...this.#ids].map((id) => async () => {
        const refused = await this.#endOnGateway(session, id);
        if (refused) this.#report(refused);
      }),
      ...[...this.#queries].map((text) => () => this.#endByQuery(session, text)),
    ];
  }

  /**
   * End `id` on the gateway: now on `session`, or on the next one (session null, or the
   * connection went). Returns the gateway's refusal, if any.
   * @param {AutobahnSession | null} session @param {string} id
   */
  async end(session, id) {
    this.#ids.add(id);
    if (session === null) return null;
    return this.#endOnGateway(session, id);
  }

  /**
   * A persistent query the application unsubscribed while its gateway.subscribe was cut off:
   * ended on the next session.
   */
  endQuery(/** @type {string} */ text) {
    this.#queries.add(text);
  }

  /**
   * gateway.unsubscribe(id) for an owed id, unless the application holds it again. Leaves it
   * owed if the connection went (the next session ends it); returns the gateway's refusal
   * other than no_such_subscription (ended already), else null.
   * @param {AutobahnSession} session @param {string} id
   * @returns {Promise<GatewayError | null>}
   */
  async #endOnGateway(session, id) {
    if (this.#held(id)) {
      this.#ids.delete(id);
      return null;
    }
    try {
      await this.#calls.withRetries(session, () => this.#calls.callOn(session, UNSUBSCRIBE, [id]));
    } catch (raw) {
      const err = fromWampError(raw);
      if (isConnectionLost(err) || isTransient(err) || session !== this.#calls.session) return null;
      this.#ids.delete(id);
      return err.uri === ERROR_NO_SUCH_SUBSCRIPTION ? null : err;
    }
    this.#ids.delete(id);
    return null;
  }

  /**
   * The gateway may or may not have made the subscription of `text`. Subscribing again gives its
   * id (the same query resumes the same subscription; if there was none, a new one that is ended
   * at once), then it is ended.
   * @param {AutobahnSession} session @param {string} text
   */
  async #endByQuery(session, text) {
    let granted;
    try {
      granted = /** @type {{id?: unknown} | null} */ (await this.#calls.withRetries(session,
        () => this.#calls.callOn(session, SUBSCRIBE, [text], { persistent: true })));
    } catch (raw) {
      const err = fromWampError(raw, { query: text });
      if (!isConnectionLost(err) && !isTransient(err) && session === this.#calls.session) this.#queries.delete(text); // refused: nothing to end
      return;
    }
    this.#queries.delete(text);
    if (!granted || typeof granted.id !== 'string' || this.#held(granted.id)) return;
    this.#ids.add(granted.id);
    const refused = await this.#endOnGateway(session, granted.id);
    if (refused) this.#report(refused);
  }
}
