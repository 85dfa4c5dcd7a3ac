// The demo page of the events gateway, on the gateway's JavaScript client (/lib/gateway.js).
// An ES module, no build step. Two parts:
//
// - Live: anyone subscribes with a query and sees matching events as they arrive.
// - Signed in: a user (one-time ticket or JWT) subscribes persistently to demo.order; what is posted
//   while the page is closed or offline is delivered when it is back, each event once, in order.
//
// One Gateway (one WebSocket, one identity) at a time: signing in or out replaces it, and the Live
// query moves over to the new one.

import { Gateway, GatewayError, MemoryTokenStore } from '/lib/gateway.js';
import {
  EventList, byId, formatTime, hideQueryError, showQueryError, wireCopyButtons,
} from './view.js';

const REALM = 'gateway';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const ORDERS_QUERY = 'demo.order';
// While a user is signed in this holds {user}: after a reload the page asks for a new ticket
// instead of quietly going on as anonymous.
const ACCOUNT_KEY = 'gateway-demo.account';
// The library's default waits up to 30 s between attempts, right for many clients of a busy
// gateway; this page mostly talks to a developer's `make run`, and should be back soon after it is.
const RECONNECT = { initialDelay: 0.5, factor: 2, maxDelay: 5 };

const ui = {
  status: byId('status'),
  statusText: byId('status-text'),
  notice: byId('notice'),
  liveForm: byId('live-form'),
  query: byId('query'),
  unsubscribe: byId('unsubscribe'),
  liveSub: byId('live-sub'),
  liveSubText: byId('live-sub-text'),
  account: byId('account'),
  signedOut: byId('signed-out'),
  signedOutText: byId('signed-out-text'),
  signinForm: byId('signin-form'),
  credential: byId('credential'),
  signinError: byId('signin-error'),
  who: byId('who'),
  whoRoles: byId('who-roles'),
  signOut: byId('sign-out'),
  ordersSub: byId('orders-sub'),
  ordersSubText: byId('orders-sub-text'),
  gap: byId('gap'),
  sessionId: byId('session-id'),
  sessionRole: byId('session-role'),
  clientToken: byId('client-token'),
  tokenExpires: byId('token-expires'),
};
const caretParts = {
  box: byId('query-error'),
  message: byId('query-error-message'),
  caret: byId('query-error-caret'),
  before: byId('caret-before'),
  mark: byId('caret-mark'),
  after: byId('caret-after'),
  pad: byId('caret-pad'),
  column: byId('caret-column'),
};
const liveList = new EventList(byId('live-events'), byId('live-empty'), byId('live-count'));
const ordersList = new EventList(byId('orders-events'), byId('orders-empty'), byId('orders-count'));

let gw = null;                   // the current Gateway
let liveQuery = 'demo.message';  // what Live is subscribed to (null: nothing); moves to a new Gateway
let liveSub = null;
let liveAttempt = null;          // the latest Subscribe click: an older answer is ignored
let ordersSub = null;
let credentialWaiter = null;     // resolves getCredentials() with what the user pastes next
let loginRefused = null;         // why the gateway refused the last credential
let opened = false;              // the current Gateway had a session (so its user signed in once)
let credentialKind = null;       // 'ticket' | 'jwt' | null (anonymous): what the current Gateway logs in with

// For the console: `await demo.gateway.whoami()`.
window.demo = { gateway: null };
byId('ws-url').textContent = WS_URL;

// -- the connection ---------------------------------------------------------------------------

/** Replace the current Gateway by one that logs in with `credential` ({ticket} | {jwt}) or anonymously. */
async function start(credential) {
  const previous = gw;
  gw = null;
  credentialWaiter = null;
  liveSub = null;
  ordersSub = null;
  if (previous !== null) await previous.close().catch(() => {});

  const options = { url: WS_URL, realm: REALM, reconnect: RECONNECT };
  if (credential) {
    Object.assign(options, credential);
    // A ticket works once and a JWT expires: when another is needed, ask the user for it rather
    // than carry on as anonymous.
    options.getCredentials = askForCredential;
  } else if (rememberedAccount() !== null) {
    // Anonymous while a signed-out user is remembered: this session's token stays in memory, so
    // the user's token stays in the cookie and their next sign-in resumes their subscription.
    options.tokenStore = new MemoryTokenStore();
  }
  const current = new Gateway(options);
  gw = current;
  opened = false;
  credentialKind = kindOf(credential);
  window.demo.gateway = current;
  watch(current);
  if (credential) {
    showAccount('signing-in');
  } else {
    showAccount(rememberedAccount() === null ? 'anonymous' : 'signed-out');
  }
  if (liveQuery !== null) subscribeLive(current, liveQuery);
  if (credential) subscribeOrders(current);
  // Rejected only if it ends 'closed' before it opens: the 'closed' event says why.
  await current.connect().catch(() => {});
}

function kindOf(credential) {
  if (!credential) return null;
  return credential.ticket !== undefined ? 'ticket' : 'jwt';
}

/** Feed the status badge, the connection details and the account part from the client's events. */
function watch(current) {
  const mine = (fn) => (...args) => { if (gw === current) fn(...args); };
  current.on('state', mine((state) => { ui.status.dataset.state = state; }));
  current.on('connecting', mine((detail) => setPhase('connecting', detail)));
  current.on('open', mine((detail) => { opened = true; setPhase('open'); sessionOpened(current, detail); }));
  current.on('resumed', mine((detail) => { setPhase('resumed'); sessionOpened(current, detail); }));
  current.on('lost', mine((detail) => setPhase('lost', detail)));
  current.on('closed', mine((detail) => setPhase('closed', detail)));
  current.on('error', mine((err) => {
    if (/authentication_failed|not_authorized|no_auth_method/.test(err.uri ?? '')) {
      // Shown by askForCredential(), which the client calls next.
      loginRefused = messageOf(err).replace(/^the gateway refused the login: /, '');
    } else {
      showNotice(err.message);
    }
  }));
}

function sessionOpened(current, detail) {
  clearNotice();
  const who = current.identity ?? {};
  ui.sessionId.textContent = detail && detail.session !== undefined ? String(detail.session) : '–';
  ui.sessionRole.textContent = who.role ? `role ${who.role}${who.user ? `, user ${who.user}` : ''}` : '';
  ui.clientToken.textContent = current.clientToken ?? '–';
  ui.tokenExpires.dataset.expires = current.clientTokenExpires ?? '';
  ui.tokenExpires.dateTime = current.clientTokenExpires ?? '';
  ui.tokenExpires.textContent = current.clientTokenExpires
    ? `${formatTime(current.clientTokenExpires)} (${current.clientTokenExpires})` : '–';
  if (!who.user) return;
  loginRefused = null;
  localStorage.setItem(ACCOUNT_KEY, JSON.stringify({ user: who.user }));
  // Who the gateway says this session is.
  current.whoami().then((me) => {
    if (gw !== current) return;
    showAccount('signed-in', me);
  }, (err) => showNotice(`whoami: ${messageOf(err)}`));
}

// The badge: the client's state, with a countdown while it waits to reconnect.
let countdown = null;

function setPhase(phase, detail = {}) {
  clearInterval(countdown);
  countdown = null;
  ui.status.dataset.phase = phase;
  const text = (t) => { ui.statusText.textContent = t; };
  switch (phase) {
    case 'connecting': {
      const attempt = detail.attempt > 1 ? ` (attempt ${detail.attempt})` : '';
      const until = Date.now() + (detail.delay ?? 0) * 1000;
      const tick = () => {
        const left = Math.ceil((until - Date.now()) / 1000);
        if (left > 0) {
          text(`Reconnecting in ${left}s${attempt}`);
        } else {
          clearInterval(countdown);
          countdown = null;
          text(`Connecting…${attempt}`);
        }
      };
      tick();
      if (Date.now() < until) countdown = setInterval(tick, 250);
      break;
    }
    case 'open': text('Connected'); break;
    case 'resumed': text('Reconnected'); break;
    case 'lost': text('Connection lost'); break;
    case 'closed':
      text('Disconnected');
      if (detail.error) showNotice(`Disconnected: ${messageOf(detail.error)}`);
      break;
    case 'signed-out': text('Signed out'); break;
    default: text(phase);
  }
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

function clearNotice() {
  ui.notice.hidden = true;
  ui.notice.textContent = '';
}

function messageOf(err) {
  // The gateway's own sentence, without the caret picture its full message repeats.
  const details = err instanceof GatewayError ? err.details : null;
  return (details && typeof details.message === 'string' && details.message) || err.message || String(err);
}

function setSubline(line, textEl, status, text) {
  line.dataset.status = status;
  textEl.textContent = text;
}

// -- Live -------------------------------------------------------------------------------------

/** Subscribe Live to `query` on `current`; the running subscription is replaced only once it is taken. */
async function subscribeLive(current, query) {
  const attempt = {};
  liveAttempt = attempt;
  if (liveSub === null) setSubline(ui.liveSub, ui.liveSubText, 'subscribing', `Subscribing to ${query}…`);
  let sub;
  try {
    sub = await current.subscribe(query, (envelope, from) => {
      if (from === liveSub) liveList.add(envelope);
    });
  } catch (err) {
    if (gw !== current || liveAttempt !== attempt) return;
    showQueryError(caretParts, messageOf(err), err.query ?? query, err.position ?? null);
    ui.query.setAttribute('aria-invalid', 'true');
    if (typeof err.position === 'number' && ui.query.value === query) {
      // The cursor where the gateway found the fault (its column counts characters, not UTF-16 units).
      const at = Array.from(query).slice(0, err.position - 1).join('').length;
      ui.query.focus();
      ui.query.setSelectionRange(at, at);
    }
    if (liveSub !== null) {
      setSubline(ui.liveSub, ui.liveSubText, 'subscribed', `Still subscribed to ${liveSub.query}`);
    } else {
      setSubline(ui.liveSub, ui.liveSubText, 'error', 'Not subscribed');
    }
    return;
  }
  if (gw !== current || liveAttempt !== attempt) {
    sub.unsubscribe().catch(() => {});
    return;
  }
  const previous = liveSub;
  liveSub = sub;
  liveQuery = query;
  if (previous !== null) {
    previous.unsubscribe().catch(() => {});
    liveList.clear();
  }
  hideQueryError(caretParts);
  ui.query.removeAttribute('aria-invalid');
  ui.unsubscribe.disabled = false;
  setSubline(ui.liveSub, ui.liveSubText, 'subscribed', `Subscribed to ${sub.query}`);
}

ui.liveForm.addEventListener('submit', (e) => {
  e.preventDefault();
  // As typed: the gateway's column of a fault counts from the first character.
  const query = ui.query.value;
  if (query.trim() !== '' && gw !== null) subscribeLive(gw, query);
});

ui.unsubscribe.addEventListener('click', () => {
  liveAttempt = null;
  if (liveSub !== null) liveSub.unsubscribe().catch((err) => showNotice(messageOf(err)));
  liveSub = null;
  liveQuery = null;
  ui.unsubscribe.disabled = true;
  setSubline(ui.liveSub, ui.liveSubText, 'none', 'Not subscribed');
});

for (const chip of document.querySelectorAll('.chip[data-query]')) {
  chip.addEventListener('click', () => {
    ui.query.value = chip.dataset.query;
    ui.liveForm.requestSubmit();
  });
}

// -- Signed in ----------------------------------------------------------------------------------

function subscribeOrders(current) {
  setSubline(ui.ordersSub, ui.ordersSubText, 'subscribing', `Subscribing to ${ORDERS_QUERY}…`);
  ui.gap.hidden = true;
  current.subscribe(ORDERS_QUERY, (envelope) => ordersList.add(envelope), {
    persistent: true,
    onGap: ({ afterSeq }) => {
      ui.gap.textContent = `Some orders after #${afterSeq} are missing: the gateway no longer held them `
        + '(retention) when this page came back.';
      ui.gap.hidden = false;
    },
    onRemoved: (info) => {
      if (gw !== current) return;
      ordersSub = null;
      setSubline(ui.ordersSub, ui.ordersSubText, 'removed', `The gateway ended the subscription: ${info.reason}`);
    },
  }).then((sub) => {
    if (gw !== current) return;
    ordersSub = sub;
    ui.ordersSub.dataset.id = sub.id;
    setSubline(ui.ordersSub, ui.ordersSubText, 'subscribed',
      `Persistent subscription to ${sub.query}: kept for this browser while it is away`);
  }, (err) => {
    if (gw !== current) return;
    setSubline(ui.ordersSub, ui.ordersSubText, 'error', `Could not subscribe: ${messageOf(err)}`);
  });
}

/** getCredentials(): the client needs a new credential; it waits until the user pastes one. */
function askForCredential() {
  if (!opened) {
    // Refused at sign-in: say why beside the form, and go on as before (anonymous).
    ui.signinError.textContent = `Sign-in refused: ${loginRefused ?? 'the gateway did not take it'}.`;
    ui.signinError.hidden = false;
    setTimeout(() => start(null), 0);
    return new Promise(() => {});  // never answered: this Gateway is closed meanwhile
  }
  let why = 'The connection was lost and renewed, and a ticket works once.';
  if (loginRefused !== null) why = `The gateway refused the last one: ${loginRefused}.`;
  else if (credentialKind === 'jwt') why = 'The JWT expired.';
  showSignedOut(rememberedAccount()?.user ?? null, why);
  setPhase('signed-out');
  return new Promise((resolve) => { credentialWaiter = resolve; });
}

function showSignedOut(user, why) {
  ui.signedOutText.textContent = `${why} ${user ? `Sign in as ${user} again` : 'Sign in again'} to go on where `
    + 'you left off (orders posted meanwhile are kept for you), or sign out to go on anonymously.';
  showAccount('signed-out');
  if (ordersSub === null) {
    setSubline(ui.ordersSub, ui.ordersSubText, 'waiting', 'The orders posted while you are signed out wait for you');
  }
}

/**
 * Which parts of the account section show: 'anonymous' (the sign-in form), 'signing-in',
 * 'signed-in' (who, the orders) or 'signed-out' (a user whose credential is used up: the form again).
 */
function showAccount(mode, me = null) {
  ui.account.dataset.mode = mode;
  byId('signin').hidden = mode === 'signed-in';
  byId('signed-in').hidden = mode === 'anonymous' || mode === 'signing-in';
  byId('orders-panel').hidden = mode === 'anonymous';
  ui.signedOut.hidden = mode !== 'signed-out';
  byId('who-label').textContent = mode === 'signed-out' ? 'Was signed in as' : 'Signed in as';
  if (mode === 'signed-in' && me !== null) {
    ui.who.textContent = me.user;
    ui.who.dataset.user = me.user;
    ui.whoRoles.textContent = me.roles && me.roles.length ? `roles: ${me.roles.join(', ')}` : 'no roles';
  } else if (mode === 'signed-out') {
    const user = rememberedAccount()?.user ?? '';
    ui.who.textContent = user;
    ui.who.dataset.user = '';
    ui.whoRoles.textContent = 'signed out';
  }
}

function rememberedAccount() {
  try {
    const stored = JSON.parse(localStorage.getItem(ACCOUNT_KEY) ?? 'null');
    return stored && typeof stored.user === 'string' ? stored : null;
  } catch {
    return null;
  }
}

/** {ticket} or {jwt} from what the user pasted, or {error} saying what is wrong with it. */
function parseCredential(text) {
  const value = text.trim();
  if (value === '') return { error: 'Paste a ticket (gt_…) or a JWT first.' };
  if (value.startsWith('{')) {
    // The whole answer of POST /tickets: take its ticket.
    try {
      const doc = JSON.parse(value);
      if (typeof doc.ticket === 'string') return { ticket: doc.ticket };
    } catch { /* said below */ }
    return { error: 'That is not the answer of POST /tickets: paste its "ticket" (gt_…).' };
  }
  const bare = value.replace(/^"(.*)"$/, '$1');
  if (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(bare)) {
    const exp = jwtExpiry(bare);
    if (exp !== null && exp * 1000 <= Date.now()) {
      return { error: `That JWT expired at ${new Date(exp * 1000).toISOString()}: sign a new one.` };
    }
    return { jwt: bare };
  }
  if (/\s/.test(bare)) return { error: 'A ticket has no spaces: paste just the ticket (gt_…).' };
  return { ticket: bare };
}

/** The `exp` claim of a JWT (seconds), or null; the gateway checks the rest. */
function jwtExpiry(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, '=')));
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

ui.signinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const credential = parseCredential(ui.credential.value);
  ui.signinError.hidden = credential.error === undefined;
  ui.signinError.textContent = credential.error ?? '';
  if (credential.error) return;
  ui.credential.value = '';
  loginRefused = null;
  if (credentialWaiter !== null) {
    // The client waits in getCredentials(): it goes on with the same subscriptions and replays.
    const resolve = credentialWaiter;
    credentialWaiter = null;
    credentialKind = kindOf(credential);
    showAccount('signing-in');
    setPhase('connecting');
    resolve(credential);
  } else {
    start(credential);
  }
});

ui.signOut.addEventListener('click', async () => {
  // Signing out ends the persistent subscription (if connected, to say so); otherwise the gateway
  // ends it when this browser's token expires.
  if (ordersSub !== null && gw !== null && gw.state === 'open') {
    await ordersSub.unsubscribe().catch(() => {});
  }
  localStorage.removeItem(ACCOUNT_KEY);
  ordersList.clear();
  start(null);
});

// -- start ----------------------------------------------------------------------------------------

/** A credential handed over in the address (#ticket=… or #jwt=…), removed from it at once. */
function credentialFromAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const ticket = params.get('ticket');
  const jwt = params.get('jwt');
  if (!ticket && !jwt) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return ticket ? { ticket } : { jwt };
}

wireCopyButtons();
const handed = credentialFromAddress();
start(handed);
if (handed === null && rememberedAccount() !== null) {
  showSignedOut(rememberedAccount().user, 'A ticket works once, and this page was reloaded.');
}
