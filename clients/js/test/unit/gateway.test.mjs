// The Gateway's protocol logic against a fake autobahn (fake-autobahn.mjs): the
// races a real router does not produce on cue. Each test names the defect it
// guards against. No network.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';

import { ClientErrors, Gateway, MemoryCursorStore, MemoryTokenStore } from '../../src/gateway.js';
import { FakeServer, acks, canceled, gate, gateway, noSuchProcedure, settles, tick, topicOf, waitFor } from './fake-autobahn.mjs';

const Q = 'demo.message where room = "lobby"';

// The tests share nothing (a FakeServer each): they run concurrently, the slow retry ones alongside the rest.
describe('the Gateway against a fake autobahn', { concurrency: true }, () => {
  test('a replay cancelled while the session stays up (a dispatcher died mid-call) is retried: nothing lost, nothing acked past', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 10 });
    // A persistent subscription made earlier, with events it has not seen yet.
    const { id } = server.handle('gateway.subscribe', [Q], { persistent: true });
    const missed = [server.post(Q), server.post(Q), server.post(Q)];
    let replays = 0;
    let live = null;
    server.override('gateway.replay', (args, kwargs, session, original) => {
      replays += 1;
      if (replays === 1) {
        live = server.post(Q); // arrives on the topic while the replay is in flight
        throw canceled();
      }
      return original();
    });
    const got = [];
    const pending = gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true });
    await gw.connect();
    const sub = await settles(pending, 'subscribe()');
    assert.equal(sub.id, id);
    assert.equal(replays, 2, 'the cancelled replay was asked again on the same session');
    assert.deepEqual(got, [...missed, live], 'the missed events, then the live one, each once, in order');
    assert.equal(server.lastSession.on(topicOf(Q)), 1, 'one WAMP subscription on the topic');
    assert.equal(gw.state, 'open');
    await waitFor(() => acks(server).includes(live), 'the ack');
    assert.ok(acks(server).every((seq) => seq >= missed[2]), `nothing acked before the missed events were handed over: ${acks(server)}`);
    assert.deepEqual(errors, []);
  });

  test('a re-subscription whose replay keeps failing holds live events back, says so, and catches up when the gateway is back', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 10 });
    const got = [];
    const sub = await (async () => { const p = gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true }); await gw.connect(); return p; })();
    const first = server.post(Q);
    await waitFor(() => got.length === 1, 'the first event');

    let down = true;
    server.override('gateway.replay', (args, kwargs, session, original) => {
      if (down) {
        server.post(Q); // live events keep coming while the dispatchers are away
        throw noSuchProcedure();
      }
      return original();
    });
    let stray = null;
    gw.on('error', () => { stray ??= server.post(Q); }); // on its way while the client lets the topic go
    const lost = new Promise((resolve) => gw.on('lost', resolve));
    server.connections[0].drop();
    await lost;
    const away = server.post(Q); // logged while the client is away
    await waitFor(() => errors.length === 1, 'the error that says the subscription is not restored', 10000);
    assert.equal(errors[0].uri, 'wamp.error.no_such_procedure');
    assert.match(errors[0].message, /could not be restored/);
    assert.ok(stray !== null);
    assert.deepEqual(got, [first], 'nothing handed over past the events it could not replay');
    await waitFor(() => server.lastSession.on(topicOf(Q)) === 0, 'the topic let go meanwhile');
    assert.ok(acks(server).every((seq) => seq <= first), 'nothing acked past what was handed over');
    assert.equal(sub.active, true);

    down = false; // the gateway is back: the client tries again by itself, on the same session
    const later = server.post(Q);
    await waitFor(() => got.includes(later), 'the catch-up after the gateway came back', 5000);
    const all = server.log.map((e) => e.envelope.seq);
    assert.deepEqual(got, all, 'every event once, in order');
    assert.ok(all.includes(away));
    assert.equal(server.lastSession.on(topicOf(Q)), 1);
    assert.equal(server.sessions.length, 2, 'no reconnect was needed');
  });

  test('close() from a lost listener stops the client: no new attempt, no credentials asked', async (t) => {
    const server = new FakeServer();
    let asked = 0;
    const { gw } = gateway(t, server, { getCredentials: async () => { asked += 1; return null; } });
    const states = [];
    gw.on('state', (s) => states.push(s));
    gw.on('lost', () => { gw.close(); });
    await gw.connect();
    server.connections[0].drop();
    await tick(60); // several backoff periods (10-20 ms): an attempt would have started
    assert.deepEqual(states, ['connecting', 'open', 'lost', 'closed']);
    assert.equal(gw.state, 'closed');
    assert.equal(server.connections.length, 1);
    assert.equal(asked, 1);
  });

  test('close() from a connecting listener, and during getCredentials(), stops the client', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    gw.on('connecting', () => { gw.close(); });
    server.connections[0].drop();
    await tick(60);
    assert.equal(gw.state, 'closed');
    assert.equal(server.connections.length, 1, 'no attempt after close()');

    const answer = gate();
    const other = new FakeServer();
    const { gw: asking } = gateway(t, other, { getCredentials: () => answer.promise });
    const connecting = asking.connect().then(() => 'opened', (err) => err.uri);
    await waitFor(() => asking.state === 'connecting', 'the first attempt');
    await tick(20); // getCredentials() is being asked
    const closed = asking.close();
    answer.open(null);
    await closed;
    assert.equal(await connecting, ClientErrors.CLOSED);
    assert.equal(other.connections.length, 0, 'no connection opened after close()');
  });

  test('two Gateways on the same stores and persistent query: the one that drops still gets every event once', async (t) => {
    const server = new FakeServer();
    const tokenStore = new MemoryTokenStore();
    const cursorStore = new MemoryCursorStore();
    const { gw: a } = gateway(t, server, { tokenStore, cursorStore, ackInterval: 5 });
    const hold = gate();
    let logins = 0;
    const { gw: b } = gateway(t, server, {
      tokenStore, cursorStore, ackInterval: 5,
      getCredentials: async () => { logins += 1; if (logins > 1) await hold.promise; return null; },
    });
    const gotA = [];
    const gotB = [];
    const bOpen = new Promise((resolve) => b.on('open', resolve));
    await Promise.all([a.connect(), b.connect()]);
    const bSession = (await bOpen).session;
    const [subA, subB] = await Promise.all([
      a.subscribe(Q, (e) => gotA.push(e.seq), { persistent: true }),
      b.subscribe(Q, (e) => gotB.push(e.seq), { persistent: true }),
    ]);
    assert.equal(subA.id, subB.id, 'the same subscription on the gateway');
    const before = [server.post(Q), server.post(Q)];
    await waitFor(() => gotB.length === 2, 'b has the first events');
    server.connections.find((c) => c.session?.id === bSession).drop(); // b is away; a goes on receiving, storing its cursor and acking
    const away = [server.post(Q), server.post(Q), server.post(Q)];
    await waitFor(() => server.persistent.get(subA.id).lastSeq === away[2], "a's ack of what b missed");
    assert.equal(cursorStore.get(subA.id), away[2]);
    const resumed = new Promise((resolve) => b.on('resumed', resolve));
    hold.open();
    await settles(resumed, "b's 'resumed'");
    const after = server.post(Q);
    await waitFor(() => gotB.includes(after), 'the live event');
    assert.deepEqual(gotB, [...before, ...away, after], 'b has every event once, in order');
    assert.deepEqual(gotA, [...before, ...away, after]);
  });

  test('two persistent subscriptions with one query in one Gateway: unsubscribing one leaves the other working', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 5 });
    await gw.connect();
    const gotA = [];
    const gotB = [];
    const a = await gw.subscribe(Q, (e) => gotA.push(e.seq), { persistent: true });
    const b = await gw.subscribe(`  ${Q}`, (e) => gotB.push(e.seq), { persistent: true });
    assert.equal(a.id, b.id);
    await a.unsubscribe();
    assert.equal(server.callsOf('gateway.unsubscribe').length, 0, 'the gateway keeps it: b still holds it');
    assert.ok(server.persistent.has(b.id));
    const seq = server.post(Q);
    await waitFor(() => gotB.includes(seq), 'b receives');
    await waitFor(() => server.persistent.get(b.id).lastSeq === seq, "b's ack");
    assert.deepEqual(gotA, []);
    await b.unsubscribe();
    assert.equal(server.callsOf('gateway.unsubscribe').length, 1, 'the last holder ends it');
    assert.equal(server.persistent.has(b.id), false);
    assert.deepEqual(errors, []);
  });

  test('an ack refused with no_such_subscription is a removal: onRemoved, and nothing more is delivered', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server, { ackInterval: 5 });
    await gw.connect();
    const removed = [];
    const got = [];
    const sub = await gw.subscribe(Q, (e) => got.push(e.seq), { persistent: true, onRemoved: (info) => removed.push(info) });
    server.persistent.delete(sub.id); // ended on the gateway; the notice never reached this client
    server.post(Q);
    await waitFor(() => removed.length === 1, 'onRemoved');
    assert.equal(removed[0].id, sub.id);
    assert.equal(removed[0].query, sub.query);
    assert.match(removed[0].reason, /no longer/);
    assert.equal(sub.active, false);
    server.post(Q);
    await tick(20);
    assert.equal(got.length, 1);
    assert.deepEqual(errors, []);
  });

  test('a transient failure retried does not subscribe the topic twice; close() ends the retry pause at once', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    let replays = 0;
    server.override('gateway.replay', (args, kwargs, session, original) => {
      replays += 1;
      if (replays === 1) throw noSuchProcedure();
      return original();
    });
    const pending = gw.subscribe(Q, () => {}, { persistent: true });
    await gw.connect();
    const sub = await pending;
    assert.equal(server.lastSession.on(topicOf(Q)), 1);
    await sub.unsubscribe();
    await waitFor(() => server.lastSession.on(topicOf(Q)) === 0, 'no handler left behind on the router');

    // In a process of its own: a Gateway closed during a retry pause lets Node exit at once.
    const fake = new URL('./fake-autobahn.mjs', import.meta.url).href;
    const lib = new URL('../../src/gateway.js', import.meta.url).href;
    const script = `
      import { Gateway } from ${JSON.stringify(lib)};
      import { FakeServer, noSuchProcedure, waitFor } from ${JSON.stringify(fake)};
      const server = new FakeServer();
      server.override('gateway.replay', () => { throw noSuchProcedure(); });
      const gw = new Gateway({ url: 'ws://fake/ws', autobahn: server.autobahn });
      gw.on('error', () => {});
      gw.subscribe('q', () => {}, { persistent: true }).catch(() => {});
      gw.connect().catch(() => {});
      await waitFor(() => server.callsOf('gateway.replay').length === 4, 'the third retry');
      await gw.close();
      const closedAt = Date.now();
      process.on('exit', () => console.log('lingered', Date.now() - closedAt));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0);
    const lingered = Number(/lingered (\d+)/.exec(out)?.[1]);
    assert.ok(lingered < 100, `the process lived ${lingered} ms after close() (${out})`);
  });

  test('unsubscribe() while gateway.subscribe is in flight, then the connection is lost: it is ended on the next session', async (t) => {
    const server = new FakeServer();
    const { gw, errors } = gateway(t, server);
    await gw.connect();
    const answered = gate();
    server.override('gateway.subscribe', async (args, kwargs, session, original) => {
      const granted = original(); // the gateway made it...
      await answered.promise;     // ...but the answer is late
      return granted;
    });
    const pending = gw.subscribe(Q, () => {}, { persistent: true });
    await waitFor(() => server.callsOf('gateway.subscribe').length === 1, 'the call');
    const [id] = server.persistent.keys();
    const sub = gw.subscriptions[0];
    await sub.unsubscribe();
    await assert.rejects(pending, { uri: ClientErrors.CLOSED });
    server.overrides.delete('gateway.subscribe');
    const resumed = new Promise((resolve) => gw.on('resumed', resolve));
    server.connections[0].drop(); // the answer never comes
    await settles(resumed, "'resumed'");
    await waitFor(() => !server.persistent.has(id), 'the subscription ended on the gateway');
    assert.deepEqual(server.callsOf('gateway.unsubscribe').map((c) => c[2]), [[id]]);
    assert.equal(server.callsOf('gateway.unsubscribe')[0][0], server.lastSession.id, 'on the new session');
    assert.deepEqual(errors, []);
  });

  test('unsubscribe() while gateway.subscribe is in flight, the undo cut off by a lost connection: ended on the next session', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    const answered = gate();
    server.override('gateway.subscribe', async (args, kwargs, session, original) => {
      const granted = original();
      await answered.promise;
      return granted;
    });
    server.override('gateway.unsubscribe', (args, kwargs, session, original) => {
      if (session === server.sessions[0]) {
        server.connections[0].drop(); // the connection goes before the undo is answered
        return new Promise(() => {});
      }
      return original();
    });
    const pending = gw.subscribe(Q, () => {}, { persistent: true });
    pending.catch(() => {});
    await waitFor(() => server.callsOf('gateway.subscribe').length === 1, 'the call');
    const [id] = server.persistent.keys();
    await gw.subscriptions[0].unsubscribe();
    const resumed = new Promise((resolve) => gw.on('resumed', resolve));
    answered.open();
    await settles(resumed, "'resumed'");
    await waitFor(() => !server.persistent.has(id), 'the subscription ended on the gateway');
    const ends = server.callsOf('gateway.unsubscribe');
    assert.equal(ends.length, 2);
    assert.equal(ends[1][0], server.lastSession.id);
  });

  test('a handler that returns a promise is not awaited: the next event does not wait for it', async (t) => {
    const server = new FakeServer();
    const { gw } = gateway(t, server);
    await gw.connect();
    const order = [];
    const slow = gate();
    await gw.subscribe(Q, async (e) => {
      order.push(`start ${e.seq}`);
      if (e.seq === 1) await slow.promise;
      order.push(`end ${e.seq}`);
    });
    server.post(Q);
    server.post(Q);
    await waitFor(() => order.length === 3, 'both handlers started');
    assert.deepEqual(order, ['start 1', 'start 2', 'end 2']);
    slow.open();
    await waitFor(() => order.length === 4, 'the first handler ended');
  });
});
