"""Calls to the bridge's XML-RPC endpoint (POST /RPC2) with the standard library's xmlrpc.client.

One ServerProxy per thread and process (a ServerProxy holds one keep-alive
connection and is not thread-safe). Faults carry the HTTP status the same
mistake gets from the HTTP API, so both transports fail alike.
"""

from __future__ import annotations

import http.client
import xmlrpc.client
from typing import Any

from webapp_bridge.proxy._answers import check_answer, from_fault, parse_retry_after
from webapp_bridge.proxy._errors import ProxyError, RequestRejected
from webapp_bridge.proxy._connections import Connections
from webapp_bridge.proxy._http import USER_AGENT, _reason
from webapp_bridge.proxy._retry import Transient


def _dump_int(marshaller: xmlrpc.client.Marshaller, value: Any, write: Any) -> None:
    tag = "int" if xmlrpc.client.MININT <= value <= xmlrpc.client.MAXINT else "i8"
    write(f"<value><{tag}>{value:d}</{tag}></value>\n")


class _Marshaller(xmlrpc.client.Marshaller):
    """xmlrpc.client's marshaller, writing ints past 32 bits as ``<i8>`` (which the bridge reads) instead of
    failing: the same event must go over every transport, a millisecond timestamp included."""

    dispatch = {**xmlrpc.client.Marshaller.dispatch, int: _dump_int}


def dumps(params: tuple[Any, ...], method: str) -> bytes:
    """An XML-RPC call, as ``xmlrpc.client.dumps`` writes it but for 64-bit integers."""
    body = _Marshaller("utf-8", True).dumps(params)
    return (f"<?xml version='1.0'?>\n<methodCall>\n<methodName>{xmlrpc.client.escape(method)}</methodName>\n"
            f"{body}</methodCall>\n").encode("utf-8", "xmlcharrefreplace")


class _ServerProxy(xmlrpc.client.ServerProxy):
    """A ServerProxy whose calls are written by ``dumps`` above."""

    def _ServerProxy__request(self, methodname: str, params: tuple[Any, ...]) -> Any:  # overrides the private one
        me: Any = self  # its private attributes, by their mangled names
        response = me._ServerProxy__transport.request(me._ServerProxy__host, me._ServerProxy__handler,
                                                      dumps(params, methodname))
        return response[0] if len(response) == 1 else response


class _Transport(xmlrpc.client.Transport):
    """xmlrpc.client's transport with a timeout on every socket operation, keeping the last answer's
    ``Retry-After`` (the bridge sends one with an ``overloaded`` or ``rate_limited`` fault)."""

    user_agent = USER_AGENT
    #: Seconds the last answer's Retry-After asked for (None: it had none).
    retry_after: float | None = None

    def __init__(self, timeout: float, headers: list[tuple[str, str]]) -> None:
        super().__init__(use_builtin_types=True, headers=headers)
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def parse_response(self, response: http.client.HTTPResponse) -> Any:
        self.retry_after = parse_retry_after(response.getheader("Retry-After"))
        return super().parse_response(response)


class _SafeTransport(xmlrpc.client.SafeTransport):
    user_agent = USER_AGENT
    retry_after: float | None = None

    def __init__(self, timeout: float, headers: list[tuple[str, str]]) -> None:
        super().__init__(use_builtin_types=True, headers=headers)
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def parse_response(self, response: http.client.HTTPResponse) -> Any:
        self.retry_after = parse_retry_after(response.getheader("Retry-After"))
        return super().parse_response(response)


class XmlRpcClient:
    """The bridge's /RPC2 with an API key; ``call`` is one attempt."""

    def __init__(self, base_url: str, api_key: str, key_name: str, timeout: float) -> None:
        self.url = f"{base_url}/RPC2"
        self.key_name = key_name
        self._api_key = api_key
        self._timeout = timeout
        self._https = base_url.startswith("https:")
        self._proxies = Connections(lambda p: p("close")())

    def __repr__(self) -> str:  # never the key
        return f"XmlRpcClient({self.url!r}, key_name={self.key_name!r})"

    def call(self, method: str, *params: Any, rejected: type[RequestRejected] = RequestRejected) -> Any:
        """One attempt at ``method(*params)``; raise what a fault or an HTTP error means (see check_answer)."""
        proxy = self._proxies.get()
        if proxy is None:
            proxy = self._new()
            self._proxies.keep(proxy)
        where = f"the gateway at {self.url}"
        try:
            return getattr(proxy, method)(*params)
        except xmlrpc.client.Fault as fault:
            status, code, message = from_fault(fault.faultCode, fault.faultString)
            transport = getattr(proxy, "_ServerProxy__transport", None)
            check_answer(status, code, message, None, rejected, self.key_name, where,
                         getattr(transport, "retry_after", None))
            raise ProxyError(f"{where} answered an unexpected fault {fault.faultCode}: {fault.faultString}") \
                from None
        except xmlrpc.client.ProtocolError as exc:  # an HTTP-level answer: 401, 413, 503 ...
            retry_after = parse_retry_after(next((v for k, v in (exc.headers or {}).items()
                                                  if str(k).lower() == "retry-after"), None))
            check_answer(exc.errcode, f"http_{exc.errcode}", exc.errmsg, None, rejected, self.key_name, where,
                         retry_after)
            raise ProxyError(f"{where} answered HTTP {exc.errcode} {exc.errmsg}") from None
        except OverflowError as exc:  # past 64 bits: JSON numbers that large are not exact anyway
            raise ProxyError(f"XML-RPC cannot carry this data ({exc}); use proxy.transport http or amqp "
                             "for it") from None
        except xmlrpc.client.ResponseError as exc:
            raise ProxyError(f"{where} sent an answer that is not XML-RPC: {exc}") from None
        except TimeoutError:
            self._drop(proxy)
            raise Transient(f"no answer from {self.url} within {self._timeout:g} s (proxy.timeout)",
                            True) from None
        except ConnectionRefusedError as exc:
            self._drop(proxy)
            raise Transient(f"cannot connect to {self.url}: {_reason(exc)}", False) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop(proxy)
            raise Transient(f"the request to {self.url} failed: {_reason(exc)}", True) from None

    def close(self) -> None:
        self._proxies.close_all()

    def _new(self) -> xmlrpc.client.ServerProxy:
        headers = [("Authorization", f"Bearer {self._api_key}")]
        transport = (_SafeTransport if self._https else _Transport)(self._timeout, headers)
        return _ServerProxy(self.url, transport=transport, allow_none=True, use_builtin_types=True)

    def _drop(self, proxy: xmlrpc.client.ServerProxy) -> None:
        self._proxies.forget(proxy)
        proxy("close")()
