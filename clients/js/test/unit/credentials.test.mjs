import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CredentialPlan, jwtExpiry, parseCredentials } from '../../src/credentials.js';

const NOW = 1_800_000_000;
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwtWith = (claims) => `${b64({ alg: 'HS256' })}.${b64(claims)}.signature`;

test('no credential and no getCredentials: anonymous, always', () => {
  const plan = new CredentialPlan({ canAsk: false });
  assert.deepEqual(plan.next(NOW), { action: 'use', credential: null });
  plan.presented();
  assert.deepEqual(plan.next(NOW), { action: 'use', credential: null });
});

test('a ticket works once; then getCredentials() is asked, or the client stops (never anonymous)', () => {
  const asking = new CredentialPlan({ ticket: 'gt_1', canAsk: true });
  assert.deepEqual(asking.next(NOW), { action: 'use', credential: { kind: 'ticket', value: 'gt_1' } });
  assert.deepEqual(asking.next(NOW).action, 'use', 'not presented yet (e.g. the server was unreachable): still good');
  asking.presented();
  assert.deepEqual(asking.next(NOW), { action: 'ask' });
  assert.deepEqual(asking.supplied({ ticket: 'gt_2' }), { action: 'use', credential: { kind: 'ticket', value: 'gt_2' } });
  assert.deepEqual(asking.next(NOW).credential, { kind: 'ticket', value: 'gt_2' });

  const alone = new CredentialPlan({ ticket: 'gt_1', canAsk: false });
  alone.presented();
  const decision = alone.next(NOW);
  assert.equal(decision.action, 'fail');
  assert.equal(decision.error.uri, 'gateway.client.no_credentials');
  assert.match(decision.error.message, /^the ticket was used \(a ticket works once\), and there is no getCredentials\(\) to get another; not connecting as anonymous instead$/);
});

test('a JWT is reused until it expires or is refused', () => {
  const token = jwtWith({ sub: 'a', exp: NOW + 60 });
  const plan = new CredentialPlan({ jwt: token, canAsk: false });
  plan.presented();
  assert.deepEqual(plan.next(NOW), { action: 'use', credential: { kind: 'jwt', value: token } });
  const expired = plan.next(NOW + 60);
  assert.equal(expired.action, 'fail');
  assert.match(expired.error.message, /the JWT expired at 2027-01-15T08:01:00.000Z/);

  const refused = new CredentialPlan({ jwt: token, canAsk: true });
  refused.refused('the JWT\'s signature does not match');
  assert.deepEqual(refused.next(NOW), { action: 'ask' });
  const alone = new CredentialPlan({ jwt: token, canAsk: false });
  alone.refused('the JWT has expired');
  assert.match(alone.next(NOW).error.message, /^the gateway refused the JWT \(the JWT has expired\), and there is no getCredentials\(\)/);

  const noExp = new CredentialPlan({ jwt: 'not.a-jwt', canAsk: false });
  assert.equal(noExp.next(NOW).action, 'use', 'a JWT it cannot read: the gateway decides');
});

test('getCredentials() decides every connection without a credential in hand; null means anonymous', () => {
  const plan = new CredentialPlan({ canAsk: true });
  assert.deepEqual(plan.next(NOW), { action: 'ask' });
  assert.deepEqual(plan.supplied(null), { action: 'use', credential: null });
  assert.deepEqual(plan.next(NOW), { action: 'ask' }, 'asked again next time: the user may have logged in');
  plan.supplied({ jwt: jwtWith({ exp: NOW + 5 }) });
  assert.equal(plan.next(NOW).action, 'use');
  assert.deepEqual(plan.next(NOW + 5), { action: 'ask' });
});

test('what getCredentials() may answer, and what it is told otherwise', () => {
  assert.equal(parseCredentials(null), null);
  assert.equal(parseCredentials(undefined), null);
  assert.deepEqual(parseCredentials({ ticket: 't' }), { kind: 'ticket', value: 't' });
  assert.deepEqual(parseCredentials({ jwt: 'j', ticket: null }), { kind: 'jwt', value: 'j' });
  const cases = [
    ['gt_1', /must be \{ticket\}, \{jwt\} or null, not "gt_1"/],
    [[], /not an array/],
    [{}, /exactly one of ticket and jwt, not neither/],
    [{ ticket: 'a', jwt: 'b' }, /exactly one of ticket and jwt, not both/],
    [{ user: 'x' }, /unknown key "user" \(expected ticket or jwt\)/],
    [{ ticket: 42 }, /getCredentials\(\) result\.ticket must be a non-empty string, not 42/],
    [{ jwt: '' }, /\.jwt must be a non-empty string, not ""/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => parseCredentials(value), { name: 'GatewayError', uri: 'gateway.client.invalid_credentials', message });
  }
  const plan = new CredentialPlan({ canAsk: true });
  assert.throws(() => plan.supplied({ tiket: 'x' }), /unknown key "tiket"/);
});

test('jwtExpiry reads exp without checking the signature (the gateway does)', () => {
  assert.equal(jwtExpiry(jwtWith({ exp: 123 })), 123);
  assert.equal(jwtExpiry(jwtWith({ sub: 'a' })), null);
  assert.equal(jwtExpiry('a.b'), null);
  assert.equal(jwtExpiry('a.!!!.c'), null);
  assert.equal(jwtExpiry(undefined), null);
});
