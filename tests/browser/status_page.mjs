// The status page (/status/, clients/status/page/): anyone not signed in as an operator sees the sign-in
// prompt and no data, and the gateway refuses them gateway.status; an operator (a ticket with the role
// "staff") sees the numbers move, every second, after events are posted over HTTP. Leaves a screenshot.
import { join } from 'node:path';
import {
  ARTIFACTS, PAGE_URL, WAIT_MS, check, checkEqual, log, postMessage, runTest, ticket,
} from './lib.mjs';

const STATUS_URL = `${PAGE_URL}status/`;

/** Open the status page in a fresh context; records uncaught errors and failed loads. */
async function openStatus(browser, hash = '') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.pageErrors = [];
  page.on('pageerror', (err) => page.pageErrors.push(String(err)));
  page.on('response', (response) => {
    if (response.status() >= 400) page.pageErrors.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on('requestfailed', (request) => {
    if (!request.url().startsWith('ws')) page.pageErrors.push(`failed to load ${request.url()}`);
  });
  await page.goto(STATUS_URL + hash);
  return page;
}

async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (err) {
    const view = await page.evaluate(() => document.body.dataset.view).catch(() => '?');
    const why = await page.locator('#signin-why').textContent().catch(() => '?');
    throw new Error(`waited ${WAIT_MS / 1000}s for ${what} (view ${view}, ${why}): ${err.message.split('\n')[0]}`);
  }
}

/** No data on the page: the prompt shows, the dashboard is hidden and its figures are empty. */
async function checkNoData(page, who) {
  checkEqual(await page.locator('#signin').isVisible(), true, `${who}: the sign-in prompt`);
  checkEqual(await page.locator('#dashboard').isVisible(), false, `${who}: the dashboard`);
  for (const id of ['total-accepted', 'total-sessions', 'total-queries']) {
    checkEqual(await page.locator(`#${id}`).getAttribute('data-value'), '', `${who}: #${id}`);
  }
  checkEqual(await page.locator('#classes tr, #sessions tr, #processes tr').count(), 0, `${who}: table rows`);
}

function checkNoPageErrors(page, who) {
  check(page.pageErrors.length === 0, `${who}: the page logged errors: ${page.pageErrors.join(' | ')}`);
}

/** gateway.status called from the page's own browser with the gateway's JS client, as `credential`. */
function callStatusFrom(page, credential) {
  return page.evaluate(async (cred) => {
    const { Gateway, MemoryTokenStore } = await import('/lib/gateway.js');
    const gw = new Gateway({ url: `ws://${location.host}/ws`, tokenStore: new MemoryTokenStore(), ...cred,
      reconnect: { maxAttempts: 1 } });
    try {
      await gw.connect();
      const answer = await gw.call('gateway.status');
      return { answer: Object.keys(answer) };
    } catch (err) {
      return { uri: err.uri ?? null, message: err.message };
    } finally {
      await gw.close();
    }
  }, credential);
}

await runTest('status_page', async (browser) => {
  // 1. Nobody signed in: the prompt, no data; the gateway refuses an anonymous call.
  const anonymous = await openStatus(browser);
  await waitFor(anonymous, 'the sign-in view', () => document.body.dataset.view === 'signin');
  await checkNoData(anonymous, 'anonymous');
  const refusedAnonymous = await callStatusFrom(anonymous, {});
  checkEqual(refusedAnonymous.uri, 'wamp.error.not_authorized', 'gateway.status for an anonymous client');
  log(`anonymous: sign-in prompt, and gateway.status refused (${refusedAnonymous.uri})`);
  checkNoPageErrors(anonymous, 'anonymous');

  // 2. A signed-in user without the operator role: back to the prompt, saying why, no data shown.
  const bob = await openStatus(browser, `#ticket=${await ticket('bob', ['red'])}`);
  await waitFor(bob, 'the refusal', () => document.body.dataset.view === 'signin'
    && !document.getElementById('signin-why').hidden);
  const why = await bob.locator('#signin-why').textContent();
  check(/bob does not hold the operator role/.test(why), `the reason shown: ${why}`);
  await checkNoData(bob, 'bob');
  checkEqual(bob.url(), STATUS_URL, 'the address, without the ticket');
  const refusedBob = await callStatusFrom(bob, { ticket: await ticket('bob', ['red']) });
  checkEqual(refusedBob.uri, 'wamp.error.not_authorized', 'gateway.status for a user without the role');
  log(`bob (roles red): "${why.trim()}"`);
  checkNoPageErrors(bob, 'bob');

  // 3. An operator: the figures, moving after events are posted over HTTP.
  const ops = await openStatus(browser);
  await waitFor(ops, 'the sign-in view', () => document.body.dataset.view === 'signin');
  await ops.fill('#credential', await ticket('ops', ['staff']));
  await ops.click('#sign-in');
  await waitFor(ops, 'the dashboard', () => document.body.dataset.view === 'dashboard'
    && document.getElementById('total-accepted').dataset.value !== '');
  checkEqual(await ops.locator('#signin').isVisible(), false, 'the prompt, signed in as an operator');
  check((await ops.locator('#who').textContent()).includes('ops (roles: staff)'), 'who is signed in');
  const before = Number(await ops.locator('#total-accepted').getAttribute('data-value'));
  const answeredBefore = await ops.locator('#answered').textContent();
  // A second answer, without reloading: the page asks every second.
  await waitFor(ops, 'the next answer', (text) => document.getElementById('answered').textContent !== text,
    answeredBefore);
  for (let i = 0; i < 8; i += 1) await postMessage(`status page ${i}`, 'status');
  await waitFor(ops, 'the accepted total up by 8', (n) => Number(document.getElementById('total-accepted')
    .dataset.value) >= n + 8, before);
  await waitFor(ops, 'a rate above zero', () => Number(document.getElementById('rate-accepted').dataset.value) > 0);
  await waitFor(ops, 'demo.message in the chart', () => Array.from(
    document.querySelectorAll('#chart .u-series .u-label'), (l) => l.textContent).includes('demo.message'));
  const row = await ops.locator('#classes tr', { hasText: 'demo.message' }).textContent();
  log(`operator: accepted ${before} -> ${await ops.locator('#total-accepted').getAttribute('data-value')}, `
    + `row: ${row.replace(/\s+/g, ' ').trim()}`);
  check(Number(await ops.locator('#total-sessions').getAttribute('data-value')) >= 1, 'sessions counted');
  check((await ops.locator('#dispatchers').textContent()).includes('1 active'), 'the dispatchers');
  checkEqual(await ops.locator('#health').getAttribute('data-ok'), 'true', 'the health badge');
  check(/components-\d/.test(await ops.locator('#answered').getAttribute('data-by')), 'who answered');
  checkEqual(await ops.locator('#processes tr').count() >= 4, true, 'the processes listed');
  check(await ops.locator('#chart canvas').count() >= 1, 'the chart is drawn');
  if (ARTIFACTS) {
    await ops.screenshot({ path: join(ARTIFACTS, 'status.png'), fullPage: true });
    log(`screenshot in ${ARTIFACTS}`);
  }
  checkNoPageErrors(ops, 'operator');
});
