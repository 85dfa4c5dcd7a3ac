"""What the gateway's answers mean for the proxy: a result, a refusal, a config error or "try again".

Pure: the HTTP and the XML-RPC transports both turn their answers into
(status, code, message, details) and ask here.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

from webapp_bridge.proxy._errors import ProxyConfigError, ProxyError, RequestRejected
from webapp_bridge.proxy._retry import Transient

#: Statuses that mean "not now": the bridge (503) or a reverse proxy in front of it (502, 504).
RETRY_STATUSES = frozenset({502, 503, 504})
#: "Not so fast": the API key is over its rate (bridge.api_keys' rate); nothing was accepted.
RATE_LIMITED = 429
_BATCH_PATH = re.compile(r"^events\.\d+\.")
_CODE = re.compile(r"[a-z_]+")


def check_answer(status: int, code: str, message: str, details: list[dict[str, Any]] | None,
                 rejected: type[RequestRejected], key_name: str, where: str,
                 retry_after: float | None = None) -> None:
    """Raise what an answer that is not a success means; return for a success (2xx).

    ``retry_after``: the answer's ``Retry-After`` in seconds (``parse_retry_after``), which a
    503 or a 429 passes on to the retries.
    """
    if 200 <= status < 300:
        return
    if status == RATE_LIMITED:
        raise Transient(f"{where} answered {status} {code}: {message}", False, retry_after)
    if status in (401, 403):
        raise ProxyConfigError(
            f"{where} refused the API key named {key_name!r} ({status} {code}: {message}); give the proxy a key "
            "the gateway knows: bridge.api_keys and proxy.api_key_name in gateway.yaml, or env GATEWAY_API_KEY")
    if status in RETRY_STATUSES:
        # The bridge's 503 means nothing was accepted, except when its dispatcher
        # stopped mid-way, which it says; a reverse proxy's 502/504 cannot know.
        maybe = status != 503 or "may or may not" in message
        raise Transient(f"{where} answered {status} {code}: {message}", maybe,
                        retry_after if status == 503 else None)
    if 400 <= status < 500:
        raise rejected(status, code, message, details)
    raise ProxyError(f"{where} failed on the request ({status} {code}: {message})")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait: a number of seconds, or an HTTP date (``now``:
    the time it is measured from, default the clock's). None when there is none or it cannot be read."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a date without a zone is not one
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_http_body(status: int, body: Any) -> tuple[str, str, list[dict[str, Any]] | None]:
    """(code, message, details) of an HTTP error answer, whatever its body (a reverse proxy's HTML too)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("details")
        return body["error"], str(body.get("message", "")), details if isinstance(details, list) else None
    text = body if isinstance(body, str) else ""
    text = " ".join(text.split())[:200]
    return f"http_{status}", text or "no explanation in the answer", None


def from_fault(fault_code: int, fault_string: str) -> tuple[int, str, str]:
    """(status, code, message) of an XML-RPC fault: the bridge's faultCode is the HTTP status, its faultString
    ``"<code>: <sentence>"``. Protocol-level codes (-32700 and the like) come out as status 500."""
    if not 100 <= fault_code < 600:
        return 500, "fault", fault_string
    code, sep, message = fault_string.partition(": ")
    if not sep or not _CODE.fullmatch(code):
        return fault_code, "fault", fault_string
    return fault_code, code, message


def batch_item_details(details: Any) -> list[dict[str, Any]] | None:
    """A batch item's details with paths as a single event's (``events.3.data.x`` → ``data.x``)."""
    if not isinstance(details, list):
        return None
    return [{**d, "path": _BATCH_PATH.sub("", str(d.get("path", "")))} if isinstance(d, dict) else d
            for d in details]
