"""The per-event path of ``gateway.internal.publish``: from a batch of items to one result each.

For each event: idempotency (the id looked up among those accepted before, those not yet written
and those being published right now), numbering (the sequencer), the envelope, the event-log
write for classes with a persistent subscription, the publishes (the class topic with the
router's acknowledgement, one per matching query) and the typed result (``results``). Batched
query topics (``batching``) get the turn's envelopes for them together, one WAMP event per batch,
before the turn's class-topic publishes: the acknowledgement of an event's class topic then covers
its batches as it covers its query topics.

A logged event is written before it is published, and marked published once the router
acknowledged it (``Store.mark_published``). A duplicate of a marked one is answered and not
published again. One not marked whose dispatcher died between the log write and the publish is
published by the dispatcher that takes over, before it numbers anything new (``take_over``),
under a new leadership term that its predecessor's late log writes cannot join
(``Store.log_and_remember``'s ``term``). One not marked below one marked is superseded: the router
refused it (or its log write was answered as failed, though it committed) while higher seqs went
out, and it was answered 503. It never goes out with its seq (subscribers saw higher ones): not by
a takeover, not by replay; a retry of its id renumbers it, moving its row and its id's entry to a
new seq in the retry's log transaction (``moved``). So every 202 goes out in strictly increasing
seq. What is left: a dispatcher killed between
the router's acknowledgement and the mark has its events published again by the next, with
their seq (a client drops seq <= the last it saw); an unlogged event's id is remembered only
after the acknowledgement, so a retry after such a death is numbered anew.

``Publisher`` holds no WAMP session: the dispatcher gives it the store thread, the lock batches
take turns with, the session table and query index, and a ``Send`` function that publishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from time import perf_counter
from typing import Any, Protocol, Self

from twisted.internet import reactor
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from components import uris
from components.metrics.families import MATCH_DURATION, PUBLISHES
from components.metrics.meter import Labels
from components.metrics.process_meter import METER
from components.delivery import batching
from components.delivery.coalescing import Coalescer
from components.delivery.results import Accepted, IdOrigin, PublishResult, Refused, RefusalCode
from components.delivery.sequence import Sequencer
from components.delivery.sessions import Restriction, Sessions
from components.delivery.subscriptions import QuerySubscriptions
from components.envelope import make_envelope, new_event_id
from components.events import Registry
from components.store.base import LoggedEvent, Store, Superseded
from components.store.thread import StoreThread

log = Logger()

#: No restriction: whoever may subscribe to the topic receives it.
ANYONE = Restriction()
#: No one receives it (only the router's acknowledgement is wanted).
NO_ONE = Restriction(eligible=[])
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's
#: Events looked up, numbered and logged together at most, when batches wait for their turn together:
#: one bridge batch at most (bridge.max_batch's default), a transaction of moderate size.
MOST_TOGETHER = 1000
#: Seconds before a failed write of accepted ids and published marks is tried again.
SAVE_RETRY = 1.0
#: Unpublished logged events read per round trip when taking over (normally only those a dispatcher
#: had in flight when it died: a few batches).
TAKE_OVER_PAGE = 1000


#: gateway_publishes_total's labels (components.metrics).
_QUERY_KIND: Labels = (("kind", "query"),)
_CLASS_KIND: Labels = (("kind", "class"),)
_BATCH_KIND: Labels = (("kind", "batch"),)

class Turn(DeferredLock):
    """The batches' turn: one batch at a time looks its ids up, numbers its events and logs them. What
    must happen between two batches (a persistent subscribe, a takeover) takes it with ``acquire``;
    batches with ``acquire_for_batch``. ``changes`` counts the turns such a changer has *ended*
    (``release``): while it has not moved, what a batch learnt from the store in an earlier turn
    (which classes are logged) holds, because whatever changes that does so in a turn of its own.
    Counted at the end, not when asked for: a batch whose turn comes before a waiting changer's
    must not vouch for what that changer is about to write."""

    changes = 0
    _changing = False

    def acquire(self) -> Deferred[Self]:
        def held(turn: Self) -> Self:
            self._changing = True
            return turn
        return super().acquire().addCallback(held)

    def acquire_for_batch(self) -> Deferred[Self]:
        return super().acquire()

    def release(self) -> None:
        if self._changing:
            self._changing = False
            self.changes += 1
        super().release()


class NotLogged(Exception):
    """The event-log write of a batch failed: none of its events was published or accepted."""


class Send(Protocol):
    """Publish ``payload`` to ``topic`` for whom ``restriction`` allows, but not the ``exclude``d
    sessions; with ``acknowledge``, the Deferred of the router's acknowledgement. ``more``: further
    positional arguments of the same event (a batch's envelopes after the first)."""

    def __call__(self, topic: str, payload: dict[str, Any], restriction: Restriction = ANYONE,
                 exclude: Sequence[int] = (), acknowledge: bool = False,
                 more: Sequence[dict[str, Any]] = ()) -> Deferred[Any] | None: ...


class Publisher:
    """Publishes batches of events for the dispatcher; one per dispatcher session."""

    def __init__(self, thread: StoreThread, turn: Turn, sequencer: Sequencer,
                 registry: Callable[[], Registry], sessions: Sessions, queries: QuerySubscriptions,
                 send: Send, sent: Callable[[], None] = lambda: None) -> None:
        """``sent()``: what ``send`` queued goes to the router now, not after the reactor's other work
        (``components.sending``); called once a turn's (or a handed group's) publishes are all queued."""
        self._thread: StoreThread | None = thread
        #: Shared with persistent subscribes (see ``publish``).
        self._turn = turn
        self._sequencer = sequencer
        self._registry = registry
        self._sessions = sessions
        self._queries = queries
        self._send = send
        self._sent = sent
        #: id -> (its event class, the result of it being published right now), so that the same
        #: id arriving meanwhile waits for it instead of publishing twice.
        self._pending: dict[str, tuple[str, Deferred[PublishResult]]] = {}
        #: ids accepted in this reactor turn, not yet written: id -> (event class, seq)
        self._unsaved: dict[str, tuple[str, int]] = {}
        #: Logged events the router acknowledged, not yet marked published in the store: id -> seq.
        #: Looked up like ``_unsaved``: a duplicate of one is not published again.
        self._acknowledged: dict[str, int] = {}
        self._flush: DelayedCall | None = None
        #: A write of ids and marks is on the store thread: the next waits for it (``_save``).
        self._saving = False
        #: Batches that come while one takes its turn wait, and take the next turn together.
        self._together: Coalescer[list[Any], Deferred[PublishResult]] = Coalescer(self._take_turn, MOST_TOGETHER)
        #: The classes with a persistent subscription (their events are logged), as the store said when
        #: the turn had been taken ``_logged_as_of`` times by others (``Turn.changes``).
        self._logged: set[str] = set()
        self._logged_as_of = -1
        #: The leadership term this dispatcher writes the event log under (``take_over``).
        self._term: int | None = None

    async def publish(self, items: list[list[Any]]) -> list[PublishResult]:
        """Publish a batch, in order; one result per item, never an exception for one bad item.

        Each item is ``[event, data, id]`` or ``[event, data, id, audience]``. Events of classes
        with a persistent subscription are written to the event log (with their ids, in one
        transaction) before any of the batch is published, so before any 202.

        The store is read and written on the store thread. Batches take their turn for that
        part (the lock): whether an id was accepted before is decided, and its seq taken, by
        one batch at a time; publishing and waiting for the router overlap freely. Every id is
        looked up, pending or not: the store thread answers in order, so an id written before
        the look-up is found there, and one written after is still in ``_unsaved``. Batches that
        come while one has its turn wait and take the next turn together (``coalescing``): a batch
        waits for its own store round trips and those of at most one turn before it, not for those
        of every batch before it.
        """
        items = [[item[0], item[1], item[2] or new_event_id(), item[3] if len(item) > 3 else None,
                  IdOrigin.of(item[4]) if len(item) > 4 and item[2] else IdOrigin.GIVEN]
                 for item in items]
        results = await self._together(items)
        # Shielded: when the caller goes away (Crossbar INTERRUPTs the call, autobahn cancels it), the
        # cancellation must not reach the events' own chains. Those go on: the router may have the
        # publish, and its acknowledgement must still remember the id (or mark the logged event), or
        # the caller's retry with the same id would be published a second time.
        pairs: list[tuple[bool, PublishResult]] = await DeferredList([_shielded(d) for d in results],
                                                                     consumeErrors=True)
        return [r for _, r in pairs]

    async def _take_turn(self, items: list[list[Any]]) -> list[Deferred[PublishResult]]:
        """The store's part of the batches that waited together (``coalescing``), in their turn: the
        look-up, the numbers, the log write; then their publishes. Each item's result to come."""
        await self._turn.acquire_for_batch()
        try:
            # Ids the bridge has just made cannot have been accepted before (``IdOrigin``); which classes are
            # logged is known from an earlier turn while nothing took the turn in between (``Turn``). A
            # turn with nothing else to learn goes without a store round trip.
            given = [i for _, _, i, _, origin in items if origin is IdOrigin.GIVEN]
            try:
                # At once from the numbers in hand, mostly (the next block is taken ahead of need). Before the
                # look-up: no store round trip may come between the look-up's answer and the numbering, or a
                # write of ids asked before it could end meanwhile and take ids out of ``_unsaved`` that the
                # look-up did not see.
                await self._sequencer.reserve(len(items))
            except Exception as exc:  # each new event is refused (its number: NoNumbers)
                log.error("cannot take a block of seq numbers: {err}", err=exc)
            try:
                if given or self._logged_as_of != self._turn.changes:
                    as_of = self._turn.changes
                    earlier, logged, rows = await self._store_thread().run(_look_up, given)
                    self._logged, self._logged_as_of = logged, as_of
                else:
                    earlier, logged, rows = {}, self._logged, {}
            except Exception as exc:  # the store did not answer, or failed: each item is refused (503), never a 500
                log.error("cannot look {n} event ids up: {err}", n=len(items), err=exc)
                refused = Refused(RefusalCode.UNAVAILABLE, f"the gateway's store did not answer; the event was not "
                                  f"accepted: retry with the same id ({exc})")
                return [succeed(refused) for _ in items]
            batch = _Batch()
            results = [self._publish_safely(event, data, event_id, audience, origin, logged, batch, earlier, rows)
                       for event, data, event_id, audience, origin in items]
            if batch.rows:
                term, moved = self._term, batch.moved

                def log_and_remember(store: Store) -> None:  # its own name in gateway_store_duration_seconds{op}
                    store.log_and_remember(batch.rows, term, moved)
                try:
                    await self._store_thread().run(log_and_remember)
                except Exception as exc:
                    if isinstance(exc, Superseded):  # another dispatcher took over: this one is leaving
                        log.warn("not publishing {n} events: {err}", n=len(batch.rows), err=exc)
                    else:
                        log.error("cannot write {n} events to the event log: {err}", n=len(batch.rows), err=exc)
                    for _, failed in batch.sends:
                        failed.errback(NotLogged(str(exc)))
                    batch.sends.clear()
            # Whether any batched query topic has subscribers, as of now: the sends below run in one go.
            batch.deferring = self._queries.live.batching
            for send, d in batch.sends:
                try:
                    send()
                except Exception as exc:  # never leave an id pending for ever
                    if not d.called:
                        d.errback(exc)
            if batch.waiting:
                try:
                    self._publish_batches(batch)
                except Exception as exc:  # never leave an id pending for ever
                    for *_, later in batch.waiting:
                        if not later.called:
                            later.errback(exc)
            self._sent()
        finally:
            self._turn.release()
        return results

    async def take_over(self, term: int) -> int:
        """Begin as the active dispatcher, in ``term`` (begun in the store: ``take(1, TERMS)``).

        Before anything new is numbered: publish, in seq order, every logged event whose publish was
        not acknowledged (its dispatcher died between the log write and the publish), each with its
        seq, and mark them. How many were published. One the router refuses while this session lives
        (it cannot be serialized, say) is logged and left: it is in the log, replay has it.
        """
        self._term = term
        published = 0
        await self._turn.acquire()
        try:
            # Those below the last one published are superseded: their publish was refused (or their
            # log write answered as failed) while higher seqs went out. Each was answered 503; going
            # out now would put it below what subscribers saw. A retry of its id renumbers it.
            after = await self._store_thread().run(lambda store: store.last_published_seq())
            while rows := await self._store_thread().run(lambda store, a: store.unpublished(a, TAKE_OVER_PAGE),
                                                          after):
                sent = [(row, self._publish_logged(row)) for row in rows]
                outcomes: list[tuple[bool, Any]] = await DeferredList([d for _, d in sent], consumeErrors=True)
                done = [row.seq for (row, _), (ok, _) in zip(sent, outcomes) if ok]
                for (row, _), (ok, failure) in zip(sent, outcomes):
                    if not ok:
                        log.error("the logged {event} (seq {seq}) left unpublished by a failed dispatcher cannot"
                                  " be published: {err}; replay has it", event=row.event, seq=row.seq,
                                  err=failure.getErrorMessage())
                await self._store_thread().run(lambda store, seqs: store.mark_published(seqs), done)
                published += len(done)
                after = rows[-1].seq
        finally:
            self._turn.release()
        return published

    def _publish_logged(self, row: LoggedEvent) -> Deferred[Any]:
        """Publish a logged event as it was first (its seq, time, data, audience); the acknowledgement."""
        registry = self._registry()
        if row.event not in registry:
            return fail(LookupError(f"no event class {row.event!r} now"))
        audience = json.loads(row.audience) if row.audience is not None else None
        try:
            return self._send_envelope(registry, _envelope_of(row), audience)
        except Exception as exc:
            return fail(exc)

    def _send_envelope(self, registry: Registry, envelope: dict[str, Any],
                       audience: dict[str, list[str]] | None, batch: _Batch | None = None) -> Deferred[Any]:
        """One publish per matching query (not per client), then the class topic; the router's
        acknowledgement of the last. The router handles a session's messages in order: its
        acknowledgement of the last publish means it took them all. Matching batched query topics:
        the envelope joins the turn's batches (``batch``, published by ``_publish_batches``, the class
        topic after them), or without a turn goes alone (a batch of one each) before the class topic."""
        event, data = envelope["event"], envelope["data"]
        cls = registry.get(event)
        restriction = self._sessions.restriction(cls.visibility, audience)
        started = perf_counter()
        matched, batched = self._queries.targets(event, data)
        METER.observe(MATCH_DURATION, (), perf_counter() - started)  # in memory: no I/O per event
        for topic, exclude in matched:
            self._send(topic, envelope, restriction, exclude)
        METER.count(PUBLISHES, _QUERY_KIND, len(matched))
        METER.count(PUBLISHES, _CLASS_KIND)
        # No client may hold the class topic of a class with a row filter (the authorizer
        # says so); should one have it from before a reload added the filter, it gets nothing.
        final = NO_ONE if cls.row_filter is not None else restriction
        if batch is not None and batch.deferring:
            # Batched topics have subscribers: the class topic goes after the turn's batches
            # (``_publish_batches``), every event's, so that its acknowledgement says the router took
            # the event's batches too, and the class topic stays in seq order.
            if batched:
                size = len(json.dumps(data, separators=(",", ":")))
                member = len(batch.waiting)
                batch.deliveries.extend(batching.Delivery(topic, restriction, exclude, envelope, size, member)
                                        for topic, exclude in batched)
            later: Deferred[Any] = Deferred()
            batch.waiting.append((uris.event_topic(event), envelope, final, later))
            return later
        for topic, exclude in batched:  # not in a turn (a takeover): a batch of one each, before the class topic
            self._send(topic, envelope, restriction, exclude)
        if batched:
            METER.count(PUBLISHES, _BATCH_KIND, len(batched))
        acknowledged = self._send(uris.event_topic(event), envelope, final, acknowledge=True)
        assert acknowledged is not None
        return acknowledged

    def _publish_batches(self, batch: _Batch) -> None:
        """The turn's envelopes for batched query topics, grouped (``batching.group``) and published in
        order, one WAMP event per batch; then each event's class topic, acknowledged. The router handles
        this session's messages in order: that acknowledgement means it took the event's batches too.
        An event whose batch could not be sent (it cannot be serialized) is refused."""
        failed: dict[int, Exception] = {}
        groups = batching.group(batch.deliveries)
        for b in groups:
            try:
                self._send(b.topic, b.envelopes[0], b.restriction, b.exclude, more=b.envelopes[1:])
            except Exception as exc:
                for member in b.members:
                    failed.setdefault(member, exc)
        METER.count(PUBLISHES, _BATCH_KIND, len(groups))
        for member, (topic, envelope, final, later) in enumerate(batch.waiting):
            if member in failed:
                later.errback(failed[member])
                continue
            try:
                acknowledged = self._send(topic, envelope, final, acknowledge=True)
                assert acknowledged is not None
            except Exception as exc:  # never leave an id pending for ever
                later.errback(exc)
                continue
            acknowledged.chainDeferred(later)

    def close(self) -> None:
        """The dispatcher is leaving: write the ids not yet written (before its store thread stops), those
        waiting for a write under way too (written twice at worst: both writes ignore what is there)."""
        if self._flush is not None:
            self._flush.cancel()
        if self._unsaved or self._acknowledged:
            self._save()
        self._thread = None

    def _store_thread(self) -> StoreThread:
        if self._thread is None:
            raise RuntimeError("the dispatcher is leaving: its store thread is gone")
        return self._thread

    def _publish_safely(self, *args: Any) -> Deferred[PublishResult]:
        try:
            return self._publish_one(*args)
        except Exception as exc:  # e.g. the store could not give a block of seq numbers
            log.error("could not number an event: {err}", err=exc)
            return succeed(Refused(RefusalCode.UNAVAILABLE,
                                   "the gateway could not number the event; it was not accepted"))

    def _publish_one(self, event: str, data: dict[str, Any], event_id: str,
                     audience: dict[str, list[str]] | None, origin: IdOrigin, logged: set[str], batch: _Batch,
                     earlier_ids: dict[str, tuple[str, int]],
                     logged_rows: dict[str, LoggedEvent]) -> Deferred[PublishResult]:
        registry = self._registry()
        if event not in registry:
            return succeed(Refused(RefusalCode.UNKNOWN_EVENT, f"no event class named {event!r}"))
        pending = self._pending.get(event_id)
        if pending is not None:
            return _follow(pending, event)
        earlier = self._unsaved.get(event_id) or earlier_ids.get(event_id)
        row = logged_rows.get(event_id)
        unpublished = (earlier is not None and row is not None and row.event == event and not row.published
                       and event_id not in self._acknowledged)
        if earlier is not None and not unpublished:
            # Published (the router acknowledged it): answered, never published again.
            return succeed(_as_duplicate(Accepted(event_id, earlier[1]), earlier[0], event))
        moved: int | None = None
        if row is not None and unpublished:
            # Logged, and its publish was never acknowledged: the router refused it while this
            # dispatcher lived, or its log write was answered as failed though it committed (one whose
            # dispatcher died was published by ``take_over``, before anything new). Answered 503 then;
            # higher seqs may have gone out since, so its old seq would put it below what subscribers
            # saw: it is renumbered, its row and its id's entry moved to the new seq in this batch's log
            # transaction (``moved``), with the data and audience it was logged with.
            moved = row.seq
            data = json.loads(row.data)
            audience = json.loads(row.audience) if row.audience is not None else None
        seq = self._sequencer.next()
        now = datetime.now(timezone.utc)
        envelope = make_envelope(event, event_id, seq, now, data)
        persisted = moved is not None or event in logged
        if persisted:
            batch.rows.append(LoggedEvent(seq=seq, event=event, id=event_id, time=envelope["time"],
                                          data=json.dumps(data, separators=(",", ":")),
                                          audience=None if audience is None else json.dumps(audience),
                                          logged_at=now.timestamp()))
            if moved is not None:
                batch.moved.append(moved)
        d: Deferred[Any] = Deferred()

        def send() -> None:
            self._send_envelope(registry, envelope, audience, batch).chainDeferred(d)

        batch.sends.append((send, d))
        outcome: Deferred[PublishResult] = Deferred()
        self._pending[event_id] = (event, outcome)

        def done(_: Any) -> PublishResult:
            if persisted:  # a logged event's id was written with it: mark it published
                self._acknowledge(event_id, seq)
            else:
                self._remember(event_id, event, seq)
            return Accepted(event_id, seq)

        def failed(failure: Any) -> PublishResult:
            log.warn("publishing {event} (seq {seq}) failed: {err}", event=event, seq=seq,
                     err=failure.getErrorMessage())
            if failure.check(NotLogged):
                return Refused(RefusalCode.UNAVAILABLE, "the gateway could not write the event to its log; "
                               "it was not accepted")
            if persisted:
                # Its id is remembered with the logged event: a retry with the same id publishes it
                # under a new seq (moved in the log), never twice; until then replay skips it once a
                # higher seq is published (``Store.last_published_seq``).
                return Refused(RefusalCode.UNAVAILABLE, "the router did not take the event; retry with the "
                               "same id (it is in the event log, and will not be doubled)")
            return Refused(RefusalCode.UNAVAILABLE, "the router did not take the event; it was not accepted")

        def settle(result: PublishResult) -> PublishResult:
            del self._pending[event_id]
            outcome.callback(result)
            return result

        answered: Deferred[PublishResult] = d.addCallbacks(done, failed)
        return answered.addCallback(settle)

    def _remember(self, event_id: str, event: str, seq: int) -> None:
        # Acknowledgements of a batch arrive together: write their ids in one
        # transaction at the end of this reactor turn instead of one each.
        # Until then they are looked up here.
        self._unsaved[event_id] = (event, seq)
        self._flush_soon()

    def _acknowledge(self, event_id: str, seq: int) -> None:
        # As _remember: marked in the store at the end of this reactor turn, looked up here until then.
        self._acknowledged[event_id] = seq
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flush is None and not self._saving:
            self._flush = _REACTOR.callLater(0, self._save)

    def _save(self) -> None:
        """Write the ids accepted and the logged events acknowledged this turn, on the store thread.
        They stay in ``_unsaved`` and ``_acknowledged`` (where lookups find them) until written: a
        lookup queued before the write still sees them here."""
        self._flush = None
        if (not self._unsaved and not self._acknowledged) or self._thread is None:  # (closed: its store too)
            return
        written = dict(self._unsaved)
        marked = dict(self._acknowledged)

        def forget(_: object) -> None:
            for event_id in written:
                if self._unsaved.get(event_id) == written[event_id]:
                    del self._unsaved[event_id]
            for event_id in marked:
                if self._acknowledged.get(event_id) == marked[event_id]:
                    del self._acknowledged[event_id]
            self._saved()

        def failed(failure: Any) -> None:
            # Asked again after a pause, not at once (a store that is down would be asked in a loop); what
            # is acknowledged meanwhile goes with it. Until written, look-ups find them here.
            self._saving = False
            if self._flush is None and self._thread is not None:
                self._flush = _REACTOR.callLater(SAVE_RETRY, self._save)
            log.error("cannot remember {n} accepted event ids and mark {m} published: {err}", n=len(written),
                      m=len(marked), err=failure.getErrorMessage())

        rows = [(i, e, s) for i, (e, s) in written.items()]

        def save(store: Store) -> None:
            if rows:
                store.remember_many(rows)
            if marked:
                store.mark_published(list(marked.values()))

        self._saving = True
        self._thread.run(save).addCallbacks(forget, failed)

    def _saved(self) -> None:
        """A write ended: what was accepted or acknowledged meanwhile goes in the next, one write at a time.
        Under load a write then takes what came during the one before (a store-thread round trip per write,
        not one per reactor turn); when idle, a write is asked at the end of the turn, as before."""
        self._saving = False
        if self._unsaved or self._acknowledged:
            self._flush_soon()


def _look_up(store: Store, ids: list[str]) -> tuple[dict[str, tuple[str, int]], set[str], dict[str, LoggedEvent]]:
    """On the store thread: id -> (class, seq) of those accepted before, the classes that are
    logged, and id -> the logged event for those accepted before that are in the event log."""
    earlier = store.accepted_many(ids)  # one round trip, however many ids
    rows: dict[str, LoggedEvent] = {}
    for event_id, found in earlier.items():  # duplicates: the rare case
        logged = store.events_after([found[0]], found[1] - 1, 1)
        if logged and logged[0].seq == found[1] and logged[0].id == event_id:
            rows[event_id] = logged[0]
    return earlier, store.persistent_classes(), rows


def _envelope_of(row: LoggedEvent) -> dict[str, Any]:
    """A logged event's envelope, as it was first published."""
    return {"event": row.event, "id": row.id, "seq": row.seq, "time": row.time, "data": json.loads(row.data)}


class _Batch:
    """What a batch writes to the event log, and its publishes, sent once the log has them."""

    def __init__(self) -> None:
        self.rows: list[LoggedEvent] = []
        #: Seqs of logged events never published that ``rows`` renumber (retries of refused ones).
        self.moved: list[int] = []
        self.sends: list[tuple[Callable[[], None], Deferred[Any]]] = []
        #: Batched query topics have subscribers (``_send_envelope``): the class topics wait for the batches.
        self.deferring = False
        #: Envelopes due to batched query topics, in seq order (``Delivery.member`` indexes ``waiting``).
        self.deliveries: list[batching.Delivery] = []
        #: The class-topic publish each event waits for, in seq order: (topic, envelope, restriction, the
        #: Deferred of its acknowledgement, fired once sent).
        self.waiting: list[tuple[str, dict[str, Any], Restriction, Deferred[Any]]] = []


def _follow(pending: tuple[str, Deferred[PublishResult]], event: str) -> Deferred[PublishResult]:
    """The answer for an id whose first event is being published right now, once it is."""
    first_event, first = pending
    waiter: Deferred[PublishResult] = Deferred()

    def relay(result: PublishResult) -> PublishResult:
        waiter.callback(_as_duplicate(result, first_event, event))
        return result

    first.addCallback(relay)
    return waiter


def _as_duplicate(first: PublishResult, first_event: str, event: str) -> PublishResult:
    """The answer for an id seen before (``first``, for an event of ``first_event``): the same seq,
    or a conflict if it named another class."""
    if isinstance(first, Refused):
        return first
    if first_event != event:
        return Refused(RefusalCode.CONFLICT,
                       f"id {first.id!r} was already used by a {first_event} event (seq {first.seq})")
    return Accepted(first.id, first.seq, duplicate=True)


def _shielded(d: Deferred[PublishResult]) -> Deferred[PublishResult]:
    """A Deferred with ``d``'s result whose cancellation does not reach ``d``."""
    out: Deferred[PublishResult] = Deferred()

    def relay(result: Any) -> None:
        if out.called:  # cancelled meanwhile: nobody waits for it
            return
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)

    d.addBoth(relay)
    return out
