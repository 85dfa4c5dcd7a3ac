"""The rules every event class has, whichever form defines it: names, visibility, retention."""

from datetime import timedelta
from typing import Any

import pytest

from components.events.rules import Rules, check_name, parse_retention, parse_rules, visible_to
from components.exceptions import DefinitionError


@pytest.mark.parametrize("text,expected", [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
    ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("1s", timedelta(seconds=1)),
])
def test_retention_forms(text: str, expected: timedelta) -> None:
    assert parse_retention(text) == expected


@pytest.mark.parametrize("text", ["24", "h", "1.5h", "2 h", "1w", "-1h", "", 3600, None, "24H"])
def test_malformed_retention_says_the_expected_form(text: object) -> None:
    with pytest.raises(DefinitionError, match=r"must be a whole number and a unit s, m, h or d \(e.g. '90s'"):
        parse_retention(text)


def test_retention_must_be_more_than_zero_and_representable() -> None:
    with pytest.raises(DefinitionError, match="retention '0h' must be more than zero"):
        parse_retention("0h")
    with pytest.raises(DefinitionError, match="is too long"):
        parse_retention("9999999999d")


def test_rules_have_defaults() -> None:
    assert parse_rules({}) == Rules("public", timedelta(hours=24), None, "forbid")


def test_rules_are_checked() -> None:
    assert parse_rules({"visibility": "role:staff", "retention": "1h", "row_filter": "x = 1", "extra": "allow"}) == \
        Rules("role:staff", timedelta(hours=1), "x = 1", "allow")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"visibility": "everyone"}, "visibility 'everyone' must be 'public', 'authenticated' or 'role:<name>'"),
        ({"visibility": "role:"}, "visibility 'role:'"),
        ({"extra": "ignore"}, "extra 'ignore' must be 'forbid' or 'allow'"),
        ({"row_filter": 3}, "row_filter 3 must be a string"),
        ({"visiblity": "public"},
         "unknown rule 'visiblity' \\(expected one of: visibility, retention, row_filter, extra\\)"),
    ]
    for values, message in cases:
        with pytest.raises(DefinitionError, match=message):
            parse_rules(values)


@pytest.mark.parametrize("name", ["orders.created", "a.b.c", "shop_1.order_created"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["single", "Upper.case", "a..b", "a.b-c", "", "1a.b", "a.b.", None])
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(DefinitionError, match="must be dotted lower-case segments"):
        check_name(name)


@pytest.mark.parametrize("visibility,authrole,roles,seen", [
    ("public", "anonymous", (), True),
    ("public", "user", (), True),
    ("authenticated", "anonymous", (), False),
    ("authenticated", "user", (), True),
    ("authenticated", "staff", (), True),
    ("role:staff", "anonymous", (), False),
    ("role:staff", "user", (), False),
    ("role:staff", "staff", (), True),
    ("role:staff", "user", ("staff",), True),
    ("role:staff", "user", ("admin",), False),
    ("role:staff", "backend", (), True),
    ("authenticated", "backend", (), True),
])
def test_who_sees_what(visibility: str, authrole: str, roles: tuple[str, ...], seen: bool) -> None:
    assert visible_to(visibility, authrole, roles) is seen
