"""The demo event classes, loaded by the default gateway.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from components.events import EventClass


class _Data(BaseModel):
    # Strict: "42" is not an int and unknown fields are refused, so a typo in a
    # web-app's payload shows up as a 400 instead of an event nobody matches.
    model_config = ConfigDict(extra="forbid", strict=True)


class Message(_Data):
    """A chat message posted to a room."""

    room: str
    text: str
    author: str


class Customer(_Data):
    id: int
    name: str


class Order(_Data):
    """A customer placed an order."""

    order_id: int
    amount: float
    country: str
    tags: list[str]
    customer: Customer
    coupon: str | None = None


class Alert(_Data):
    """An operational alert for staff."""

    level: str
    text: str


EVENTS = [
    EventClass("demo.message", Message, visibility="public"),
    EventClass("demo.order", Order, visibility="authenticated"),
    EventClass("demo.alert", Alert, visibility="role:staff"),
]
