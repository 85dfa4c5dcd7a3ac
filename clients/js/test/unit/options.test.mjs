import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Gateway } from '../../src/gateway.js';
import { callArguments, gatewayOptions, subscribeArguments } from '../../src/options.js';
import { MemoryCursorStore, MemoryTokenStore } from '../../src/stores.js';

const URL = 'ws://127.0.0.1:8080/ws';

test('the defaults', () => {
  const o = gatewayOptions({ url: URL });
  assert.equal(o.realm, 'gateway');
  assert.equal(o.ackInterval, 1000);
  assert.equal(o.connectTimeout, 10);
  assert.equal(o.reconnect.maxDelay, 30);
  assert.equal(o.ticket, null);
  const gw = new Gateway({ url: URL });
  assert.equal(gw.state, 'idle');
  assert.ok(gw.tokenStore instanceof MemoryTokenStore, 'in Node: memory');
  assert.ok(gw.cursorStore instanceof MemoryCursorStore);
});

test('every bad Gateway option is named with what was expected', () => {
  const cases = [
    [undefined, /new Gateway\(options\): options must be an object/],
    [{}, /options\.url: must be a ws:\/\/ or wss:\/\/ URL like 'ws:\/\/127\.0\.0\.1:8080\/ws', or a non-empty array of them, not undefined/],
    [{ url: 'http://x/ws' }, /options\.url: .* not "http:\/\/x\/ws"/],
    [{ url: URL, realm: '' }, /options\.realm: must be a non-empty string/],
    [{ url: URL, ticket: 5 }, /options\.ticket: must be a non-empty string, not 5/],
    [{ url: URL, ticket: 'a', jwt: 'b' }, /options: give ticket or jwt, not both/],
    [{ url: URL, getCredentials: 'x' }, /options\.getCredentials: must be a function, not "x"/],
    [{ url: URL, tokenStore: { get() {} } }, /options\.tokenStore: must have the methods get, set, clear \(missing: set, clear\)/],
    [{ url: URL, cursorStore: {} }, /options\.cursorStore: must have the methods get, set/],
    [{ url: URL, ackInterval: -5 }, /options\.ackInterval: must be a number of milliseconds >= 0, not -5/],
    [{ url: URL, connectTimeout: 0 }, /options\.connectTimeout: must be a number of seconds > 0, not 0/],
    [{ url: URL, reconnect: { jitter: 2 } }, /options\.reconnect\.jitter: must be between 0 and 1, not 2/],
    [{ url: URL, autobahn: {} }, /options\.autobahn: must be the autobahn module/],
    [{ url: URL, tiket: 'x' }, /options\.tiket: unknown option \(known: url, realm, ticket, jwt, getCredentials/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new Gateway(options), { name: 'GatewayError', uri: 'gateway.client.invalid_argument', message });
  }
});

test('url: one URL or a non-empty list of them, each mistake named with its index', () => {
  assert.deepEqual(gatewayOptions({ url: URL }).urls, [URL]);
  const list = ['ws://a:8080/ws', 'wss://b.example.org/ws'];
  const o = gatewayOptions({ url: list });
  assert.deepEqual(o.urls, list);
  assert.notEqual(o.urls, list, 'a copy: changing the array later changes nothing');
  const cases = [
    [[], /^options\.url: must be a ws:\/\/ or wss:\/\/ URL, or a non-empty array of them, not an empty array$/],
    [[URL, 5], /^options\.url\[1\]: must be a ws:\/\/ or wss:\/\/ URL like 'ws:\/\/127\.0\.0\.1:8080\/ws', not 5$/],
    [[URL, 'ws://b/ws', 'http://c/ws'], /^options\.url\[2\]: must be a ws:\/\/ or wss:\/\/ URL .*, not "http:\/\/c\/ws"$/],
    [['', URL], /^options\.url\[0\]: .* not ""$/],
    [[URL, ['ws://b/ws']], /^options\.url\[1\]: .* not an array$/],
    // eslint-disable-next-line no-sparse-arrays
    [[URL, , 'ws://b/ws'], /^options\.url\[1\]: .* not undefined$/],
    [['ws://a/ws', 'ws://b/ws', 'ws://a/ws'], /^options\.url\[2\]: "ws:\/\/a\/ws" is options\.url\[0\] again: list each node once$/],
    [{ 0: URL, length: 1 }, /^options\.url: must be .* or a non-empty array of them, not an object$/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => new Gateway({ url }), { name: 'GatewayError', uri: 'gateway.client.invalid_argument', message });
  }
});

test('subscribe() and call() arguments', () => {
  const handler = () => {};
  assert.deepEqual(subscribeArguments('demo.message', handler),
    { query: 'demo.message', handler, persistent: false, batch: true, onGap: null, onRemoved: null });
  assert.equal(subscribeArguments('a', handler, { persistent: true }).persistent, true);
  const cases = [
    [['  ', handler], /subscribe\(query\): must be a query like/],
    [[42, handler], /subscribe\(query\): .* not 42/],
    [['a', null], /handler must be a function, not null/],
    [['a', handler, 'persistent'], /subscribe options: must be an object like \{persistent: true\}, not "persistent"/],
    [['a', handler, { persistent: 'yes' }], /subscribe options\.persistent: must be true or false, not "yes"/],
    [['a', handler, { onGap: 1 }], /subscribe options\.onGap: must be a function, not 1/],
    [['a', handler, { durable: true }], /subscribe options\.durable: unknown option \(known: persistent, batch, onGap, onRemoved\)/],
    [['a', handler, { batch: 1 }], /subscribe options\.batch: must be true or false, not 1/],
  ];
  for (const [args, message] of cases) assert.throws(() => subscribeArguments(...args), { message });
  callArguments('gateway.whoami', [], {});
  assert.throws(() => callArguments('gateway..x', [], {}), /call\(uri\): must be a procedure URI/);
  assert.throws(() => callArguments('a.b', 'x', {}), /args must be an array, not "x"/);
  assert.throws(() => callArguments('a.b', [], []), /kwargs must be an object, not an array/);
});

test('a Gateway never connected: events, close() and calls without a network', async () => {
  const gw = new Gateway({ url: URL });
  const states = [];
  gw.on('state', (s) => states.push(s));
  assert.throws(() => gw.on('connected', () => {}), /on\("connected"\): unknown event \(known: state, connecting, open, lost, resumed, closed, error\)/);
  assert.throws(() => gw.on('open', 'x'), /fn must be a function/);
  const pendingSub = gw.subscribe('demo.message', () => {});
  const pendingCall = gw.whoami();
  await Promise.all([gw.close(), gw.close()]);
  assert.deepEqual(states, ['closed']);
  await assert.rejects(pendingSub, { uri: 'gateway.client.closed' });
  await assert.rejects(pendingCall, { uri: 'gateway.client.closed' });
  await assert.rejects(gw.connect(), { uri: 'gateway.client.closed', message: /make a new one/ });
  await assert.rejects(gw.subscribe('demo.message', () => {}), { uri: 'gateway.client.closed' });
});

test('no WebSocket in the environment: connect() rejects and says what to do, no retrying', async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
  delete globalThis.WebSocket; // Node 20 without --experimental-websocket
  try {
    const gw = new Gateway({ url: URL });
    const errors = [];
    gw.on('error', (e) => errors.push(e));
    await assert.rejects(gw.connect(), { uri: 'gateway.client.gave_up', message: /no WebSocket could be opened to ws:\/\/127\.0\.0\.1:8080\/ws .*--experimental-websocket/ });
    assert.equal(gw.state, 'closed');
    assert.match(errors[0].message, /no WebSocket in this environment/);
  } finally {
    if (saved) Object.defineProperty(globalThis, 'WebSocket', saved);
  }
});
