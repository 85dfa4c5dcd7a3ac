"""The demo event classes in Python; demo.alert is in demo_events.yaml beside this file.

Loaded by the default gateway.yaml. See docs/event-definitions.md for the
rules and the YAML form.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from components.events import Event


class Message(Event, name="demo.message"):
    """A chat message posted to a room."""

    room: str
    text: str
    author: str


class Customer(BaseModel):
    """Who placed an order (a nested part of demo.order, not an event class of its own)."""

    # The event class's extra rule covers nested data anyway; saying it here
    # keeps Customer(...) built in Python just as strict.
    model_config = ConfigDict(extra="forbid")

    id: int
    name: str


class Order(Event, name="demo.order"):
    """A customer placed an order."""

    order_id: int
    amount: float  # a JSON number in and out; a Decimal field would be published as a string
    country: str
    tags: list[str]
    customer: Customer
    coupon: str | None = None

    class Rules:
        visibility = "authenticated"
