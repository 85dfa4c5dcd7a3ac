"""Requests to the bridge's HTTP API over keep-alive connections: one per thread, none shared across a fork."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from webapp_bridge.proxy._answers import check_answer, from_http_body, parse_retry_after
from webapp_bridge.proxy._connections import Connections
from webapp_bridge.proxy._envelope import encode
from webapp_bridge.proxy._errors import RequestRejected
from webapp_bridge.proxy._retry import Transient

USER_AGENT = "events-gateway-proxy/1"
#: Failures of a kept-alive connection the bridge had closed meanwhile (idle, or restarted):
#: the request never reached it, so it is sent again at once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class HttpClient:
    """The bridge at ``base_url`` with an API key; ``request`` is one attempt."""

    def __init__(self, base_url: str, api_key: str, key_name: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.key_name = key_name
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                         "User-Agent": USER_AGENT}
        self._connections = Connections(lambda c: c.close())

    def __repr__(self) -> str:  # never the key
        return f"HttpClient({self.base_url!r}, key_name={self.key_name!r})"

    def request(self, method: str, path: str, body: Any = None,
                rejected: type[RequestRejected] = RequestRejected) -> Any:
        """One attempt: the JSON answer of a 2xx; else raise what the answer means (see check_answer)."""
        status, answer, retry_after = self.exchange(method, path, None if body is None else encode(body))
        code, message, details = from_http_body(status, answer)
        check_answer(status, code, message, details, rejected, self.key_name, f"the gateway at {self.base_url}",
                     retry_after)
        return answer

    def exchange(self, method: str, path: str, payload: bytes | None) -> tuple[int, Any, float | None]:
        """Send one request and read the answer (status, JSON or text, the seconds its ``Retry-After`` asks);
        Transient when the bridge cannot be reached."""
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        target = f"{self.base_url}{path}"
        for fresh in (False, True):
            connection = self._connections.get()
            reused = connection is not None
            if connection is None:
                connection = self._new()
            try:
                if connection.sock is None:
                    connection.connect()
            except TimeoutError:
                self._drop(connection)
                raise Transient(f"no connection to {target} within {self._timeout:g} s (proxy.timeout)",
                                False) from None
            except OSError as exc:
                self._drop(connection)
                raise Transient(f"cannot connect to {target}: {_reason(exc)}", False) from None
            try:
                connection.request(method, self._prefix + path, payload, headers)
                response = connection.getresponse()
                raw = response.read()
            except _STALE as exc:
                self._drop(connection)
                if reused and not fresh:
                    continue
                raise Transient(f"the connection to {target} was lost before the answer ({_reason(exc)})",
                                True) from None
            except TimeoutError:
                self._drop(connection)
                raise Transient(f"no answer from {target} within {self._timeout:g} s (proxy.timeout)",
                                True) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise Transient(f"the request to {target} failed: {_reason(exc)}", True) from None
            if response.will_close:
                self._drop(connection)
            elif not reused:
                self._connections.keep(connection)
            return (response.status, _decoded(raw, response.getheader("Content-Type", "")),
                    parse_retry_after(response.getheader("Retry-After")))
        raise AssertionError("unreachable: the second try returns or raises")

    def close(self) -> None:
        self._connections.close_all()

    def _new(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        self._connections.forget(connection)
        connection.close()


def _decoded(raw: bytes, content_type: str) -> Any:
    if "json" in content_type.lower() or raw[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", errors="replace")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the gateway running and bridge.port right?)"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the gateway closed the connection"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)
