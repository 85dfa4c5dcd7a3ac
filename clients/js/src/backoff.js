// The reconnect schedule: exponential backoff with bounded jitter. Pure.
//
// Retry n (n = 1 after the first failure or a lost connection) waits
//     base(n) = min(maxDelay, initialDelay * factor^(n-1))   seconds,
// drawn uniformly from [base(n) * (1 - jitter), base(n)]: never more than
// maxDelay, and clients that lost the same server at the same moment do not
// all come back at once.

import { describe, invalidArgument } from './errors.js';

export const DEFAULT_RECONNECT = Object.freeze({
  initialDelay: 0.5,
  maxDelay: 30,
  factor: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
});

const KEYS = Object.keys(DEFAULT_RECONNECT);

/** @param {string} where @param {unknown} value @param {{min: number, max?: number}} range */
function finite(where, value, { min, max = Infinity }) {
  if (typeof value !== 'number' || Number.isNaN(value) || !Number.isFinite(value)) {
    throw invalidArgument(where, `must be a finite number, not ${describe(value)}`);
  }
  if (value < min || value > max) {
    const range = max === Infinity ? `at least ${min}` : `between ${min} and ${max}`;
    throw invalidArgument(where, `must be ${range}, not ${value}`);
  }
  return value;
}

/**
 * The validated reconnect policy: DEFAULT_RECONNECT with `options` over it.
 * Throws a GatewayError naming the option for an unknown key or a bad value.
 * @param {unknown} [options]
 * @returns {Readonly<import('./types.js').ReconnectPolicy>}
 */
export function reconnectPolicy(options = {}, where = 'options.reconnect') {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument(where, `must be an object like {initialDelay: 0.5, maxDelay: 30}, not ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key)) {
      throw invalidArgument(`${where}.${key}`, `unknown option (known: ${KEYS.join(', ')})`);
    }
  }
  /** @type {import('./types.js').ReconnectPolicy} */
  const p = { ...DEFAULT_RECONNECT, ...options };
  finite(`${where}.initialDelay`, p.initialDelay, { min: 0 });
  finite(`${where}.maxDelay`, p.maxDelay, { min: 0 });
  if (p.maxDelay < p.initialDelay) {
    throw invalidArgument(`${where}.maxDelay`, `must be at least initialDelay (${p.initialDelay}), not ${p.maxDelay}`);
  }
  finite(`${where}.factor`, p.factor, { min: 1 });
  finite(`${where}.jitter`, p.jitter, { min: 0, max: 1 });
  if (p.maxAttempts !== Infinity && !(Number.isInteger(p.maxAttempts) && p.maxAttempts >= 1)) {
    throw invalidArgument(`${where}.maxAttempts`, `must be a whole number of at least 1 or Infinity, not ${describe(p.maxAttempts)}`);
  }
  return Object.freeze(p);
}

/**
 * [shortest, longest] delay in seconds of retry `attempt` (1-based).
 * @param {Readonly<import('./types.js').ReconnectPolicy>} policy @param {number} attempt
 */
export function delayBounds(policy, attempt) {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw invalidArgument('attempt', `must be a whole number of at least 1, not ${describe(attempt)}`);
  }
  // factor^(attempt-1) overflows to Infinity for large attempts; min() caps it at maxDelay.
  const base = Math.min(policy.maxDelay, policy.initialDelay * Math.pow(policy.factor, attempt - 1));
  return [base * (1 - policy.jitter), base];
}

/**
 * The delay in seconds before retry `attempt` (1-based); `random` returns a number in [0, 1).
 * @param {Readonly<import('./types.js').ReconnectPolicy>} policy @param {number} attempt @param {() => number} [random]
 */
export function backoffDelay(policy, attempt, random = Math.random) {
  const [low, high] = delayBounds(policy, attempt);
  return low + (high - low) * random();
}
