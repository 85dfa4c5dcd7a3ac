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
  serialize: (/** @type {unknown} */ message) => JSON.stringify(message),
  unserialize: (/** @type {string} */ payload) => JSON.parse(payload),
});

/** @typedef {typeof WebSocket} WebSocketClass */
/** @typedef {{code: number, reason: string, wasClean: boolean}} CloseDetails */

/**
 * The transport autobahn's Session and Connection drive.
 * @typedef {object} Transport
 * @property {string | undefined} protocol
 * @property {typeof JSON_SERIALIZER} serializer
 * @property {{type: string, url: string, protocol: string | null}} info
 * @property {() => void} onopen
 * @property {(message: unknown) => void} onmessage
 * @property {(details: CloseDetails) => void} onclose
 * @property {(message: unknown) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {() => void} drop drop the connection at once, as a network failure would (tests)
 */

/**
 * A transport factory class for autobahn.transports.register(), over `WebSocketImpl`.
 * @param {WebSocketClass} [WebSocketImpl]
 */
export function websocketFactory(WebSocketImpl) {
  return class Factory {
    /** @param {{url: string}} options */
    constructor(options) {
      this.options = options;
    }

    get type() {
      return TRANSPORT_TYPE;
    }

    create() {
      return createTransport(this.options.url, WebSocketImpl ?? globalThis.WebSocket);
    }
  };
}

/**
 * One WAMP transport over one WebSocket to `url`.
 * @param {string} url
 * @param {WebSocketClass | undefined} WebSocketImpl
 * @returns {Transport}
 */
export function createTransport(url, WebSocketImpl) {
  if (typeof WebSocketImpl !== 'function') {
    throw new Error('no WebSocket in this environment: Node 20 needs --experimental-websocket (Node 22+ has it)');
  }
  /** @type {Transport} */
  const transport = {
    protocol: undefined,
    serializer: JSON_SERIALIZER,
    info: { type: 'websocket', url, protocol: null },
    onopen() {},
    onmessage() {},
    onclose() {},
    send() {},
    close() {},
    drop() {},
  };
  const ws = new WebSocketImpl(url, [PROTOCOL]);
  ws.binaryType = 'arraybuffer';
  let closed = false;
  const closeOnce = (/** @type {CloseDetails} */ details) => {
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

/** @param {WebSocket} ws @param {number} [code] @param {string} [reason] */
function quietClose(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch {
    try { ws.close(); } catch { /* failing already */ }
  }
}

/**
 * Register this transport with an autobahn module (once), and return the type name to use.
 * @param {Pick<import('./types.js').Autobahn, 'transports'>} autobahn
 * @param {WebSocketClass} [WebSocketImpl]
 */
export function registerTransport(autobahn, WebSocketImpl) {
  if (!autobahn.transports.isRegistered(TRANSPORT_TYPE)) {
    autobahn.transports.register(TRANSPORT_TYPE, websocketFactory(WebSocketImpl));
  }
  return TRANSPORT_TYPE;
}
