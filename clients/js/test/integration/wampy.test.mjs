// Interop: the gateway's protocol used with wampy.js, an independent WAMP client, and none of our code.
// A subscription by query is two plain WAMP steps (call gateway.subscribe, subscribe to the topic it
// grants); events arrive as one positional argument, the envelope {event, id, seq, time, data}.
//
// Run by tests/integration/test_js_interop.py against a real node:
//   GW_TEST_WS_URL, GW_TEST_BRIDGE_URL, GW_TEST_API_KEY  (node --experimental-websocket --test ...)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';

const env = {
  wsUrl: process.env.GW_TEST_WS_URL,
  bridgeUrl: process.env.GW_TEST_BRIDGE_URL,
  apiKey: process.env.GW_TEST_API_KEY,
};
const missing = Object.entries({ GW_TEST_WS_URL: env.wsUrl, GW_TEST_BRIDGE_URL: env.bridgeUrl,
  GW_TEST_API_KEY: env.apiKey }).filter(([, v]) => !v).map(([k]) => k);
// Skipped (not failed) without a gateway, so that running the whole folder by hand says why;
// the pytest wrapper refuses a run with skipped tests.
const skip = missing.length ? `needs a running gateway: set ${missing.join(', ')}` : false;

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** A wampy session: JSON over Node's built-in WebSocket (wampy needs the constructor handed in under Node). */
async function wampy(options = {}) {
  const client = new Wampy(env.wsUrl, {
    realm: 'gateway',
    ws: globalThis.WebSocket,
    serializer: new JsonSerializer(),
    autoReconnect: false,
    ...options,
  });
  const welcome = await client.connect();
  return { client, welcome };
}

async function postEvent(event, data) {
  const response = await fetch(`${env.bridgeUrl}/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ event, data }),
  });
  const body = await response.json();
  assert.equal(response.status, 202, `POST /events ${event}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

async function ticket(user) {
  const response = await fetch(`${env.bridgeUrl}/tickets`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  const body = await response.json();
  assert.equal(response.status, 201, `POST /tickets: ${response.status} ${JSON.stringify(body)}`);
  return body.ticket;
}

/** Poll until check() is true; on timeout fail with what describe() says about the state. */
async function waitFor(check, describe, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('wampy subscribes by query and receives only the matching events, as envelopes', { skip }, async () => {
  const room = `wampy-${process.pid}-${Date.now()}`;
  const { client, welcome } = await wampy();
  try {
    assert.equal(welcome.authrole, 'anonymous');
    assert.match(welcome.authextra.client_token, /\S/, 'the WELCOME carries a client token');

    const query = `demo.message where room = '${room}'`;
    const granted = await client.call('gateway.subscribe', [query]);
    const sub = granted.argsList[0];
    assert.equal(sub.query, `demo.message where room = "${room}"`, 'the canonical form of the query');
    assert.equal(sub.persistent, false);
    assert.match(sub.topic, /^gateway\.query\./);

    const received = [];
    await client.subscribe(sub.topic, ({ argsList, argsDict }) => {
      assert.equal(argsList.length, 1, 'the envelope is the one positional argument');
      assert.deepEqual(argsDict ?? {}, {});
      received.push(argsList[0]);
    });

    const messages = [
      { room, text: 'one', author: 'w' },
      { room: `${room}-not`, text: 'elsewhere', author: 'w' },
      { room, text: 'two', author: 'w' },
      { room: room.toUpperCase(), text: 'case differs', author: 'w' },
      { room, text: 'three', author: 'w' },
    ];
    const accepted = [];
    for (const data of messages) accepted.push({ data, answer: await postEvent('demo.message', data) });
    const expected = accepted.filter(({ data }) => data.room === room);

    // Delivery is in order, so once the last matching event is here any wrongly delivered one
    // (posted before it) would be here too.
    await waitFor(() => received.length >= expected.length,
      () => `received ${received.length} of ${expected.length}: ${JSON.stringify(received)}`);
    assert.deepEqual(received.map((e) => e.data.text), ['one', 'two', 'three']);
    for (const [i, envelope] of received.entries()) {
      const { data, answer } = expected[i];
      assert.deepEqual(Object.keys(envelope).sort(), ['data', 'event', 'id', 'seq', 'time']);
      assert.equal(envelope.event, 'demo.message');
      assert.equal(envelope.id, answer.id);
      assert.equal(envelope.seq, answer.seq);
      assert.match(envelope.time, RFC3339);
      assert.deepEqual(envelope.data, data);
    }
    assert.ok(received[0].seq < received[1].seq && received[1].seq < received[2].seq, 'seq increases');
  } finally {
    await client.disconnect();
  }
});

test('wampy gets gateway.error.invalid_query with the position of the fault', { skip }, async () => {
  const { client } = await wampy();
  try {
    const query = "demo.message where room = = 'x'";
    await assert.rejects(client.call('gateway.subscribe', [query]), (error) => {
      assert.equal(error.name, 'CallError');
      assert.equal(error.errorUri, 'gateway.error.invalid_query');
      assert.equal(error.argsDict.position, 27, JSON.stringify(error.argsDict));
      assert.equal(query[error.argsDict.position - 1], '=', 'the 1-based column of the second "="');
      assert.match(error.argsList[0], /\^/, 'the message shows a caret under the fault');
      return true;
    });
    // The session survives a refused query.
    const granted = await client.call('gateway.subscribe', ['demo.message']);
    assert.equal(granted.argsList[0].query, 'demo.message');
  } finally {
    await client.disconnect();
  }
});

test("a query topic is only for the session it was granted to, even with wampy", { skip }, async () => {
  const { client: owner } = await wampy();
  const { client: other } = await wampy();
  try {
    const { topic } = (await owner.call('gateway.subscribe', ["demo.message where room = 'mine'"])).argsList[0];
    await assert.rejects(other.subscribe(topic, () => {}), (error) => {
      assert.equal(error.name, 'SubscribeError');
      assert.equal(error.errorUri, 'wamp.error.not_authorized');
      return true;
    });
  } finally {
    await owner.disconnect();
    await other.disconnect();
  }
});

test('wampy logs in with a ticket from POST /tickets (WAMP-ticket, no library of ours)', { skip }, async () => {
  const user = `wampy-user-${process.pid}`;
  const oneTime = await ticket(user);
  const { client, welcome } = await wampy({
    authid: user,
    authmethods: ['ticket'],
    onChallenge: (method) => {
      assert.equal(method, 'ticket');
      return oneTime;
    },
  });
  try {
    assert.equal(welcome.authid, user);
    assert.equal(welcome.authrole, 'user');
    assert.equal(welcome.authextra.user, user);
    const me = (await client.call('gateway.whoami')).argsList[0];
    assert.equal(me.user, user);
  } finally {
    await client.disconnect();
  }
});
