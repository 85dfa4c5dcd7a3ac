// options.url as a list (the nodes of a cluster): which URL each attempt goes to, when, and
// that a session on another node is restored as any reconnect is. One FakeServer stands for
// the whole cluster (one state, one seq); server.down holds the URLs of the nodes that are away.
// No network.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ClientErrors, Gateway } from '../../src/gateway.js';
import { FakeServer, acks, gate, gateway, settles, topicOf, waitFor } from './fake-autobahn.mjs';

const [A, B, C] = ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'];
const Q = 'demo.message where room = "lobby"';
/** Backoff without jitter: round n waits exactly 0.01 * 2^(n-1) s, at most 0.04 s. */
const EXACT = { initialDelay: 0.01, maxDelay: 0.04, factor: 2, jitter: 0 };

/** A Gateway whose first attempt goes to url[`start`] (the draw made at random otherwise). */
function startingAt(t, server, start, options) {
  const random = Math.random;
  Math.random = () => (start + 0.5) / options.url.length; // the draw is made in the constructor, nowhere else
  try {
    return gateway(t, server, options);
  } finally {
    Math.random = random;
  }
}

/** Every 'connecting' detail and every 'open'/'resumed' URL, in order. */
function record(gw) {
  const seen = [];
  gw.on('connecting', ({ url, delay, attempt }) => seen.push({ url, delay, attempt }));
  gw.on('open', ({ url }) => seen.push({ open: url }));
  gw.on('resumed', ({ url }) => seen.push({ resumed: url }));
  return seen;
}

describe('a list of router URLs', { concurrency: true }, () => {
  test('the first attempt goes to a URL drawn at random, then round robin: the node that just failed comes last', async (t) => {
    for (const [start, order] of [[0, [A, B, C]], [1, [B, C, A]], [2, [C, A, B]]]) {
      const server = new FakeServer();
      server.down = new Set([A, B, C]);
      const { gw } = startingAt(t, server, start, { url: [A, B, C], reconnect: EXACT });
      gw.connect().catch(() => {});
      await waitFor(() => server.connections.length >= 7, 'seven attempts');
      assert.deepEqual(server.connections.slice(0, 7).map((c) => c.options.url), [...order, ...order, order[0]]);
      assert.deepEqual(server.connections[0].options.transports[0].url, order[0]);
      await gw.close();
    }
  });

  test('the backoff applies per full round of failed URLs: within a round the next attempt starts at once', async (t) => {
    const server = new FakeServer();
    server.down = new Set([A, B, C]);
    const { gw, errors } = startingAt(t, server, 0, { url: [A, B, C], reconnect: EXACT });
    const seen = record(gw);
    const connected = gw.connect();
    await waitFor(() => seen.length >= 10, 'ten attempts');
    assert.deepEqual(seen.slice(0, 10).map(({ url, delay }) => [url, delay]), [
      [A, 0], [B, 0], [C, 0],          // the first round: no waiting
      [A, 0.01], [B, 0], [C, 0],       // the second: one backoff step before it, none within
      [A, 0.02], [B, 0], [C, 0],
      [A, 0.04],                       // capped at maxDelay
    ]);
    assert.deepEqual(seen.slice(0, 10).map((s) => s.attempt), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    server.down.delete(B);
    await settles(connected, 'connect()');
    assert.equal(gw.url, B);
    assert.deepEqual(seen.at(-1), { open: B });
    assert.deepEqual(errors, []);
  });

  test('a lost session fails over to the next URL at once; with one URL the loss waits the backoff as before', async (t) => {
    const server = new FakeServer();
    const { gw } = startingAt(t, server, 0, { url: [A, B], reconnect: EXACT });
    const seen = record(gw);
    const lost = [];
    gw.on('lost', (detail) => lost.push(detail));
    assert.equal(gw.url, null, 'no session yet');
    await gw.connect();
    assert.equal(gw.url, A);
    server.down.add(A);
    const resumed = new Promise((resolve) => gw.on('resumed', resolve));
    server.connections[0].drop();
    assert.equal((await settles(resumed, "'resumed'")).url, B);
    assert.equal(gw.url, B);
    assert.deepEqual(lost.map((d) => d.url), [A]);
    assert.deepEqual(seen, [{ url: A, delay: 0, attempt: 1 }, { open: A }, { url: B, delay: 0, attempt: 1 }, { resumed: B }]);

    // B goes too while A is still away: B first came last, so A is tried first, then B after a backoff.
    server.down.add(B);
    server.connections.at(-1).drop();
    await waitFor(() => seen.length >= 6, 'two attempts');
    assert.deepEqual(seen.slice(4, 6).map(({ url, delay }) => [url, delay]), [[A, 0], [B, 0.01]]);
    server.down.delete(A);
    await waitFor(() => gw.state === 'open' && gw.url === A, 'back on A');

    const single = new FakeServer();
    const { gw: one } = gateway(t, single, { url: A, reconnect: EXACT });
    const delays = [];
    one.on('connecting', ({ url, delay }) => delays.push([url, delay]));
    await one.connect();
    const back = new Promise((resolve) => one.on('resumed', resolve));
    single.connections[0].drop();
    await settles(back, "'resumed'");
    assert.deepEqual(delays, [[A, 0], [A, 0.01]], 'one URL: the loss waits one backoff step, as a plain string always did');
  });

  test('after a failover, subscriptions are restored on the other node: the persistent one replays from the last seq seen', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = startingAt(t, server, 0, { url: [A, B], ackInterval: 60_000 }); // nothing acked before the failover
    const got = [];
    const plain = [];
    await gw.connect();
    const sub = await gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true });
    await gw.subscribe('demo.message', (e) => plain.push(e.seq));
    const first = [server.post(Q), server.post(Q)];
    await waitFor(() => got.length === 2, 'the events before the failover');
    assert.deepEqual(acks(server), [], 'the gateway\'s cursor is behind: only the client knows it saw them');

    const held = gate();
    server.beforeOpen = (conn) => (conn.options.url === B ? held.promise : undefined);
    server.down.add(A);
    const resumed = new Promise((resolve) => gw.on('resumed', resolve));
    server.connections[0].drop();
    await waitFor(() => server.connections.some((c) => c.options.url === B), 'the attempt on B');
    const missed = [server.post(Q), server.post(Q)]; // while the client is on its way to B
    held.open();
    const detail = await settles(resumed, "'resumed'");
    assert.equal(detail.url, B);
    assert.equal(detail.clientToken, 'ct_fake');

    const onB = server.connections.at(-1);
    assert.equal(onB.options.url, B);
    assert.deepEqual(onB.options.authextra, { client_token: 'ct_fake' }, 'the client token presented on B');
    const replays = server.callsOf('gateway.replay').filter((c) => c[0] === server.lastSession.id);
    assert.equal(replays[0][2][0], sub.id, 'the same persistent subscription, resumed');
    assert.equal(replays[0][2][1], first[1], 'replayed from the last seq seen, not the gateway\'s cursor');
    assert.deepEqual(got, [...first, ...missed], 'what was missed, once, in order');
    assert.equal(server.lastSession.on(topicOf(Q)), 1);
    assert.equal(server.lastSession.on(topicOf('demo.message')), 1, 'the plain subscription too');

    const live = server.post(Q);
    const livePlain = server.post('demo.message');
    await waitFor(() => got.includes(live) && plain.includes(livePlain), 'live events on B');
    assert.deepEqual(got, [...first, ...missed, live]);
    assert.equal(gw.url, B);
    assert.deepEqual(errors, []);
  });

  test('maxAttempts counts attempts, each URL tried is one; the error names every URL', async (t) => {
    const server = new FakeServer();
    server.down = new Set([A, B]);
    const { gw } = startingAt(t, server, 1, { url: [A, B], reconnect: { ...EXACT, maxAttempts: 3 } });
    await assert.rejects(gw.connect(), {
      uri: ClientErrors.GAVE_UP,
      message: /^gave up after 3 failed connection attempt\(s\) to ws:\/\/a\/ws, ws:\/\/b\/ws; the last: unreachable \(connection refused\)$/,
    });
    assert.deepEqual(server.connections.map((c) => c.options.url), [B, A, B]);
  });

  test('getCredentials() failing is not a node failure: the same URL again, after a round\'s backoff', async (t) => {
    const server = new FakeServer();
    let asked = 0;
    const { gw, errors } = startingAt(t, server, 0, {
      url: [A, B], reconnect: EXACT,
      getCredentials: async () => { asked += 1; if (asked === 1) throw new Error('the web-app is down'); return null; },
    });
    const seen = record(gw);
    await gw.connect();
    assert.deepEqual(seen.map((s) => s.url ?? s), [A, A, { open: A }]);
    assert.equal(seen[1].delay, 0.01);
    assert.equal(errors[0].uri, ClientErrors.INVALID_CREDENTIALS);
  });

  test('new Gateway() refuses a bad list at once, naming the entry', () => {
    assert.throws(() => new Gateway({ url: [A, 'tcp://b:8080'] }), { uri: ClientErrors.INVALID_ARGUMENT, message: /^options\.url\[1\]: must be a ws:\/\/ or wss:\/\/ URL/ });
    assert.throws(() => new Gateway({ url: [] }), { uri: ClientErrors.INVALID_ARGUMENT, message: /options\.url: .* not an empty array/ });
  });
});
