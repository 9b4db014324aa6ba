"""Computed traits kept incrementally: one profile's aggregate, updated event by event.

Which events count (the same rules as event conditions): the trait's event name, its `where`
filters, a timestamp not after `now`, and for `within d` now - d < t. What each contributes:

    count            1 per event (only events carrying the property, when one is named)
    sum, avg         numeric property values (exact rational sum; avg a float)
    min, max         numeric property values
    first, last      the property's value (or the event's timestamp_ms without a property),
                     earliest / latest by timestamp, ties by arrival order
    distinct_count   distinct scalar values (1 and 1.0 are one value; "1" another)
    most_frequent    the commonest scalar value; a tie goes to the most recent occurrence

Events without the property (or with null) contribute nothing; values of the wrong type are
ignored. With no contribution: count and distinct_count 0, sum 0, the others None.

An `AggregateState` is plain data (`to_json`/`from_json`), mutated in place by
`Aggregator.apply`; no I/O, no clock. Unwindowed traits fold events into a few numbers;
windowed ones keep the window's contributions to let them lapse, and answer when the value
next changes (`valid_until_ms`) so the runtime can schedule the re-check instead of polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from legato.domain.conditions import EventFact, compile_event_filter
from legato.domain.conditions.values import is_number, lookup
from legato.domain.durations import parse_duration_ms
from legato.domain.segments import ComputedTrait

#: Most future moments examined for the next change; past it the bound is conservative.
MAX_LOOKAHEAD = 64

Entry = tuple[int, int, Any]  # (timestamp_ms, arrival sequence, contribution)


class ComputedValue(NamedTuple):
    """A computed trait's value now and the moment it next changes without new events."""

    value: Any
    valid_until_ms: int | None


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    """Identity of a value for distinct_count / most_frequent (None: not counted)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    if is_number(value):
        return ("n", value)
    return None


@dataclass
class _Accumulator:
    """What an aggregate needs of the contributions folded so far."""

    aggregate: str
    count: int = 0
    total: Fraction = field(default_factory=Fraction)
    floats: bool = False
    best: Any = None
    edge: Entry | None = None
    # key -> [occurrences, latest timestamp, latest sequence, latest value]
    tally: dict[tuple[str, Any], list[Any]] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        stamp, seq, value = entry
        kind = self.aggregate
        if kind == "count":
            self.count += 1
        elif kind in ("sum", "avg"):
            if is_number(value):
                self.count += 1
                self.total += Fraction(value)
                self.floats = self.floats or isinstance(value, float)
        elif kind in ("min", "max"):
            if is_number(value) and (
                self.best is None or (value < self.best if kind == "min" else value > self.best)
            ):
                self.best = value
        elif kind == "first":
            if self.edge is None or (stamp, seq) < self.edge[:2]:
                self.edge = entry
        elif kind == "last":
            if self.edge is None or (stamp, seq) > self.edge[:2]:
                self.edge = entry
        else:
            key = _scalar_key(value)
            if key is not None:
                seen = self.tally.setdefault(key, [0, stamp, seq, value])
                seen[0] += 1
                if (stamp, seq) >= (seen[1], seen[2]):
                    seen[1:] = [stamp, seq, value]

    def result(self) -> Any:
        kind = self.aggregate
        if kind == "count":
            return self.count
        if kind == "sum":
            return float(self.total) if self.floats else int(self.total)
        if kind == "avg":
            return float(self.total / self.count) if self.count else None
        if kind in ("min", "max"):
            return self.best
        if kind in ("first", "last"):
            return None if self.edge is None else self.edge[2]
        if kind == "distinct_count":
            return len(self.tally)
        if not self.tally:
            return None
        _, _, _, value = max(self.tally.values(), key=lambda seen: (seen[0], seen[1], seen[2]))
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total": [str(self.total.numerator), str(self.total.denominator)],
            "floats": self.floats,
            "best": self.best,
            "edge": None if self.edge is None else list(self.edge),
            "tally": [[*key, *seen] for key, seen in self.tally.items()],
        }

    @classmethod
    def from_json(cls, aggregate: str, data: dict[str, Any]) -> _Accumulator:
        numerator, denominator = data["total"]
        edge = data["edge"]
        return cls(
            aggregate,
            data["count"],
            Fraction(int(numerator), int(denominator)),
            data["floats"],
            data["best"],
            None if edge is None else (edge[0], edge[1], edge[2]),
            {(row[0], row[1]): list(row[2:]) for row in data["tally"]},
        )


@dataclass
class AggregateState:
    """One profile's progress on one computed trait (JSON-serialisable)."""

    aggregate: str
    seq: int = 0
    folded: _Accumulator | None = None  # unwindowed: contributions already in the past
    entries: list[Entry] = field(default_factory=list)  # windowed: all; else: future ones

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON object (what the store keeps)."""
        return {
            "aggregate": self.aggregate,
            "seq": self.seq,
            "folded": None if self.folded is None else self.folded.to_json(),
            "entries": [list(entry) for entry in self.entries],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AggregateState:
        """A state from `to_json`'s output."""
        aggregate = data["aggregate"]
        folded = data["folded"]
        return cls(
            aggregate,
            data["seq"],
            None if folded is None else _Accumulator.from_json(aggregate, folded),
            [(row[0], row[1], row[2]) for row in data["entries"]],
        )


class Aggregator:
    """Maintains one computed trait: compile once per definition, use for every profile."""

    def __init__(self, trait: ComputedTrait) -> None:
        self.trait = trait
        self.aggregate = trait.aggregate
        self._keep = compile_event_filter(trait.where) if trait.where else None
        self._path = tuple(trait.property.split(".")) if trait.property else None
        self._window = parse_duration_ms(trait.within) if trait.within is not None else None

    def new_state(self) -> AggregateState:
        """The state of a profile with no events yet."""
        folded = None if self._window is not None else _Accumulator(self.aggregate)
        return AggregateState(self.aggregate, folded=folded)

    def apply(self, state: AggregateState, event: EventFact, now_ms: int) -> ComputedValue:
        """Take one event into `state` (others than the trait's are ignored); the value now."""
        self.fold(state, event, now_ms)
        return self.value(state, now_ms)

    def fold(self, state: AggregateState, event: EventFact, now_ms: int) -> None:
        """Take one event into `state` without working out the value: a backfill folds a
        person's whole history, then asks `value` once (not once per event)."""
        if event.name == self.trait.event and (self._keep is None or self._keep(event)):
            contribution = self._contribution(event)
            if contribution is not _NOTHING:
                state.seq += 1
                entry = (event.timestamp_ms, state.seq, contribution)
                if state.folded is not None and event.timestamp_ms <= now_ms:
                    state.folded.add(entry)
                else:
                    state.entries.append(entry)

    def value(self, state: AggregateState, now_ms: int) -> ComputedValue:
        """The value at `now_ms` and when it next changes; drops what no longer matters."""
        self._settle(state, now_ms)
        current = self._value_at(state, now_ms)
        for examined, moment in enumerate(self._moments_after(state, now_ms), start=1):
            if self._value_at(state, moment) != current or examined == MAX_LOOKAHEAD:
                return ComputedValue(current, moment)
        return ComputedValue(current, None)

    def _contribution(self, event: EventFact) -> Any:
        if self._path is None:
            return 1 if self.aggregate == "count" else event.timestamp_ms
        value = lookup(event.properties, self._path)
        return _NOTHING if value is None else value

    def _settle(self, state: AggregateState, now_ms: int) -> None:
        if state.folded is not None:
            due = [entry for entry in state.entries if entry[0] <= now_ms]
            for entry in due:
                state.folded.add(entry)
            state.entries = [entry for entry in state.entries if entry[0] > now_ms]
        elif self._window is not None:
            horizon = now_ms - self._window
            state.entries = [entry for entry in state.entries if entry[0] > horizon]
        state.entries.sort()

    def _value_at(self, state: AggregateState, moment: int) -> Any:
        if state.folded is not None:
            if not state.entries or state.entries[0][0] > moment:
                return state.folded.result()
            scratch = _Accumulator.from_json(self.aggregate, state.folded.to_json())
        else:
            scratch = _Accumulator(self.aggregate)
        low = None if self._window is None else moment - self._window
        for entry in state.entries:
            if entry[0] > moment:
                break
            if low is None or entry[0] > low:
                scratch.add(entry)
        return scratch.result()

    def _moments_after(self, state: AggregateState, now_ms: int) -> list[int]:
        moments = {entry[0] for entry in state.entries if entry[0] > now_ms}
        if self._window is not None:
            moments |= {
                entry[0] + self._window
                for entry in state.entries
                if entry[0] + self._window > now_ms
            }
        return sorted(moments)


class _Nothing:
    """No contribution (the event lacks the property)."""


_NOTHING = _Nothing()
