"""Row filters: checked at load, ANDed with subscribers' queries per class, hidden from anonymous clients."""

from pathlib import Path

import pytest

from components.events import Registry
from components.exceptions import DefinitionError
from components.query import check, parse
from components.delivery.rowfilter import parts, parts_key, reads, row_filter, session_params, visible_with_row_filter
from components.events.row_filters import check_row_filters

REPO = Path(__file__).resolve().parents[3]


REGISTRY = Registry.load(["examples.demo_events"], [str(REPO / "examples" / "demo_events.yaml"),
                                                  str(REPO / "tests" / "integration" / "identity_events.yaml")])
ALICE = session_params("alice", "user", ("red",))


def query_parts(text: str, params: dict[str, object] = ALICE) -> list[str]:
    checked = check(parse(text, params=params), REGISTRY)
    return parts(checked, REGISTRY, params)


def test_a_row_filter_is_anded_with_the_query() -> None:
    assert query_parts("test.notice") == ['test.notice where user = "alice"']
    assert query_parts("test.notice where text = 'x'") == ['test.notice where text = "x" and user = "alice"']
    assert query_parts("test.team") == ['test.team where team = "red"']


def test_classes_with_different_row_filters_become_parts_of_one_subscription() -> None:
    texts = query_parts("test.*, demo.message where text exists")
    assert texts == ['demo.message where text exists', 'test.notice where text exists and user = "alice"',
                     'test.team where team = "red" and text exists']
    assert parts_key(texts) == parts_key(list(texts)) and parts_key(texts) != parts_key(texts[:1])
    assert parts_key(texts[:1]) == parts_key([texts[0]])


def test_the_same_query_gives_each_user_their_own_parts() -> None:
    bob = session_params("bob", "user", ())
    assert query_parts("test.notice", bob) == ['test.notice where user = "bob"']
    assert query_parts("test.team", bob) == ['test.team where team = null and team exists']


def test_a_row_filter_reading_user_hides_the_class_from_anonymous_clients() -> None:
    notice, team, message = REGISTRY.get("test.notice"), REGISTRY.get("test.team"), REGISTRY.get("demo.message")
    assert reads(notice) == {"user"} and reads(team) == {"roles"} and reads(message) == frozenset()
    assert not visible_with_row_filter(notice, None) and visible_with_row_filter(notice, "alice")
    assert visible_with_row_filter(team, None) and visible_with_row_filter(message, None)
    assert row_filter(message, ALICE) is None


@pytest.mark.parametrize("rule,why", [
    ("nothing = $user", "nothing"),
    ("text = ", "row_filter"),
    ("text = $who", "unknown parameter"),
    ("text > true", "text"),
])
def test_bad_row_filters_are_refused_when_the_definitions_load(tmp_path: Path, rule: str, why: str) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(f"events:\n  t.x:\n    row_filter: {rule!r}\n    fields:\n      text: string\n")
    with pytest.raises(DefinitionError, match=why) as exc:
        check_row_filters(Registry.load([], [str(path)]))
    assert "class t.x" in str(exc.value)
