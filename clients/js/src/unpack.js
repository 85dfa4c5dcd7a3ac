// Batched delivery, the client's side. Pure.
//
// gateway.subscribe(query, {batch: true}) answers the query's batched topic
// (gateway.batch.query.<key>) with `batch: true`: there one WAMP event carries
// one or more envelopes, one per positional argument, in seq order (a batch of
// one is exactly an unbatched event). The restore engine (restore.js) hands
// each envelope on as it would a single event. See docs/queries.md.

/**
 * gateway.subscribe's keyword arguments for a subscription: `batch` only when asked for, so that a
 * subscription without it makes the same call as before batching existed.
 * @param {{persistent: boolean, batch: boolean}} sub
 * @returns {{persistent: boolean, batch?: true}}
 */
export function subscribeKwargs(sub) {
  return sub.batch ? { persistent: sub.persistent, batch: true } : { persistent: sub.persistent };
}

/**
 * The envelopes a WAMP event's positional arguments carry: all of them on a batched topic, the first
 * otherwise (an unbatched topic always sends one). Not checked here: each is checked as it is handed on.
 * @param {unknown} args @param {boolean} batched
 * @returns {unknown[]}
 */
export function envelopesOf(args, batched) {
  if (!Array.isArray(args)) return [undefined];
  if (!batched || args.length <= 1) return [args[0]];
  return args;
}
