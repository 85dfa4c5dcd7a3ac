// Every WAMP URI the client uses is defined once, in src/uris.js: no other module spells one
// out (comments aside). The same table in Python (components/uris.py's JS_CLIENT) is held
// equal to it by tests/unit/test_js_uris.py.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

import * as uris from '../../src/uris.js';

const SRC = new URL('../../src/', import.meta.url);
/** A WAMP URI as the client uses them: gateway.* or wamp.*, dotted lowercase words. */
const URI = /\b(?:gateway|wamp)(?:\.[a-z_]+)+\b/g;

/** The code of a module without its comments (a `//` after a ':' is a URL's, not a comment). */
function code(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

test('no module but uris.js spells out a WAMP URI', () => {
  const found = [];
  for (const name of readdirSync(SRC).filter((n) => n.endsWith('.js') && n !== 'uris.js')) {
    for (const match of code(readFileSync(new URL(name, SRC), 'utf8')).matchAll(URI)) found.push(`${name}: ${match[0]}`);
  }
  assert.deepEqual(found, []);
});

test('uris.js exports strings only, each URI (or topic prefix, ending in a dot) once', () => {
  const values = Object.values(uris);
  assert.ok(values.length > 0);
  assert.ok(values.every((v) => typeof v === 'string' && v.match(URI)?.[0] === v.replace(/\.$/, '')), JSON.stringify(values));
  assert.equal(new Set(values).size, values.length);
});
