"""Query matching benchmark: the index with 1k, 10k and 100k live queries.

Run by hand, never from the test suite::

    .venv/bin/python bench/query_match.py [--sizes 1000,10000,100000] [--events 5000] [--seed 1]

For each size N it writes N distinct query texts over the demo classes
(demo.message, demo.order; their canonical forms are distinct, so N topics),
mostly equality on one or two fields, some ranges beside an equality, some
wildcard selectors, and a fixed 35 (``FIXED``: ranges, prefixes and
``contains`` alone, and 10 that the index cannot anchor) -- then parses and checks them
against the demo registry, compiles them and adds them to a ``QueryIndex``.
``--scanned-share`` makes that fraction of the N unanchorable too.

It prints, per N:

* *median / p99 µs*: one ``index.match`` call, over random events whose
  values are drawn from the same ranges as the queries' literals, so that a
  few queries match each event (*matched/event*); the sizes are timed in
  interleaved rounds;
* *growth*: median over the median at the smallest N (the target is at most
  3x from 1k to 100k);
* *brute µs*: the median of trying every query in a loop (selectors by a
  dict lookup, then the compiled matcher), for N up to 10k;
* *subscribe µs*: per query, ``parse`` + ``check``, then ``compile_query``,
  then ``index.add``;
* *scanned*: how many queries the index tries on every event of their class;
* *B/query*: memory (tracemalloc) held per live query by the compiled
  matcher and the index, and separately by the checked query's tree.

A second table compares the compiled matcher with nested closures (a
minimal closure compiler below, enough for the shapes used here) on three
typical conditions: ns per call, µs to build, bytes per query.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Run as a script, sys.path[0] is bench/: make components and examples importable.
    sys.path.insert(0, str(REPO))

from components.events import Registry  # noqa: E402
from components.query import And, Compare, Expr, Query, check, parse, to_text  # noqa: E402
from components.query.compile import CompiledQuery, compile_query  # noqa: E402
from components.query.index import QueryIndex  # noqa: E402
from components.query.interpret import selector_matches  # noqa: E402

COUNTRIES = ("AR", "UY", "BR", "CL", "PY", "BO", "PE", "MX")
#: Queries in every index whatever N: ranges, prefixes and ``contains`` alone
#: (which the index finds by bisection and by lookup), then 10 conditions it
#: cannot anchor and must try on every event of their class.
FIXED = (
    *(f"demo.order where amount > {990 + i}" for i in range(8)),
    *(f"demo.order where amount < {i / 100}" for i in range(1, 4)),
    *(f"demo.order where coupon exists and amount >= {995 + i}" for i in range(3)),
    *(f'demo.message where text startswith "!cmd{i}"' for i in range(6)),
    *(f'demo.order where tags contains "vip{i}"' for i in range(5)),
    *(f"demo.order where not (country exists) or order_id = {-i - 1}" for i in range(5)),
    *(f'demo.message where author != "u{i}" and not (text exists)' for i in range(5)),
)


@dataclass(frozen=True)
class Space:
    """How many distinct values each field's literals (and the events' values) are drawn from, for N queries."""

    rooms: int
    authors: int
    customers: int
    orders: int

    @staticmethod
    def for_size(n: int) -> Space:
        return Space(rooms=max(10, n * 2 // 5), authors=20, customers=max(10, n * 2 // 5), orders=max(10, n // 10))


def query_texts(n: int, rng: random.Random, scanned_share: float = 0.0) -> Iterator[str]:
    """Query texts for an index of N: first the FIXED few, then random ones, endlessly.

    With ``scanned_share``, that fraction of the random ones cannot be
    anchored, and is never true: the cost of trying them, without matches.
    """
    space = Space.for_size(n)
    unanchored = 0
    yield from FIXED
    while True:
        if scanned_share and rng.random() < scanned_share:
            unanchored += 1
            yield (f'demo.message where author != "never{unanchored}" and not (text exists)' if unanchored % 2
                   else f"demo.order where not (country exists) or order_id = {-unanchored}")
            continue
        kind = rng.random()
        room, author = f"r{rng.randrange(space.rooms)}", f"u{rng.randrange(space.authors)}"
        customer, country = rng.randrange(space.customers), rng.choice(COUNTRIES)
        if kind < 0.35:
            yield f'demo.message where room = "{room}"'
        elif kind < 0.50:
            yield f'demo.message where room = "{room}" and author = "{author}"'
        elif kind < 0.70:
            yield f"demo.order where customer.id = {customer}"
        elif kind < 0.80:
            yield f'demo.order where customer.id = {customer} and country = "{country}"'
        elif kind < 0.90:
            yield f"demo.order where customer.id = {customer} and amount > {rng.randrange(0, 1000, 50)}"
        elif kind < 0.94:
            ids = sorted(rng.sample(range(space.orders), 3))
            yield f"demo.order where order_id in [{', '.join(map(str, ids))}]"
        elif kind < 0.97:
            yield f'demo.* where customer.id = {customer} and tags contains "gift"'
        elif kind < 0.99:
            yield f'demo.** where room = "{room}" and author != "{author}"'
        else:
            yield f"*.order where order_id = {rng.randrange(space.orders)}"


def random_event(space: Space, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """An event whose values fall in the queries' ranges about half the time."""
    if rng.random() < 0.5:
        return "demo.message", {
            "room": f"r{rng.randrange(space.rooms * 2)}",
            "text": rng.choice(("hello", "!cmd3 go", "hi there")),
            "author": f"u{rng.randrange(space.authors)}",
        }
    data: dict[str, Any] = {
        "order_id": rng.randrange(space.orders * 2),
        "amount": round(rng.uniform(0, 1000), 2),
        "country": rng.choice(COUNTRIES),
        "tags": rng.sample(("gift", "urgent", "fragile", "bulk"), rng.randrange(3)),
        "customer": {"id": rng.randrange(space.customers * 2), "name": "Ana"},
    }
    if rng.random() < 0.2:
        data["coupon"] = "SAVE10"
    return "demo.order", data


@dataclass
class Live:
    keys: list[str]
    queries: list[Query]
    compiled: list[CompiledQuery]
    index: QueryIndex[str]
    check_us: float
    compile_us: float
    add_us: float


def build(n: int, registry: Registry, rng: random.Random, scanned_share: float) -> Live:
    checked_by_key: dict[str, Query] = {}
    spent, parsed = 0.0, 0
    texts = query_texts(n, rng, scanned_share)
    while len(checked_by_key) < n:
        text = next(texts)
        started = time.perf_counter()
        checked = check(parse(text), registry)
        spent += time.perf_counter() - started
        parsed += 1
        checked_by_key.setdefault(checked.topic_key, checked.query)
    check_us = spent / parsed * 1e6
    keys, queries = list(checked_by_key), list(checked_by_key.values())
    started = time.perf_counter()
    compiled = [compile_query(query) for query in queries]
    compile_us = (time.perf_counter() - started) / n * 1e6
    index: QueryIndex[str] = QueryIndex()
    started = time.perf_counter()
    for key, c in zip(keys, compiled):
        index.add(key, c)
    add_us = (time.perf_counter() - started) / n * 1e6
    return Live(keys, queries, compiled, index, check_us, compile_us, add_us)


def memory_per_query(live: Live, registry: Registry) -> tuple[float, float]:
    """Bytes per query: (compiled matcher + index entry, checked query tree)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    compiled = [compile_query(query) for query in live.queries]
    index: QueryIndex[str] = QueryIndex()
    for key, c in zip(live.keys, compiled):
        index.add(key, c)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del index, compiled
    # The trees alone: parse and check the same texts again, keeping only the canonical trees.
    texts = [to_text(query) for query in live.queries[:10_000]]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    trees = [check(parse(text), registry).query for text in texts]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    tree_bytes = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / len(trees)
    return held / len(live.keys), tree_bytes


def time_matches(index: QueryIndex[str], events: list[tuple[str, dict[str, Any]]]) -> tuple[list[float], float]:
    for name, data in events[:500]:  # warm the name cache and the branch predictors
        index.match(name, data)
    times, matched = [], 0
    clock = time.perf_counter_ns
    for name, data in events:
        started = clock()
        result = index.match(name, data)
        times.append((clock() - started) / 1000)
        matched += len(result)
    return times, matched / len(events)


def time_brute_force(live: Live, events: list[tuple[str, dict[str, Any]]]) -> float:
    selected: dict[tuple[tuple[str, ...], str], bool] = {}
    names = {name for name, _ in events}
    for c in live.compiled:
        for name in names:
            selected[c.selectors, name] = any(selector_matches(p, name) for p in c.selectors)
    entries = [(key, c.selectors, c.matches) for key, c in zip(live.keys, live.compiled)]
    times = []
    clock = time.perf_counter_ns
    for name, data in events:
        started = clock()
        _ = [key for key, selectors, matches in entries if selected[selectors, name] and matches(data)]
        times.append((clock() - started) / 1000)
    return statistics.median(times)


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


# -- closures, for comparison ---------------------------------------------------

_MISSING = object()


def closure_matcher(expr: Expr) -> Callable[[dict[str, Any]], bool]:
    """Nested closures, one per tree node: enough of the language for the comparison below."""
    if isinstance(expr, Compare):
        path, value = expr.path, expr.value

        def get(data: dict[str, Any]) -> Any:
            for segment in path:
                if not isinstance(data, dict):
                    return _MISSING
                data = data.get(segment, _MISSING)
            return data

        if expr.op == "=" and isinstance(value, str):
            return lambda data: get(data) == value
        if expr.op == "=":
            def equal(data: dict[str, Any]) -> bool:
                v = get(data)
                return bool(v == value and v is not True and v is not False)
            return equal
        if expr.op == ">" and isinstance(value, (int, float)):
            def greater(data: dict[str, Any]) -> bool:
                v = get(data)
                return v.__class__ in (int, float) and bool(v > value)
            return greater
    if isinstance(expr, And):
        operands = [closure_matcher(o) for o in expr.operands]
        if len(operands) == 2:
            first, second = operands
            return lambda data: first(data) and second(data)
        return lambda data: all(o(data) for o in operands)
    raise NotImplementedError(expr)


def compare_closures(registry: Registry) -> list[tuple[str, float, float, float, float, float, float]]:
    import timeit

    shapes: dict[str, tuple[str, dict[str, Any]]] = {
        'room = "r5"': ('demo.message where room = "r{i}"', {"room": "r5"}),
        'customer.id = 42 and country = "AR"': (
            'demo.order where customer.id = {i} and country = "AR"', {"customer": {"id": 5}, "country": "AR"}),
        "customer.id = 42 and amount > 100": (
            "demo.order where customer.id = {i} and amount > 100", {"customer": {"id": 5}, "amount": 150.0}),
    }
    rows = []
    for label, (template, data) in shapes.items():
        queries = [check(parse(template.format(i=i)), registry).query for i in range(5000)]
        generated = compile_query(queries[5]).matches
        assert queries[5].where is not None
        closure = closure_matcher(queries[5].where)
        assert generated(data) and closure(data)
        per_call = []
        for fn in (generated, closure):
            per_call.append(min(timeit.repeat(lambda: fn(data), number=200_000, repeat=5)) / 200_000 * 1e9)
        builds, sizes = [], []
        for make in (compile_query, _closure_query):
            started = time.perf_counter()
            for query in queries:
                make(query)
            builds.append((time.perf_counter() - started) / len(queries) * 1e6)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            kept = [make(query) for query in queries]
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            sizes.append(sum(s.size_diff for s in after.compare_to(before, "filename")) / len(kept))
            del kept
        rows.append((label, per_call[0], per_call[1], builds[0], builds[1], sizes[0], sizes[1]))
    return rows


def _closure_query(query: Query) -> CompiledQuery:
    assert query.where is not None
    return CompiledQuery(query, closure_matcher(query.where))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=5000, help="events per size and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--brute-max", type=int, default=10_000, help="largest N also timed by brute force")
    parser.add_argument("--scanned-share", type=float, default=0.0,
                        help="fraction of the queries the index cannot anchor (beyond the fixed 10)")
    parser.add_argument("--no-closures", action="store_true", help="skip the generated-vs-closures table")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    registry = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)

    print(f"Python {platform.python_version()}, {platform.machine()}, {args.rounds} rounds of {args.events} events "
          f"per size; load average at start {os.getloadavg()[0]:.2f}")
    header = ("| queries | median µs | p99 µs | growth vs first | matched/event | brute-force median µs "
              "| parse+check µs | compile µs | add µs | B/query (compiled + index) | B/query (tree) | scanned |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    # Build every size first, then time them in interleaved rounds: whatever
    # else the machine does slows all sizes alike, and the growth stays fair.
    built = {}
    for n in sizes:
        rng = random.Random(args.seed)
        live = build(n, registry, rng, args.scanned_share)
        space = Space.for_size(n)
        built[n] = live, [random_event(space, rng) for _ in range(args.events)]
    times: dict[int, list[float]] = {n: [] for n in sizes}
    matched: dict[int, float] = {}
    for _ in range(args.rounds):
        for n, (live, events) in built.items():
            gc.collect()
            round_times, matched[n] = time_matches(live.index, events)
            times[n] += round_times
    first = statistics.median(times[sizes[0]])
    for n, (live, events) in built.items():
        median = statistics.median(times[n])
        brute = f"{time_brute_force(live, events[:max(200, args.events // 10)]):,.0f}" if n <= args.brute_max else ""
        held, tree = memory_per_query(live, registry)
        print(f"| {n:,} | {median:.1f} | {p99(times[n]):.1f} | {median / first:.2f}x | {matched[n]:.2f} | {brute} "
              f"| {live.check_us:.0f} | {live.compile_us:.1f} | {live.add_us:.1f} | {held:,.0f} | {tree:,.0f} "
              f"| {live.index.stats().scanned} |", flush=True)

    print(f"load average at the end of the table: {os.getloadavg()[0]:.2f} "
          "(this script counts for 1; much above, something else competed)")
    if args.no_closures:
        return
    print()
    print("| condition | generated ns/call | closures ns/call | generated build µs | closures build µs "
          "| generated B/query | closures B/query |")
    print("|---|---|---|---|---|---|---|")
    for label, gen, clo, gen_build, clo_build, gen_size, clo_size in compare_closures(registry):
        print(f"| `{label}` | {gen:.0f} | {clo:.0f} | {gen_build:.1f} | {clo_build:.1f} | {gen_size:,.0f} "
              f"| {clo_size:,.0f} |")


if __name__ == "__main__":
    main()
