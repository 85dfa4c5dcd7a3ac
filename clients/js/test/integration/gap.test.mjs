// Replays that go wrong for real, on a node of their own (tests/integration/test_js_client.py):
// - truncated: the node's event log keeps at most 5 events per class
//   (store.max_logged_per_class: 5, housekeeping every 0.5 s). The client must tell the
//   application (onGap, or 'error' without it), never swallow it;
// - cut off: the worker of the dispatcher that serves the replay dies in the middle of the
//   call. The node goes on with the other dispatcher, so that test runs last.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { setTimeout as delay } from 'node:timers/promises';

import autobahn from 'autobahn';

import { ClientErrors, Gateway, MemoryTokenStore } from '../../src/gateway.js';
import {
  env, freezeActiveDispatcher, hookCalls, jwt, killActiveDispatcher, message, postBatch, postEvent, record, unique, waitFor,
} from './env.mjs';

function gateway(t, options) {
  const gw = new Gateway({ url: env.gapWs, reconnect: { initialDelay: 0.05, maxDelay: 0.2 }, ...options });
  t.after(() => gw.close());
  return gw;
}

/** Subscribe persistently, receive one event, go away (acking it): returns the subscription id and that seq. */
async function subscribeAndLeave(t, query, room, tokenStore) {
  const gw = gateway(t, { tokenStore });
  const got = [];
  await gw.connect();
  const sub = await gw.subscribe(query, (e) => got.push(e.seq), { persistent: true });
  const seq = await postEvent('demo.message', message(room, 'seen'), { base: env.gapBridge });
  await waitFor(() => got.includes(seq), 'the first event');
  await gw.close();
  return { id: sub.id, seq };
}

test('a replay that retention truncated calls onGap with the seq it resumed from; without onGap it is an error', async (t) => {
  const room = unique('gap');
  const query = `demo.message where room = '${room}'`;
  const withGap = new MemoryTokenStore();
  const withoutGap = new MemoryTokenStore();
  const a = await subscribeAndLeave(t, query, room, withGap);
  const b = await subscribeAndLeave(t, query, room, withoutGap);
  assert.notEqual(a.id, b.id, 'two clients, two subscriptions');

  const posted = await postBatch(Array.from({ length: 20 }, (_, i) => ({ event: 'demo.message', data: message(room, `m${i}`) })),
    { base: env.gapBridge });

  // Housekeeping runs every 0.5 s: wait until the gateway says the log no longer reaches back to a.seq.
  const probe = gateway(t, { tokenStore: withGap });
  await probe.connect();
  await waitFor(async () => (await probe.call('gateway.replay', [a.id, a.seq, 1])).truncated, 'retention to drop events', 10000);
  await probe.close();

  const gaps = [];
  const got = [];
  const back = gateway(t, { tokenStore: withGap });
  const log = record(back);
  const pending = back.subscribe(query, (e) => got.push(e.seq), { persistent: true, onGap: (gap) => gaps.push([gap, [...got]]) });
  await back.connect();
  const sub = await pending;
  assert.equal(sub.id, a.id);
  assert.equal(gaps.length, 1);
  const [gap, deliveredBefore] = gaps[0];
  assert.equal(gap.subscription, sub);
  assert.equal(gap.afterSeq, a.seq, 'the seq the replay started after');
  assert.deepEqual(deliveredBefore, [], 'the gap is told before the events after it');
  // The log keeps the newest 5 events of the class: the end of what was posted, in order, once.
  const kept = got.length;
  assert.ok(kept >= 1 && kept <= 5, `${kept} events replayed`);
  assert.deepEqual(got, posted.slice(-kept), 'what retention kept, in order, once');
  assert.deepEqual(log.errors, []);
  const live = await postEvent('demo.message', message(room, 'live'), { base: env.gapBridge });
  await waitFor(() => got.includes(live), 'the live event');
  assert.deepEqual(got, [...posted.slice(-kept), live]);

  // The other client has no onGap: the gap becomes an 'error' event, with what it needs to know.
  const other = gateway(t, { tokenStore: withoutGap });
  const errors = record(other).errors;
  const otherGot = [];
  const otherPending = other.subscribe(query, (e) => otherGot.push(e.seq), { persistent: true });
  await other.connect();
  await otherPending;
  assert.equal(errors.length, 1);
  assert.equal(errors[0].uri, ClientErrors.GAP);
  assert.deepEqual(errors[0].details, { subscription: b.id, afterSeq: b.seq });
  assert.match(errors[0].message, /dropped by retention/);
  assert.ok(otherGot.length > 0 && otherGot.every((seq) => seq > b.seq));
});

test('the dispatcher dies in the middle of a replay: the client asks again, loses nothing and acks nothing past it', async (t) => {
  const user = unique('kill');
  const customer = Math.floor(Math.random() * 1e9);
  const query = `demo.order where customer.id = ${customer}`;
  const order = (n) => ({ event: 'demo.order', data: { order_id: n, amount: 10 + n, country: 'AR', tags: [], customer: { id: customer, name: user } } });
  const tokenStore = new MemoryTokenStore();
  const login = { jwt: jwt({ sub: user }) };

  const first = gateway(t, { tokenStore, ...login });
  await first.connect();
  const sub = await first.subscribe(query, () => {}, { persistent: true });
  await first.close();
  // Missed while away (demo.order is posted by no other test of this node: retention keeps them).
  const missed = await postBatch([1, 2, 3].map(order), { base: env.gapBridge });

  // The first gateway.replay goes to a dispatcher whose worker is stopped, then killed: the router
  // cancels the call (wamp.error.canceled) and the session stays up.
  let cut = null;
  const hooked = hookCalls(autobahn, async (uri, args, kwargs, call) => {
    if (uri !== 'gateway.replay' || cut !== null) return call(uri, args, kwargs);
    cut = 'in flight';
    await freezeActiveDispatcher();
    const answer = call(uri, args, kwargs);
    answer.catch(() => {});
    // The router has the call to the stopped worker in its queue within milliseconds; nothing
    // outside the router can tell when it was handed over, so give it a generous moment.
    await delay(300);
    await killActiveDispatcher();
    try {
      return await answer;
    } catch (err) {
      cut = err?.error ?? String(err);
      throw err;
    }
  });
  const back = gateway(t, { tokenStore, ...login, autobahn: hooked, ackInterval: 20 });
  const log = record(back);
  const got = [];
  const pending = back.subscribe(query, (e) => got.push(e.seq), { persistent: true });
  await back.connect();
  const timeout = new AbortController();
  const resumed = await Promise.race([pending, delay(15000, null, { signal: timeout.signal }).catch(() => null)])
    .finally(() => timeout.abort());
  assert.equal(cut, 'wamp.error.canceled', 'the replay was cut off by the dying dispatcher');
  assert.ok(resumed !== null, 'subscribe() resolved after the replay was asked again');
  assert.equal(resumed.id, sub.id);
  assert.deepEqual(got, missed, 'the missed events, once, in order');
  assert.equal(back.state, 'open', 'the same session throughout');
  assert.deepEqual(log.states.map(([s]) => s), ['connecting', 'open']);

  const live = await postBatch([4, 5].map(order), { base: env.gapBridge }); // the other dispatcher publishes them
  await waitFor(() => got.length === 5, 'the live events');
  assert.deepEqual(got, [...missed, ...live]);
  await waitFor(async () => {
    const listed = await back.call('gateway.subscriptions');
    return listed.find((s) => s.id === sub.id)?.last_seq === live[1];
  }, 'the ack of the last event');
  assert.deepEqual(log.errors, []);
});
