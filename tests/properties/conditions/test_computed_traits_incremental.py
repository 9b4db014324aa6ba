"""Computed traits kept event by event equal the same aggregate computed afresh from all the
events, whatever the arrival order and the moments of evaluation; a value holds until its
`valid_until_ms`, and a state survives its JSON form."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from legato.domain.computed_traits import AggregateState, Aggregator
from legato.domain.conditions import EventFact
from legato.domain.segments import AGGREGATES, ComputedTrait, parse_computed_trait

DAY = 86_400_000
NOW = 1_767_603_600_000
WINDOWS = {"1d": DAY, "3d": 3 * DAY}

values = st.sampled_from([None, 0, 1, 2, 1.0, 2.5, -1, "a", "b", True, False, [1], {"x": 1}])
events = st.lists(
    st.tuples(
        st.sampled_from(["E", "Other"]),
        st.integers(-5 * DAY, DAY).map(lambda offset: NOW + offset),
        st.fixed_dictionaries({}, optional={"v": values, "tag": st.sampled_from(["x", "y"])}),
    ),
    max_size=12,
)


@st.composite
def traits(draw: st.DrawFn) -> ComputedTrait:
    aggregate = draw(st.sampled_from(AGGREGATES))
    doc: dict[str, Any] = {"key": "k", "aggregate": aggregate, "event": "E"}
    if aggregate not in ("count", "first", "last") or draw(st.booleans()):
        doc["property"] = "v"
    if draw(st.booleans()):
        doc["within"] = draw(st.sampled_from(sorted(WINDOWS)))
    if draw(st.booleans()):
        doc["where"] = [{"property": "tag", "eq": "x"}]
    return parse_computed_trait(doc)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def afresh(
    trait: ComputedTrait, facts: list[tuple[int, str, int, dict[str, Any]]], now: int
) -> Any:
    """The aggregate by its definition, from (arrival, name, timestamp, properties)."""
    window = WINDOWS.get(trait.within or "")
    rows = [
        (stamp, arrival, props)
        for arrival, name, stamp, props in facts
        if name == "E"
        and stamp <= now
        and (window is None or stamp > now - window)
        and (trait.where is None or props.get("tag") == "x")
    ]
    rows.sort(key=lambda row: (row[0], row[1]))
    if trait.property is None:
        found = [
            (stamp, arrival, 1 if trait.aggregate == "count" else stamp)
            for stamp, arrival, _ in rows
        ]
    else:
        found = [
            (stamp, arrival, props["v"])
            for stamp, arrival, props in rows
            if props.get("v") is not None
        ]
    contributions = [value for _, _, value in found]
    numbers = [value for value in contributions if is_number(value)]
    scalars = [
        value for value in contributions if isinstance(value, str | bool) or is_number(value)
    ]

    def key(value: Any) -> tuple[str, Any]:
        return ("b" if isinstance(value, bool) else "s" if isinstance(value, str) else "n", value)

    match trait.aggregate:
        case "count":
            return len(contributions)
        case "sum":
            total = sum((Fraction(value) for value in numbers), Fraction(0))
            return float(total) if any(isinstance(v, float) for v in numbers) else int(total)
        case "avg":
            return (
                float(sum(Fraction(value) for value in numbers) / len(numbers)) if numbers else None
            )
        case "min":
            return min(numbers, default=None)
        case "max":
            return max(numbers, default=None)
        case "first":
            return found[0][2] if found else None
        case "last":
            return found[-1][2] if found else None
        case "distinct_count":
            return len({key(value) for value in scalars})
        case _:
            tally = Counter(key(value) for value in scalars)
            if not tally:
                return None
            latest = {
                key(value): (stamp, arrival, value)
                for stamp, arrival, value in found
                if value in scalars and key(value) in tally
            }
            best = max(tally, key=lambda k: (tally[k], latest[k][0], latest[k][1]))
            return latest[best][2]


@settings(max_examples=150, deadline=None)
@given(
    trait=traits(), facts=events, steps=st.lists(st.integers(0, 2 * DAY), min_size=1, max_size=4)
)
def test_incremental_equals_afresh(
    trait: ComputedTrait, facts: list[tuple[str, int, dict[str, Any]]], steps: list[int]
) -> None:
    agg = Aggregator(trait)
    state = agg.new_state()
    now = NOW - 5 * DAY
    seen: list[tuple[int, str, int, dict[str, Any]]] = []
    for arrival, (name, stamp, props) in enumerate(facts):
        now = max(now, stamp - DAY)  # events arrive up to a day early (future-dated)
        value, until = agg.apply(state, EventFact(name, stamp, props), now)
        seen.append((arrival, name, stamp, props))
        assert value == afresh(trait, seen, now)
        state = AggregateState.from_json(state.to_json())
    for step in steps:
        later = now + step
        value, until = agg.value(state, later)
        assert value == afresh(trait, seen, later)
        if until is not None:
            assert until > later
            assert afresh(trait, seen, until - 1) == value
            assert afresh(trait, seen, until) != value  # exact: few events, under the lookahead
        now = later


@settings(max_examples=150, deadline=None)
@given(trait=traits(), facts=events, step=st.integers(0, 2 * DAY))
def test_folding_a_history_then_asking_once_equals_applying_each_event(
    trait: ComputedTrait, facts: list[tuple[str, int, dict[str, Any]]], step: int
) -> None:
    """What backfills do (`fold` every event, `value` once) gives what live evaluation gives."""
    agg = Aggregator(trait)
    live, folded = agg.new_state(), agg.new_state()
    now = NOW
    for name, stamp, props in facts:
        agg.apply(live, EventFact(name, stamp, props), now)
        agg.fold(folded, EventFact(name, stamp, props), now)
    assert agg.value(folded, now) == agg.value(live, now)
    assert agg.value(folded, now + step) == agg.value(live, now + step)
