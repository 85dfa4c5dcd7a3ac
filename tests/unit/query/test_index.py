"""The query index: the same answers as trying every query, without trying every query."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.query.ast import And, Compare, Contains, Exists, Expr, In, Not, Or, Query, StartsWith
from components.query.compile import CompiledQuery, compile_query
from components.query.anchors import value_key
from components.query.index import RESOLVE_CACHE_SIZE, QueryIndex
from components.query.interpret import evaluate, evaluate_where
from tests.unit.query.strategies import data_meeting, event_names, json_scalars, literals, queries
from tests.unit.query.test_interpret import SELECTORS


def q(selectors: str, where: Expr | None = None) -> CompiledQuery:
    return compile_query(Query(tuple(selectors.split(", ")), where))


class Spy:
    """A compiled query whose matcher counts its calls."""

    def __init__(self, selectors: str, where: Expr | None = None) -> None:
        self.calls = 0
        self.inner = q(selectors, where)
        self.compiled = CompiledQuery(self.inner.query, self._matches)

    def _matches(self, data: dict[str, Any]) -> bool:
        self.calls += 1
        return self.inner.matches(data)


def eq(field: str, value: Any) -> Compare:
    return Compare("=", tuple(field.split(".")), value)


def test_add_match_remove() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("lobby", q("demo.message", eq("room", "lobby")))
    index.add("all", q("demo.message"))
    index.add("orders", q("demo.order"))
    assert len(index) == 3 and "lobby" in index and set(index.keys()) == {"lobby", "all", "orders"}
    assert index.match("demo.message", {"room": "lobby"}) == {"lobby", "all"}
    assert index.match("demo.message", {"room": "hall"}) == {"all"}
    assert index.match("demo.alert", {"room": "lobby"}) == set()
    index.remove("all")
    assert index.match("demo.message", {"room": "lobby"}) == {"lobby"}
    assert len(index) == 2 and "all" not in index and index.get("all") is None


def test_removing_an_absent_key_is_a_key_error() -> None:
    index: QueryIndex[str] = QueryIndex()
    with pytest.raises(KeyError):
        index.remove("nope")


def test_adding_under_a_present_key_replaces_the_query() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("k", q("demo.message", eq("room", "a")))
    index.add("k", q("demo.message", eq("room", "b")))
    assert len(index) == 1
    assert index.match("demo.message", {"room": "a"}) == set()
    assert index.match("demo.message", {"room": "b"}) == {"k"}
    assert index.stats().buckets == 1


@pytest.mark.parametrize(("pattern", "name", "expected"), SELECTORS)
def test_selectors_as_the_interpreter_reads_them(pattern: str, name: str, expected: bool) -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("k", q(pattern))
    assert index.match(name, {}) == ({"k"} if expected else set())


def test_a_query_matched_through_two_selectors_is_one_result() -> None:
    index: QueryIndex[int] = QueryIndex()
    index.add(1, q("demo.order, demo.*, **", eq("country", "AR")))
    assert index.match("demo.order", {"country": "AR"}) == {1}


def test_only_the_queries_filed_under_the_events_values_are_tried() -> None:
    index: QueryIndex[int] = QueryIndex()
    spies = [Spy("demo.message", eq("room", f"r{i}")) for i in range(1000)]
    for i, spy in enumerate(spies):
        index.add(i, spy.compiled)
    assert index.match("demo.message", {"room": "r5", "text": "hi"}) == {5}
    assert index.match("demo.message", {"room": "r5000"}) == set()
    assert index.match("demo.message", {"room": ["r5"]}) == set()
    assert index.match("demo.message", {}) == set()
    assert [i for i, spy in enumerate(spies) if spy.calls] == [5]
    assert spies[5].calls == 1


def test_numbers_share_keys_across_int_and_float_but_not_with_bools() -> None:
    index: QueryIndex[str] = QueryIndex()
    one, true = Spy("e", eq("a", 1)), Spy("e", eq("a", True))
    index.add("one", one.compiled)
    index.add("true", true.compiled)
    index.add("null", q("e", eq("a", None)))
    assert index.match("e", {"a": 1.0}) == {"one"}
    assert index.match("e", {"a": True}) == {"true"}
    assert index.match("e", {"a": None}) == {"null"}
    assert index.match("e", {"a": 0}) == set()
    assert (one.calls, true.calls) == (1, 1)


def test_the_anchor_is_the_field_with_the_smaller_buckets() -> None:
    # Every query says country = "AR"; filed under it, each AR event would try them all.
    index: QueryIndex[int] = QueryIndex()
    spies = [Spy("demo.order", And((eq("country", "AR"), eq("customer.id", i)))) for i in range(200)]
    for i, spy in enumerate(spies):
        index.add(i, spy.compiled)
    assert index.match("demo.order", {"country": "AR", "customer": {"id": 7}}) == {7}
    assert sum(spy.calls for spy in spies) <= 2


def test_in_and_or_are_anchored_on_every_value() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("in", q("e", And((In(("a",), ("x", "y")), Exists(("b",))))))
    index.add("or", q("e", Or((eq("a", "x"), And((eq("b", 2), Exists(("c",))))))))
    index.add("empty", q("e", In(("a",), ())))
    stats = index.stats()
    assert stats.scanned == 0 and stats.anchored_paths == 2 and stats.buckets == 3
    assert index.match("e", {"a": "y", "b": 0}) == {"in"}
    assert index.match("e", {"a": "x"}) == {"or"}
    assert index.match("e", {"b": 2.0, "c": 1}) == {"or"}
    assert index.match("e", {"b": 2, "c": None}) == set()


def test_conditions_without_an_anchor_are_tried_on_every_event_of_their_classes() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("differs", q("e", Compare("!=", ("n",), 5)))
    index.add("not", q("e", Not(eq("a", "x"))))
    index.add("or", q("e", Or((eq("a", "x"), Exists(("b",))))))
    index.add("bool range", q("e", Compare(">", ("n",), True)))
    assert index.stats().scanned == 4
    assert index.match("e", {"n": 6, "a": "x"}) == {"differs", "or"}
    assert index.match("e", {"b": 0}) == {"not", "or"}


def test_ranges_are_found_by_bisection() -> None:
    index: QueryIndex[str] = QueryIndex()
    above = {i: Spy("e", Compare(">", ("n",), i)) for i in range(100)}
    below = {i: Spy("e", Compare("<=", ("n",), i + 0.5)) for i in range(100)}
    words = {w: Spy("e", Compare(">=", ("w",), w)) for w in ("apple", "kiwi", "pear")}
    for name, spies in (("above", above), ("below", below), ("word", words)):
        for bound, spy in spies.items():
            index.add(f"{name} {bound}", spy.compiled)
    assert index.stats().scanned == 0
    assert index.match("e", {"n": 2}) == {"above 0", "above 1", *(f"below {i}" for i in range(2, 100))}
    assert sum(spy.calls for spy in above.values()) == 3  # 0, 1 and 2, which fails
    assert index.match("e", {"w": "lemon"}) == {"word apple", "word kiwi"}
    assert [spy.calls for spy in words.values()] == [1, 1, 0]
    calls = sum(spy.calls for spies in (above, below, words) for spy in spies.values())
    for data in ({"n": True}, {"n": "2"}, {"n": float("nan")}, {"n": None}, {"n": [1]}, {"w": 3}, {}):
        assert index.match("e", data) == set()
    assert sum(spy.calls for spies in (above, below, words) for spy in spies.values()) == calls
    assert index.match("e", {"n": 2**70}) == {f"above {i}" for i in range(100)}
    assert index.match("e", {"n": -1.5}) == {f"below {i}" for i in range(100)}


def test_prefixes_are_looked_up_by_length() -> None:
    index: QueryIndex[str] = QueryIndex()
    spies = {p: Spy("e", StartsWith(("t",), p)) for p in ("", "!", "!c", "!cmd", "!cmd1", "!cmd2", "x")}
    for prefix, spy in spies.items():
        index.add(prefix, spy.compiled)
    assert index.match("e", {"t": "!cmd1 go"}) == {"", "!", "!c", "!cmd", "!cmd1"}
    assert spies["!cmd2"].calls == 0 and spies["x"].calls == 0
    assert index.match("e", {"t": ""}) == {""}
    assert index.match("e", {"t": ["!cmd1"]}) == set()


def test_contains_looks_up_list_elements_and_tests_substrings() -> None:
    index: QueryIndex[str] = QueryIndex()
    spies = {repr(v): Spy("e", Contains(("tags",), v)) for v in ("urgent", "gift", "ur", 1, True, None)}
    for key, spy in spies.items():
        index.add(key, spy.compiled)
    assert index.match("e", {"tags": ["urgent", 1.0, "urgent"]}) == {"'urgent'", "1"}
    assert [spy.calls for spy in spies.values()] == [1, 0, 0, 1, 0, 0]
    assert index.match("e", {"tags": "urgent!"}) == {"'urgent'", "'ur'"}
    assert spies["'gift'"].calls == 0 and spies["1"].calls == 1
    assert index.match("e", {"tags": [True, None, [1], {"a": 1}]}) == {"True", "None"}
    assert index.match("e", {"tags": 1}) == set()


def test_an_equality_is_preferred_to_a_range_or_a_prefix() -> None:
    index: QueryIndex[int] = QueryIndex()
    spies = [Spy("e", And((Compare(">", ("n",), 0), StartsWith(("t",), ""), eq("id", i)))) for i in range(50)]
    for i, spy in enumerate(spies):
        index.add(i, spy.compiled)
    assert index.match("e", {"n": 1, "t": "x", "id": 3}) == {3}
    assert sum(spy.calls for spy in spies) == 1


def test_removing_everything_leaves_an_empty_tree() -> None:
    index: QueryIndex[int] = QueryIndex()
    compiled = [
        q("demo.order", And((eq("country", "AR"), eq("customer.id", 1)))),
        q("demo.*, demo.**.x", In(("room",), ("a", "b"))),
        q("**", Compare(">", ("n",), 1)),
        q("demo.order"),
        q("demo.**", Or((StartsWith(("t",), "ab"), Compare("<", ("t",), "b")))),
        q("demo.*", Contains(("tags",), "x")),
    ]
    for i, c in enumerate(compiled):
        index.add(i, c)
    assert index.match("demo.a.x", {"room": "a", "n": 2}) == {1, 2}
    for i in range(len(compiled)):
        index.remove(i)
    stats = index.stats()
    assert (stats.queries, stats.nodes, stats.anchored_paths, stats.buckets, stats.scanned) == (0, 1, 0, 0, 0)
    assert index.match("demo.order", {"country": "AR", "customer": {"id": 1}}) == set()


def test_a_remembered_name_sees_queries_added_and_removed_later() -> None:
    index: QueryIndex[str] = QueryIndex()
    assert index.match("demo.order", {}) == set()
    index.add("star", q("demo.*"))
    assert index.match("demo.order", {}) == {"star"}
    index.add("exact", q("demo.order"))
    assert index.match("demo.order", {}) == {"star", "exact"}
    index.remove("star")
    assert index.match("demo.order", {}) == {"exact"}
    index.remove("exact")
    index.add("exact", q("demo.order"))  # a new node where the old one was
    assert index.match("demo.order", {}) == {"exact"}


def test_the_name_cache_is_bounded() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("k", q("**"))
    for i in range(RESOLVE_CACHE_SIZE + 100):
        assert index.match(f"n{i}", {}) == {"k"}
    assert len(index._resolved) <= RESOLVE_CACHE_SIZE


def test_data_that_is_not_an_object_has_no_fields() -> None:
    index: QueryIndex[str] = QueryIndex()
    index.add("missing", q("e", Not(Exists(("a",)))))
    index.add("anchored", q("e", eq("a", 1)))
    assert index.match("e", [1]) == {"missing"}  # type: ignore[arg-type]


Op = tuple[Any, ...]
ops: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 7), queries),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("match"), event_names, st.booleans()),
)


@settings(max_examples=300)
@given(st.lists(ops, max_size=40), st.data())
def test_the_index_agrees_with_trying_every_query(steps: list[Op], draw: st.DataObject) -> None:
    index: QueryIndex[int] = QueryIndex()
    live: dict[int, Query] = {}
    for step in steps:
        if step[0] == "add":
            _, key, query = step
            index.add(key, compile_query(query))
            live[key] = query
        elif step[0] == "remove":
            key = step[1]
            if key in live:
                index.remove(key)
                del live[key]
            else:
                with pytest.raises(KeyError):
                    index.remove(key)
        else:
            _, name, meet = step
            # Often, data holding values the live queries test for, so that some of them match.
            conditions = [query.where for query in live.values() if query.where is not None and meet]
            data = draw.draw(data_meeting(conditions))
            expected = {key for key, query in live.items() if evaluate(query, name, data)}
            assert index.match(name, data) == expected
        assert len(index) == len(live)
    for key in list(live):
        index.remove(key)
    assert index.stats().nodes == 1


@settings(max_examples=500)
@given(json_scalars, literals)
def test_an_equal_value_finds_the_literals_bucket(value: Any, literal: Any) -> None:
    # The index's soundness rests on this: whenever `=` holds, the event's value is looked up
    # under the very key the literal was filed under.
    if evaluate_where(Compare("=", ("a",), literal), {"a": value}):
        assert {value_key(literal): "bucket"}.get(value_key(value)) == "bucket"
