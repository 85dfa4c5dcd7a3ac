// Merging a replay with the live stream: each event once, in seq order. Pure.
//
// A persistent subscription that resumes subscribes to its topic first and
// replays what it missed second, so every event is in the replay, in the live
// stream, or in both (docs/persistent.md). While the replay runs, live events
// are held here; each replay page is merged with the held events it covers,
// duplicates are dropped by seq, and what is left after the last page is
// handed over before live delivery goes on. In live delivery, an event whose
// seq is not above the last one delivered is a duplicate (the gateway may
// publish an event again after a failure) and is dropped.

/** @typedef {import('./types.js').Envelope} Envelope */

/**
 * Whether `value` looks like an event envelope {event, id, seq, time, data}.
 * @param {unknown} value
 * @returns {value is Envelope}
 */
export function isEnvelope(value) {
  const v = /** @type {{event?: unknown, seq?: unknown} | null} */ (value);
  return v !== null && typeof v === 'object' && typeof v.event === 'string'
    && Number.isSafeInteger(v.seq) && /** @type {number} */ (v.seq) >= 0;
}

export class SeqMerger {
  #last;
  /** @type {Map<number, Envelope> | null} seq -> envelope while a replay runs, else null */
  #held = null;

  /** @param {number} lastSeq the last seq handed to the application (0: none) */
  constructor(lastSeq = 0) {
    this.#last = lastSeq;
  }

  /** The last seq handed to the application. */
  get lastSeq() {
    return this.#last;
  }

  /** Whether a replay runs (live events are held). */
  get replaying() {
    return this.#held !== null;
  }

  /**
   * A replay from `fromSeq` starts: hold live events from now on. Everything up
   * to `fromSeq` counts as handed over (it was acknowledged or delivered before).
   */
  startReplay(fromSeq = this.#last) {
    this.#held = new Map();
    if (fromSeq > this.#last) this.#last = fromSeq;
  }

  /**
   * A live event arrived: the events to hand over now (it, or none: a duplicate, or held).
   * @param {Envelope} envelope
   * @returns {Envelope[]}
   */
  live(envelope) {
    if (envelope.seq <= this.#last) return [];
    if (this.#held !== null) {
      if (!this.#held.has(envelope.seq)) this.#held.set(envelope.seq, envelope);
      return [];
    }
    this.#last = envelope.seq;
    return [envelope];
  }

  /**
   * A replay page arrived: `events` in seq order, the log read through `scannedThrough`
   * (the page's next_after). Returns the events to hand over now: the page's and the
   * held live ones up to `scannedThrough`, each once, in seq order.
   * @param {Envelope[]} events
   * @param {number} scannedThrough
   * @returns {Envelope[]}
   */
  page(events, scannedThrough) {
    if (this.#held === null) throw new Error('SeqMerger.page() outside a replay');
    /** @type {Map<number, Envelope>} */
    const merged = new Map();
    for (const envelope of events) {
      if (envelope.seq > this.#last && !merged.has(envelope.seq)) merged.set(envelope.seq, envelope);
    }
    for (const [seq, envelope] of this.#held) {
      if (seq <= scannedThrough) {
        if (!merged.has(seq) && seq > this.#last) merged.set(seq, envelope);
        this.#held.delete(seq);
      }
    }
    return this.#handOver(merged);
  }

  /** The replay is complete: the held live events not handed over yet, in seq order; live delivery resumes. */
  finish() {
    const held = this.#held ?? new Map();
    this.#held = null;
    return this.#handOver(new Map([...held].filter(([seq]) => seq > this.#last)));
  }

  /** The replay was cut off (connection lost): drop what was held; the next session replays again. */
  abort() {
    this.#held = null;
  }

  /** @param {Map<number, Envelope>} bySeq */
  #handOver(bySeq) {
    const out = [...bySeq.keys()].sort((a, b) => a - b).map((seq) => /** @type {Envelope} */ (bySeq.get(seq)));
    if (out.length) this.#last = out[out.length - 1].seq;
    return out;
  }
}
