// The JS client over a flaky network: a TCP proxy between the clients and the router cuts every
// connection at random moments while events flow. A persistent subscription must hand its handler
// every event exactly once, in seq order; a plain one may miss events while it is away (that is
// its contract) but never sees one twice or out of order.
//
// Run by tests/integration/test_js_interop.py against a real node:
//   GW_TEST_ROUTER_PORT, GW_TEST_BRIDGE_URL, GW_TEST_API_KEY  (node --experimental-websocket --test ...)
// GW_TEST_CHAOS_SEED replays a run's drop schedule (printed as "# chaos seed ..." by every run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway } from '../../src/gateway.js';
import { ChaosProxy, seededRandom } from './tcp-chaos.mjs';

const env = {
  routerPort: Number(process.env.GW_TEST_ROUTER_PORT),
  bridgeUrl: process.env.GW_TEST_BRIDGE_URL,
  apiKey: process.env.GW_TEST_API_KEY,
};
const missing = Object.entries({ GW_TEST_ROUTER_PORT: process.env.GW_TEST_ROUTER_PORT,
  GW_TEST_BRIDGE_URL: env.bridgeUrl, GW_TEST_API_KEY: env.apiKey }).filter(([, v]) => !v).map(([k]) => k);
// Skipped (not failed) without a gateway; the pytest wrapper refuses a run with skipped tests.
const skip = missing.length ? `needs a running gateway: set ${missing.join(', ')}` : false;

const SEED = process.env.GW_TEST_CHAOS_SEED ? Number(process.env.GW_TEST_CHAOS_SEED)
  : Math.floor(Math.random() * 2 ** 32);
if (!Number.isInteger(SEED) || SEED < 0 || SEED >= 2 ** 32) {
  throw new Error(`GW_TEST_CHAOS_SEED must be an integer 0..4294967295, got ${process.env.GW_TEST_CHAOS_SEED}`);
}
const EVENTS = 300;
const PACE_MS = 20; // 300 events in about 6 s: about 16 drops at 150-600 ms apart
const DROP_MIN_MS = 150;
const DROP_MAX_MS = 600;
const MIN_DROPS = 10; // the chaos goes on until at least this many drops cut live connections
const MIN_RESUMED = 5; // each client must have come back at least this often
const RECONNECT = { initialDelay: 0.05, maxDelay: 0.5, factor: 2, jitter: 0.5 };

async function postMessage(data) {
  const response = await fetch(`${env.bridgeUrl}/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ event: 'demo.message', data }),
  });
  const body = await response.json();
  assert.equal(response.status, 202, `POST /events: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Poll until check() is true; on timeout fail with what describe() says about the state. */
async function waitFor(check, describe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(10);
  }
}

/** "3-7, 9, 12-13" for [3, 4, 5, 6, 7, 9, 12, 13] (sorted numbers), at most `limit` runs. */
function ranges(numbers, limit = 30) {
  const runs = [];
  for (const n of numbers) {
    const last = runs.at(-1);
    if (last && n === last[1] + 1) last[1] = n;
    else runs.push([n, n]);
  }
  const text = runs.slice(0, limit).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ');
  return runs.length > limit ? `${text}, ... (${numbers.length} in all)` : text || 'none';
}

/** What is wrong with a handler's stream of seqs, compared with the seqs that were posted. */
function audit(seen, posted) {
  const expected = new Set(posted);
  const counts = new Map();
  for (const seq of seen) counts.set(seq, (counts.get(seq) ?? 0) + 1);
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([seq]) => seq).sort((a, b) => a - b);
  const missing = posted.filter((seq) => !counts.has(seq));
  const unexpected = [...counts.keys()].filter((seq) => !expected.has(seq)).sort((a, b) => a - b);
  const backwards = [];
  for (let i = 1; i < seen.length; i += 1) {
    if (seen[i] <= seen[i - 1]) backwards.push(`${seen[i - 1]} then ${seen[i]} (at #${i})`);
  }
  return { duplicated, missing, unexpected, backwards };
}

function report(name, seen, posted, { missing }) {
  const a = audit(seen, posted);
  const lines = [
    `${name}: saw ${seen.length} events for ${posted.length} posted (seed ${SEED})`,
    `  duplicated: ${ranges(a.duplicated)}`,
    `  out of order: ${a.backwards.slice(0, 10).join('; ') || 'none'}${a.backwards.length > 10 ? ' ...' : ''}`,
    `  not posted by this test: ${ranges(a.unexpected)}`,
  ];
  if (missing) lines.push(`  missing: ${ranges(a.missing)}`);
  return { audit: a, text: lines.join('\n') };
}

/** Count what a Gateway goes through; its 'error' events are kept for the report. */
function watch(gw) {
  const seen = { lost: 0, resumed: 0, connecting: 0, closed: [], errors: [] };
  gw.on('lost', () => { seen.lost += 1; });
  gw.on('resumed', () => { seen.resumed += 1; });
  gw.on('connecting', () => { seen.connecting += 1; });
  gw.on('closed', (detail) => { seen.closed.push(detail); });
  gw.on('error', (error) => { seen.errors.push(error); });
  return seen;
}

test('over a network that drops every connection at random, a persistent subscription misses nothing',
  { skip, timeout: 60000 }, async (t) => {
    t.diagnostic(`chaos seed ${SEED} (replay the drop schedule with GW_TEST_CHAOS_SEED=${SEED})`);
    const proxy = await ChaosProxy.start({ targetPort: env.routerPort });
    const url = `ws://127.0.0.1:${proxy.port}/ws`;
    const room = `flaky-${SEED}-${process.pid}`;
    const query = `demo.message where room = '${room}'`;
    const plain = new Gateway({ url, realm: 'gateway', reconnect: RECONNECT });
    const persistent = new Gateway({ url, realm: 'gateway', reconnect: RECONNECT, ackInterval: 200 });
    const plainLife = watch(plain);
    const persistentLife = watch(persistent);
    const plainSeen = [];
    const persistentSeen = [];
    const persistentTexts = new Map();
    const gaps = [];
    const posted = [];
    const textOf = new Map();
    const markers = new Set(); // seqs posted after the chaos
    let cuts = 0;
    try {
      await Promise.all([plain.connect(), persistent.connect()]);
      await plain.subscribe(query, (envelope) => { plainSeen.push(envelope.seq); });
      const sub = await persistent.subscribe(query, (envelope) => {
        persistentSeen.push(envelope.seq);
        persistentTexts.set(envelope.seq, envelope.data.text);
      }, { persistent: true, onGap: (gap) => gaps.push(gap) });
      assert.equal(sub.persistent, true);

      proxy.startChaos({
        minMs: DROP_MIN_MS, maxMs: DROP_MAX_MS, random: seededRandom(SEED),
        onDrop: (n) => { if (n > 0) cuts += 1; },
      });
      const started = Date.now();
      for (let i = 0; i < EVENTS; i += 1) {
        await sleep(started + i * PACE_MS - Date.now()); // a steady pace, whatever a POST takes
        const text = `#${i}`;
        const { seq } = await postMessage({ room, text, author: 'flaky' });
        posted.push(seq);
        textOf.set(seq, text);
      }
      await waitFor(() => cuts >= MIN_DROPS, () => `only ${cuts} drops cut a connection`, 15000);
      proxy.stopChaos();
      t.diagnostic(`${EVENTS} events in ${Date.now() - started} ms; ${cuts} drops cut ${proxy.dropped} `
        + `connections; ${proxy.accepted} connections accepted`);

      // The line is quiet now: the plain subscription must come back, so an event posted now reaches it
      // (it may still be re-subscribing: post one every 100 ms until one arrives).
      const backBy = Date.now() + 10000;
      while (!plainSeen.some((seq) => markers.has(seq)) && Date.now() < backBy) {
        const text = `after the chaos ${markers.size}`;
        const { seq } = await postMessage({ room, text, author: 'flaky' });
        posted.push(seq);
        textOf.set(seq, text);
        markers.add(seq);
        await sleep(100);
      }

      await waitFor(() => persistentSeen.length >= posted.length && persistentSeen.at(-1) === posted.at(-1),
        () => report('persistent', persistentSeen, posted, { missing: true }).text, 15000);
      await waitFor(() => plain.state === 'open' && persistent.state === 'open',
        () => `states after the chaos: plain ${plain.state}, persistent ${persistent.state}`, 5000);
    } finally {
      proxy.stopChaos();
      await Promise.allSettled([plain.close(), persistent.close()]);
      await proxy.close();
      // Printed whatever happened: with a failure, this is half of the story.
      t.diagnostic(`persistent: ${persistentSeen.length} events, ${persistentLife.lost} lost, `
        + `${persistentLife.resumed} resumed, ${persistentLife.errors.length} errors`);
      t.diagnostic(`plain: ${plainSeen.length} of ${posted.length} events, ${plainLife.lost} lost, `
        + `${plainLife.resumed} resumed, ${plainLife.errors.length} errors`);
      for (const [name, life] of [['persistent', persistentLife], ['plain', plainLife]]) {
        for (const error of life.errors) t.diagnostic(`${name} 'error' event: ${error?.uri ?? ''} ${error}`);
      }
    }

    // Persistent: every event exactly once, in seq order, no gap reported, each with its own data.
    const p = report('persistent', persistentSeen, posted, { missing: true });
    // (Not deepEqual: a diff of 300 numbers hides what the report says plainly.)
    const exact = persistentSeen.length === posted.length && persistentSeen.every((seq, i) => seq === posted[i]);
    assert.ok(exact, p.text);
    assert.deepEqual(gaps, [], `no gap may be reported: the log keeps everything here\n${p.text}`);
    for (const seq of persistentSeen) assert.equal(persistentTexts.get(seq), textOf.get(seq), `seq ${seq}`);

    // Plain: at most once each, strictly increasing, only ours; and back after the chaos.
    const q = report('plain', plainSeen, posted, { missing: false });
    assert.deepEqual(q.audit.duplicated, [], q.text);
    assert.deepEqual(q.audit.backwards, [], q.text);
    assert.deepEqual(q.audit.unexpected, [], q.text);
    assert.ok(plainSeen.some((seq) => markers.has(seq)), `the plain subscription came back\n${q.text}`);

    // Both really went through it: lost and came back again and again, and never gave up.
    for (const [name, life] of [['persistent', persistentLife], ['plain', plainLife]]) {
      assert.ok(life.resumed >= MIN_RESUMED, `${name} resumed only ${life.resumed} times in ${cuts} drops`);
      assert.deepEqual(life.closed.map((d) => d.error ?? null), [null], `${name} closed once, by close()`);
      // A dropped line is told by 'lost' and 'resumed'; it is not an error the application must handle.
      assert.deepEqual(life.errors.map(String), [], `${name} reported no 'error' event`);
    }
  });
