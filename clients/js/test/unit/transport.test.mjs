import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createTransport, registerTransport, TRANSPORT_TYPE } from '../../src/transport.js';

/** A WebSocket as scripted by the test: it records what the transport does with it. */
class FakeWebSocket {
  static last = null;
  readyState = 0;
  protocol = '';
  sent = [];
  closes = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    FakeWebSocket.last = this;
  }
  send(data) { this.sent.push(data); }
  close(code, reason) {
    this.closes.push([code, reason]);
    if (this.readyState === 0) this.onerror?.({}); // Node 20: close() while connecting fires 'error', synchronously
    this.readyState = 2;
  }
}

function open() {
  const closes = [];
  const messages = [];
  const t = createTransport('ws://h/ws', FakeWebSocket);
  const ws = FakeWebSocket.last;
  t.onclose = (d) => closes.push(d);
  t.onmessage = (m) => messages.push(m);
  return { t, ws, closes, messages };
}

test('WAMP over JSON: the subprotocol, sending and receiving', () => {
  const { t, ws, messages } = open();
  assert.deepEqual(ws.protocols, ['wamp.2.json']);
  let opened = 0;
  t.onopen = () => { opened += 1; };
  ws.readyState = 1;
  ws.protocol = 'wamp.2.json';
  ws.onopen();
  assert.equal(opened, 1);
  assert.equal(t.info.protocol, 'wamp.2.json');
  t.send([1, 'gateway', {}]);
  assert.deepEqual(ws.sent, ['[1,"gateway",{}]']);
  ws.onmessage({ data: '[2,123,{}]' });
  ws.onmessage({ data: new TextEncoder().encode('[36,1,2,{},[{"seq":1}]]').buffer });
  assert.deepEqual(messages, [[2, 123, {}], [36, 1, 2, {}, [{ seq: 1 }]]]);
});

test("a refused connection that only fires 'error' (Node 20) is reported as closed, once", () => {
  const { ws, closes } = open();
  ws.onerror({});
  assert.deepEqual(closes, [{ code: 1006, reason: 'the WebSocket connection failed', wasClean: false }]);
  assert.equal(ws.onclose, null, 'later events of that socket are ignored');
});

test("'error' then 'close' (browsers) is one close", () => {
  const { ws, closes } = open();
  const onclose = ws.onclose;
  ws.onerror({});
  onclose?.({ code: 1006, reason: '', wasClean: false });
  assert.equal(closes.length, 1);
});

test('close() while connecting is reported at once; once open, the close event reports it', () => {
  const connecting = open();
  connecting.t.close();
  assert.deepEqual(connecting.closes, [{ code: 1006, reason: 'closed before the connection opened', wasClean: false }]);

  const opened = open();
  opened.ws.readyState = 1;
  opened.t.close(1000, 'bye');
  assert.deepEqual(opened.ws.closes, [[1000, 'bye']]);
  assert.deepEqual(opened.closes, []);
  opened.ws.onclose({ code: 1000, reason: 'bye', wasClean: true });
  assert.deepEqual(opened.closes, [{ code: 1000, reason: 'bye', wasClean: true }]);
});

test('drop() reports the loss at once; a message that is not JSON closes the connection', () => {
  const dropped = open();
  dropped.ws.readyState = 1;
  dropped.t.drop();
  assert.equal(dropped.closes.length, 1);
  assert.deepEqual(dropped.ws.closes, [[4000, 'dropped']]);

  const garbage = open();
  garbage.ws.readyState = 1;
  garbage.ws.onmessage({ data: 'not json' });
  assert.deepEqual(garbage.messages, []);
  assert.deepEqual(garbage.ws.closes, [[1003, 'a message that is not JSON']]);
});

test('no WebSocket: a clear error', () => {
  assert.throws(() => createTransport('ws://h', undefined), /no WebSocket in this environment: Node 20 needs --experimental-websocket/);
});

test('registered once with autobahn under its own name', () => {
  const repo = new Map();
  const autobahn = { transports: { isRegistered: (n) => repo.has(n), register: (n, f) => repo.set(n, f) } };
  assert.equal(registerTransport(autobahn, FakeWebSocket), TRANSPORT_TYPE);
  const Factory = repo.get(TRANSPORT_TYPE);
  registerTransport(autobahn, FakeWebSocket);
  assert.equal(repo.get(TRANSPORT_TYPE), Factory);
  const t = new Factory({ url: 'ws://x/ws' }).create();
  assert.equal(t.info.url, 'ws://x/ws');
  assert.equal(FakeWebSocket.last.url, 'ws://x/ws');
});
