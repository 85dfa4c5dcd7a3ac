import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TOKEN_COOKIE, buildCookie, expiredCookie, readCookie } from '../../src/cookies.js';
import { CookieTokenStore } from '../../src/stores.js';

test('the token cookie expires when the gateway says, with Path, SameSite=Lax, and Secure on https', () => {
  assert.equal(TOKEN_COOKIE, 'gateway_client_token');
  assert.equal(buildCookie(TOKEN_COOKIE, 'ct_abc', { expires: '2026-12-05T10:00:00Z' }),
    'gateway_client_token=ct_abc; Expires=Sat, 05 Dec 2026 10:00:00 GMT; Path=/; SameSite=Lax');
  assert.equal(buildCookie('t', 'ct_abc', { expires: '2026-12-05T10:00:00+02:00', secure: true, path: '/app' }),
    't=ct_abc; Expires=Sat, 05 Dec 2026 08:00:00 GMT; Path=/app; SameSite=Lax; Secure');
  assert.equal(buildCookie('t', 'v', { sameSite: 'None' }), 't=v; Path=/; SameSite=None; Secure', 'None needs Secure');
  assert.equal(buildCookie('t', 'a b;c=d'), 't=a%20b%3Bc%3Dd; Path=/; SameSite=Lax', 'the value is encoded');
  assert.equal(expiredCookie('t'), 't=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax');
});

test('bad cookie input says what is wrong', () => {
  assert.throws(() => buildCookie('a b', 'v'), /cookie name: must be a non-empty cookie name/);
  assert.throws(() => buildCookie('', 'v'), /cookie name/);
  assert.throws(() => buildCookie('t', 5), /cookie value: must be a string, not 5/);
  assert.throws(() => buildCookie('t', 'v', { expires: 'next tuesday' }), /expiry must be an RFC 3339 time, not "next tuesday"/);
  assert.throws(() => buildCookie('t', 'v', { path: 'app' }), /cookie path: must start with "\/"/);
  assert.throws(() => buildCookie('t', 'v', { sameSite: 'lax' }), /cookie sameSite: must be one of Strict, Lax, None, not "lax"/);
  assert.throws(() => buildCookie('t', 'v', { domain: 'a;b' }), /cookie domain/);
});

test('reading a cookie from document.cookie', () => {
  const jar = 'a=1; gateway_client_token=ct_x%2By; gateway_client_token_old=no; q="quoted"';
  assert.equal(readCookie(jar, 'gateway_client_token'), 'ct_x+y');
  assert.equal(readCookie(jar, 'a'), '1');
  assert.equal(readCookie(jar, 'q'), 'quoted');
  assert.equal(readCookie(jar, 'missing'), null);
  assert.equal(readCookie('', 'a'), null);
  assert.equal(readCookie('a=%E0%A4%A', 'a'), '%E0%A4%A', 'bad percent-encoding comes back as is');
  assert.equal(readCookie('noequals; a=2', 'a'), '2');
});

/** document.cookie as a browser does it: assignments add, replace or (expired) delete one cookie. */
class FakeDocument {
  jar = new Map();
  written = [];
  get cookie() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  set cookie(line) {
    this.written.push(line);
    const [pair, ...attributes] = line.split('; ');
    const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
    const expires = attributes.find((a) => a.startsWith('Expires='));
    if (expires && Date.parse(expires.slice(8)) <= Date.now()) this.jar.delete(name);
    else this.jar.set(name, value);
  }
}

test('CookieTokenStore keeps the token in a cookie until the gateway says', () => {
  const document = new FakeDocument();
  const store = new CookieTokenStore({ document });
  assert.equal(store.get(), null);
  store.set('ct_1', '2099-01-01T00:00:00Z');
  assert.deepEqual(store.get(), { token: 'ct_1', expires: null });
  assert.equal(document.written[0], 'gateway_client_token=ct_1; Expires=Thu, 01 Jan 2099 00:00:00 GMT; Path=/; SameSite=Lax');
  store.clear();
  assert.equal(store.get(), null);
  const secure = new CookieTokenStore({ document, secure: true, name: 'tok' });
  secure.set('ct_2', '2099-01-01T00:00:00Z');
  assert.match(document.written.at(-1), /^tok=ct_2; .*; Secure$/);
  assert.throws(() => new CookieTokenStore({ document, sameSite: 'sometimes' }), /sameSite/);
  assert.throws(() => new CookieTokenStore({}), /needs a document/);
  assert.throws(() => store.set('', 'x'), /must be a non-empty string/);
});
