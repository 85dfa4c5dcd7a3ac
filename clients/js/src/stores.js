// Where the client keeps its token and its delivery cursors.
//
// Token stores: {get() -> {token, expires} | null, set(token, expiresIso), clear()}.
// Cursor stores: {get(subscriptionId) -> seq | null, set(subscriptionId, seq), delete?(subscriptionId)}.
// Any object with these methods will do (e.g. one backed by a file or a database
// in Node); these are the ones the library ships.

import { buildCookie, checkCookieName, expiredCookie, readCookie, TOKEN_COOKIE } from './cookies.js';
import { describe, invalidArgument } from './errors.js';

/** @typedef {import('./types.js').StoredToken} StoredToken */

/**
 * The token to present in HELLO: the stored one unless it is missing, malformed or has expired.
 * @param {unknown} stored what the token store's get() returned
 * @returns {string | null}
 */
export function tokenToPresent(stored, nowMs = Date.now()) {
  const entry = /** @type {{token?: unknown, expires?: unknown} | null} */ (stored);
  if (!entry || typeof entry !== 'object' || typeof entry.token !== 'string' || entry.token === '') return null;
  if (entry.expires !== null && entry.expires !== undefined) {
    const at = Date.parse(/** @type {string} */ (entry.expires));
    if (!Number.isNaN(at) && at <= nowMs) return null;
  }
  return entry.token;
}

/** Keeps the token in memory: the default in Node. Share one instance between Gateways to share a token. */
export class MemoryTokenStore {
  /** @type {StoredToken | null} */
  #entry = null;

  /** @param {{token: string, expires?: string | null} | null} [initial] */
  constructor(initial = null) {
    if (initial !== null) this.set(initial.token, initial.expires ?? null);
  }

  /** @returns {StoredToken | null} */
  get() {
    return this.#entry === null ? null : { ...this.#entry };
  }

  /** @param {string} token @param {string | null} expires */
  set(token, expires) {
    if (typeof token !== 'string' || token === '') {
      throw invalidArgument('MemoryTokenStore.set(token)', `must be a non-empty string, not ${describe(token)}`);
    }
    this.#entry = { token, expires: expires ?? null };
  }

  clear() {
    this.#entry = null;
  }
}

/**
 * Keeps the token in a cookie that expires when the gateway says the token does:
 * the default in a browser. Options: name ('gateway_client_token'), path ('/'),
 * sameSite ('Lax'), secure (default: the page is on https), domain, document.
 */
export class CookieTokenStore {
  #name;
  #attributes;
  #document;

  /** @param {import('./types.js').CookieTokenStoreOptions} [options] */
  constructor(options = {}) {
    const { name = TOKEN_COOKIE, path = '/', sameSite = 'Lax', secure, domain, document: doc } = options;
    this.#name = checkCookieName(name, 'CookieTokenStore name');
    const document = doc ?? globalThis.document;
    if (!document || typeof document !== 'object') {
      throw invalidArgument('CookieTokenStore', 'needs a document (a browser page) or options.document');
    }
    /** @type {{cookie: string}} */
    this.#document = document;
    const onHttps = globalThis.location !== undefined && globalThis.location.protocol === 'https:';
    this.#attributes = { path, sameSite, secure: secure ?? onHttps, domain };
    buildCookie(this.#name, 'check', this.#attributes); // a bad path or sameSite fails here, not at the first login
  }

  /** @returns {StoredToken | null} */
  get() {
    const token = readCookie(String(this.#document.cookie ?? ''), this.#name);
    // The browser drops the cookie when it expires, so a cookie that is there is current.
    return token ? { token, expires: null } : null;
  }

  /** @param {string} token @param {string | null} expires */
  set(token, expires) {
    if (typeof token !== 'string' || token === '') {
      throw invalidArgument('CookieTokenStore.set(token)', `must be a non-empty string, not ${describe(token)}`);
    }
    this.#document.cookie = buildCookie(this.#name, token, { ...this.#attributes, expires: expires ?? null });
  }

  clear() {
    this.#document.cookie = expiredCookie(this.#name, this.#attributes);
  }
}

/** @param {string} where @param {unknown} id */
function checkId(where, id) {
  if (typeof id !== 'string' || id === '') throw invalidArgument(where, `must be a subscription id, not ${describe(id)}`);
}

/** @param {string} where @param {unknown} seq */
function checkSeq(where, seq) {
  if (!Number.isSafeInteger(seq) || /** @type {number} */ (seq) < 0) throw invalidArgument(where, `must be a whole number >= 0, not ${describe(seq)}`);
}

/** Keeps cursors in memory: the default in Node. */
export class MemoryCursorStore {
  /** @type {Map<string, number>} */
  #cursors = new Map();

  /** @param {string} subscriptionId @returns {number | null} */
  get(subscriptionId) {
    return this.#cursors.get(subscriptionId) ?? null;
  }

  /** @param {string} id @param {number} seq */
  set(id, seq) {
    checkId('MemoryCursorStore.set(id)', id);
    checkSeq('MemoryCursorStore.set(seq)', seq);
    this.#cursors.set(id, seq);
  }

  /** @param {string} subscriptionId */
  delete(subscriptionId) {
    this.#cursors.delete(subscriptionId);
  }
}

/**
 * Keeps cursors in localStorage (key prefix 'gateway_cursor:'), so that a page
 * that is reloaded does not hand the application again what it already had:
 * the default in a browser. Options: storage (localStorage), prefix.
 */
export class LocalCursorStore {
  #storage;
  #prefix;

  /** @param {{storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>, prefix?: string}} [options] */
  constructor(options = {}) {
    const { storage, prefix = 'gateway_cursor:' } = options;
    const store = storage ?? globalThis.localStorage;
    if (!store || typeof store.getItem !== 'function') {
      throw invalidArgument('LocalCursorStore', 'needs localStorage (a browser page) or options.storage');
    }
    this.#storage = store;
    if (typeof prefix !== 'string') throw invalidArgument('LocalCursorStore prefix', `must be a string, not ${describe(prefix)}`);
    this.#prefix = prefix;
  }

  /** @param {string} subscriptionId @returns {number | null} */
  get(subscriptionId) {
    const raw = this.#storage.getItem(this.#prefix + subscriptionId);
    if (raw === null) return null;
    const seq = Number(raw);
    return Number.isSafeInteger(seq) && seq >= 0 ? seq : null; // a value someone else wrote there: ignore it
  }

  /** @param {string} id @param {number} seq */
  set(id, seq) {
    checkId('LocalCursorStore.set(id)', id);
    checkSeq('LocalCursorStore.set(seq)', seq);
    this.#storage.setItem(this.#prefix + id, String(seq));
  }

  /** @param {string} subscriptionId */
  delete(subscriptionId) {
    this.#storage.removeItem(this.#prefix + subscriptionId);
  }
}
