"""The conformance cases of query_cases.yaml: refused queries through parse + check, matches through the interpreter.

The interpreter (components.query.interpret) is tested here only if it
exists; its cases are expected failures until then. A match case must give
the same answer for the query as parsed and for its canonical form, which
holds ``canonical`` to its promise of not changing what matches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.events import EventClass, Registry
from components.query import Query, QueryError, QueryNotAuthorized, canonical, check, parse, to_text

HERE = Path(__file__).parent
REPO = HERE.parents[2]
REGISTRY = Registry.load(["examples.demo_events"], ["examples/demo_events.yaml"], base_dir=REPO)
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "query_cases.yaml").read_text(encoding="utf-8"))["cases"]
KEYS = {"query", "event", "match", "error", "position", "unchecked", "authrole", "not_authorized", "max_length",
        "max_depth", "canonical", "note"}

MATCHES = [c for c in CASES if "match" in c]
ERRORS = [c for c in CASES if "error" in c]


def _id(case: dict[str, Any]) -> str:
    event = f" @ {case['event']['event']}" if "event" in case else ""
    return f"{case['query']}{event}"[:90]


def _visible(case: dict[str, Any]) -> Callable[[EventClass], bool]:
    role = case.get("authrole", "backend")
    return lambda c: c.visible_to(role)


def _parse(case: dict[str, Any]) -> Query:
    limits = {k: case[k] for k in ("max_length", "max_depth") if k in case}
    return parse(case["query"], **limits)


def _evaluate() -> Callable[[Query, str, dict[str, Any]], bool]:
    try:
        module = importlib.import_module("components.query.interpret")
    except ImportError:
        pytest.xfail("interpreter not written yet")
    evaluate: Callable[[Query, str, dict[str, Any]], bool] = module.evaluate
    return evaluate


def test_the_file_is_well_formed() -> None:
    assert len(CASES) >= 80
    for case in CASES:
        assert set(case) <= KEYS, (case, set(case) - KEYS)
        assert ("match" in case) != ("error" in case), case
        assert "match" not in case or isinstance(case.get("event", {}).get("data"), dict), case
    texts = [(c["query"], repr(c.get("event")), c.get("authrole"), c.get("max_depth")) for c in CASES]
    duplicates = {t for t in texts if texts.count(t) > 1}
    assert not duplicates


@pytest.mark.parametrize("case", ERRORS, ids=_id)
def test_refused(case: dict[str, Any]) -> None:
    with pytest.raises(QueryError) as caught:
        check(_parse(case), REGISTRY, visible=_visible(case))
    error = caught.value
    assert case["error"] in error.message
    assert isinstance(error, QueryNotAuthorized) == bool(case.get("not_authorized"))
    if "position" in case:
        assert error.position == case["position"], str(error)
    assert error.query == case["query"]


@pytest.mark.parametrize("case", MATCHES, ids=_id)
def test_parses_and_checks(case: dict[str, Any]) -> None:
    query = _parse(case)
    if not case.get("unchecked"):
        checked = check(query, REGISTRY, visible=_visible(case))
        assert checked.text == to_text(canonical(query))
    if "canonical" in case:
        assert to_text(canonical(query)) == case["canonical"]


@pytest.mark.parametrize("case", MATCHES, ids=_id)
def test_match(case: dict[str, Any]) -> None:
    evaluate = _evaluate()
    query = _parse(case)
    event, data = case["event"]["event"], case["event"]["data"]
    assert evaluate(query, event, data) is case["match"]
    assert evaluate(canonical(query), event, data) is case["match"], to_text(canonical(query))
