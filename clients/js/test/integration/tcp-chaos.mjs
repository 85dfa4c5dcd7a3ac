// A loopback TCP proxy that breaks connections on purpose, for tests of reconnecting clients.
//
//   const proxy = await ChaosProxy.start({ targetPort: 8080 });   // listens on 127.0.0.1:<free port>
//   proxy.port                  // where clients connect instead of the target
//   proxy.dropAll()             // cut every live connection now (RST to the client, like a dead network)
//   proxy.startChaos({ minMs: 150, maxMs: 600, random: seededRandom(seed) })  // dropAll() at random moments
//   await proxy.stopChaos()
//   await proxy.close()         // stops the chaos, cuts everything, stops listening
//
// It forwards bytes untouched (WebSocket, HTTP, anything), so what a client sees is exactly what
// it would see from the real router, until the proxy cuts the line.
import net from 'node:net';

/** A deterministic random() in [0, 1) from a 32-bit seed (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return function random() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class ChaosProxy {
  /** Listen on host:0 (a free port) and forward each connection to targetHost:targetPort. */
  static async start({ targetPort, targetHost = '127.0.0.1', host = '127.0.0.1' }) {
    if (!Number.isInteger(targetPort) || targetPort <= 0 || targetPort > 65535) {
      throw new TypeError(`ChaosProxy: targetPort must be a TCP port number, got ${JSON.stringify(targetPort)}`);
    }
    const proxy = new ChaosProxy(targetHost, targetPort);
    await new Promise((resolve, reject) => {
      proxy._server.once('error', reject);
      proxy._server.listen(0, host, () => {
        proxy._server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  constructor(targetHost, targetPort) {
    this.targetHost = targetHost;
    this.targetPort = targetPort;
    /** How many client connections were accepted, and how many were cut by dropAll(). */
    this.accepted = 0;
    this.dropped = 0;
    /** How many times dropAll() ran (by hand or by the chaos timer). */
    this.drops = 0;
    this._pairs = new Set();
    this._timer = null;
    this._closed = false;
    this._server = net.createServer((client) => this._accept(client));
  }

  get port() {
    return this._server.address().port;
  }

  /** The number of connections open right now. */
  get live() {
    return this._pairs.size;
  }

  _accept(client) {
    if (this._closed) {
      client.destroy();
      return;
    }
    this.accepted += 1;
    const upstream = net.connect(this.targetPort, this.targetHost);
    const pair = { client, upstream };
    this._pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side ending or failing ends both: the proxy never half-keeps a connection.
    const end = () => {
      if (!this._pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end); // ECONNRESET and the like are the point here, not failures
      socket.on('close', end);
    }
  }

  /** Cut every live connection at once: RST to the client (as a dead network would look), closed upstream. */
  dropAll() {
    this.drops += 1;
    let n = 0;
    for (const pair of [...this._pairs]) {
      this._pairs.delete(pair);
      n += 1;
      if (typeof pair.client.resetAndDestroy === 'function') pair.client.resetAndDestroy();
      else pair.client.destroy();
      pair.upstream.destroy();
    }
    this.dropped += n;
    return n;
  }

  /** dropAll() again and again, each time after a random pause of minMs..maxMs. onDrop(count) after each. */
  startChaos({ minMs, maxMs, random = Math.random, onDrop = () => {} }) {
    if (!(minMs >= 0 && maxMs >= minMs)) {
      throw new RangeError(`ChaosProxy.startChaos: need 0 <= minMs <= maxMs, got minMs=${minMs} maxMs=${maxMs}`);
    }
    if (this._timer !== null) throw new Error('ChaosProxy.startChaos: the chaos is running already');
    const next = () => {
      this._timer = setTimeout(() => {
        onDrop(this.dropAll());
        next();
      }, minMs + random() * (maxMs - minMs));
    };
    next();
  }

  stopChaos() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
  }

  /** Stop everything; no socket, timer or listener is left behind. Safe to call twice. */
  async close() {
    this.stopChaos();
    if (this._closed) return;
    this._closed = true;
    const closed = new Promise((resolve) => this._server.close(() => resolve()));
    for (const pair of [...this._pairs]) {
      this._pairs.delete(pair);
      pair.client.destroy();
      pair.upstream.destroy();
    }
    await closed;
  }
}
