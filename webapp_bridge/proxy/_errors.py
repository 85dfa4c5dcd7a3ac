"""The errors the proxy raises. Imports nothing local, so every module of the proxy may import it."""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    """Base of every error the proxy raises on purpose."""


class ProxyConfigError(ProxyError):
    """The configuration is wrong (gateway.yaml, env, a refused API key, a missing optional package).

    Retrying cannot help: the message names the file, the key and the value
    (never a secret) or the package to install.
    """


class RequestRejected(ProxyError):
    """The gateway (or the same rules applied locally) refused a request; retrying the same request cannot help.

    ``status``, ``code``, ``message`` and ``details`` are what the gateway's
    HTTP API answers: ``details`` lists ``{"path", "message", "type"}`` per
    bad field, paths like ``data.customer.id``.
    """

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details: list[dict[str, Any]] = list(details or [])
        super().__init__(self._text())

    def _text(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.details:
            text += " (" + "; ".join(f"{d.get('path') or '(the data)'}: {d.get('message')}"
                                     for d in self.details) + ")"
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (a Celery task may raise it)
        return (type(self), (self.status, self.code, self.message, self.details))

    def as_dict(self) -> dict[str, Any]:
        """The refusal as the gateway's JSON error body (plus the status)."""
        body: dict[str, Any] = {"error": self.code, "message": self.message, "status": self.status}
        if self.details:
            body["details"] = self.details
        return body


class EventRejected(RequestRejected):
    """An event refused for good: bad data, unknown class, bad id or audience. Never retried.

    Raised whether the proxy found the fault itself (nothing was sent) or the
    gateway did.
    """


class GatewayUnavailable(ProxyError):
    """The gateway (or the broker) could not be reached, or answered "unavailable", on every attempt.

    ``attempts`` were made; ``last_error`` says why the last one failed.
    ``maybe_accepted`` is True when some attempt may have reached the gateway
    (a timeout, a connection lost mid-request): publish again later with the
    same ``ids`` and it is accepted at most once.
    """

    def __init__(self, what: str, attempts: int, last_error: str, maybe_accepted: bool,
                 ids: list[str] | None = None) -> None:
        self.what = what
        self.attempts = attempts
        self.last_error = last_error
        self.maybe_accepted = maybe_accepted
        self.ids: list[str] = list(ids or [])
        super().__init__(self._text())

    def _text(self) -> str:
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        text = f"{self.what} failed after {tries}; the last: {self.last_error}"
        if not self.ids:
            return text
        which = f"id {self.ids[0]!r}" if len(self.ids) == 1 else f"the same {len(self.ids)} ids (.ids)"
        if self.maybe_accepted:
            return text + f". It may have been accepted: retry later with {which} (accepted at most once)"
        return text + f". It was not accepted: retry later with {which}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.attempts, self.last_error, self.maybe_accepted, self.ids))
