// The status page's arithmetic, pure (no DOM, no network): rates from the gateway's answers.
//
// Each answer of gateway.status holds the node's cumulative totals (the numbers GET /metrics gives:
// the same whichever bridge answers, never going back). A rate is the difference between two answers
// over the seconds between them; the History keeps the last minutes of them for the chart, and the
// reloads of the definitions it saw happen.

/** Seconds of history the chart shows. */
export const WINDOW_SECONDS = 300;
/** Reloads remembered (the newest first). */
export const RELOADS_KEPT = 10;

/**
 * Per-second rates between two maps of totals ({name: total}): a name new since `before` counts from 0;
 * a total that went down (it should not) counts as 0, not as a negative rate.
 * @param {Record<string, number> | null | undefined} before
 * @param {Record<string, number> | null | undefined} after
 * @param {number} seconds
 * @returns {Record<string, number>}
 */
export function rates(before, after, seconds) {
  /** @type {Record<string, number>} */
  const out = {};
  if (!after || !(seconds > 0)) return out;
  for (const [name, total] of Object.entries(after)) {
    const was = before?.[name] ?? 0;
    out[name] = Math.max(0, total - was) / seconds;
  }
  return out;
}

/** @param {Record<string, number> | null | undefined} totals */
export function sum(totals) {
  return Object.values(totals ?? {}).reduce((a, b) => a + b, 0);
}

/**
 * Mean seconds per ingest request of each transport between two answers ({transport: {count, seconds}}),
 * for the transports that had requests meanwhile.
 * @param {Record<string, {count: number, seconds: number}> | null | undefined} before
 * @param {Record<string, {count: number, seconds: number}> | null | undefined} after
 * @returns {Record<string, number>}
 */
export function meanLatency(before, after) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const [transport, now] of Object.entries(after ?? {})) {
    const was = before?.[transport] ?? { count: 0, seconds: 0 };
    const n = now.count - was.count;
    if (n > 0) out[transport] = Math.max(0, now.seconds - was.seconds) / n;
  }
  return out;
}

/**
 * What changed in the reloads between two answers: null if nothing, else {time, loaded, refused, versions}.
 * @param {any} before a status answer
 * @param {any} after the next one
 */
export function reloadSeen(before, after) {
  const was = before?.definitions?.reloads ?? {};
  const now = after?.definitions?.reloads ?? {};
  const loaded = Math.max(0, (now.loaded ?? 0) - (was.loaded ?? 0));
  const refused = Math.max(0, (now.refused ?? 0) - (was.refused ?? 0));
  if (loaded === 0 && refused === 0) return null;
  return { time: after.time, loaded, refused, versions: after.definitions.versions ?? [] };
}

/**
 * @typedef {{time: number, accepted: Record<string, number>, duplicate: number, refused: Record<string, number>,
 *   latency: Record<string, number>}} Point
 */

/** The last WINDOW_SECONDS of rates, from the answers as they come (one a second). */
export class History {
  /** @param {number} [windowSeconds] */
  constructor(windowSeconds = WINDOW_SECONDS) {
    this.windowSeconds = windowSeconds;
    /** @type {Point[]} */
    this.points = [];
    /** @type {any} */
    this.last = null;
    /** @type {{time: number, loaded: number, refused: number, versions: string[]}[]} the newest first */
    this.reloads = [];
  }

  /**
   * Whether `answer` is newer than the last one taken (else it is late: two bridges, one slower; it is
   * neither taken nor shown).
   * @param {any} answer
   */
  accepts(answer) {
    return this.last === null || answer.time > this.last.time;
  }

  /**
   * Take the next answer; the Point of rates since the previous one (null for the first, or for an
   * answer without counters: metrics off, the store unavailable, or one older than the last, which is
   * not taken: see `accepts`).
   * @param {any} answer
   * @returns {Point | null}
   */
  add(answer) {
    const previous = this.last;
    if (!this.accepts(answer)) return null;  // late: a newer one is in
    this.last = answer;
    if (previous === null || !answer.events || !previous.events) return null;
    const seconds = answer.time - previous.time;
    const reload = reloadSeen(previous, answer);
    if (reload !== null) this.reloads = [reload, ...this.reloads].slice(0, RELOADS_KEPT);
    /** @type {Point} */
    const point = {
      time: answer.time,
      accepted: rates(previous.events.accepted, answer.events.accepted, seconds),
      duplicate: sum(rates(previous.events.duplicate, answer.events.duplicate, seconds)),
      refused: rates(previous.events.refused, answer.events.refused, seconds),
      latency: meanLatency(previous.ingest, answer.ingest),
    };
    this.points.push(point);
    const cutoff = answer.time - this.windowSeconds;
    while (this.points.length > 0 && this.points[0].time < cutoff) this.points.shift();
    return point;
  }

  /** The event classes seen accepted within the window, sorted. */
  classes() {
    const names = new Set();
    for (const p of this.points) for (const [name, rate] of Object.entries(p.accepted)) if (rate > 0) names.add(name);
    return [...names].sort();
  }

  /**
   * The chart's series (uPlot's data layout): times, then accepted/s of each class of `classes()`,
   * then refused/s (all reasons together).
   * @returns {{labels: string[], data: number[][]}}
   */
  chart() {
    const classes = this.classes();
    const data = [this.points.map((p) => p.time)];
    for (const name of classes) data.push(this.points.map((p) => p.accepted[name] ?? 0));
    data.push(this.points.map((p) => sum(p.refused)));
    return { labels: [...classes, 'refused'], data };
  }
}
