"""A tiny simulated runtime for engine scenarios: a profile context, timers, an effect log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from legato.domain.conditions import EventFact
from legato.domain.engine import (
    CancelTimers,
    CompiledJourney,
    Effect,
    Enter,
    EntryHistory,
    EventArrived,
    Run,
    ScheduleTimer,
    Send,
    TimerFired,
    Transition,
    UpdateProfile,
    WebhookDone,
    advance,
    compile_journey,
)
from legato.domain.journeys import parse_journey

HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_767_603_600_000  # 2026-01-05T09:00:00Z, a Monday


def fact(name: str, ts: int = T0, **properties: Any) -> EventFact:
    """An event as the pipeline hands it to the engine."""
    return EventFact(name=name, timestamp_ms=ts, properties=properties)


@dataclass
class Profile:
    """An EvalContext over plain dicts."""

    profile_id: str = "p1"
    traits: dict[str, Any] = field(default_factory=dict)
    computed_traits: dict[str, Any] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)
    history: list[EventFact] = field(default_factory=list)

    def events(self, name: str) -> Sequence[EventFact]:
        return [event for event in self.history if event.name == name]


def journey_doc(nodes: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A journey document around `nodes` (event trigger "Signed Up" unless given)."""
    doc: dict[str, Any] = {"kind": "Journey", "key": "j", "trigger": {"event": "Signed Up"}}
    doc.update(top)
    doc["nodes"] = nodes
    return doc


class Harness:
    """Drives one run through `advance`, keeping its timers like the runtime will."""

    def __init__(
        self,
        doc: Mapping[str, Any] | str,
        profile: Profile | None = None,
        *,
        apply_updates: bool = True,
    ) -> None:
        self.version: CompiledJourney = compile_journey(parse_journey(doc), 1)
        self.profile = profile or Profile()
        self.apply_updates = apply_updates
        self.run: Run | None = None
        self.timers: set[tuple[str, int]] = set()
        self.log: list[Effect] = []
        self.sent: list[tuple[int, Send]] = []
        self.transitions: list[Transition] = []

    def _apply(self, transition: Transition, now: int) -> Transition:
        """Keep what the runtime keeps: run state, timers, sends, and profile updates."""
        self.transitions.append(transition)
        if transition.run is not None:
            self.run = transition.run
        for effect in transition.effects:
            if isinstance(effect, CancelTimers):
                self.timers.clear()
            elif isinstance(effect, ScheduleTimer):
                self.timers.add((effect.node_id, effect.due_ms))
            elif isinstance(effect, Send):
                self.sent.append((now, effect))
            elif isinstance(effect, UpdateProfile) and self.apply_updates:
                for op in effect.ops:
                    if op.op == "set":
                        self.profile.traits[op.trait] = op.value
                    elif op.op == "unset":
                        self.profile.traits.pop(op.trait, None)
                    else:
                        self.profile.traits[op.trait] = (
                            self.profile.traits.get(op.trait, 0) + op.value
                        )
        self.log.extend(transition.effects)
        return transition

    def enter(
        self,
        trigger: EventFact | None = None,
        now: int = T0,
        history: EntryHistory | None = None,
        run_id: str = "r1",
    ) -> Transition:
        trigger = trigger or fact("Signed Up", now)
        # The pipeline logs the event before journeys see it: conditions can read it.
        self.profile.history.append(trigger)
        stimulus = Enter(run_id, trigger, history or EntryHistory())
        return self._apply(advance(self.version, None, stimulus, now, self.profile), now)

    def event(self, event: EventFact, now: int | None = None) -> Transition:
        assert self.run is not None
        self.profile.history.append(event)
        when = event.timestamp_ms if now is None else now
        transition = advance(self.version, self.run, EventArrived(event), when, self.profile)
        return self._apply(transition, when)

    def webhook(self, node_id: str, status: int, body: Any, now: int) -> Transition:
        assert self.run is not None
        stimulus = WebhookDone(node_id, status, body)
        return self._apply(advance(self.version, self.run, stimulus, now, self.profile), now)

    def run_until(self, until_ms: int) -> list[Transition]:
        """Fire every timer due up to `until_ms`, earliest first."""
        fired: list[Transition] = []
        while self.timers:
            name, due = min(self.timers, key=lambda timer: (timer[1], timer[0]))
            if due > until_ms:
                break
            self.timers.discard((name, due))
            assert self.run is not None
            stimulus = TimerFired(name, due)
            transition = advance(self.version, self.run, stimulus, due, self.profile)
            fired.append(self._apply(transition, due))
        return fired

    def of(self, kind: type[Any]) -> list[Any]:
        return [effect for effect in self.log if isinstance(effect, kind)]

    def visited(self) -> list[str]:
        from legato.domain.engine import NodeVisited

        return [effect.node_id for effect in self.of(NodeVisited)]
