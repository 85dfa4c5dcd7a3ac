"""The Django app: ``INSTALLED_APPS = [..., "webapp_bridge.django"]``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class GatewayAppConfig(AppConfig):
    """Checks the GATEWAY setting at start-up, listens to model changes, registers the system checks."""

    name = "webapp_bridge.django"
    label = "webapp_bridge"
    verbose_name = "Events gateway"

    def ready(self) -> None:
        from django.core import checks
        from django.core.signals import setting_changed

        from webapp_bridge.django import checks as gateway_checks
        from webapp_bridge.django import registry, signals

        # A mistake in the setting or a model declaration stops start-up here, not the first save.
        registry.events()
        signals.connect()
        checks.register(gateway_checks.check_gateway, "gateway")
        setting_changed.connect(_setting_changed, dispatch_uid="webapp_bridge.django.setting_changed", weak=False)


def _setting_changed(setting: str, **kwargs: Any) -> None:
    if setting == "GATEWAY":
        from webapp_bridge.django import client, registry

        registry.reset()
        client.close()
