// How the status page asks (clients/status/page/poller.js): one question at a time, none while the page
// is hidden, a late answer not shown, the figures stale after a failure. Pure: fake timers, no network.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Poller } from '../page/poller.js';
import { History } from '../page/rates.js';

/** Timers run by hand: `fire()` runs those due, in order. */
class Timers {
  constructor() {
    this.now = 0;
    this.due = new Map();
    this.id = 0;
  }

  setTimeout(f, ms) {
    this.id += 1;
    this.due.set(this.id, { at: this.now + ms, f });
    return this.id;
  }

  clearTimeout(id) {
    this.due.delete(id);
  }

  get pending() {
    return this.due.size;
  }

  /** Move the clock by `ms`, running the timers due meanwhile. */
  advance(ms) {
    this.now += ms;
    for (const [id, t] of [...this.due].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now) {
        this.due.delete(id);
        t.f();
      }
    }
  }
}

/** A gateway answering each question when told (`answer`, `fail`). */
class Gateway {
  constructor() {
    this.questions = [];
  }

  ask() {
    return new Promise((resolve, reject) => this.questions.push({ resolve, reject }));
  }

  async answer(value) {
    this.questions.shift().resolve(value);
    await settle();
  }

  async fail(err) {
    this.questions.shift().reject(err);
    await settle();
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function page({ hidden = false } = {}) {
  const timers = new Timers();
  const gw = new Gateway();
  const seen = new History();
  const state = { hidden, shown: [], stale: [], failures: [] };
  const poller = new Poller({
    ask: () => gw.ask(),
    show: (a) => { seen.add(a); state.shown.push(a.time); },
    accepts: (a) => seen.accepts(a),
    failed: (err) => { state.failures.push(err); return !/not_authorized/.test(err.message); },
    stale: (s) => state.stale.push(s),
    hidden: () => state.hidden,
    interval: 1000,
    timers,
  });
  return { timers, gw, state, poller };
}

test('one question at a time, the next a second after the answer', async () => {
  const { timers, gw, state, poller } = page();
  poller.start();
  assert.equal(gw.questions.length, 1);
  timers.advance(5000);
  assert.equal(gw.questions.length, 1, 'no second question while one is unanswered');
  await gw.answer({ time: 1 });
  assert.deepEqual(state.shown, [1]);
  timers.advance(999);
  assert.equal(gw.questions.length, 0);
  timers.advance(1);
  assert.equal(gw.questions.length, 1);
  poller.stop();
});

test('nothing is asked while the page is hidden; once visible, at once', async () => {
  const { timers, gw, state, poller } = page();
  poller.start();
  await gw.answer({ time: 1 });
  state.hidden = true;
  poller.visibilityChanged();
  assert.equal(timers.pending, 0);
  timers.advance(60_000);
  assert.equal(gw.questions.length, 0);
  state.hidden = false;
  poller.visibilityChanged();
  assert.equal(gw.questions.length, 1);
  // Hidden while a question is out: its answer is shown, and no next one is asked until visible.
  state.hidden = true;
  poller.visibilityChanged();
  await gw.answer({ time: 2 });
  assert.deepEqual(state.shown, [1, 2]);
  timers.advance(10_000);
  assert.equal(gw.questions.length, 0);
  state.hidden = false;
  poller.visibilityChanged();
  poller.visibilityChanged();  // told twice: still one question
  assert.equal(gw.questions.length, 1);
  poller.stop();
});

test('a page opened hidden asks nothing until shown', () => {
  const { gw, state, poller } = page({ hidden: true });
  poller.start();
  assert.equal(gw.questions.length, 0);
  state.hidden = false;
  poller.visibilityChanged();
  assert.equal(gw.questions.length, 1);
  poller.stop();
});

test('a late answer (older than one shown) is not shown', async () => {
  const { timers, gw, state, poller } = page();
  poller.start();
  await gw.answer({ time: 10 });
  timers.advance(1000);
  await gw.answer({ time: 9 });  // the slower bridge
  assert.deepEqual(state.shown, [10]);
  timers.advance(1000);
  await gw.answer({ time: 11 });
  assert.deepEqual(state.shown, [10, 11]);
  poller.stop();
});

test('after a failure the figures are stale until the next answer, and asking goes on', async () => {
  const { timers, gw, state, poller } = page();
  poller.start();
  await gw.answer({ time: 1 });
  timers.advance(1000);
  await gw.fail(new Error('gateway.error.unavailable'));
  assert.deepEqual(state.stale, [false, true]);
  timers.advance(1000);
  await gw.answer({ time: 3 });
  assert.deepEqual(state.stale, [false, true, false]);
  assert.deepEqual(state.shown, [1, 3]);
  poller.stop();
});

test('a refusal stops the asking; after stop nothing is shown or asked', async () => {
  const { timers, gw, state, poller } = page();
  poller.start();
  await gw.fail(new Error('wamp.error.not_authorized'));
  timers.advance(10_000);
  assert.equal(gw.questions.length, 0);
  assert.equal(state.failures.length, 1);
  const other = page();
  other.poller.start();
  other.poller.stop();
  await other.gw.answer({ time: 1 });
  other.timers.advance(10_000);
  assert.deepEqual(other.state.shown, []);
  assert.equal(other.gw.questions.length, 0);
});
