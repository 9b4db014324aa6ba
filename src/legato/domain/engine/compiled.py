"""A journey version compiled for execution: its conditions and event matchers built once.

`CompiledJourney` also answers the runtime's questions about it: which events may start a run,
the run key of a trigger, when a schedule next fires, and what a run listens to now (for the
dispatch index). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from legato.domain.conditions import (
    EventFact,
    Predicate,
    compile_condition,
    compile_event_filter,
    references,
)
from legato.domain.journey_validation import graph_problems
from legato.domain.journeys import (
    ApiTrigger,
    BranchNode,
    ConditionExit,
    EventExit,
    EventTrigger,
    Goal,
    Journey,
    Node,
    ScheduleTrigger,
    SegmentTrigger,
    SplitNode,
    WaitForEventNode,
)
from legato.domain.local_time import (
    EARLIEST_ZONE,
    local_instant_ms,
    next_schedule_occurrence,
    to_local,
    weekday_numbers,
    zone,
)
from legato.errors import InvalidInput

if TYPE_CHECKING:
    pass
from legato.domain.engine.runs import (
    MISSING,
    OCCURRENCE_PROPERTY,
    SCHEDULE_EVENT,
    SEGMENT_ENTERED_EVENT,
    SEGMENT_EXITED_EVENT,
    SEGMENT_PROPERTY,
    Run,
    lookup,
    resolve,
)

# ---------------------------------------------------------------------------------------------
# Compiled journey


@dataclass(frozen=True, slots=True)
class EventMatcher:
    """An event name, its `where:` filter and its `match:` against the run's trigger/data."""

    event: str
    accepts: Callable[[EventFact], bool] | None
    match: tuple[tuple[tuple[str, ...], Any], ...]

    def matches(self, fact: EventFact, run: Run) -> bool:
        """Whether `fact` is this event, passes the filter and matches the run's values."""
        if fact.name != self.event:
            return False
        if self.accepts is not None and not self.accepts(fact):
            return False
        for path, expected in self.match:
            actual = lookup({"properties": fact.properties}, path)
            if actual is MISSING:
                return False
            wanted = resolve(expected, run)
            if wanted is MISSING or wanted != actual:
                return False
        return True


def event_matcher(event: str, where: Any, match: Mapping[str, Any]) -> EventMatcher:
    """Compile an event name, `where:` filter and `match:` mapping into an EventMatcher."""
    accepts = compile_event_filter(where) if where is not None else None
    pairs = tuple((tuple(path.split(".")), value) for path, value in match.items())
    return EventMatcher(event, accepts, pairs)


@dataclass(frozen=True, slots=True)
class Interests:
    """What can change a run now, for the dispatch index: event names, and the traits, computed
    traits and segments its exit conditions read; valid until `until_ms` (None: its next step).
    """

    events: frozenset[str]
    until_ms: int | None = None
    traits: frozenset[str] = frozenset()
    computed_traits: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Occurrence:
    """When the runtime must enrol a scheduled journey's segment, and the trigger event to use."""

    fire_ms: int
    local: str

    def trigger(self) -> EventFact:
        """The event each enrolled person's run starts with."""
        return EventFact(SCHEDULE_EVENT, self.fire_ms, {OCCURRENCE_PROPERTY: self.local})


@dataclass(frozen=True, slots=True)
class CompiledJourney:
    """A published (or simulated) journey version, its conditions compiled once."""

    journey: Journey
    version: int
    timezone: ZoneInfo
    nodes: Mapping[str, Node]
    trigger_filter: Callable[[EventFact], bool] | None
    exit_events: tuple[EventMatcher, ...]
    exit_conditions: tuple[Predicate, ...]
    exit_condition_events: frozenset[str]
    exit_condition_reads: tuple[frozenset[str], frozenset[str], frozenset[str]]
    goal: EventMatcher | None
    predicates: Mapping[str, Predicate]
    wait_matchers: Mapping[str, EventMatcher]

    @property
    def key(self) -> str:
        """The journey key."""
        return self.journey.key

    def trigger_events(self) -> frozenset[str]:
        """Event names that may start a run (for the dispatch index); empty for schedule/api."""
        trigger = self.journey.trigger
        if isinstance(trigger, EventTrigger):
            return frozenset({trigger.event})
        if isinstance(trigger, SegmentTrigger):
            name = SEGMENT_ENTERED_EVENT if trigger.change == "entered" else SEGMENT_EXITED_EVENT
            return frozenset({name})
        return frozenset()

    def matches_trigger(self, fact: EventFact) -> bool:
        """Whether `fact` fires this journey's trigger (schedule/api triggers accept any fact)."""
        trigger = self.journey.trigger
        if isinstance(trigger, EventTrigger):
            if fact.name != trigger.event:
                return False
            return self.trigger_filter is None or self.trigger_filter(fact)
        if isinstance(trigger, SegmentTrigger):
            return (
                fact.name in self.trigger_events()
                and fact.properties.get(SEGMENT_PROPERTY) == trigger.segment
            )
        return isinstance(trigger, ScheduleTrigger | ApiTrigger)

    def entry_key(self, fact: EventFact) -> str | None:
        """The run key the trigger event gives (None: not keyed); InvalidInput if unusable."""
        path = self.journey.entry_key
        if path is None:
            return None
        value = lookup({"properties": fact.properties}, tuple(path.split(".")))
        if value is MISSING or value is None:
            raise InvalidInput(f"the trigger event has no {path}", path=path)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise InvalidInput(f"{path} must be a string or a number to key runs", path=path)

    def next_occurrence(self, after_ms: int) -> Occurrence | None:
        """For a schedule trigger: the first enrolment strictly after `after_ms` (None: over).

        A local-time schedule fires when the occurrence begins in the earliest zone (UTC+14);
        each run then waits for the same wall-clock moment in its person's timezone.
        """
        trigger = self.journey.trigger
        if not isinstance(trigger, ScheduleTrigger):
            return None
        tz = zone(EARLIEST_ZONE) if trigger.local_time else self.timezone
        schedule = trigger.schedule
        after_local = to_local(after_ms, tz)
        # A fall-back hour repeats wall-clock times: step past any that map to earlier instants.
        for _ in range(4):
            local = next_schedule_occurrence(
                after_local,
                at=schedule.at,
                every=schedule.every,
                time_of_day=schedule.time,
                weekdays=weekday_numbers(schedule.weekdays),
                day_of_month=schedule.day_of_month,
                starts=schedule.starts,
                ends=schedule.ends,
            )
            if local is None:
                return None
            fire_ms = local_instant_ms(local, tz)
            if fire_ms > after_ms:
                return Occurrence(fire_ms, local.isoformat())
            after_local = local
        return None

    def interests(self, run: Run) -> Interests:
        """The event names that can change `run` now (for the dispatch index)."""
        goal_events: frozenset[str] = frozenset()
        if self.goal is not None and run.converted_ms is None:
            goal_events = frozenset({self.goal.event})
        if not run.live:
            if run.goal_deadline_ms is None:
                return Interests(frozenset(), None)
            return Interests(goal_events, run.goal_deadline_ms)
        events = set(goal_events) | {m.event for m in self.exit_events}
        events |= self.exit_condition_events
        matcher = self.wait_matchers.get(run.node_id or "")
        if matcher is not None and run.status == "waiting":
            events.add(matcher.event)
        traits, computed, segments = self.exit_condition_reads
        return Interests(frozenset(events), None, traits, computed, segments)


def compile_journey(journey: Journey, version: int) -> CompiledJourney:
    """Compile a journey's conditions once; InvalidInput if its graph is invalid."""
    problems = graph_problems(journey)
    if problems:
        first = problems[0]
        raise InvalidInput(
            first.message,
            path=first.path,
            node=first.node,
            errors=[problem.to_dict() for problem in problems],
        )
    trigger = journey.trigger
    trigger_filter = None
    if isinstance(trigger, EventTrigger) and trigger.where is not None:
        trigger_filter = compile_event_filter(trigger.where)
    exit_events: list[EventMatcher] = []
    exit_conditions: list[Predicate] = []
    condition_events: set[str] = set()
    reads: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    for criterion in journey.exit_criteria:
        if isinstance(criterion, EventExit):
            exit_events.append(event_matcher(criterion.event, criterion.where, criterion.match))
        elif isinstance(criterion, ConditionExit):
            exit_conditions.append(compile_condition(criterion.condition))
            refs = references(criterion.condition)
            condition_events |= refs.events
            reads[0].update(refs.traits)
            reads[1].update(refs.computed_traits)
            reads[2].update(refs.segments)
    goal: Goal | None = journey.goal
    predicates: dict[str, Predicate] = {}
    wait_matchers: dict[str, EventMatcher] = {}
    for node in journey.nodes:
        if isinstance(node, BranchNode):
            predicates[node.id] = compile_condition(node.condition)
        elif isinstance(node, SplitNode):
            for i, arm in enumerate(node.branches):
                predicates[f"{node.id}#{i}"] = compile_condition(arm.condition)
        elif isinstance(node, WaitForEventNode):
            wait_matchers[node.id] = event_matcher(node.event, node.where, node.match)
    return CompiledJourney(
        journey=journey,
        version=version,
        timezone=zone(journey.settings.timezone),
        nodes={node.id: node for node in journey.nodes},
        trigger_filter=trigger_filter,
        exit_events=tuple(exit_events),
        exit_conditions=tuple(exit_conditions),
        exit_condition_events=frozenset(condition_events),
        exit_condition_reads=(frozenset(reads[0]), frozenset(reads[1]), frozenset(reads[2])),
        goal=event_matcher(goal.event, goal.where, goal.match) if goal else None,
        predicates=predicates,
        wait_matchers=wait_matchers,
    )
