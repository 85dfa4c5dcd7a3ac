"""The bridge's HTTP API fuzzed from its own served ``/openapi.json`` with schemathesis.

What must hold for every request schemathesis makes of every documented operation, valid or not
(issue 15, point 2: no request is answered 500 because of what it contains):

- never a 5xx, except the documented 503 (``overloaded``, ``unavailable``) on an operation that
  documents it;
- the status is one the operation documents, and the body has the documented content type and
  shape (an error is ``{"error", "message", "details"?}``);
- a request the schema says is wrong (schemathesis's negative mode) is refused with a 4xx.

Bounded so that ``make test`` stays short: ``MAX_EXAMPLES`` requests per operation and mode,
derandomized (the same requests on every run, in CI too), no Hypothesis example database (nothing is
written to the repository), no deadline (the first requests of a fresh node are slower).

Each operation is a test of its own, driven by ``operation.as_strategy()`` under Hypothesis's
``@given``: schemathesis's pytest plugin would load the schema from a fixture
(``schemathesis.pytest.from_fixture``), but 4.32 does so through a private attribute pytest 9.2
removed (``Function._nodeid``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case, CheckContext, GenerationMode, Response
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from tests.support.harness import API_KEY, GatewayNode, running_node

pytestmark = pytest.mark.integration

#: Every operation the API documents (``GET /openapi.json`` aside: schemathesis leaves out the document it
#: was loaded from), and whether it has inputs the schema can say are wrong (schemathesis's negative mode:
#: a path id or an XML-RPC body is any string, and the rest take nothing). A new one must be added here
#: (``test_every_served_operation_is_fuzzed`` says so).
OPERATIONS = {"POST /events": True, "POST /events/batch": True, "POST /tickets": True, "POST /subscriptions": True,
              "GET /subscriptions": True, "DELETE /subscriptions/{id}": False, "GET /catalog": False,
              "POST /admin/reload": False, "POST /RPC2": False, "GET /healthz": False, "GET /livez": False,
              "GET /metrics": False,
              # Last: it drains the node for good (every event after it is 503 draining).
              "POST /admin/drain": False}
CASES = [(label, mode) for label, negative in OPERATIONS.items()
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if negative or mode.is_positive]
#: Generated requests per operation and mode (fewer where the schema allows fewer): some 15 s in all.
MAX_EXAMPLES = 50
#: Seconds one request may take before the test fails: nothing the bridge does here should take long.
REQUEST_TIMEOUT = 10
#: The 503s the API documents: the bridge is full, no dispatcher is there (``api.RETRY``), the node is leaving.
DOCUMENTED_503 = frozenset({"overloaded", "unavailable", "draining"})
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def no_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> None:
    """schemathesis's ``not_a_server_error``, less the documented 503: no 5xx for what a request contains."""
    status = response.status_code
    if status < 500:
        return
    documented = str(status) in case.operation.definition.raw.get("responses", {})
    body = _json(response.content)
    code = body.get("error", body.get("status")) if isinstance(body, dict) else None
    assert status == 503 and documented and code in DOCUMENTED_503, (
        f"{case.operation.label} answered {status} {response.content[:500]!r}")


def batch_refuses_wrong_items(ctx: CheckContext, response: Response, case: Case[Any]) -> None:
    """``negative_data_rejection`` for ``POST /events/batch``: a batch of the right shape is answered 200 with
    each event accepted or refused in place (documented), so a wrong event is a refusal among the results."""
    if case.meta is None or case.meta.generation.mode.is_positive or response.status_code != 200:
        negative_data_rejection(ctx, response, case)
        return
    results = _json(response.content)["results"]
    assert any("error" in result for result in results), f"a wrong batch was accepted whole: {results}"


#: The checks of every answer (each test adds ``negative_data_rejection``, or its batch form above).
CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def fuzzed_node() -> Iterator[GatewayNode]:
    """The module's own node: fuzzing makes tickets and subscriptions nothing else should see."""
    with running_node() as node:
        yield node


@pytest.fixture(scope="module")
def served_api(fuzzed_node: GatewayNode) -> BaseSchema:
    """The API as the node describes it at ``GET /openapi.json``; every request carries the API key."""
    config = schemathesis.Config.from_dict({"headers": AUTH, "request-timeout": REQUEST_TIMEOUT})
    return schemathesis.openapi.from_url(f"{fuzzed_node.bridge_url}/openapi.json", config=config,
                                         timeout=REQUEST_TIMEOUT)


def test_every_served_operation_is_fuzzed(served_api: BaseSchema) -> None:
    results = list(served_api.get_all_operations())
    # An operation schemathesis cannot read (its schema is wrong) is one it cannot fuzz.
    assert [result.err() for result in results if isinstance(result, Err)] == []
    assert sorted(result.ok().label for result in results if isinstance(result, Ok)) == sorted(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_request_is_a_server_error_and_every_answer_is_documented(served_api: BaseSchema, label: str,
                                                                     mode: GenerationMode) -> None:
    operation = served_api.find_operation_by_label(label)
    assert operation is not None, label
    checks = CHECKS + [batch_refuses_wrong_items if label == "POST /events/batch" else negative_data_rejection]

    # too_slow: each example is a request to a node; filter_too_much: negative cases that come out valid
    # (a wrong query parameter is a string again on the wire) are filtered out.
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case[Any]) -> None:
        response = case.call(headers=AUTH, timeout=REQUEST_TIMEOUT)
        case.validate_response(response, checks=checks, headers=AUTH)

    fuzz()
