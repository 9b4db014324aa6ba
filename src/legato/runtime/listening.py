"""What journey runs read and listen to: the cache of compiled versions, one person's facts as
conditions see them, and the dispatch index rows of a run (which events, traits and segments
can move it now). Shared by the transition unit, the workers and simulations; never composes
SQL and never decides what a journey does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact, references
from legato.domain.engine import CompiledJourney, Run, compile_journey
from legato.domain.journeys import (
    BranchNode,
    ConditionExit,
    ScheduleTrigger,
    SplitNode,
    WaitUntilNode,
    parse_journey,
)
from legato.store.journeys import JourneyStore, Listener
from legato.store.runs import ProfileFacts

#: The rollup node of runs waiting for their local start time (no node yet).
START_NODE = "$start"


class Facts:
    """An `EvalContext` over one person's stored facts, changed in place by the unit's
    profile updates; `upto_seq` hides events logged after the one being processed."""

    __slots__ = ("_events", "computed_traits", "profile_id", "segments", "traits", "upto_seq")

    def __init__(self, profile_id: str, stored: ProfileFacts | None = None) -> None:
        self.profile_id = profile_id
        self.upto_seq: int | None = None
        if stored is None:
            self.traits: dict[str, Any] = {}
            self.computed_traits: dict[str, Any] = {}
            self.segments: set[str] = set()
            self._events: dict[str, list[tuple[int, EventFact]]] = {}
            return
        self.traits = stored.traits
        self.computed_traits = stored.computed_traits
        self.segments = stored.segments
        self._events = stored.events

    def record(self, seq: int, fact: EventFact) -> None:
        """Add an event that happened after every one known (simulations replay this way)."""
        self._events.setdefault(fact.name, []).append((seq, fact))

    def events(self, name: str) -> Sequence[EventFact]:
        """The person's events of that name, oldest first (up to `upto_seq` when set)."""
        found = self._events.get(name, ())
        limit = self.upto_seq
        return [fact for seq, fact in found if limit is None or seq <= limit]


class Versions:
    """Compiled journey versions, cached (versions never change once published)."""

    def __init__(self, store: JourneyStore, size: int = 1024) -> None:
        self.store = store
        self.size = size
        self._cache: OrderedDict[tuple[str, str, int], CompiledJourney] = OrderedDict()
        self._reads: dict[int, frozenset[str]] = {}
        self._needs: dict[int, tuple[CompiledJourney, bool]] = {}
        #: Versions compiled so far (tests assert the dispatch index spares the others).
        self.compiled = 0

    async def get(
        self, conn: AsyncConnection, workspace_id: str, key: str, version: int
    ) -> CompiledJourney:
        """The compiled version (loaded and compiled on first use)."""
        cache_key = (workspace_id, key, version)
        found = self._cache.get(cache_key)
        if found is not None:
            self._cache.move_to_end(cache_key)
            return found
        document = await self.store.version_document(conn, workspace_id, key, version)
        compiled = compile_journey(parse_journey(document), version)
        self.compiled += 1
        self._cache[cache_key] = compiled
        while len(self._cache) > self.size:
            _, dropped = self._cache.popitem(last=False)
            self._reads.pop(id(dropped), None)
        return compiled

    def needs_facts(self, version: CompiledJourney) -> bool:
        """Whether steps of this version read the person's facts (conditions, local times);
        when none of a batch's versions do, the batch skips loading them."""
        found = self._needs.get(id(version))
        if found is None or found[0] is not version:
            found = (version, reads_profile(version))
            self._needs[id(version)] = found
        return found[1]

    def reads(self, version: CompiledJourney) -> frozenset[str]:
        """The event names the version's conditions count (loaded with each person's facts)."""
        found = self._reads.get(id(version))
        if found is None:
            found = condition_events(version)
            self._reads[id(version)] = found
        return found


def reads_profile(version: CompiledJourney) -> bool:
    """Whether a version's steps can read the person's facts: a condition anywhere (branches,
    splits, exit criteria), a local time of day or date (wait_until), or a local-time schedule."""
    journey = version.journey
    if version.exit_conditions or version.predicates:
        return True
    if isinstance(journey.trigger, ScheduleTrigger) and journey.trigger.local_time:
        return True
    return any(isinstance(node, WaitUntilNode) for node in journey.nodes)


def condition_events(version: CompiledJourney) -> frozenset[str]:
    """Event names read by a journey's branch, split and exit conditions."""
    names: set[str] = set()
    journey = version.journey
    for criterion in journey.exit_criteria:
        if isinstance(criterion, ConditionExit):
            names |= references(criterion.condition).events
    for node in journey.nodes:
        if isinstance(node, BranchNode):
            names |= references(node.condition).events
        elif isinstance(node, SplitNode):
            for arm in node.branches:
                names |= references(arm.condition).events
    return frozenset(names)


_LISTENERS: dict[tuple[int, bool, bool, int | None, str | None, str], Any] = {}


def listener_rows(version: CompiledJourney, run: Run) -> dict[Listener, int | None]:
    """The dispatch index entries of a run now: (kind, name) → listening until."""
    # What a run listens to depends on its version and on these fields only; most runs share
    # them, so the answer is cached (keyed by the version object, checked on every hit).
    key = (
        id(version),
        run.live,
        run.converted_ms is None,
        None if run.live else run.goal_deadline_ms,
        run.node_id,
        run.status,
    )
    cached = _LISTENERS.get(key)
    if cached is not None and cached[0] is version:
        return dict(cached[1])
    rows = _listener_rows(version, run)
    if len(_LISTENERS) > 100_000:
        _LISTENERS.clear()
    _LISTENERS[key] = (version, rows)
    return dict(rows)


def _listener_rows(version: CompiledJourney, run: Run) -> dict[Listener, int | None]:
    interests = version.interests(run)
    until = interests.until_ms
    rows: dict[Listener, int | None] = {("event", name): until for name in interests.events}
    rows.update((("trait", name), until) for name in interests.traits)
    rows.update((("computed_trait", name), until) for name in interests.computed_traits)
    rows.update((("segment", name), until) for name in interests.segments)
    return rows


def waiting_node(run: Run | None) -> str | None:
    """Where a run counts as waiting in the rollups (None: not waiting)."""
    if run is None or run.status != "waiting":
        return None
    return run.node_id or START_NODE
