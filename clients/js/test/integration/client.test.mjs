// The client against a real gateway node: subscribing, errors, logins, reconnects.
// Run by tests/integration/test_js_client.py (node --experimental-websocket --test).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import autobahn from 'autobahn';

import { ClientErrors, Gateway, GatewayError, MemoryTokenStore } from '../../src/gateway.js';
import {
  deleteSubscription, env, jwt, killSession, message, next, postBatch, postEvent, record, ticket, unique, waitFor,
} from './env.mjs';

const FAST = { initialDelay: 0.05, maxDelay: 0.2, factor: 2, jitter: 0.5 };

/** A Gateway that is closed after the test, whatever happens. */
function gateway(t, options = {}) {
  const gw = new Gateway({ url: env.ws, reconnect: FAST, ...options });
  t.after(() => gw.close());
  return gw;
}

test('an anonymous client subscribed by query receives the posted events with their seq, in order', async (t) => {
  const room = unique('room');
  const gw = gateway(t);
  const log = record(gw);
  const got = [];
  const subscribed = gw.subscribe(`demo.message where room = '${room}'`, (envelope, sub) => got.push([envelope, sub]));
  await gw.connect();
  const sub = await subscribed;
  assert.equal(gw.state, 'open');
  assert.deepEqual(log.states.map(([s]) => s), ['connecting', 'open']);
  assert.equal(gw.identity.role, 'anonymous');
  assert.match(gw.clientToken, /^ct_/);
  assert.ok(Date.parse(gw.clientTokenExpires) > Date.now());
  assert.match(sub.id, /^s_/);
  assert.match(sub.topic, /^gateway\.batch\.query\./, 'batched by default');
  assert.equal(sub.query, `demo.message where room = "${room}"`, 'the canonical query');
  assert.equal(sub.persistent, false);

  await postEvent('demo.message', message('elsewhere', 'not for us'));
  const seqs = await postBatch([1, 2, 3].map((i) => ({ event: 'demo.message', data: message(room, `m${i}`) })));
  await waitFor(() => got.length >= 3, 'three events');
  assert.deepEqual(got.map(([e]) => e.seq), seqs);
  assert.deepEqual(got.map(([e]) => e.data.text), ['m1', 'm2', 'm3']);
  const [first, handedSub] = got[0];
  assert.equal(handedSub, sub);
  assert.equal(first.event, 'demo.message');
  assert.equal(typeof first.id, 'string');
  assert.ok(!Number.isNaN(Date.parse(first.time)));
  assert.equal(sub.lastSeq, seqs[2]);
  assert.deepEqual(log.errors, []);
});

test('a refused query rejects with a GatewayError that says where; bad arguments are named', async (t) => {
  const gw = gateway(t);
  await gw.connect();
  const query = "demo.message where rom = 'x'";
  const err = await gw.subscribe(query, () => {}).then(() => null, (e) => e);
  assert.ok(err instanceof GatewayError, `not a GatewayError: ${err}`);
  assert.equal(err.name, 'GatewayError');
  assert.equal(err.uri, 'gateway.error.invalid_query');
  assert.equal(typeof err.position, 'number');
  assert.equal(query.slice(err.position - 1, err.position + 2), 'rom', `position ${err.position} is not at "rom"`);
  assert.equal(err.query, query);
  assert.match(err.message, /did you mean 'room'/);
  assert.equal(gw.subscriptions.length, 0, 'a refused subscription is not kept');

  const hidden = await gw.subscribe('demo.alert', () => {}).then(() => null, (e) => e);
  assert.equal(hidden.uri, 'gateway.error.not_authorized');
  assert.match(hidden.message, /demo\.alert/);

  await assert.rejects(gw.subscribe('', () => {}), { uri: ClientErrors.INVALID_ARGUMENT, message: /subscribe\(query\)/ });
  await assert.rejects(gw.subscribe('demo.message', 'nope'), { message: /handler must be a function/ });
  await assert.rejects(gw.subscribe('demo.message', () => {}, { persistant: true }), { message: /unknown option/ });
  await assert.rejects(gw.call('gateway.no_such_thing'), { uri: 'wamp.error.not_authorized' });
  assert.throws(() => new Gateway({ url: 'http://x' }), { uri: ClientErrors.INVALID_ARGUMENT, message: /options\.url/ });
  assert.throws(() => gw.on('opened', () => {}), { message: /unknown event/ });
});

test('catalog and whoami', async (t) => {
  const gw = gateway(t, { ticket: await ticket('carol', ['staff']) });
  await gw.connect();
  const catalog = await gw.catalog();
  const names = catalog.classes.map((c) => c.name);
  for (const name of ['demo.message', 'demo.order', 'demo.alert']) assert.ok(names.includes(name), `${name} in ${names}`);
  const me = await gw.whoami();
  assert.equal(me.authid, 'carol');
  assert.equal(me.role, 'user');
  assert.deepEqual(me.roles, ['staff']);
  assert.equal(me.client_token, gw.clientToken);
  assert.deepEqual(gw.identity, { authid: 'carol', role: 'user', user: 'carol', roles: ['staff'] });

  const anonymous = gateway(t);
  await anonymous.connect();
  const visible = (await anonymous.catalog()).classes.map((c) => c.name);
  assert.ok(visible.includes('demo.message') && !visible.includes('demo.alert') && !visible.includes('demo.order'));
});

test('after a disconnect, getCredentials() is asked again: a new ticket, the same user, subscriptions restored', async (t) => {
  const user = unique('alice');
  const issued = [];
  const gw = gateway(t, {
    getCredentials: async () => {
      issued.push(await ticket(user));
      return { ticket: issued.at(-1) };
    },
  });
  const log = record(gw);
  const room = unique('room');
  const got = [];
  await gw.connect();
  await gw.subscribe(`demo.message where room = '${room}'`, (e) => got.push(e.seq));
  const first = await gw.whoami();
  assert.equal(first.authid, user);
  assert.equal(issued.length, 1);

  const resumed = next(gw, 'resumed');
  await killSession(first.session);
  const [detail] = await resumed;
  assert.equal(issued.length, 2, 'getCredentials() was asked for a new ticket');
  assert.notEqual(issued[0], issued[1]);
  const second = await gw.whoami();
  assert.notEqual(second.session, first.session);
  assert.equal(second.authid, user, 'the same user, not anonymous');
  assert.equal(second.role, 'user');
  assert.equal(detail.authid, user);
  assert.equal(second.client_token, first.client_token, 'the token was presented again');
  const names = log.events.map(([name]) => name);
  assert.deepEqual(names.slice(names.indexOf('lost')), ['lost', 'connecting', 'resumed']);
  assert.equal(log.events.find(([name]) => name === 'lost')[1].reason, 'wamp.close.killed');

  const seq = await postEvent('demo.message', message(room, 'after'));
  await waitFor(() => got.includes(seq), 'the event posted after the reconnect');

  // The first ticket was spent: the gateway refuses it now.
  const stale = new Gateway({ url: env.ws, ticket: issued[0], reconnect: FAST });
  await assert.rejects(stale.connect(), { uri: ClientErrors.NO_CREDENTIALS, message: /refused the ticket.*used/ });
  assert.equal(stale.state, 'closed');
});

test('a ticket-only client whose connection drops ends closed with an error, not anonymous', async (t) => {
  const gw = gateway(t, { ticket: await ticket('dave') });
  const log = record(gw);
  await gw.connect();
  assert.equal(gw.identity.authid, 'dave');
  const closed = next(gw, 'closed');
  assert.equal(gw._debugDropConnection(), true);
  const [detail] = await closed;
  assert.equal(gw.state, 'closed');
  assert.ok(detail.error instanceof GatewayError);
  assert.equal(detail.error.uri, ClientErrors.NO_CREDENTIALS);
  assert.match(detail.error.message, /ticket was used.*no getCredentials\(\).*not connecting as anonymous/);
  assert.deepEqual(log.states.map(([s]) => s), ['connecting', 'open', 'lost', 'closed'], 'never connected again');
  assert.equal(log.errors.at(-1), detail.error, 'also reported on error');
  await assert.rejects(gw.connect(), { uri: ClientErrors.CLOSED });
  await assert.rejects(gw.subscribe('demo.message', () => {}), { uri: ClientErrors.CLOSED });
});

test('JWT logins: reused after a disconnect while valid; refused or expired ones are replaced or stop the client', async (t) => {
  const token = jwt({ sub: 'erin', roles: ['staff'] });
  const gw = gateway(t, { jwt: token });
  await gw.connect();
  assert.deepEqual(gw.identity, { authid: 'erin', role: 'user', user: 'erin', roles: ['staff'] });
  const resumed = next(gw, 'resumed');
  gw._debugDropConnection();
  await resumed;
  assert.equal((await gw.whoami()).authid, 'erin', 'the same JWT logged in again');

  // A JWT signed with another secret is refused; getCredentials() is asked for another.
  const answers = [{ jwt: jwt({ sub: 'frank' }, 'not-the-secret-not-the-secret-0123456789') }, { jwt: jwt({ sub: 'frank' }) }];
  const asked = [];
  const replaced = gateway(t, { getCredentials: () => { asked.push(1); return answers[asked.length - 1]; } });
  const log = record(replaced);
  await replaced.connect();
  assert.equal(asked.length, 2);
  assert.equal(replaced.identity.authid, 'frank');
  assert.equal(log.errors[0].uri, 'gateway.error.authentication_failed');
  assert.match(log.errors[0].message, /signature/);

  // An expired JWT with nothing to replace it: closed, never anonymous.
  const expired = new Gateway({ url: env.ws, jwt: jwt({ sub: 'gina', exp: Math.floor(Date.now() / 1000) - 5 }) });
  await assert.rejects(expired.connect(), { uri: ClientErrors.NO_CREDENTIALS, message: /JWT expired/ });
});

test('getCredentials() may choose anonymous (null); a bad answer closes with an error that says so', async (t) => {
  const gw = gateway(t, { getCredentials: async () => null });
  await gw.connect();
  assert.equal(gw.identity.role, 'anonymous');

  const bad = new Gateway({ url: env.ws, getCredentials: () => ({ tiket: 'x' }) });
  await assert.rejects(bad.connect(), { uri: ClientErrors.INVALID_CREDENTIALS, message: /unknown key "tiket"/ });
  assert.equal(bad.state, 'closed');
});

test('two Gateways sharing a token store present the same client token', async (t) => {
  const tokens = new MemoryTokenStore();
  const one = gateway(t, { tokenStore: tokens });
  await one.connect();
  assert.equal(tokens.get().token, one.clientToken);
  assert.equal(tokens.get().expires, one.clientTokenExpires);
  await one.close();
  const two = gateway(t, { tokenStore: tokens });
  await two.connect();
  assert.equal(two.clientToken, one.clientToken);
  assert.equal((await two.whoami()).client_token, one.clientToken);
  const stranger = gateway(t);
  await stranger.connect();
  assert.notEqual(stranger.clientToken, one.clientToken);
});

test('a server-side kill while events flow: a persistent subscription hands over each event once, in order', async (t) => {
  const room = unique('flow');
  const gw = gateway(t, { ackInterval: 50 });
  const got = [];
  await gw.connect();
  await gw.subscribe(`demo.message where room = '${room}'`, (e) => got.push(e.seq), { persistent: true });
  const posted = [];
  let killed = 0;
  for (let i = 0; i < 60; i += 1) {
    posted.push(await postEvent('demo.message', message(room, `e${i}`)));
    if (i === 20) {
      const resumed = next(gw, 'resumed');
      await killSession((await gw.whoami()).session);
      killed += 1;
      // keep posting while the client is away and while it comes back
      for (let j = 0; j < 10; j += 1) posted.push(await postEvent('demo.message', message(room, `away${j}`)));
      await resumed;
    }
    if (i === 40) gw._debugDropConnection(); // and once from the client's side, without waiting
  }
  await waitFor(() => got.length >= posted.length, `${posted.length} events (got ${got.length})`);
  assert.equal(killed, 1);
  assert.deepEqual(got, posted);
});

test('a handler that throws is reported on error and delivery goes on; nothing arrives after unsubscribe', async (t) => {
  const room = unique('room');
  const gw = gateway(t);
  const log = record(gw);
  await gw.connect();
  const good = [];
  const badSaw = [];
  const bad = await gw.subscribe(`demo.message where room = '${room}'`, (e) => {
    badSaw.push(e.seq);
    if (e.data.text === 'boom') throw new Error('handler bug');
  });
  const sub = await gw.subscribe(`demo.message where room = "${room}"`, (e) => good.push(e.data.text));
  assert.equal(bad.topic, sub.topic, 'the same canonical query: one topic');
  await postBatch(['a', 'boom', 'b'].map((text) => ({ event: 'demo.message', data: message(room, text) })));
  await waitFor(() => good.length === 3, 'three events on the good handler');
  assert.deepEqual(good, ['a', 'boom', 'b']);
  assert.equal(log.errors.length, 1);
  assert.equal(log.errors[0].uri, ClientErrors.HANDLER_ERROR);
  assert.match(log.errors[0].message, /threw on seq \d+: handler bug/);
  assert.equal(log.errors[0].cause.message, 'handler bug');

  await sub.unsubscribe();
  await sub.unsubscribe(); // idempotent
  assert.equal(sub.active, false);
  const after = await postEvent('demo.message', message(room, 'after'));
  // The other subscription of the same topic gets it: it did reach this session.
  await waitFor(() => badSaw.includes(after), 'the event on the other subscription');
  assert.deepEqual(good, ['a', 'boom', 'b'], 'nothing after unsubscribe');
});

test('events posted together reach a batched subscription one by one, in order; batch: false takes the unbatched topic', async (t) => {
  const room = unique('batch');
  const sizes = []; // the positional arguments of each WAMP event on the batched topic
  const gw = gateway(t, { autobahn: countingArgs(sizes) });
  await gw.connect();
  const batched = [];
  const plain = [];
  const a = await gw.subscribe(`demo.message where room = '${room}'`, (e) => batched.push(e.seq));
  const b = await gw.subscribe(`demo.message where room = '${room}'`, (e) => plain.push(e.seq), { batch: false });
  assert.match(a.topic, /^gateway\.batch\.query\./);
  assert.equal(b.topic, a.topic.replace('gateway.batch.query.', 'gateway.query.'));
  const seqs = await postBatch(Array.from({ length: 20 }, (_, n) => ({ event: 'demo.message', data: message(room, String(n)) })));
  const single = await postEvent('demo.message', message(room, 'one'));
  await waitFor(() => batched.length === 21 && plain.length === 21, 'every event on both');
  assert.deepEqual(batched, [...seqs, single]);
  assert.deepEqual(plain, [...seqs, single]);
  assert.ok(Math.max(...sizes) > 1, `one POST /events/batch is one turn of the dispatcher: a batch (${sizes})`);
  assert.equal(sizes[sizes.length - 1], 1, 'a lone event is a batch of one');
});

/** autobahn, recording how many positional arguments each event on a batched topic has. */
function countingArgs(sizes) {
  function Connection(options) {
    const connection = new autobahn.Connection(options);
    let onopen = null;
    Object.defineProperty(connection, 'onopen', {
      configurable: true,
      get: () => onopen,
      set: (fn) => {
        onopen = typeof fn !== 'function' ? fn : (session, details) => {
          const subscribe = session.subscribe.bind(session);
          session.subscribe = (topic, handler, ...rest) => subscribe(topic, (args, ...more) => {
            if (topic.startsWith('gateway.batch.query.')) sizes.push(args.length);
            return handler(args, ...more);
          }, ...rest);
          return fn(session, details);
        };
      },
    });
    return connection;
  }
  return { ...autobahn, Connection };
}

test('subscribe() before connect() is queued until open; the gateway ending a subscription calls onRemoved', async (t) => {
  const room = unique('room');
  const gw = gateway(t);
  const got = [];
  const removed = [];
  const pending = gw.subscribe(`demo.message where room = '${room}'`, (e) => got.push(e.seq), {
    persistent: true,
    onRemoved: (info) => removed.push(info),
  });
  assert.equal(gw.state, 'idle');
  await gw.connect();
  const sub = await pending;
  assert.match(sub.id, /^p_/);
  const seq = await postEvent('demo.message', message(room, 'x'));
  await waitFor(() => got.includes(seq), 'the event');

  const r = await deleteSubscription(sub.id);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await waitFor(() => removed.length === 1, 'onRemoved');
  assert.deepEqual({ ...removed[0], reason: typeof removed[0].reason }, { id: sub.id, topic: sub.topic, query: sub.query, reason: 'string' });
  assert.equal(sub.active, false);
  assert.equal(gw.subscriptions.includes(sub), false);
});

test('an unreachable gateway: backoff within its bounds, then closed after maxAttempts', async () => {
  const gw = new Gateway({ url: 'ws://127.0.0.1:9/ws', reconnect: { initialDelay: 0.02, maxDelay: 0.05, jitter: 0.5, maxAttempts: 4 } });
  const log = record(gw);
  await assert.rejects(gw.connect(), { uri: ClientErrors.GAVE_UP, message: /gave up after 4 failed connection attempt/ });
  const connecting = log.events.filter(([name]) => name === 'connecting').map(([, d]) => d);
  assert.deepEqual(connecting.map((d) => d.attempt), [1, 2, 3, 4]);
  assert.equal(connecting[0].delay, 0);
  assert.ok(connecting[1].delay >= 0.01 && connecting[1].delay <= 0.02, `${connecting[1].delay}`);
  assert.ok(connecting[2].delay >= 0.02 && connecting[2].delay <= 0.04, `${connecting[2].delay}`);
  assert.ok(connecting[3].delay >= 0.025 && connecting[3].delay <= 0.05, `${connecting[3].delay}`);
  assert.equal(gw.state, 'closed');
  await gw.close(); // idempotent after closing for good
});

test('close() is idempotent and leaves nothing behind: a Node process exits by itself', async () => {
  const script = `
    import { Gateway } from ${JSON.stringify(fileURLToPath(new URL('../../src/gateway.js', import.meta.url)))};
    const gw = new Gateway({ url: process.env.GW_TEST_WS_URL, ackInterval: 60000 });
    const sub = gw.subscribe("demo.message where room = 'exit'", () => {}, { persistent: true });
    await gw.connect();
    await sub;
    await Promise.all([gw.close(), gw.close()]);
    await gw.close();
    console.log('closed', gw.state);
  `;
  const child = spawn(process.execPath, ['--experimental-websocket', '--input-type=module', '-e', script],
    { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve('still running after 10 s'); }, 10000);
    child.on('exit', (c) => { clearTimeout(timer); resolve(c); });
  });
  assert.equal(code, 0, `exit: ${code}\n${out}\n${err}`);
  assert.match(out, /closed closed/);
});
