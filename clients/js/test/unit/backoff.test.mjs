import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_RECONNECT, backoffDelay, delayBounds, reconnectPolicy } from '../../src/backoff.js';

test('the defaults', () => {
  assert.deepEqual(reconnectPolicy(), DEFAULT_RECONNECT);
  assert.deepEqual({ ...DEFAULT_RECONNECT }, { initialDelay: 0.5, maxDelay: 30, factor: 2, jitter: 0.5, maxAttempts: Infinity });
});

test('delays grow by factor from initialDelay, capped at maxDelay', () => {
  const p = reconnectPolicy({ jitter: 0 });
  const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(p, n));
  assert.deepEqual(delays, [0.5, 1, 2, 4, 8, 16, 30, 30]);
  assert.equal(backoffDelay(p, 5000), 30, 'no overflow for a long outage');
});

test('jitter stays within [base * (1 - jitter), base], never above maxDelay', () => {
  const p = reconnectPolicy({ initialDelay: 1, maxDelay: 10, factor: 3, jitter: 0.25 });
  assert.deepEqual(delayBounds(p, 1), [0.75, 1]);
  assert.deepEqual(delayBounds(p, 2), [2.25, 3]);
  assert.deepEqual(delayBounds(p, 3), [6.75, 9]);
  assert.deepEqual(delayBounds(p, 4), [7.5, 10]);
  assert.equal(backoffDelay(p, 2, () => 0), 2.25);
  assert.equal(backoffDelay(p, 2, () => 0.999999) <= 3, true);
  for (let attempt = 1; attempt < 40; attempt += 1) {
    for (let i = 0; i < 50; i += 1) {
      const d = backoffDelay(p, attempt);
      const [low, high] = delayBounds(p, attempt);
      assert.ok(d >= low && d <= high && d <= p.maxDelay, `attempt ${attempt}: ${d} not in [${low}, ${high}]`);
    }
  }
  const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(p, 2)));
  assert.ok(spread.size > 1, 'jitter actually varies');
});

test('bad reconnect options are refused, naming the option', () => {
  const cases = [
    [{ initialDelay: -1 }, /options\.reconnect\.initialDelay: must be at least 0, not -1/],
    [{ initialDelay: '1' }, /initialDelay: must be a finite number, not "1"/],
    [{ maxDelay: 0.1, initialDelay: 1 }, /maxDelay: must be at least initialDelay \(1\), not 0.1/],
    [{ factor: 0.5 }, /factor: must be at least 1, not 0.5/],
    [{ jitter: 1.5 }, /jitter: must be between 0 and 1, not 1.5/],
    [{ jitter: NaN }, /jitter: must be a finite number, not NaN/],
    [{ maxAttempts: 0 }, /maxAttempts: must be a whole number of at least 1 or Infinity, not 0/],
    [{ maxAttempts: 2.5 }, /maxAttempts/],
    [{ maxDelays: 3 }, /options\.reconnect\.maxDelays: unknown option \(known: initialDelay, maxDelay, factor, jitter, maxAttempts\)/],
    [[], /options\.reconnect: must be an object/],
    [null, /options\.reconnect: must be an object/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => reconnectPolicy(options), { name: 'GatewayError', uri: 'gateway.client.invalid_argument', message });
  }
  assert.throws(() => delayBounds(reconnectPolicy(), 0), /attempt: must be a whole number of at least 1/);
});
