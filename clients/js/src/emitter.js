// The Gateway's events: listeners by name, and the one place errors are reported.

import { ClientErrors, GatewayError, describe, errorText, invalidArgument } from './errors.js';

/** @typedef {'state' | 'connecting' | 'open' | 'lost' | 'resumed' | 'closed' | 'error'} EventName */

export const EVENTS = Object.freeze(/** @type {EventName[]} */ (['state', 'connecting', 'open', 'lost', 'resumed', 'closed', 'error']));
/** @typedef {(...args: any[]) => void} Listener */

export class Emitter {
  /** @type {Map<string, Set<Listener>>} */
  #listeners = new Map();

  /** @param {unknown} name @param {unknown} fn */
  on(name, fn) {
    if (!EVENTS.includes(/** @type {EventName} */ (name))) {
      throw invalidArgument(`on(${describe(name)})`, `unknown event (known: ${EVENTS.join(', ')})`);
    }
    if (typeof fn !== 'function') throw invalidArgument(`on('${name}', fn)`, `fn must be a function, not ${describe(fn)}`);
    let set = this.#listeners.get(/** @type {string} */ (name));
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(/** @type {string} */ (name), set);
    }
    set.add(/** @type {Listener} */ (fn));
  }

  /** @param {unknown} name @param {unknown} fn */
  off(name, fn) {
    this.#listeners.get(/** @type {string} */ (name))?.delete(/** @type {Listener} */ (fn));
  }

  /** Call the listeners of `name`; one that throws is reported, the others still run. */
  emit(/** @type {EventName} */ name, /** @type {unknown[]} */ ...args) {
    for (const fn of [...(this.#listeners.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        if (name === 'error') console.error('events-gateway-client: an error listener threw', err);
        else this.report(new GatewayError(`a '${name}' listener threw: ${errorText(err)}`, { uri: ClientErrors.HANDLER_ERROR, cause: err }));
      }
    }
  }

  /** Tell the application; never swallowed: without an 'error' listener it goes to the console. */
  report(/** @type {GatewayError} */ err) {
    if (this.#listeners.get('error')?.size) this.emit('error', err);
    else console.warn('events-gateway-client:', err);
  }
}

