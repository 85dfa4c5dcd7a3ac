// The cookie 'gateway_client_token' holds the client token the gateway gave in WELCOME, and
// expires when the gateway says the token does; a reload presents it again and gets the same token.
import {
  PAGE_URL, check, checkEqual, checkNoPageErrors, log, openDemo, runTest, waitLiveSubscribed,
} from './lib.mjs';

/** What the page shows of its connection, and what whoami() says, read from the page. */
async function connectionShown(page) {
  return page.evaluate(async () => ({
    token: document.getElementById('client-token').textContent,
    expires: document.getElementById('token-expires').dataset.expires,
    whoami: await window.demo.gateway.whoami(),
    fromClient: { token: window.demo.gateway.clientToken, expires: window.demo.gateway.clientTokenExpires },
  }));
}

async function tokenCookie(context) {
  const cookies = await context.cookies(PAGE_URL);
  const found = cookies.filter((c) => c.name === 'gateway_client_token');
  checkEqual(found.length, 1, 'cookies named gateway_client_token');
  return found[0];
}

await runTest('token_cookie', async (browser) => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  await waitLiveSubscribed(page);
  const first = await connectionShown(page);
  check(/^ct_/.test(first.token), `the page shows the client token: ${first.token}`);
  checkEqual(first.fromClient, { token: first.token, expires: first.expires }, 'the page shows the client\'s token');
  checkEqual([first.whoami.client_token, first.whoami.client_token_expires], [first.token, first.expires],
    'whoami() against WELCOME');

  const cookie = await tokenCookie(context);
  checkEqual(decodeURIComponent(cookie.value), first.token, 'the cookie\'s token');
  // A cookie's expiry has whole seconds.
  checkEqual(cookie.expires, Math.floor(Date.parse(first.expires) / 1000), 'the cookie\'s expiry (s)');
  checkEqual([cookie.path, cookie.sameSite, cookie.secure, cookie.httpOnly], ['/', 'Lax', false, false],
    'the cookie\'s path, SameSite, Secure (http here), HttpOnly (the page reads it)');
  const days = (Date.parse(first.expires) - Date.now()) / 86_400_000;
  check(days > 6.9 && days <= 7, `the token lasts auth.client_token_ttl (7 days): ${days.toFixed(3)} days`);
  log(`token ${first.token.slice(0, 10)}… expires ${first.expires} = the cookie's ${new Date(cookie.expires * 1000).toISOString()}`);

  await page.reload();
  await waitLiveSubscribed(page);
  const again = await connectionShown(page);
  checkEqual(again.token, first.token, 'the token after a reload');
  check(Date.parse(again.expires) >= Date.parse(first.expires), `the expiry is renewed, not shortened: ${again.expires}`);
  const cookieAgain = await tokenCookie(context);
  checkEqual(decodeURIComponent(cookieAgain.value), first.token, 'the cookie\'s token after a reload');
  checkEqual(cookieAgain.expires, Math.floor(Date.parse(again.expires) / 1000), 'the cookie\'s renewed expiry');
  checkEqual(again.whoami.client_token, first.token, 'whoami() after a reload');

  // Another browser (no cookie) is another client.
  const other = await openDemo(await browser.newContext());
  await waitLiveSubscribed(other);
  const otherShown = await connectionShown(other);
  check(otherShown.token !== first.token, 'a browser without the cookie gets a token of its own');
  checkNoPageErrors(page);
  checkNoPageErrors(other);
});
