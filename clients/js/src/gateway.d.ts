// Types of the events gateway's JavaScript client (src/gateway.js).

/** What every event handler receives: one event as the gateway published it. */
export interface Envelope<D = Record<string, unknown>> {
  /** The event class, e.g. "demo.message". */
  event: string;
  /** The event's id (the web-app's idempotency key, or one the gateway made). */
  id: string;
  /** Strictly increasing in the order the gateway accepted events. */
  seq: number;
  /** When the gateway accepted it, RFC 3339. */
  time: string;
  data: D;
}

export type State = 'idle' | 'connecting' | 'open' | 'lost' | 'closed';

/** A credential for one connection: a one-time ticket from POST /tickets, or a JWT signed by your web-app. */
export type Credentials = { ticket: string } | { jwt: string };

export interface StoredToken {
  token: string;
  /** RFC 3339; null when the store cannot tell (a cookie: the browser drops it when it expires). */
  expires: string | null;
}

export interface TokenStore {
  get(): StoredToken | null;
  set(token: string, expires: string | null): void;
  clear(): void;
}

export interface CursorStore {
  /** The last seq handed to the application on this persistent subscription, or null. */
  get(subscriptionId: string): number | null;
  set(subscriptionId: string, seq: number): void;
  /** Optional: forget a subscription that ended. */
  delete?(subscriptionId: string): void;
}

export interface ReconnectOptions {
  /** Seconds before the first retry (default 0.5). */
  initialDelay?: number;
  /** The longest wait between attempts, in seconds (default 30). */
  maxDelay?: number;
  /** Growth of the delay per failed attempt (default 2). */
  factor?: number;
  /** 0..1: each delay is drawn from [delay * (1 - jitter), delay] (default 0.5). */
  jitter?: number;
  /** Failed attempts in a row before giving up for good (default Infinity). */
  maxAttempts?: number;
}

export interface GatewayOptions {
  /**
   * e.g. 'ws://127.0.0.1:8080/ws', or the router URLs of a cluster's nodes: the first attempt goes
   * to one drawn at random, each failed attempt or lost connection moves on to the next in the list
   * (at once; the reconnect backoff applies per full round of the list).
   */
  url: string | readonly string[];
  /** default 'gateway' */
  realm?: string;
  /** A first credential; a ticket works once. */
  ticket?: string;
  jwt?: string;
  /**
   * Asked whenever a credential is needed again (ticket used, JWT expired or refused), and for
   * every connection when no credential was given. null: connect anonymously.
   * Without it, a client given a ticket or JWT stops ('closed', with an error) once that is used
   * up, rather than carry on as anonymous.
   */
  getCredentials?: () => Credentials | null | Promise<Credentials | null>;
  /** Default: CookieTokenStore in a browser, MemoryTokenStore in Node. */
  tokenStore?: TokenStore;
  /** Default: LocalCursorStore in a browser, MemoryCursorStore in Node. */
  cursorStore?: CursorStore;
  reconnect?: ReconnectOptions;
  /** Milliseconds between acks of persistent subscriptions, sent only when something new was delivered (default 1000). */
  ackInterval?: number;
  /** Seconds one connection attempt may take before it counts as failed (default 10). */
  connectTimeout?: number;
  /** The autobahn-js module; default: globalThis.autobahn (browser), else import('autobahn') (Node). */
  autobahn?: unknown;
}

export interface Identity {
  authid: string | null;
  /** The WAMP role: 'anonymous' or 'user'. */
  role: string | null;
  /** The user id of a logged-in client, else null. */
  user: string | null;
  roles: string[];
}

export interface OpenDetail extends Identity {
  /** The WAMP session id. */
  session: number;
  clientToken: string | null;
  clientTokenExpires: string | null;
  /** The router URL (one of options.url) this session is on. */
  url: string;
}

export interface ConnectingDetail {
  /** 1 for the first attempt since the last open. */
  attempt: number;
  /** Seconds until this attempt starts. */
  delay: number;
  /** The router URL (one of options.url) this attempt goes to. */
  url: string;
}

export interface LostDetail {
  /** e.g. 'wamp.close.killed', 'lost' */
  reason: string | null;
  message: string;
  /** The router URL of the session that was lost. */
  url: string;
}

export interface ClosedDetail {
  reason: string;
  /** Set when the client stopped for good by itself (credentials used up, gave up, ...). */
  error?: GatewayError;
}

export interface GapInfo {
  subscription: Subscription;
  /** The seq the replay resumed after: events after it were dropped by retention (some or all). */
  afterSeq: number;
}

export interface RemovedInfo {
  id: string;
  topic: string;
  query: string;
  reason: string;
}

export interface SubscribeOptions {
  /** Kept by the gateway with the client token: missed events are replayed on return (default false). */
  persistent?: boolean;
  /**
   * Receive on the query's batched topic (default true): under load one WAMP event carries several
   * envelopes; the handler still gets them one by one, in seq order. false: one WAMP event per envelope.
   */
  batch?: boolean;
  /** A replay was truncated by retention. Without onGap, the gap is reported on the Gateway's 'error'. */
  onGap?: (gap: GapInfo) => void;
  /** The gateway ended the subscription. Without onRemoved, it is reported on 'error'. */
  onRemoved?: (info: RemovedInfo) => void;
}

/**
 * Called once per event, in seq order. A promise it returns is not awaited (the next event may be
 * handed over before it settles); a rejection is reported on 'error' as gateway.client.handler_error.
 */
export type Handler<D = Record<string, unknown>> = (envelope: Envelope<D>, subscription: Subscription) => void | Promise<void>;

export interface GatewayEvents {
  state: (state: State, detail: unknown) => void;
  connecting: (detail: ConnectingDetail) => void;
  open: (detail: OpenDetail) => void;
  lost: (detail: LostDetail) => void;
  resumed: (detail: OpenDetail) => void;
  closed: (detail: ClosedDetail) => void;
  error: (error: GatewayError) => void;
}

export declare class Subscription {
  /** The gateway's id ('p_…' for persistent ones); null until subscribed. */
  readonly id: string | null;
  /** The WAMP topic its events arrive on. */
  readonly topic: string | null;
  /** The canonical query once subscribed (as given before). */
  readonly query: string;
  readonly persistent: boolean;
  /** The seq up to which events were handed to the handler (after a resume: the cursor), or null. */
  readonly lastSeq: number | null;
  /** False once unsubscribed or ended by the gateway. */
  readonly active: boolean;
  /**
   * Stop delivering; a persistent subscription is also ended on the gateway, for good (once no
   * other subscription of this Gateway has the same query; while offline: on the next session).
   */
  unsubscribe(): Promise<void>;
}

export declare class Gateway {
  constructor(options: GatewayOptions);
  readonly state: State;
  readonly clientToken: string | null;
  readonly clientTokenExpires: string | null;
  readonly identity: Identity | null;
  /** The router URL (one of options.url) of the current (or last) session; null before the first. */
  readonly url: string | null;
  readonly tokenStore: TokenStore;
  readonly cursorStore: CursorStore;
  /** The active subscriptions, in the order they were made. */
  readonly subscriptions: Subscription[];

  on<K extends keyof GatewayEvents>(name: K, fn: GatewayEvents[K]): this;
  off<K extends keyof GatewayEvents>(name: K, fn: GatewayEvents[K]): this;

  /** Resolves on the first open; rejects (GatewayError) if the client ends 'closed' before. */
  connect(): Promise<void>;
  /**
   * Subscribe by query. Resolves once subscribed (persistent: once the missed events were handed
   * over); may be called before connect(); restored on every new session. Rejects with a
   * GatewayError for a refused query (uri 'gateway.error.invalid_query', position, query).
   */
  subscribe<D = Record<string, unknown>>(query: string, handler: Handler<D>, options?: SubscribeOptions): Promise<Subscription>;
  catalog(): Promise<{ version?: unknown; classes: Array<{ name: string; description?: string; visibility?: string; retention?: number; schema?: unknown }> }>;
  whoami(): Promise<{ session: number; authid: string; role: string; user: string | null; roles: string[]; client_token: string; client_token_expires: string }>;
  /** Call any procedure the client may call; waits for a session. A result with several values comes as {args, kwargs}. */
  call<T = unknown>(uri: string, args?: unknown[], kwargs?: Record<string, unknown>): Promise<T>;
  /** Ack what was delivered, leave, and stop for good (state 'closed'). Idempotent. */
  close(): Promise<void>;
  /** For tests: drop the connection as a network failure would. */
  _debugDropConnection(): boolean;
}

export interface GatewayErrorInfo {
  uri?: string | null;
  position?: number;
  query?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export declare class GatewayError extends Error {
  /** The client makes these; an application may too (e.g. to reject with the same kind of error). */
  constructor(message: string, info?: GatewayErrorInfo);
  name: 'GatewayError';
  /** The WAMP error URI ('gateway.error.invalid_query', ...) or a client one ('gateway.client.…'). */
  uri: string | null;
  /** For an invalid query: where the gateway found the fault. */
  position: number | null;
  /** For a refused subscription: the query as sent. */
  query: string | null;
  details: Record<string, unknown>;
}

/** URIs of the errors the client raises itself. */
export declare const ClientErrors: {
  readonly INVALID_ARGUMENT: 'gateway.client.invalid_argument';
  readonly CONNECTION_LOST: 'gateway.client.connection_lost';
  readonly CLOSED: 'gateway.client.closed';
  readonly NO_CREDENTIALS: 'gateway.client.no_credentials';
  readonly INVALID_CREDENTIALS: 'gateway.client.invalid_credentials';
  readonly GAVE_UP: 'gateway.client.gave_up';
  readonly TIMEOUT: 'gateway.client.timeout';
  readonly HANDLER_ERROR: 'gateway.client.handler_error';
  readonly GAP: 'gateway.client.gap';
  readonly SUBSCRIPTION_REMOVED: 'gateway.client.subscription_removed';
  readonly BAD_EVENT: 'gateway.client.bad_event';
  readonly STORE_FAILED: 'gateway.client.store_failed';
};

export declare const EVENTS: ReadonlyArray<keyof GatewayEvents>;

export interface CookieTokenStoreOptions {
  /** default 'gateway_client_token' */
  name?: string;
  /** default '/' */
  path?: string;
  /** default 'Lax' */
  sameSite?: 'Strict' | 'Lax' | 'None';
  /** default: the page is on https */
  secure?: boolean;
  domain?: string;
  document?: { cookie: string };
}

/** The token in a cookie that expires when the gateway says (the browser default). */
export declare class CookieTokenStore implements TokenStore {
  constructor(options?: CookieTokenStoreOptions);
  get(): StoredToken | null;
  set(token: string, expires: string | null): void;
  clear(): void;
}

/** The token in memory (the Node default); share one between Gateways to share the token. */
export declare class MemoryTokenStore implements TokenStore {
  constructor(initial?: { token: string; expires?: string | null } | null);
  get(): StoredToken | null;
  set(token: string, expires: string | null): void;
  clear(): void;
}

/** Cursors in localStorage (the browser default). */
export declare class LocalCursorStore implements CursorStore {
  constructor(options?: { storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>; prefix?: string });
  get(subscriptionId: string): number | null;
  set(subscriptionId: string, seq: number): void;
  delete(subscriptionId: string): void;
}

/** Cursors in memory (the Node default). */
export declare class MemoryCursorStore implements CursorStore {
  get(subscriptionId: string): number | null;
  set(subscriptionId: string, seq: number): void;
  delete(subscriptionId: string): void;
}
