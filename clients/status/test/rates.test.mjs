// The status page's arithmetic (clients/status/page/rates.js): rates from two answers' totals, the chart's
// series and the reloads seen. Pure: no DOM, no network.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { History, RELOADS_KEPT, meanLatency, rates, reloadSeen, sum } from '../page/rates.js';

/** An answer of gateway.status with only what the arithmetic reads. */
function answer(time, { accepted = {}, duplicate = {}, refused = {}, ingest = {}, reloads = {}, versions = ['v1'],
  events = true } = {}) {
  return {
    time,
    events: events ? { accepted, duplicate, refused } : null,
    ingest: events ? ingest : null,
    definitions: { versions, reloads },
  };
}

test('a rate is the difference of two totals over the seconds between them', () => {
  assert.deepEqual(rates({ a: 10, b: 4 }, { a: 30, b: 4 }, 2), { a: 10, b: 0 });
});

test('a name new since the last answer counts from zero; a total that went down is no negative rate', () => {
  assert.deepEqual(rates({ a: 5 }, { a: 3, fresh: 4 }, 1), { a: 0, fresh: 4 });
  assert.deepEqual(rates(null, { a: 2 }, 1), { a: 2 });
  assert.deepEqual(rates({ a: 1 }, { a: 2 }, 0), {});
});

test('the mean latency counts only the requests between the two answers', () => {
  const before = { http: { count: 10, seconds: 1.0 } };
  const after = { http: { count: 14, seconds: 1.2 }, xmlrpc: { count: 0, seconds: 0 } };
  const mean = meanLatency(before, after);
  assert.deepEqual(Object.keys(mean), ['http']);
  assert.ok(Math.abs(mean.http - 0.05) < 1e-9);
});

test('the first answer gives no point; the next ones give the rates since the one before', () => {
  const h = new History();
  assert.equal(h.add(answer(100, { accepted: { 'demo.message': 10 } })), null);
  const p = h.add(answer(101, { accepted: { 'demo.message': 13, 'demo.order': 1 }, refused: { too_large: 2 },
    duplicate: { 'demo.message': 1 } }));
  assert.deepEqual(p.accepted, { 'demo.message': 3, 'demo.order': 1 });
  assert.deepEqual(p.refused, { too_large: 2 });
  assert.equal(p.duplicate, 1);
  assert.equal(sum(p.accepted), 4);
});

test('an answer older than the last one is ignored (two bridges, one slower)', () => {
  const h = new History();
  h.add(answer(100));
  h.add(answer(102, { accepted: { a: 2 } }));
  assert.equal(h.add(answer(101, { accepted: { a: 1 } })), null);
  assert.equal(h.last.time, 102);
  assert.equal(h.points.length, 1);
});

test('without counters (metrics off) there are no points, and no error', () => {
  const h = new History();
  h.add(answer(1, { events: false }));
  assert.equal(h.add(answer(2, { events: false })), null);
  assert.deepEqual(h.chart(), { labels: ['refused'], data: [[], []] });
});

test('the chart keeps the window: times, each class seen accepted, then refused', () => {
  const h = new History(10);
  for (let t = 0; t <= 20; t += 1) {
    h.add(answer(t, { accepted: { b: t * 2, a: t < 15 ? 0 : t - 14 }, refused: { x: t } }));
  }
  const { labels, data } = h.chart();
  assert.deepEqual(labels, ['a', 'b', 'refused']);
  assert.deepEqual(data[0], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  assert.deepEqual(data[2], Array(11).fill(2));
  assert.deepEqual(data[1], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(data[3], Array(11).fill(1));
});

test('reloads are seen when their counters move, the newest first, a few kept', () => {
  assert.equal(reloadSeen(answer(1, { reloads: { loaded: 4 } }), answer(2, { reloads: { loaded: 4 } })), null);
  assert.deepEqual(reloadSeen(answer(1, { reloads: { loaded: 4 } }),
    answer(2, { reloads: { loaded: 8, refused: 1 }, versions: ['v2'] })),
  { time: 2, loaded: 4, refused: 1, versions: ['v2'] });
  const h = new History();
  for (let t = 0; t < RELOADS_KEPT + 5; t += 1) h.add(answer(t, { reloads: { loaded: t } }));
  assert.equal(h.reloads.length, RELOADS_KEPT);
  assert.equal(h.reloads[0].time, RELOADS_KEPT + 4);
});

test('an answer is accepted only when newer than the last one taken: a late one is neither taken nor shown', () => {
  const h = new History();
  assert.equal(h.accepts(answer(100)), true);
  h.add(answer(100));
  assert.equal(h.accepts(answer(100)), false);
  assert.equal(h.accepts(answer(99)), false);
  assert.equal(h.accepts(answer(101)), true);
});
