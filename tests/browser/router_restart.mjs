// The gateway (router, bridge, components: all of it) is stopped and started again while pages are
// open. The page signed in with a JWT reconnects by itself (lost → connecting → resumed), its Live
// subscription is back, and its persistent one shows every order once, in order: also those posted
// after the restart before the page was back (held offline meanwhile), which come by replay.
// The page signed in with a ticket asks for a new one (a ticket works once) instead of carrying on
// as anonymous, and resumes once given it.
import {
  check, checkEqual, checkNoPageErrors, control, log, openDemo, phasesSince, postMessage, postOrder,
  runTest, shownSeqs, ticket, waitForPhase, waitForSeqs, waitLiveSubscribed, waitSignedIn,
} from './lib.mjs';

const JWT = process.env.DEMO_JWT;

await runTest('router_restart', async (browser) => {
  check(JWT, 'DEMO_JWT is set');
  const jwtContext = await browser.newContext();
  const rita = await openDemo(jwtContext);
  await rita.fill('#credential', JWT);
  await rita.click('#sign-in');
  await waitSignedIn(rita, 'rita');
  await waitLiveSubscribed(rita);

  const ticketContext = await browser.newContext();
  const tom = await openDemo(ticketContext, `#ticket=${await ticket('tom')}`);
  await waitSignedIn(tom, 'tom');

  const orders = [await postOrder(1)];
  const messages = [await postMessage('before the restart')];
  await waitForSeqs(rita, 'orders-events', orders);
  await waitForSeqs(rita, 'live-events', messages);
  await waitForSeqs(tom, 'orders-events', orders);

  const stopped = Date.now();
  log('stopping at', stopped);
  await control('stop');
  await waitForPhase(rita, 'lost', stopped);
  // Hold rita's page off the network until events were posted to the restarted gateway.
  await jwtContext.setOffline(true);
  await control('start');
  log(`the gateway was down for ${((Date.now() - stopped) / 1000).toFixed(1)}s`);
  const whileAway = [await postOrder(2), await postOrder(3)];
  const missedMessage = await postMessage('while the page was away');
  orders.push(...whileAway);
  check(await rita.locator('#status').getAttribute('data-phase') !== 'resumed', 'rita\'s page is still away');
  await jwtContext.setOffline(false);

  await waitForPhase(rita, 'resumed', stopped);
  const phases = await phasesSince(rita, stopped);
  check(phases[0] === 'lost' && phases[phases.length - 1] === 'resumed'
    && phases.slice(1, -1).every((p) => p === 'connecting') && phases.length >= 3,
  `rita's page went lost → connecting → resumed, by itself: ${phases.join(' → ')}`);
  checkEqual(await rita.locator('#who').getAttribute('data-user'), 'rita', 'still signed in as');
  await waitLiveSubscribed(rita);

  // Tom's ticket was used: his page asks for a new one and stays signed out meanwhile.
  await waitForPhase(tom, 'signed-out');
  checkEqual(await tom.locator('#account').getAttribute('data-mode'), 'signed-out', 'tom\'s page');
  const tomNotice = await tom.locator('#signed-out').textContent();
  check(tomNotice.includes('paste a new ticket') && tomNotice.includes('tom'), `tom's notice: ${tomNotice}`);
  checkEqual(await tom.locator('#session-role').textContent(), 'role user, user tom', 'tom\'s last session');
  // The whole answer of POST /tickets pasted: the page takes its ticket.
  await tom.fill('#credential', JSON.stringify({ ticket: await ticket('tom'), user: 'tom' }));
  await tom.click('#sign-in');
  await waitForPhase(tom, 'resumed', stopped);
  await waitSignedIn(tom, 'tom');

  for (let i = 0; i < 3; i += 1) {
    orders.push(await postOrder(10 + i));
    messages.push(await postMessage(`after the restart ${i + 1}`));
  }
  checkEqual(await waitForSeqs(rita, 'orders-events', orders), orders, 'rita\'s orders: once each, in order, no gap');
  checkEqual(await waitForSeqs(tom, 'orders-events', orders), orders, 'tom\'s orders: once each, in order, no gap');
  checkEqual(await waitForSeqs(rita, 'live-events', messages), messages, 'rita\'s Live events: once each, in order');
  check(!(await shownSeqs(rita, 'live-events')).includes(missedMessage),
    'a plain subscription does not replay what was posted while away');
  log(`orders ${orders.join(', ')}; messages ${messages.join(', ')}; phases ${phases.join(' → ')}`);
  checkNoPageErrors(rita);
  checkNoPageErrors(tom);
});
