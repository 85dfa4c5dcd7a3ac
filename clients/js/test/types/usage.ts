// The public API used as clients/js/README.md and the root README.md show it, type-checked
// against gateway.d.ts (npm run check:types). Never run: it only has to compile. Lines
// marked ts-expect-error are mistakes the types must refuse.

import {
  ClientErrors, CookieTokenStore, EVENTS, Gateway, GatewayError, LocalCursorStore, MemoryCursorStore,
  MemoryTokenStore, Subscription,
} from 'events-gateway-client';
import type {
  ClosedDetail, ConnectingDetail, CursorStore, Envelope, GapInfo, LostDetail, OpenDetail, RemovedInfo, State, TokenStore,
} from 'events-gateway-client';

declare function show(text: string): void;
declare function render(event: Envelope): void;
declare function showBanner(text: string): void;
declare function saveToIndexedDb(event: Envelope): Promise<void>;
declare function showOrder(event: Envelope): void;
declare function warnUser(gap: GapInfo): void;
declare function fetchTicketFromYourApp(): Promise<string>;

// The root README.md's "Subscribe from code".
export async function rootReadme(): Promise<void> {
  const gw = new Gateway({ url: 'ws://127.0.0.1:8080/ws' });
  gw.on('state', (state) => console.log('connection:', state));
  await gw.subscribe("demo.message where room = 'lobby'", (event) => console.log(event.seq, event.data.text));
  await gw.subscribe('demo.order', showOrder, { persistent: true, onGap: warnUser });
  await gw.connect();
  new Gateway({ url: 'ws://127.0.0.1:8080/ws', getCredentials: async () => ({ ticket: await fetchTicketFromYourApp() }) });
}

// clients/js/README.md, section by section.

export async function usage(): Promise<void> {
  // -- In a web page / in Node ---------------------------------------------------------
  const gw = new Gateway({ url: 'ws://127.0.0.1:8080/ws' });
  gw.on('state', (state: State, detail: unknown) => {
    document.body.dataset.connection = state;
    void detail;
  });
  gw.on('error', (err) => console.warn(err.uri, err.message));
  await gw.subscribe("demo.message where room = 'lobby'", (event) => {
    show(String(event.data.text));
  });
  await gw.connect();

  // -- Connection states ---------------------------------------------------------------
  const state: 'idle' | 'connecting' | 'open' | 'lost' | 'closed' = gw.state;
  void state;
  gw.on('connecting', ({ attempt, delay }: ConnectingDetail) => void [attempt + delay]);
  gw.on('open', (detail: OpenDetail) => void [detail.session, detail.authid, detail.roles.join(), detail.clientToken]);
  gw.on('resumed', (detail) => void detail.clientTokenExpires);
  gw.on('lost', ({ reason, message }: LostDetail) => void [reason, message]);
  gw.on('closed', ({ reason, error }: ClosedDetail) => void [reason, error?.uri]);
  const onLost = (detail: LostDetail) => void detail;
  gw.on('lost', onLost).off('lost', onLost);
  // @ts-expect-error: there is no such event
  gw.on('opened', () => {});
  for (const name of EVENTS) gw.off(name, () => {});

  new Gateway({
    url: 'wss://example.org/ws',
    reconnect: { initialDelay: 0.5, maxDelay: 30, factor: 2, jitter: 0.5, maxAttempts: Infinity },
    connectTimeout: 10,
    ackInterval: 1000,
    realm: 'gateway',
  });
  // @ts-expect-error: url is required
  new Gateway({ realm: 'gateway' });

  // -- Several nodes -------------------------------------------------------------------------
  const nodes = new Gateway({ url: ['wss://gw1.example.org/ws', 'wss://gw2.example.org/ws', 'wss://gw3.example.org/ws'] });
  const on: string | null = nodes.url;
  void on;
  nodes.on('connecting', ({ url, delay }) => void [url.length + delay]);
  nodes.on('resumed', ({ url }: OpenDetail) => void url.length);
  nodes.on('lost', ({ url }) => void url.length);
  new Gateway({ url: ['ws://a/ws', 'ws://b/ws'] as const });
  // @ts-expect-error: a URL is a string
  new Gateway({ url: ['ws://a/ws', 8080] });

  // -- Logging a user in -------------------------------------------------------------------
  const withLogin = new Gateway({
    url: 'ws://127.0.0.1:8080/ws',
    ticket: 'a-first-ticket',
    getCredentials: async () => {
      const r = await fetch('/my-app/gateway-ticket', { credentials: 'same-origin' });
      if (r.status === 401) return null;
      return { ticket: (await r.json()).ticket as string };
    },
  });
  new Gateway({ url: 'ws://127.0.0.1:8080/ws', jwt: 'e.y.j', getCredentials: () => ({ jwt: 'e.y.j' }) });
  const identity = withLogin.identity;
  if (identity !== null) void [identity.authid, identity.role, identity.user, identity.roles];

  // -- The client token and the stores -----------------------------------------------------
  const token: string | null = gw.clientToken;
  const expires: string | null = gw.clientTokenExpires;
  void [token, expires];
  new Gateway({ url: 'ws://h/ws', tokenStore: new CookieTokenStore({ name: 'shop_gw', path: '/shop' }) });
  const tokenStore: TokenStore = new MemoryTokenStore();
  const cursorStore: CursorStore = new MemoryCursorStore();
  new Gateway({ url: 'ws://h/ws', tokenStore, cursorStore: new LocalCursorStore({ prefix: 'app:' }) });
  new Gateway({ url: 'ws://h/ws', tokenStore, cursorStore });
  const custom: CursorStore = { get: () => null, set: () => {} };
  new Gateway({ url: 'ws://h/ws', cursorStore: custom });
  void [gw.tokenStore.get()?.token, gw.cursorStore.get('p_1')];

  // -- Subscriptions -------------------------------------------------------------------------
  const sub = await gw.subscribe("demo.order where amount > 100 and country in ['AR', 'UY']",
    (event, s: Subscription) => { render(event); void s.id; });
  const id: string | null = sub.id;
  const topic: string | null = sub.topic;
  const query: string = sub.query;
  const lastSeq: number | null = sub.lastSeq;
  const active: boolean = sub.active;
  void [id, topic, query, lastSeq, active, sub.persistent];
  await sub.unsubscribe();
  for (const each of gw.subscriptions) void each.query;

  type Message = { room: string; text: string; author: string };
  await gw.subscribe<Message>('demo.message', (event) => show(event.data.text));

  try {
    await gw.subscribe("demo.message where rom = 'x'", () => {});
  } catch (err) {
    if (err instanceof GatewayError) {
      const uri: string | null = err.uri;
      const position: number | null = err.position;
      const sent: string | null = err.query;
      void [uri, err.message, position, sent, err.details, err.name === 'GatewayError'];
    }
  }

  let done = Promise.resolve();
  await gw.subscribe('demo.message', (event) => { done = done.then(() => saveToIndexedDb(event)); });
  await gw.subscribe('demo.message', async (event) => { await saveToIndexedDb(event); });

  // -- Persistent subscriptions -----------------------------------------------------------
  await gw.subscribe('demo.order where customer.id = 42', (event) => render(event), {
    persistent: true,
    onGap: ({ subscription, afterSeq }: GapInfo) => showBanner(`Some updates after ${afterSeq} of ${subscription.query} were lost.`),
    onRemoved: ({ id: removed, query: q, reason, topic: t }: RemovedInfo) => showBanner(`Stopped ${removed} ${q} ${t}: ${reason}`),
  });
  // @ts-expect-error: persistent is true or false
  await gw.subscribe('demo.order', () => {}, { persistent: 'yes' });

  // -- Errors ------------------------------------------------------------------------------
  const uris: string[] = [ClientErrors.INVALID_ARGUMENT, ClientErrors.NO_CREDENTIALS, ClientErrors.INVALID_CREDENTIALS,
    ClientErrors.GAVE_UP, ClientErrors.CONNECTION_LOST, ClientErrors.CLOSED, ClientErrors.HANDLER_ERROR, ClientErrors.GAP,
    ClientErrors.SUBSCRIPTION_REMOVED, ClientErrors.STORE_FAILED, ClientErrors.TIMEOUT, ClientErrors.BAD_EVENT];
  const gap: 'gateway.client.gap' = ClientErrors.GAP;
  void [uris, gap];
  gw.on('error', (err: GatewayError) => void [err.uri === ClientErrors.HANDLER_ERROR, err.cause]);

  // -- Calls -------------------------------------------------------------------------------
  const catalog = await gw.catalog();
  for (const cls of catalog.classes) void [cls.name, cls.schema, cls.retention];
  const me = await gw.whoami();
  void [me.session, me.authid, me.role, me.user, me.roles, me.client_token, me.client_token_expires];
  const subscriptions = await gw.call<Array<{ id: string; query: string }>>('gateway.subscriptions');
  void subscriptions[0]?.query;
  await gw.call('gateway.replay', ['p_1', 0, 10], {});
  // @ts-expect-error: args is an array
  await gw.call('gateway.replay', 'p_1');
  await gw.close();
}
