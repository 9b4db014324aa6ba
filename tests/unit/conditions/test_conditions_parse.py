"""Parsing the condition language: every documented example parses, bad input is refused with
the JSON path of the offending node, bounds hold, and the JSON Schema matches the parser."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from legato.domain.conditions import (
    AllOf,
    Condition,
    EventCondition,
    TraitCondition,
    condition_schema,
    dump_condition,
    parse_condition,
    parse_event_filters,
)
from legato.domain.conditions.operands import MAX_DEPTH, MAX_LIST, MAX_NODES, MAX_STRING
from legato.errors import InvalidInput

SCHEMA = jsonschema.Draft202012Validator(condition_schema())

# The shapes the issue and its brief promise (YAML as users write it).
EXAMPLES = """
- all:
    - {event: Order Completed, count: {gte: 2}, within: 30d}
    - {trait: country, in: [ES, MX, FR]}
- {any: [{segment: vip}, {trait: plan, eq: pro}]}
- {not: {segment: vip}}
- {event: Order Completed, count: {gte: 2}, within: 30d}
- {event: X}
- {event: X, performed: false, within: 7d}
- event: Order Completed
  where: [{property: revenue, gt: 100}, {property: shipping.country, eq: ES}]
- {event: Order Completed, between: [2024-01-01, 2024-12-31]}
- {event: Order Completed, between: ["2024-01-01T00:00:00Z", "2024-02-01T12:30:00+02:00"]}
- {event: Order Completed, first_performed: {within_last: 7d}}
- {event: Order Completed, last_performed: {before: 2024-06-01}}
- {event: Order Completed, first_performed: {between_dates: [2024-01-01, 2024-01-31]}}
- {event: Order Completed, last_performed: {after: 2024-06-01T10:00:00Z}}
- {trait: country, in: [ES, MX, FR]}
- {trait: country, eq: ES}
- {trait: country, ne: ES}
- {trait: age, gt: 17}
- {trait: age, gte: 18}
- {trait: age, lt: 65}
- {trait: age, lte: 65.5}
- {trait: age, between: [18, 65]}
- {trait: name, between: [a, m]}
- {trait: country, not_in: [US, CA]}
- {trait: email, contains: "@gmail."}
- {trait: tags, contains: vip}
- {trait: email, starts_with: admin}
- {trait: email, ends_with: .es}
- {trait: phone, exists: true}
- {trait: phone, not_exists: true}
- {trait: address.city, eq: Madrid}
- {trait: signup_at, within_last: 7d}
- {trait: signup_at, type: date, within_last: 7d}
- {trait: plan, type: string, in: [pro, team]}
- {trait: seats, type: number, gte: 5}
- {trait: verified, type: boolean, eq: true}
- {trait: tags, type: list, contains: vip}
- {trait: renewal_at, within_next: 3d}
- {trait: signup_at, before: 2024-01-01}
- {trait: signup_at, after: "2024-01-01T09:00:00Z"}
- {trait: signup_at, between_dates: [2024-01-01, 2024-03-31]}
- {trait: birthday, eq: 1990-05-17}
- {computed_trait: lifetime_value, gt: 100}
- {segment: vip}
- {random_bucket: {percent: 20}}
- {random_bucket: {percent: 12.5, seed: spring-promo}}
- {event: Segment Entered, where: [{property: segment, eq: vip}], within: 7d}
- {event: Message Opened, where: [{property: message_id, eq: welcome-1}]}
- {all: []}
"""


@pytest.mark.parametrize("shape", yaml.safe_load(EXAMPLES), ids=lambda shape: str(shape)[:60])
def test_every_documented_example_parses_and_round_trips(shape: dict[str, Any]) -> None:
    cond = parse_condition(shape)
    dumped = dump_condition(cond)
    assert parse_condition(dumped) == cond
    SCHEMA.validate(dumped)


def test_the_dumped_shape_is_what_users_write() -> None:
    cond = parse_condition({"trait": "country", "in": ["ES"]})
    assert dump_condition(cond) == {"trait": "country", "in": ["ES"]}
    event = parse_condition({"within": "30d", "count": {"gte": 2}, "event": "Order Completed"})
    assert list(dump_condition(event)) == ["event", "count", "within"]
    dated = parse_condition(yaml.safe_load("{trait: t, before: 2024-01-01}"))
    assert dump_condition(dated) == {"trait": "t", "before": "2024-01-01"}


def test_the_tree_is_typed_and_frozen() -> None:
    cond = parse_condition(yaml.safe_load(EXAMPLES)[0])
    assert isinstance(cond, AllOf)
    assert isinstance(cond.all[0], EventCondition) and cond.all[0].within == "30d"
    assert isinstance(cond.all[1], TraitCondition) and cond.all[1].operator == (
        "in",
        ("ES", "MX", "FR"),
    )
    with pytest.raises(ValidationError):
        cond.all[1].trait = "x"  # type: ignore[misc]
    assert hash(cond) == hash(parse_condition(yaml.safe_load(EXAMPLES)[0]))


BAD: list[tuple[Any, str, str]] = [
    ("x", "$", "a condition is an object"),
    ({}, "$", "needs one of all, any, not, event"),
    ({"trait": "a", "event": "b"}, "$", "this one has event and trait"),
    ({"all": {"trait": "a"}}, "$.all", "all takes a list"),
    ({"all": [{"event": "X"}, {"trait": "a", "gtx": 3}]}, "$.all[1].gtx", "unknown key 'gtx'"),
    (
        {"all": [{"event": "X", "count": {"gte": -1}}]},
        "$.all[0].count.gte",
        "greater than or equal to 0",
    ),
    (
        {"any": [{"not": {"event": "X", "count": {"most": 1}}}]},
        "$.any[0].not.count.most",
        "unknown key 'most'",
    ),
    ({"not": {"segment": "a b"}}, "$.not.segment", "'a b' is not a key"),
    ({"all": [], "x": 1}, "$.x", "unknown key 'x' beside all"),
    ({"trait": "a"}, "$", "needs one operator"),
    ({"trait": "a", "gt": 1, "lt": 2}, "$", "not several (gt, lt)"),
    ({"trait": "a", "eq": [1]}, "$.eq", "needs a string, number or boolean, not a list"),
    ({"trait": "a", "eq": None}, "$", "needs one operator"),
    ({"trait": "a", "gt": True}, "$.gt", "needs a number or a string"),
    ({"trait": "a", "gt": "2024-01-01", "x": 1}, "$.x", "unknown key"),
    ({"trait": "a", "between": [5, 1]}, "$.between", "wrong way round"),
    ({"trait": "a", "between": [1, "b"]}, "$.between", "two numbers or two strings"),
    ({"trait": "a", "in": "ES"}, "$.in", "needs a list"),
    ({"trait": "a", "in": [1, [2]]}, "$.in[1]", "not a list"),
    ({"trait": "a", "starts_with": ""}, "$.starts_with", "non-empty"),
    ({"trait": "a", "exists": False}, "$.exists", "must be true"),
    ({"trait": "a", "eq": 2**60}, "$.eq", "within ±2**53"),
    ({"trait": "a", "eq": float("nan")}, "$.eq", "finite"),
    ({"trait": "a", "before": "yesterday"}, "$.before", "not a date"),
    ({"trait": "a", "before": "2024-02-30"}, "$.before", "not a date"),
    ({"trait": "a", "before": 2**60}, "$.before", "not an epoch time"),
    ({"trait": "a", "within_last": "7x"}, "$.within_last", "not a duration"),
    ({"trait": "a", "within_last": "0s"}, "$.within_last", "longer than zero"),
    ({"trait": "a", "within_last": "36501d"}, "$.within_last", "36500d"),
    (
        {"trait": "a", "between_dates": ["2024-02-01", "2024-01-31"]},
        "$.between_dates",
        "ends before",
    ),
    ({"trait": "a.1", "eq": 1}, "$.trait", "cannot be all digits"),
    ({"trait": "a..b", "eq": 1}, "$.trait", "empty part"),
    ({"trait": 'a"b', "eq": 1}, "$.trait", "quotes"),
    ({"trait": ".".join("a" * 9), "eq": 1}, "$.trait", "at most 8"),
    ({"trait": "a", "eq": "x" * (MAX_STRING + 1)}, "$.eq", "longer than"),
    ({"trait": "a", "eq": "a\x00b"}, "$.eq", "NUL"),
    ({"computed_trait": "bad key", "gt": 1}, "$.computed_trait", "not a key"),
    ({"trait": "a", "type": "datetime", "eq": 1}, "$.type", "unknown type 'datetime'"),
    (
        {"trait": "a", "type": "number", "starts_with": "x"},
        "$.starts_with",
        "not apply to a number",
    ),
    ({"trait": "a", "type": "date", "eq": "2024-01-01"}, "$.eq", "not apply to a date"),
    ({"trait": "a", "type": "number", "in": [1, "2"]}, "$.in", "compares with numbers only"),
    ({"trait": "a", "type": "list", "gt": 1}, "$.gt", "not apply to a list"),
    (
        {"event": "E", "where": [{"property": "p", "type": "boolean", "eq": "true"}]},
        "$.where[0].eq",
        "compares with booleans only",
    ),
    ({"event": ""}, "$.event", "non-empty"),
    ({"event": "x" * 201}, "$.event", "at most 200"),
    ({"event": "X", "performed": "no"}, "$.performed", "true or false"),
    ({"event": "X", "count": 5}, "$.count", "needs an object"),
    ({"event": "X", "count": {}}, "$.count", "count needs one operator"),
    ({"event": "X", "count": {"between": [3, 1]}}, "$.count.between", "wrong way round"),
    ({"event": "X", "performed": True, "count": {"gte": 1}}, "$", "not performed and count"),
    (
        {"event": "X", "within": "7d", "between": ["2024-01-01", "2024-02-01"]},
        "$.between",
        "not both",
    ),
    (
        {"event": "X", "within": "7d", "first_performed": {"within_last": "1d"}},
        "$.within",
        "does not combine",
    ),
    ({"event": "X", "between": ["2024-02-01", "2024-01-01"]}, "$.between", "ends before it starts"),
    (
        {"event": "X", "first_performed": {"within_next": "1d"}},
        "$.first_performed.within_next",
        "unknown key",
    ),
    ({"event": "X", "last_performed": {}}, "$.last_performed", "needs one operator"),
    ({"event": "X", "where": {"property": "a"}}, "$.where", "needs a list"),
    (
        {"event": "X", "where": [{"property": "a", "within_last": "1d"}]},
        "$.where[0]",
        "not allowed in a property filter",
    ),
    (
        {"event": "X", "where": [{"property": "a", "eq": 1, "zz": 2}]},
        "$.where[0].zz",
        "unknown key 'zz'",
    ),
    ({"event": "X", "where": [{"eq": 1}]}, "$.where[0].property", "missing 'property'"),
    ({"random_bucket": {"percent": 20.123}}, "$.random_bucket.percent", "two decimals"),
    ({"random_bucket": {"percent": 101}}, "$.random_bucket.percent", "from 0 to 100"),
    ({"random_bucket": {"percent": True}}, "$.random_bucket.percent", "needs a number"),
    ({"random_bucket": {}}, "$.random_bucket.percent", "missing 'percent'"),
]


@pytest.mark.parametrize("shape, path, message", BAD, ids=lambda value: str(value)[:40])
def test_bad_input_names_the_json_path(shape: Any, path: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_condition(shape)
    assert caught.value.details["path"] == path
    assert message in caught.value.message


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_condition({"any": [{"segment": "a b"}]}, path="$.nodes[3].condition")
    assert caught.value.details["path"] == "$.nodes[3].condition.any[0].segment"


def _nested(depth: int) -> dict[str, Any]:
    shape: dict[str, Any] = {"segment": "s"}
    for _ in range(depth - 1):
        shape = {"not": shape}
    return shape


@pytest.mark.parametrize(
    "shape, path, message",
    [
        (_nested(MAX_DEPTH + 1), "$" + ".not" * MAX_DEPTH, "at most 16 levels"),
        (
            {"any": [{"all": [{"segment": "s"}] * 100}] * 3},
            "$.any[2].all[52]",
            f"at most {MAX_NODES} nodes",
        ),
        ({"all": [{"segment": "s"}] * 101}, "$.all", "at most 100 conditions"),
        ({"trait": "a", "in": list(range(MAX_LIST + 1))}, "$.in", "at most 1000 items"),
        (
            {"event": "X", "where": [{"property": "a", "exists": True}] * 17},
            "$.where",
            "at most 16 items",
        ),
    ],
    ids=["depth", "nodes", "children", "list", "filters"],
)
def test_bounds_keep_one_condition_from_stalling_a_worker(
    shape: Any, path: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_condition(shape)
    assert caught.value.details["path"] == path
    assert message in caught.value.message


def test_the_deepest_and_biggest_allowed_conditions_parse() -> None:
    assert parse_condition(_nested(MAX_DEPTH))
    assert parse_condition({"any": [{"all": [{"segment": "s"}] * 84}] * 3})


def test_event_filters_parse_alone_for_journeys() -> None:
    filters = parse_event_filters([{"property": "total", "gt": 50}], path="$.trigger.where")
    assert filters[0].property == "total" and filters[0].operator == ("gt", 50)
    with pytest.raises(InvalidInput) as caught:
        parse_event_filters([{"property": "total", "gt": 50, "lt": 1}], path="$.trigger.where")
    assert caught.value.details["path"] == "$.trigger.where[0]"
    with pytest.raises(InvalidInput):
        parse_event_filters({"property": "total"})


class Holder(BaseModel):
    """A document that embeds a condition, as journeys do."""

    nodes: list[Condition]


def test_a_condition_field_validates_with_the_nested_path() -> None:
    held = Holder.model_validate({"nodes": [{"segment": "a"}, {"event": "X", "within": "7d"}]})
    assert isinstance(held.nodes[1], EventCondition)
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate(
            {"nodes": [{"segment": "a"}, {"all": [{"event": "X", "count": {"x": 1}}]}]}
        )
    error = caught.value.errors()[0]
    assert error["loc"] == ("nodes", 1, "all", 0, "count", "x")
    assert "unknown key 'x'" in error["msg"]


SCHEMA_REFUSES = [
    {"event": "X", "where": [{"property": "p", "within_last": "1d"}]},
    {"event": "X", "first_performed": {"before": "2024-01-01", "after": "2023-01-01"}},
    {"trait": "a", "type": "date"},
    {"trait": "a", "type": "datetime", "eq": 1},
    {"trait": "a", "eq": 1, "ne": 2},
    {"trait": "a"},
    {"trait": "a", "eq": None},
    {"trait": "a", "eq": [1]},
    {"event": "X", "count": {"gte": 1, "lte": 3}},
    {"segment": "s", "trait": "a"},
    {"random_bucket": {}},
    {"all": [{"segment": "s", "x": 1}]},
]


@pytest.mark.parametrize("shape", SCHEMA_REFUSES, ids=str)
def test_the_schema_refuses_what_the_parser_refuses(shape: dict[str, Any]) -> None:
    assert not SCHEMA.is_valid(shape)
    with pytest.raises(InvalidInput):
        parse_condition(shape)


def test_the_schema_is_valid_json_schema_with_described_leaves() -> None:
    schema = condition_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    leaves = schema["$defs"]
    assert {"EventCondition", "TraitCondition", "AllOf", "RandomBucket"} <= set(leaves)
    assert leaves["TraitCondition"]["required"] == ["trait"]
    assert {"required": ["eq"]} in leaves["TraitCondition"]["oneOf"]  # exactly one operator
    assert {"required": ["within_last"]} not in leaves["PropertyFilter"]["oneOf"]
    assert "description" in leaves["EventCondition"]
