"""What a condition is evaluated against: one profile's facts at one moment.

`EvalContext` is the port the runtime implements over its stores (and `ProfileSnapshot` an
in-memory one for tests and simulations); `Verdict` is what a compiled predicate answers.
This module holds data shapes only: no evaluation, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class EventFact:
    """One event as conditions see it: its name, when it happened, its properties."""

    name: str
    timestamp_ms: int
    properties: Mapping[str, Any]


class EvalContext(Protocol):
    """One profile's facts: traits, computed traits, current segments and events by name."""

    @property
    def profile_id(self) -> str:
        """The profile's id (random buckets hash it)."""
        ...

    @property
    def traits(self) -> Mapping[str, Any]:
        """The profile's traits, as JSON values."""
        ...

    @property
    def computed_traits(self) -> Mapping[str, Any]:
        """Current computed-trait values by key (missing or None: no value)."""
        ...

    @property
    def segments(self) -> AbstractSet[str]:
        """Keys of the segments the profile is in now."""
        ...

    def events(self, name: str) -> Sequence[EventFact]:
        """The profile's events of that name, oldest first (ties in log order)."""
        ...


class Verdict(NamedTuple):
    """A condition's value now and the moment until which it holds without new input.

    `valid_until_ms` is None when only new input (an event, a trait change) can change the
    value; otherwise the value holds for every instant in [now, valid_until_ms).
    """

    value: bool
    valid_until_ms: int | None


#: A compiled condition: (profile facts, now in epoch ms) -> Verdict.
Predicate = Callable[[EvalContext, int], Verdict]

TRUE = Verdict(True, None)
FALSE = Verdict(False, None)


def _by_time(event: EventFact) -> int:
    return event.timestamp_ms


@dataclass(frozen=True, slots=True)
class ProfileSnapshot:
    """An `EvalContext` held in memory (tests, simulations, the SQL agreement proofs)."""

    profile_id: str
    traits: Mapping[str, Any] = field(default_factory=dict)
    computed_traits: Mapping[str, Any] = field(default_factory=dict)
    segments: AbstractSet[str] = frozenset()
    events_by_name: Mapping[str, Sequence[EventFact]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        profile_id: str,
        *,
        traits: Mapping[str, Any] | None = None,
        computed_traits: Mapping[str, Any] | None = None,
        segments: Iterable[str] = (),
        events: Iterable[EventFact] = (),
    ) -> ProfileSnapshot:
        """A snapshot from a flat list of events in log order (sorted by time, stably)."""
        grouped: dict[str, list[EventFact]] = {}
        for event in sorted(events, key=_by_time):
            grouped.setdefault(event.name, []).append(event)
        return cls(
            profile_id,
            dict(traits or {}),
            dict(computed_traits or {}),
            frozenset(segments),
            {name: tuple(found) for name, found in grouped.items()},
        )

    def events(self, name: str) -> Sequence[EventFact]:
        """The profile's events of that name, oldest first."""
        return self.events_by_name.get(name, ())
