// A refused query shows the gateway's message and a caret under the faulty column of the query;
// the subscription that was running keeps running.
import { join } from 'node:path';
import {
  ARTIFACTS, check, checkEqual, checkNoPageErrors, log, openDemo, postMessage, runTest, waitFor, waitForSeqs,
  waitLiveSubscribed,
} from './lib.mjs';

/** Subscribe to `query` through the form, wait for the error, return what the page shows. */
async function refused(page, query) {
  await page.fill('#query', query);
  await page.click('#subscribe');
  await waitFor(page, `the error for ${query}`, (q) => !document.getElementById('query-error').hidden
    && document.getElementById('caret-before').textContent !== null
    && document.getElementById('query-error').dataset.query === q, query);
  return page.evaluate(() => {
    const box = (id) => document.getElementById(id).getBoundingClientRect();
    const caretBox = document.getElementById('query-error-caret');
    return {
      message: document.getElementById('query-error-message').textContent,
      caretShown: !caretBox.hidden,
      column: caretBox.dataset.column ?? null,
      before: document.getElementById('caret-before').textContent,
      mark: document.getElementById('caret-mark').textContent,
      markLeft: box('caret-mark').left,
      caretLeft: box('caret').left,
      caretTop: box('caret').top,
      markBottom: box('caret-mark').bottom,
      invalid: document.getElementById('query').getAttribute('aria-invalid'),
      live: document.getElementById('query-error').getAttribute('aria-live'),
      subline: document.getElementById('live-sub-text').textContent,
      cursor: document.getElementById('query').selectionStart,
    };
  });
}

await runTest('query_error', async (browser) => {
  const page = await openDemo(await browser.newContext());
  await waitLiveSubscribed(page);

  // The fault at the end of the query: the caret one past its last character.
  const end = await refused(page, 'demo.message where room = ');
  checkEqual(end.message, 'expected a string, a number, true, false or null, found the end of the query',
    'the message');
  checkEqual([end.caretShown, end.column, end.before, end.mark], [true, '27', 'demo.message where room = ', ' '],
    'the caret at column 27');
  check(Math.abs(end.caretLeft - end.markLeft) < 1, `the caret is under the column (${end.caretLeft} vs ${end.markLeft})`);
  check(end.caretTop >= end.markBottom - 1, 'the caret is below the query');
  checkEqual([end.invalid, end.live], ['true', 'assertive'], 'aria-invalid on the input, aria-live on the error');
  checkEqual(end.subline, 'Still subscribed to demo.message', 'the running subscription');
  checkEqual(end.cursor, 26, 'the input cursor at the fault');

  if (ARTIFACTS) await page.locator('#live').screenshot({ path: join(ARTIFACTS, 'query-error.png') });

  // The fault inside the query (a typo of "where"), with a non-ASCII character before it.
  const typo = await refused(page, "demo.message wher room = 'café'");
  check(typo.message.startsWith("expected 'where', ',' or the end of the query, found 'wher'"), `the message: ${typo.message}`);
  checkEqual([typo.column, typo.before, typo.mark], ['14', 'demo.message ', 'w'], 'the caret under "wher"');
  check(Math.abs(typo.caretLeft - typo.markLeft) < 1, `the caret is under the "w" (${typo.caretLeft} vs ${typo.markLeft})`);
  const wide = await refused(page, "demo.message where text = 'ü✓😀' and room ~ 'x'");
  checkEqual([wide.column, wide.mark], ['42', '~'], 'the column counted in characters, as the gateway does');
  check(Math.abs(wide.caretLeft - wide.markLeft) < 1, `the caret under "~" after wide characters (${wide.caretLeft} vs ${wide.markLeft})`);

  // A class the page may not see: the message, no caret.
  const denied = await refused(page, 'demo.alert');
  check(/demo\.alert/.test(denied.message), `the message names the class: ${denied.message}`);
  checkEqual(denied.caretShown, false, 'a caret for an error without a column');
  log(`shown: "${end.message}" with the caret at column ${end.column}; "${denied.message}"`);

  // The old subscription still delivers; a good query replaces it and clears the error.
  const stillSeq = await postMessage('still here');
  await waitForSeqs(page, 'live-events', [stillSeq]);
  await page.click('.chip[data-query="demo.message where room = \'lobby\'"]');
  await waitFor(page, 'the lobby subscription', () => document.getElementById('live-sub-text').textContent
    === 'Subscribed to demo.message where room = "lobby"');
  checkEqual(await page.locator('#query-error').isVisible(), false, 'the error once a query is taken');
  checkEqual(await page.locator('#query').getAttribute('aria-invalid'), null, 'aria-invalid once a query is taken');
  const kitchen = await postMessage('in the kitchen', 'kitchen');
  const lobby = await postMessage('in the lobby', 'lobby');
  checkEqual(await waitForSeqs(page, 'live-events', [lobby]), [lobby], 'only the lobby message, list started anew');
  check(kitchen < lobby, 'posted in this order');
  checkNoPageErrors(page);
});
