// Persistent: sign in (a ticket handed over in the address), receive an order, close the page;
// orders posted while it is closed are shown once, in order, when it is reopened and signed in
// again with a new ticket pasted in the form; then live ones follow.
import { join } from 'node:path';
import {
  ARTIFACTS, PAGE_URL, check, checkEqual, checkNoPageErrors, log, openDemo, postOrder, runTest, shownSeqs,
  subscriptionsOf, ticket, waitFor, waitForSeqs, waitLiveSubscribed, waitSignedIn,
} from './lib.mjs';

const USER = 'olga';

/** A JWT with these claims and a signature the gateway does not take. */
function jwt(claims) {
  const part = (doc) => Buffer.from(JSON.stringify(doc)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.${Buffer.from('not the signature').toString('base64url')}`;
}

await runTest('persistent_reopen', async (browser) => {
  const context = await browser.newContext();
  const firstTicket = await ticket(USER);
  const page = await openDemo(context, `#ticket=${firstTicket}`);
  await waitSignedIn(page, USER);
  checkEqual(page.url(), PAGE_URL, 'the address once the page took the ticket from it');
  check((await page.locator('#who-roles').textContent()) === 'no roles', 'whoami\'s roles shown');
  const subscriptionId = await page.locator('#orders-sub').getAttribute('data-id');
  const token = await page.locator('#client-token').textContent();
  const first = await postOrder();
  checkEqual(await waitForSeqs(page, 'orders-events', [first]), [first], 'the first order');
  checkNoPageErrors(page);
  await page.close();

  const missed = [];
  for (let i = 0; i < 5; i += 1) missed.push(await postOrder(100 + i));
  log(`posted ${missed.join(', ')} while the page was closed`);

  // Reopened: the page remembers who was signed in and asks for a new ticket (the first was used);
  // meanwhile Live runs anonymously, with a token of its own that does not replace the user's.
  const again = await openDemo(context);
  await waitFor(again, 'the signed-out state', () => document.getElementById('account').dataset.mode === 'signed-out');
  check(await again.locator('#signed-out').isVisible(), 'the "signed out" notice shows');
  const notice = await again.locator('#signed-out').textContent();
  check(notice.includes('Signed out: paste a new ticket') && notice.includes(USER), `the notice: ${notice}`);
  await waitLiveSubscribed(again);
  checkEqual(await again.locator('#orders-events li').count(), 0, 'orders shown before signing in');

  if (ARTIFACTS) await again.locator('#account').screenshot({ path: join(ARTIFACTS, 'signed-out.png') });

  // What cannot sign in says why, beside the form; the page goes on as it was.
  for (const [pasted, expected] of [
    ['', 'Paste a ticket (gt_…) or a JWT first.'],
    ['gt_abc def', 'A ticket has no spaces: paste just the ticket (gt_…).'],
    ['{"expires_at": "2030-01-01T00:00:00Z"}', 'That is not the answer of POST /tickets: paste its "ticket" (gt_…).'],
    [jwt({ sub: USER, exp: 1_000_000_000 }), 'That JWT expired at 2001-09-09T01:46:40.000Z: sign a new one.'],
    [jwt({ sub: USER, exp: 4_000_000_000 }), 'Sign-in refused: the JWT\'s signature does not match: '
      + 'it was not signed with this gateway\'s auth.secret.'],
    [firstTicket, 'Sign-in refused: the ticket is unknown or was used already '
      + '(a ticket works once; get a new one from POST /tickets).'],
  ]) {
    await again.fill('#credential', pasted);
    await again.click('#sign-in');
    await waitFor(again, `the error for ${JSON.stringify(pasted)}`, (text) => {
      const error = document.getElementById('signin-error');
      return !error.hidden && error.textContent === text;
    }, expected).catch(async (err) => {
      log('shown:', await again.locator('#signin-error').textContent(), '| notice:', await again.locator('#notice').textContent());
      throw err;
    });
  }
  await waitFor(again, 'signed out again', () => document.getElementById('account').dataset.mode === 'signed-out');
  await waitLiveSubscribed(again);
  log('refused: an empty field, spaces, JSON without a ticket, an expired JWT, a forged JWT, a used ticket');

  await again.fill('#credential', await ticket(USER));
  await again.click('#sign-in');
  await waitSignedIn(again, USER);
  checkEqual(await again.locator('#orders-sub').getAttribute('data-id'), subscriptionId, 'the same subscription');
  checkEqual(await again.locator('#client-token').textContent(), token, 'the user\'s token, from the cookie');
  checkEqual(await waitForSeqs(again, 'orders-events', missed), missed, 'the missed orders, once, in order');
  await waitLiveSubscribed(again);

  const live = await postOrder(999);
  checkEqual(await waitForSeqs(again, 'orders-events', [...missed, live]), [...missed, live],
    'the missed orders then the live one');
  const rows = await again.locator('#orders-events li').allTextContents();
  check(rows[0].includes('999'), `the newest first: ${rows[0]}`);
  checkEqual(await shownSeqs(again, 'orders-events'), [...missed, live], 'nothing else shown');
  if (ARTIFACTS) {
    await again.locator('#account').screenshot({ path: join(ARTIFACTS, 'signed-in.png'), animations: 'disabled' });
  }

  // Signing out ends the persistent subscription on the gateway, and the page goes on anonymously.
  checkEqual((await subscriptionsOf(USER)).map((sub) => sub.id), [subscriptionId], 'olga\'s subscriptions');
  await again.click('#sign-out');
  await waitFor(again, 'anonymous again', () => document.getElementById('account').dataset.mode === 'anonymous'
    && document.getElementById('session-role').textContent === 'role anonymous');
  checkEqual(await again.locator('#orders-panel').isVisible(), false, 'the orders once signed out');
  checkEqual(await subscriptionsOf(USER), [], 'olga\'s subscriptions once she signed out');
  await again.reload();
  await waitLiveSubscribed(again);
  checkEqual(await again.locator('#account').getAttribute('data-mode'), 'anonymous', 'after a reload, signed out');
  checkNoPageErrors(again);
});
