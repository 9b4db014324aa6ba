"""Graph and reference validation: every problem names the node at fault."""

from __future__ import annotations

from typing import Any

import pytest

from legato.domain.journey_validation import (
    KnownReferences,
    graph_problems,
    journey_problems,
    private_host_reason,
    validate_journey,
)
from legato.domain.journeys import parse_journey
from legato.errors import InvalidInput

TRAIT_CONDITION = {"trait": "plan", "eq": "pro"}


def journey(nodes: list[dict[str, Any]], **top: Any) -> Any:
    doc: dict[str, Any] = {"kind": "Journey", "key": "j", "trigger": {"event": "E"}, "nodes": nodes}
    doc.update(top)
    return parse_journey(doc)


def msg(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "message", "channel": "email", "template": "t", **fields}


def wait(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "wait", "duration": "1d", **fields}


def branch(node_id: str, then: str | None, else_: str | None) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "branch",
        "condition": TRAIT_CONDITION,
        "then": then,
        "else": else_,
    }


GRAPH_CASES: list[
    tuple[str, list[dict[str, Any]], dict[str, Any], list[tuple[str | None, str, str]]]
] = [
    (
        "dangling next",
        [msg("a", next="wait_dy"), wait("wait_day")],
        {},
        [
            ("a", "$.nodes[0].next", "next → 'wait_dy' is not a node (did you mean 'wait_day'?)"),
            ("wait_day", "$.nodes[1]", "node 'wait_day' is unreachable from the start node 'a'"),
        ],
    ),
    (
        "dangling split arm",
        [
            {
                "id": "s",
                "type": "split",
                "branches": [{"condition": TRAIT_CONDITION, "next": "nowhere"}],
                "default": "e",
            },
            {"id": "e", "type": "exit"},
        ],
        {},
        [("s", "$.nodes[0].branches[0].next", "branches[0].next → 'nowhere' is not a node")],
    ),
    (
        "unreachable node",
        [msg("a", next="b"), {"id": "b", "type": "exit"}, msg("orphan", next="b")],
        {},
        [("orphan", "$.nodes[2]", "node 'orphan' is unreachable")],
    ),
    (
        "start that does not exist",
        [msg("a")],
        {"start": "begin"},
        [(None, "$.start", "start 'begin' is not a node")],
    ),
    (
        "explicit start makes the first node unreachable",
        [msg("a"), msg("b")],
        {"start": "b"},
        [("a", "$.nodes[0]", "node 'a' is unreachable from the start node 'b'")],
    ),
    (
        "loop without a wait",
        [
            msg("a", next="b"),
            branch("b", "c", "e"),
            msg("c", next="a"),
            {"id": "e", "type": "exit"},
        ],
        {},
        [("a", "$.nodes[0]", "the loop a → b → c → a passes through no wait")],
    ),
    (
        "self loop",
        [{"id": "a", "type": "update_profile", "increment": {"n": 1}, "next": "a"}],
        {},
        [("a", "$.nodes[0]", "the loop a → a passes through no wait")],
    ),
    (
        "webhook does not count as a wait",
        [
            {
                "id": "h",
                "type": "webhook",
                "url": "https://x.example",
                "on_success": "h",
                "on_failure": "e",
            },
            {"id": "e", "type": "exit"},
        ],
        {},
        [("h", "$.nodes[0]", "the loop h → h passes through no wait")],
    ),
]

VALID_LOOPS = [
    [msg("a", next="w"), wait("w", next="b"), branch("b", "a", "e"), {"id": "e", "type": "exit"}],
    [
        {"id": "ask", "type": "message", "channel": "sms", "template": "t", "next": "listen"},
        {
            "id": "listen",
            "type": "wait_for_event",
            "event": "Replied",
            "timeout": "1d",
            "on_event": "e",
            "on_timeout": "ask",
        },
        {"id": "e", "type": "exit"},
    ],
    [
        {"id": "w", "type": "wait_until", "time": "09:00", "next": "m"},
        msg("m", next="w"),
    ],
]


@pytest.mark.parametrize(
    ("name", "nodes", "top", "expected"), GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES]
)
def test_graph_problems_name_the_node(
    name: str,
    nodes: list[dict[str, Any]],
    top: dict[str, Any],
    expected: list[tuple[str | None, str, str]],
) -> None:
    problems = graph_problems(journey(nodes, **top))
    assert [(p.node, p.path) for p in problems] == [(node, path) for node, path, _ in expected]
    for problem, (_, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
    with pytest.raises(InvalidInput) as caught:
        validate_journey(journey(nodes, **top))
    assert (
        caught.value.details["node"] == expected[0][0]
        if expected[0][0]
        else "node" not in caught.value.details
    )
    assert len(caught.value.details["errors"]) == len(expected)


@pytest.mark.parametrize("nodes", VALID_LOOPS)
def test_loops_through_a_wait_are_fine(nodes: list[dict[str, Any]]) -> None:
    assert graph_problems(journey(nodes)) == []


KNOWN = KnownReferences(
    templates={"welcome", "cart_email"},
    channels={"email", "sms"},
    topics={"news"},
    segments={"vip"},
    traits={"plan", "renews_at"},
    computed_traits=set(),
)


@pytest.mark.parametrize(
    ("nodes", "top", "node", "path", "fragment"),
    [
        (
            [msg("m", template="cart_emial")],
            {},
            "m",
            "$.nodes[0].template",
            "template 'cart_emial' does not exist (did you mean 'cart_email'?)",
        ),
        (
            [msg("m", template="welcome", channel="fax")],
            {},
            "m",
            "$.nodes[0].channel",
            "channel 'fax' does not exist",
        ),
        (
            [msg("m", template="welcome", topic="promo")],
            {},
            "m",
            "$.nodes[0].topic",
            "topic 'promo' does not exist",
        ),
        (
            [{"id": "n", "type": "exit"}],
            {"trigger": {"segment": "vips"}},
            None,
            "$.trigger.segment",
            "segment 'vips' does not exist (did you mean 'vip'?)",
        ),
        (
            [{"id": "n", "type": "exit"}],
            {"trigger": {"segment": "gone", "schedule": {"at": "2026-03-01T09:00"}}},
            None,
            "$.trigger.segment",
            "segment 'gone' does not exist",
        ),
        ([branch("b", None, None)], {}, None, None, None),
        (
            [{"id": "b", "type": "branch", "condition": {"trait": "tier", "eq": 1}}],
            {},
            "b",
            "$.nodes[0].condition",
            "trait 'tier' does not exist",
        ),
        (
            [{"id": "b", "type": "branch", "condition": {"segment": "whales"}}],
            {},
            "b",
            "$.nodes[0].condition",
            "segment 'whales' does not exist",
        ),
        (
            [{"id": "n", "type": "exit"}],
            {"exit_criteria": [{"condition": {"segment": "whales"}}]},
            None,
            "$.exit_criteria[0].condition",
            "segment 'whales' does not exist",
        ),
        (
            [{"id": "w", "type": "wait_until", "date_trait": "birthday"}],
            {},
            "w",
            "$.nodes[0].date_trait",
            "trait 'birthday' does not exist",
        ),
        (
            [{"id": "h", "type": "webhook", "url": "http://127.0.0.1:8080/x"}],
            {},
            "h",
            "$.nodes[0].url",
            "loopback or private address",
        ),
    ],
)
def test_missing_references_name_the_node(
    nodes: list[dict[str, Any]],
    top: dict[str, Any],
    node: str | None,
    path: str | None,
    fragment: str | None,
) -> None:
    problems = journey_problems(journey(nodes, **top), KNOWN)
    if fragment is None:
        assert problems == []
        return
    assert [(p.node, p.path) for p in problems] == [(node, path)]
    assert fragment in problems[0].message


def test_references_are_not_checked_for_kinds_not_given() -> None:
    j = journey([msg("m", template="anything", channel="fax")])
    assert journey_problems(j, KnownReferences()) == []
    assert journey_problems(j, KnownReferences(templates=set()))[0].node == "m"


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://localhost/x", True),
        ("http://api.localhost/x", True),
        ("http://127.0.0.1/x", True),
        ("http://10.1.2.3/x", True),
        ("http://192.168.0.10:8080/x", True),
        ("http://172.16.5.4/x", True),
        ("http://169.254.169.254/latest/meta-data", True),
        ("http://[::1]/x", True),
        ("http://[::ffff:10.0.0.1]/x", True),
        ("http://0.0.0.0/x", True),
        ("https://hooks.example.com/x", False),
        ("https://93.184.216.34/x", False),
    ],
)
def test_private_webhook_hosts(url: str, private: bool) -> None:
    assert (private_host_reason(url) is not None) is private


def test_private_webhooks_can_be_allowed() -> None:
    j = journey([{"id": "h", "type": "webhook", "url": "http://127.0.0.1:9/x"}])
    assert journey_problems(j, KnownReferences(allow_private_webhooks=True)) == []
