"""USER_ID, ROLES and audience functions, named by dotted path in the test settings."""

from __future__ import annotations

from typing import Any


def user_id(user: Any) -> str:
    return str(user.username)


def roles(user: Any) -> list[str]:
    return ["staff"] if user.is_staff else []


def customer_audience(order: Any, operation: str) -> dict[str, list[str]]:
    """Only the customer's own user (the customer's name is the username, in these tests) and staff."""
    return {"users": [order.customer.name], "roles": ["staff"]}
