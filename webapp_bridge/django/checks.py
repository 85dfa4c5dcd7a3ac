"""System checks (``manage.py check``, and every ``runserver``): is the gateway set up for these models?

=====================  ==================================================================
webapp_bridge.E001     settings.GATEWAY['CONFIG'] names no file
webapp_bridge.E002     the proxy cannot use that gateway.yaml (the error says which key is wrong)
webapp_bridge.E003     CREDENTIALS is "jwt" but gateway.yaml has no auth.secret (nor env GATEWAY_SECRET)
webapp_bridge.W001     models send events but DEFINITIONS is not set: nothing says where the
                       gateway finds their classes
webapp_bridge.W002     the DEFINITIONS file does not exist
webapp_bridge.W003     the DEFINITIONS file is out of date with the models and settings
webapp_bridge.W004     gateway.yaml's events.files does not list the DEFINITIONS file
=====================  ==================================================================

Until they are fixed, the gateway refuses these models' events (each
refusal is logged when it happens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core import checks

from webapp_bridge.django.definitions import render
from webapp_bridge.django.registry import events, gateway_settings
from webapp_bridge.proxy import ProxyConfigError, ProxySettings, read_settings

FIX = "Run `python manage.py gateway_definitions`."


def check_gateway(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The checks in this module's table; ImproperlyConfigured settings raise as they do at start-up."""
    conf = gateway_settings()
    found: list[checks.CheckMessage] = []
    proxy: ProxySettings | None = None
    if not conf.config.is_file():
        found.append(checks.Error(f"settings.GATEWAY['CONFIG'] names no file: {str(conf.config)!r}",
                                  hint="Point it at the gateway.yaml the gateway runs with.",
                                  id="webapp_bridge.E001"))
    else:
        try:
            proxy = read_settings(conf.config, transport=conf.transport)
        except ProxyConfigError as exc:
            found.append(checks.Error(f"settings.GATEWAY['CONFIG']: {exc}", id="webapp_bridge.E002"))
    if proxy is not None and conf.credentials == "jwt" and proxy.jwt_secret is None:
        found.append(checks.Error(
            f"settings.GATEWAY['CREDENTIALS'] is 'jwt', but {str(conf.config)!r} sets no auth.secret to sign "
            "JWTs with", hint="Set auth.secret (or env GATEWAY_SECRET), or use CREDENTIALS 'ticket'.",
            id="webapp_bridge.E003"))
    declared = list(events().values())
    if not declared:
        return found
    if conf.definitions is None:
        found.append(checks.Warning(
            f"{len(declared)} model(s) send events, but settings.GATEWAY['DEFINITIONS'] is not set, so nothing "
            "writes or checks the event classes the gateway needs for them",
            hint="Set DEFINITIONS to a file name (relative to gateway.yaml), run "
                 "`python manage.py gateway_definitions` and list the file in gateway.yaml's events.files.",
            id="webapp_bridge.W001"))
        return found
    path = conf.definitions
    if not path.is_file():
        found.append(checks.Warning(f"the event definitions file {str(path)!r} does not exist: the gateway "
                                    "refuses the models' events", hint=FIX, id="webapp_bridge.W002"))
    elif path.read_text() != render(declared):
        found.append(checks.Warning(f"the event definitions file {str(path)!r} is out of date with the models "
                                    "and settings: the gateway may refuse their events",
                                    hint=FIX + " The gateway reloads the file when it changes.",
                                    id="webapp_bridge.W003"))
    if proxy is not None and path.resolve() not in {Path(f).resolve() for f in proxy.event_files}:
        found.append(checks.Warning(f"{str(conf.config)!r} does not list {str(path)!r} in events.files: the "
                                    "gateway does not load the models' event classes",
                                    hint=f"Add it to events.files in {conf.config.name}.", id="webapp_bridge.W004"))
    return found
