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
