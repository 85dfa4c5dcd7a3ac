"""The bridge component: the HTTP interface web-apps post events to.

It runs inside a Crossbar container worker, listens on the bridge port,
validates each request (``webapp_bridge.server.api``) and hands accepted events to
the dispatcher over WAMP.

Every container worker runs a bridge, all on the same port (SO_REUSEPORT):
the kernel spreads connections over them, so HTTP parsing and validation use
every core, and a bridge whose process dies leaves the others serving.
"""

from __future__ import annotations

import resource
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, cast

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CloseDetails, SessionDetails
from autobahn.wamp.types import CallDetails, RegisterOptions
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.tcp import Port
from twisted.logger import Logger

from components import uris
from components.backend import BackendSession, sleep
from components.config import GatewayConfig
from components.delivery import local
from components.delivery.coalescing import Coalescer
from components.delivery.results import IdOrigin
from components.envelope import new_event_id
from components.events import Registry
from components.metrics import Snapshot, node_totals
from components.metrics.exposition import CONTENT_TYPE, render
from components.metrics.families import (AMQP_CONSUMERS, DISPATCHERS, EVENT_LOG_ROWS, EVENTS_ACCEPTED,
                                         EVENTS_DUPLICATE, EVENTS_REFUSED, INGEST_DURATION,
                                         PERSISTENT_SUBSCRIPTIONS)
from components.metrics.keeper import KEEPER
from components.metrics.meter import Labels, SeriesKey, labels_text
from components.metrics.process_meter import METER
from components.metrics.processes import node_processes
from components.metrics.status import Seen, status_payload
from components.arguments import Signature
from components.auth.policy import session_is_operator
from components.exceptions import StoreUnavailable
from components.procedures import checked
from components.store.base import open_store
from components.store.thread import StoreThread
from webapp_bridge.server.counting import refusals
from webapp_bridge.server.status import LiveQueryCounts, Remembered, Shared
from webapp_bridge.server.accesslog import AccessLog
from webapp_bridge.server.amqp import AmqpIngest, WampLease
from webapp_bridge.server.amqp_rules import connection_name
from webapp_bridge.server import forward, handoff, xmlrpc
from webapp_bridge.server.handoff import HandOff
from webapp_bridge.server.api import (RETRY, Answer, BridgeLogic, PublishRequest, TicketRequest, batch_results, error,
                                      published, ticket_issued)
from webapp_bridge.server.http import BridgeSite, RequestInfo, Route
from webapp_bridge.server.openapi import openapi_document
from webapp_bridge.server.overload import (Admission, InFlight, KeyLimit, KeyRates, as_fault, drain_answer,
                                           drain_report, draining, open_file_limit, overloaded)

_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's
_log = Logger()
#: While the dispatcher is (re)starting its procedure is missing; the bridge
#: waits this long in all before answering 503, so that a component restart
#: is invisible to web-apps.
DISPATCHER_WAIT = (0.1, 0.2, 0.4, 0.8, 1.5)
#: Connections the kernel holds for the bridge before it accepts them (capped by net.core.somaxconn).
#: A burst of connections past a short backlog is not refused but dropped, and each client's kernel
#: sends its SYN again 1, 3, 7, 15 s later: thousands of web-app requests at once would wait that
#: long before the bridge even sees them. With room for them, they are answered (or refused) at once.
LISTEN_BACKLOG = 4096
#: Requests waiting together are sent in one call of about this many bytes at most (their bodies'
#: sizes; RabbitMQ messages, each at most bridge.max_body_bytes, are bounded by bridge.max_batch).
CALL_BUDGET = 4 * 1024 * 1024
#: Calls to the dispatcher under way at once from one bridge: the next group is on its way while one
#: waits for the router's acknowledgements, and a slow group holds up only its own requests.
CALLS_AT_ONCE = 2


class Bridge(BackendSession):
    _port: Port | None
    _logic: BridgeLogic
    #: This process's in-flight limit and the keys' rates (``overload``), shared by HTTP and RabbitMQ ingest.
    _admission: Admission

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._port = None
        self._access_log: AccessLog | None = None
        self._hand_off: HandOff | None = None
        self._forwarding: forward.Forwarding | None = None
        self._amqp: AmqpIngest | None = None
        #: The store, for the status page's live queries: opened only once an operator asks.
        self._status_store: StoreThread | None = None
        #: Registration id -> its procedure, for the ids looked up (``_registered``): an id's URI never changes.
        self._registration_uris: dict[int, str] = {}

    async def start(self, details: SessionDetails) -> None:
        # Loading refuses a non-loopback host while the example API key is configured.
        cfg = self.load_gateway_config()
        self.start_registry(cfg)
        self._metrics_enabled, self._user_role = cfg.metrics.enabled, cfg.auth.user_role
        self._logic = BridgeLogic(cfg.bridge.api_keys, self.registry, cfg.bridge.max_body_bytes,
                                  cfg.bridge.max_batch, cfg.auth.ticket_ttl, cfg.auth.max_ticket_ttl,
                                  cfg.bridge.max_depth)
        # Requests that come while a call to the dispatcher is under way go together in the next call,
        # bounded well below the router's 16 MiB message size.
        self._together: Coalescer[list[Any], dict[str, Any]] = Coalescer(
            self._publish_together, cfg.bridge.max_batch, budget=CALL_BUDGET, concurrent=CALLS_AT_ONCE)
        self._admission = Admission(InFlight(cfg.bridge.max_in_flight), KeyRates(
            KeyLimit(k.name, *k.limit) for k in cfg.bridge.api_keys if k.limit is not None))
        await self.register_reload()
        routes = [
            Route(b"POST", b"/events", self._post_event, gated=True, ingest=True),
            Route(b"POST", b"/events/batch", self._post_batch, gated=True, ingest=True),
            Route(b"POST", b"/tickets", self._post_ticket, gated=True),
            Route(b"POST", b"/RPC2", self._post_rpc, gated=True, refusal=as_fault),
            Route(b"POST", b"/subscriptions", self._post_subscription, gated=True),
            Route(b"GET", b"/subscriptions", self._get_subscriptions, gated=True),
            Route(b"DELETE", b"/subscriptions", self._delete_subscription, prefix=True, gated=True),
            Route(b"GET", b"/catalog", self._catalog),
            Route(b"GET", b"/openapi.json", self._openapi, auth=False),
            Route(b"POST", b"/admin/reload", self._reload_everywhere),
            Route(b"POST", b"/admin/drain", self._drain_everywhere),
            Route(b"GET", b"/healthz", _answered_here(self._health), auth=False),
            Route(b"GET", b"/metrics", _answered_here(self._metrics), auth=cfg.metrics.require_key),
        ]
        if cfg.bridge.access_log:
            self._access_log = AccessLog(cfg.bridge.access_log)
        _raise_open_file_limit(cfg.bridge.max_connections)
        site = BridgeSite(lambda: self._logic, routes, self._access_log, self._admission,
                          cfg.bridge.max_connections, on_answer=_count_answer)
        self._port = listen_shared(cfg.bridge.host, cfg.bridge.port, site)
        site.accepting_on(self._port)
        if cfg.bridge.forward:
            self._forwarding = forward.Forwarding(forward.address(cfg.bridge.host, cfg.bridge.port), site)
            self._forwarding.start()
        if cfg.bridge.hand_off:
            self._hand_off = HandOff(site, self._port.addressFamily, handoff.address(cfg.bridge.host, cfg.bridge.port),
                                     balance=cfg.bridge.balance)
            self._hand_off.start()
        _close_at_shutdown(site)
        self.log.info("bridge listening on http://{host}:{port}/", host=cfg.bridge.host, port=cfg.bridge.port)
        if cfg.amqp.url is not None:
            # Runs in the background: a broker that is down does not keep the bridge from serving HTTP.
            self._amqp = AmqpIngest(cfg.amqp, lambda: self._logic, self._dispatch_amqp,
                                    connection_name(cfg.bridge.host, cfg.bridge.port), WampLease(self),
                                    self._admission.in_flight, single_active=cfg.cluster.enabled)
            self._amqp.start()
        assert self._session_id is not None
        await self.register(self._drain_here, uris.internal_drain(self._session_id))
        METER.provide("bridge", lambda: [(AMQP_CONSUMERS, (("state", self._amqp_state()),), 1)], "sum")
        await self.offer_metrics(cfg)
        await self._offer_status(cfg)

    def registry_changed(self, old: Registry, new: Registry) -> None:
        self._logic = replace(self._logic, registry=new)

    # -- events --------------------------------------------------------------

    async def _post_event(self, body: bytes, request: RequestInfo) -> Answer:
        parsed = self._logic.parse_event(body)
        if isinstance(parsed, Answer):
            return parsed

        async def publish() -> Answer:
            results = await self._dispatch([parsed], len(body))
            return results if isinstance(results, Answer) else published(results[0])
        return await self._admitted(request, 1, publish, ingest=True)

    async def _post_batch(self, body: bytes, request: RequestInfo) -> Answer:
        items = self._logic.parse_batch(body)
        if isinstance(items, Answer):
            return items
        good = [item for item in items if isinstance(item, PublishRequest)]

        async def publish() -> Answer:
            results = await self._dispatch(good, len(body)) if good else []
            if isinstance(results, Answer):
                return results
            return batch_results(items, results)
        return await self._admitted(request, len(good), publish, ingest=True)

    async def _admitted(self, request: RequestInfo, events: int, work: Callable[[], Awaitable[Answer]],
                        refusal: Callable[[Answer], Answer] | None = None, ingest: bool = False) -> Answer:
        """``work()``'s answer if the bridge has room for ``events`` (one at least) and the key's rate lets
        them in, holding their places until it is answered; else the 503 or 429 (``refusal`` words it).
        ``ingest``: the request publishes events, refused 503 ``draining`` once the node is leaving."""
        events = max(1, events)
        refused = self._admission.admit(request.key_name, events, ingest)
        if refused is not None:
            return refused if refusal is None else refusal(refused)
        try:
            return await work()
        finally:
            self._admission.release(events)

    async def _dispatch(self, requests: list[PublishRequest], weight: int = 0) -> list[dict[str, Any]] | Answer:
        """The dispatcher's results as they came over WAMP (``components.delivery.results``: the pure
        modules read them, ``api.REFUSAL_STATUS`` gives each refusal its status), or the 503 Answer.
        ``weight``: about how many bytes the requests came in (``CALL_BUDGET``)."""
        # An id for every event, chosen here: a retry after a failure can then
        # never publish the same event twice.
        items = [r.item(r.id, IdOrigin.GIVEN) if r.id else r.item(new_event_id(), IdOrigin.NEW) for r in requests]
        results = await self._publish_items(items, weight)
        if not isinstance(results, Answer):
            for request, result in zip(requests, results):
                if "seq" in result:  # accepted (refusals are counted as the caller gets them: _count_answer)
                    METER.count(EVENTS_DUPLICATE if result.get("duplicate") else EVENTS_ACCEPTED,
                                (("event", request.event),))
        return results

    async def _publish_items(self, items: list[list[Any]], weight: int) -> list[dict[str, Any]] | Answer:
        """The dispatcher's results for ``items``: from the active dispatcher in this process if it is here
        (``components.delivery.local``), else through the bridge beside it (``forward``), else over WAMP,
        together with the other requests waiting then."""
        publish = local.active()
        if publish is not None:
            try:
                return await publish(items)
            except local.DispatcherLeft:  # as a WAMP call whose callee left (CANCELED): the next one, same ids
                self.log.info("the dispatcher in this process left while publishing {n} events; calling "
                              "the active dispatcher", n=len(items))
                items = [_as(item, IdOrigin.GIVEN) for item in items]
        elif self._forwarding is not None and self._forwarding.client.connected:
            try:
                return await self._forwarding.client.publish(items)
            except forward.NotForwarded:  # its answer did not come: over WAMP, the same ids (a duplicate's seq)
                items = [_as(item, IdOrigin.GIVEN) for item in items]
        try:
            return await self._together(items, weight)
        except _Answered as answered:
            return answered.answer

    async def _publish_together(self, items: list[list[Any]]) -> list[dict[str, Any]]:
        """One ``gateway.internal.publish`` for the requests that waited together (``_together``):
        the router routes one call and one result for all of them, not one each."""
        results: list[dict[str, Any]] | Answer = await self._call_until_answered(
            uris.INTERNAL_PUBLISH, (items,), {}, lambda: ([_as(item, IdOrigin.GIVEN) for item in items],))
        if isinstance(results, Answer):
            raise _Answered(results)
        return results

    async def _dispatch_amqp(self, requests: list[PublishRequest]) -> list[dict[str, Any]] | Answer:
        started = time.monotonic()
        try:
            return await self._dispatch(requests)
        finally:
            METER.observe(INGEST_DURATION, _AMQP, time.monotonic() - started)

    async def _call_backend(self, procedure: str, *args: Any, **kwargs: Any) -> Any:
        """Call one of our components, waiting out a restart of it; a 503 Answer if it stays away."""
        return await self._call_until_answered(procedure, args, kwargs, None)

    async def _call_until_answered(self, procedure: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                                   again: Callable[[], tuple[Any, ...]] | None) -> Any:
        """``_call_backend``; ``again``: makes the arguments of the calls after the first, if not ``args``
        (only when a call is tried again: none on the usual path)."""
        if not self.is_attached():
            return error(503, "unavailable", "the bridge is reconnecting to the router; retry", headers=RETRY)
        for delay in (*DISPATCHER_WAIT, None):
            try:
                return await self.call(procedure, *args, **kwargs)
            except ApplicationError as exc:
                if again is not None:
                    args, again = again(), None
                if exc.error == ApplicationError.NO_SUCH_PROCEDURE and delay is not None:
                    await sleep(delay)  # a dispatcher is (re)starting
                    continue
                if exc.error == ApplicationError.CANCELED and delay is not None:
                    # The dispatcher died between taking the events and answering. Retrying
                    # with the same ids is safe: those it published are answered as duplicates.
                    continue
                return _dispatch_failed(exc, procedure)
        raise AssertionError("unreachable: the last attempt returns")

    # -- XML-RPC -------------------------------------------------------------

    async def _post_rpc(self, body: bytes, request: RequestInfo) -> Answer:
        """POST /RPC2: the calls' events in one dispatcher call, then their tickets (``webapp_bridge.server.xmlrpc``)."""
        plan = xmlrpc.plan(self._logic, body)
        events = plan.events()
        tickets = plan.tickets()
        if not events and not tickets:
            return plan.answer([], [])  # faults and introspection: nothing for our components

        async def run() -> Answer:
            published = await self._dispatch(events, len(body)) if events else []
            issued = [await self._issue_ticket(ticket) for ticket in tickets]
            return plan.answer(published, issued)
        return await self._admitted(request, len(events) + len(tickets), run, as_fault, ingest=bool(events))

    async def _issue_ticket(self, request: TicketRequest) -> dict[str, Any] | Answer:
        try:
            result: dict[str, Any] | Answer = await self._call_backend(
                uris.INTERNAL_TICKET, request.user, request.roles, request.ttl)
        except ApplicationError as exc:
            if exc.error == uris.ERROR_INVALID_ARGUMENT:
                return error(400, "invalid_request", str(exc.args[0]) if exc.args else "invalid ticket request")
            # A fault for this call alone: the same request's published events keep their answers.
            self.log.error("issuing a ticket over XML-RPC failed: {err}", err=exc)
            return error(503, "unavailable", "the gateway could not issue the ticket now; retry", headers=RETRY)
        return result

    # -- tickets -------------------------------------------------------------

    async def _post_ticket(self, body: bytes, info: RequestInfo) -> Answer:
        request = self._logic.parse_ticket(body)
        if isinstance(request, Answer):
            return request

        async def issue() -> Answer:
            try:
                result = await self._call_backend(uris.INTERNAL_TICKET, request.user, request.roles, request.ttl)
            except ApplicationError as exc:
                if exc.error == uris.ERROR_INVALID_ARGUMENT:
                    return error(400, "invalid_request", str(exc.args[0]) if exc.args else "invalid ticket request")
                raise
            return result if isinstance(result, Answer) else ticket_issued(result)
        return await self._admitted(info, 1, issue)

    # -- server-side subscriptions --------------------------------------------

    async def _post_subscription(self, body: bytes, info: RequestInfo) -> Answer:
        request = self._logic.parse_subscription(body)
        if isinstance(request, Answer):
            return request

        async def create() -> Answer:
            try:
                result = await self._call_backend(uris.INTERNAL_SUBSCRIPTION_CREATE, request.user, request.roles,
                                                  request.query)
            except ApplicationError as exc:
                return _query_refused(exc)
            return result if isinstance(result, Answer) else Answer(201, result)
        return await self._admitted(info, 1, create)

    async def _get_subscriptions(self, body: bytes, request: RequestInfo) -> Answer:
        kwargs = self._logic.parse_listing(request.query)
        if isinstance(kwargs, Answer):
            return kwargs

        async def listing() -> Answer:
            result = await self._call_backend(uris.INTERNAL_SUBSCRIPTION_LIST, **kwargs)
            return result if isinstance(result, Answer) else Answer(200, {"subscriptions": result})
        return await self._admitted(request, 1, listing)

    async def _delete_subscription(self, body: bytes, request: RequestInfo) -> Answer:
        if not request.rest:
            return error(405, "method_not_allowed", "DELETE /subscriptions/<id>: name the subscription")

        async def delete() -> Answer:
            try:
                result = await self._call_backend(uris.INTERNAL_SUBSCRIPTION_DELETE, request.rest)
            except ApplicationError as exc:
                if exc.error == uris.ERROR_NO_SUCH_SUBSCRIPTION:
                    return error(404, "no_such_subscription", str(exc.args[0]) if exc.args else request.rest)
                raise
            return result if isinstance(result, Answer) else Answer(200, result)
        return await self._admitted(request, 1, delete)

    async def _catalog(self, body: bytes) -> Answer:
        return self._logic.catalog()

    async def _openapi(self, body: bytes) -> Answer:
        return Answer(200, openapi_document(self.registry))

    # -- reload --------------------------------------------------------------

    async def _reload_everywhere(self, body: bytes) -> Answer:
        previous = self.registry.version
        try:
            mine = self.reload_registry()
        except ApplicationError as exc:
            self.log.error("reload refused, still serving version {v}: {err}", v=previous, err=exc.args[0])
            return error(422, "invalid_definitions", str(exc.args[0]))
        others = await self._other_components()
        failures = []
        for procedure in others:
            try:
                theirs = await self.call(procedure)
            except ApplicationError as exc:
                failures.append({"component": procedure, "error": str(exc.args[0]) if exc.args else exc.error})
                continue
            if theirs["version"] != mine["version"]:
                failures.append({"component": procedure, "error": f"loaded version {theirs['version']}"})
        if failures:
            self.log.error("reload incomplete: {failures}", failures=failures)
            return Answer(500, {"error": "reload_incomplete", "message": "some components did not load the new "
                                "definitions", "version": mine["version"], "details": failures})
        return Answer(200, {"version": mine["version"], "previous": previous, "classes": mine["classes"],
                            "components": len(others) + 1})

    async def _other_components(self) -> list[str]:
        listing = await self.call(uris.META_REGISTRATION_LIST)
        assert self._session_id is not None
        mine = uris.internal_reload(self._session_id)
        found = []
        for registration in listing.get("exact", []):
            try:
                info = await self.call(uris.META_REGISTRATION_GET, registration)
            except ApplicationError:
                continue  # gone meanwhile
            if info["uri"].startswith(uris.INTERNAL_RELOAD_PREFIX) and info["uri"] != mine:
                found.append(info["uri"])
        return found

    # -- drain (the node is leaving) -------------------------------------------

    async def _drain_everywhere(self, body: bytes) -> Answer:
        """``POST /admin/drain``: every bridge of the node takes no new event from now on (503 ``draining``,
        ``/healthz`` 503) and says what it still holds in flight (``overload.drain_answer``). This one drains
        first, by itself; the others (the port is shared: a request reaches one bridge) by their
        ``gateway.internal.drain.<session>``, as ``POST /admin/reload`` reaches every component. Asked again,
        it drains whichever bridge has (re)started since and answers the counts now: ``gateway run`` asks
        until every bridge holds nothing."""
        mine = self._drain_here()
        if not self.is_attached():
            return drain_answer([mine], [{"bridge": "the others", "error": "this bridge is reconnecting to the "
                                          "router and could not reach them"}])
        assert self._session_id is not None
        own = uris.internal_drain(self._session_id)
        try:
            others = [p for p in await self._registered(uris.INTERNAL_DRAIN_PREFIX) if p != own]
        except ApplicationError as listing_failed:
            return drain_answer([mine], [{"bridge": "the others",
                                          "error": f"the router did not list them: {listing_failed}"}])
        answers = await DeferredList([self.call(p) for p in others], consumeErrors=True)
        reports, failures = [mine], []
        for procedure, (ok, got) in zip(others, answers):
            if ok and isinstance(got, dict):
                reports.append(got)
                continue
            error = getattr(got, "value", None)
            if isinstance(error, ApplicationError) and error.error == ApplicationError.NO_SUCH_PROCEDURE:
                continue  # its session ended meanwhile: it takes nothing more (a restarted one is asked next time)
            failures.append({"bridge": procedure, "error": str(error) if error is not None else f"answered {got!r}"})
        return drain_answer(reports, failures)

    def _drain_here(self) -> dict[str, Any]:
        """``gateway.internal.drain.<session>``: this bridge admits no new event, for good (its node stops next),
        nor RabbitMQ message; what it holds goes on to its answer. Its process, in-flight count and consumer."""
        if not self._admission.draining:
            self._admission.draining = True
            self.log.info("draining: this bridge takes no new events (503 draining, /healthz 503); the {n} "
                          "requests it holds go on to their answers", n=self._admission.in_flight.count)
            if self._amqp is not None:
                self._amqp.drain()
        return drain_report(METER.identity, self._admission.in_flight.count, self._amqp_state())

    # -- metrics -------------------------------------------------------------

    async def _metrics(self, body: bytes) -> Answer:
        """The node's metrics (``components.metrics``): every process's snapshot, summed with what gone
        processes saved, never below what any scrape reported (the high water, raised before answering)."""
        if not self._metrics_enabled:
            return error(404, "metrics_disabled", "metrics are off on this gateway (metrics.enabled: false in "
                         "gateway.yaml, or env GATEWAY_METRICS_ENABLED=false): nothing is counted")
        if not self.is_attached():
            return error(503, "unavailable", "the bridge is reconnecting to the router; retry", headers=RETRY)
        counters, gauges, _ = await self._node_metrics(raise_high_water=True)
        return Answer(200, {}, raw=render(counters or {}, gauges), content_type=CONTENT_TYPE)

    async def _node_metrics(self, raise_high_water: bool, store_optional: bool = False) -> tuple[
            dict[SeriesKey, float] | None, dict[SeriesKey, float], dict[str, Any] | None]:
        """The node's counters and gauges, as ``GET /metrics`` exposes them (no counters with metrics off),
        and the dispatcher's figures of the store (``gateway.internal.stats``, asked once) they were made with.
        ``raise_high_water``: save what this read reported, so that no later one reports less (a scrape).
        ``store_optional``: should the store not answer for the saved totals, the counters are None
        rather than the call failing (``gateway.status``)."""
        procedures = await self._registered(uris.INTERNAL_METRICS_PREFIX)
        answers = await DeferredList([self.call(p) for p in procedures], consumeErrors=True)
        live = []
        for ok, wire in answers:
            if ok:  # a component gone meanwhile counts by what its process saved
                try:
                    live.append(Snapshot.from_wire(wire))
                except ValueError as exc:
                    self.log.error("{err}", err=exc)
        stored = True
        try:
            saved = await KEEPER.saved() if self._metrics_enabled else {}
        except StoreUnavailable as exc:
            if not store_optional:
                raise
            self.log.warn("the status page's totals: {err}", err=exc)
            saved, stored = {}, False
        totals = node_totals(live, saved)
        if raise_high_water and self._metrics_enabled:
            await KEEPER.raise_reported(totals)
        stats = await self._dispatcher_stats()
        gauges = dict(totals.gauges)
        gauges.update(await self._node_gauges(stats))
        counters = (totals.counters if self._metrics_enabled else {}) if stored else None
        return counters, gauges, stats

    # -- the status page (``gateway.status``) ----------------------------------

    async def _offer_status(self, cfg: GatewayConfig) -> None:
        """Register ``gateway.status`` (every bridge: any may answer). The authorizer lets only operators call
        it (``components.auth.policy``), and the procedure checks its caller again (``_may_see_status``); the
        store is opened only when someone calls (the live queries' text)."""
        def texts(keys: Any) -> Any:
            if self._status_store is None:
                self._status_store = StoreThread(lambda: open_store(cfg.store), name="bridge-status")
            return self._status_store.run(_query_texts, list(keys))
        self._operator_role = cfg.status.operator_role
        self._operators: Remembered[int, bool] = Remembered(OPERATOR_REMEMBERED)
        self._live_queries = LiveQueryCounts(self.call, texts)
        self._status_answer: Shared[dict[str, Any]] = Shared(self._status_now, STATUS_SHARED)
        await self.register(checked(STATUS_SIGNATURE, self._status, self.log), uris.STATUS,
                            options=RegisterOptions(invoke="roundrobin", details_arg="details"))

    async def _status(self, details: CallDetails | None = None) -> dict[str, Any]:
        """The node's figures for the status page (``components.metrics.status``): the numbers of
        ``GET /metrics``, the live queries, the event log by class and the node's health. One answer
        serves every operator asking within ``STATUS_SHARED`` seconds (and those asking while it is made)."""
        if not await self._may_see_status(details):
            raise ApplicationError(uris.ERROR_NOT_AUTHORIZED, "gateway.status is for operators only")
        return await self._status_answer.get()

    async def _may_see_status(self, details: CallDetails | None) -> bool:
        """The procedure's own check, beside the authorizer's (which decides first): our own components
        (role backend), or a session the router describes as holding the operator role among its roles
        (``wamp.session.get``; ``components.auth.policy.session_is_operator``, the authorizer's rule).
        A session's roles never change while it lives: each decision is remembered a while."""
        if details is None:
            return False
        if details.caller_authrole == BACKEND_ROLE:
            return True
        if details.caller is None:  # not disclosed: the authorizer discloses callers of gateway.status
            return False
        caller = int(details.caller)
        known = self._operators.get(caller)
        if known is not None:
            return known
        try:
            session = await self.call(uris.META_SESSION_GET, caller)
        except ApplicationError:
            session = None  # gone meanwhile
        allowed = session_is_operator(session, self._operator_role)
        self._operators.put(caller, allowed)
        return allowed

    async def _status_now(self) -> dict[str, Any]:
        """The status page's figures, made now. A store that does not answer (for the saved totals, the
        queries' texts) leaves the counted figures null and says so in the health's problems; the rest
        (sessions, live queries, dispatchers, processes) comes from the router and the dispatchers."""
        counters, gauges, stats = await self._node_metrics(raise_high_water=False, store_optional=True)
        queries = await self._live_queries.counted()
        seen = Seen(METER.identity, time.time(), stats,
                    await self._callees(uris.AUTHENTICATE), queries.queries, queries.live, queries.counted,
                    amqp=self._amqp is not None, store_ok=counters is not None and queries.store_ok)
        return status_payload(counters, gauges, seen, self._metrics_enabled)

    async def _dispatcher_stats(self) -> dict[str, Any] | None:
        """The active dispatcher's figures, answered from memory (``gateway.internal.stats``): the event log's
        size as its last housekeeping round counted it, and a cluster node's view of the cluster; None if no
        dispatcher answered."""
        try:
            stats = await self.call(uris.INTERNAL_STATS)
        except ApplicationError:
            return None
        return stats if isinstance(stats, dict) else None

    async def _node_gauges(self, stats: dict[str, Any] | None) -> dict[SeriesKey, float]:
        """What the bridge reads at the scrape: dispatchers, the event log and persistent subscriptions
        (from ``stats``, the answer of ``gateway.internal.stats``), processes."""
        gauges: dict[SeriesKey, float] = {}
        n = await self._callees(uris.AUTHORIZE)
        active = min(await self._callees(uris.INTERNAL_DISPATCHER_LEADER), n)
        gauges[(DISPATCHERS, labels_text({"state": "active"}))] = active
        gauges[(DISPATCHERS, labels_text({"state": "standby"}))] = n - active
        if isinstance(stats, dict):
            log = stats.get("event_log")
            if isinstance(log, dict) and isinstance(log.get("rows"), int):
                gauges[(EVENT_LOG_ROWS, "{}")] = log["rows"]
            if isinstance(stats.get("persistent_subscriptions"), int):
                gauges[(PERSISTENT_SUBSCRIPTIONS, "{}")] = stats["persistent_subscriptions"]
        for name, labels, value in node_processes():
            gauges[(name, labels_text(labels))] = value
        return gauges

    async def _registered(self, prefix: str) -> list[str]:
        """Every procedure registered under ``prefix`` (the router's meta API). Each registration id is
        looked up once while it lives (its procedure never changes): one call, once the ids are known."""
        listing = await self.call(uris.META_REGISTRATION_LIST)
        ids = [int(i) for i in listing.get("exact", [])]
        known = {i: self._registration_uris[i] for i in ids if i in self._registration_uris}
        for registration in ids:
            if registration in known:
                continue
            try:
                info = await self.call(uris.META_REGISTRATION_GET, registration)
            except ApplicationError:
                continue  # gone meanwhile
            known[registration] = info["uri"]
        self._registration_uris = known  # only the live ones are remembered
        return [uri for i, uri in known.items() if uri.startswith(prefix)]

    # -- health --------------------------------------------------------------

    async def _health(self, body: bytes) -> Answer:
        """200 when an event posted now would be accepted; says how many dispatchers stand ready.

        At its in-flight limit the bridge answers 503 ``overloaded`` at once, without asking the router
        (which is busy with the bridge's work then): readiness, so that a load balancer sends elsewhere.
        """
        in_flight = self._admission.in_flight
        load = {"in_flight": in_flight.count, "max_in_flight": in_flight.limit}
        if self._admission.draining:  # the node is leaving: a load balancer sends elsewhere from now on
            return Answer(503, {"status": "draining", **load, "amqp": self._amqp_state()}, draining().headers)
        if in_flight.full:
            refusal = overloaded(in_flight.limit)
            return Answer(503, {"status": "overloaded", **load, "amqp": self._amqp_state()}, refusal.headers)
        if not self.is_attached():
            return Answer(503, {"status": "unavailable", "router": False, "dispatchers": 0,
                                "active_dispatchers": 0, "standby_dispatchers": 0,
                                "amqp": self._amqp_state(), **load})
        # Every dispatcher registers the authorizer; the one holding leadership is the active one, and
        # registers gateway.internal.publish once it has taken over (components/delivery/leadership.py).
        n = await self._callees(uris.AUTHORIZE)
        active = min(await self._callees(uris.INTERNAL_DISPATCHER_LEADER), n)
        serving = await self._callees(uris.INTERNAL_PUBLISH)
        authenticators = await self._callees(uris.AUTHENTICATE)
        stats = (await self._dispatcher_stats() if serving else None) or {}
        cluster = stats.get("cluster")
        # A cluster node that cannot reach the shared store takes no event (it could neither order nor
        # keep it): not ready, until its dispatcher's next heartbeat reaches the store again.
        ok = serving > 0 and authenticators > 0 and (cluster is None or cluster.get("store") is not False)
        answer = {"status": "ok" if ok else "unavailable", "router": True, "dispatchers": n,
                  "active_dispatchers": active, "standby_dispatchers": n - active, "authenticators": authenticators,
                  "amqp": self._amqp_state(), "definitions": self.registry.version,
                  "event_log": stats.get("event_log"), **load}
        if cluster is not None:
            answer["cluster"] = cluster
        return Answer(200 if ok else 503, answer)

    async def _callees(self, procedure: str) -> int:
        registration = await self.call(uris.META_REGISTRATION_LOOKUP, procedure)
        return 0 if registration is None else len(await self.call(uris.META_REGISTRATION_LIST_CALLEES, registration))

    def _amqp_state(self) -> str:
        return "off" if self._amqp is None else self._amqp.state

    def onLeave(self, details: CloseDetails) -> None:
        if self._amqp is not None:
            self._amqp.stop()
            self._amqp = None
        if self._hand_off is not None:
            self._hand_off.stop()
            self._hand_off = None
        if self._forwarding is not None:
            self._forwarding.stop()
            self._forwarding = None
        if self._port is not None:
            self._port.stopListening()
            self._port = None
        if self._access_log is not None:
            self._access_log.close()
            self._access_log = None
        if self._status_store is not None:
            self._status_store.stop()
            self._status_store = None
        super().onLeave(details)


#: The routes events come in by, and their ``transport`` label.
_INGEST: dict[bytes, Labels] = {b"/events": (("transport", "http"),), b"/events/batch": (("transport", "http"),),
                                b"/RPC2": (("transport", "xmlrpc"),)}
_AMQP: Labels = (("transport", "amqp"),)


def _count_answer(path: bytes, answer: Answer, seconds: float) -> None:
    """Ingest's duration and refusals, by the answer the caller got (in memory: nothing per request but this)."""
    transport = _INGEST.get(path.rstrip(b"/"))
    if transport is None:
        return
    METER.observe(INGEST_DURATION, transport, seconds)
    for reason in refusals(answer):  # webapp_bridge.server.counting: which are refusals of events
        METER.count(EVENTS_REFUSED, (("reason", reason),))


#: ``gateway.status()``: no arguments.
STATUS_SIGNATURE = Signature(uris.STATUS)
#: Seconds one answer of ``gateway.status`` serves every operator asking (the page asks every second).
STATUS_SHARED = 1.0
#: Seconds the procedure's decision about a session (operator or not) is remembered.
OPERATOR_REMEMBERED = 60.0
#: Our own components' WAMP role (the node config's).
BACKEND_ROLE = "backend"
#: Which process answered ``GET /metrics`` and ``/healthz`` (the bridges of a node share the port).
PROCESS_HEADER = "X-Gateway-Process"


def _answered_here(handler: Callable[[bytes], Awaitable[Answer]]) -> Callable[[bytes], Coroutine[Any, Any, Answer]]:
    """``handler``'s answer with ``X-Gateway-Process: <this container>`` (``components-1``)."""
    async def answer(body: bytes) -> Answer:
        got = await handler(body)
        return replace(got, headers=(*got.headers, (PROCESS_HEADER, METER.identity)))
    return answer


def _query_texts(store: Any, keys: list[str]) -> dict[str, str | None]:
    """The canonical query of each query topic key (on a store thread)."""
    return {key: store.query_text(key) for key in keys}


def _query_refused(exc: ApplicationError) -> Answer:
    """A query the gateway would not subscribe with, as the web-app interface says it."""
    message = str(exc.args[0]) if exc.args else exc.error
    if exc.error == uris.ERROR_INVALID_QUERY:
        return Answer(400, {"error": "invalid_query", "message": message,
                            **({"position": exc.kwargs["position"]} if "position" in exc.kwargs else {})})
    if exc.error == uris.ERROR_NOT_AUTHORIZED:
        return error(403, "not_authorized", message)
    if exc.error == uris.ERROR_LIMIT_EXCEEDED:
        # The user holds as many persistent subscriptions as queries.max_persistent_per_user allows:
        # a conflict with the state on the gateway, resolved by deleting one (DELETE /subscriptions/<id>).
        return error(409, "limit_exceeded", message)
    if exc.error == uris.ERROR_UNAVAILABLE:  # the store did not answer in time (store.statement_timeout)
        return error(503, "unavailable", message, headers=RETRY)
    raise exc


def _as(item: list[Any], origin: IdOrigin) -> list[Any]:
    """``item`` sent with its id as ``origin`` (an id the web-app gave stays ``GIVEN``)."""
    return item if item[4] == origin or item[4] == IdOrigin.GIVEN else [*item[:4], int(origin)]


class _Answered(Exception):
    """What every request of a group that called the dispatcher together is answered (a 503)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.get("message"))
        self.answer = answer


def _dispatch_failed(exc: ApplicationError, procedure: str = uris.INTERNAL_PUBLISH) -> Answer:
    if exc.error == ApplicationError.NO_SUCH_PROCEDURE:
        if procedure != uris.INTERNAL_PUBLISH:
            return error(503, "unavailable", f"no component offers {procedure} right now; retry", headers=RETRY)
        return error(503, "unavailable", "no dispatcher is running; the event was not accepted", headers=RETRY)
    if exc.error == ApplicationError.CANCELED and procedure != uris.INTERNAL_PUBLISH:
        return error(503, "unavailable", f"the component serving {procedure} stopped; retry", headers=RETRY)
    if exc.error == ApplicationError.CANCELED:
        return error(503, "unavailable", "the dispatcher stopped while publishing; it may or may not have been "
                     "delivered: retry with the same id", headers=RETRY)
    if exc.error == uris.ERROR_UNAVAILABLE:  # the store did not answer in time (store.statement_timeout)
        return error(503, "unavailable", str(exc.args[0]) if exc.args else "the store did not answer; retry",
                     headers=RETRY)
    raise exc


#: Seconds a stopping process gives its HTTP connections to send what was written to them (``BridgeSite.close``).
CLOSE_BOUND = 1.0
#: This process's bridge sites (one a container; a restarted bridge's old one while it has connections left),
#: closed before its reactor stops (``_close_at_shutdown``).
_sites: weakref.WeakSet[BridgeSite] = weakref.WeakSet()
_trigger: Any = None


def _close_at_shutdown(site: BridgeSite) -> None:
    """Close ``site``'s connections once they have sent what was written to them before the reactor stops:
    Crossbar stops a worker's reactor after its components left, and the reactor's shutdown drops every
    connection at once, unsent bytes and all, then the process exits: a 503 ``draining`` written in the last
    moment never left (the client read "Remote end closed connection without response")."""
    global _trigger
    _sites.add(site)
    if _trigger is None:
        _trigger = _REACTOR.addSystemEventTrigger("before", "shutdown", _close_sites)


def _close_sites() -> Deferred[Any]:
    sites = list(_sites)
    _log.info("the process is stopping: closing the bridge's {n} HTTP connections once their answers are sent "
              "(at most {bound} s)", n=sum(site.connections for site in sites), bound=CLOSE_BOUND)
    return DeferredList([site.close(CLOSE_BOUND) for site in sites])


def _raise_open_file_limit(max_connections: int) -> None:
    """This process's soft open-file limit raised to what ``max_connections`` needs, within the hard limit
    (``overload.open_file_limit``); a warning if that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted, warning = open_file_limit(soft, hard, max_connections)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            _log.info("raised the open-file limit from {soft} to {wanted} for bridge.max_connections ({n})",
                      soft=soft, wanted=wanted, n=max_connections)
        except (OSError, ValueError) as exc:
            warning = warning or f"the open-file limit ({soft}) could not be raised to {wanted}: {exc}"
    if warning is not None:
        _log.warn("{warning}", warning=warning)


def listen_shared(host: str, port: int, factory: Any) -> Port:
    """Listen on host:port with SO_REUSEPORT, so that every bridge process can accept on it.

    Linux only lets sockets of the same user share a port this way.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        listening = cast(Port, reactor.adoptStreamPort(sock.fileno(), family, factory))
    finally:
        sock.close()  # adoptStreamPort keeps its own duplicate of the descriptor
    return listening
