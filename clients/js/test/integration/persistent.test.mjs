// Persistent subscriptions against a real gateway node: what was missed while
// away is handed over once, in order, then live events; cursors and acks.
// Run by tests/integration/test_js_client.py.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Gateway, MemoryCursorStore, MemoryTokenStore } from '../../src/gateway.js';
import { env, message, next, postBatch, postEvent, record, unique, waitFor } from './env.mjs';

const FAST = { initialDelay: 0.05, maxDelay: 0.2 };

function gateway(t, options) {
  const gw = new Gateway({ url: env.ws, reconnect: FAST, ...options });
  t.after(() => gw.close());
  return gw;
}

const batch = (room, texts) => postBatch(texts.map((text) => ({ event: 'demo.message', data: message(room, text) })));

test('a client that comes back with its stores gets exactly what it missed, once, in order, then live events', async (t) => {
  const room = unique('persist');
  const query = `demo.message where room = '${room}'`;
  const tokenStore = new MemoryTokenStore();
  const cursorStore = new MemoryCursorStore();

  const first = gateway(t, { tokenStore, cursorStore });
  const before = [];
  await first.connect();
  const sub = await first.subscribe(query, (e) => before.push(e.seq), { persistent: true });
  assert.match(sub.id, /^p_/);
  assert.equal(sub.persistent, true);
  const delivered = await batch(room, ['one', 'two']);
  await waitFor(() => before.length === 2, 'two live events');
  assert.deepEqual(before, delivered);
  assert.equal(cursorStore.get(sub.id), delivered[1], 'the cursor follows what was handed over');
  await first.close(); // acks what was delivered

  const missed = await batch(room, Array.from({ length: 30 }, (_, i) => `missed ${i}`));
  await postEvent('demo.message', message(unique('other'), 'not this query'));

  const second = gateway(t, { tokenStore, cursorStore: new MemoryCursorStore() }); // only the gateway's cursor
  const log = record(second);
  const got = [];
  const resumed = second.subscribe(`demo.message where (room = "${room}")`, (e) => got.push(e), { persistent: true });
  await second.connect();
  const again = await resumed;
  assert.equal(again.id, sub.id, 'the same subscription, resumed');
  assert.equal(second.clientToken, first.clientToken);
  assert.deepEqual(got.map((e) => e.seq), missed, 'exactly the missed events, in order, before subscribe() resolved');
  assert.deepEqual(got.slice(0, 2).map((e) => e.data.text), ['missed 0', 'missed 1']);

  const live = await batch(room, ['live 1', 'live 2']);
  await waitFor(() => got.length === missed.length + 2, 'the live events');
  assert.deepEqual(got.map((e) => e.seq), [...missed, ...live]);
  assert.deepEqual(log.errors, []);

  // The gateway's cursor moved with the acks: a third visit has nothing to replay.
  await second.close();
  const third = gateway(t, { tokenStore });
  const replayed = [];
  const pending = third.subscribe(query, (e) => replayed.push(e.seq), { persistent: true });
  await third.connect();
  const s3 = await pending;
  assert.equal(s3.id, sub.id);
  assert.deepEqual(replayed, [], 'everything was acknowledged on close');
});

test('the cursor store skips what was handed over but not yet acknowledged', async (t) => {
  const room = unique('cursor');
  const query = `demo.message where room = '${room}'`;
  const tokenStore = new MemoryTokenStore();
  const one = gateway(t, { tokenStore });
  await one.connect();
  const sub = await one.subscribe(query, () => {}, { persistent: true });
  await one.close();

  const seqs = await batch(room, ['a', 'b', 'c', 'd']);
  // A page that handed over a and b, then was closed before it could ack: its cursor store remembers.
  const cursorStore = new MemoryCursorStore();
  cursorStore.set(sub.id, seqs[1]);
  const two = gateway(t, { tokenStore, cursorStore, ackInterval: 20 });
  const got = [];
  const pending = two.subscribe(query, (e) => got.push(e.seq), { persistent: true });
  await two.connect();
  await pending;
  assert.deepEqual(got, seqs.slice(2));
  // ...and the gateway's cursor catches up with the acks.
  await waitFor(async () => {
    const listed = await two.call('gateway.subscriptions');
    return listed.find((s) => s.id === sub.id)?.last_seq === seqs[3];
  }, 'the ack of the last event');
});

test('a dropped connection with a persistent subscription: the missed events come before resumed, each once', async (t) => {
  const room = unique('drop');
  const gw = gateway(t);
  const log = record(gw);
  const got = [];
  await gw.connect();
  await gw.subscribe(`demo.message where room = '${room}'`, (e) => got.push(e.seq), { persistent: true });
  const before = await batch(room, ['b1', 'b2']);
  await waitFor(() => got.length === 2, 'the first events');
  const lost = next(gw, 'lost');
  gw._debugDropConnection();
  await lost;
  const away = await batch(room, ['a1', 'a2', 'a3']);
  let atResume = null;
  gw.on('resumed', () => { atResume = [...got]; });
  await next(gw, 'resumed');
  assert.deepEqual(atResume, [...before, ...away], "'resumed' fires once the missed events were handed over");
  const after = await batch(room, ['c1']);
  await waitFor(() => got.length === 6, 'the live event');
  assert.deepEqual(got, [...before, ...away, ...after]);
  assert.deepEqual(log.errors, []);
});

test('unsubscribe() ends a persistent subscription for good', async (t) => {
  const room = unique('ended');
  const query = `demo.message where room = '${room}'`;
  const tokenStore = new MemoryTokenStore();
  const gw = gateway(t, { tokenStore });
  await gw.connect();
  const sub = await gw.subscribe(query, () => {}, { persistent: true });
  await sub.unsubscribe();
  assert.equal(sub.active, false);
  const listed = await gw.call('gateway.subscriptions');
  assert.equal(listed.find((s) => s.id === sub.id), undefined);
  await postEvent('demo.message', message(room, 'after the end'));
  await gw.close();

  const back = gateway(t, { tokenStore });
  const got = [];
  const pending = back.subscribe(query, (e) => got.push(e), { persistent: true });
  await back.connect();
  const fresh = await pending;
  assert.notEqual(fresh.id, sub.id, 'a new subscription, not the ended one');
  assert.deepEqual(got, [], 'nothing from before it began');
});

test('two Gateways on the same stores hold one persistent subscription: the one that was away still gets every event once', async (t) => {
  // Two tabs of one browser: one cookie, one localStorage. The other tab's acks and cursor move on
  // while this one is away; this one must resume from what it handed over itself.
  const room = unique('tabs');
  const query = `demo.message where room = '${room}'`;
  const tokenStore = new MemoryTokenStore();
  const cursorStore = new MemoryCursorStore();
  const a = gateway(t, { tokenStore, cursorStore, ackInterval: 20 });
  await a.connect(); // first: b presents the token a was given
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let logins = 0;
  const b = gateway(t, {
    tokenStore, cursorStore, ackInterval: 20,
    getCredentials: async () => { logins += 1; if (logins > 1) await held; return null; }, // b's reconnect waits for us
  });
  await b.connect();
  assert.equal(b.clientToken, a.clientToken);
  const gotA = [];
  const gotB = [];
  const subA = await a.subscribe(query, (e) => gotA.push(e.seq), { persistent: true });
  const subB = await b.subscribe(query, (e) => gotB.push(e.seq), { persistent: true });
  assert.equal(subB.id, subA.id, 'one subscription on the gateway');

  const before = await batch(room, ['b1', 'b2']);
  await waitFor(() => gotA.length === 2 && gotB.length === 2, 'both have the first events');
  const lost = next(b, 'lost');
  b._debugDropConnection();
  await lost;
  const away = await batch(room, ['a1', 'a2', 'a3']);
  await waitFor(async () => {
    const listed = await a.call('gateway.subscriptions');
    return listed.find((s) => s.id === subA.id)?.last_seq === away[2];
  }, "a's ack of what b missed");
  assert.equal(cursorStore.get(subA.id), away[2], "a's cursor is in the shared store");

  const resumed = next(b, 'resumed');
  release();
  await resumed;
  const after = await batch(room, ['c1']);
  await waitFor(() => gotB.length === 6 && gotA.length === 6, 'the live event');
  assert.deepEqual(gotB, [...before, ...away, ...after], 'b: every event once, in order');
  assert.deepEqual(gotA, [...before, ...away, ...after]);
});

test('two persistent subscribe() calls with one query in one Gateway: ending one leaves the other', async (t) => {
  const room = unique('twice');
  const gw = gateway(t, { ackInterval: 20 });
  const log = record(gw);
  await gw.connect();
  const gotA = [];
  const gotB = [];
  const a = await gw.subscribe(`demo.message where room = '${room}'`, (e) => gotA.push(e.seq), { persistent: true });
  const b = await gw.subscribe(`demo.message where (room = "${room}")`, (e) => gotB.push(e.seq), { persistent: true });
  assert.equal(b.id, a.id, 'the same query: the same subscription on the gateway');
  await a.unsubscribe();
  const listed = await gw.call('gateway.subscriptions');
  assert.ok(listed.some((s) => s.id === b.id), 'the gateway keeps it: b holds it');
  const [seq] = await batch(room, ['x']);
  await waitFor(() => gotB.includes(seq), 'b receives');
  await waitFor(async () => (await gw.call('gateway.subscriptions')).find((s) => s.id === b.id)?.last_seq === seq, "b's ack");
  assert.deepEqual(gotA, []);
  await b.unsubscribe();
  assert.equal((await gw.call('gateway.subscriptions')).find((s) => s.id === b.id), undefined, 'the last one ends it');
  assert.deepEqual(log.errors, []);
});
