"""Applying engine transitions: the unit of work shared by every path that moves runs.

The pipeline stage (events), the timer worker (waits, schedules), the webhook worker (answers)
and API-triggered entries all do the same thing inside their own transaction: load the runs
and facts they need, call the pure `advance` for each stimulus, and turn every `Transition`
into rows. A `Unit` collects those rows (run states, timers, outbox requests, rollups, the
dispatch index, profile changes, internal events) in a `JourneyChanges` that the store writes
in one go before the caller commits; what runs read and listen to is in runtime/listening.py.
It never composes SQL and never decides what a journey does: the engine does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact
from legato.domain.engine import (
    CallWebhook,
    CancelTimers,
    CompiledJourney,
    Converted,
    Emit,
    Enter,
    Entered,
    EntryHistory,
    EntryRefused,
    Exit,
    NodeVisited,
    Run,
    ScheduleTimer,
    Send,
    Stimulus,
    Transition,
    UpdateProfile,
    advance,
)
from legato.errors import InvalidInput
from legato.ids import new_id
from legato.runtime.listening import START_NODE, Facts, listener_rows, waiting_node
from legato.store.journeys import JOURNEY_NODE, JourneyStore, Listener
from legato.store.runs import (
    EntryRecord,
    InternalEvent,
    JourneyChanges,
    RunStore,
    StoredRun,
    TraitChange,
)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = tuple(first + second for first in _ALPHABET for second in _ALPHABET)
_PAIR_SHIFTS = tuple(range(120, -1, -10))

#: The runtime's own timer that ends an ended run's listening for its goal.
LISTEN_TIMER = "$listen"


@dataclass(frozen=True, slots=True)
class Origin:
    """The identity of what started a run: internal events it emits go to its partition."""

    user_id: str | None = None
    anonymous_id: str | None = None


@dataclass(slots=True)
class Tracked:
    """A run inside a unit of work: its latest state and what is stored of it."""

    version: CompiledJourney
    run: Run
    origin: Origin
    new: bool
    live_at_load: bool
    listeners_before: dict[Listener, int | None]
    dirty: bool = False


@dataclass(slots=True)
class EntryBook:
    """Earlier runs of the people and journeys of a unit, for the entry rules; it follows the
    runs the unit creates and ends."""

    runs: dict[tuple[str, str], dict[str, tuple[str | None, bool]]] = field(default_factory=dict)
    enrollments: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[EntryRecord], enrollments: Mapping[str, int]) -> EntryBook:
        """A book from stored runs and the enrollments of the journeys that cap them."""
        book = cls(enrollments=dict(enrollments))
        for record in records:
            book.runs.setdefault((record.journey_key, record.profile_id), {})[record.run_id] = (
                record.entry_key,
                record.live,
            )
        return book

    def history(self, journey_key: str, profile_id: str, entry_key: str | None) -> EntryHistory:
        """What the engine needs to apply the entry rules to one more entry."""
        mine = self.runs.get((journey_key, profile_id), {})
        same_key = [live for key, live in mine.values() if key == entry_key]
        live = sum(same_key)
        return EntryHistory(
            live_runs_for_key=live,
            finished_runs_for_key=len(same_key) - live,
            profile_entries=len(mine),
            journey_enrollments=self.enrollments.get(journey_key, 0),
        )

    def note(self, run: Run) -> None:
        """Keep a run created or moved by the unit."""
        mine = self.runs.setdefault((run.journey_key, run.profile_id), {})
        if run.run_id not in mine and run.journey_key in self.enrollments:
            self.enrollments[run.journey_key] += 1
        mine[run.run_id] = (run.entry_key, run.live)


class Unit:
    """The transitions of one transaction, turned into the rows `RunStore.write` applies."""

    def __init__(self, workspace_id: str, written_ms: int) -> None:
        self.workspace_id = workspace_id
        #: The wall-clock time of the transaction (steps may run at an event's own time).
        self.written_ms = written_ms
        self.changes = JourneyChanges()
        self.tracked: dict[str, Tracked] = {}
        #: `advance` calls made (tests assert the dispatch index keeps this small).
        self.advances = 0
        # Run timers this unit scheduled, per run: a later CancelTimers drops them.
        self._run_timers: dict[str, set[tuple[str, str, int]]] = {}
        #: (owner, name, due_ms) of the timers this transaction claimed, i.e. deleted already.
        self.claimed: set[tuple[str, str, int]] = set()
        self._settings_json: dict[str, tuple[CompiledJourney | None, dict[str, Any]]] = {}

    def adopt(self, version: CompiledJourney, stored: StoredRun) -> Tracked:
        """Track a stored run (once; later calls return the same tracked run)."""
        run = Run.from_dict(stored.state)
        found = self.tracked.get(run.run_id)
        if found is not None:
            return found
        tracked = Tracked(
            version=version,
            run=run,
            origin=Origin(stored.user_id, stored.anonymous_id),
            new=False,
            live_at_load=run.live,
            listeners_before=listener_rows(version, run),
        )
        self.tracked[run.run_id] = tracked
        return tracked

    def enter(
        self,
        version: CompiledJourney,
        trigger: EventFact,
        ctx: Facts,
        now_ms: int,
        book: EntryBook,
        origin: Origin = Origin(),
    ) -> Transition:
        """Offer one person entry into a journey (the entry rules may refuse)."""
        try:
            entry_key = version.entry_key(trigger)
        except InvalidInput:
            entry_key = None  # the engine refuses it with the reason
        history = book.history(version.key, ctx.profile_id, entry_key)
        stimulus = Enter(new_id(), trigger, history)
        transition = self.step(version, None, stimulus, ctx, now_ms, origin=origin)
        if transition.run is not None:
            book.note(transition.run)
        return transition

    def step(
        self,
        version: CompiledJourney,
        tracked: Tracked | None,
        stimulus: Stimulus,
        ctx: Facts,
        now_ms: int,
        *,
        origin: Origin = Origin(),
    ) -> Transition:
        """Advance one run (or enter one) and collect what the transition writes."""
        before = tracked.run if tracked is not None else None
        self.advances += 1
        transition = advance(version, before, stimulus, now_ms, ctx)
        if not transition.changed:
            return transition
        run = transition.run
        if run is not None:
            if tracked is None:
                tracked = Tracked(version, run, origin, True, True, {})
                self.tracked[run.run_id] = tracked
            else:
                tracked.run = run
            tracked.dirty = True
        was, now = waiting_node(before), waiting_node(run)
        if was != now:
            if was is not None:
                self._count(version, was, "waiting", -1)
            if now is not None:
                self._count(version, now, "waiting", 1)
        for effect in transition.effects:
            if type(effect) is CancelTimers and before is not None and self._all_claimed(before):
                # The stored timers of a run are among those its state expects: when this
                # transaction claimed every one of them, none is left to delete (the timer
                # worker's case: the wait that just fired was the run's only timer).
                self._drop_scheduled(before.run_id)
                continue
            self._effect(version, tracked, effect, ctx, now_ms)
        return transition

    def _all_claimed(self, run: Run) -> bool:
        claimed = self.claimed
        run_id = run.run_id
        return bool(claimed) and all((run_id, name, due) in claimed for name, due in run.timers())

    def finish(self) -> JourneyChanges:
        """The rows of every run the unit moved (states, listeners), with all else collected."""
        changes = self.changes
        ws = self.workspace_id
        for run_id, tracked in sorted(self.tracked.items()):
            if not tracked.dirty:
                continue
            run = tracked.run
            row = {
                "run_id": run_id,
                "workspace_id": ws,
                "journey_key": run.journey_key,
                "version": run.version,
                "profile_id": run.profile_id,
                "entry_key": run.entry_key,
                "status": run.status,
                "node_id": run.node_id,
                "state": run.to_dict(),
                "user_id": tracked.origin.user_id,
                "anonymous_id": tracked.origin.anonymous_id,
                "entered_ms": run.entered_ms,
                "updated_ms": run.updated_ms,
            }
            (changes.new_runs if tracked.new else changes.updated_runs)[run_id] = row
            before = tracked.listeners_before
            after = listener_rows(tracked.version, run)
            profile = run.profile_id
            for (kind, name), until in before.items():
                if after.get((kind, name), -1) != until:
                    changes.listeners_removed.add((ws, profile, kind, name, run_id))
            for (kind, name), until in after.items():
                if before.get((kind, name), -1) != until:
                    changes.listeners_added[(ws, profile, kind, name, run_id)] = until
                    changes.listeners_removed.discard((ws, profile, kind, name, run_id))
            ends = [until for until in after.values() if until is not None]
            if not run.live and tracked.live_at_load and ends:
                self._timer(tracked.version, run, LISTEN_TIMER, max(ends), kind="listen")
        return changes

    # -- effects -------------------------------------------------------------------------------

    def _count(self, version: CompiledJourney, node: str, metric: str, n: int = 1) -> None:
        key = (self.workspace_id, version.journey.key, version.version, node, metric)
        self.changes.rollups[key] += n

    def _timer(
        self, version: CompiledJourney, run: Run, name: str, due_ms: int, *, kind: str = "run"
    ) -> None:
        if kind == "run":
            self._run_timers.setdefault(run.run_id, set()).add((run.run_id, name, due_ms))
        self.changes.timers[(run.run_id, name, due_ms)] = {
            "owner": run.run_id,
            "name": name,
            "due_ms": due_ms,
            "kind": kind,
            "workspace_id": self.workspace_id,
            "journey_key": version.key,
            "version": version.version,
            "profile_id": run.profile_id,
            "payload": None,
        }

    def _effect(
        self,
        version: CompiledJourney,
        tracked: Tracked | None,
        effect: object,
        ctx: Facts,
        now_ms: int,
    ) -> None:
        if isinstance(effect, EntryRefused):
            self._count(version, JOURNEY_NODE, f"refused:{effect.reason}")
            return
        assert tracked is not None, "only a refusal comes without a run"
        # By exact type (effects are final dataclasses): one dict lookup instead of a chain of
        # isinstance checks, for the five or so effects of every transition.
        _APPLY[type(effect)](self, version, tracked, effect, ctx, now_ms)

    def _entered(
        self, version: CompiledJourney, tracked: Tracked, effect: Entered, ctx: Facts, now: int
    ) -> None:
        self._count(version, JOURNEY_NODE, "entered")

    def _visited(
        self, version: CompiledJourney, tracked: Tracked, effect: NodeVisited, ctx: Facts, now: int
    ) -> None:
        self._count(version, effect.node_id, "entered")
        if effect.outcome is not None:
            self._count(version, effect.node_id, f"arm:{effect.outcome}")

    def _exited(
        self, version: CompiledJourney, tracked: Tracked, effect: Exit, ctx: Facts, now: int
    ) -> None:
        self._count(version, effect.node_id or START_NODE, "exited")
        self._count(version, JOURNEY_NODE, f"exited:{effect.reason}")

    def _converted(
        self, version: CompiledJourney, tracked: Tracked, effect: Converted, ctx: Facts, now: int
    ) -> None:
        self._count(version, effect.node_id or START_NODE, "converted")
        self._count(version, JOURNEY_NODE, "converted")

    def _cancel_timers(
        self, version: CompiledJourney, tracked: Tracked, effect: CancelTimers, ctx: Facts, now: int
    ) -> None:
        self.changes.cancelled_timers.add(tracked.run.run_id)
        self._drop_scheduled(tracked.run.run_id)

    def _drop_scheduled(self, run_id: str) -> None:
        """Forget the run timers this unit scheduled for a run (a CancelTimers came after)."""
        for key in self._run_timers.pop(run_id, ()):
            self.changes.timers.pop(key, None)

    def _schedule_timer(
        self,
        version: CompiledJourney,
        tracked: Tracked,
        effect: ScheduleTimer,
        ctx: Facts,
        now: int,
    ) -> None:
        self._timer(version, tracked.run, effect.node_id, effect.due_ms)

    def _send(
        self, version: CompiledJourney, tracked: Tracked, effect: Send, ctx: Facts, now: int
    ) -> None:
        self._outbox(
            version,
            tracked.run,
            "send",
            effect.node_id,
            effect.idempotency_key,
            {
                "channel": effect.channel,
                "template": effect.template,
                "topic": effect.topic,
                "trigger": _fact_json(effect.trigger),
                "data": dict(effect.data),
                "settings": self._settings(version),
                "user_id": tracked.origin.user_id,
                "anonymous_id": tracked.origin.anonymous_id,
            },
        )

    def _call_webhook(
        self, version: CompiledJourney, tracked: Tracked, effect: CallWebhook, ctx: Facts, now: int
    ) -> None:
        request = effect.request
        self._outbox(
            version,
            tracked.run,
            "webhook",
            effect.node_id,
            effect.idempotency_key,
            {
                "url": request.url,
                "method": request.method,
                "headers": dict(request.headers),
                "body_template": request.body_template,
                "timeout_ms": request.timeout_ms,
                "give_up_at_ms": request.give_up_at_ms,
                "trigger": _fact_json(request.trigger),
                "data": dict(request.data),
            },
        )

    def _update_profile(
        self,
        version: CompiledJourney,
        tracked: Tracked,
        effect: UpdateProfile,
        ctx: Facts,
        now: int,
    ) -> None:
        changes = self.changes.trait_changes.setdefault((self.workspace_id, effect.profile_id), [])
        for op in effect.ops:
            changes.append(TraitChange(op.op, op.trait, op.value, now))
            _apply_to_facts(ctx, op.op, op.trait, op.value)

    def _emit(
        self, version: CompiledJourney, tracked: Tracked, effect: Emit, ctx: Facts, now: int
    ) -> None:
        self.changes.internal_events.append(
            InternalEvent(
                workspace_id=self.workspace_id,
                message_id=effect.idempotency_key,
                event=effect.event,
                profile_id=effect.profile_id,
                user_id=tracked.origin.user_id,
                anonymous_id=tracked.origin.anonymous_id,
                timestamp_ms=now,
                properties=dict(effect.properties),
                context={
                    "journey": version.key,
                    "version": version.version,
                    "run_id": tracked.run.run_id,
                    "node": effect.idempotency_key.split(":")[1],
                },
            )
        )

    def _settings(self, version: CompiledJourney) -> dict[str, Any]:
        """A version's delivery settings as JSON (the same for all its sends)."""
        found = self._settings_json.get(version.key, (None, {}))
        if found[0] is not version:
            found = (version, version.journey.settings.model_dump(mode="json"))
            self._settings_json[version.key] = found
        return dict(found[1])

    def _outbox(
        self,
        version: CompiledJourney,
        run: Run,
        kind: str,
        node_id: str,
        key: str,
        payload: dict[str, Any],
    ) -> None:
        self.changes.outbox.append(
            {
                "id": outbox_id(key),
                "idempotency_key": key,
                "workspace_id": self.workspace_id,
                "kind": kind,
                "run_id": run.run_id,
                "journey_key": version.key,
                "version": version.version,
                "node_id": node_id,
                "profile_id": run.profile_id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "available_ms": self.written_ms,
                "created_ms": self.written_ms,
                "updated_ms": self.written_ms,
            }
        )


def outbox_id(idempotency_key: str) -> str:
    """The outbox row id of a request: 26 base-32 characters of a 128-bit hash of its key
    (unique as the key is, and as cheap to make as ids ever get)."""
    value = int.from_bytes(hashlib.blake2b(idempotency_key.encode(), digest_size=16).digest())
    # Ten bits (two characters) at a time, most significant first.
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def _fact_json(fact: EventFact) -> dict[str, Any]:
    return {
        "name": fact.name,
        "timestamp_ms": fact.timestamp_ms,
        "properties": dict(fact.properties),
    }


def _apply_to_facts(ctx: Facts, op: str, trait: str, value: Any) -> None:
    """Later steps of the same unit see a profile update at once."""
    if op == "unset":
        ctx.traits.pop(trait, None)
    elif op == "increment":
        current = ctx.traits.get(trait)
        numeric = isinstance(current, int | float) and not isinstance(current, bool)
        ctx.traits[trait] = (current if numeric else 0) + value
    else:
        ctx.traits[trait] = value


async def entry_book(
    conn: AsyncConnection,
    journeys: JourneyStore,
    runs: RunStore,
    workspace_id: str,
    versions: Iterable[CompiledJourney],
    profile_ids: Iterable[str],
) -> EntryBook:
    """The entry book of some journeys and people; journeys with an enrollment limit are
    locked first, so that concurrent workers never admit more than the limit."""
    chosen = {version.key: version for version in versions}
    people = set(profile_ids)
    records = await runs.entry_history(conn, workspace_id, chosen, people)
    enrollments: dict[str, int] = {}
    for key, version in sorted(chosen.items()):
        if version.journey.entry.enrollment_limit is not None:
            await journeys.lock(conn, workspace_id, key)
            enrollments[key] = await runs.enrollments(conn, workspace_id, key)
    return EntryBook.of(records, enrollments)


#: How `Unit` applies each kind of effect other than a refusal (keyed by exact type).
_APPLY: dict[type, Any] = {
    Entered: Unit._entered,
    NodeVisited: Unit._visited,
    Exit: Unit._exited,
    Converted: Unit._converted,
    CancelTimers: Unit._cancel_timers,
    ScheduleTimer: Unit._schedule_timer,
    Send: Unit._send,
    CallWebhook: Unit._call_webhook,
    UpdateProfile: Unit._update_profile,
    Emit: Unit._emit,
}
