import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ClientErrors, GatewayError, fromWampError, isConnectionLost, isTransient } from '../../src/errors.js';

test('a WAMP error from the gateway keeps its URI, message, position and details', () => {
  const wamp = { error: 'gateway.error.invalid_query', args: ['unknown field (column 20)'], kwargs: { position: 20, hint: 'room' } };
  const err = fromWampError(wamp, { query: "demo.message where rom = 'x'" });
  assert.ok(err instanceof GatewayError && err instanceof Error);
  assert.equal(err.name, 'GatewayError');
  assert.equal(err.uri, 'gateway.error.invalid_query');
  assert.equal(err.message, 'unknown field (column 20)');
  assert.equal(err.position, 20);
  assert.equal(err.query, "demo.message where rom = 'x'");
  assert.deepEqual(err.details, { position: 20, hint: 'room', args: ['unknown field (column 20)'] });
  assert.equal(fromWampError({ error: 'wamp.error.canceled' }).message, 'wamp.error.canceled', 'no message: the URI');
  assert.equal(fromWampError(err), err);
});

test('what autobahn throws locally, and anything else', () => {
  const lost = fromWampError('session not open');
  assert.equal(lost.uri, ClientErrors.CONNECTION_LOST);
  assert.equal(isConnectionLost(lost), true);
  assert.equal(fromWampError('something odd').uri, null);
  const cause = new TypeError('x');
  const wrapped = fromWampError(cause);
  assert.equal(wrapped.message, 'x');
  assert.equal(wrapped.cause, cause);
  assert.equal(isConnectionLost(new GatewayError('no', { uri: 'gateway.error.invalid_query' })), false);
  assert.equal(isConnectionLost(new Error('x')), false);
});

test('a call cancelled by the router is transient, not a lost connection (the session is still up)', () => {
  const cancelled = fromWampError({ error: 'wamp.error.canceled', args: ['callee disconnected from in-flight request'] });
  assert.equal(isConnectionLost(cancelled), false);
  assert.equal(isTransient(cancelled), true);
  assert.equal(isTransient(fromWampError({ error: 'wamp.error.no_such_procedure' })), true);
  assert.equal(isTransient(fromWampError({ error: 'wamp.error.no_available_callee' })), true);
  assert.equal(isTransient(fromWampError('session not open')), false);
  assert.equal(isTransient(fromWampError({ error: 'gateway.error.no_such_subscription' })), false);
});
