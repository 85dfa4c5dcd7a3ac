"""The proxy honours ``Retry-After`` on a 503 (``overloaded``) or a 429 (``rate_limited``), within its budget."""

from __future__ import annotations

import io
import logging
import xmlrpc.client
from email.utils import formatdate
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import pytest

from webapp_bridge.proxy import EventRejected, GatewayUnavailable
from webapp_bridge.proxy._answers import check_answer, parse_retry_after
from webapp_bridge.proxy._retry import Backoff, Transient, with_retries
from webapp_bridge.proxy._xmlrpc import _Transport


@pytest.mark.parametrize("value,seconds", [
    ("1", 1.0), (" 120 ", 120.0), ("0", 0.0),
    (formatdate(1_000_030, usegmt=True), 30.0),
    (formatdate(999_000, usegmt=True), 0.0),  # a date past: now
    (None, None), ("", None), ("soon", None), ("-1", None), ("1.5", None), ("Mon, 99 Foo 2026 00:00:00", None),
])
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=1_000_000) == seconds


@pytest.mark.parametrize("status,maybe", [(503, False), (429, False)])
def test_a_503_or_a_429_is_tried_again_carrying_its_retry_after(status: int, maybe: bool) -> None:
    with pytest.raises(Transient) as exc:
        check_answer(status, "overloaded", "at its limit", None, EventRejected, "web", "the gateway", 3.0)
    assert (exc.value.retry_after, exc.value.maybe_accepted) == (3.0, maybe)
    with pytest.raises(Transient) as exc:
        check_answer(status, "x", "y", None, EventRejected, "web", "the gateway")
    assert exc.value.retry_after is None


def test_a_reverse_proxys_502_keeps_its_own_backoff() -> None:
    with pytest.raises(Transient) as exc:
        check_answer(502, "bad_gateway", "", None, EventRejected, "web", "the gateway", 7.0)
    assert exc.value.retry_after is None


def failing(*reasons: Transient) -> Any:
    left = list(reasons)

    def attempt() -> str:
        if left:
            raise left.pop(0)
        return "published"
    return attempt


def test_the_wait_is_what_the_gateway_asked_and_up_to_half_as_long_again() -> None:
    backoff = Backoff(retries=5, first=0, longest=10)
    assert backoff.honouring(2.0, rng=lambda: 0.0) == 2.0
    assert backoff.honouring(2.0, rng=lambda: 0.999) == pytest.approx(2.999)
    assert backoff.honouring(8.0, rng=lambda: 0.999) == 10.0, "never past max_backoff"
    assert backoff.honouring(11.0) is None, "a longer wait than max_backoff: no retry"
    slept: list[float] = []
    result = with_retries(failing(Transient("503 overloaded", False, 1.0), Transient("429 rate_limited", False, 2.0),
                                  Transient("connection refused", False)),
                          backoff, "publishing demo.message", ["id-1"], sleep=slept.append)
    assert result == "published"
    assert 1.0 <= slept[0] < 1.5 and 2.0 <= slept[1] < 3.0, "each Retry-After honoured"
    assert slept[2] == 0.0, "without one, the usual backoff (first=0 here)"


def test_a_gateway_asking_for_longer_than_max_backoff_ends_the_retries_at_once_saying_so() -> None:
    slept: list[float] = []
    with pytest.raises(GatewayUnavailable) as exc:
        with_retries(failing(Transient("the gateway answered 429 rate_limited: slow down", False, 30.0)),
                     Backoff(retries=5, first=0.1, longest=5), "publishing demo.message", ["id-1"], sleep=slept.append)
    assert slept == [] and exc.value.attempts == 1 and not exc.value.maybe_accepted
    assert "asks to retry in 30 s, longer than proxy.max_backoff: 5 s" in str(exc.value)
    assert exc.value.ids == ["id-1"]


def test_the_retry_is_logged_with_the_wait_it_honours(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "webapp_bridge.proxy")
    with_retries(failing(Transient("503 overloaded", False, 1.0)), Backoff(3, 0, 5), "publishing x", ["i"],
                 sleep=lambda s: None)
    (record,) = caplog.records
    assert "attempt 1 of 4 failed (503 overloaded); retrying in 1." in record.getMessage()


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self._file


def test_the_xml_rpc_transport_keeps_the_retry_after_of_a_faults_answer() -> None:
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(503, "overloaded: at its limit"), methodresponse=True).encode()
    transport = _Transport(10, [])
    transport.verbose = False  # type: ignore[attr-defined]  # set by a request, which this test skips
    for header, expected in ((b"Retry-After: 2\r\n", 2.0), (b"", None)):
        raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n%sContent-Length: %d\r\n\r\n%s" % (
            header, len(fault), fault)
        response = HTTPResponse(_Socket(raw))  # type: ignore[arg-type]
        response.begin()
        with pytest.raises(xmlrpc.client.Fault):
            transport.parse_response(response)
        assert transport.retry_after == expected


def test_a_key_with_a_rate_limit_is_read_by_the_proxy_as_by_the_gateway(tmp_path: Path) -> None:
    from components.config import load_config
    from webapp_bridge.proxy import read_settings

    config = tmp_path / "gateway.yaml"
    config.write_text("bridge:\n  api_keys:\n    - {name: shop, key: shop-key-0123, rate: 5, burst: 10}\n")
    assert load_config(config, {}).bridge.api_keys[0].limit == (5, 10)
    settings = read_settings(config, {})
    assert (settings.api_key_name, settings.api_key) == ("shop", "shop-key-0123")
