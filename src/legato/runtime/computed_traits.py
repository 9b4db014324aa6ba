"""The computed-trait stage: keeps each profile's aggregates current, event by event.

Runs in the pipeline after the profile stage and before the segment stage. For the events of a
chunk whose name some computed trait aggregates, it loads those traits' stored states for the
chunk's people, folds each event in with the phase-1 `Aggregator` (a log offset kept in the
state makes a replayed or backfilled event count once), writes value, state and the moment a
window next changes the value (`due_ms`, fired by the re-check worker), and tells the segment
stage which values changed with which event. Never composes SQL, never evaluates conditions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.computed_traits import AggregateState
from legato.domain.pipeline import ResolvedEvent
from legato.ports import Clock
from legato.runtime.journeys import event_fact
from legato.runtime.segments import LOG_SEQ, Definitions
from legato.store.memberships import MembershipStore, ValueRow


class ComputedTraitStage:
    """`Stage` that folds each event into the computed traits that aggregate its name."""

    name = "computed_traits"

    def __init__(self, store: MembershipStore, definitions: Definitions, clock: Clock) -> None:
        self.store = store
        self.definitions = definitions
        self.clock = clock
        #: Aggregator updates so far (the index keeps it to events some trait aggregates).
        self.updates = 0
        self._changed: dict[int, dict[str, Any]] = {}

    def changed(self, seq: int) -> Mapping[str, Any] | None:
        """Computed-trait values the event at `seq` of the current chunk changed (key -> value)."""
        return self._changed.get(seq)

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Fold the batch's events into the computed traits that aggregate them."""
        self._changed = {}
        by_workspace: dict[str, list[ResolvedEvent]] = defaultdict(list)
        for item in batch:
            if item.profile_id is not None and item.row.event:
                by_workspace[item.row.workspace_id].append(item)
        now = self.clock.now_ms()
        for workspace_id in sorted(by_workspace):
            compiled = await self.definitions.get(conn, workspace_id)
            if not compiled.aggregators:
                continue
            items = [
                i for i in by_workspace[workspace_id] if i.row.event in compiled.traits_by_event
            ]
            if not items:
                continue
            keys = {k for i in items for k in compiled.traits_by_event[i.row.event or ""]}
            stored = await self.store.values(
                conn, workspace_id, keys, {i.profile_id for i in items if i.profile_id}
            )
            states: dict[tuple[str, str], tuple[AggregateState, int, Any]] = {}
            for item in items:
                profile = item.profile_id
                assert profile is not None
                fact = event_fact(item.row)
                for key in compiled.traits_by_event[fact.name]:
                    aggregator = compiled.aggregators[key]
                    slot = (key, profile)
                    if slot not in states:
                        row = stored.get(slot)
                        if row is None:
                            states[slot] = (aggregator.new_state(), 0, None)
                        else:
                            states[slot] = (
                                AggregateState.from_json(row.state),
                                int(row.state.get(LOG_SEQ, 0)),
                                row.value,
                            )
                    state, folded_upto, before = states[slot]
                    if item.seq <= folded_upto:
                        continue  # already in the state (a backfill read it)
                    value, _ = aggregator.apply(state, fact, now)
                    self.updates += 1
                    states[slot] = (state, item.seq, value)
                    if value != before:
                        self._changed.setdefault(item.seq, {})[key] = value
            rows = []
            for (key, profile), (state, upto, _) in states.items():
                value, until = compiled.aggregators[key].value(state, now)
                rows.append(
                    ValueRow(key, profile, value, {**state.to_json(), LOG_SEQ: upto}, until)
                )
            await self.store.write_values(conn, workspace_id, rows, now)
