// One subscription of the application, as the Gateway keeps it across sessions.
//
// The Gateway owns the protocol (gateway.subscribe, the topic, replay, acks);
// this object holds what survives a reconnect: the query, the handler, where
// delivery stands (the merger), and the promise subscribe() returned.

import { SeqMerger } from './merge.js';

export class Subscription {
  /**
   * @param {{query: string, handler: Function, persistent: boolean, onGap: Function|null, onRemoved: Function|null}} args
   * @param {{unsubscribe(sub: Subscription): Promise<void>}} owner the Gateway's side of it
   */
  constructor(args, owner) {
    /** The id the gateway gave it (persistent ones keep theirs across sessions); null until subscribed. */
    this.id = null;
    /** The WAMP topic its events arrive on; null until subscribed. */
    this.topic = null;
    /** The query: as given until the gateway answers, then its canonical form. */
    this.query = args.query;
    this.persistent = args.persistent;
    this._text = args.query; // what is sent to gateway.subscribe (the application's text)
    this._handler = args.handler;
    this._onGap = args.onGap;
    this._onRemoved = args.onRemoved;
    this._owner = owner;
    this._merger = new SeqMerger(0);
    this._acked = 0;         // the cursor the gateway holds (persistent)
    this._active = true;     // false once unsubscribed or removed: nothing is delivered any more
    this._session = null;    // the autobahn session it is subscribed on
    this._ab = null;         // the autobahn Subscription on that session
    this._route = { open: false }; // its handler passes events on while open
    this._queuedFor = null;  // the session whose queue holds its (re)subscription
    this._established = false;
    this._resumeId = null;   // persistent: the gateway id its merger's position belongs to
    this._grantPending = false; // a gateway.subscribe for it is in flight
    this._grantUnknown = false; // a gateway.subscribe for it was sent and its answer never came
    this._rounds = 0;        // failed restorations in a row (transient errors): the backoff step
    this._ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this._ready.catch(() => {}); // subscribe() hands this promise out; nobody else must see it unhandled
  }

  /** The seq up to which events were handed to the handler (after a resume: the cursor it resumed from); null if none. */
  get lastSeq() {
    const seq = this._merger.lastSeq;
    return seq > 0 ? seq : null;
  }

  /** False once unsubscribed or ended by the gateway. */
  get active() {
    return this._active;
  }

  /** Stop delivering; a persistent subscription is also ended on the gateway, for good. */
  unsubscribe() {
    return this._owner.unsubscribe(this);
  }
}
