"""Wrong calls from a plain WAMP client get ``gateway.error.invalid_argument`` naming the argument.

64 kinds of wrong call to the client procedures, against a real node: the error URI, the argument
named (or, for one argument too many, how to call it), nothing of how the code is built in the
message, and no traceback in the node's log.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from tests.support.harness import GatewayNode
from tests.support.wamp import WampClient

SEQ_MAX = 2**63 - 1
Q = "demo.message where room = 'args'"
LONG = "p_" + "x" * 5000
#: Python's own words for a bad call, type names and our code's names: never in a message.
PYTHON = re.compile(r"_subscribe|_end_subscription|missing \d+ required|positional argument|unexpected keyword|"
                    r"takes \d+ positional|NoneType|Traceback|Dispatcher|ReplayAndAck|self\b|\bint\b|\bstr\b|"
                    r"\bdict\b|\bbool\b|runtime_error|SQLite|sqlite|psycopg|Python")

#: (procedure, args, kwargs, the argument the message must name; None: one too many, the usage is shown)
WRONG_CALLS: list[tuple[str, list[Any], dict[str, Any], str | None]] = [
    # gateway.subscribe(query, persistent=false)
    ("gateway.subscribe", [], {}, "query"),
    ("gateway.subscribe", [5], {}, "query"),
    ("gateway.subscribe", [None], {}, "query"),
    ("gateway.subscribe", [["demo.message"]], {}, "query"),
    ("gateway.subscribe", [{"q": 1}], {}, "query"),
    ("gateway.subscribe", [True], {}, "query"),
    ("gateway.subscribe", [Q, "yes"], {}, "persistent"),
    ("gateway.subscribe", [Q, 1], {}, "persistent"),
    ("gateway.subscribe", [Q], {"persistent": None}, "persistent"),
    ("gateway.subscribe", [Q], {"persistent": "true"}, "persistent"),
    ("gateway.subscribe", [Q, False, "extra"], {}, None),
    ("gateway.subscribe", [Q], {"foo": 1}, "foo"),
    ("gateway.subscribe", [Q], {"Persistent": True}, "Persistent"),
    ("gateway.subscribe", [Q], {"query": Q}, "query"),
    ("gateway.subscribe", [], {"persistent": True}, "query"),
    # gateway.unsubscribe(id)
    ("gateway.unsubscribe", [], {}, "id"),
    ("gateway.unsubscribe", [5], {}, "id"),
    ("gateway.unsubscribe", [None], {}, "id"),
    ("gateway.unsubscribe", [[]], {}, "id"),
    ("gateway.unsubscribe", [{}], {}, "id"),
    ("gateway.unsubscribe", [True], {}, "id"),
    ("gateway.unsubscribe", [""], {}, "id"),
    ("gateway.unsubscribe", [LONG], {}, "id"),
    ("gateway.unsubscribe", ["s_x", "s_y"], {}, None),
    ("gateway.unsubscribe", ["s_x"], {"force": True}, "force"),
    # gateway.subscriptions()
    ("gateway.subscriptions", [1], {}, None),
    ("gateway.subscriptions", [None], {}, None),
    ("gateway.subscriptions", [], {"user": "alice"}, "user"),
    # gateway.replay(id, after_seq, limit=500)
    ("gateway.replay", [], {}, "id"),
    ("gateway.replay", ["p_x"], {}, "after_seq"),
    ("gateway.replay", [5, 0], {}, "id"),
    ("gateway.replay", [None, 0], {}, "id"),
    ("gateway.replay", [LONG, 0], {}, "id"),
    ("gateway.replay", ["p_x", -1], {}, "after_seq"),
    ("gateway.replay", ["p_x", "3"], {}, "after_seq"),
    ("gateway.replay", ["p_x", 1.5], {}, "after_seq"),
    ("gateway.replay", ["p_x", True], {}, "after_seq"),
    ("gateway.replay", ["p_x", None], {}, "after_seq"),
    ("gateway.replay", ["p_x", [0]], {}, "after_seq"),
    ("gateway.replay", ["p_x", SEQ_MAX + 1], {}, "after_seq"),
    ("gateway.replay", ["p_x", 2**64 - 1], {}, "after_seq"),
    ("gateway.replay", ["p_x", 0, -1], {}, "limit"),
    ("gateway.replay", ["p_x", 0, "10"], {}, "limit"),
    ("gateway.replay", ["p_x", 0, False], {}, "limit"),
    ("gateway.replay", ["p_x", 0, SEQ_MAX + 1], {}, "limit"),
    ("gateway.replay", ["p_x", 0, 10, 1], {}, None),
    ("gateway.replay", ["p_x", 0], {"page": 10}, "page"),
    ("gateway.replay", ["p_x", 0], {"after_seq": 1}, "after_seq"),
    # gateway.ack(id, seq)
    ("gateway.ack", [], {}, "id"),
    ("gateway.ack", ["p_x"], {}, "seq"),
    ("gateway.ack", [7, 1], {}, "id"),
    ("gateway.ack", ["p_x", -1], {}, "seq"),
    ("gateway.ack", ["p_x", SEQ_MAX + 1], {}, "seq"),
    ("gateway.ack", ["p_x", 2**64 - 1], {}, "seq"),
    ("gateway.ack", ["p_x", "1"], {}, "seq"),
    ("gateway.ack", ["p_x", True], {}, "seq"),
    ("gateway.ack", ["p_x", 2.0], {}, "seq"),
    ("gateway.ack", ["p_x", 1, 2], {}, None),
    ("gateway.ack", ["p_x", 1], {"all": True}, "all"),
    # gateway.catalog(), gateway.whoami()
    ("gateway.catalog", [1], {}, None),
    ("gateway.catalog", [], {"role": "staff"}, "role"),
    ("gateway.whoami", ["me"], {}, None),
    ("gateway.whoami", [], {"session": 1}, "session"),
    ("gateway.whoami", [1, 2], {}, None),
]


def test_the_table_holds_64_kinds_of_wrong_call() -> None:
    assert len(WRONG_CALLS) == 64
    assert len({(p, repr(a), repr(k)) for p, a, k, _ in WRONG_CALLS}) == 64


def test_wrong_calls_are_invalid_argument_naming_it_with_no_internals_and_no_traceback(node: GatewayNode) -> None:
    log_before = len(node.log_text())
    answers = []
    with WampClient(node.ws_url) as client:
        for procedure, args, kwargs, argument in WRONG_CALLS:
            with pytest.raises(ApplicationError) as exc:
                client.call(procedure, *args, **kwargs)
            answers.append((procedure, args, kwargs, argument, exc.value))
        # Valid calls still work, by position and by name.
        sub = client.call("gateway.subscribe", query=Q, persistent=True)
        assert client.call("gateway.replay", sub["id"], after_seq=0, limit=1)["events"] == []
        assert client.call("gateway.ack", id=sub["id"], seq=0) == {"id": sub["id"], "last_seq": sub["last_seq"]}
        client.call("gateway.unsubscribe", sub["id"])
    for procedure, args, kwargs, argument, error in answers:
        call = f"{procedure} {args!r:.60} {kwargs!r}"
        message = str(error.args[0]) if error.args else ""
        assert error.error == "gateway.error.invalid_argument", (call, error.error, message)
        assert not PYTHON.search(message), (call, message)
        if argument is None:
            assert "call it as " + procedure in message, (call, message)
        else:
            # Integers past signed 64 bits may be refused by the router guard before they reach
            # the dispatcher (it cannot pack them for our components): it names them by position.
            assert argument in message or _by_position(args, message), (call, message)
        assert procedure in message or "args[" in message, (call, message)
    new_log = node.log_text()[log_before:]
    assert "Traceback" not in new_log and "runtime_error" not in new_log, new_log[-3000:]


def _by_position(args: list[Any], message: str) -> bool:
    """The router guard's naming of an out-of-range integer: ``args[1] is 9223372036854775808, outside ...``."""
    return any(f"args[{i}]" in message and "64-bit" in message for i, a in enumerate(args)
               if type(a) is int and not -(2**63) <= a <= SEQ_MAX)
