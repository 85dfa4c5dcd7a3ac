// Checking what an application passes to new Gateway() and gw.subscribe(). Pure.
// Every mistake is reported at once, naming the option and what was expected.

import { reconnectPolicy } from './backoff.js';
import { describe, invalidArgument } from './errors.js';
import { WHOAMI } from './uris.js';

const GATEWAY_OPTIONS = ['url', 'realm', 'ticket', 'jwt', 'getCredentials', 'tokenStore', 'cursorStore',
  'reconnect', 'ackInterval', 'connectTimeout', 'autobahn'];
const SUBSCRIBE_OPTIONS = ['persistent', 'batch', 'onGap', 'onRemoved'];

/**
 * @template {Function} F
 * @param {string} where @param {unknown} value
 * @returns {F | null}
 */
function optionalFunction(where, value) {
  if (value !== undefined && value !== null && typeof value !== 'function') {
    throw invalidArgument(where, `must be a function, not ${describe(value)}`);
  }
  return /** @type {F | null} */ (value ?? null);
}

/**
 * @template T
 * @param {string} where @param {unknown} value @param {string[]} methods
 * @returns {T | null}
 */
function hasMethods(where, value, methods) {
  if (value === undefined || value === null) return null;
  const missing = methods.filter((m) => typeof /** @type {Record<string, unknown>} */ (value)[m] !== 'function');
  if (missing.length) {
    throw invalidArgument(where, `must have the methods ${methods.join(', ')} (missing: ${missing.join(', ')})`);
  }
  return /** @type {T} */ (value);
}

/** @param {string} where @param {unknown} value */
function credential(where, value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw invalidArgument(where, `must be a non-empty string, not ${describe(value)}`);
  return value;
}

const URL_EXAMPLE = "'ws://127.0.0.1:8080/ws'";
const isRouterUrl = (/** @type {unknown} */ url) => typeof url === 'string' && /^wss?:\/\/[^/\s]+/i.test(url);

/**
 * options.url: one router URL, or a list of them (the nodes of a cluster); always a list here.
 * @param {unknown} url
 * @returns {string[]}
 */
function routerUrls(url) {
  if (!Array.isArray(url)) {
    if (isRouterUrl(url)) return [/** @type {string} */ (url)];
    throw invalidArgument('options.url', `must be a ws:// or wss:// URL like ${URL_EXAMPLE}, or a non-empty array of them, `
      + `not ${describe(url)}`);
  }
  if (url.length === 0) {
    throw invalidArgument('options.url', 'must be a ws:// or wss:// URL, or a non-empty array of them, not an empty array');
  }
  for (let i = 0; i < url.length; i += 1) { // not forEach: it skips the holes of a sparse array
    const item = url[i];
    if (!isRouterUrl(item)) throw invalidArgument(`options.url[${i}]`, `must be a ws:// or wss:// URL like ${URL_EXAMPLE}, not ${describe(item)}`);
    const first = url.indexOf(item);
    if (first !== i) throw invalidArgument(`options.url[${i}]`, `${describe(item)} is options.url[${first}] again: list each node once`);
  }
  return /** @type {string[]} */ ([...url]);
}

/**
 * The checked options of new Gateway(options); stores left null are chosen by the caller.
 * @param {unknown} given
 */
export function gatewayOptions(given) {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw invalidArgument('new Gateway(options)', `options must be an object like {url: 'ws://127.0.0.1:8080/ws'}, not ${describe(given)}`);
  }
  const options = /** @type {Record<string, unknown>} */ (given);
  for (const key of Object.keys(options)) {
    if (!GATEWAY_OPTIONS.includes(key)) {
      throw invalidArgument(`options.${key}`, `unknown option (known: ${GATEWAY_OPTIONS.join(', ')})`);
    }
  }
  const { realm = 'gateway', ackInterval = 1000, connectTimeout = 10 } = options;
  const urls = routerUrls(options.url);
  if (typeof realm !== 'string' || realm === '') throw invalidArgument('options.realm', `must be a non-empty string, not ${describe(realm)}`);
  const ticket = credential('options.ticket', options.ticket);
  const jwt = credential('options.jwt', options.jwt);
  if (ticket !== null && jwt !== null) throw invalidArgument('options', 'give ticket or jwt, not both');
  if (typeof ackInterval !== 'number' || !Number.isFinite(ackInterval) || ackInterval < 0) {
    throw invalidArgument('options.ackInterval', `must be a number of milliseconds >= 0, not ${describe(ackInterval)}`);
  }
  if (typeof connectTimeout !== 'number' || !Number.isFinite(connectTimeout) || connectTimeout <= 0) {
    throw invalidArgument('options.connectTimeout', `must be a number of seconds > 0, not ${describe(connectTimeout)}`);
  }
  const autobahn = /** @type {import('./types.js').Autobahn | null} */ (options.autobahn ?? null);
  if (autobahn !== null && typeof autobahn?.Connection !== 'function') {
    throw invalidArgument('options.autobahn', 'must be the autobahn module (with autobahn.Connection)');
  }
  return {
    urls,
    realm,
    ticket,
    jwt,
    getCredentials: /** @type {(() => unknown) | null} */ (optionalFunction('options.getCredentials', options.getCredentials)),
    tokenStore: /** @type {import('./types.js').TokenStore | null} */ (hasMethods('options.tokenStore', options.tokenStore, ['get', 'set', 'clear'])),
    cursorStore: /** @type {import('./types.js').CursorStore | null} */ (hasMethods('options.cursorStore', options.cursorStore, ['get', 'set'])),
    reconnect: reconnectPolicy(options.reconnect ?? {}),
    ackInterval,
    connectTimeout,
    autobahn,
  };
}

/**
 * The checked arguments of gw.subscribe(query, handler, options).
 * @param {unknown} query @param {unknown} handler @param {unknown} [given]
 * @returns {import('./types.js').SubscribeArgs}
 */
export function subscribeArguments(query, handler, given = {}) {
  const options = /** @type {Record<string, unknown>} */ (given);
  if (typeof query !== 'string' || query.trim() === '') {
    throw invalidArgument('subscribe(query)', `must be a query like "demo.message where room = 'lobby'", not ${describe(query)}`);
  }
  if (typeof handler !== 'function') throw invalidArgument('subscribe(query, handler)', `handler must be a function, not ${describe(handler)}`);
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument('subscribe options', `must be an object like {persistent: true}, not ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!SUBSCRIBE_OPTIONS.includes(key)) {
      throw invalidArgument(`subscribe options.${key}`, `unknown option (known: ${SUBSCRIBE_OPTIONS.join(', ')})`);
    }
  }
  const persistent = options.persistent ?? false;
  if (typeof persistent !== 'boolean') throw invalidArgument('subscribe options.persistent', `must be true or false, not ${describe(persistent)}`);
  const batch = options.batch ?? true;
  if (typeof batch !== 'boolean') throw invalidArgument('subscribe options.batch', `must be true or false, not ${describe(batch)}`);
  return {
    query,
    handler: /** @type {import('./types.js').Handler} */ (handler),
    persistent,
    batch,
    onGap: optionalFunction('subscribe options.onGap', options.onGap),
    onRemoved: optionalFunction('subscribe options.onRemoved', options.onRemoved),
  };
}

/**
 * The checked arguments of gw.call(uri, args, kwargs).
 * @param {unknown} uri @param {unknown} args @param {unknown} kwargs
 */
export function callArguments(uri, args, kwargs) {
  if (typeof uri !== 'string' || !/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(uri)) {
    throw invalidArgument('call(uri)', `must be a procedure URI like '${WHOAMI}', not ${describe(uri)}`);
  }
  if (!Array.isArray(args)) throw invalidArgument('call(uri, args)', `args must be an array, not ${describe(args)}`);
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) {
    throw invalidArgument('call(uri, args, kwargs)', `kwargs must be an object, not ${describe(kwargs)}`);
  }
}
