// What the integration tests need to reach a real gateway, from the environment
// tests/integration/test_js_client.py sets (it starts the nodes):
//   GW_TEST_WS_URL, GW_TEST_BRIDGE_URL   the node's WAMP endpoint and bridge
//   GW_TEST_API_KEY, GW_TEST_JWT_SECRET  the bridge key and auth.secret
//   GW_TEST_KILL_URL                     POST {"session": id} kills a WAMP session from the router side
//   GW_TEST_GAP_WS_URL, GW_TEST_GAP_BRIDGE_URL   a node with store.max_logged_per_class: 5
//   GW_TEST_GAP_DISPATCHER_URL           POST /freeze, /kill: stop, then kill, that node's active dispatcher

import { createHmac, randomUUID } from 'node:crypto';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/integration/test_js_client.py`);
  return value;
}

export const env = {
  get ws() { return required('GW_TEST_WS_URL'); },
  get bridge() { return required('GW_TEST_BRIDGE_URL'); },
  get apiKey() { return required('GW_TEST_API_KEY'); },
  get jwtSecret() { return required('GW_TEST_JWT_SECRET'); },
  get killUrl() { return required('GW_TEST_KILL_URL'); },
  get gapWs() { return required('GW_TEST_GAP_WS_URL'); },
  get gapBridge() { return required('GW_TEST_GAP_BRIDGE_URL'); },
  get gapDispatcher() { return required('GW_TEST_GAP_DISPATCHER_URL'); },
};

/** A name no other test (or earlier run) uses: a room, a user. */
export const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

async function bridge(method, path, body, base = env.bridge) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${env.apiKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: response.status, body: json };
}

/** POST /events; returns its seq. */
export async function postEvent(event, data, { base, ...extra } = {}) {
  const r = await bridge('POST', '/events', { event, data, ...extra }, base);
  if (r.status !== 202) throw new Error(`POST /events answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.seq;
}

/** POST /events/batch; returns the seqs, in order. */
export async function postBatch(events, { base } = {}) {
  const r = await bridge('POST', '/events/batch', { events }, base);
  if (r.status !== 200) throw new Error(`POST /events/batch answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.results.map((result) => {
    if (typeof result.seq !== 'number') throw new Error(`a batch item was refused: ${JSON.stringify(result)}`);
    return result.seq;
  });
}

export const message = (room, text) => ({ room, text, author: 'js-test' });

/** A one-time ticket for `user` from POST /tickets. */
export async function ticket(user, roles) {
  const r = await bridge('POST', '/tickets', roles ? { user, roles } : { user });
  if (r.status !== 201) throw new Error(`POST /tickets answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.ticket;
}

export async function deleteSubscription(id) {
  return bridge('DELETE', `/subscriptions/${encodeURIComponent(id)}`);
}

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWT login as a web-app mints it (HS256 with auth.secret); exp one minute ahead unless given. */
export function jwt(claims, secret = env.jwtSecret) {
  const body = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ exp: Math.floor(Date.now() / 1000) + 60, ...claims })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Kill a WAMP session from the router's side (wamp.session.kill, called by a backend client). */
export async function killSession(session) {
  const response = await fetch(env.killUrl, { method: 'POST', body: JSON.stringify({ session }) });
  if (response.status !== 200) throw new Error(`killing session ${session} failed: ${response.status} ${await response.text()}`);
}

/** Poll `condition` until it returns something truthy; fail with `what` after `timeout` ms. */
export async function waitFor(condition, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A promise for the next `name` event of `gw` (its arguments as an array). */
export function next(gw, name, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { gw.off(name, on); reject(new Error(`no '${name}' event within ${timeout} ms`)); }, timeout);
    function on(...args) {
      clearTimeout(timer);
      gw.off(name, on);
      resolve(args);
    }
    gw.on(name, on);
  });
}

/** Records every state change and every 'error' of a Gateway. */
export function record(gw) {
  const log = { states: [], errors: [], events: [] };
  gw.on('state', (state, detail) => log.states.push([state, detail]));
  for (const name of ['open', 'lost', 'resumed', 'closed', 'connecting']) gw.on(name, (detail) => log.events.push([name, detail]));
  gw.on('error', (err) => log.errors.push(err));
  return log;
}

async function dispatcherAction(action) {
  const response = await fetch(`${env.gapDispatcher}/${action}`, { method: 'POST', body: '{}' });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${action} of the gap node's dispatcher failed: ${response.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Stop (SIGSTOP) the container worker of the gap node's active dispatcher: a call to it made
 * next stays in flight until killActiveDispatcher() kills it (SIGKILL) and the router cancels the
 * call. Only once per node: the other container's dispatcher takes over for good.
 */
export const freezeActiveDispatcher = () => dispatcherAction('freeze');
export const killActiveDispatcher = () => dispatcherAction('kill');

/**
 * The autobahn module with every session's call() going through
 * `onCall(uri, args, kwargs, call)` (call: the real one), for tests that must act at the moment
 * the client makes a given call. Everything else is autobahn's own.
 */
export function hookCalls(autobahn, onCall) {
  function Connection(options) {
    const connection = new autobahn.Connection(options);
    let onopen = null;
    Object.defineProperty(connection, 'onopen', {
      configurable: true,
      get: () => onopen,
      set: (fn) => {
        onopen = typeof fn !== 'function' ? fn : (session, details) => {
          const call = session.call.bind(session);
          session.call = (uri, args, kwargs, callOptions) => onCall(uri, args, kwargs, (u, a, k) => call(u, a, k, callOptions));
          return fn(session, details);
        };
      },
    });
    return connection;
  }
  return { ...autobahn, Connection };
}
