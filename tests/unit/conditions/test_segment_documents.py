"""Segment and ComputedTrait documents: parsing with paths, and reference checks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from legato.domain.conditions import AllOf
from legato.domain.segments import (
    ComputedTrait,
    Segment,
    dump_document,
    parse_computed_trait,
    parse_document,
    parse_segment,
    validate_references,
)
from legato.errors import InvalidInput

ISSUE_YAML = """
kind: Segment
key: repeat_buyers
name: Repeat buyers
condition:
  all:
    - {event: Order Completed, count: {gte: 2}, within: 30d}
    - {trait: country, in: [ES, MX, FR]}
---
kind: ComputedTrait
key: lifetime_value
aggregate: sum            # count sum avg min max first last distinct_count most_frequent
event: Order Completed
property: revenue
within: 365d              # optional
"""


def test_the_issue_documents_parse_and_round_trip() -> None:
    segment, trait = (parse_document(doc) for doc in yaml.safe_load_all(ISSUE_YAML))
    assert isinstance(segment, Segment) and isinstance(segment.condition, AllOf)
    assert segment.title == "Repeat buyers" and not segment.static
    assert isinstance(trait, ComputedTrait)
    assert (trait.aggregate, trait.event, trait.property, trait.within) == (
        "sum",
        "Order Completed",
        "revenue",
        "365d",
    )
    for doc in (segment, trait):
        assert parse_document(dump_document(doc)) == doc
    assert "static" not in dump_document(segment)


@pytest.mark.parametrize("aggregate", ["count", "first", "last"])
def test_some_aggregates_need_no_property(aggregate: str) -> None:
    trait = parse_computed_trait({"key": "k", "aggregate": aggregate, "event": "E"})
    assert trait.property is None and trait.kind == "ComputedTrait"


def test_a_static_segment_has_no_condition() -> None:
    static = parse_segment({"kind": "Segment", "key": "imported", "static": True})
    assert static.condition is None and static.title == "imported"
    assert dump_document(static)["static"] is True


BAD: list[tuple[Any, str, str]] = [
    ([], "$", "is an object"),
    ({"kind": "Journey"}, "$.kind", "kind must be one of Segment, ComputedTrait"),
    ({"key": "a"}, "$.kind", "kind must be one of"),
    ({"kind": "Segment", "key": "a"}, "$", "needs a condition"),
    ({"kind": "Segment", "key": "a", "static": True, "condition": {"segment": "b"}}, "$", "static"),
    ({"kind": "Segment", "key": "bad key", "condition": {"segment": "b"}}, "$.key", "not a key"),
    ({"kind": "Segment", "key": "a", "name": " ", "condition": {"segment": "b"}}, "$.name", "name"),
    (
        {
            "kind": "Segment",
            "key": "a",
            "condition": {"all": [{"event": "X", "count": {"gte": "2"}}]},
        },
        "$.condition.all[0].count.gte",
        "whole number",
    ),
    ({"kind": "Segment", "key": "a", "condition": {"segment": "b"}, "x": 1}, "$.x", "unknown key"),
    (
        {"kind": "ComputedTrait", "key": "k", "aggregate": "median", "event": "E"},
        "$.aggregate",
        "'count'",
    ),
    (
        {"kind": "ComputedTrait", "key": "k", "aggregate": "sum", "event": "E"},
        "$",
        "needs a property",
    ),
    (
        {"kind": "ComputedTrait", "key": "k", "aggregate": "count", "event": "E", "within": "1y"},
        "$.within",
        "not a duration",
    ),
    (
        {
            "kind": "ComputedTrait",
            "key": "k",
            "aggregate": "count",
            "event": "E",
            "where": [{"property": "a"}],
        },
        "$.where[0]",
        "needs one operator",
    ),
]


@pytest.mark.parametrize("doc, path, message", BAD, ids=lambda value: str(value)[:40])
def test_bad_documents_name_the_path(doc: Any, path: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_document(doc)
    assert caught.value.details["path"] == path
    assert message in caught.value.message


def segment(key: str, condition: dict[str, Any]) -> Segment:
    return parse_segment({"kind": "Segment", "key": key, "condition": condition})


KNOWN = {
    "vip": segment("vip", {"computed_trait": "ltv", "gt": 1000}),
    "active": segment("active", {"event": "Login", "within": "30d"}),
    "loyal": segment("loyal", {"all": [{"segment": "vip"}, {"segment": "active"}]}),
    "imported": parse_segment({"kind": "Segment", "key": "imported", "static": True}),
}


REFERENCES = [
    (segment("new", {"all": [{"segment": "loyal"}, {"segment": "imported"}]}), None, None),
    (
        segment("new", {"any": [{"segment": "vip"}, {"segment": "ghost"}]}),
        "$.condition.any[1].segment",
        "unknown segment 'ghost'",
    ),
    (
        segment("new", {"not": {"computed_trait": "nope", "gt": 1}}),
        "$.condition.not.computed_trait",
        "unknown computed trait 'nope'",
    ),
    (segment("new", {"segment": "new"}), "$.condition.segment", "refers to itself"),
    # editing vip to depend on loyal closes a loop: vip -> loyal -> vip
    (
        segment("vip", {"all": [{"trait": "x", "exists": True}, {"segment": "loyal"}]}),
        "$.condition.all[1].segment",
        "vip -> loyal -> vip",
    ),
    # editing vip without the loop is fine, and replaces the stored vip
    (segment("vip", {"segment": "active"}), None, None),
]


@pytest.mark.parametrize("doc, path, message", REFERENCES, ids=lambda value: str(value)[:30])
def test_references_are_checked_against_what_exists(
    doc: Segment, path: str | None, message: str | None
) -> None:
    if path is None:
        validate_references(doc, KNOWN, {"ltv"})
        return
    with pytest.raises(InvalidInput) as caught:
        validate_references(doc, KNOWN, {"ltv"})
    assert caught.value.details["path"] == path
    assert message is not None and message in caught.value.message


def test_computed_traits_reference_nothing() -> None:
    trait = parse_computed_trait({"key": "k", "aggregate": "count", "event": "E"})
    validate_references(trait, {}, set())
