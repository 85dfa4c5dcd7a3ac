"""Which address a connection counts against, and the per-address counts."""

from __future__ import annotations

import pytest

from components.router_guard.addresses import ConnectionCounter, client_address, networks

LOCAL = networks(["127.0.0.1", "::1"])


def test_a_direct_client_is_its_own_address() -> None:
    assert client_address("203.0.113.9", None, LOCAL) == "203.0.113.9"
    assert client_address("203.0.113.9", "198.51.100.1", LOCAL) == "203.0.113.9"  # not a proxy of ours


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", LOCAL) == "198.51.100.1"
    assert client_address("::1", "spoofed, 198.51.100.1", LOCAL) == "198.51.100.1"  # read from the right
    assert client_address("127.0.0.1", "198.51.100.1, 10.0.0.2", networks(["127.0.0.1", "10.0.0.0/8"])) \
        == "198.51.100.1"  # a chain of our proxies
    assert client_address("127.0.0.1", None, LOCAL) == "127.0.0.1"
    assert client_address("127.0.0.1", "not-an-address", LOCAL) == "127.0.0.1"


def test_ipv4_mapped_peers_are_recognised() -> None:
    assert client_address("::ffff:127.0.0.1", "198.51.100.1", LOCAL) == "198.51.100.1"


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        networks(["127.0.0.1", "nope"])


def test_the_counter_refuses_past_the_cap_and_forgets_idle_addresses() -> None:
    counter = ConnectionCounter(2)
    assert counter.admit("a") and counter.admit("a")
    assert not counter.admit("a")
    assert counter.admit("b")
    counter.release("a")
    assert counter.admit("a")
    for _ in range(3):
        counter.release("a")
    counter.release("b")
    assert len(counter) == 0 and counter.open("a") == 0


def test_no_cap() -> None:
    counter = ConnectionCounter(None)
    assert all(counter.admit("a") for _ in range(1000))
