"""Where the router guards hook into Crossbar, autobahn and Twisted: the glue, installed once per router process.

Every hook wraps one method and keeps the original's behaviour for
everything it does not guard (see the package docstring for what each
works around). Only the router's client transport (WAMP over WebSocket,
``crossbar.router.protocol.WampWebSocketServerProtocol``) is guarded for
what clients send; our components' rawsocket link is left as it is.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autobahn.exception import Disconnected
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError, ProtocolError, TransportLost
from autobahn.websocket.protocol import WebSocketProtocol
from crossbar.router.dealer import Dealer
from crossbar.router.protocol import WampWebSocketServerProtocol
from crossbar.router.router import Router
from twisted.internet import reactor
from twisted.logger import Logger

from components import uris
from components.limits import too_deep_at
from components.router_guard.addresses import ConnectionCounter, Network, client_address, networks
from components.router_guard.lazy import LAZY_LOG_ARGUMENTS, lazy
from components.router_guard.messages import (
    HELLO,
    MessageTooDeep,
    Problem,
    answerable,
    check_message,
    decoder_hit_its_depth_limit,
)
from components.router_guard.settings import RECURSION_LIMIT, GuardSettings
from components.router_guard.transport import pending_bytes

log = Logger(namespace="gateway.router_guard")
_REACTOR: Any = reactor  # the installed reactor; its module-level typing is not the reactor's

_OPEN = WebSocketProtocol.STATE_OPEN
_PROTOCOL_ERROR = WebSocketProtocol.CLOSE_STATUS_CODE_PROTOCOL_ERROR
_POLICY_VIOLATION = WebSocketProtocol.CLOSE_STATUS_CODE_POLICY_VIOLATION
_TRY_AGAIN_LATER = WebSocketProtocol.CLOSE_STATUS_CODE_TRY_AGAIN_LATER
_INTERNAL_ERROR = WebSocketProtocol.CLOSE_STATUS_CODE_INTERNAL_ERROR

#: Seconds a client connection that is being closed gets to take what is still buffered for
#: it. autobahn closes the TCP connection after the closing handshake with ``loseConnection``,
#: which waits for that buffer to drain: for ever if the client stopped reading, and meanwhile
#: its WAMP session stays attached (and every EVENT to it raised Disconnected, see _send).
CLOSE_DRAIN_TIMEOUT = 5.0

# Attributes the guards keep on a client protocol instance.
_ADDRESS = "_gateway_counted_address"
_REFUSED = "_gateway_refused"


@dataclass
class _Guards:
    settings: GuardSettings
    trusted: tuple[Network, ...]
    counter: ConnectionCounter


_guards: _Guards | None = None


def install(settings: GuardSettings) -> None:
    """Apply every guard in this process (once; a second call only changes the settings)."""
    global _guards
    first = _guards is None
    counter = ConnectionCounter(settings.max_connections_per_address) if _guards is None else _guards.counter
    counter.cap = settings.max_connections_per_address
    _guards = _Guards(settings, networks(settings.trusted_proxies), counter)
    if not first:
        return
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    _lazy_log_arguments()
    protocol = WampWebSocketServerProtocol
    _wrap(protocol, "onConnect", _on_connect)
    _wrap(protocol, "onOpen", _on_open)
    _wrap(protocol, "onClose", _on_close)
    _wrap(protocol, "connectionLost", _connection_lost)
    _wrap(protocol, "onMessage", _on_message)
    _wrap(protocol, "send", _send)
    _wrap(protocol, "dropConnection", _drop_connection)
    _wrap(Router, "send", _router_send)
    _wrap(Dealer, "processRegister", _process_register)


_originals: dict[tuple[type, str], Callable[..., Any]] = {}


def _lazy_log_arguments() -> None:
    """Debug-level log arguments formatted only when a line is written (``lazy``): the router formatted
    several per routed message (terminal colours, pretty-printing) for lines nobody reads."""
    for name, functions in LAZY_LOG_ARGUMENTS.items():
        module = importlib.import_module(name)
        for function in functions:
            setattr(module, function, lazy(getattr(module, function)))


def _wrap(cls: type, name: str, replacement: Callable[..., Any]) -> None:
    _originals[(cls, name)] = getattr(cls, name)
    setattr(cls, name, replacement)


def _original(cls: type, name: str) -> Callable[..., Any]:
    return _originals[(cls, name)]


def _settings() -> GuardSettings:
    assert _guards is not None
    return _guards.settings


# -- connections per address ---------------------------------------------------------


def _on_connect(self: Any, request: Any) -> Any:
    assert _guards is not None
    peer = getattr(self.transport.getPeer(), "host", None) or str(request.peer)
    address = client_address(peer, request.headers.get("x-forwarded-for"), _guards.trusted)
    if _guards.counter.admit(address):
        setattr(self, _ADDRESS, address)
    else:
        # Refused once the handshake is done, with a close frame the client can read
        # (a refused handshake tells a browser nothing).
        setattr(self, _REFUSED, f"too many connections from {address}: at most "
                                f"{_guards.counter.cap} at once (router.max_connections_per_address)")
    return _original(WampWebSocketServerProtocol, "onConnect")(self, request)


def _on_open(self: Any) -> None:
    refused = getattr(self, _REFUSED, None)
    if refused is not None:
        log.info("closing the connection of {peer}: {reason}", peer=self.peer, reason=refused)
        self._fail_connection(_TRY_AGAIN_LATER, refused)
        return
    _original(WampWebSocketServerProtocol, "onOpen")(self)


def _on_close(self: Any, was_clean: bool, code: int | None, reason: str | None) -> None:
    if getattr(self, _REFUSED, None) is not None and self._session is None:
        return  # never had a WAMP session: nothing to close (autobahn would raise TransportLost)
    _original(WampWebSocketServerProtocol, "onClose")(self, was_clean, code, reason)


def _connection_lost(self: Any, reason: Any) -> None:
    address = self.__dict__.pop(_ADDRESS, None)
    if address is not None and _guards is not None:
        _guards.counter.release(address)
    _original(WampWebSocketServerProtocol, "connectionLost")(self, reason)


# -- what clients send -----------------------------------------------------------------


class _GuardedDecoder:
    """Stands in for a connection's object serializer while one frame is decoded.

    autobahn's ``Serializer.unserialize`` calls it between decoding and
    parsing: JSON is measured before it is parsed; every decoded message is
    checked; a too-deep one fails the frame (``MessageTooDeep``), one with a
    bad value is held back in ``refused`` for the guard to answer.
    """

    def __init__(self, inner: Any, max_depth: int) -> None:
        self._inner = inner
        self._max_depth = max_depth
        self.refused: list[tuple[Any, Problem]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def unserialize(self, payload: bytes) -> list[Any]:
        if self._inner.NAME == "json" and too_deep_at(payload, self._max_depth) is not None:
            raise MessageTooDeep(self._max_depth)
        try:
            raws = self._inner.unserialize(payload)
        except Exception as exc:
            if decoder_hit_its_depth_limit(exc):
                raise MessageTooDeep(self._max_depth) from None
            raise
        kept = []
        for raw in raws:
            problem = check_message(raw, self._max_depth)
            if problem is None:
                kept.append(raw)
            elif problem.too_deep:
                raise MessageTooDeep(self._max_depth)
            else:
                self.refused.append((raw, problem))
        return kept


def _on_message(self: Any, payload: bytes, is_binary: bool) -> None:
    """autobahn's ``WampWebSocketProtocol.onMessage`` with guarded decoding and one-line refusals."""
    if self._session is None:
        return
    serializer = self._serializer
    inner = serializer._serializer
    # Swapped in for this frame only: the object serializer is also the key of every
    # message's serialization cache, shared by all connections (one encoding per event).
    decoder = _GuardedDecoder(inner, _settings().max_message_depth)
    serializer._serializer = decoder
    try:
        messages = serializer.unserialize(payload, is_binary)
    except ProtocolError as exc:
        if isinstance(exc.__context__, MessageTooDeep):
            _close(self, _POLICY_VIOLATION, str(exc.__context__))
        else:
            _close(self, _PROTOCOL_ERROR, f"WAMP Protocol Error ({exc})")
        return
    finally:
        serializer._serializer = inner
    for raw, problem in decoder.refused:
        if not _answer(self, raw, problem):
            return
    for msg in messages:
        session = self._session
        if session is None:
            return
        try:
            session.onMessage(msg)
        except ProtocolError as exc:
            _close(self, _PROTOCOL_ERROR, f"WAMP Protocol Error ({exc})")
            return
        except Exception as exc:
            # Not the client's mistake: keep autobahn's full report.
            self.log.critical("{tb}", tb=traceback.format_exc())
            self._bailout(_INTERNAL_ERROR, reason=f"WAMP Internal Error ({exc})")
            return


def _answer(self: Any, raw: Any, problem: Problem) -> bool:
    """Refuse one message: an ERROR to a request (True: the connection stays), else close it (False)."""
    request = answerable(raw)
    if request is not None and getattr(self._session, "_session_id", None) is not None:
        log.info("refused a request of {peer}: {reason}", peer=self.peer, reason=problem.reason)
        self.send(message.Error(request[0], request[1], uris.ERROR_INVALID_ARGUMENT, args=[problem.reason]))
        return True
    if raw[0] == HELLO:
        self.send(message.Abort(uris.ERROR_INVALID_ARGUMENT, message=problem.reason))
    _close(self, _POLICY_VIOLATION, problem.reason)
    return False


def _close(self: Any, code: int, reason: str) -> None:
    """Close a client's connection for what it sent: one log line, no traceback (the mistake is the client's)."""
    log.info("closing the connection of {peer}: {reason}", peer=self.peer, reason=reason)
    self._bailout(code, reason=reason)


# -- what clients receive ---------------------------------------------------------------


def _send(self: Any, msg: Any) -> None:
    if self.state != _OPEN or self._session is None:
        # Closing already: what autobahn would raise (Disconnected, TransportLost) would only
        # stop the router's loop that is sending, at the expense of other sessions.
        log.debug("not sent to {peer} (closing): {msg}", peer=self.peer, msg=type(msg).__name__)
        return
    waiting = pending_bytes(self.transport)
    limit = _settings().max_client_buffer
    if waiting > limit:
        log.info("disconnecting {peer}: {waiting} bytes wait to be sent to it, more than "
                 "router.max_client_buffer ({limit}); it does not read", peer=self.peer, waiting=waiting, limit=limit)
        self.dropConnection(abort=True)  # frees the buffer now; later sends see a closed connection
        return
    if isinstance(msg, message.Result):
        # Crossbar discloses the callee in every RESULT (dealer.py: "disclose = True  # FIXME").
        msg.callee = msg.callee_authid = msg.callee_authrole = None
    elif isinstance(msg, message.Welcome):
        # The router's host name, process id and the client's own address: not the client's business.
        msg.custom = {k: v for k, v in (msg.custom or {}).items() if not k.startswith("x_cb_")}
        if msg.authextra:
            msg.authextra = {k: v for k, v in msg.authextra.items() if not k.startswith("x_cb_")}
    _original(WampWebSocketServerProtocol, "send")(self, msg)


def _drop_connection(self: Any, abort: bool = False) -> None:
    _original(WampWebSocketServerProtocol, "dropConnection")(self, abort)
    if not abort:
        _REACTOR.callLater(CLOSE_DRAIN_TIMEOUT, _abort_if_lingering, self)


def _abort_if_lingering(self: Any) -> None:
    transport = self.transport
    if transport is not None and getattr(transport, "connected", False) and hasattr(transport, "abortConnection"):
        log.info("aborting the connection of {peer}: closed {timeout} s ago, it has still not taken what was "
                 "sent to it", peer=self.peer, timeout=CLOSE_DRAIN_TIMEOUT)
        transport.abortConnection()


# -- fan-out ----------------------------------------------------------------------------


def _router_send(self: Any, session: Any, msg: Any) -> None:
    if not isinstance(msg, message.Event):
        _original(Router, "send")(self, session, msg)
        return
    try:
        _original(Router, "send")(self, session, msg)
    except (Disconnected, TransportLost) as exc:
        # The broker's loop (_notify_some) would end here and every later subscriber
        # would miss this event: skip the one that is gone instead.
        log.debug("event not delivered to session {session}, whose transport is closed: {exc!r}",
                  session=getattr(session, "_session_id", None), exc=exc)


# -- registering ------------------------------------------------------------------------


def _process_register(self: Any, session: Any, register: Any) -> None:
    """Ask the authorizer first; only an allowed REGISTER reaches Crossbar's own handling."""
    decided = self._router.authorize(session, register.procedure, "register", options=register.marshal_options())

    def on_decided(authorization: Any) -> None:
        allowed = authorization.get("allow", False) if isinstance(authorization, dict) else bool(authorization)
        if allowed:
            # Crossbar authorizes again (static roles and cached answers at once), then registers.
            _original(Dealer, "processRegister")(self, session, register)
            return
        self._router.send(session, message.Error(
            message.Register.MESSAGE_TYPE, register.request, ApplicationError.NOT_AUTHORIZED,
            [f"not authorized to register procedure '{register.procedure}'"]))

    def on_failed(failure: Any) -> None:
        log.failure("the authorizer failed for a REGISTER of {procedure}", failure=failure,
                    procedure=register.procedure)
        self._router.send(session, message.Error(
            message.Register.MESSAGE_TYPE, register.request, ApplicationError.AUTHORIZATION_FAILED,
            [f"could not authorize registering procedure '{register.procedure}'"]))

    decided.addCallbacks(on_decided, on_failed)  # a Twisted Deferred (Router.authorize)
