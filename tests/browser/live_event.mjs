// The demo page receives an event posted over HTTP, shows it once with its seq, class and data,
// and shows web-app data as text, never as markup. Leaves a screenshot in DEMO_ARTIFACTS.
import { join } from 'node:path';
import {
  ARTIFACTS, check, checkEqual, checkNoPageErrors, log, openDemo, postMessage, runTest, waitFor,
  waitForSeqs, waitLiveSubscribed, shownSeqs,
} from './lib.mjs';

await runTest('live_event', async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await openDemo(context);
  await waitLiveSubscribed(page);
  checkEqual(await page.locator('#status').getAttribute('data-state'), 'open', 'the state badge');
  checkEqual(await page.locator('#live-sub-text').textContent(), 'Subscribed to demo.message', 'the Live line');

  const seq = await postMessage('hello from the browser test');
  checkEqual(await waitForSeqs(page, 'live-events', [seq]), [seq], 'the seqs shown');
  const row = page.locator(`#live-events li[data-seq="${seq}"]`);
  checkEqual(await row.getAttribute('data-event'), 'demo.message', 'the class of the row');
  checkEqual(await row.locator('.event__seq').textContent(), `#${seq}`, 'the seq shown');
  const text = await row.textContent();
  check(text.includes('hello from the browser test') && text.includes('lobby') && text.includes('browser-test'),
    `the row shows the data: ${text}`);
  log(`event seq ${seq} shown: ${text.replace(/\s+/g, ' ').trim()}`);

  // Data is written by web-apps: markup in it is shown as text and never runs.
  const markup = '<img src=x onerror="window.__pwned = 1"><b>bold</b>';
  const second = await postMessage(markup, 'markup');
  checkEqual(await waitForSeqs(page, 'live-events', [seq, second]), [seq, second], 'both rows, in order');
  const row2 = page.locator(`#live-events li[data-seq="${second}"]`);
  checkEqual(await row2.locator('img, b').count(), 0, 'elements made from event data');
  check((await row2.textContent()).includes(markup), 'the markup is shown as text');
  checkEqual(await page.evaluate(() => window.__pwned ?? null), null, 'script run from event data');

  checkEqual(await page.locator('#live-count').getAttribute('data-count'), '2', 'the event count');
  checkEqual(await page.locator('#live-empty').isVisible(), false, 'the empty state once events came');
  for (let i = 0; i < 3; i += 1) await postMessage(`message ${i + 1} of a few`, i % 2 ? 'lobby' : 'kitchen');
  await waitFor(page, 'five rows', () => document.getElementById('live-events').children.length === 5);
  const seqs = await shownSeqs(page, 'live-events');
  checkEqual(seqs.length, new Set(seqs).size, 'each event shown once');
  check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `rows in seq order: ${seqs}`);

  if (ARTIFACTS) {
    // Pictures of the page at rest: the arrival highlights (finite animations) run to their end.
    await page.screenshot({ path: join(ARTIFACTS, 'live.png'), fullPage: true, animations: 'disabled' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(ARTIFACTS, 'live-narrow.png'), fullPage: true, animations: 'disabled' });
    log(`screenshots in ${ARTIFACTS}`);
  }
  checkNoPageErrors(page);
});
