"""The Origin allow-list entries, as autobahn matches them."""

from __future__ import annotations

import pytest
from autobahn.util import wildcards2patterns
from autobahn.websocket.protocol import _is_same_origin, _url_to_origin

from components.router_guard.origins import allow_list, origin_pattern, page_origins


@pytest.mark.parametrize("written,entry", [
    ("https://app.example.com", "https://app.example.com:443"),
    ("http://localhost:3000/", "http://localhost:3000"),
    ("HTTPS://*.Example.com", "https://*.example.com:443"),
    ("http://[::1]:9000", "http://::1:9000"),
    ("http://10.0.0.5:*", "http://10.0.0.5:*"),
    (" * ", "*"),
])
def test_entries_are_normalised(written: str, entry: str) -> None:
    assert origin_pattern(written) == entry


@pytest.mark.parametrize("bad", ["app.example.com", "ftp://x.com", "https://x.com/path", "https://x.com:99999", ""])
def test_bad_entries_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match="expected scheme://host|not between"):
        origin_pattern(bad)


def allowed(origin: str, entries: list[str]) -> bool:
    """What autobahn decides for an Origin header, given our entries (its own code)."""
    return _is_same_origin(_url_to_origin(origin), "http", 8080, wildcards2patterns(entries))


def test_autobahn_allows_exactly_the_listed_pages() -> None:
    entries = allow_list("127.0.0.1", 8080, "wss://gw.example.com/ws",
                         tuple(origin_pattern(o) for o in ["https://shop.example.com", "https://*.apps.example.com"]))
    for origin in ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://gw.example.com",
                   "https://shop.example.com", "https://shop.example.com:443", "https://a.apps.example.com"]:
        assert allowed(origin, entries), origin
    for origin in ["http://127.0.0.1:8081", "http://shop.example.com", "https://shop.example.com.evil.com",
                   "https://evil.com", "https://apps.example.com.evil.com", "http://localhost"]:
        assert not allowed(origin, entries), origin


def test_own_pages_when_listening_on_a_name_or_everywhere() -> None:
    assert page_origins("gw.internal", 8080, None) == ["http://gw.internal:8080"]
    assert page_origins("0.0.0.0", 8080, None) == ["http://*:8080"]
    assert page_origins("10.1.2.3", 80, "ws://10.1.2.3/ws") == ["http://10.1.2.3:80"]


def test_a_star_allows_any_page() -> None:
    assert allow_list("127.0.0.1", 8080, None, ("https://x.com:443", "*")) == ["*"]
