"""When kept-alive connections move between the bridges of a node (``webapp_bridge.server.balance``)."""

from __future__ import annotations

from webapp_bridge.server.balance import BUSY, BUSY_SHARE, CALM_SHARE, MARGIN, Load, Move, Window, decide


def test_a_window_averages_its_samples_once_full_then_starts_again() -> None:
    window = Window(3)
    # (requests being handled, the seconds the reactor thread has run and has had work, the clock)
    assert [window.sample(n, ran, busy, at) for n, ran, busy, at in
            ((1, 5.0, 10.0, 100.0), (2, 5.125, 10.25, 100.5), (6, 5.25, 10.5, 101.0))] == [None, None, (3.0, 0.25, 0.5)]
    assert [window.sample(0, ran, busy, at) for ran, busy, at in
            ((5.5, 11.0, 101.5), (5.75, 11.5, 102.0), (6.0, 12.0, 102.5))] == [None, None, (0.0, 0.5, 1.0)], \
        "the earlier samples are not counted; the shares since the last window's end"
    assert [window.sample(0, 0.0, 99.0, at) for at in (103.0, 103.5, 104.0)] == [None, None, (0.0, 0.0, 1.0)], \
        "shares are clamped (a clock that went back, a counter that did)"


def test_with_no_other_bridge_nothing_moves() -> None:
    assert decide(100.0, 1.0, 1.0, 16, {}) is None


def test_a_busy_bridge_gives_a_quarter_of_the_difference_to_the_least_loaded_one() -> None:
    assert decide(16.0, 0.9, 0.9, 16, {"a": Load(0.0, 0)}) == Move("a", 4, give=True)
    assert decide(16.0, 0.9, 0.9, 16, {"a": Load(6.0, 6), "b": Load(2.0, 3)}) == Move("b", 4, give=True)
    assert decide(BUSY, BUSY_SHARE, BUSY_SHARE, 16, {"a": Load(BUSY - MARGIN, 5)}) == Move("a", 1, give=True), \
        "at least one"
    assert decide(60.0, 1.0, 1.0, 8, {"a": Load(0.0, 0)}) == Move("a", 2, give=True), \
        "a quarter of the connections at most: a swamped process's load says nothing of how many to move"


def test_below_busy_or_within_the_margin_nothing_is_given() -> None:
    assert decide(BUSY - 0.5, 1.0, 1.0, 16, {"a": Load(0.0, 0)}) is None, \
        "requests hardly wait: the shortest path stays"
    assert decide(12.0, 1.0, 1.0, 16, {"a": Load(12.0 - MARGIN + 0.5, 9)}) is None, "as loaded as the other"


def test_requests_that_wait_for_the_router_are_not_given_away() -> None:
    # Many subscribers: the router is the bottleneck, requests wait for its acknowledgement while this process
    # idles. A second process parsing would only take CPU from the router.
    assert decide(16.0, BUSY_SHARE - 0.05, BUSY_SHARE - 0.05, 16, {"a": Load(0.0, 0)}) is None


def test_once_one_process_would_keep_up_alone_every_connection_is_called_back_even_idle_ones() -> None:
    assert decide(1.0, 0.2, 0.2, 4, {"a": Load(0.0, 12, 0.1, 0.1), "b": Load(0.5, 3, 0.1, 0.1)}) == \
        Move("a", 12, give=False)
    assert decide(6.0, 0.5, 0.3, 4, {"a": Load(6.0, 2, 0.5, 0.2)}) == Move("a", 2, give=False), \
        "the time run adds up when connections move; the loads, measured while the work is split, do not, nor " \
        "the time each waited for a core behind the other"
    assert decide(1.0, 0.4, 0.4, 4, {"a": Load(1.0, 12, 0.3, 0.3)}) is None, "together they would be too busy for one"
    assert decide(1.0, 0.9, 0.3, 4, {"a": Load(0.0, 12, 0.8, 0.2)}) is None, \
        "this thread waits for a core most of the time (a busy machine): no room to take them"
    assert decide(0.0, 0.0, 0.0, 4, {"a": Load(0.0, 0)}) is None, "nothing there to call"


def test_a_more_loaded_other_bridge_hands_back_a_quarter_of_the_difference_if_there_is_room_here() -> None:
    assert decide(4.0, 0.5, 0.5, 4, {"a": Load(12.0, 12, 0.9, 0.9), "b": Load(5.0, 5, 0.5, 0.5)}) == \
        Move("a", 2, give=False)
    assert decide(6.0, 0.5, 0.5, 4, {"a": Load(6.0 + MARGIN - 0.5, 8, 0.9, 0.9)}) is None
    assert decide(4.0, CALM_SHARE, CALM_SHARE, 4, {"a": Load(12.0, 12, 0.9, 0.9)}) is None, \
        "this process has too much to take them"


def simulate(rate: float, connections: int, parse: float, windows: int = 60) -> list[Move[str] | None]:
    """The moves ``decide`` makes, window after window, for two bridges under a steady paced load of ``rate``
    requests a second spread over ``connections`` kept-alive connections: the active one parses its
    connections' requests (``parse`` seconds each) and publishes every event (0.2 ms); the other parses its
    own and forwards them (0.1 ms more). Each process is a queue (M/M/1): its load is rate times its time in
    the system, its busy share its utilisation (both saturate at the top)."""
    publish, forward = 0.2e-3, 0.1e-3
    there = 0  # connections the other bridge serves
    moves: list[Move[str] | None] = []
    for _ in range(windows):
        share = there / connections
        active, other = rate * ((1 - share) * parse + publish), rate * share * (parse + forward)
        if active < 1 and other < 1:
            load = rate * (1 - share) * (parse + publish) / (1 - active)
            other_load = rate * share * ((parse + forward) / (1 - other) + publish / (1 - active))
        else:  # past what the node can do: every request of a swamped process waits, one per connection
            load, other_load = (connections - there) * min(1.0, active), there * min(1.0, other)
        move = decide(load, min(active, 1.0), min(active, 1.0), connections - there,
                      {"other": Load(other_load, there, min(other, 1.0), min(other, 1.0))})
        moves.append(move)
        if move is not None:
            there = min(connections, there + move.count) if move.give else max(0, there - move.count)
    return moves


def test_under_any_steady_paced_load_the_connections_settle() -> None:
    """No rate makes the connections go back and forth for ever: below what one process carries, past it, and
    past what the node carries (a kept-alive HTTP/1.1 connection has one request at a time in flight)."""
    for connections in (16, 64):
        for parse in (0.3e-3, 0.8e-3, 2e-3):
            for rate in range(100, 4000, 100):
                last = simulate(rate, connections, parse)[-20:]
                assert not any(last), (connections, parse, rate, last)


def test_a_saturated_active_process_splits_its_connections_and_a_quiet_node_keeps_them_together() -> None:
    assert not any(simulate(500, 16, 0.8e-3)), "one process keeps up: nothing moves"
    assert any(move is not None and move.give for move in simulate(1100, 16, 0.8e-3)), "past one process"
