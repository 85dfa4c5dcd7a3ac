"""Django integration: model saves and deletes become gateway events; a template tag logs browsers in.

::

    INSTALLED_APPS = [..., "webapp_bridge.django"]
    GATEWAY = {
        "CONFIG": BASE_DIR / "gateway.yaml",
        "DEFINITIONS": "django_events.yaml",            # listed in gateway.yaml's events.files
        "MODELS": {"shop.Order": {"fields": ["status", "total", "customer"]}},
    }

    python manage.py gateway_definitions               # writes the event classes the gateway loads

Every committed ``Order`` save or delete is then published as the event
``shop.order`` with data ``{"pk": 7, "operation": "create" | "update" |
"delete", "status": "paid", "total": "19.90", "customer_id": 3}``; and
``{% load gateway %}{% gateway_client_config %}`` renders the browser
client's configuration (router URL, realm, a fresh ticket or JWT for the
logged-in user; ``client_config(request.user)`` gives the same as a dict,
for a view a page can ask again when its one-time ticket is spent). The settings are described in ``webapp_bridge.django.conf``,
the field types in ``webapp_bridge.django.fields``, when events are sent in
``webapp_bridge.django.signals``; examples/django_shop is a small project
that uses it all.

May import: ``webapp_bridge.proxy`` (it sends through the proxy). Never imports: ``components``,
``webapp_bridge.server``, ``twisted``, ``autobahn``, ``crossbar``: it runs in the web-app's
processes, as the proxy does.
"""

from webapp_bridge.django.client import client_config
from webapp_bridge.django.registry import publish_model

__all__ = ["client_config", "publish_model"]
