"""``{% load gateway %}``: the browser client's configuration.

``{% gateway_client_config %}`` renders::

    <script id="gateway-config" type="application/json">{"url": "ws://…/ws", "realm": "gateway", "ticket": "…"}</script>

with a fresh ``ticket`` (or ``jwt``, per settings.GATEWAY['CREDENTIALS'])
for the logged-in ``request.user``, none for an anonymous one. A page reads
it with ``JSON.parse(document.getElementById("gateway-config").textContent)``.
``{% gateway_client_config "other-id" %}`` changes the element's id. The
request must be in the template context (the ``request`` context processor,
or ``render(request, ...)``).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.utils.html import json_script

from webapp_bridge.django.client import client_config

register = template.Library()


def gateway_client_config(context: Any, element_id: str = "gateway-config") -> Any:
    """The client configuration as a JSON script element (a ticket is issued at every rendering)."""
    request = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            "{% gateway_client_config %} needs the request in the template context, to know who is logged in: "
            "add 'django.template.context_processors.request' to TEMPLATES[...]['OPTIONS']['context_processors'] "
            "and render the template with render(request, ...)")
    if not isinstance(element_id, str) or not element_id:
        raise ImproperlyConfigured(f"{{% gateway_client_config %}}: the element id must be non-empty text, "
                                   f"not {element_id!r}")
    return json_script(client_config(getattr(request, "user", None)), element_id)


# Registered by a call rather than as a decorator: the Library is untyped, and a decorator would untype the function.
register.simple_tag(gateway_client_config, takes_context=True)
