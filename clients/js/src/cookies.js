// Building and reading the client-token cookie. Pure: strings in, strings out.
//
// The cookie holds the client token the gateway handed out in WELCOME and
// expires when the gateway says the token does (client_token_expires), so the
// browser forgets the token exactly when the gateway would no longer honour it.

import { ClientErrors, GatewayError, describe, invalidArgument } from './errors.js';

export const TOKEN_COOKIE = 'gateway_client_token';

// RFC 6265 token characters: a cookie name may hold nothing else.
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SAME_SITE = ['Strict', 'Lax', 'None'];

/** `name` if it is a valid cookie name, else a GatewayError. @param {unknown} name @returns {string} */
export function checkCookieName(name, where = 'cookie name') {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalidArgument(where, `must be a non-empty cookie name (letters, digits, !#$%&'*+-.^_\`|~), not ${describe(name)}`);
  }
  return name;
}

/**
 * The document.cookie assignment that stores `value` under `name` until `expires`.
 * @param {string} name
 * @param {string} value  any text (it is percent-encoded)
 * @param {{expires?: string | Date | null, path?: string, sameSite?: 'Strict'|'Lax'|'None', secure?: boolean, domain?: string}} [options]
 *   expires: an RFC 3339 time or a Date; null or absent makes a session cookie.
 */
export function buildCookie(name, value, options = {}) {
  checkCookieName(name);
  if (typeof value !== 'string') throw invalidArgument('cookie value', `must be a string, not ${describe(value)}`);
  const { expires = null, path = '/', sameSite = 'Lax', secure = false, domain } = options;
  const parts = [`${name}=${encodeURIComponent(value)}`];
  if (expires !== null && expires !== undefined) {
    const when = expires instanceof Date ? expires : new Date(typeof expires === 'string' ? expires : NaN);
    if (Number.isNaN(when.getTime())) {
      throw new GatewayError(`the cookie's expiry must be an RFC 3339 time, not ${describe(expires)}`,
        { uri: ClientErrors.INVALID_ARGUMENT });
    }
    parts.push(`Expires=${when.toUTCString()}`);
  }
  if (typeof path !== 'string' || !path.startsWith('/') || /[;\s]/.test(path)) {
    throw invalidArgument('cookie path', `must start with "/" and hold no ";" or spaces, not ${describe(path)}`);
  }
  parts.push(`Path=${path}`);
  if (domain !== undefined) {
    if (typeof domain !== 'string' || !/^[A-Za-z0-9.-]+$/.test(domain)) {
      throw invalidArgument('cookie domain', `must be a host name, not ${describe(domain)}`);
    }
    parts.push(`Domain=${domain}`);
  }
  if (!SAME_SITE.includes(sameSite)) {
    throw invalidArgument('cookie sameSite', `must be one of ${SAME_SITE.join(', ')}, not ${describe(sameSite)}`);
  }
  parts.push(`SameSite=${sameSite}`);
  // Browsers refuse SameSite=None without Secure.
  if (secure || sameSite === 'None') parts.push('Secure');
  return parts.join('; ');
}

/**
 * The document.cookie assignment that deletes the cookie (same name, path and domain).
 * @param {string} name @param {{path?: string, sameSite?: 'Strict'|'Lax'|'None', secure?: boolean, domain?: string}} [options]
 */
export function expiredCookie(name, options = {}) {
  return buildCookie(name, '', { ...options, expires: new Date(0) });
}

/**
 * The value of cookie `name` in a Cookie header / document.cookie string ("a=1; b=2"),
 * percent-decoded; null if absent. A value that is not valid percent-encoding is returned as is.
 * @param {unknown} cookieString @param {string} name
 */
export function readCookie(cookieString, name) {
  checkCookieName(name);
  if (typeof cookieString !== 'string' || cookieString === '') return null;
  for (const part of cookieString.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let raw = part.slice(eq + 1).trim();
    if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) raw = raw.slice(1, -1);
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return null;
}
