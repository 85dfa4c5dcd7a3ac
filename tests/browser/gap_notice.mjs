// A gap: orders posted while the page was closed that the gateway's log no longer holds when it
// comes back (here store.max_logged_per_class keeps 5) are reported by a visible notice, never
// passed over in silence; the orders still held are shown once, in order.
import {
  check, checkEqual, checkNoPageErrors, control, log, openDemo, postOrder, runTest, shownSeqs, ticket,
  waitFor, waitForSeqs, waitSignedIn,
} from './lib.mjs';

const USER = 'gus';
const KEPT = 5; // store.max_logged_per_class of the node (test_browser.py)

await runTest('gap_notice', async (browser) => {
  const context = await browser.newContext();
  const page = await openDemo(context, `#ticket=${await ticket(USER)}`);
  await waitSignedIn(page, USER);
  const first = await postOrder(1);
  await waitForSeqs(page, 'orders-events', [first]);
  checkEqual(await page.locator('#gap').isVisible(), false, 'a gap notice with nothing missed');
  await page.close();

  const missed = [];
  for (let i = 0; i < KEPT + 3; i += 1) missed.push(await postOrder(200 + i));
  const kept = missed.slice(-KEPT);
  await control(`dropped-through ${missed[missed.length - KEPT - 1]}`);

  const again = await openDemo(context, `#ticket=${await ticket(USER)}`);
  await waitSignedIn(again, USER);
  checkEqual(await waitForSeqs(again, 'orders-events', kept), kept, 'the orders the gateway still held, in order');
  await waitFor(again, 'the gap notice', () => !document.getElementById('gap').hidden);
  const notice = await again.locator('#gap').textContent();
  check(notice.includes(`after #${first}`) && notice.includes('missing'), `the notice: ${notice}`);
  checkEqual(await again.locator('#gap').getAttribute('role'), 'alert', 'the notice\'s role');
  const live = await postOrder(999);
  checkEqual(await waitForSeqs(again, 'orders-events', [...kept, live]), [...kept, live], 'then live ones');
  checkEqual(await shownSeqs(again, 'orders-events'), [...kept, live], 'nothing else shown');
  log(`missed ${missed.join(', ')}; shown ${kept.join(', ')} and "${notice}"`);
  checkNoPageErrors(again);
});
