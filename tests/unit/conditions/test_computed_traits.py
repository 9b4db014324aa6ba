"""Computed traits, aggregate by aggregate, kept incrementally with their own "valid until"."""

from __future__ import annotations

from typing import Any

import pytest

from legato.domain.computed_traits import AggregateState, Aggregator, ComputedValue
from legato.domain.conditions import EventFact
from legato.domain.segments import parse_computed_trait

DAY = 86_400_000
NOW = 1_767_603_600_000
BUY = "Order Completed"


def aggregator(aggregate: str, **extra: Any) -> Aggregator:
    return Aggregator(
        parse_computed_trait({"key": "k", "aggregate": aggregate, "event": BUY, **extra})
    )


ORDERS = [
    (-5 * DAY, {"revenue": 10, "sku": "a"}),
    (-4 * DAY, {"revenue": 2.5, "sku": "b"}),
    (-3 * DAY, {"revenue": "12", "sku": "a"}),  # a string is not a number
    (-2 * DAY, {"sku": 1}),  # no revenue
    (-1 * DAY, {"revenue": 7, "sku": 1.0}),
]

AGGREGATES: list[tuple[str, dict[str, Any], Any]] = [
    ("count", {}, 5),
    ("count", {"property": "revenue"}, 4),
    ("count", {"where": [{"property": "revenue", "gt": 5}]}, 2),
    ("sum", {"property": "revenue"}, 19.5),
    ("sum", {"property": "revenue", "where": [{"property": "sku", "eq": "a"}]}, 10),
    ("avg", {"property": "revenue"}, 6.5),
    ("min", {"property": "revenue"}, 2.5),
    ("max", {"property": "revenue"}, 10),
    ("first", {}, NOW - 5 * DAY),
    ("last", {}, NOW - DAY),
    ("first", {"property": "sku"}, "a"),
    ("last", {"property": "revenue"}, 7),
    ("distinct_count", {"property": "sku"}, 3),  # "a", "b", and 1 == 1.0
    ("most_frequent", {"property": "sku"}, 1.0),  # a tie (2 each) goes to the most recent
    ("most_frequent", {"property": "sku", "within": "3d"}, 1.0),
    ("sum", {"property": "revenue", "within": "3d"}, 7),
    ("count", {"within": "3d"}, 2),  # the event at exactly now - 3d is out
    ("avg", {"property": "missing"}, None),
    ("min", {"property": "missing"}, None),
    ("sum", {"property": "missing"}, 0),
    ("distinct_count", {"property": "missing"}, 0),
    ("most_frequent", {"property": "missing"}, None),
]


@pytest.mark.parametrize("aggregate, extra, expected", AGGREGATES, ids=str)
def test_aggregates(aggregate: str, extra: dict[str, Any], expected: Any) -> None:
    agg = aggregator(aggregate, **extra)
    state = agg.new_state()
    result = None
    for offset, props in reversed(ORDERS):  # arrival order does not matter
        result = agg.apply(state, EventFact(BUY, NOW + offset, props), NOW)
    assert result is not None
    assert result.value == expected
    assert type(result.value) is type(expected)
    restored = AggregateState.from_json(state.to_json())
    assert agg.value(restored, NOW).value == expected


def test_other_events_and_future_events() -> None:
    agg = aggregator("count")
    state = agg.new_state()
    assert agg.apply(state, EventFact("Other", NOW, {}), NOW) == ComputedValue(0, None)
    # A future-dated event counts from its timestamp on: the value says when it changes.
    assert agg.apply(state, EventFact(BUY, NOW + DAY, {}), NOW) == ComputedValue(0, NOW + DAY)
    assert agg.value(state, NOW + DAY) == ComputedValue(1, None)


def test_a_windowed_value_says_when_it_lapses() -> None:
    agg = aggregator("sum", property="revenue", within="30d")
    state = agg.new_state()
    agg.apply(state, EventFact(BUY, NOW - 20 * DAY, {"revenue": 10}), NOW)
    value = agg.apply(state, EventFact(BUY, NOW - 5 * DAY, {"revenue": 5}), NOW)
    assert value == ComputedValue(15, NOW + 10 * DAY)
    assert agg.value(state, NOW + 10 * DAY) == ComputedValue(5, NOW + 25 * DAY)
    assert agg.value(state, NOW + 25 * DAY) == ComputedValue(0, None)
    assert state.entries == []  # lapsed contributions are dropped


def test_valid_until_skips_moments_that_change_nothing() -> None:
    agg = aggregator("max", property="revenue", within="30d")
    state = agg.new_state()
    agg.apply(state, EventFact(BUY, NOW - 20 * DAY, {"revenue": 1}), NOW)
    value = agg.apply(state, EventFact(BUY, NOW - 5 * DAY, {"revenue": 9}), NOW)
    # The older, smaller order lapsing first changes nothing; the max lapses at +25d.
    assert value == ComputedValue(9, NOW + 25 * DAY)
