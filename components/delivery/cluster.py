"""A node of a cluster (docs/cluster.md): events numbered in the shared log, and this node's tail of it.

With ``cluster.enabled`` the nodes share a PostgreSQL store. The active dispatcher of the node an
event is posted to appends it to the shared event log (``ClusterLog.append``: idempotency, the
cluster-wide seq and the log write in one transaction, whose commits come in seq order) and answers
202 once that committed: from then on every node delivers it, whichever dies. The active dispatcher
of *every* node follows the log (``LogTail``): woken by the append's notification, it reads what
came after its place and publishes it to its own router, in seq order, as a single node publishes
(query topics, batches, visibility, audiences and row filters). Its own turns it hands to the tail at
once when nothing came in between (no read back).

A node's place (``node_cursors``) is saved once its router acknowledged; a dispatcher that takes over
within the same run of the node (the other container) goes on from there, so the node's clients miss
nothing (an event may reach them twice, with its seq: they drop it). A node started again begins at
the head of the log: its router has no client of before, and a persistent subscription replays.

``ClusterPublisher`` replaces the single node's per-event path; the rest of the dispatcher is the same.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from components.delivery.publishing import Publisher, _as_duplicate, _Batch, _follow
from components.delivery.results import Accepted, PublishResult, Refused, RefusalCode
from components.config import derived_node_name
from components.envelope import rfc3339
from components.metrics.families import CLUSTER_BEHIND, CLUSTER_NODES, CLUSTER_SKIPPED
from components.metrics.meter import Labels
from components.metrics.process_meter import METER
from components.store.base import ClusterLog, LoggedEvent, NewEvent, PersistentSubscription, Store
from components.store.thread import StoreRunner

log = Logger()
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's

#: Log rows read per round trip when catching up.
TAIL_PAGE = 1000
#: Seconds between a node's heartbeats: its place saved (with the time), the other nodes' read.
HEARTBEAT = 2.0
#: A node not heard of for this long is not seen (readiness lists it so).
SEEN_WITHIN = 10.0
#: Seconds the listener waits for a notification before reading anyway (a notification lost with a
#: connection, a node's clock): the longest an event can wait on a node that missed its wake-up.
POLL = 1.0


def node_run() -> str:
    """Which run of this node the process belongs to: its parent (Crossbar's controller, which every
    worker of the node shares) and when that started. A node started again is a new run."""
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{parent}:{started}"


def default_node_name() -> str:
    """A node's name when none is configured (``crossbar start`` by hand; ``gateway run`` sets one): the
    host and the node directory, Crossbar's workers' working directory."""
    return derived_node_name(Path.cwd())


@dataclass(frozen=True)
class Handed:
    """A logged event on its way to this node's router: the row, its envelope and audience."""

    row: LoggedEvent
    envelope: dict[str, Any]
    audience: dict[str, list[str]] | None

    @classmethod
    def of(cls, row: LoggedEvent) -> Handed:
        envelope = {"event": row.event, "id": row.id, "seq": row.seq, "time": row.time, "data": json.loads(row.data)}
        return cls(row, envelope, None if row.audience is None else json.loads(row.audience))


def _cluster(store: Store) -> ClusterLog:
    if not isinstance(store, ClusterLog):
        raise TypeError("a cluster needs the PostgreSQL store (store.url)")
    return store


class LogTail:
    """This node's tail of the shared log: every event goes to this node's router once per run, in seq order.

    ``publish(handed)`` publishes events in order and fires once the router acknowledged the last.
    ``listen()`` opens a listener (``LogListener``) on the listener thread.
    """

    def __init__(self, thread: StoreRunner, listen: Callable[[], Any] | None, node: str, run: str,
                 publish: Callable[[Sequence[Handed]], Deferred[Any]], clock: Any = None) -> None:
        """``listen``: None for no listener thread (tests wake the tail themselves)."""
        self._thread = thread
        self._listen = listen
        self._node = node
        self._run = run
        self._publish = publish
        self._clock = clock if clock is not None else _REACTOR
        #: The highest seq handed to the router; None before ``start``.
        self.cursor: int | None = None
        #: The highest seq the router acknowledged (what is saved as the node's place).
        self.acknowledged = 0
        #: Seqs the log had dropped before this node delivered them (it fell behind: ``_hand``).
        self.skipped = 0
        self._reading = False
        self._wanted = False
        #: Own turns being appended (``hold``), and a wake-up that waits for them (up to which seq).
        self._holds = 0
        self._held_poll = False
        self._held_upto: int | None = None
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        #: What the last heartbeat found: every node's (name, cursor, seconds since it was heard of), and
        #: whether the store answered (None before the first).
        self.peers: list[tuple[str, int, float]] = []
        self.store_answered: bool | None = None
        #: Told each announcement of another node (``ClusterLog.announce``), on the reactor thread.
        self.on_announcement: Callable[[dict[str, Any]], object] | None = None

    async def start(self) -> None:
        """Find this node's place (this run's, else the head of the log), then follow the log."""
        node, run = self._node, self._run

        def place(store: Store) -> int:
            cluster = _cluster(store)
            saved = cluster.node_cursor(node)
            if saved is not None and saved[0] == run:
                return saved[1]  # a dispatcher of this run handed the router everything up to there
            head = store.taken()  # every seq up to it is committed: none is numbered out of order
            cluster.save_node_cursor(node, run, head)
            return head

        self.cursor = self.acknowledged = await self._thread.run(place)
        log.info("node {node} follows the shared log from seq {seq}", node=node, seq=self.cursor)
        if self._listen is not None:
            self._listener = threading.Thread(target=self._follow, name="cluster-listener", daemon=True)
            self._listener.start()
        self._heartbeat.start(HEARTBEAT, now=True)
        self.wake()

    def stop(self) -> None:
        """No more reading or publishing (the dispatcher is leaving); the listener thread ends within POLL."""
        self._stopped.set()
        if self._heartbeat.running:
            self._heartbeat.stop()

    def status(self) -> dict[str, Any]:
        """What readiness says of the cluster, from memory: this node, its place, the nodes it sees."""
        return {"node": self._node, "cursor": self.cursor, "acknowledged": self.acknowledged,
                "skipped": self.skipped, "store": self.store_answered,
                "nodes": [{"name": name, "cursor": cursor, "heard_of": round(ago, 1), "seen": ago <= SEEN_WITHIN}
                          for name, cursor, ago in self.peers]}

    def gauges(self) -> list[tuple[str, Labels, float]]:
        """The cluster's gauges as this node sees them (``components.metrics``), from memory."""
        if self.cursor is None:
            return []
        seen = sum(1 for _, _, ago in self.peers if ago <= SEEN_WITHIN)
        ahead = max([self.cursor, *(cursor for _, cursor, _ in self.peers)])
        return [(CLUSTER_NODES, (("state", "seen"),), seen), (CLUSTER_NODES, (("state", "unseen"),), len(self.peers) - seen),
                (CLUSTER_BEHIND, (), max(0, ahead - self.acknowledged))]

    def _beat(self) -> Deferred[None]:
        """Save this node's place with the time (others see it alive), and read every node's."""
        node, run, seq = self._node, self._run, self.acknowledged

        def beat(store: Store) -> list[tuple[str, int, float]]:
            cluster = _cluster(store)
            cluster.save_node_cursor(node, run, seq)
            return cluster.nodes()

        def seen(peers: list[tuple[str, int, float]]) -> None:
            if self.store_answered is False:
                log.info("node {node} reaches the shared store again", node=node)
            self.peers, self.store_answered = peers, True

        def lost(failure: Any) -> None:
            if self.store_answered is not False:
                log.error("node {node} cannot reach the shared store: {err}; it takes no events until it can",
                          node=node, err=failure.getErrorMessage())
            self.store_answered = False

        return self._thread.run(beat).addCallbacks(seen, lost)

    def offer(self, handed: Sequence[Handed]) -> None:
        """This node's own turn, just committed: handed to the router at once if it comes next in the log,
        else read back in order with whatever came in between."""
        if not handed or self.cursor is None or self._stopped.is_set():
            return
        if not self._reading and handed[0].row.seq == self.cursor + 1:
            self._hand(handed)
        else:
            self.wake(handed[-1].row.seq)

    def hold(self) -> None:
        """This node's own turn is being appended: a wake-up waits for its ``offer`` (then ``release``), so that
        the notification of its own commit, which may come first, costs no read back. Other nodes' events
        that came meanwhile wait as long (the append: a round trip, the counter's lock, the commit)."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0 and (self._held_poll or self._held_upto is not None):
            upto = None if self._held_poll else self._held_upto
            self._held_poll, self._held_upto = False, None
            self.wake(upto)

    def wake(self, upto: int | None = None) -> None:
        """Read what came after this node's place (``upto``: a seq the log has now; nothing to do if handed)."""
        if self.cursor is None or self._stopped.is_set() or (upto is not None and upto <= self.cursor):
            return
        if self._holds:
            if upto is None:
                self._held_poll = True
            else:
                self._held_upto = max(upto, self._held_upto or 0)
            return
        self._wanted = True
        if not self._reading:
            ensureDeferred(self._read())

    async def _read(self) -> None:
        self._reading = True
        try:
            while self._wanted and not self._stopped.is_set():
                assert self.cursor is not None
                if self.cursor - self.acknowledged >= TAIL_PAGE:
                    # The router has not taken the last page yet (a node catching up, or the cluster's
                    # rate beyond this router): read on once it has (``_acknowledge``), not into memory.
                    return
                self._wanted = False
                rows = await self._thread.run(lambda store, after: _cluster(store).log_after(after, TAIL_PAGE),
                                              self.cursor)
                if self._stopped.is_set():
                    return
                rows = [r for r in rows if r.seq > self.cursor]
                if rows and not self._hand([Handed.of(r) for r in rows]):
                    return  # not handed: the next wake-up (a poll at the latest) reads it again
                if len(rows) >= TAIL_PAGE:
                    self._wanted = True
        except Exception as exc:  # the store did not answer: the listener's next poll tries again
            log.warn("node {node} cannot read the shared log after seq {seq}: {err}", node=self._node,
                     seq=self.cursor, err=exc)
        finally:
            self._reading = False

    def announce(self, message: dict[str, Any]) -> None:
        """Tell the other nodes (best effort: one not listening now misses it); ``node`` is added."""
        said = {**message, "node": self._node}
        self._thread.run(lambda store: _cluster(store).announce(said)).addErrback(
            lambda f: log.warn("cannot tell the cluster {what}: {err}", what=said.get("what"),
                               err=f.getErrorMessage()))

    def _announced(self, message: dict[str, Any]) -> None:
        if self.on_announcement is None or self._stopped.is_set():
            return
        try:
            self.on_announcement(message)
        except Exception as exc:
            log.error("cannot act on node {node}'s announcement {what}: {err}", node=message.get("node"),
                      what=message.get("what"), err=exc)

    def _hand(self, handed: Sequence[Handed]) -> bool:
        """Publish to the router, in order; whether it was handed (else the place stays where it was)."""
        first, last = handed[0].row.seq, handed[-1].row.seq
        assert self.cursor is not None
        try:
            acknowledged = self._publish(handed)
        except Exception as exc:  # nothing handed: read again from the same place on the next wake-up
            log.error("node {node} could not publish seqs {a} to {b}: {err}", node=self._node, a=first, b=last,
                      err=exc)
            return False
        if first != self.cursor + 1:
            # Numbers are contiguous: the log no longer has what lay between (retention dropped it while this
            # node was behind by more than it keeps). Its live clients miss those events.
            self.skipped += first - self.cursor - 1
            METER.count(CLUSTER_SKIPPED, (), first - self.cursor - 1)
            log.error("node {node} fell behind the shared log: seqs {a} to {b} were dropped before it delivered "
                      "them (cluster.log_retention, store.max_logged_per_class); its clients' persistent "
                      "subscriptions replay their classes", node=self._node, a=self.cursor + 1, b=first - 1)
        self.cursor = last
        acknowledged.addCallbacks(lambda _: self._acknowledge(last), lambda f: log.warn(
            "the router did not acknowledge seq {seq}: {err}", seq=last, err=f.getErrorMessage()))
        return True

    def _acknowledge(self, seq: int) -> None:
        """The router took everything up to ``seq``; saved as the node's place with the next heartbeat (a
        dispatcher taking over within the run hands again at most a heartbeat's events, with their seq)."""
        if seq <= self.acknowledged:
            return
        self.acknowledged = seq
        if self._wanted and not self._reading and not self._stopped.is_set():
            ensureDeferred(self._read())  # a read held back until the router took what was handed

    def _follow(self) -> None:
        """On the listener thread: wake the tail on each notification, and every POLL seconds anyway."""
        while not self._stopped.is_set():
            try:
                assert self._listen is not None
                listener = self._listen()
            except Exception as exc:
                log.warn("node {node} cannot listen to the shared log: {err}; polling", node=self._node, err=exc)
                if self._stopped.wait(POLL):
                    return
                self._clock.callFromThread(self.wake)
                continue
            try:
                self._clock.callFromThread(self.wake)  # what came while not listening
                while not self._stopped.is_set():
                    top, said = listener.wait(POLL)
                    self._clock.callFromThread(self.wake, top)
                    for message in said:
                        if message.get("node") != self._node:  # this node's own: done here already
                            self._clock.callFromThread(self._announced, message)
            except Exception as exc:
                if not self._stopped.is_set():
                    log.warn("node {node} lost its listener to the shared log: {err}; listening again",
                             node=self._node, err=exc)
            finally:
                try:
                    listener.close()
                except Exception:
                    pass


def ended_message(sub: PersistentSubscription, reason: str) -> dict[str, Any]:
    """The announcement that a persistent subscription ended (``WebAppSubscriptions.end``): what another
    node needs to stop its sessions of the owner receiving on it, and to tell them."""
    return {"what": "subscription_ended", "reason": reason, "id": sub.id, "owner": sub.owner, "user": sub.user,
            "query": sub.query[:2000], "key": sub.key}


def ended_subscription(message: dict[str, Any]) -> tuple[PersistentSubscription, str] | None:
    """The subscription (as much as ending it needs) and reason of a ``subscription_ended`` announcement."""
    if message.get("what") != "subscription_ended":
        return None
    sub = PersistentSubscription(id=str(message["id"]), owner=str(message["owner"]),
                                 user=None if message.get("user") is None else str(message["user"]),
                                 query=str(message.get("query", "")), key=str(message["key"]), parts=[], filters={},
                                 classes=[], last_seq=0, created=0.0)
    return sub, str(message.get("reason", "ended"))


def _refused(failure: Failure, seq: int) -> None:
    log.warn("the router refused seq {seq}: {err}", seq=seq, err=failure.getErrorMessage())


class ClusterPublisher(Publisher):
    """The per-event path of a cluster node: one ``append`` per turn, answered once it committed; the
    node's router gets the events through its ``LogTail``, as every other node's does."""

    tail: LogTail | None = None

    async def _take_turn(self, items: list[list[Any]]) -> list[Deferred[PublishResult]]:
        registry = self._registry()
        now = datetime.now(timezone.utc)
        stamp = rfc3339(now)
        results: list[Deferred[PublishResult]] = []
        fresh: list[tuple[NewEvent, dict[str, Any], dict[str, list[str]] | None, Deferred[PublishResult]]] = []
        for event, data, event_id, audience, _origin in items:
            if event not in registry:
                results.append(succeed(Refused(RefusalCode.UNKNOWN_EVENT, f"no event class named {event!r}")))
                continue
            pending = self._pending.get(event_id)
            if pending is not None:  # the same id earlier in this turn, or in one under way
                results.append(_follow(pending, event))
                continue
            outcome: Deferred[PublishResult] = Deferred()
            self._pending[event_id] = (event, outcome)
            results.append(outcome)
            row = NewEvent(event=event, id=event_id, time=stamp, data=json.dumps(data, separators=(",", ":")),
                           audience=None if audience is None else json.dumps(audience))
            fresh.append((row, data, audience, outcome))
        if not fresh:
            return results
        rows = [row for row, *_ in fresh]
        tail = self.tail
        if tail is not None:
            tail.hold()  # the notification of this commit may come before its answer: no read back for it
        try:
            return await self._append(fresh, rows, now, stamp, results)
        finally:
            if tail is not None:
                tail.release()

    async def _append(self, fresh: list[tuple[NewEvent, dict[str, Any], dict[str, list[str]] | None,
                                              Deferred[PublishResult]]],
                      rows: list[NewEvent], now: datetime, stamp: str,
                      results: list[Deferred[PublishResult]]) -> list[Deferred[PublishResult]]:
        try:
            answers = await self._store_thread().run(lambda store: _cluster(store).append(rows, now.timestamp()))
        except Exception as exc:  # nothing committed, or not known to be: a retry with the same id is safe
            log.error("cannot append {n} events to the shared log: {err}", n=len(rows), err=exc)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            refused = Refused(RefusalCode.UNAVAILABLE, f"the gateway's store did not answer; the event was not "
                              f"accepted: retry with the same id ({reason})")
            for row, _, _, outcome in fresh:
                del self._pending[row.id]
                outcome.callback(refused)
            return results
        handed: list[Handed] = []
        for (row, data, audience, outcome), (seq, earlier) in zip(fresh, answers):
            result: PublishResult
            if earlier is None:
                result = Accepted(row.id, seq)
                logged = LoggedEvent(seq=seq, event=row.event, id=row.id, time=stamp, data=row.data,
                                     audience=row.audience, logged_at=now.timestamp(), published=True)
                handed.append(Handed(logged, {"event": row.event, "id": row.id, "seq": seq, "time": stamp,
                                              "data": data}, audience))
            else:
                result = _as_duplicate(Accepted(row.id, seq), earlier, row.event)
            del self._pending[row.id]
            outcome.callback(result)
        if handed and self.tail is not None:
            self.tail.offer(handed)
        return results

    async def take_over(self, term: int) -> int:
        """Nothing is left unpublished in a cluster (an event is accepted once in the log, and every
        node's tail publishes it): the node's tail starts from its place instead."""
        self._term = term
        if self.tail is not None:
            await self.tail.start()
        return 0

    def hand_to_router(self, handed: Sequence[Handed]) -> Deferred[Any]:
        """Publish logged events in seq order, as a single node publishes them; the acknowledgement of the
        last one's class topic (the router takes a session's messages in order: it means all)."""
        registry = self._registry()
        batch = _Batch()
        batch.deferring = self._queries.live.batching
        last: Deferred[Any] | None = None
        for item in handed:
            if item.row.event not in registry:  # a class this node does not know (yet): a rolling upgrade
                log.warn("seq {seq} is a {event} event, a class this node does not know: not delivered here",
                         seq=item.row.seq, event=item.row.event)
                continue
            try:
                last = self._send_envelope(registry, item.envelope, item.audience, batch)
            except Exception as exc:
                log.error("cannot publish seq {seq}: {err}", seq=item.row.seq, err=exc)
                continue
            last.addErrback(_refused, item.row.seq)
        if batch.waiting:
            self._publish_batches(batch)
        self._sent()
        return last if last is not None else succeed(None)

    def close(self) -> None:
        if self.tail is not None:
            self.tail.stop()
        super().close()
