"""When kept-alive connections move between the bridges of a node (``webapp_bridge.server.balance``)."""

from __future__ import annotations

from webapp_bridge.server.balance import BUSY, BUSY_SHARE, CALM_SHARE, MARGIN, SETTLED, Load, Move, Window, decide


def test_a_window_averages_its_samples_once_full_then_starts_again() -> None:
    window = Window(3)
    # (requests being handled, the seconds the reactor thread has had work, the clock)
    assert [window.sample(n, busy, at) for n, busy, at in ((1, 10.0, 100.0), (2, 10.25, 100.5), (6, 10.5, 101.0))] \
        == [None, None, (3.0, 0.5)]
    assert [window.sample(0, busy, at) for busy, at in ((11.0, 101.5), (11.5, 102.0), (12.0, 102.5))] == \
        [None, None, (0.0, 1.0)], "the earlier samples are not counted; the busy share since the last window's end"


def test_with_no_other_bridge_nothing_moves() -> None:
    assert decide(100.0, 1.0, {}) is None


def test_a_busy_bridge_gives_a_quarter_of_the_difference_to_the_least_loaded_one() -> None:
    assert decide(16.0, 0.9, {"a": Load(0.0, 0)}) == Move("a", 4, give=True)
    assert decide(16.0, 0.9, {"a": Load(6.0, 6), "b": Load(2.0, 3)}) == Move("b", 4, give=True)
    assert decide(BUSY, BUSY_SHARE, {"a": Load(BUSY - MARGIN, 5)}) == Move("a", 1, give=True), "at least one"


def test_below_busy_or_within_the_margin_nothing_is_given() -> None:
    assert decide(BUSY - 0.5, 1.0, {"a": Load(0.0, 0)}) is None, "requests hardly wait: the shortest path stays"
    assert decide(12.0, 1.0, {"a": Load(12.0 - MARGIN + 0.5, 9)}) is None, "as loaded as the other: no back and forth"


def test_requests_that_wait_for_the_router_are_not_given_away() -> None:
    # Many subscribers: the router is the bottleneck, requests wait for its acknowledgement while this process
    # idles. A second process parsing would only take CPU from the router.
    assert decide(16.0, BUSY_SHARE - 0.05, {"a": Load(0.0, 0)}) is None


def test_once_one_process_keeps_up_alone_every_connection_is_called_back_even_idle_ones() -> None:
    assert decide(1.0, 0.9, {"a": Load(0.0, 12), "b": Load(0.5, 3)}) == Move("a", 12, give=False)
    assert decide(SETTLED, 0.5, {"a": Load(0.0, 2)}) == Move("a", 2, give=False)
    assert decide(0.0, 0.0, {"a": Load(0.0, 0)}) is None, "nothing there to call"


def test_a_more_loaded_other_bridge_hands_back_a_quarter_of_the_difference_if_there_is_room_here() -> None:
    assert decide(4.0, 0.3, {"a": Load(12.0, 12), "b": Load(5.0, 5)}) == Move("a", 2, give=False)
    assert decide(6.0, 0.3, {"a": Load(6.0 + MARGIN - 0.5, 8)}) is None
    assert decide(4.0, CALM_SHARE, {"a": Load(12.0, 12)}) is None, "this process runs too much to take them"


def test_moving_one_busy_connection_never_reverses_the_decision() -> None:
    # A connection busy all the time carries a load of 1: after the move the difference is 2 less, which is
    # still within the margin the other way (whatever the busy share, which falls as connections go).
    for load in (8.0, 10.0, 16.0, 30.0):
        for other in (0.0, 4.0, 8.0, 12.0):
            for busy in (0.0, 0.5, 0.9):
                move = decide(load, busy, {"a": Load(other, int(other))})
                if move is None or move.count != 1:
                    continue
                after = (load - 1, other + 1) if move.give else (load + 1, other - 1)
                for busy_after in (0.0, 0.5, 0.9):
                    again = decide(after[0], busy_after, {"a": Load(after[1], int(after[1]))})
                    assert again is None or again.give == move.give, (load, other, busy, move, again)
