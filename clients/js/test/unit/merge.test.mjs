import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SeqMerger, isEnvelope } from '../../src/merge.js';

const ev = (seq, source = 'live') => ({ event: 'demo.message', id: `id${seq}`, seq, time: '2026-01-01T00:00:00Z', data: { source } });
const seqs = (events) => events.map((e) => e.seq);

test('live delivery hands over each event once, dropping duplicates and stale seqs', () => {
  const m = new SeqMerger();
  assert.deepEqual(seqs(m.live(ev(1))), [1]);
  assert.deepEqual(seqs(m.live(ev(3))), [3]);
  assert.deepEqual(seqs(m.live(ev(3))), [], 'published again: dropped');
  assert.deepEqual(seqs(m.live(ev(2))), [], 'below the last handed over');
  assert.equal(m.lastSeq, 3);
});

test('a replay merged with live events held meanwhile: each once, in seq order', () => {
  const m = new SeqMerger(10);
  m.startReplay(12); // the acknowledged cursor is ahead of what this instance saw
  assert.equal(m.lastSeq, 12);
  assert.equal(m.replaying, true);
  // live events arrive while the replay pages are fetched
  for (const s of [16, 14, 20, 14]) assert.deepEqual(m.live(ev(s)), []);
  assert.deepEqual(m.live(ev(11)), [], 'already acknowledged');
  // page 1: the log read through 15; 13 and 14 were in it, 14 was live too
  assert.deepEqual(seqs(m.page([ev(13, 'replay'), ev(14, 'replay')], 15)), [13, 14]);
  // page 2 through 18 (16 is missing from the replay: e.g. audience; the live copy counts)
  assert.deepEqual(seqs(m.page([ev(17, 'replay')], 18)), [16, 17]);
  assert.deepEqual(seqs(m.finish()), [20]);
  assert.equal(m.replaying, false);
  assert.deepEqual(seqs(m.live(ev(20))), []);
  assert.deepEqual(seqs(m.live(ev(21))), [21]);
});

test('the replay copy of an event that was also live is the one handed over, once', () => {
  const m = new SeqMerger();
  m.startReplay(0);
  m.live(ev(5, 'live'));
  const out = m.page([ev(5, 'replay')], 5);
  assert.deepEqual(out.map((e) => [e.seq, e.data.source]), [[5, 'replay']]);
  assert.deepEqual(m.finish(), []);
});

test('an empty page that moved the scan on, and a cut-off replay', () => {
  const m = new SeqMerger(3);
  m.startReplay(3);
  m.live(ev(9));
  assert.deepEqual(m.page([], 5), [], 'a selective query: nothing in this stretch of the log');
  m.abort();
  assert.equal(m.replaying, false);
  assert.equal(m.lastSeq, 3, 'nothing handed over: the next session replays from here');
  assert.throws(() => m.page([], 1), /outside a replay/);
});

test('any interleaving hands over the union, each once, in order (randomised)', () => {
  for (let round = 0; round < 200; round += 1) {
    const start = Math.floor(Math.random() * 5);
    const all = [];
    for (let seq = start; all.length < 30;) all.push(seq += 1 + Math.floor(Math.random() * 3));
    // some events only live, some only replayed, most both; live ones in order, replay in pages
    const live = all.filter(() => Math.random() < 0.6);
    const replay = all.filter((s) => !live.includes(s) || Math.random() < 0.7);
    const m = new SeqMerger(start);
    m.startReplay(start);
    const out = [];
    let li = 0;
    let ri = 0;
    const inReplay = new Set(replay);
    while (ri < replay.length) {
      const size = 1 + Math.floor(Math.random() * 5);
      const page = replay.slice(ri, ri + size);
      ri += size;
      const through = ri < replay.length ? replay[ri] - 1 : all.at(-1);
      // An event the replay does not have was published before the log was read past it (it is
      // logged before it is published): its live copy arrived before this page. Others may come later.
      const mustHaveArrived = (s) => !inReplay.has(s) && s <= through;
      while (li < live.length && (Math.random() < 0.5 || live.slice(li).some(mustHaveArrived))) {
        out.push(...m.live(ev(live[li++])));
      }
      out.push(...m.page(page.map((s) => ev(s, 'replay')), through));
    }
    out.push(...m.finish());
    while (li < live.length) out.push(...m.live(ev(live[li++])));
    const expected = [...new Set([...live, ...replay])].sort((a, b) => a - b);
    assert.deepEqual(seqs(out), expected, `round ${round}`);
  }
});

test('isEnvelope', () => {
  assert.equal(isEnvelope(ev(1)), true);
  for (const bad of [null, 'x', {}, { event: 'a', seq: '1' }, { event: 'a', seq: -1 }, { event: 'a', seq: 1.5 }, { seq: 1 }]) {
    assert.equal(isEnvelope(bad), false, JSON.stringify(bad));
  }
});
