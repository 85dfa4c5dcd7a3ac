import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LocalCursorStore, MemoryCursorStore, MemoryTokenStore, tokenToPresent } from '../../src/stores.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

test('the token presented in HELLO: the stored one while it lives', () => {
  assert.equal(tokenToPresent(null, NOW), null);
  assert.equal(tokenToPresent({ token: 'ct_1', expires: '2026-06-02T00:00:00Z' }, NOW), 'ct_1');
  assert.equal(tokenToPresent({ token: 'ct_1', expires: null }, NOW), 'ct_1', 'a cookie: the browser dropped it if expired');
  assert.equal(tokenToPresent({ token: 'ct_1', expires: '2026-06-01T00:00:00Z' }, NOW), null, 'expired: a fresh one comes');
  assert.equal(tokenToPresent({ token: 'ct_1', expires: 'garbage' }, NOW), 'ct_1', 'an unreadable expiry: the gateway decides');
  assert.equal(tokenToPresent({ token: '' }, NOW), null);
  assert.equal(tokenToPresent({ token: 5 }, NOW), null);
  assert.equal(tokenToPresent('ct_1', NOW), null);
});

test('MemoryTokenStore', () => {
  const store = new MemoryTokenStore();
  assert.equal(store.get(), null);
  store.set('ct_1', '2026-06-02T00:00:00Z');
  assert.deepEqual(store.get(), { token: 'ct_1', expires: '2026-06-02T00:00:00Z' });
  store.get().token = 'changed';
  assert.equal(store.get().token, 'ct_1', 'get() hands out a copy');
  store.clear();
  assert.equal(store.get(), null);
  assert.deepEqual(new MemoryTokenStore({ token: 'ct_2' }).get(), { token: 'ct_2', expires: null });
  assert.throws(() => store.set(null, 'x'), /MemoryTokenStore\.set\(token\): must be a non-empty string, not null/);
});

test('MemoryCursorStore', () => {
  const store = new MemoryCursorStore();
  assert.equal(store.get('p_1'), null);
  store.set('p_1', 7);
  assert.equal(store.get('p_1'), 7);
  store.delete('p_1');
  assert.equal(store.get('p_1'), null);
  assert.throws(() => store.set('p_1', -1), /MemoryCursorStore\.set\(seq\): must be a whole number >= 0, not -1/);
  assert.throws(() => store.set('p_1', '7'), /not "7"/);
  assert.throws(() => store.set('', 7), /set\(id\): must be a subscription id/);
});

class FakeStorage {
  items = new Map();
  getItem(k) { return this.items.has(k) ? this.items.get(k) : null; }
  setItem(k, v) { this.items.set(k, String(v)); }
  removeItem(k) { this.items.delete(k); }
}

test('LocalCursorStore keeps cursors in localStorage under a prefix', () => {
  const storage = new FakeStorage();
  const store = new LocalCursorStore({ storage });
  store.set('p_abc', 42);
  assert.deepEqual([...storage.items], [['gateway_cursor:p_abc', '42']]);
  assert.equal(new LocalCursorStore({ storage }).get('p_abc'), 42, 'survives a page reload');
  storage.setItem('gateway_cursor:p_bad', 'forty');
  assert.equal(store.get('p_bad'), null, 'a value someone else wrote is ignored');
  store.delete('p_abc');
  assert.equal(store.get('p_abc'), null);
  const other = new LocalCursorStore({ storage, prefix: 'app1:' });
  other.set('p_abc', 1);
  assert.equal(storage.getItem('app1:p_abc'), '1');
  assert.throws(() => new LocalCursorStore({}), /needs localStorage/);
  assert.throws(() => new LocalCursorStore({ storage, prefix: 3 }), /prefix: must be a string/);
  assert.throws(() => store.set('p', 1.5), /whole number/);
});
