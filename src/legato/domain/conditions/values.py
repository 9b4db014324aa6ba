"""How a comparison reads a JSON value: the typing rules both compilers keep.

- Missing and null are the same: "absent". `exists` is "not absent"; every other operator is
  false on an absent value, except `ne` and `not_in`, which are the exact negations of `eq`
  and `in` (so `{not: {trait: x, eq: 1}}` and `{trait: x, ne: 1}` agree).
- Types never mix: a string never equals a number ("1" vs 1), a boolean is not a number
  (true vs 1). Numbers compare by value (1 equals 1.0).
- `gt`/`gte`/`lt`/`lte`/`between` take a number (compared with number values) or a string
  (compared with string values by code point, i.e. bytewise UTF-8); `between` is inclusive.
- String operators are case-sensitive. `contains` is a substring test on a string value, or,
  on a list value, "some element equals the operand".
- Date operators read the value as an instant (`instants`): a value that is not one is false.
  `before D` is earlier than D's span, `after D` is at or after its end (a `YYYY-MM-DD` names
  the whole day); `between_dates [A, B]` covers A's start to B's end; `within_last d`:
  now - d < t <= now; `within_next d`: now < t <= now + d.
- Paths are dotted keys into nested objects; a list on the way is absent (no indexing).
- A comparison's optional `type` (string, number, boolean, date, list) only limits which
  operators and operands parse; evaluation is the same with or without it.

Never does I/O, never reads the clock: time comes in as `now_ms`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from legato.domain.conditions.facts import FALSE, TRUE, EventFact, Verdict
from legato.domain.conditions.instants import instant_ms, operand_span
from legato.domain.conditions.tree import Comparison, PropertyFilter
from legato.domain.durations import parse_duration_ms

#: A test of one value that does not depend on time.
ValueTest = Callable[[Any], bool]
#: A test of an instant (None: not a date) at a moment, with how long its answer holds.
InstantTest = Callable[[int | None, int], Verdict]


def lookup(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or None when any step is missing (or not an object)."""
    value: Any = doc
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def is_number(value: object) -> bool:
    """A JSON number (a boolean is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equals(operand: Any) -> ValueTest:
    if isinstance(operand, bool):
        return lambda value: value is operand
    if isinstance(operand, str):
        return lambda value: isinstance(value, str) and value == operand
    return lambda value: is_number(value) and value == operand


def _member_of(operands: Sequence[Any]) -> ValueTest:
    strings = {item for item in operands if isinstance(item, str)}
    numbers = {item for item in operands if is_number(item)}
    booleans = {item for item in operands if isinstance(item, bool)}

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        if isinstance(value, bool):
            return value in booleans
        return is_number(value) and value in numbers

    return test


def _ordered(name: str, operand: Any) -> ValueTest:
    same_type: Callable[[Any], bool] = (
        (lambda value: isinstance(value, str)) if isinstance(operand, str) else is_number
    )
    if name == "gt":
        return lambda value: same_type(value) and value > operand
    if name == "gte":
        return lambda value: same_type(value) and value >= operand
    if name == "lt":
        return lambda value: same_type(value) and value < operand
    return lambda value: same_type(value) and value <= operand


def _contains(operand: Any) -> ValueTest:
    element = _equals(operand)
    if isinstance(operand, str):
        return lambda value: (
            (isinstance(value, str) and operand in value)
            or (isinstance(value, list | tuple) and any(element(item) for item in value))
        )
    return lambda value: isinstance(value, list | tuple) and any(element(item) for item in value)


def value_test(name: str, operand: Any) -> ValueTest | None:
    """The test for one operator, or None for the relative-time ones (within_last/next)."""
    if name == "eq":
        return _equals(operand)
    if name == "ne":
        equals = _equals(operand)
        return lambda value: not equals(value)
    if name in ("gt", "gte", "lt", "lte"):
        return _ordered(name, operand)
    if name == "between":
        low, high = _ordered("gte", operand[0]), _ordered("lte", operand[1])
        return lambda value: low(value) and high(value)
    if name == "in":
        return _member_of(operand)
    if name == "not_in":
        member = _member_of(operand)
        return lambda value: not member(value)
    if name == "contains":
        return _contains(operand)
    if name == "starts_with":
        return lambda value: isinstance(value, str) and value.startswith(operand)
    if name == "ends_with":
        return lambda value: isinstance(value, str) and value.endswith(operand)
    if name == "exists":
        return lambda value: value is not None
    if name == "not_exists":
        return lambda value: value is None
    instant = absolute_instant_test(name, operand)
    if instant is None:
        return None
    return lambda value: instant(instant_ms(value))


def absolute_instant_test(name: str, operand: Any) -> Callable[[int | None], bool] | None:
    """before / after / between_dates on an instant; None for other operators."""
    if name == "before":
        start = operand_span(operand).start_ms
        return lambda at: at is not None and at < start
    if name == "after":
        end = operand_span(operand).end_ms
        return lambda at: at is not None and at >= end
    if name == "between_dates":
        low, high = operand_span(operand[0]).start_ms, operand_span(operand[1]).end_ms
        return lambda at: at is not None and low <= at < high
    return None


def relative_instant_test(name: str, duration: str | int) -> InstantTest:
    """within_last / within_next on an instant, with the moment the answer next changes."""
    span = parse_duration_ms(duration)
    if name == "within_last":
        # True on [at, at + span) in `now` terms.
        def within_last(at: int | None, now: int) -> Verdict:
            if at is None:
                return FALSE
            if at <= now < at + span:
                return Verdict(True, at + span)
            return Verdict(False, at) if now < at else FALSE

        return within_last

    # within_next: true on [at - span, at) in `now` terms.
    def within_next(at: int | None, now: int) -> Verdict:
        if at is None:
            return FALSE
        if at - span <= now < at:
            return Verdict(True, at)
        return Verdict(False, at - span) if now < at - span else FALSE

    return within_next


def compile_comparison(comparison: Comparison) -> Callable[[Any, int], Verdict]:
    """A comparison as a function of (value, now) -> Verdict."""
    name, operand = comparison.operator
    test = value_test(name, operand)
    if test is not None:
        static = test
        return lambda value, _now: TRUE if static(value) else FALSE
    relative = relative_instant_test(name, operand)
    return lambda value, now: relative(instant_ms(value), now)


def compile_event_filter(filters: Sequence[PropertyFilter]) -> Callable[[EventFact], bool]:
    """The `where:` filters of an event condition as one test of a single event (all hold)."""
    compiled: list[tuple[tuple[str, ...], ValueTest]] = []
    for item in filters:
        name, operand = item.operator
        test = value_test(name, operand)
        if test is None:  # parsing refuses relative windows in filters
            raise ValueError(f"{name} cannot filter a single event")
        compiled.append((tuple(item.property.split(".")), test))

    def matches(event: EventFact) -> bool:
        properties = event.properties
        return all(test(lookup(properties, path)) for path, test in compiled)

    return matches
