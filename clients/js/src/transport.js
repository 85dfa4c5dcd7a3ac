// The WebSocket transport the client hands autobahn-js: WAMP over JSON, with
// failures reported the same way everywhere.
//
// autobahn-js' own transport waits for the WebSocket's 'close' event, which
// Node 20's WebSocket never fires for a refused or failed connection (only
// 'error'), nor for close() while still connecting: an attempt would hang
// until its timeout. This one reports exactly one close per socket, on
// whichever comes first: 'close', 'error', or close() before the socket
// opened. The shape (send, close, onopen, onmessage, onclose, info) is what
// autobahn's Session and Connection use, in autobahn 22 (browser build) and 26.

export const TRANSPORT_TYPE = 'events-gateway-websocket';
const PROTOCOL = 'wamp.2.json';
const CONNECTING = 0;

const JSON_SERIALIZER = Object.freeze({
  SERIALIZER_ID: 'json',
  serialize: (message) => JSON.stringify(message),
  unserialize: (payload) => JSON.parse(payload),
});

/** A transport factory class for autobahn.transports.register(), over `WebSocketImpl`. */
export function websocketFactory(WebSocketImpl) {
  function Factory(options) {
    this._options = options;
  }
  Factory.prototype.type = TRANSPORT_TYPE;
  Factory.prototype.create = function create() {
    return createTransport(this._options.url, WebSocketImpl ?? globalThis.WebSocket);
  };
  return Factory;
}

/** One WAMP transport over one WebSocket to `url`. */
export function createTransport(url, WebSocketImpl) {
  if (typeof WebSocketImpl !== 'function') {
    throw new Error('no WebSocket in this environment: Node 20 needs --experimental-websocket (Node 22+ has it)');
  }
  const transport = {
    protocol: undefined,
    serializer: JSON_SERIALIZER,
    info: { type: 'websocket', url, protocol: null },
    onopen() {},
    onmessage() {},
    onclose() {},
  };
  const ws = new WebSocketImpl(url, [PROTOCOL]);
  ws.binaryType = 'arraybuffer';
  let closed = false;
  const closeOnce = (details) => {
    if (closed) return;
    closed = true;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    transport.onclose(details);
  };
  ws.onopen = () => {
    transport.protocol = ws.protocol;
    transport.info.protocol = ws.protocol;
    transport.onopen();
  };
  ws.onmessage = (event) => {
    let message;
    try {
      const text = typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data);
      message = JSON.parse(text);
    } catch (err) {
      transport.close(1003, 'a message that is not JSON');
      return;
    }
    transport.onmessage(message);
  };
  ws.onclose = (event) => closeOnce({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  ws.onerror = () => {
    closeOnce({ code: 1006, reason: 'the WebSocket connection failed', wasClean: false });
    quietClose(ws); // after closeOnce: close() may fire 'error' again, synchronously
  };
  transport.send = (message) => {
    ws.send(JSON.stringify(message));
  };
  transport.close = (code, reason) => {
    if (ws.readyState === CONNECTING) {
      // A socket closed while connecting may never say so: report it now.
      closeOnce({ code: 1006, reason: 'closed before the connection opened', wasClean: false });
      quietClose(ws);
      return;
    }
    quietClose(ws, code, reason);
  };
  /** Drop the connection at once, as a network failure would (tests). */
  transport.drop = () => {
    closeOnce({ code: 1006, reason: 'dropped', wasClean: false });
    quietClose(ws, 4000, 'dropped');
  };
  return transport;
}

function quietClose(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch {
    try { ws.close(); } catch { /* failing already */ }
  }
}

/** Register this transport with an autobahn module (once), and return the type name to use. */
export function registerTransport(autobahn, WebSocketImpl) {
  if (!autobahn.transports.isRegistered(TRANSPORT_TYPE)) {
    autobahn.transports.register(TRANSPORT_TYPE, websocketFactory(WebSocketImpl));
  }
  return TRANSPORT_TYPE;
}
