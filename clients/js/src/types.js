// Types shared by the client's modules (JSDoc only: nothing here runs).
//
// The public API's types are written out in gateway.d.ts; these are the
// implementation's own, checked by `npm run check:types` (tsc with checkJs),
// which also holds the two to each other (test/types/drift.ts).

/**
 * One event as the gateway published it.
 * @template [D=Record<string, unknown>]
 * @typedef {object} Envelope
 * @property {string} event
 * @property {string} id
 * @property {number} seq
 * @property {string} time
 * @property {D} data
 */

/**
 * @typedef {object} GapInfo
 * @property {import('./subscription.js').Subscription} subscription
 * @property {number} afterSeq
 */

/**
 * @typedef {object} RemovedInfo
 * @property {string} id
 * @property {string} topic
 * @property {string} query
 * @property {string} reason
 */

/**
 * What a handler is given; a promise it returns is not awaited.
 * @template [D=Record<string, unknown>]
 * @typedef {(envelope: Envelope<D>, subscription: import('./subscription.js').Subscription) => void | Promise<void>} Handler
 */

/**
 * The checked arguments of subscribe() (options.js).
 * @typedef {object} SubscribeArgs
 * @property {string} query
 * @property {Handler} handler
 * @property {boolean} persistent
 * @property {boolean} batch
 * @property {((gap: GapInfo) => void) | null} onGap
 * @property {((info: RemovedInfo) => void) | null} onRemoved
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {boolean} [persistent]
 * @property {boolean} [batch]
 * @property {(gap: GapInfo) => void} [onGap]
 * @property {(info: RemovedInfo) => void} [onRemoved]
 */

/** @typedef {{ticket: string} | {jwt: string}} Credentials */

/**
 * What the application passes to new Gateway() (checked by options.js).
 * @typedef {object} GatewayOptions
 * @property {string | readonly string[]} url
 * @property {string} [realm]
 * @property {string} [ticket]
 * @property {string} [jwt]
 * @property {() => Credentials | null | Promise<Credentials | null>} [getCredentials]
 * @property {TokenStore} [tokenStore]
 * @property {CursorStore} [cursorStore]
 * @property {Partial<ReconnectPolicy>} [reconnect]
 * @property {number} [ackInterval]
 * @property {number} [connectTimeout]
 * @property {unknown} [autobahn]
 */

/** @typedef {'idle' | 'connecting' | 'open' | 'lost' | 'closed'} State */

/**
 * @typedef {object} Identity
 * @property {string | null} authid
 * @property {string | null} role
 * @property {string | null} user
 * @property {string[]} roles
 */

/** @typedef {Identity & {session: number, clientToken: string | null, clientTokenExpires: string | null, url: string}} OpenDetail */

/**
 * The Gateway's events and what their listeners are given.
 * @typedef {object} GatewayEvents
 * @property {(state: State, detail: unknown) => void} state
 * @property {(detail: {attempt: number, delay: number, url: string}) => void} connecting
 * @property {(detail: OpenDetail) => void} open
 * @property {(detail: {reason: string | null, message: string, url: string}) => void} lost
 * @property {(detail: OpenDetail) => void} resumed
 * @property {(detail: {reason: string, error?: import('./errors.js').GatewayError}) => void} closed
 * @property {(error: import('./errors.js').GatewayError) => void} error
 */

/**
 * gateway.catalog()'s answer.
 * @typedef {{version?: unknown, classes: Array<{name: string, description?: string, visibility?: string, retention?: number, schema?: unknown}>}} Catalog
 */

/**
 * gateway.whoami()'s answer.
 * @typedef {{session: number, authid: string, role: string, user: string | null, roles: string[], client_token: string, client_token_expires: string}} WhoAmI
 */

/**
 * @typedef {object} StoredToken
 * @property {string} token
 * @property {string | null} expires
 */

/**
 * @typedef {object} TokenStore
 * @property {() => StoredToken | null} get
 * @property {(token: string, expires: string | null) => void} set
 * @property {() => void} clear
 */

/**
 * @typedef {object} CursorStore
 * @property {(subscriptionId: string) => number | null} get
 * @property {(subscriptionId: string, seq: number) => void} set
 * @property {(subscriptionId: string) => void} [delete]
 */

/**
 * @typedef {object} CookieTokenStoreOptions
 * @property {string} [name]
 * @property {string} [path]
 * @property {'Strict' | 'Lax' | 'None'} [sameSite]
 * @property {boolean} [secure]
 * @property {string} [domain]
 * @property {{cookie: string}} [document]
 */

/**
 * @typedef {object} ReconnectPolicy
 * @property {number} initialDelay
 * @property {number} maxDelay
 * @property {number} factor
 * @property {number} jitter
 * @property {number} maxAttempts
 */

/**
 * The checked options of new Gateway() (options.js); the stores are chosen by then.
 * @typedef {object} Options
 * @property {string[]} urls the router URLs (options.url as a list), tried in turn
 * @property {string} realm
 * @property {string | null} ticket
 * @property {string | null} jwt
 * @property {(() => unknown) | null} getCredentials
 * @property {TokenStore} tokenStore
 * @property {CursorStore} cursorStore
 * @property {Readonly<ReconnectPolicy>} reconnect
 * @property {number} ackInterval
 * @property {number} connectTimeout
 * @property {Autobahn | null} autobahn
 */

// -- the parts of autobahn-js the client uses ----------------------------------------

/**
 * @typedef {object} AutobahnSession
 * @property {number} id
 * @property {(uri: string, args?: unknown[], kwargs?: Record<string, unknown>) => Promise<unknown>} call
 * @property {(topic: string, handler: (args: unknown) => void) => Promise<unknown>} subscribe
 * @property {(subscription: unknown) => Promise<unknown>} unsubscribe
 */

/**
 * @typedef {object} AutobahnDetails
 * @property {string} [authid]
 * @property {string} [authrole]
 * @property {Record<string, any>} [authextra]
 * @property {string | null} [reason]
 * @property {string} [message]
 */

/**
 * @typedef {object} AutobahnConnection
 * @property {() => void} open
 * @property {(reason?: string, message?: string) => void} close
 * @property {((session: AutobahnSession, details?: AutobahnDetails) => void) | null} onopen
 * @property {((reason: string, details?: AutobahnDetails) => boolean) | null} onclose
 * @property {{close?: (code: number, reason: string) => void, drop?: () => void} | null} [transport]
 */

/**
 * @typedef {object} Autobahn
 * @property {new (options: Record<string, unknown>) => AutobahnConnection} Connection
 * @property {{isRegistered(type: string): boolean, register(type: string, factory: Function): void}} transports
 */

export {};
