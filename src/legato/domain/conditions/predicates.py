"""The in-memory compiler: a condition tree becomes nested closures, built once.

A compiled predicate answers `Verdict(value, valid_until_ms)`: the value at `now` and a moment
before which it cannot change without new input. Leaves give the exact moment their value
flips (a window lapsing, a future-dated event coming due); combinators give a sound bound:
`all` true holds until its first child flips, `all` false until the last false child flips,
`any` the mirror image, `not` as its child. Re-evaluating at that moment yields either the
flip or the same value with a later bound, so a timer set from it is never late.

Event semantics (kept identical by `legato.store.conditions_sql`): an event counts once its
timestamp is not after `now`; `within d` keeps now - d < t <= now; `between [A, B]` keeps
A's start <= t < B's end. Never does I/O, never reads the clock.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from legato.domain.conditions.buckets import bucket_of, seed_offset
from legato.domain.conditions.facts import (
    FALSE,
    TRUE,
    EvalContext,
    EventFact,
    Predicate,
    ProfileSnapshot,
    Verdict,
)
from legato.domain.conditions.instants import operand_span
from legato.domain.conditions.tree import (
    AllOf,
    AnyOf,
    ComputedTraitCondition,
    ConditionNode,
    CountComparison,
    DateComparison,
    EventCondition,
    Not,
    RandomBucket,
    SegmentCondition,
    TraitCondition,
    walk,
)
from legato.domain.conditions.values import (
    absolute_instant_test,
    compile_comparison,
    compile_event_filter,
    lookup,
    relative_instant_test,
)
from legato.domain.durations import parse_duration_ms

_timestamp = attrgetter("timestamp_ms")


def compile_condition(cond: ConditionNode) -> Predicate:
    """The condition as a predicate (ctx, now_ms) -> Verdict; compile once, call often."""
    if isinstance(cond, AllOf):
        return _all([compile_condition(child) for child in cond.all])
    if isinstance(cond, AnyOf):
        return _any([compile_condition(child) for child in cond.any])
    if isinstance(cond, Not):
        inner = compile_condition(cond.not_)

        def negation(ctx: EvalContext, now: int) -> Verdict:
            value, until = inner(ctx, now)
            return Verdict(not value, until)

        return negation
    if isinstance(cond, TraitCondition):
        return _trait(cond)
    if isinstance(cond, ComputedTraitCondition):
        key = cond.computed_trait
        test = compile_comparison(cond)
        return lambda ctx, now: test(ctx.computed_traits.get(key), now)
    if isinstance(cond, SegmentCondition):
        segment = cond.segment
        return lambda ctx, _now: TRUE if segment in ctx.segments else FALSE
    if isinstance(cond, RandomBucket):
        offset = seed_offset(cond.random_bucket.seed or "")
        share = cond.random_bucket.basis_points
        return lambda ctx, _now: TRUE if bucket_of(offset, ctx.profile_id) < share else FALSE
    return _event(cond)


def _all(children: list[Predicate]) -> Predicate:
    def every(ctx: EvalContext, now: int) -> Verdict:
        true_until: int | None = None  # min over true children (None: forever)
        false_until = -1  # max over false children; stays -1 while none is false
        for child in children:
            value, until = child(ctx, now)
            if value:
                if until is not None and (true_until is None or until < true_until):
                    true_until = until
            elif until is None:
                return FALSE  # a child false for good keeps the whole false for good
            elif until > false_until:
                false_until = until
        if false_until >= 0:
            return Verdict(False, false_until)
        return Verdict(True, true_until)

    return every


def _any(children: list[Predicate]) -> Predicate:
    def some(ctx: EvalContext, now: int) -> Verdict:
        false_until: int | None = None  # min over all children (all are false if we get here)
        true_until = -1  # max over true children
        for child in children:
            value, until = child(ctx, now)
            if value:
                if until is None:
                    return TRUE
                if until > true_until:
                    true_until = until
            elif until is not None and (false_until is None or until < false_until):
                false_until = until
        if true_until >= 0:
            return Verdict(True, true_until)
        return Verdict(False, false_until)

    return some


def _trait(cond: TraitCondition) -> Predicate:
    test = compile_comparison(cond)
    path = tuple(cond.trait.split("."))
    if len(path) == 1:
        key = path[0]
        return lambda ctx, now: test(ctx.traits.get(key), now)
    return lambda ctx, now: test(lookup(ctx.traits, path), now)


# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class _EventPlan:
    """What one event condition reads, decided at compile time."""

    name: str
    keep: Callable[[EventFact], bool] | None
    # Events older than now - lookback can no longer change the value (None: all matter).
    lookback_ms: int | None
    # Events before floor / at or after upper never count (a `between` window's ends).
    floor_ms: int | None
    upper_ms: int | None
    # The verdict at `now` from the sorted timestamps of the events that can matter.
    verdict: Callable[[list[int], int], Verdict]


def _event(cond: EventCondition) -> Predicate:
    plan = _plan(cond)

    def event_condition(ctx: EvalContext, now: int) -> Verdict:
        return plan.verdict(_timestamps(ctx.events(plan.name), plan, now), now)

    return event_condition


def _plan(cond: EventCondition) -> _EventPlan:
    keep = compile_event_filter(cond.where) if cond.where else None
    for measure, latest in ((cond.first_performed, False), (cond.last_performed, True)):
        if measure is not None:
            return _performed_plan(cond.event, keep, measure, latest)
    counts = _count_test(cond)
    if cond.within is not None:
        span = parse_duration_ms(cond.within)
        return _EventPlan(cond.event, keep, span - 1, None, None, _counting(counts, span))
    # Without a window, or with `between` (timestamps already cut to it): all count once due.
    verdict = _counting(counts, None)
    if cond.between is not None:
        low = operand_span(cond.between[0]).start_ms
        high = operand_span(cond.between[1]).end_ms
        return _EventPlan(cond.event, keep, None, low, high, verdict)
    return _EventPlan(cond.event, keep, None, None, None, verdict)


def _counting(
    counts: Callable[[int], bool], span: int | None
) -> Callable[[list[int], int], Verdict]:
    """A count test over timestamps, walking arrivals (t) and lapses (t + span) in time order
    to the first moment the test's answer changes. With a window, the timestamps given are
    only those still inside it (the plan's lookback), so none has lapsed yet."""

    def verdict(stamps: list[int], now: int) -> Verdict:
        arriving = bisect_right(stamps, now)
        leaving = 0
        count = arriving
        value = counts(count)
        size = len(stamps)
        while arriving < size or (span is not None and leaving < size):
            moment = stamps[arriving] if arriving < size else None
            if span is not None and leaving < size:
                lapse = stamps[leaving] + span
                moment = lapse if moment is None or lapse < moment else moment
            assert moment is not None
            while arriving < size and stamps[arriving] == moment:
                count += 1
                arriving += 1
            while span is not None and leaving < size and stamps[leaving] + span == moment:
                count -= 1
                leaving += 1
            if counts(count) != value:
                return Verdict(value, moment)
        return TRUE if value else FALSE

    return verdict


def _count_test(cond: EventCondition) -> Callable[[int], bool]:
    if cond.count is None:
        return (lambda n: n == 0) if cond.performed is False else (lambda n: n > 0)
    return count_test(cond.count)


def count_test(count: CountComparison) -> Callable[[int], bool]:
    """A count comparison as a test of a number of events."""
    name, operand = count.operator
    if name == "between":
        low, high = operand
        return lambda n: low <= n <= high
    tests: dict[str, Callable[[int], bool]] = {
        "eq": lambda n: n == operand,
        "ne": lambda n: n != operand,
        "gt": lambda n: n > operand,
        "gte": lambda n: n >= operand,
        "lt": lambda n: n < operand,
        "lte": lambda n: n <= operand,
    }
    return tests[name]


def _performed_plan(
    name: str, keep: Callable[[EventFact], bool] | None, measure: DateComparison, latest: bool
) -> _EventPlan:
    op, operand = measure.operator
    pick = _last_at if latest else _first_at
    if op == "within_last":
        relative = relative_instant_test(op, operand)
        span = parse_duration_ms(operand)

        def recent(stamps: list[int], at: int) -> bool:
            return relative(pick(stamps, at), at).value

        # Only the last event matters for "last performed within": older ones are too old.
        lookback = span - 1 if latest else None
        return _EventPlan(name, keep, lookback, None, None, _scanning(recent, span))
    absolute = absolute_instant_test(op, operand)
    assert absolute is not None

    def dated(stamps: list[int], at: int) -> bool:
        return absolute(pick(stamps, at))

    return _EventPlan(name, keep, None, None, None, _scanning(dated, None))


def _scanning(
    value_at: Callable[[list[int], int], bool], shift: int | None
) -> Callable[[list[int], int], Verdict]:
    """A verdict that tries each moment the value may change (arrivals, and lapses t + shift)
    until it does."""

    def verdict(stamps: list[int], now: int) -> Verdict:
        value = value_at(stamps, now)
        for moment in _moments_after(stamps, now, shift):
            if value_at(stamps, moment) != value:
                return Verdict(value, moment)
        return TRUE if value else FALSE

    return verdict


def _first_at(stamps: list[int], at: int) -> int | None:
    return stamps[0] if stamps and stamps[0] <= at else None


def _last_at(stamps: list[int], at: int) -> int | None:
    index = bisect_right(stamps, at)
    return stamps[index - 1] if index else None


def _timestamps(events: Sequence[EventFact], plan: _EventPlan, now: int) -> list[int]:
    """Sorted timestamps of the events that can matter from `now` on."""
    floor = plan.floor_ms
    if plan.lookback_ms is not None:
        floor = now - plan.lookback_ms
    start = 0 if floor is None else bisect_left(events, floor, key=_timestamp)
    keep, upper = plan.keep, plan.upper_ms
    if keep is None and upper is None:  # the usual case: no filter, no `between` end
        return [event.timestamp_ms for event in events[start:]]
    stamps: list[int] = []
    for index in range(start, len(events)):
        event = events[index]
        if upper is not None and event.timestamp_ms >= upper:
            break
        if keep is None or keep(event):
            stamps.append(event.timestamp_ms)
    return stamps


def _moments_after(stamps: list[int], now: int, shift: int | None) -> Iterator[int]:
    """The moments after `now` at which the value may change, ascending, each once."""
    arriving = stamps[bisect_right(stamps, now) :]
    sources: list[Any] = [arriving]
    if shift is not None:
        sources.append(stamp + shift for stamp in stamps if stamp + shift > now)
    previous = None
    for moment in heapq.merge(*sources):
        if moment != previous:
            previous = moment
            yield moment


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class References:
    """What a condition reads, for the dispatch index (which segments an input can affect).

    `traits` holds top-level trait keys (`address` for `address.city`). `uses_time` is True
    when the value can change with time alone: relative windows, and any event condition
    (an event may carry a future timestamp). `filtered_events`: the event names whose
    properties some `where` filter reads (the others are read for their timestamps alone).
    """

    events: frozenset[str]
    traits: frozenset[str]
    computed_traits: frozenset[str]
    segments: frozenset[str]
    uses_time: bool
    filtered_events: frozenset[str] = frozenset()


def references(cond: ConditionNode) -> References:
    """The events, traits, computed traits and segments a condition mentions."""
    events: set[str] = set()
    traits: set[str] = set()
    computed: set[str] = set()
    segments: set[str] = set()
    filtered: set[str] = set()
    uses_time = False
    for _, node in walk(cond):
        if isinstance(node, EventCondition):
            events.add(node.event)
            if node.where:
                filtered.add(node.event)
            uses_time = True
        elif isinstance(node, TraitCondition):
            traits.add(node.trait.split(".", 1)[0])
            uses_time = uses_time or node.operator[0] in ("within_last", "within_next")
        elif isinstance(node, ComputedTraitCondition):
            computed.add(node.computed_trait)
            uses_time = uses_time or node.operator[0] in ("within_last", "within_next")
        elif isinstance(node, SegmentCondition):
            segments.add(node.segment)
    return References(
        frozenset(events),
        frozenset(traits),
        frozenset(computed),
        frozenset(segments),
        uses_time,
        frozenset(filtered),
    )


# ------------------------------------------------------------------------- new profiles

_NOBODY = ProfileSnapshot("")


def may_hold_for_a_new_profile(cond: ConditionNode) -> bool:
    """True when the condition can hold for a profile with no traits, events, computed
    values or memberships yet (`not`, `ne`, `not_exists`, `performed: false`, a random
    bucket...): such a segment must be evaluated when a profile is born, because no event
    name or trait the index knows may ever touch it."""
    return True in _values_when_empty(cond)


def _values_when_empty(cond: ConditionNode) -> frozenset[bool]:
    """The values the condition can take on an empty profile (a random bucket depends on
    the profile's id, so it may take both)."""
    if isinstance(cond, AllOf):
        parts = [_values_when_empty(child) for child in cond.all]
        can_hold = all(True in part for part in parts)
        can_fail = any(False in part for part in parts)
        return frozenset(value for value, ok in ((True, can_hold), (False, can_fail)) if ok)
    if isinstance(cond, AnyOf):
        parts = [_values_when_empty(child) for child in cond.any]
        can_hold = any(True in part for part in parts)
        can_fail = all(False in part for part in parts)
        return frozenset(value for value, ok in ((True, can_hold), (False, can_fail)) if ok)
    if isinstance(cond, Not):
        return frozenset(not value for value in _values_when_empty(cond.not_))
    if isinstance(cond, RandomBucket):
        return frozenset(_bucket_values(cond.random_bucket.basis_points))
    # With nothing to read, a leaf's value depends on neither the profile nor the time.
    return frozenset({compile_condition(cond)(_NOBODY, 0).value})


def _bucket_values(share: int) -> set[bool]:
    values: set[bool] = set()
    if share > 0:
        values.add(True)
    if share < 10_000:
        values.add(False)
    return values
