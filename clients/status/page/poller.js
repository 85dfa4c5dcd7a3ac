// How the status page asks: pure (no DOM, no network; the page hands in what to call and the timers).
//
// One question at a time: the next is asked `interval` ms after the last answer (or failure) came. While
// the page is hidden (a background tab: `document.hidden`) nothing is asked; once it is visible again
// the next question goes at once. An answer older than one shown already (two bridges, one slower) is
// not shown. After a failure the figures on the page are stale until the next answer.

/**
 * @typedef {object} PollerOptions
 * @property {() => Promise<any>} ask             asks gateway.status
 * @property {(answer: any) => void} show         shows an answer (only those `accepts` takes)
 * @property {(err: any) => boolean} [failed]     told of a failure; false: stop asking (e.g. refused)
 * @property {(stale: boolean) => void} [stale]   whether the figures shown are older than the last question
 * @property {(answer: any) => boolean} [accepts] whether an answer is new enough to show
 * @property {() => boolean} [hidden]             whether the page is hidden now
 * @property {number} [interval]                  ms between an answer and the next question
 * @property {{setTimeout: (f: () => void, ms: number) => any, clearTimeout: (t: any) => void}} [timers]
 */

export class Poller {
  /** @param {PollerOptions} options */
  constructor(options) {
    this.options = options;
    this.interval = options.interval ?? 1000;
    this.timers = options.timers ?? globalThis;
    /** @type {any} the timer of the next question */
    this.timer = null;
    this.asking = false;
    this.running = false;
  }

  /** Start asking (now, unless the page is hidden). */
  start() {
    this.running = true;
    this.next(0);
  }

  /** Stop asking: no question after this one (an answer under way is not shown). */
  stop() {
    this.running = false;
    this.cancel();
  }

  /** The page's visibility changed (`visibilitychange`): pause while hidden, ask at once when shown. */
  visibilityChanged() {
    if (!this.running) return;
    if (this.isHidden()) this.cancel();
    else if (!this.asking && this.timer === null) this.next(0);
  }

  /** @private */
  isHidden() {
    return this.options.hidden ? this.options.hidden() : false;
  }

  /** @private */
  cancel() {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The next question in `ms` (none while hidden: `visibilityChanged` asks it when the page shows).
   * @private
   * @param {number} ms
   */
  next(ms) {
    this.cancel();
    if (!this.running || this.asking || this.isHidden()) return;
    if (ms <= 0) {
      this.poll();
      return;
    }
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.next(0);
    }, ms);
  }

  /** @private */
  async poll() {
    this.asking = true;
    let answer;
    try {
      answer = await this.options.ask();
    } catch (err) {
      this.asking = false;
      if (!this.running) return;
      this.options.stale?.(true);
      const go = this.options.failed ? this.options.failed(err) : true;
      if (go === false) this.running = false;
      else this.next(this.interval);
      return;
    }
    this.asking = false;
    if (!this.running) return;
    if (!this.options.accepts || this.options.accepts(answer)) {
      this.options.stale?.(false);
      this.options.show(answer);
    }
    this.next(this.interval);
  }
}
