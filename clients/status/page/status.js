// The gateway's live status page, on the gateway's JavaScript client (/lib/gateway.js). An ES module,
// no build step; uPlot (npm, served at /uplot/) draws the chart.
//
// It signs in as the demo page does (a one-time ticket or a JWT, pasted or in the address) and asks
// gateway.status once a second. The gateway answers operators only (status.operator_role): the
// authorizer refuses anyone else, and the page then shows the sign-in prompt again, with no data.
// Rates are made here from two answers' totals (rates.js). How it asks is poller.js: nothing while the
// page is hidden, the figures marked stale (grey) after a question that got no answer.

import { Gateway, MemoryTokenStore } from '/lib/gateway.js';
import { STATUS } from '/lib/uris.js';
import uPlot from '/uplot/uPlot.esm.js';
import { clusterFacts, clusterRows } from './cluster.js';
import { Poller } from './poller.js';
import { History, WINDOW_SECONDS, meanLatency, rates, sum } from './rates.js';

const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
/** Milliseconds between two answers asked for (the next is asked once the last came). */
const POLL_MS = 1000;
const RECONNECT = { initialDelay: 0.5, factor: 2, maxDelay: 5 };
const COLOURS = ['#4f46e5', '#0891b2', '#16a34a', '#ca8a04', '#9333ea', '#db2777', '#0d9488', '#ea580c'];
const REFUSED_COLOUR = '#d92d20';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

let gw = null;            // the current Gateway
let poller = null;        // asks gateway.status of the current Gateway (poller.js)
let seen = new History();  // the answers so far: rates, reloads
let chart = null;         // the uPlot, made again when the series change
let chartLabels = '';
let credentialKind = null;

// -- signing in ------------------------------------------------------------------------------

/** Show the sign-in prompt (and why, if there is a reason); no data stays on the page. */
function showSignIn(why = null) {
  stop();
  document.body.dataset.view = 'signin';
  $('dashboard').hidden = true;
  $('signin').hidden = false;
  $('signin-why').hidden = why === null;
  $('signin-why').textContent = why ?? '';
  setHealth(null, 'No data');
  clearData();
}

/** Stop asking, and close the connection. */
function stop() {
  if (poller !== null) poller.stop();
  poller = null;
  const previous = gw;
  gw = null;
  if (previous !== null) previous.close().catch(() => {});
}

async function start(credential) {
  stop();
  seen = new History();
  credentialKind = credential.ticket !== undefined ? 'ticket' : 'jwt';
  document.body.dataset.view = 'connecting';
  $('who').textContent = 'Signing in…';
  let opened = false;
  let refusal = null;
  const current = new Gateway({
    url: WS_URL, realm: 'gateway', reconnect: RECONNECT, ...credential,
    // The demo page's cookie keeps its own client token: this page's stays in memory.
    tokenStore: new MemoryTokenStore(),
    // A ticket works once: after a renewed connection, or a refusal, ask the operator again.
    getCredentials: () => {
      const why = opened ? 'The connection was renewed and a ticket works once: paste a new one.'
        : `Sign-in refused: ${refusal ?? 'the gateway did not take it'}.`;
      setTimeout(() => { if (gw === current) showSignIn(why); }, 0);
      return new Promise(() => {});  // never answered: this Gateway is closed meanwhile
    },
  });
  gw = current;
  current.on('error', (err) => {
    if (/authentication_failed|not_authorized|no_auth_method/.test(err.uri ?? '')) refusal = err.message;
  });
  current.on('state', (state) => {
    if (gw === current) $('health').dataset.connection = state;
  });
  current.on('open', () => {
    if (gw !== current) return;
    opened = true;
    const me = current.identity ?? {};
    $('who').textContent = `Signed in as ${me.user ?? me.authid ?? '?'}`
      + `${me.roles && me.roles.length ? ` (roles: ${me.roles.join(', ')})` : ' (no roles)'}`;
    if (poller === null) {
      poller = asker(current);
      poller.start();
    }
  });
  await current.connect().catch(() => {});
}

// -- asking -----------------------------------------------------------------------------------

/** The Poller asking `current` for gateway.status every POLL_MS while the page is visible. */
function asker(current) {
  return new Poller({
    ask: () => current.call(STATUS),
    show: (answer) => { if (gw === current) show(answer); },
    accepts: (answer) => seen.accepts(answer),
    failed: (err) => {
      if (gw !== current) return false;
      if (/not_authorized$/.test(err.uri ?? '')) {
        const me = current.identity ?? {};
        showSignIn(`${me.user ?? 'This user'} does not hold the operator role: the gateway shows its figures `
          + 'to operators only. Sign in as one.');
        return false;
      }
      setHealth(false, `No answer: ${err.message}`);
      return true;
    },
    // The figures shown stay, greyed, until an answer comes: they are as of the time under them.
    stale: (stale) => { if (gw === current) document.body.dataset.stale = String(stale); },
    hidden: () => document.hidden,
    interval: POLL_MS,
  });
}

// A hidden tab asks nothing; shown again, it asks at once.
document.addEventListener('visibilitychange', () => {
  if (poller !== null) poller.visibilityChanged();
});

// -- showing ----------------------------------------------------------------------------------

const number = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat('en');

function setValue(id, value, text = null) {
  const el = $(id);
  el.dataset.value = value === null || value === undefined ? '' : String(value);
  el.textContent = text ?? (value === null || value === undefined ? '–' : whole.format(value));
}

function setHealth(ok, text) {
  $('health').dataset.ok = ok === null ? '' : String(ok);
  $('health-text').textContent = text;
}

function clearData() {
  delete document.body.dataset.stale;
  for (const id of ['classes', 'refusals', 'queries', 'sessions', 'processes', 'problems', 'reload-log',
    'cluster-nodes']) {
    $(id).replaceChildren();
  }
  $('cluster-card').hidden = true;
  for (const id of ['rate-accepted', 'rate-refused', 'rate-duplicate', 'total-accepted', 'total-sessions',
    'total-queries', 'total-persistent', 'total-log']) setValue(id, null);
  if (chart !== null) {
    chart.destroy();
    chart = null;
    chartLabels = '';
  }
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = String(cell);
    tr.append(td);
  }
  return tr;
}

function bytes(n) {
  return n >= 1 << 30 ? `${number.format(n / (1 << 30))} GiB` : `${number.format(n / (1 << 20))} MiB`;
}

/** Put one answer of gateway.status on the page (its data: text only, never markup). */
function show(answer) {
  if (!seen.accepts(answer)) return;  // late (two bridges, one slower): a newer one is shown already
  const previous = seen.last;
  const point = seen.add(answer);
  document.body.dataset.view = 'dashboard';
  $('signin').hidden = true;
  $('dashboard').hidden = false;
  $('metrics-off').hidden = answer.metrics_enabled;
  // Counting off: no rates, no counts; what is left is the gauges and the health.
  for (const card of document.querySelectorAll('.counted')) card.hidden = !answer.metrics_enabled;

  const health = answer.health;
  setHealth(health.ok, health.ok ? (health.problems.length ? 'Serving, with warnings' : 'Healthy') : 'Not serving');
  $('problems').replaceChildren(...health.problems.map((p) => {
    const li = document.createElement('li');
    li.textContent = p;
    return li;
  }));

  const events = answer.events;
  if (events) {
    setValue('total-accepted', sum(events.accepted));
    if (point !== null) {
      const accepted = sum(point.accepted);
      setValue('rate-accepted', accepted, number.format(accepted));
      setValue('rate-refused', sum(point.refused), number.format(sum(point.refused)));
      setValue('rate-duplicate', point.duplicate, number.format(point.duplicate));
    }
    const perClass = point?.accepted ?? {};
    const log = answer.event_log.by_class ?? {};
    const classes = [...new Set([...Object.keys(events.accepted), ...Object.keys(log)])].sort();
    $('classes').replaceChildren(...classes.map((name) => row([name, number.format(perClass[name] ?? 0),
      whole.format(events.accepted[name] ?? 0), whole.format(events.duplicate[name] ?? 0),
      log[name] === undefined ? '–' : whole.format(log[name])])));
    const refusedNow = point?.refused ?? {};
    $('refusals').replaceChildren(...Object.keys(events.refused).sort().map((reason) => row([reason,
      number.format(refusedNow[reason] ?? 0), whole.format(events.refused[reason])])));
    const latency = previous ? meanLatency(previous.ingest, answer.ingest) : {};
    $('latency').textContent = Object.keys(latency).length
      ? `Mean time to answer, last second: ${Object.entries(latency)
        .map(([t, s]) => `${t} ${number.format(s * 1000)} ms`).join(', ')}` : '';
  } else {
    for (const id of ['rate-accepted', 'rate-refused', 'rate-duplicate', 'total-accepted']) setValue(id, null);
    $('classes').replaceChildren();
    $('refusals').replaceChildren();
  }

  const sessions = answer.sessions;
  setValue('total-sessions', sum(sessions));
  $('sessions').replaceChildren(...Object.entries(sessions).map(([role, n]) => row([role, whole.format(n)])));
  const queries = answer.live_queries;
  setValue('total-queries', queries.count);
  $('queries').replaceChildren(...queries.busiest.map((q) => {
    const tr = row([q.query ?? q.topic, whole.format(q.subscribers)]);
    tr.firstElementChild.className = 'mono';
    return tr;
  }));
  $('queries-note').textContent = queries.counted < queries.topics
    ? `Subscribers counted for ${whole.format(queries.counted)} of ${whole.format(queries.topics)} topics `
      + 'at this refresh, the others in turn: a query that just became busy may be missing for a while.' : '';
  setValue('total-persistent', answer.persistent_subscriptions);
  setValue('total-log', answer.event_log.rows);

  const d = answer.dispatchers;
  $('dispatchers').textContent = `${d.active} active, ${d.standby} standing by`;
  $('authenticators').textContent = String(answer.authenticators);
  $('bridges').textContent = String(answer.bridges.count);
  const amqp = Object.entries(answer.bridges.amqp).filter(([state]) => state !== 'off');
  $('amqp').textContent = amqp.length ? amqp.map(([s, n]) => `${n} ${s}`).join(', ')
    + (answer.amqp_messages ? `; ${Object.entries(answer.amqp_messages).map(([o, n]) => `${whole.format(n)} ${o}`)
      .join(', ')}` : '') : 'off';
  const cpu = previous ? rates(cpuOf(previous), cpuOf(answer), answer.time - previous.time) : {};
  $('processes').replaceChildren(...Object.entries(answer.processes).map(([name, p]) => row([name,
    cpu[name] === undefined ? '–' : `${number.format(cpu[name] * 100)} %`, bytes(p.rss_bytes ?? 0)])));
  showCluster(answer.cluster);

  $('version').textContent = answer.definitions.versions.join(', ') || '–';
  const reloads = answer.definitions.reloads;
  $('reloads').textContent = Object.keys(reloads).length
    ? Object.entries(reloads).map(([o, n]) => `${whole.format(n)} ${o}`).join(', ') : 'none';
  $('reload-log').replaceChildren(...seen.reloads.map((r) => {
    const li = document.createElement('li');
    li.textContent = `${new Date(r.time * 1000).toLocaleTimeString()}: ${r.loaded} loaded`
      + `${r.refused ? `, ${r.refused} refused` : ''} (version ${r.versions.join(', ') || '?'})`;
    return li;
  }));
  $('answered').textContent = `Answered by ${answer.answered_by} at ${new Date(answer.time * 1000).toLocaleTimeString()}`;
  $('answered').dataset.by = answer.answered_by;
  draw();
}

/** The Cluster panel: a cluster node's view of the cluster (cluster.js); no panel on a single node (null). */
function showCluster(cluster) {
  $('cluster-card').hidden = !cluster;
  if (!cluster) {
    $('cluster-nodes').replaceChildren();
    return;
  }
  const facts = clusterFacts(cluster);
  $('cluster-seen').textContent = facts.seen;
  $('cluster-store').textContent = facts.store;
  $('cluster-store').dataset.ok = String(cluster.store !== false);
  $('cluster-skipped').textContent = facts.skipped;
  $('cluster-nodes').replaceChildren(...clusterRows(cluster).map((node) => {
    const tr = row(node.cells);
    tr.dataset.node = node.name;
    tr.dataset.seen = String(node.seen);
    if (node.self) tr.dataset.self = 'true';
    return tr;
  }));
}

function cpuOf(answer) {
  return Object.fromEntries(Object.entries(answer.processes).map(([name, p]) => [name, p.cpu_seconds ?? 0]));
}

/** The chart of the last minutes: made again when the series change, else given the new data. */
function draw() {
  const { labels, data } = seen.chart();
  $('chart-empty').hidden = data[0].length > 1;
  const box = $('chart');
  if (data[0].length === 0) {  // nothing to draw yet (or counting is off)
    if (chart !== null) chart.destroy();
    chart = null;
    chartLabels = '';
    return;
  }
  const key = labels.join('\n');
  if (chart === null || key !== chartLabels) {
    if (chart !== null) chart.destroy();
    chartLabels = key;
    const series = [{}, ...labels.map((label, i) => ({
      label: label === 'refused' ? 'refused' : label,
      stroke: label === 'refused' ? REFUSED_COLOUR : COLOURS[i % COLOURS.length],
      width: 2,
      value: (u, v) => (v === null ? '–' : number.format(v)),
    }))];
    chart = new uPlot({
      width: Math.max(300, box.clientWidth),
      height: 240,
      series,
      axes: [{}, { label: 'events / s', size: 60 }],
      scales: {
        // The whole window, the newest answer at the right edge, from the first point on.
        x: { time: true, range: (u, min, max) => [max - WINDOW_SECONDS, max] },
        y: { range: (u, min, max) => [0, Math.max(1, max)] },
      },
    }, data, box);
  } else {
    chart.setData(data);
  }
}

window.addEventListener('resize', () => {
  if (chart !== null) chart.setSize({ width: Math.max(300, $('chart').clientWidth), height: 240 });
});

// -- start ------------------------------------------------------------------------------------

/** {ticket} or {jwt} from what was pasted, or {error}. */
function parseCredential(text) {
  const value = text.trim().replace(/^"(.*)"$/, '$1');
  if (value === '') return { error: 'Paste a ticket (gt_…) or a JWT first.' };
  if (value.startsWith('{')) {
    try {
      const doc = JSON.parse(value);
      if (typeof doc.ticket === 'string') return { ticket: doc.ticket };
    } catch { /* said below */ }
    return { error: 'That is not the answer of POST /tickets: paste its "ticket" (gt_…).' };
  }
  if (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(value)) return { jwt: value };
  if (/\s/.test(value)) return { error: 'A ticket has no spaces: paste just the ticket (gt_…).' };
  return { ticket: value };
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const credential = parseCredential(/** @type {HTMLInputElement} */ ($('credential')).value);
  if (credential.error) {
    showSignIn(credential.error);
    return;
  }
  /** @type {HTMLInputElement} */ ($('credential')).value = '';
  $('signin-why').hidden = true;
  start(credential);
});

/** A credential handed over in the address (#ticket=… or #jwt=…), removed from it at once. */
function credentialFromAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const ticket = params.get('ticket');
  const jwt = params.get('jwt');
  if (!ticket && !jwt) return null;
  window.history.replaceState(null, '', location.pathname + location.search);
  return ticket ? { ticket } : { jwt };
}

const handed = credentialFromAddress();
if (handed !== null) start(handed);
else showSignIn();
window.statusPage = { get gateway() { return gw; }, get credentialKind() { return credentialKind; } };
