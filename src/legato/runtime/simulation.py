"""Simulation: replay history through a (draft) journey on a simulated clock, sending nothing.

`simulate` runs the same pure engine the runtime runs, in memory: events are replayed in time
order, timers fire at their due times in between, schedules enrol the segment members of the
moment, profile updates change the simulated profiles, emitted events are fed back, and webhook
calls are assumed to succeed with an empty answer. The report says, per node, how many people
would reach it, and how many messages each channel would send per day. History comes from a
JSON-lines file of tracking-spec messages (`events_from_lines`) or from the workspace's log
(`events_from_log`). Nothing here writes anything or talks to the outside world.

Limits, by design: conditions see the events replayed so far (nothing before the window), and
people start with the traits, computed traits and segments they have now (when read from the
log) or with none (from a file); identify calls in the window update them as they happen.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from legato.domain.conditions import EventFact
from legato.domain.engine import (
    API_TRIGGER_EVENT,
    SEGMENT_ENTERED_EVENT,
    SEGMENT_EXITED_EVENT,
    SEGMENT_PROPERTY,
    CallWebhook,
    CancelTimers,
    CompiledJourney,
    Converted,
    Emit,
    Enter,
    Entered,
    EntryHistory,
    EntryRefused,
    EventArrived,
    Exit,
    NodeVisited,
    Run,
    ScheduleTimer,
    Send,
    Stimulus,
    TimerFired,
    UpdateProfile,
    WebhookDone,
    advance,
    compile_journey,
)
from legato.domain.journeys import ApiTrigger, Journey, ScheduleTrigger
from legato.domain.messages import instant_ms
from legato.errors import InvalidInput
from legato.ports import Clock
from legato.runtime.listening import START_NODE, Facts
from legato.store.runs import ProfileFacts, RunStore

#: Most events a simulation takes in (it holds them in memory).
MAX_EVENTS = 2_000_000
#: People whose starting facts are read per query.
SEED_PAGE = 500


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One replayed event of one person; `traits` are an identify call's traits."""

    profile_id: str
    fact: EventFact
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seed:
    """What a person starts the simulation with."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    computed_traits: Mapping[str, Any] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()


@dataclass
class SimulationReport:
    """What the journey would have done over the window."""

    journey: str
    start_ms: int
    end_ms: int
    events: int = 0
    people: int = 0
    entered: int = 0
    converted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    #: node id → {"people": distinct people who reached it, "visits", "waiting": at the end}.
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: channel → day (YYYY-MM-DD, UTC) → messages.
    messages: dict[str, dict[str, int]] = field(default_factory=dict)
    webhooks: int = 0
    emitted: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "journey": self.journey,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "events": self.events,
            "people": self.people,
            "entered": self.entered,
            "converted": self.converted,
            "refused": dict(sorted(self.refused.items())),
            "exited": dict(sorted(self.exited.items())),
            "nodes": self.nodes,
            "messages": {
                ch: dict(sorted(days.items())) for ch, days in sorted(self.messages.items())
            },
            "webhooks": self.webhooks,
            "emitted": self.emitted,
        }


def simulate(
    journey: Journey,
    events: Iterable[SimEvent],
    *,
    start_ms: int,
    end_ms: int,
    seeds: Mapping[str, Seed] | None = None,
) -> SimulationReport:
    """Replay `events` (any order; replayed by time) through `journey` from `start_ms` to
    `end_ms`; timers due after `end_ms` do not fire (their runs count as waiting)."""
    if end_ms < start_ms:
        raise InvalidInput("the simulation ends before it starts", path="until")
    return _Simulator(compile_journey(journey, 0), start_ms, end_ms, seeds or {}).run(events)


class _Simulator:
    def __init__(
        self, version: CompiledJourney, start_ms: int, end_ms: int, seeds: Mapping[str, Seed]
    ) -> None:
        self.version = version
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.seeds = seeds
        self.report = SimulationReport(version.key, start_ms, end_ms)
        for node in version.journey.nodes:
            self.report.nodes[node.id] = {"people": 0, "visits": 0, "waiting": 0}
        self.facts: dict[str, Facts] = {}
        self.runs: dict[str, Run] = {}
        self.runs_of: dict[str, list[str]] = defaultdict(list)
        self.timers: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.queue: list[tuple[int, int, int, str, Any]] = []
        self.order = itertools.count()
        self.seq = itertools.count(1)
        self.reached: dict[str, set[str]] = defaultdict(set)
        self.ids = itertools.count(1)

    # -- the timeline: (time, priority, order, kind, item); timers before events at one instant

    def push(self, at_ms: int, kind: str, item: Any, priority: int = 1) -> None:
        heapq.heappush(self.queue, (at_ms, priority, next(self.order), kind, item))

    def run(self, events: Iterable[SimEvent]) -> SimulationReport:
        for count, event in enumerate(events, start=1):
            if count > MAX_EVENTS:
                raise InvalidInput(f"a simulation takes at most {MAX_EVENTS} events", path="events")
            if self.start_ms <= event.fact.timestamp_ms <= self.end_ms:
                self.push(event.fact.timestamp_ms, "event", event, 2)
        self.report.events = sum(1 for entry in self.queue if entry[3] == "event")
        self.report.people = len(
            {entry[4].profile_id for entry in self.queue if entry[3] == "event"}
        )
        trigger = self.version.journey.trigger
        if isinstance(trigger, ScheduleTrigger):
            occurrence = self.version.next_occurrence(self.start_ms - 1)
            while occurrence is not None and occurrence.fire_ms <= self.end_ms:
                self.push(occurrence.fire_ms, "schedule", occurrence.trigger(), 2)
                occurrence = self.version.next_occurrence(occurrence.fire_ms)
        while self.queue:
            at_ms, _, _, kind, item = heapq.heappop(self.queue)
            if at_ms > self.end_ms:
                break
            if kind == "timer":
                self._timer(at_ms, *item)
            elif kind == "event":
                self._event(at_ms, item)
            elif kind == "schedule":
                self._schedule(at_ms, item)
            else:
                run_id, stimulus = item
                self._step(self.runs.get(run_id), stimulus, at_ms)
        for run in self.runs.values():
            node = (run.node_id or START_NODE) if run.status == "waiting" else None
            if node is not None:
                self.report.nodes.setdefault(node, {"people": 0, "visits": 0, "waiting": 0})
                self.report.nodes[node]["waiting"] += 1
        for node_id, people in self.reached.items():
            self.report.nodes[node_id]["people"] = len(people)
        return self.report

    # -- inputs --------------------------------------------------------------------------------

    def _person(self, profile_id: str) -> Facts:
        found = self.facts.get(profile_id)
        if found is None:
            seed = self.seeds.get(profile_id, Seed())
            found = Facts(
                profile_id,
                ProfileFacts(dict(seed.traits), dict(seed.computed_traits), set(seed.segments), {}),
            )
            self.facts[profile_id] = found
        return found

    def _event(self, at_ms: int, event: SimEvent) -> None:
        ctx = self._person(event.profile_id)
        ctx.traits.update(event.traits)
        fact = event.fact
        segment = fact.properties.get(SEGMENT_PROPERTY)
        if isinstance(segment, str):
            if fact.name == SEGMENT_ENTERED_EVENT:
                ctx.segments.add(segment)
            elif fact.name == SEGMENT_EXITED_EVENT:
                ctx.segments.discard(segment)
        if fact.name:
            ctx.record(next(self.seq), fact)
        for run_id in list(self.runs_of.get(event.profile_id, ())):
            self._step(self.runs[run_id], EventArrived(fact), at_ms)
        trigger = self.version.journey.trigger
        if isinstance(trigger, ScheduleTrigger):
            return
        if isinstance(trigger, ApiTrigger) and fact.name != API_TRIGGER_EVENT:
            return
        if self.version.matches_trigger(fact):
            self._enter(event.profile_id, fact, at_ms)

    def _schedule(self, at_ms: int, trigger: EventFact) -> None:
        journey = self.version.journey.trigger
        assert isinstance(journey, ScheduleTrigger)
        for profile_id, ctx in sorted(self.facts.items()):
            if journey.segment in ctx.segments:
                self._enter(profile_id, trigger, at_ms)
        for profile_id, seed in sorted(self.seeds.items()):
            if profile_id not in self.facts and journey.segment in seed.segments:
                self._enter(profile_id, trigger, at_ms)

    def _timer(self, at_ms: int, run_id: str, name: str) -> None:
        if (name, at_ms) not in self.timers[run_id]:
            return  # cancelled since
        self.timers[run_id].discard((name, at_ms))
        self._step(self.runs.get(run_id), TimerFired(name, at_ms), at_ms)

    def _enter(self, profile_id: str, trigger: EventFact, at_ms: int) -> None:
        ctx = self._person(profile_id)
        try:
            key = self.version.entry_key(trigger)
        except InvalidInput:
            key = None
        mine = [self.runs[r] for r in self.runs_of.get(profile_id, ())]
        same = [run for run in mine if run.entry_key == key]
        live = sum(1 for run in same if run.live)
        history = EntryHistory(live, len(same) - live, len(mine), len(self.runs))
        self._step(None, Enter(f"sim{next(self.ids)}", trigger, history), at_ms, ctx)

    # -- one step ------------------------------------------------------------------------------

    def _step(
        self, run: Run | None, stimulus: Stimulus, at_ms: int, ctx: Facts | None = None
    ) -> None:
        if run is None and not isinstance(stimulus, Enter):
            return
        person = ctx or self._person(run.profile_id if run is not None else "")
        transition = advance(self.version, run, stimulus, at_ms, person)
        if not transition.changed:
            return
        new = transition.run
        if new is not None:
            if new.run_id not in self.runs:
                self.runs_of[new.profile_id].append(new.run_id)
            self.runs[new.run_id] = new
        report = self.report
        for effect in transition.effects:
            if isinstance(effect, EntryRefused):
                report.refused[effect.reason] = report.refused.get(effect.reason, 0) + 1
                continue
            assert new is not None
            if isinstance(effect, Entered):
                report.entered += 1
            elif isinstance(effect, NodeVisited):
                report.nodes[effect.node_id]["visits"] += 1
                self.reached[effect.node_id].add(new.profile_id)
            elif isinstance(effect, Send):
                day = datetime.fromtimestamp(at_ms / 1000, UTC).date().isoformat()
                days = report.messages.setdefault(effect.channel, {})
                days[day] = days.get(day, 0) + 1
            elif isinstance(effect, CancelTimers):
                self.timers[new.run_id].clear()
            elif isinstance(effect, ScheduleTimer):
                self.timers[new.run_id].add((effect.node_id, effect.due_ms))
                self.push(effect.due_ms, "timer", (new.run_id, effect.node_id), 0)
            elif isinstance(effect, UpdateProfile):
                for op in effect.ops:
                    _apply(person, op.op, op.trait, op.value)
            elif isinstance(effect, Emit):
                report.emitted += 1
                fact = EventFact(effect.event, at_ms, dict(effect.properties))
                self.push(at_ms, "event", SimEvent(effect.profile_id, fact), 2)
            elif isinstance(effect, CallWebhook):
                report.webhooks += 1
                done = WebhookDone(effect.node_id, 200, None, effect.idempotency_key)
                self.push(at_ms, "stimulus", (new.run_id, done), 1)
            elif isinstance(effect, Exit):
                report.exited[effect.reason] = report.exited.get(effect.reason, 0) + 1
            elif isinstance(effect, Converted):
                report.converted += 1


def _apply(ctx: Facts, op: str, trait: str, value: Any) -> None:
    if op == "unset":
        ctx.traits.pop(trait, None)
    elif op == "increment":
        current = ctx.traits.get(trait)
        numeric = isinstance(current, int | float) and not isinstance(current, bool)
        ctx.traits[trait] = (current if numeric else 0) + value
    else:
        ctx.traits[trait] = value


# ---------------------------------------------------------------------------------------------
# Sources of history


def event_of_message(message: Mapping[str, Any], where: str) -> SimEvent:
    """A tracking-spec message (track/page/screen/identify/internal) as a replayed event.

    The person is the message's `profile_id`, else its userId, else its anonymousId; the time
    is `timestamp_ms`, else the ISO 8601 `timestamp`.
    """
    person = message.get("profile_id") or message.get("userId") or message.get("anonymousId")
    if not isinstance(person, str) or not person:
        raise InvalidInput(f"{where}: a message needs userId or anonymousId", path=where)
    at = message.get("timestamp_ms")
    if not isinstance(at, int) or isinstance(at, bool):
        at = instant_ms(message.get("timestamp"))
    if at is None:
        raise InvalidInput(f"{where}: a message needs an ISO 8601 timestamp", path=where)
    kind = message.get("type", "track")
    name = message.get("event") if kind in {"track", "internal"} else message.get("name")
    properties = message.get("properties")
    traits = message.get("traits") if kind == "identify" else None
    return SimEvent(
        person,
        EventFact(
            name if isinstance(name, str) else "",
            at,
            properties if isinstance(properties, dict) else {},
        ),
        traits if isinstance(traits, dict) else {},
    )


def events_from_lines(lines: Iterable[str]) -> Iterator[SimEvent]:
    """Replayed events from JSON lines (one message per line; blank lines skipped)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not JSON: {exc}", path=f"line {number}") from exc
        if not isinstance(message, dict):
            raise InvalidInput(f"line {number}: a message is a JSON object", path=f"line {number}")
        yield event_of_message(message, f"line {number}")


async def events_from_log(rows: AsyncIterator[Mapping[str, Any]]) -> list[SimEvent]:
    """Replayed events from the log's rows (with `profile_id`, `type`, `event`, `timestamp_ms`,
    `payload`); rows the pipeline has not attributed yet are skipped."""
    found: list[SimEvent] = []
    async for row in rows:
        profile = row.get("profile_id")
        if not profile:
            continue
        payload = row.get("payload") or {}
        message = {
            **payload,
            "profile_id": profile,
            "type": row.get("type"),
            "event": row.get("event"),
            "name": row.get("event"),
            "timestamp_ms": row.get("timestamp_ms"),
        }
        found.append(event_of_message(message, f"seq {row.get('seq')}"))
        if len(found) > MAX_EVENTS:
            raise InvalidInput(f"a simulation takes at most {MAX_EVENTS} events", path="since")
    return found


class Simulations:
    """Simulations on a workspace's own history (the log) or on given events."""

    def __init__(self, runs: RunStore, clock: Clock) -> None:
        self.runs = runs
        self.clock = clock

    async def from_log(
        self, workspace_id: str, journey: Journey, since_ms: int
    ) -> SimulationReport:
        """Replay the last `since_ms` of the workspace's log, up to now."""
        end = self.clock.now_ms()
        start = end - since_ms
        events = await events_from_log(self.runs.history(workspace_id, start, end))
        people = sorted({event.profile_id for event in events})
        seeds: dict[str, Seed] = {}
        async with self.runs.db.connect() as conn:
            for first in range(0, len(people), SEED_PAGE):
                loaded = await self.runs.facts(
                    conn, workspace_id, people[first : first + SEED_PAGE], ()
                )
                for profile, facts in loaded.items():
                    seeds[profile] = Seed(
                        facts.traits, facts.computed_traits, frozenset(facts.segments)
                    )
        return await asyncio.to_thread(
            simulate, journey, events, start_ms=start, end_ms=end, seeds=seeds
        )

    async def from_events(
        self, journey: Journey, events: Sequence[SimEvent], *, until_ms: int = 0
    ) -> SimulationReport:
        """Replay given events, from the first one to `until_ms` after the last one."""
        if not events:
            now = self.clock.now_ms()
            return simulate(journey, (), start_ms=now, end_ms=now)
        times = [event.fact.timestamp_ms for event in events]
        return await asyncio.to_thread(
            simulate,
            journey,
            events,
            start_ms=min(times),
            end_ms=max(times) + until_ms,
        )
