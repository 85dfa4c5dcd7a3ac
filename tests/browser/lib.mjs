// Shared helpers of the browser tests: headless Chromium through playwright-core, the bridge's
// HTTP API, and reading the demo page (examples/page/) through its ids and data attributes.
//
// Each test is a script run by tests/integration/test_browser.py with:
//   DEMO_PAGE_URL    the router's page, e.g. http://127.0.0.1:8080/
//   DEMO_BRIDGE_URL  the bridge, e.g. http://127.0.0.1:8081
//   DEMO_API_KEY     a key the bridge takes
//   DEMO_JWT         (some tests) a JWT login for the user "rita"
//   DEMO_ARTIFACTS   a directory for screenshots
//   CHROMIUM_PATH    Debian's chromium (playwright-core never downloads browsers here)
// A script prints what it checks, exits 0 when every check held, and 1 with the reason otherwise.
// It asks the test for things it cannot do itself (stop or start the gateway) with a line
// "@control <what>" on stdout, and waits for the answer line on stdin.

import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`the environment variable ${name} is not set (run through test_browser.py)`);
  return value;
}

export const PAGE_URL = required('DEMO_PAGE_URL');
export const BRIDGE_URL = required('DEMO_BRIDGE_URL');
const API_KEY = required('DEMO_API_KEY');
export const ARTIFACTS = process.env.DEMO_ARTIFACTS ?? null;

// Exactly these: no sandbox (root in a container), nothing that phones home or updates itself.
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** Every wait is bounded: a test that hangs says which wait it was. */
export const WAIT_MS = 20_000;

export class CheckFailed extends Error {}

export function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

export function checkEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new CheckFailed(`${what}: expected ${e}, got ${a}`);
}

export function log(...parts) {
  console.log('  ', ...parts);
}

/**
 * Run a test: `main(browser)` in a fresh headless Chromium, closed whatever happens; a watchdog;
 * exit 0 if main returned, else 1 with the failed check (or the stack of an unexpected error).
 */
export async function runTest(name, main, { budgetMs = 90_000 } = {}) {
  let browser = null;
  const giveUp = (why) => {
    console.error(`${name}: ${why}`);
    const closing = browser ? browser.close() : Promise.resolve();
    closing.finally(() => process.exit(1));
  };
  const watchdog = setTimeout(() => giveUp(`still running after ${budgetMs / 1000}s, giving up`), budgetMs);
  // The test runner stops us with SIGTERM when it gives up: close the browser, then go.
  process.once('SIGTERM', () => giveUp('stopped by SIGTERM'));
  let failed = null;
  try {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      headless: true, args: CHROMIUM_FLAGS });
    await main(browser);
  } catch (err) {
    failed = err;
  } finally {
    if (browser !== null) await browser.close().catch(() => {});
    clearTimeout(watchdog);
  }
  if (failed !== null) {
    console.error(`${name}: FAILED: ${failed instanceof CheckFailed ? failed.message : failed.stack || failed}`);
    process.exit(1);
  }
  console.log(`${name}: ok`);
  process.exit(0);
}

// -- talking to the test that runs us ----------------------------------------------------------

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Ask the Python side to do `what` (e.g. 'stop', 'start'); resolves when it is done. */
export async function control(what) {
  console.log(`@control ${what}`);
  const { value, done } = await stdinLines.next();
  if (done || value.trim() !== 'ok') throw new Error(`@control ${what} failed: ${done ? 'no answer' : value}`);
}

// -- the bridge ---------------------------------------------------------------------------------

async function bridge(path, body) {
  const response = await fetch(BRIDGE_URL + path, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = text;
  }
  return { status: response.status, body: doc };
}

/** GET /subscriptions?user=…: the user's persistent subscriptions. */
export async function subscriptionsOf(user) {
  const response = await fetch(`${BRIDGE_URL}/subscriptions?user=${encodeURIComponent(user)}`,
    { headers: { Authorization: `Bearer ${API_KEY}` } });
  const doc = await response.json();
  check(response.status === 200, `GET /subscriptions answered ${response.status} ${JSON.stringify(doc)}`);
  return doc.subscriptions;
}

/** POST /events; returns the accepted event's seq. */
export async function postEvent(event, data) {
  const r = await bridge('/events', { event, data });
  check(r.status === 202, `POST /events ${event} answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.seq;
}

export function postMessage(text, room = 'lobby') {
  return postEvent('demo.message', { room, text, author: 'browser-test' });
}

let nextOrder = 1;
export function postOrder(amount = 10) {
  const orderId = nextOrder++;
  return postEvent('demo.order', { order_id: orderId, amount, country: 'AR', tags: ['test'],
    customer: { id: orderId, name: `Customer ${orderId}` } });
}

/** A one-time ticket for `user` from POST /tickets. */
export async function ticket(user, roles) {
  const r = await bridge('/tickets', roles ? { user, roles } : { user });
  check(r.status === 201, `POST /tickets answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.ticket;
}

// -- the demo page --------------------------------------------------------------------------------

/**
 * Open the demo page in `context` (`hash` e.g. '#ticket=…'). Records, for the checks, every
 * uncaught page error and every change of the status badge's phase (window.__phases).
 */
export async function openDemo(context, hash = '') {
  const page = await context.newPage();
  page.pageErrors = [];
  page.on('pageerror', (err) => page.pageErrors.push(String(err)));
  page.on('console', (msg) => {
    // A failed load is reported with its address below.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      page.pageErrors.push(`console: ${msg.text()}`);
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 400) page.pageErrors.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on('requestfailed', (request) => {
    if (!request.url().startsWith('ws')) page.pageErrors.push(`failed to load ${request.url()}`);
  });
  await page.addInitScript(() => {
    window.__phases = [];
    document.addEventListener('DOMContentLoaded', () => {
      const status = document.getElementById('status');
      window.__phases.push({ phase: status.dataset.phase, at: Date.now() });
      // Several changes may come in one batch (lost, then connecting at once): each record holds
      // the value before it, so the values after are the next record's old value, then the current.
      new MutationObserver((records) => {
        const at = Date.now();
        records.slice(1).forEach((r) => window.__phases.push({ phase: r.oldValue, at }));
        window.__phases.push({ phase: status.dataset.phase, at });
      }).observe(status, { attributes: true, attributeFilter: ['data-phase'], attributeOldValue: true });
    });
  });
  await page.goto(PAGE_URL + hash);
  return page;
}

/** The page raised no error (a lost connection is logged by the browser itself: not counted). */
export function checkNoPageErrors(page) {
  const errors = page.pageErrors.filter((e) => !/WebSocket connection to .* failed/.test(e));
  check(errors.length === 0, `the page logged errors: ${errors.join(' | ')}`);
}

export async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const status = (await page.locator('#status').textContent().catch(() => '?')).trim();
    const phases = await page.evaluate(() => window.__phases.map((p) => `${p.phase}@${p.at}`))
      .catch(() => []);
    log(`phases: ${phases.join(', ')}`);
    throw new CheckFailed(`waited ${WAIT_MS / 1000}s for ${what} (status: ${status}): ${err.message.split('\n')[0]}`);
  }
}

/** Wait until the status badge shows `phase`, or went through it since `sinceMs` (a phase may be brief). */
export function waitForPhase(page, phase, sinceMs = null) {
  return waitFor(page, `the status phase ${phase}`, ([p, since]) => (since === null
    ? document.getElementById('status').dataset.phase === p
    : window.__phases.some((seen) => seen.phase === p && seen.at >= since)), [phase, sinceMs]);
}

export async function waitLiveSubscribed(page) {
  await waitFor(page, 'the Live subscription',
    () => document.getElementById('live-sub').dataset.status === 'subscribed');
}

export async function waitSignedIn(page, user) {
  await waitFor(page, `signed in as ${user}`, (u) => document.getElementById('account').dataset.mode === 'signed-in'
    && document.getElementById('who').dataset.user === u, user);
  await waitFor(page, 'the persistent demo.order subscription',
    () => document.getElementById('orders-sub').dataset.status === 'subscribed');
}

/** The seqs shown in a list (#live-events or #orders-events) in the order they arrived (oldest first). */
export function shownSeqs(page, listId) {
  return page.evaluate((id) => Array.from(document.getElementById(id).children, (li) => Number(li.dataset.seq))
    .reverse(), listId);
}

/** Wait until the list shows at least `seqs` (each of them), then return everything it shows. */
export async function waitForSeqs(page, listId, seqs) {
  await waitFor(page, `seqs ${seqs.join(', ')} in #${listId}`, ([id, wanted]) => {
    const shown = new Set(Array.from(document.getElementById(id).children, (li) => Number(li.dataset.seq)));
    return wanted.every((s) => shown.has(s));
  }, [listId, seqs]);
  return shownSeqs(page, listId);
}

/** The phases the status badge went through since `sinceMs` (Date.now() of this machine). */
export async function phasesSince(page, sinceMs) {
  const all = await page.evaluate(() => window.__phases);
  const phases = [];
  for (const { phase, at } of all) {
    if (at >= sinceMs && phases[phases.length - 1] !== phase) phases.push(phase);
  }
  return phases;
}
