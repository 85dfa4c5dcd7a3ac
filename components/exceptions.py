"""Errors of the gateway's own code. Imports nothing local, so anything may import it."""


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is wrong; the message names the file, the path and the value."""


class UnknownEvent(GatewayError):
    """An event name that no loaded event class has (the caller's mistake, not ours)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown event class {name!r}")
        self.name = name


class DefinitionError(GatewayError):
    """An event definition module is broken; the message names the module and the class."""


class StoreUnavailable(GatewayError):
    """The store did not answer: a statement ran past ``store.statement_timeout``, or the connection
    was lost or refused. The operation failed and may be retried later (a write may or may not have
    been committed, as after any lost connection); not a fault of the caller's, nor a bug of ours."""


class StoreOnReactorThread(GatewayError):
    """A store statement was about to run on the reactor thread, where it would hold up everything
    else in the process for its round trip (a bug of ours): run it on a store thread
    (``components.store.thread``)."""
