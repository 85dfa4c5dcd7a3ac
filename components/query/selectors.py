"""Selectors: which class names a pattern such as ``orders.*`` or ``demo.**`` matches.

Segments are separated by dots; ``*`` is exactly one segment, ``**`` any
number of segments, none included (``demo.**`` matches ``demo`` too).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable


def matches(selector: str, name: str) -> bool:
    """Whether the class called ``name`` is one ``selector`` selects."""
    if "*" not in selector:
        return selector == name
    return _covers(tuple(selector.split(".")), tuple(name.split(".")))


def covers(wider: str, narrower: str) -> bool:
    """Whether every class name ``narrower`` matches is one ``wider`` matches too.

    Sound but, for odd pairs of wildcards, not complete: it may say no where
    the answer is yes, never the other way round, which is what dropping a
    redundant selector needs.
    """
    return _covers(tuple(wider.split(".")), tuple(narrower.split(".")))


@functools.lru_cache(maxsize=4096)  # the same few selectors against the same few class names, over and over
def _covers(wide: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    # reach[j]: the segments of `wide` so far can match the first j of `narrow`.
    reach = [True] + [False] * len(narrow)
    for segment in wide:
        if segment == "**":  # absorbs any run of narrow segments, wildcards included
            for j in range(1, len(reach)):
                reach[j] = reach[j] or reach[j - 1]
            continue
        new = [False] * len(reach)
        for j in range(1, len(reach)):
            other = narrow[j - 1]
            if reach[j - 1] and other != "**" and (segment == "*" or segment == other):
                new[j] = True
        reach = new
    return reach[-1]


def normalise(selector: str) -> str:
    """One spelling per meaning within a run of wildcards: ``**.*.**`` -> ``*.**``."""
    if "**" not in selector:
        return selector
    out: list[str] = []
    run: list[str] = []
    for segment in [*selector.split("."), ""]:
        if segment in ("*", "**"):
            run.append(segment)
            continue
        out.extend(["*"] * run.count("*") + (["**"] if "**" in run else []))
        run = []
        out.append(segment)
    return ".".join(out[:-1])


def normalise_all(selectors: Iterable[str]) -> tuple[str, ...]:
    """Sorted, each spelt one way, without duplicates or selectors another one already covers."""
    unique = sorted({normalise(s) for s in selectors})
    return tuple(s for s in unique if not any(other != s and covers(other, s) and _first(other, s)
                                              for other in unique))


def _first(other: str, selector: str) -> bool:
    # Two different spellings that cover each other: keep the smaller one only.
    return not covers(selector, other) or other < selector
