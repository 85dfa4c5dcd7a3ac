"""The bridge's in-flight limit and the API keys' rates (``webapp_bridge.server.overload``), on an injected clock."""

from __future__ import annotations

import xmlrpc.client

import pytest

from components.config import ApiKey, BridgeConfig, parse_config
from components.exceptions import ConfigError
from webapp_bridge.server.overload import (FILES_BESIDES_CONNECTIONS, open_file_limit,
                                           DRAINING_RETRY_AFTER, OVERLOADED_RETRY_AFTER, Admission, InFlight,
                                           KeyLimit, KeyRates, as_fault, drain_answer, drain_report, draining,
                                           overloaded, rate_limited, retry_after)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(limit: int = 5, *keys: KeyLimit, clock: Clock | None = None) -> Admission:
    return Admission(InFlight(limit), KeyRates(keys, clock or Clock()))


# -- in flight ---------------------------------------------------------------------------------------------------


def test_places_are_taken_up_to_the_limit_and_given_back() -> None:
    gauge = InFlight(5)
    assert gauge.take(3) and gauge.take(2) and gauge.full and gauge.room == 0
    assert not gauge.take(1), "full: nothing more"
    gauge.release(2)
    assert not gauge.take(3) and gauge.count == 3, "a request that does not fit takes nothing"
    assert gauge.take(2) and gauge.full


def test_releasing_more_than_was_taken_is_our_bug() -> None:
    gauge = InFlight(2)
    gauge.take(1)
    with pytest.raises(ValueError, match="releasing 2 places of 1"):
        gauge.release(2)
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(0)


def test_who_waits_for_room_is_told_once_on_the_release_that_makes_it() -> None:
    gauge = InFlight(2)
    told: list[str] = []
    gauge.when_room(lambda: told.append("at once"))
    assert told == ["at once"], "room now: now"
    gauge.take(2)
    gauge.when_room(lambda: told.append("a"))
    gauge.when_room(lambda: told.append("b"))
    assert told == ["at once"]
    gauge.release(1)
    assert told == ["at once", "a", "b"]
    gauge.release(1)
    assert told == ["at once", "a", "b"], "each is told once"


# -- rates -------------------------------------------------------------------------------------------------------


def test_a_key_has_its_burst_then_its_rate_and_a_refusal_takes_nothing() -> None:
    clock = Clock()
    rates = KeyRates([KeyLimit("shop", rate=2, burst=3)], clock)
    assert [rates.take("shop", 1) for _ in range(3)] == [0.0] * 3
    assert rates.wait("shop") == pytest.approx(0.5), "empty: a token in 1/rate s"
    assert rates.take("shop", 1) == pytest.approx(0.5)
    clock.now += 0.25
    assert rates.wait("shop") == pytest.approx(0.25), "the refused request took nothing"
    clock.now += 0.25
    assert rates.take("shop", 1) == 0.0
    clock.now += 100
    assert [rates.take("shop", 1) for _ in range(4)][-1] > 0, "refilled to the burst, never past it"


def test_a_batch_takes_one_token_per_event_and_may_leave_the_bucket_in_debt() -> None:
    clock = Clock()
    rates = KeyRates([KeyLimit("shop", rate=10, burst=5)], clock)
    assert rates.take("shop", 25) == 0.0, "a batch larger than the burst gets in when there is a token"
    assert rates.wait("shop") == pytest.approx(2.1), "20 events of debt and one token: 21 / 10 s"
    clock.now += 2.1
    assert rates.take("shop", 1) == 0.0, "the rate held over the batch: 26 events in 2.1 s with a burst of 5"


def test_keys_without_a_rate_are_not_limited_and_keys_do_not_share_a_bucket() -> None:
    rates = KeyRates([KeyLimit("shop", rate=1, burst=1)], Clock())
    assert rates.take("shop", 1) == 0.0 and rates.wait("shop") > 0
    assert rates.wait("blog") == 0.0 and rates.take("blog", 1000) == 0.0


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.0, 0.01, 1.0, 1.0000000001, 1.2, 59.5)] == [1, 1, 1, 1, 2, 60]


# -- admission -----------------------------------------------------------------------------------------------------


def test_a_full_bridge_refuses_with_503_and_retry_after_and_accepts_again_once_there_is_room() -> None:
    gate = admission(5)
    assert gate.at_start("shop") is None and gate.admit("shop", 5) is None
    early, late = gate.at_start("shop"), gate.admit("shop", 1)
    for answer in (early, late):
        assert answer is not None and answer.status == 503
        assert answer.headers == (("Retry-After", str(OVERLOADED_RETRY_AFTER)),)
        assert answer.body["error"] == "overloaded" and "bridge.max_in_flight" in answer.body["message"]
        assert "limit of 5 events" in answer.body["message"]
    gate.release(2)
    refused = gate.admit("shop", 3)
    assert refused is not None and refused.status == 503, "a batch that does not fit is refused whole"
    assert gate.admit("shop", 2) is None and gate.in_flight.full


def test_a_key_over_its_rate_gets_429_naming_the_key_and_its_limit_never_the_key_itself() -> None:
    clock = Clock()
    gate = admission(100, KeyLimit("shop", rate=0.5, burst=2), clock=clock)
    assert gate.admit("shop", 1) is None and gate.admit("shop", 1) is None
    refused = gate.at_start("shop")
    assert refused is not None and refused.status == 429
    assert refused.headers == (("Retry-After", "2"),), "a token in 2 s"
    assert {k: refused.body[k] for k in ("error", "key", "rate", "burst", "retry_after")} == {
        "error": "rate_limited", "key": "shop", "rate": 0.5, "burst": 2, "retry_after": 2}
    assert "'shop' may publish 0.5 events a second, 2 at once" in refused.body["message"]
    assert gate.admit("blog", 1) is None, "another key is not affected"
    gate.release(3)
    assert gate.in_flight.count == 0, "the refusal took no place"
    clock.now += 2
    assert gate.admit("shop", 1) is None


def test_the_rate_is_checked_before_the_room_and_a_refusal_takes_neither() -> None:
    clock = Clock()
    gate = admission(1, KeyLimit("shop", rate=1, burst=1), clock=clock)
    assert gate.admit("blog", 1) is None  # the bridge is full
    refused = gate.admit("shop", 1)
    assert refused is not None and refused.status == 503
    gate.release(1)
    assert gate.admit("shop", 1) is None, "the 503 took no token"
    gate.release(1)
    refused = gate.at_start("shop")
    assert refused is not None and refused.status == 429, "the key's own limit first"


def test_a_refusal_over_xml_rpc_is_a_fault_with_the_status_as_its_code_and_keeps_retry_after() -> None:
    for answer in (overloaded(10), rate_limited(KeyLimit("shop", 1, 1), 0.3)):
        fault = as_fault(answer)
        assert (fault.status, fault.content_type, fault.headers) == (200, "text/xml", answer.headers)
        assert fault.raw is not None
        with pytest.raises(xmlrpc.client.Fault) as exc:
            xmlrpc.client.loads(fault.raw)
        assert exc.value.faultCode == answer.status
        assert exc.value.faultString.startswith(f"{answer.body['error']}: {answer.body['message']}")


# -- configuration ---------------------------------------------------------------------------------------------


def test_keys_have_no_rate_limit_unless_given_and_the_burst_defaults_to_a_seconds_worth() -> None:
    assert ApiKey(name="a", key="k" * 8).limit is None
    assert ApiKey(name="a", key="k" * 8, rate=0.5).limit == (0.5, 1)
    assert ApiKey(name="a", key="k" * 8, rate=200).limit == (200, 200)
    assert ApiKey(name="a", key="k" * 8, rate=200, burst=50).limit == (200, 50)
    cfg = parse_config({"bridge": {"api_keys": [{"name": "shop", "key": "shop-key-123", "rate": 10, "burst": 20},
                                                "bare-key-456"]}})
    assert [k.limit for k in cfg.bridge.api_keys] == [(10, 20), None]


@pytest.mark.parametrize("bridge,message", [
    ({"api_keys": [{"name": "shop", "key": "shop-key-123", "burst": 5}]}, "has a burst but no rate"),
    ({"api_keys": [{"name": "shop", "key": "shop-key-123", "rate": 0}]}, "greater than 0"),
    ({"max_in_flight": 100}, "max_in_flight (100) is below max_batch (1000)"),
    ({"max_in_flight": 0, "max_batch": 1}, "bridge.max_in_flight"),
    ({"max_connections": 1}, "bridge.max_connections"),
])
def test_bad_limits_are_refused_naming_the_setting(bridge: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"bridge": bridge})
    assert message in str(exc.value)
    assert "shop-key-123" not in str(exc.value), "never the key"


def test_the_defaults_hold_a_full_batch() -> None:
    bridge = BridgeConfig()
    assert bridge.max_in_flight >= bridge.max_batch and bridge.max_connections > bridge.max_in_flight
    assert parse_config({"bridge": {"max_in_flight": 5, "max_batch": 5}}).bridge.max_in_flight == 5


# -- draining (the node is leaving) ----------------------------------------------------------------------------------


def assert_draining(answer: object) -> None:
    assert answer == draining()
    assert isinstance(answer, type(draining())) and answer.status == 503
    assert answer.headers == (("Retry-After", str(DRAINING_RETRY_AFTER)),)
    assert answer.body["error"] == "draining" and "another node" in answer.body["message"]
    assert "nothing of this request was accepted" in answer.body["message"]


def test_a_draining_bridge_refuses_events_first_and_lets_what_it_admitted_finish() -> None:
    gate = admission(5, KeyLimit("shop", rate=1, burst=1))
    assert gate.admit("blog", 2, ingest=True) is None, "admitted before the drain"
    gate.draining = True
    # Events are refused before anything else is asked: the node is leaving whatever the load or the rate.
    assert_draining(gate.at_start("blog", ingest=True))
    assert_draining(gate.admit("blog", 1, ingest=True))
    assert gate.admit("shop", 1) is None and gate.admit("shop", 1, ingest=True) == draining(), \
        "a key past its rate is told to go elsewhere, not to wait"
    # Tickets and subscriptions lose nothing: still admitted, under the usual limits.
    assert gate.at_start("blog") is None and gate.admit("blog", 1) is None
    assert gate.in_flight.count == 4, "the refusals took no place"
    gate.release(4)
    assert gate.in_flight.count == 0, "what was admitted before the drain goes on to its answer"


def test_a_draining_refusal_over_xml_rpc_is_a_503_fault_keeping_retry_after() -> None:
    fault = as_fault(draining())
    assert (fault.status, fault.headers, fault.refusals) == (200, (("Retry-After", "1"),), ("draining",))
    with pytest.raises(xmlrpc.client.Fault) as exc:
        xmlrpc.client.loads(fault.encode())
    assert exc.value.faultCode == 503 and exc.value.faultString.startswith("draining: ")


def test_the_drain_answer_says_drained_only_once_every_bridge_reached_holds_nothing() -> None:
    busy = drain_answer([drain_report("components-2", 3, "off"), drain_report("components-1", 0, "drained")], [])
    assert busy.status == 200 and busy.body == {"status": "draining", "in_flight": 3, "bridges": [
        {"process": "components-1", "in_flight": 0, "amqp": "drained"},
        {"process": "components-2", "in_flight": 3, "amqp": "off"}]}
    consuming = drain_answer([drain_report("components-1", 0, "draining")], [])
    assert consuming.body["status"] == "draining", "its RabbitMQ batch is not handed over yet"
    done = drain_answer([drain_report("components-1", 0, "drained"), drain_report("components-2", 0, "off")], [])
    assert (done.body["status"], done.body["in_flight"]) == ("drained", 0) and "failures" not in done.body
    unreached = drain_answer([drain_report("components-1", 0, "off")], [{"bridge": "b", "error": "timed out"}])
    assert unreached.body["status"] == "draining" and unreached.body["failures"] == [{"bridge": "b",
                                                                                       "error": "timed out"}]


@pytest.mark.parametrize("value", [-1, 601, float("nan"), "soon"])
def test_a_bad_drain_timeout_is_refused_naming_the_setting(value: object) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"bridge": {"drain_timeout": value}})
    assert "bridge.drain_timeout" in str(exc.value)


def test_drain_timeout_defaults_to_ten_seconds_and_zero_turns_the_drain_off() -> None:
    assert BridgeConfig().drain_timeout == 10
    assert parse_config({"bridge": {"drain_timeout": 0}}).bridge.drain_timeout == 0
    message = ""
    try:
        parse_config({"bridge": {"drain_timeout": -1}})
    except ConfigError as exc:
        message = str(exc)
    assert "0 (stop at once, no drain) up to 600" in message and "(got -1)" in message


@pytest.mark.parametrize(("soft", "hard", "wanted", "warns"), [
    (1024, 1_048_576, 2000 + FILES_BESIDES_CONNECTIONS, False),  # the usual default: raised within the hard limit
    (65536, 65536, 65536, False),  # enough already: left alone, never lowered
    (1024, 1024, 1024, True),  # the hard limit too low: as much as it allows, and a warning naming both
    (1024, 1500, 1500, True),
    (1024, -1, 2000 + FILES_BESIDES_CONNECTIONS, False),  # unlimited
    (-1, -1, -1, False),
])
def test_the_open_file_limit_is_raised_for_max_connections_within_the_hard_limit(
        soft: int, hard: int, wanted: int, warns: bool) -> None:
    got, warning = open_file_limit(soft, hard, 2000)
    assert got == wanted
    assert (warning is not None) == warns
    if warning is not None:
        assert "bridge.max_connections (2000)" in warning and "LimitNOFILE" in warning and f"({wanted})" in warning
