"""The runtime state of journey runs in SQL: runs, timers, the dispatch index, rollups, and
the facts conditions read, on SQLite and PostgreSQL.

Every write of the runtime goes through `RunStore.write`, which applies one `JourneyChanges`
(everything a batch of transitions produced; see store/run_writes.py) on the caller's
connection, so a batch's run states, timers, outbox rows, rollups, listeners, profile changes
and internal events commit together or not at all. Runs are locked (`FOR UPDATE`) before they
are advanced; timers are claimed in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several workers share them (SQLite has one engine process). Decides nothing about journeys:
the runtime does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact
from legato.store.database import Database, Sql, driver_rows, json_text, json_value, slices
from legato.store.journeys import run_listeners, runs, timers
from legato.store.run_writes import (
    InternalEvent,
    JourneyChanges,
    TraitChange,
    append_internal,
    apply_trait_change,
    write_changes,
)
from legato.store.segments import computed_trait_values, segment_members
from legato.store.tables import events, profiles

# The unit of work lives in store/run_writes.py; these names stay importable from here.
__all__ = [
    "ClaimedTimer",
    "EntryRecord",
    "InternalEvent",
    "JourneyChanges",
    "ProfileFacts",
    "RunStore",
    "StoredRun",
    "TraitChange",
    "apply_trait_change",
]


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run's state as stored, with the identity of the event that started it."""

    state: dict[str, Any]
    user_id: str | None
    anonymous_id: str | None


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """One earlier run of a person in a journey, as the entry rules count it."""

    run_id: str
    journey_key: str
    profile_id: str
    entry_key: str | None
    live: bool


@dataclass(frozen=True, slots=True)
class ClaimedTimer:
    """A due timer, deleted from `timers` by the claim (the claim's transaction keeps it)."""

    owner: str
    name: str
    due_ms: int
    kind: str
    workspace_id: str
    journey_key: str
    version: int
    profile_id: str | None
    payload: Any


@dataclass(slots=True)
class ProfileFacts:
    """What conditions read about one person: traits, computed traits, segments, events."""

    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    segments: set[str]
    #: name → [(seq, fact)], sorted by (timestamp, seq).
    events: dict[str, list[tuple[int, EventFact]]]


# The hot reads of the pipeline's journey stage and of the timer worker, straight through the
# driver (see store/profile_state.py; texts built from table and column names only, hence the
# S608 waivers): lists travel as one JSON parameter, JSON comes back as text for orjson.
_CLAIMED = "owner, name, due_ms, kind, workspace_id, journey_key, version, profile_id"
_CLAIM = Sql(
    f"DELETE FROM {timers.name} WHERE (owner, name, due_ms) IN "  # noqa: S608
    f"(SELECT owner, name, due_ms FROM {timers.name} WHERE due_ms <= ? ORDER BY due_ms LIMIT ?) "
    f"RETURNING {_CLAIMED}, payload",
    # By row address (a TID scan): PostgreSQL planned the key-based form as a hash join over a
    # sequential scan of every waiting timer (90 ms a batch with 100,000 waiting).
    f"DELETE FROM {timers.name} WHERE ctid = ANY(ARRAY("  # noqa: S608
    f"SELECT ctid FROM {timers.name} WHERE due_ms <= %s ORDER BY due_ms LIMIT %s "
    f"FOR UPDATE SKIP LOCKED)) RETURNING {_CLAIMED}, payload::text",
)
_LOCK_RUNS = Sql(
    f"SELECT run_id, state, user_id, anonymous_id FROM {runs.name} "  # noqa: S608
    "WHERE run_id IN (SELECT value FROM json_each(?))",
    f"SELECT run_id, state::text, user_id, anonymous_id FROM {runs.name} "  # noqa: S608
    "WHERE run_id IN (SELECT jsonb_array_elements_text(%s::jsonb)) ORDER BY run_id FOR UPDATE",
)
_LISTENERS = Sql(
    "SELECT profile_id, kind, name, run_id, until_ms FROM "  # noqa: S608
    f"{run_listeners.name} WHERE workspace_id = ? AND profile_id IN "
    "(SELECT value FROM json_each(?))",
    "SELECT profile_id, kind, name, run_id, until_ms FROM "  # noqa: S608
    f"{run_listeners.name} WHERE workspace_id = %s AND profile_id = "
    "ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
)
_ENTRY_HISTORY = Sql(
    "SELECT run_id, journey_key, profile_id, entry_key, status FROM "  # noqa: S608
    f"{runs.name} WHERE workspace_id = ? AND journey_key IN (SELECT value FROM json_each(?))"
    " AND profile_id IN (SELECT value FROM json_each(?)) ORDER BY run_id",
    "SELECT run_id, journey_key, profile_id, entry_key, status FROM "  # noqa: S608
    f"{runs.name} WHERE workspace_id = %s"
    " AND journey_key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " AND profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " ORDER BY run_id",
)


# What conditions read about the people of a step (`RunStore.facts`), JSON as text.
_IN_PEOPLE = Sql(
    " = ? AND {column} IN (SELECT value FROM json_each(?))",
    " = %s AND {column} = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
)


def _of_people(select: str, select_pg: str, column: str) -> Sql:
    """`select` (ending in `WHERE workspace_id`) for the people of one JSON parameter."""
    return Sql(
        select + _IN_PEOPLE.sqlite.format(column=column),
        select_pg + _IN_PEOPLE.postgresql.format(column=column),
    )


_FACT_TRAITS = _of_people(
    f"SELECT id, traits FROM {profiles.name} WHERE workspace_id",  # noqa: S608
    f"SELECT id, traits::text FROM {profiles.name} WHERE workspace_id",  # noqa: S608
    "id",
)
_FACT_SEGMENTS = _of_people(
    f"SELECT profile_id, segment_key FROM {segment_members.name} WHERE workspace_id",  # noqa: S608
    f"SELECT profile_id, segment_key FROM {segment_members.name} WHERE workspace_id",  # noqa: S608
    "profile_id",
)
_FACT_COMPUTED = _of_people(
    f"SELECT profile_id, key, value FROM {computed_trait_values.name} WHERE workspace_id",  # noqa: S608
    f"SELECT profile_id, key, value::text FROM {computed_trait_values.name} "  # noqa: S608
    "WHERE workspace_id",
    "profile_id",
)
_EVENT_FACT = "profile_id, event, seq, timestamp_ms"
_FACT_EVENTS = Sql(
    f"SELECT {_EVENT_FACT}, json_extract(payload, '$.properties') FROM {events.name} "  # noqa: S608
    "WHERE profile_id IN (SELECT value FROM json_each(?)) "
    "AND event IN (SELECT value FROM json_each(?)) ORDER BY timestamp_ms, seq",
    f"SELECT {_EVENT_FACT}, (payload->'properties')::text FROM {events.name} "  # noqa: S608
    "WHERE profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) "
    "AND event = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) "
    "ORDER BY timestamp_ms, seq",
)


class RunStore:
    """Runs, their timers and listeners, and the unit of work that writes transitions."""

    def __init__(self, db: Database, partitions: int = 8):
        self.db = db
        self.partitions = partitions

    async def lock_runs(
        self, conn: AsyncConnection, run_ids: Iterable[str]
    ) -> dict[str, StoredRun]:
        """The runs, locked in id order (PostgreSQL) so two workers never advance one at once."""
        found: dict[str, StoredRun] = {}
        ids = sorted(set(run_ids))
        if not ids:
            return found
        # Straight through the driver, the state parsed by orjson: one run per transition.
        for row in await driver_rows(conn, _LOCK_RUNS, (json_text(ids),)):
            found[row[0]] = StoredRun(json_value(row[1]), row[2], row[3])
        return found

    async def repoint(
        self, conn: AsyncConnection, workspace_id: str, merges: Mapping[str, str]
    ) -> int:
        """Move the runs (and their listeners and timers) of merged-away profiles to the
        profile each was merged into (`merges`: loser → survivor); returns the runs moved."""
        if not merges:
            return 0
        moved: list[tuple[str, dict[str, Any]]] = []
        for part in slices(sorted(merges)):
            rows = await conn.execute(
                sa.select(runs.c.run_id, runs.c.profile_id, runs.c.state)
                .where(runs.c.workspace_id == workspace_id, runs.c.profile_id.in_(part))
                .order_by(runs.c.run_id)
                .with_for_update()
            )
            for run_id, profile_id, state in rows:
                moved.append((run_id, {**state, "profile_id": merges[profile_id]}))
        if moved:
            await conn.execute(
                runs.update()
                .where(runs.c.run_id == sa.bindparam("b_run"))
                .values(
                    profile_id=sa.bindparam("b_profile"),
                    state=sa.bindparam("b_state", type_=runs.c.state.type),
                ),
                [
                    {"b_run": run_id, "b_profile": state["profile_id"], "b_state": state}
                    for run_id, state in moved
                ],
            )
        for loser, survivor in sorted(merges.items()):
            await conn.execute(
                run_listeners.update()
                .where(
                    run_listeners.c.workspace_id == workspace_id,
                    run_listeners.c.profile_id == loser,
                )
                .values(profile_id=survivor)
            )
            await conn.execute(
                timers.update()
                .where(timers.c.workspace_id == workspace_id, timers.c.profile_id == loser)
                .values(profile_id=survivor)
            )
        return len(moved)

    async def entry_history(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        journey_keys: Iterable[str],
        profile_ids: Iterable[str],
    ) -> list[EntryRecord]:
        """Every run of these people in these journeys (for the entry rules)."""
        keys = sorted(set(journey_keys))
        people = sorted(set(profile_ids))
        if not keys or not people:
            return []
        rows = await driver_rows(
            conn, _ENTRY_HISTORY, (workspace_id, json_text(keys), json_text(people))
        )
        return [
            EntryRecord(run_id, key, profile_id, entry_key, status == "waiting")
            for run_id, key, profile_id, entry_key, status in rows
        ]

    async def enrollments(self, conn: AsyncConnection, workspace_id: str, key: str) -> int:
        """How many runs a journey has had (all versions); lock the journey first to count."""
        total = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(runs)
            .where(runs.c.workspace_id == workspace_id, runs.c.journey_key == key)
        )
        return int(total or 0)

    async def listeners(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> list[tuple[str, str, str, str, int | None]]:
        """(profile, kind, name, run, until_ms) of every listener of these people."""
        people = sorted(set(profile_ids))
        if not people:
            return []
        rows = await driver_rows(conn, _LISTENERS, (workspace_id, json_text(people)))
        return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    async def facts(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        event_names: Iterable[str],
    ) -> dict[str, ProfileFacts]:
        """Traits, computed traits, segments and the named events of these people."""
        people = sorted(set(profile_ids))
        names = sorted(set(event_names))
        found = {p: ProfileFacts({}, {}, set(), {}) for p in people}
        if not people:
            return found
        who = (workspace_id, json_text(people))
        for profile_id, traits in await driver_rows(conn, _FACT_TRAITS, who):
            found[profile_id].traits = dict(json_value(traits))
        for profile_id, segment in await driver_rows(conn, _FACT_SEGMENTS, who):
            found[profile_id].segments.add(segment)
        for profile_id, key, value in await driver_rows(conn, _FACT_COMPUTED, who):
            found[profile_id].computed_traits[key] = json_value(value)
        if not names:
            return found
        for profile_id, name, seq, at_ms, text in await driver_rows(
            conn, _FACT_EVENTS, (json_text(people), json_text(names))
        ):
            properties = None if text is None else json_value(text)
            found[profile_id].events.setdefault(name, []).append(
                (seq, EventFact(name, at_ms, properties if isinstance(properties, dict) else {}))
            )
        return found

    async def history(
        self, workspace_id: str, start_ms: int, end_ms: int, *, page: int = 5000
    ) -> AsyncIterator[dict[str, Any]]:
        """The workspace's logged events between two instants, by time (then log order),
        streamed a page at a time (simulations replay them)."""
        after: tuple[int, int] = (start_ms - 1, 2**62)
        while True:
            async with self.db.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(
                            events.c.seq,
                            events.c.profile_id,
                            events.c.type,
                            events.c.event,
                            events.c.timestamp_ms,
                            events.c.payload,
                        )
                        .where(
                            events.c.workspace_id == workspace_id,
                            sa.tuple_(events.c.timestamp_ms, events.c.seq) > after,
                            events.c.timestamp_ms <= end_ms,
                        )
                        .order_by(events.c.timestamp_ms, events.c.seq)
                        .limit(page)
                    )
                ).all()
            for row in rows:
                yield dict(row._mapping)
            if len(rows) < page:
                return
            after = (rows[-1].timestamp_ms, rows[-1].seq)

    async def segment_page(
        self, conn: AsyncConnection, workspace_id: str, segment: str, after: str, limit: int
    ) -> list[str]:
        """Profile ids of a segment's members after `after`, in id order (schedules page)."""
        rows = await conn.execute(
            sa.select(segment_members.c.profile_id)
            .where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.segment_key == segment,
                segment_members.c.profile_id > after,
            )
            .order_by(segment_members.c.profile_id)
            .limit(limit)
        )
        return [row.profile_id for row in rows]

    async def claim_timers(
        self, conn: AsyncConnection, now_ms: int, limit: int
    ) -> list[ClaimedTimer]:
        """Delete and return up to `limit` due timers, earliest first.

        On PostgreSQL rows another worker holds are skipped (`FOR UPDATE SKIP LOCKED`); the
        deletion commits with the claimer's transaction, so a crash gives the timers back.
        """
        rows = await driver_rows(conn, _CLAIM, (now_ms, limit))
        claimed = [
            ClaimedTimer(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], json_value(row[8])
            )
            for row in rows
        ]
        claimed.sort(key=lambda timer: (timer.due_ms, timer.owner, timer.name))
        return claimed

    async def next_due(self) -> int | None:
        """The earliest pending timer's due time."""
        async with self.db.connect() as conn:
            value = await conn.scalar(sa.select(sa.func.min(timers.c.due_ms)))
        return None if value is None else int(value)

    async def write(self, conn: AsyncConnection, changes: JourneyChanges) -> None:
        """Apply everything a batch of transitions produced, on the caller's transaction."""
        await write_changes(conn, changes, self.partitions)

    async def append_internal(self, conn: AsyncConnection, items: Sequence[InternalEvent]) -> None:
        """Log internal events on the caller's transaction, on their person's partition."""
        await append_internal(conn, items, self.partitions)
