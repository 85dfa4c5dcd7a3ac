// Batched delivery on the client: gateway.subscribe asks for the batched topic by default, and each
// envelope of a batched event is handed to the handler as a single event would be (in order, deduped
// by seq, gaps, acks). unpack.js alone, then the Gateway against the fake autobahn. No network.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { subscribeArguments } from '../../src/options.js';
import { envelopesOf, subscribeKwargs } from '../../src/unpack.js';
import { BATCH_QUERY_TOPIC_PREFIX, QUERY_TOPIC_PREFIX } from '../../src/uris.js';
import { ENVELOPE, FakeServer, acks, batchTopicOf, gateway, settles, topicOf, waitFor } from './fake-autobahn.mjs';

const Q = 'demo.message where room = "lobby"';

describe('unpack.js', () => {
  test('every positional argument of a batched event is an envelope, in order', () => {
    const args = [ENVELOPE(1), ENVELOPE(2), ENVELOPE(3)];
    assert.deepEqual(envelopesOf(args, true), args);
    assert.deepEqual(envelopesOf([ENVELOPE(4)], true), [ENVELOPE(4)], 'a batch of one is today\'s event');
  });

  test('an unbatched topic hands over its first argument only, as before', () => {
    assert.deepEqual(envelopesOf([ENVELOPE(1), 'extra'], false), [ENVELOPE(1)]);
  });

  test('no arguments, or not a list: one thing that is not an envelope (reported, not dropped silently)', () => {
    assert.deepEqual(envelopesOf([], true), [undefined]);
    assert.deepEqual(envelopesOf(null, true), [undefined]);
    assert.deepEqual(envelopesOf({ 0: ENVELOPE(1) }, false), [undefined]);
  });

  test('gateway.subscribe is asked for batch only when the subscription wants it', () => {
    assert.deepEqual(subscribeKwargs({ persistent: true, batch: true }), { persistent: true, batch: true });
    assert.deepEqual(subscribeKwargs({ persistent: false, batch: false }), { persistent: false });
  });

  test('subscribe options: batch is on by default, may be turned off, and must be a boolean', () => {
    const noop = () => {};
    assert.equal(subscribeArguments(Q, noop).batch, true);
    assert.equal(subscribeArguments(Q, noop, { batch: false }).batch, false);
    assert.throws(() => subscribeArguments(Q, noop, { batch: 'yes' }), /batch/);
  });

  test('the batched prefix is its own, beside the query topics\'', () => {
    assert.equal(QUERY_TOPIC_PREFIX, 'gateway.query.');
    assert.equal(BATCH_QUERY_TOPIC_PREFIX, 'gateway.batch.query.');
    assert.equal(batchTopicOf('k'), `${BATCH_QUERY_TOPIC_PREFIX}k`);
  });
});

describe('the Gateway on a batched topic (fake autobahn)', { concurrency: true }, () => {
  test('by default it subscribes to the batched topic and hands a batch over one envelope at a time, in order', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server);
    await gw.connect();
    const got = [];
    const sub = await gw.subscribe(Q, (e, s) => got.push([e.seq, s === sub]));
    assert.equal(sub.topic, batchTopicOf(Q));
    assert.deepEqual(server.callsOf('gateway.subscribe')[0][3], { persistent: false, batch: true });
    server.postBatch(Q, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    server.post(Q);
    await waitFor(() => got.length === 4, 'four envelopes');
    assert.deepEqual(got.map(([seq]) => seq), [1, 2, 3, 4]);
    assert.ok(got.every(([, same]) => same), 'each with its subscription');
    assert.deepEqual(errors, []);
  });

  test('batch: false subscribes to the unbatched topic, as before', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    const got = [];
    const sub = await gw.subscribe(Q, (e) => got.push(e.seq), { batch: false });
    assert.equal(sub.topic, topicOf(Q));
    assert.deepEqual(server.callsOf('gateway.subscribe')[0][3], { persistent: false });
    server.postBatch(Q, [{}, {}]);
    await waitFor(() => got.length === 2, 'two events');
    assert.deepEqual(got, [1, 2]);
  });

  test('a bad envelope in a batch is reported and the others are handed over', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server);
    await gw.connect();
    const got = [];
    await gw.subscribe(Q, (e) => got.push(e.seq));
    server.lastSession.deliverArgs(batchTopicOf(Q), [ENVELOPE(1), { nope: true }, ENVELOPE(2)]);
    await waitFor(() => got.length === 2, 'the good ones');
    assert.deepEqual(got, [1, 2]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].uri, 'gateway.client.bad_event');
  });

  test('persistent: a batch overlapping the replay is deduped by seq, and acked up to its last envelope', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 10 });
    server.handle('gateway.subscribe', [Q], { persistent: true });
    server.post(Q);
    server.post(Q); // missed: 1, 2
    let live = null;
    server.override('gateway.replay', (args, kwargs, session, original) => {
      const page = original();
      if (live === null) live = server.postBatch(Q, [{}, {}]); // 3, 4 arrive as one batch while the replay runs
      return page;
    });
    const got = [];
    const sub = await (async () => { const p = gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true }); await gw.connect(); return settles(p, 'subscribe()'); })();
    assert.equal(sub.topic, batchTopicOf(Q));
    // Replayed again on the live topic: the batch holds seqs already handed over and a new one.
    server.lastSession.deliverArgs(batchTopicOf(Q), [ENVELOPE(3), ENVELOPE(4), ENVELOPE(5)]);
    await waitFor(() => got.includes(5), 'the new envelope');
    assert.deepEqual(got, [1, 2, 3, 4, 5], 'each once, in order');
    await waitFor(() => acks(server).includes(5), 'the ack of the last envelope');
    assert.equal(sub.lastSeq, 5);
    assert.deepEqual(errors, []);
  });

  test('persistent: a batch that skips seqs is handed over as single events would be (seq is an order, not a count)', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 10 });
    await gw.connect();
    const got = [];
    await gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true });
    server.lastSession.deliverArgs(batchTopicOf(Q), [ENVELOPE(10), ENVELOPE(7), ENVELOPE(12)]);
    await waitFor(() => got.length === 2, 'two envelopes');
    assert.deepEqual(got, [10, 12], 'a seq not above the last handed over is dropped, as for single events');
    await waitFor(() => acks(server).includes(12), 'acked');
    assert.deepEqual(errors, []);
  });

  test('a gateway from before batched delivery refuses batch by name: asked again unbatched, on the unbatched topic', async (t) => {
    const server = new FakeServer();
    server.override('gateway.subscribe', (args, kwargs, session, original) => {
      if ('batch' in kwargs) {
        throw { error: 'gateway.error.invalid_argument', args: ['gateway.subscribe has no argument named "batch"'],
          kwargs: { argument: 'batch' } };
      }
      return original();
    });
    const { gw, errors } = gateway(t, server);
    await gw.connect();
    const got = [];
    const sub = await gw.subscribe(Q, (e) => got.push(e.seq));
    assert.equal(sub.topic, topicOf(Q));
    assert.deepEqual(server.callsOf('gateway.subscribe').map((c) => c[3]), [{ persistent: false, batch: true }, { persistent: false }]);
    server.post(Q);
    await waitFor(() => got.length === 1, 'the event');
    assert.deepEqual(errors, []);
  });

  test('another invalid_argument is not taken for an older gateway: refused as it is', async (t) => {
    const server = new FakeServer();
    server.override('gateway.subscribe', () => {
      throw { error: 'gateway.error.invalid_argument', args: ['gateway.subscribe: query must be a string'], kwargs: { argument: 'query' } };
    });
    const { gw } = gateway(t, server);
    await gw.connect();
    await assert.rejects(gw.subscribe(Q, () => {}), /query must be a string/);
    assert.equal(server.callsOf('gateway.subscribe').length, 1);
  });

  test('close() from a handler in the middle of a batch stops the rest of it', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    const got = [];
    await gw.subscribe(Q, (e) => { got.push(e.seq); if (e.seq === 2) gw.close(); });
    server.postBatch(Q, [{}, {}, {}, {}]);
    await waitFor(() => got.length >= 2, 'two envelopes');
    // One batch is handed over in one synchronous loop: once 2 is in, the loop has ended.
    assert.deepEqual(got, [1, 2], 'nothing after close()');
  });

  test('unsubscribe() from a handler in the middle of a batch stops the rest of it', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    const got = [];
    const sub = await gw.subscribe(Q, (e) => { got.push(e.seq); if (e.seq === 2) sub.unsubscribe(); });
    server.postBatch(Q, [{}, {}, {}]);
    await waitFor(() => got.length >= 2, 'two');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(got, [1, 2]);
  });
});
