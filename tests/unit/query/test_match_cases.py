"""The match cases of query_cases.yaml through both matchers: the interpreter and the compiled query.

test_query_conformance.py runs the same file through the parser and checker;
here each match case is parsed, compiled, and matched both ways, and through
an index holding it, so that all three give the file's answer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.query.ast import Query
from components.query.compile import compile_query
from components.query.index import QueryIndex
from components.query.interpret import evaluate, selector_matches

CASES_FILE = Path(__file__).parent / "query_cases.yaml"
CASES: list[dict[str, Any]] = (
    [c for c in yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))["cases"] if "match" in c]
    if CASES_FILE.exists()
    else []
)
HAVE_PARSER = importlib.util.find_spec("components.query.parser") is not None


def _parse(case: dict[str, Any]) -> Query:
    if not HAVE_PARSER:
        pytest.skip("components.query.parser does not exist yet")
    from components.query.parser import parse

    limits = {k: case[k] for k in ("max_length", "max_depth") if k in case}
    query: Query = parse(case["query"], **limits)
    return query


def _id(case: dict[str, Any]) -> str:
    return f"{case['query']} @ {case['event']['event']}"[:90]


@pytest.mark.skipif(not CASES, reason="tests/unit/query_cases.yaml has no match cases yet")
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_match_case(case: dict[str, Any]) -> None:
    query = _parse(case)
    name, data = case["event"]["event"], case["event"]["data"]
    compiled = compile_query(query)
    index: QueryIndex[str] = QueryIndex()
    index.add("q", compiled)
    selected = any(selector_matches(pattern, name) for pattern in query.selectors)
    assert evaluate(query, name, data) is case["match"], "interpreter"
    assert (selected and compiled.matches(data)) is case["match"], "compiled"
    assert index.match(name, data) == ({"q"} if case["match"] else set()), "index"
    if importlib.util.find_spec("components.query.canonical") is not None:
        from components.query.canonical import canonical

        canonical_form = compile_query(canonical(query))
        selected = any(selector_matches(pattern, name) for pattern in canonical_form.selectors)
        assert (selected and canonical_form.matches(data)) is case["match"], "compiled canonical form"
