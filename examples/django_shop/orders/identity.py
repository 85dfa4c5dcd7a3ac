"""settings.GATEWAY['ROLES']: Django staff users log in to the gateway with the role "staff"."""

from typing import Any


def roles(user: Any) -> list[str]:
    return ["staff"] if user.is_staff else []
