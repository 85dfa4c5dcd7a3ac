// gateway.d.ts and the code must not drift apart. `Impl` is what tsc infers from the
// JavaScript and its JSDoc (emitted by tsconfig.declarations.json); `Decl` is the hand-written
// src/gateway.d.ts, as a user's TypeScript sees it. Each line below fails to compile (TS2344)
// when the two disagree on that export, naming the members that differ: one missing on either
// side, a parameter or a result of another type, a constant with other values.

import type * as Decl from 'events-gateway-client';

import type * as Impl from '../../build/types/gateway.js';

/** Assignable both ways. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/**
 * A method's parameters (as a tuple) and its result are compared each on its own: method types
 * as a whole are compared bivariantly, which would let a parameter differ in one direction.
 */
type Agree<X, Y> = [X] extends [(...args: infer P) => infer R]
  ? ([Y] extends [(...args: infer Q) => infer S] ? (Same<P, Q> extends true ? Same<R, S> : false) : false)
  : Same<X, Y>;
/** The names of the members on which A and B disagree (never: none). */
type Differing<A, B> = {
  [K in keyof A | keyof B]: K extends keyof A ? (K extends keyof B ? (Agree<A[K], B[K]> extends true ? never : K) : K) : K;
}[keyof A | keyof B];
/** Compiles only when T is never; the error names what T holds. */
type None<T extends never> = T;
type Whether<Same extends boolean, Name extends string> = Same extends true ? never : Name;

// The module's values: the same names on both sides (each compared below; Subscription's
// constructor is not: the client makes subscriptions, the application never does).
export type Exports = None<Exclude<keyof typeof Impl, keyof typeof Decl> | Exclude<keyof typeof Decl, keyof typeof Impl>>;

export type GatewayMembers = None<Differing<Impl.Gateway, Decl.Gateway>>;
export type GatewayConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.Gateway>, ConstructorParameters<typeof Decl.Gateway>>, 'new Gateway()'>>;
export type SubscriptionMembers = None<Differing<Impl.Subscription, Decl.Subscription>>;
export type GatewayErrorMembers = None<Differing<Impl.GatewayError, Decl.GatewayError>>;
export type GatewayErrorConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.GatewayError>, ConstructorParameters<typeof Decl.GatewayError>>, 'new GatewayError()'>>;
export type ClientErrors = None<Differing<typeof Impl.ClientErrors, typeof Decl.ClientErrors>>;
export type Events = None<Whether<Same<typeof Impl.EVENTS, typeof Decl.EVENTS>, 'EVENTS'>>;

export type CookieTokenStoreMembers = None<Differing<Impl.CookieTokenStore, Decl.CookieTokenStore>>;
export type CookieTokenStoreConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.CookieTokenStore>, ConstructorParameters<typeof Decl.CookieTokenStore>>, 'new CookieTokenStore()'>>;
export type MemoryTokenStoreMembers = None<Differing<Impl.MemoryTokenStore, Decl.MemoryTokenStore>>;
export type MemoryTokenStoreConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.MemoryTokenStore>, ConstructorParameters<typeof Decl.MemoryTokenStore>>, 'new MemoryTokenStore()'>>;
export type LocalCursorStoreMembers = None<Differing<Impl.LocalCursorStore, Decl.LocalCursorStore>>;
export type LocalCursorStoreConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.LocalCursorStore>, ConstructorParameters<typeof Decl.LocalCursorStore>>, 'new LocalCursorStore()'>>;
export type MemoryCursorStoreMembers = None<Differing<Impl.MemoryCursorStore, Decl.MemoryCursorStore>>;
export type MemoryCursorStoreConstructor = None<Whether<Same<ConstructorParameters<typeof Impl.MemoryCursorStore>, ConstructorParameters<typeof Decl.MemoryCursorStore>>, 'new MemoryCursorStore()'>>;
