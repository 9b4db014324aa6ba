"""The journey document: parsing, every node and trigger shape, errors naming the node, schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from legato.domain.journey_validation import KnownReferences, validate_journey
from legato.domain.journeys import (
    NODE_TYPES,
    ApiTrigger,
    EventTrigger,
    Journey,
    ScheduleTrigger,
    SegmentTrigger,
    journey_schema,
    parse_journey,
)
from legato.errors import InvalidInput

ABANDONED_CART = """\
kind: Journey
key: abandoned_cart
name: Abandoned cart
trigger: {event: Checkout Started, key: properties.cart_id}
goal: {event: Order Completed, within: 7d}
nodes:
  - {id: wait_order, type: wait_for_event, event: Order Completed,
     match: {properties.cart_id: trigger.properties.cart_id}, timeout: 1h,
     on_event: done, on_timeout: push}
  - {id: push, type: message, channel: push, template: cart_push, next: wait_day}
  - {id: wait_day, type: wait, duration: 1d, next: email}
  - {id: email, type: message, channel: email, template: cart_email, next: done}
  - {id: done, type: exit}
"""

CONDITION = {"trait": "plan", "eq": "pro"}

# One valid node of every type, and the edges it declares.
NODES: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    (
        {
            "id": "n",
            "type": "message",
            "channel": "email",
            "template": "t",
            "topic": "news",
            "next": "x",
        },
        [("next", "x")],
    ),
    ({"id": "n", "type": "wait", "duration": "2h", "next": "x"}, [("next", "x")]),
    (
        {"id": "n", "type": "wait_until", "time": "09:30", "weekdays": ["mon", "fri"], "next": "x"},
        [("next", "x")],
    ),
    (
        {
            "id": "n",
            "type": "wait_until",
            "date_trait": "renews_at",
            "offset": "-3d",
            "time": "10:00",
            "next": "x",
            "on_missing": "y",
        },
        [("next", "x"), ("on_missing", "y")],
    ),
    (
        {
            "id": "n",
            "type": "wait_for_event",
            "event": "Order Completed",
            "where": [{"property": "currency", "eq": "EUR"}],
            "match": {"properties.cart_id": "trigger.properties.cart_id"},
            "timeout": "1d",
            "on_event": "x",
            "on_timeout": "y",
        },
        [("on_event", "x"), ("on_timeout", "y")],
    ),
    (
        {"id": "n", "type": "branch", "condition": CONDITION, "then": "x", "else": "y"},
        [("then", "x"), ("else", "y")],
    ),
    (
        {
            "id": "n",
            "type": "split",
            "branches": [{"name": "pro", "condition": CONDITION, "next": "x"}],
            "default": "y",
        },
        [("branches[0].next", "x"), ("default", "y")],
    ),
    (
        {
            "id": "n",
            "type": "random_split",
            "branches": [{"weight": 1, "next": "x"}, {"weight": 3, "next": "y"}],
            "holdout": 10,
        },
        [("branches[0].next", "x"), ("branches[1].next", "y")],
    ),
    (
        {
            "id": "n",
            "type": "update_profile",
            "set": {"tier": "gold", "last_cart": "trigger.properties.cart_id"},
            "unset": ["churn_risk"],
            "increment": {"journeys_seen": 1},
            "next": "x",
        },
        [("next", "x")],
    ),
    (
        {
            "id": "n",
            "type": "webhook",
            "url": "https://crm.example.com/leads",
            "method": "PUT",
            "headers": {"X-Api": "k"},
            "body": '{"id": "{{ profile.id }}"}',
            "response": {"traits": {"crm_id": "lead.id"}, "data": {"offer": "offer.code"}},
            "on_success": "x",
            "on_failure": "y",
        },
        [("on_success", "x"), ("on_failure", "y")],
    ),
    (
        {
            "id": "n",
            "type": "emit_event",
            "event": "Lead Qualified",
            "properties": {"a": 1},
            "next": "x",
        },
        [("next", "x")],
    ),
    ({"id": "n", "type": "exit", "reason": "done"}, []),
]


def doc_with(node: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "Journey",
        "key": "k",
        "trigger": {"event": "E"},
        "nodes": [node],
    }
    doc.update(top)
    return doc


def test_abandoned_cart_from_the_issue_parses_unchanged() -> None:
    journey = parse_journey(ABANDONED_CART)
    assert journey.key == "abandoned_cart"
    assert isinstance(journey.trigger, EventTrigger)
    assert journey.trigger.event == "Checkout Started"
    assert journey.entry_key == "properties.cart_id"
    assert journey.goal is not None and journey.goal.within == 7 * 86_400_000
    assert [node.type for node in journey.nodes] == [
        "wait_for_event",
        "message",
        "wait",
        "message",
        "exit",
    ]
    assert journey.start_node == "wait_order"
    first = journey.nodes[0]
    assert first.edges() == (("on_event", "done"), ("on_timeout", "push"))


def test_the_issue_example_validates_with_its_references() -> None:
    known = KnownReferences(
        templates={"cart_push", "cart_email"}, channels={"push", "email"}, segments=set()
    )
    validate_journey(parse_journey(ABANDONED_CART), known)


def test_document_round_trips() -> None:
    journey = parse_journey(ABANDONED_CART)
    again = parse_journey(json.loads(json.dumps(journey.to_document())))
    assert again == journey


@pytest.mark.parametrize(
    ("node", "edges"), NODES, ids=lambda v: v["type"] if isinstance(v, dict) else ""
)
def test_every_node_type_parses(node: dict[str, Any], edges: list[tuple[str, str]]) -> None:
    journey = parse_journey(doc_with(node))
    parsed = journey.nodes[0]
    assert parsed.type == node["type"]
    assert list(parsed.edges()) == edges
    # and survives a round trip through JSON
    assert parse_journey(json.loads(json.dumps(journey.to_document()))) == journey


def test_every_node_type_is_covered() -> None:
    assert {node["type"] for node, _ in NODES} == set(NODE_TYPES)


@pytest.mark.parametrize(
    ("trigger", "kind", "check"),
    [
        ({"event": "Checkout Started"}, EventTrigger, {"event": "Checkout Started"}),
        (
            {"event": "Checkout Started", "where": [{"property": "total", "gte": 10}]},
            EventTrigger,
            {"event": "Checkout Started"},
        ),
        ({"type": "event", "event": "E"}, EventTrigger, {"event": "E"}),
        ({"segment": "vip"}, SegmentTrigger, {"change": "entered"}),
        ({"segment": "vip", "change": "exited"}, SegmentTrigger, {"change": "exited"}),
        (
            {"segment": "news", "schedule": {"at": "2026-03-01T09:00"}, "local_time": True},
            ScheduleTrigger,
            {"local_time": True},
        ),
        (
            {
                "segment": "news",
                "schedule": {"every": "week", "weekdays": ["mon"], "time": "09:00"},
            },
            ScheduleTrigger,
            {"local_time": False},
        ),
        ({"api": True}, ApiTrigger, {"type": "api"}),
        ({"type": "api"}, ApiTrigger, {"type": "api"}),
    ],
)
def test_trigger_shapes(trigger: dict[str, Any], kind: type, check: dict[str, Any]) -> None:
    journey = parse_journey(doc_with({"id": "n", "type": "exit"}, trigger=trigger))
    assert isinstance(journey.trigger, kind)
    for name, value in check.items():
        assert getattr(journey.trigger, name) == value


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return doc


_DELETE = object()
BASE = parse_journey(ABANDONED_CART).to_document()


@pytest.mark.parametrize(
    ("change", "value", "path", "node", "fragment"),
    [
        ("nodes.1.template", _DELETE, "$.nodes[1].template", "push", "field required: template"),
        ("nodes.1.tempalte", "x", "$.nodes[1].tempalte", "push", "unknown field: tempalte"),
        ("nodes.2.type", "sleep", "$.nodes[2]", "wait_day", "unknown type 'sleep'"),
        ("nodes.2.duration", "1 fortnight", "$.nodes[2].duration", "wait_day", "not a duration"),
        ("nodes.2.duration", "0s", "$.nodes[2].duration", "wait_day", "greater than 0"),
        ("nodes.0.timeout", _DELETE, "$.nodes[0].timeout", "wait_order", "field required: timeout"),
        ("nodes.0.match", {"cart_id": "x"}, "$.nodes[0].match.cart_id", "wait_order", "not valid"),
        ("nodes.4.id", "push", "$.nodes[4].id", "push", "node id 'push' is used twice"),
        ("nodes.1.id", "1push", "$.nodes[1].id", "1push", "not valid"),
        ("trigger", {"event": "A", "segment": "s"}, "$.trigger", None, "exactly one trigger"),
        ("trigger", {"nothing": 1}, "$.trigger", None, "exactly one trigger"),
        ("trigger", _DELETE, "$", None, "exactly one trigger"),
        ("triggers", [{"event": "A"}, {"event": "B"}], "$", None, "exactly one trigger"),
        ("trigger.key", "cart_id", "$.trigger.key", None, "not valid"),
        ("entry", {"key": "properties.x"}, "$.entry.key", None, "give the entry key once"),
        ("entry", {"re_entry": "sometimes"}, "$.entry.re_entry", None, "'never', 'after_exit'"),
        ("entry", {"max_entries": 0}, "$.entry.max_entries", None, "greater than or equal to 1"),
        ("goal.within", "soon", "$.goal.within", None, "not a duration"),
        ("settings", {"timezone": "Mars/Base"}, "$.settings.timezone", None, "unknown timezone"),
        (
            "settings",
            {"quiet_hours": {"start": 1290, "end": "08:00"}},
            "$.settings.quiet_hours.start",
            None,
            "quoted string",
        ),
        ("nodes", [], "$.nodes", None, "at least 1"),
        ("kind", "Segment", "$.kind", None, "kind must be Journey"),
        ("key", "Bad Key", "$.key", None, "not valid"),
    ],
)
def test_bad_documents_name_the_node_and_path(
    change: str, value: Any, path: str, node: str | None, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_journey(_set(BASE, change, value))
    error = caught.value
    assert error.details["path"] == path
    assert error.details.get("node") == node
    assert fragment in error.message
    if node is not None:
        assert error.message.startswith(f"node {node!r}")


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"id": "n", "type": "wait_until"}, "needs `time`"),
        ({"id": "n", "type": "wait_until", "time": "9am"}, "not a time of day"),
        (
            {"id": "n", "type": "wait_until", "date_trait": "d", "weekdays": ["mon"]},
            "`weekdays` goes with `time`",
        ),
        ({"id": "n", "type": "wait_until", "time": "09:00", "weekdays": ["monday"]}, "'mon'"),
        ({"id": "n", "type": "update_profile"}, "at least one of set, unset, increment"),
        ({"id": "n", "type": "update_profile", "set": {"a": 1}, "unset": ["a"]}, "changed twice"),
        ({"id": "n", "type": "random_split", "branches": [{"weight": 0}]}, "greater than 0"),
        (
            {"id": "n", "type": "random_split", "branches": [{"weight": 1}], "holdout": 100},
            "less than 100",
        ),
        ({"id": "n", "type": "split", "branches": []}, "at least 1"),
        ({"id": "n", "type": "webhook", "url": "ftp://x"}, "not valid"),
        (
            {"id": "n", "type": "webhook", "url": "https://x", "headers": {"Host": "y"}},
            "set by Legato",
        ),
        ({"id": "n", "type": "webhook", "url": "https://x", "timeout": "5m"}, "less than or equal"),
        ({"id": "n", "type": "message", "channel": "email"}, "field required: template"),
        ({"id": "n"}, "field required: type"),
    ],
)
def test_bad_nodes(node: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_journey(doc_with(node))
    assert caught.value.details["node"] == "n"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ({}, "exactly one of `at` or `every`"),
        ({"at": "2026-03-01T09:00", "every": "day", "time": "09:00"}, "exactly one of"),
        ({"at": "2026-03-01T09:00+01:00"}, "without offset"),
        ({"every": "day"}, "needs `time`"),
        ({"every": "week", "time": "09:00"}, "needs `weekdays`"),
        ({"every": "month", "time": "09:00"}, "day_of_month"),
        ({"every": "day", "time": "09:00", "starts": "2026-02-01", "ends": "2026-01-01"}, "before"),
    ],
)
def test_bad_schedules(schedule: dict[str, Any], fragment: str) -> None:
    trigger = {"segment": "news", "schedule": schedule}
    with pytest.raises(InvalidInput) as caught:
        parse_journey(doc_with({"id": "n", "type": "exit"}, trigger=trigger))
    assert caught.value.details["path"].startswith("$.trigger.schedule")
    assert fragment in caught.value.message


def test_an_invalid_condition_names_the_node_and_the_condition_path() -> None:
    node = {
        "id": "check",
        "type": "branch",
        "condition": {"all": [{"trait": "plan", "eq": "x"}, {"trait": "plan", "bogus": 1}]},
    }
    with pytest.raises(InvalidInput) as caught:
        parse_journey(doc_with(node))
    assert caught.value.details["node"] == "check"
    assert caught.value.details["path"] == "$.nodes[0].condition.all[1].bogus"


def test_an_invalid_event_filter_names_its_path() -> None:
    trigger = {"event": "E", "where": [{"property": "total", "gte": 1}, {"property": "x"}]}
    with pytest.raises(InvalidInput) as caught:
        parse_journey(doc_with({"id": "n", "type": "exit"}, trigger=trigger))
    assert caught.value.details["path"].startswith("$.trigger.where[1]")


@pytest.mark.parametrize("raw", ["- just\n- a list", "key: [unclosed", 42])
def test_not_a_document(raw: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_journey(raw)


def test_exit_criteria_accept_one_or_many() -> None:
    one = parse_journey(
        doc_with({"id": "n", "type": "exit"}, exit_criteria={"event": "Unsubscribed"})
    )
    many = parse_journey(
        doc_with(
            {"id": "n", "type": "exit"},
            exit_criteria=[{"event": "Unsubscribed"}, {"condition": CONDITION}],
        )
    )
    assert len(one.exit_criteria) == 1
    assert len(many.exit_criteria) == 2
    with pytest.raises(InvalidInput, match="exactly one of `event` or `condition`"):
        parse_journey(doc_with({"id": "n", "type": "exit"}, exit_criteria=[{"eventt": "x"}]))


def test_schema_describes_the_document() -> None:
    schema = journey_schema()
    json.dumps(schema)  # serialisable as published
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(json.loads(json.dumps(BASE))))
    assert not list(validator.iter_errors(yaml.safe_load(ABANDONED_CART)))
    bad = _set(BASE, "nodes.1.type", "sleep")
    assert list(validator.iter_errors(bad))
    text = json.dumps(schema)
    for node_type in NODE_TYPES:
        assert f'"{node_type}"' in text


def test_journey_is_immutable() -> None:
    journey = parse_journey(ABANDONED_CART)
    with pytest.raises(ValueError, match="frozen"):
        journey.key = "other"  # type: ignore[misc]
    assert isinstance(journey, Journey)
