"""The journey stage: moves runs with each event of the pipeline, inside its transaction.

For a chunk of resolved events (after identity, profile and segments), per workspace: the
trigger index names the published journeys that start on the chunk's event names, and the
dispatch index (`run_listeners`) names the runs of the chunk's people that listen to them (an
event name, a changed trait, a segment change). Only those journeys and runs are loaded and
locked; an event nobody listens to costs two indexed lookups per chunk, however many journeys
exist. Then, event by event in log order, each listening run gets `EventArrived` and each
matching journey is offered an `Enter` (after the runs, so the triggering event is never fed
back into the run it starts). Everything the transitions produce is written with the chunk's
offset, so a crash never loses or repeats a step. Never composes SQL, never decides what a
journey does (the engine does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact
from legato.domain.engine import (
    SEGMENT_ENTERED_EVENT,
    SEGMENT_EXITED_EVENT,
    SEGMENT_PROPERTY,
    CompiledJourney,
    EventArrived,
)
from legato.domain.pipeline import LoggedEvent, ResolvedEvent
from legato.ports import Clock
from legato.runtime.listening import Facts, Versions, listener_rows
from legato.runtime.transitions import EntryBook, Origin, Unit, entry_book
from legato.store.journeys import JourneyStore, Listener
from legato.store.runs import RunStore

#: How far in the past an event's own time may set "now" for the steps it causes. Steps run at
#: the event's time (so a backlog does not shift waits or miss goals that happened meanwhile),
#: but never before this bound: replaying an old import must not send a year of messages at once.
MAX_EVENT_LAG_MS = 6 * 3_600_000

_SEGMENT_EVENTS = frozenset({SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT})


def event_fact(row: LoggedEvent) -> EventFact:
    """A logged event as the engine sees it: its name, time and properties."""
    properties = row.payload.get("properties")
    return EventFact(
        row.event or "", row.timestamp_ms, properties if isinstance(properties, dict) else {}
    )


def step_time(event_ms: int, floor_ms: int, clock_ms: int) -> int:
    """The instant a step caused by an event runs at (see MAX_EVENT_LAG_MS)."""
    return min(clock_ms, max(event_ms, floor_ms, clock_ms - MAX_EVENT_LAG_MS))


class Dispatch:
    """The dispatch index of the chunk's people, kept current as the chunk moves runs."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str, int | None]] = ()) -> None:
        self._by_profile: dict[str, dict[Listener, dict[str, int | None]]] = defaultdict(dict)
        self._keys: dict[str, set[Listener]] = defaultdict(set)
        for profile, kind, name, run_id, until in rows:
            self._by_profile[profile].setdefault((kind, name), {})[run_id] = until
            self._keys[run_id].add((kind, name))

    def runs_for(self, profile_id: str, fact: EventFact, traits: Iterable[str]) -> set[str]:
        """The runs of a person that this event (with the traits it changed) concerns."""
        mine = self._by_profile.get(profile_id)
        if not mine:
            return set()
        wanted: list[Listener] = [("event", fact.name)]
        if fact.name in _SEGMENT_EVENTS:
            segment = fact.properties.get(SEGMENT_PROPERTY)
            if isinstance(segment, str):
                wanted.append(("segment", segment))
        wanted.extend(("trait", trait) for trait in traits)
        found: set[str] = set()
        for key in wanted:
            for run_id, until in mine.get(key, {}).items():
                if until is None or until >= fact.timestamp_ms:
                    found.add(run_id)
        return found

    def set(self, profile_id: str, run_id: str, rows: Mapping[Listener, int | None]) -> None:
        """Replace what a run listens to."""
        mine = self._by_profile[profile_id]
        for key in self._keys.pop(run_id, set()):
            listeners = mine.get(key)
            if listeners is not None:
                listeners.pop(run_id, None)
        for key, until in rows.items():
            mine.setdefault(key, {})[run_id] = until
            self._keys[run_id].add(key)


class JourneyStage:
    """`Stage` that advances the runs an event concerns and enters the journeys it triggers."""

    name = "journeys"

    def __init__(
        self, journeys: JourneyStore, runs: RunStore, versions: Versions, clock: Clock
    ) -> None:
        self.journeys = journeys
        self.runs = runs
        self.versions = versions
        self.clock = clock
        #: `advance` calls made so far (the dispatch index keeps it to what listens).
        self.advances = 0

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Advance and enter runs for the batch, workspace by workspace, in log order."""
        by_workspace: dict[str, list[ResolvedEvent]] = defaultdict(list)
        for item in batch:
            if item.profile_id is not None:
                by_workspace[item.row.workspace_id].append(item)
        for workspace_id in sorted(by_workspace):
            await self._workspace(conn, workspace_id, by_workspace[workspace_id])

    async def _workspace(
        self, conn: AsyncConnection, workspace_id: str, items: list[ResolvedEvent]
    ) -> None:
        merges = {
            loser: item.profile_id
            for item in items
            if item.profile_id is not None
            for loser in item.merged_from
        }
        if merges:
            # A merged-away profile's runs belong to the survivor now: its events (and its
            # entry rules) must find them there.
            for loser, survivor in list(merges.items()):
                while survivor in merges and merges[survivor] != survivor:
                    survivor = merges[survivor]
                merges[loser] = survivor
            await self.runs.repoint(conn, workspace_id, merges)
        facts = [event_fact(item.row) for item in items]
        names = {fact.name for fact in facts if fact.name}
        segments = {
            str(fact.properties[SEGMENT_PROPERTY])
            for fact in facts
            if fact.name in _SEGMENT_EVENTS
            and isinstance(fact.properties.get(SEGMENT_PROPERTY), str)
        }
        triggered: list[CompiledJourney] = [
            await self.versions.get(conn, workspace_id, key, version)
            for key, version in await self.journeys.triggered(conn, workspace_id, names, segments)
        ]
        people = {item.profile_id for item in items if item.profile_id is not None}
        dispatch = Dispatch(await self.runs.listeners(conn, workspace_id, people))

        wanted_runs: set[str] = set()
        entering: dict[str, CompiledJourney] = {}
        involved: set[str] = set()
        for item, fact in zip(items, facts, strict=True):
            assert item.profile_id is not None
            run_ids = dispatch.runs_for(item.profile_id, fact, item.changed_traits)
            matches = [version for version in triggered if version.matches_trigger(fact)]
            if run_ids or matches:
                involved.add(item.profile_id)
            wanted_runs |= run_ids
            entering.update((version.key, version) for version in matches)
        if not involved:
            return

        stored = await self.runs.lock_runs(conn, wanted_runs)
        unit = Unit(workspace_id, self.clock.now_ms())
        reads: set[str] = set()
        needed = False
        for state in stored.values():
            version = await self.versions.get(
                conn, workspace_id, state.state["journey_key"], int(state.state["version"])
            )
            unit.adopt(version, state)
            reads |= self.versions.reads(version)
            needed = needed or self.versions.needs_facts(version)
        for version in entering.values():
            reads |= self.versions.reads(version)
            needed = needed or self.versions.needs_facts(version)
        loaded = await self.runs.facts(conn, workspace_id, involved, reads) if needed else {}
        contexts = {profile: Facts(profile, loaded.get(profile)) for profile in involved}
        book = (
            await entry_book(
                conn, self.journeys, self.runs, workspace_id, entering.values(), involved
            )
            if entering
            else EntryBook()
        )

        clock_ms = self.clock.now_ms()
        for item, fact in zip(items, facts, strict=True):
            profile = item.profile_id
            assert profile is not None
            ctx = contexts.get(profile)
            if ctx is None:
                continue
            ctx.upto_seq = item.seq
            for run_id in sorted(dispatch.runs_for(profile, fact, item.changed_traits)):
                tracked = unit.tracked.get(run_id)
                if tracked is None or tracked.run.profile_id != profile:
                    continue  # a listener left behind by a merge: its run is someone else's
                now = step_time(fact.timestamp_ms, tracked.run.updated_ms, clock_ms)
                transition = unit.step(tracked.version, tracked, EventArrived(fact), ctx, now)
                if transition.changed and transition.run is not None:
                    dispatch.set(profile, run_id, listener_rows(tracked.version, transition.run))
                    book.note(transition.run)
            for version in triggered:
                if not version.matches_trigger(fact):
                    continue
                now = step_time(fact.timestamp_ms, 0, clock_ms)
                origin = Origin(item.row.user_id, item.row.anonymous_id)
                transition = unit.enter(version, fact, ctx, now, book, origin)
                if transition.run is not None:
                    dispatch.set(
                        profile, transition.run.run_id, listener_rows(version, transition.run)
                    )
        self.advances += unit.advances
        await self.runs.write(conn, unit.finish())
