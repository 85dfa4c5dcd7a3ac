"""The Django integration against a real gateway: model changes become events, the template tag logs browsers in.

One node and one Django project (tests/django_project, SQLite in the node's
temp dir) serve the whole module. Django is configured in-process by the
module fixture (``settings.configure``), never through DJANGO_SETTINGS_MODULE,
so no other test sees it.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.harness import API_KEY, GatewayNode, free_port, remove_workdir, temp_workdir
from tests.support.wamp import WampClient

pytestmark = pytest.mark.integration

DEFINITIONS = "django_events.yaml"
MODELS: dict[str, Any] = {
    "shop.Order": {"fields": "__all__"},
    "shop.Customer": {"fields": ["name", "email", "vip"], "operations": ["create"]},
}
ORDER_TOPIC = "gateway.event.shop.order"
CUSTOMER_TOPIC = "gateway.event.shop.customer"


@dataclass
class Project:
    node: GatewayNode
    workdir: Path
    gateway: dict[str, Any]   # settings.GATEWAY as configured

    @property
    def definitions(self) -> Path:
        return self.workdir / DEFINITIONS

    def gateway_with(self, **changes: Any) -> dict[str, Any]:
        """settings.GATEWAY with some keys changed (for override_settings)."""
        return {**self.gateway, **changes}


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from tests.django_project.settings import settings as project_settings

    if settings.configured:
        pytest.skip("Django is configured already in this process; test_django needs to configure it itself")
    workdir = temp_workdir("gwdj-")
    node = GatewayNode(workdir, extra_config={
        # The node loads only the generated file: its catalog version is then that file's alone.
        "events": {"modules": [], "files": [str(workdir / DEFINITIONS)]},
        "proxy": {"retries": 1, "backoff": 0.05, "timeout": 5},
    })
    gateway = {"CONFIG": str(workdir / "gateway.yaml"), "DEFINITIONS": DEFINITIONS, "MODELS": MODELS,
               "USER_ID": "tests.django_project.shop.identity.user_id",
               "ROLES": "tests.django_project.shop.identity.roles"}
    try:
        settings.configure(**project_settings(str(workdir), gateway))
        django.setup()
        call_command("migrate", run_syncdb=True, verbosity=0)
        call_command("gateway_definitions", verbosity=0)   # the node must load the classes before it starts
        node.start()
        yield Project(node, workdir, gateway)
    finally:
        from webapp_bridge.django import client

        client.close()
        connections.close_all()
        node.stop()
        remove_workdir(workdir)


@pytest.fixture
def watcher(project: Project) -> Iterator[WampClient]:
    """An anonymous WAMP client subscribed to both model classes."""
    with project.node.client() as client:
        client.subscribe(ORDER_TOPIC)
        client.subscribe(CUSTOMER_TOPIC)
        yield client


def customer(name: str = "ann", **kw: Any) -> Any:
    from tests.django_project.shop.models import Customer

    return Customer.objects.create(name=name, email=f"{name}@example.com", **kw)


def barrier(client: WampClient, name: str = "barrier") -> Any:
    """Create a customer and return the next event the client gets, which must be that customer's."""
    made = customer(name)
    (envelope,) = client.take(1)
    assert envelope["event"] == "shop.customer" and envelope["data"]["pk"] == made.pk, \
        f"an event arrived before the barrier: {envelope}"
    return envelope


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- model changes as events ------------------------------------------------


def test_create_update_delete_send_one_event_each_with_every_field(project: Project, watcher: WampClient) -> None:
    from tests.django_project.shop.models import Order

    buyer = customer("carl")
    watcher.take(1)  # the customer's own create
    order = Order.objects.create(customer=buyer, total=Decimal("19.9"), quantity=2, ships_on=date(2025, 2, 1),
                                 options={"gift": True, "note": "ribbon"}, lead_time=timedelta(days=1, hours=2))
    order.status = "paid"
    order.save()
    pk = order.pk
    order.delete()

    created, updated, deleted = watcher.take(3)
    assert [e["event"] for e in (created, updated, deleted)] == ["shop.order"] * 3
    assert [e["data"]["operation"] for e in (created, updated, deleted)] == ["create", "update", "delete"]
    assert created["seq"] < updated["seq"] < deleted["seq"]
    data = dict(created["data"])
    assert when(data.pop("placed_at")) == order.placed_at
    assert data == {"pk": pk, "operation": "create", "customer_id": buyer.pk, "number": str(order.number),
                    "status": "new", "total": "19.90", "quantity": 2, "weight": None, "ships_on": "2025-02-01",
                    "options": '{"gift":true,"note":"ribbon"}', "lead_time": "P1DT02H00M00S"}
    assert updated["data"]["status"] == "paid" and updated["data"]["pk"] == pk
    # A delete carries the row as it was: the pk too, though the instance has none any more.
    assert deleted["data"]["pk"] == pk and deleted["data"]["total"] == "19.90"
    assert len({created["id"], updated["id"], deleted["id"]}) == 3


def test_a_rolled_back_transaction_sends_nothing(project: Project, watcher: WampClient) -> None:
    from django.db import transaction

    from tests.django_project.shop.models import Order

    buyer = customer("rolf")
    watcher.take(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        order = Order.objects.create(customer=buyer, total=Decimal("5"))
        order.status = "paid"
        order.save()
        raise RuntimeError("rolled back")
    assert not Order.objects.filter(customer=buyer).exists()
    barrier(watcher)


def test_changes_in_a_transaction_are_sent_once_it_commits_as_they_were(project: Project,
                                                                        watcher: WampClient) -> None:
    from django.db import transaction

    from tests.django_project.shop.models import Order

    buyer = customer("tess")
    watcher.take(1)
    with transaction.atomic():
        order = Order.objects.create(customer=buyer, total=Decimal("1.00"))
        order.status = "paid"
        order.save()
        assert watcher.events.empty(), "nothing is sent before the commit"
        with pytest.raises(RuntimeError), transaction.atomic():   # a savepoint rolled back: its change is not sent
            order.status = "lost"
            order.save()
            raise RuntimeError("savepoint rolled back")
    created, updated = watcher.take(2)
    assert (created["data"]["status"], updated["data"]["status"]) == ("new", "paid")
    barrier(watcher)


def test_only_the_chosen_fields_and_operations_are_sent(project: Project, watcher: WampClient) -> None:
    made = customer("fay", notes="secret notes", vip=True)
    (envelope,) = watcher.take(1)
    assert envelope["data"] == {"pk": made.pk, "operation": "create", "name": "fay", "email": "fay@example.com",
                                "vip": True}
    made.name = "fay2"
    made.save()   # Customer sends creates only
    made.delete()
    barrier(watcher)


def test_an_expression_saved_is_sent_as_its_value(project: Project, watcher: WampClient) -> None:
    from django.db.models import F

    from tests.django_project.shop.models import Order

    order = Order.objects.create(customer=customer("flo"), total=Decimal("3"), quantity=4)
    watcher.take(2)
    order.quantity = F("quantity") + 1
    order.save()
    (envelope,) = watcher.take(1)
    assert envelope["data"]["quantity"] == 5


def test_the_audience_function_chooses_who_receives(project: Project) -> None:
    from django.test import override_settings

    from tests.django_project.shop.models import Order

    models = {**MODELS, "shop.Order": {"fields": "__all__",
                                       "audience": "tests.django_project.shop.identity.customer_audience"}}
    node = project.node
    with override_settings(GATEWAY=project.gateway_with(MODELS=models)), \
            node.client("alice") as alice, node.client("bob") as bob, node.client("sam", ["staff"]) as staff:
        for c in (alice, bob, staff):
            c.subscribe(ORDER_TOPIC)
            c.subscribe(CUSTOMER_TOPIC)
        order = Order.objects.create(customer=customer("alice"), total=Decimal("7"))
        for c in (alice, staff):
            got = c.take(2)
            assert [e["event"] for e in got] == ["shop.customer", "shop.order"]
            assert got[1]["data"]["pk"] == order.pk
        bob.take(1)   # the customer "alice" (public, no audience)
        barrier(bob)  # and not the order


# -- when sending fails ------------------------------------------------------


def config_copy(project: Project, file: str, section: str, **changes: Any) -> str:
    """A copy of the node's gateway.yaml with some keys of one section changed (None: removed)."""
    raw = yaml.safe_load((project.workdir / "gateway.yaml").read_text())
    raw[section].update(changes)
    raw[section] = {k: v for k, v in raw[section].items() if v is not None}
    path = project.workdir / file
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_an_unreachable_gateway_does_not_fail_the_save_and_is_logged(project: Project, caplog: Any) -> None:
    from django.test import override_settings

    from tests.django_project.shop.models import Customer

    dead = config_copy(project, "dead-gateway.yaml", "bridge", port=free_port())   # nothing listens there
    caplog.set_level(logging.ERROR, logger="webapp_bridge.django")
    with override_settings(GATEWAY=project.gateway_with(CONFIG=str(dead))):
        made = customer("dora")
    assert Customer.objects.filter(pk=made.pk, name="dora").exists()
    (record,) = [r for r in caplog.records if r.name == "webapp_bridge.django"]
    assert record.levelno == logging.ERROR and record.event == "shop.customer"  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{32}", record.event_id)  # type: ignore[attr-defined]
    message = record.getMessage()
    assert "shop.customer" in message and record.event_id in message and "unreachable" in message  # type: ignore[attr-defined]


def test_a_refused_event_is_logged_as_definitions_out_of_date(project: Project, caplog: Any) -> None:
    from django.test import override_settings

    from tests.django_project.shop.models import Customer

    models = {**MODELS, "shop.Customer": {"fields": ["name", "email", "vip", "notes"], "operations": ["create"]}}
    caplog.set_level(logging.ERROR, logger="webapp_bridge.django")
    with override_settings(GATEWAY=project.gateway_with(MODELS=models)):
        made = customer("nora", notes="not in the loaded class")
    assert Customer.objects.filter(pk=made.pk).exists()
    (record,) = [r for r in caplog.records if r.name == "webapp_bridge.django"]
    message = record.getMessage()
    assert "refused" in message and "notes" in message and "gateway_definitions" in message


# -- the template tag --------------------------------------------------------


def configs(page: str) -> dict[str, Any]:
    found = re.findall(r'<script id="([^"]+)" type="application/json">(.*?)</script>', page, re.S)
    return {element: json.loads(html.unescape(text)) for element, text in found}


def test_the_tag_gives_an_anonymous_visitor_url_and_realm_only(project: Project) -> None:
    from django.test import Client

    r = Client().get("/live/")
    assert r.status_code == 200
    assert configs(r.content.decode()) == {
        "gateway-config": {"url": project.node.ws_url, "realm": "gateway"},
        "second-config": {"url": project.node.ws_url, "realm": "gateway"},
    }


@pytest.mark.parametrize("credentials", ["ticket", "jwt"])
def test_the_tag_logs_the_user_in_over_wamp(project: Project, credentials: str) -> None:
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    user = User.objects.create_user(f"uma-{credentials}", is_staff=True)
    browser = Client()
    browser.force_login(user)
    with override_settings(GATEWAY=project.gateway_with(CREDENTIALS=credentials)):
        found = configs(browser.get("/live/").content.decode())
    config = found["gateway-config"]
    assert set(config) == {"url", "realm", credentials}
    if credentials == "ticket":   # one-time: each rendering issues its own (a JWT of the same second is the same)
        assert found["second-config"]["ticket"] != config["ticket"]
    with WampClient(config["url"], realm=config["realm"], ticket=config[credentials]) as client:
        me = client.call("gateway.whoami")
    assert me["user"] == user.username and me["roles"] == ["staff"]   # USER_ID and ROLES of the settings


def test_the_tag_without_a_gateway_gives_no_credential_and_logs_why(project: Project, caplog: Any) -> None:
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    browser = Client()
    browser.force_login(User.objects.create_user("ursula"))
    dead = config_copy(project, "dead-gateway.yaml", "bridge", port=free_port())
    caplog.set_level(logging.ERROR, logger="webapp_bridge.django")
    with override_settings(GATEWAY=project.gateway_with(CONFIG=dead)):
        r = browser.get("/live/")
    assert r.status_code == 200   # the page still renders: the browser connects anonymously
    assert configs(r.content.decode())["gateway-config"] == {"url": project.node.ws_url, "realm": "gateway"}
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "webapp_bridge.django"]
    assert len(messages) == 2 and all("no ticket for user ursula" in m for m in messages)


def test_the_tag_with_jwt_but_no_secret_is_a_configuration_error(project: Project) -> None:
    from django.contrib.auth.models import User
    from django.core.exceptions import ImproperlyConfigured
    from django.test import Client, override_settings

    browser = Client(raise_request_exception=True)
    browser.force_login(User.objects.create_user("jon"))
    no_secret = config_copy(project, "no-secret.yaml", "auth", secret=None)
    with override_settings(GATEWAY=project.gateway_with(CONFIG=no_secret, CREDENTIALS="jwt")), \
            pytest.raises(ImproperlyConfigured, match=r"settings.GATEWAY\['CREDENTIALS'\] is 'jwt': .*secret"):
        browser.get("/live/")


def test_the_tag_without_the_request_says_what_to_add(project: Project) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.template import Context, Template

    with pytest.raises(ImproperlyConfigured, match="context_processors.request"):
        Template("{% load gateway %}{% gateway_client_config %}").render(Context({}))


# -- definitions, the command and the check ------------------------------------


def test_the_command_writes_what_the_node_loaded(project: Project) -> None:
    from io import StringIO

    from django.core.management import call_command

    from components.events import Registry
    from components.events.yaml_definitions import parse_definitions

    out = StringIO()
    call_command("gateway_definitions", output="-", stdout=out)
    text = out.getvalue()
    assert text == project.definitions.read_text()
    catalog = project.node.request("GET", "/catalog", headers={"Authorization": f"Bearer {API_KEY}"}).body
    assert catalog["version"] == Registry.load([], [str(project.definitions)]).version
    assert sorted(c["name"] for c in catalog["classes"]) == ["shop.customer", "shop.order"]
    order = yaml.safe_load(text)["events"]["shop.order"]
    assert order["fields"] == {
        "pk": "integer", "operation": {"type": "string", "enum": ["create", "update", "delete"]},
        "customer_id": "integer", "number": "string",
        "status": {"type": "string", "description": "new, paid or shipped"}, "total": "string",
        "quantity": "integer", "weight": {"type": "number", "required": False}, "placed_at": "datetime",
        "ships_on": {"type": "date", "required": False}, "options": "string",
        "lead_time": {"type": "string", "required": False},
    }
    assert order["visibility"] == "public"
    assert [c.name for c in parse_definitions(text, "generated")] == ["shop.customer", "shop.order"]
    call_command("gateway_definitions", check=True, stdout=StringIO())


def test_the_check_flags_a_missing_stale_or_unlisted_definitions_file(project: Project) -> None:
    from io import StringIO

    from django.core.checks import run_checks
    from django.core.management import CommandError, call_command
    from django.test import override_settings

    def ids(**changes: Any) -> list[str]:
        with override_settings(GATEWAY=project.gateway_with(**changes)):
            return [m.id for m in run_checks(tags=["gateway"])]

    assert ids() == []
    stale = project.workdir / "stale.yaml"
    stale.write_text(project.definitions.read_text().replace("shop.customer", "shop.client"))
    assert ids(DEFINITIONS="stale.yaml") == ["webapp_bridge.W003", "webapp_bridge.W004"]
    assert ids(DEFINITIONS="missing.yaml") == ["webapp_bridge.W002", "webapp_bridge.W004"]
    assert ids(DEFINITIONS=None) == ["webapp_bridge.W001"]
    assert ids(CONFIG=str(project.workdir / "nowhere.yaml")) == ["webapp_bridge.E001"]
    bad_proxy = config_copy(project, "bad-proxy.yaml", "proxy", retries=-1)
    assert ids(CONFIG=bad_proxy) == ["webapp_bridge.E002"]
    no_secret = config_copy(project, "no-secret.yaml", "auth", secret=None)
    assert ids(CONFIG=no_secret, CREDENTIALS="jwt") == ["webapp_bridge.E003"]
    with override_settings(GATEWAY=project.gateway_with(DEFINITIONS="stale.yaml")):
        with pytest.raises(CommandError, match="out of date"):
            call_command("gateway_definitions", check=True, stdout=StringIO())
        call_command("gateway_definitions", stdout=StringIO())
        assert ids(DEFINITIONS="stale.yaml") == ["webapp_bridge.W004"]   # written: up to date, still unlisted


# -- configuration mistakes ------------------------------------------------------


@pytest.mark.parametrize("change,message", [
    ({"CONFIG": None}, r"\['CONFIG'\] is missing"),
    ({"CONFIG": 5}, r"\['CONFIG'\] must be a file path"),
    ({"TRANSPORT": "smtp"}, r"\['TRANSPORT'\] is 'smtp'; expected one of: http, xmlrpc, amqp"),
    ({"CREDENTIALS": "password"}, r"\['CREDENTIALS'\] is 'password'; expected 'ticket' or 'jwt'"),
    ({"MODEL": {}}, r"unknown key 'MODEL' \(expected one of: CONFIG, "),
    ({"USER_ID": "tests.nowhere.user_id"}, r"\['USER_ID'\]: cannot import 'tests.nowhere.user_id'"),
    ({"MODELS": []}, r"\['MODELS'\] must be a dict"),
    ({"MODELS": {"shop.Basket": {"fields": []}}}, r"\['MODELS'\]: no model 'shop.Basket'"),
    ({"MODELS": {"Order": {"fields": []}}}, r"'Order' is not a model label; expected 'app_label.ModelName'"),
    ({"MODELS": {"shop.Order": {}}}, r"\['shop.Order'\]: 'fields' is missing: list the fields .* '__all__'"),
    ({"MODELS": {"shop.Order": {"fields": ["stauts"]}}},
     r"\['shop.Order'\]\['fields'\]: shop.Order has no field 'stauts' \(its fields: id, customer, number, status"),
    ({"MODELS": {"shop.Order": {"fields": "status"}}}, r"must be a list of field names or '__all__', not 'status'"),
    ({"MODELS": {"shop.Order": {"fields": ["watchers"]}}}, r"shop.Order.watchers is a many-to-many field"),
    ({"MODELS": {"shop.Order": {"fields": ["receipt"]}}},
     r"shop.Order.receipt is a BinaryField, which has no event field type"),
    ({"MODELS": {"shop.Order": {"fields": ["status", "status"]}}}, r"'status' is listed twice"),
    ({"MODELS": {"shop.Order": {"fields": [], "operations": ["create", "insert"]}}},
     r"\['operations'\]: unknown operation 'insert'; expected one of: create, update, delete"),
    ({"MODELS": {"shop.Order": {"fields": [], "operations": "create"}}},
     r"\['operations'\] must be a non-empty list of: create, update, delete"),
    ({"MODELS": {"shop.Order": {"fields": [], "feilds": []}}}, r"\['shop.Order'\]: unknown key 'feilds'"),
    ({"MODELS": {"shop.Order": {"fields": [], "name": "Orders"}}}, r"\['name'\] is 'Orders'; an event class name"),
    ({"MODELS": {"shop.Order": {"fields": [], "visibility": "staff"}}}, r"\['visibility'\] is 'staff'"),
    ({"MODELS": {"shop.Order": {"fields": [], "retention": "0d"}}}, r"\['retention'\] is '0d'"),
    ({"MODELS": {"shop.Order": {"fields": [], "audience": "tests.nowhere.f"}}}, r"\['audience'\]: cannot import"),
    ({"MODELS": {**MODELS, "shop.Order": {"fields": [], "name": "shop.customer"}}},
     r"shop.Customer and shop.Order both send the event class 'shop.customer'"),
])
def test_mistakes_in_the_setting_are_refused_saying_where(project: Project, change: dict[str, Any],
                                                          message: str) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from webapp_bridge.django import registry

    with override_settings(GATEWAY=project.gateway_with(**change)), \
            pytest.raises(ImproperlyConfigured, match=message):
        registry.events()


def test_a_missing_setting_says_what_to_add(project: Project) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from webapp_bridge.django import registry

    with override_settings(GATEWAY=None), pytest.raises(ImproperlyConfigured, match=r"settings.GATEWAY is missing"):
        registry.events()


def test_publish_model_declares_like_the_setting(project: Project, watcher: WampClient) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from tests.django_project.shop.models import Customer, Order
    from webapp_bridge.django import publish_model, registry

    with override_settings(GATEWAY=project.gateway_with(MODELS={})):
        assert registry.events() == {}
        try:
            publish_model(Customer, fields=["name", "email", "vip"], operations=["create"])
            assert registry.event_for(Customer) is not None and registry.event_for(Order) is None
            made = customer("pam")
            (envelope,) = watcher.take(1)
            assert envelope["data"] == {"pk": made.pk, "operation": "create", "name": "pam",
                                        "email": "pam@example.com", "vip": False}
            with pytest.raises(ImproperlyConfigured, match=r"publish_model\(Customer\): .*declared twice"):
                publish_model(Customer, fields=["name"])
            with pytest.raises(ImproperlyConfigured, match=r"is not a Django model"):
                publish_model(dict, fields=["name"])
        finally:
            registry._resolved.clear()   # the declaration must not outlive the test
            registry.reset()


# -- the example project ---------------------------------------------------------


@pytest.mark.parametrize("command", [["gateway_definitions", "--check"], ["makemigrations", "--check", "--dry-run"]])
def test_the_django_shop_example_is_up_to_date(command: list[str]) -> None:
    """examples/django_shop's committed definitions file and migrations are what its models give."""
    import os
    import subprocess
    import sys

    from tests.support.harness import REPO

    shop = REPO / "examples" / "django_shop"
    database = shop / "db.sqlite3"
    had_database = database.exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DJANGO_"))}
    try:
        r = subprocess.run([sys.executable, "manage.py", *command], cwd=shop, env=env, capture_output=True,
                           text=True, timeout=60)
    finally:
        if not had_database:
            database.unlink(missing_ok=True)   # makemigrations opens the database: an empty file, not ours to keep
    assert r.returncode == 0, r.stdout + r.stderr
