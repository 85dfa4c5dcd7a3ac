// Checking what an application passes to new Gateway() and gw.subscribe(). Pure.
// Every mistake is reported at once, naming the option and what was expected.

import { reconnectPolicy } from './backoff.js';
import { describe, invalidArgument } from './errors.js';

const GATEWAY_OPTIONS = ['url', 'realm', 'ticket', 'jwt', 'getCredentials', 'tokenStore', 'cursorStore',
  'reconnect', 'ackInterval', 'connectTimeout', 'autobahn'];
const SUBSCRIBE_OPTIONS = ['persistent', 'onGap', 'onRemoved'];

function optionalFunction(where, value) {
  if (value !== undefined && value !== null && typeof value !== 'function') {
    throw invalidArgument(where, `must be a function, not ${describe(value)}`);
  }
  return value ?? null;
}

function hasMethods(where, value, methods) {
  if (value === undefined || value === null) return null;
  const missing = methods.filter((m) => typeof value?.[m] !== 'function');
  if (missing.length) {
    throw invalidArgument(where, `must have the methods ${methods.join(', ')} (missing: ${missing.join(', ')})`);
  }
  return value;
}

function credential(where, value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw invalidArgument(where, `must be a non-empty string, not ${describe(value)}`);
  return value;
}

/** The checked options of new Gateway(options); stores left null are chosen by the caller. */
export function gatewayOptions(options) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument('new Gateway(options)', `options must be an object like {url: 'ws://127.0.0.1:8080/ws'}, not ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!GATEWAY_OPTIONS.includes(key)) {
      throw invalidArgument(`options.${key}`, `unknown option (known: ${GATEWAY_OPTIONS.join(', ')})`);
    }
  }
  const { url, realm = 'gateway', ackInterval = 1000, connectTimeout = 10 } = options;
  if (typeof url !== 'string' || !/^wss?:\/\/[^/\s]+/i.test(url)) {
    throw invalidArgument('options.url', `must be a ws:// or wss:// URL like 'ws://127.0.0.1:8080/ws', not ${describe(url)}`);
  }
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
  const autobahn = options.autobahn ?? null;
  if (autobahn !== null && typeof autobahn?.Connection !== 'function') {
    throw invalidArgument('options.autobahn', 'must be the autobahn module (with autobahn.Connection)');
  }
  return {
    url,
    realm,
    ticket,
    jwt,
    getCredentials: optionalFunction('options.getCredentials', options.getCredentials),
    tokenStore: hasMethods('options.tokenStore', options.tokenStore, ['get', 'set', 'clear']),
    cursorStore: hasMethods('options.cursorStore', options.cursorStore, ['get', 'set']),
    reconnect: reconnectPolicy(options.reconnect ?? {}),
    ackInterval,
    connectTimeout,
    autobahn,
  };
}

/** The checked arguments of gw.subscribe(query, handler, options). */
export function subscribeArguments(query, handler, options = {}) {
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
  return {
    query,
    handler,
    persistent,
    onGap: optionalFunction('subscribe options.onGap', options.onGap),
    onRemoved: optionalFunction('subscribe options.onRemoved', options.onRemoved),
  };
}

/** The checked arguments of gw.call(uri, args, kwargs). */
export function callArguments(uri, args, kwargs) {
  if (typeof uri !== 'string' || !/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(uri)) {
    throw invalidArgument('call(uri)', `must be a procedure URI like 'gateway.whoami', not ${describe(uri)}`);
  }
  if (!Array.isArray(args)) throw invalidArgument('call(uri, args)', `args must be an array, not ${describe(args)}`);
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs)) {
    throw invalidArgument('call(uri, args, kwargs)', `kwargs must be an object, not ${describe(kwargs)}`);
  }
}
