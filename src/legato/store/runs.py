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

import functools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact
from legato.store.database import Database, slices
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


# The hot reads of the timer worker, straight through the driver (texts built from table and
# column names only, hence the S608 waivers): JSON comes back as text for orjson to parse.
_CLAIMED = "owner, name, due_ms, kind, workspace_id, journey_key, version, profile_id"
_SQLITE_CLAIM = (
    f"DELETE FROM {timers.name} WHERE (owner, name, due_ms) IN "  # noqa: S608
    f"(SELECT owner, name, due_ms FROM {timers.name} WHERE due_ms <= ? ORDER BY due_ms LIMIT ?) "
    f"RETURNING {_CLAIMED}, payload"
)
# By row address (a TID scan): PostgreSQL planned the key-based form as a hash join over a
# sequential scan of every waiting timer (90 ms a batch with 100,000 waiting).
_PG_CLAIM = (
    f"DELETE FROM {timers.name} WHERE ctid = ANY(ARRAY("  # noqa: S608
    f"SELECT ctid FROM {timers.name} WHERE due_ms <= %s ORDER BY due_ms LIMIT %s "
    f"FOR UPDATE SKIP LOCKED)) RETURNING {_CLAIMED}, payload::text"
)
_PG_LOCK_RUNS = (
    f"SELECT run_id, state::text, user_id, anonymous_id FROM {runs.name} "  # noqa: S608
    "WHERE run_id IN (SELECT jsonb_array_elements_text(%s::jsonb)) ORDER BY run_id FOR UPDATE"
)


def _json_value(text: Any) -> Any:
    """A JSON column read as text (a bare number comes back as a number from SQLite)."""
    return orjson.loads(text) if isinstance(text, str | bytes) else text


@functools.cache
def _sqlite_lock_runs(count: int) -> str:
    marks = ", ".join("?" for _ in range(count))
    return (
        f"SELECT run_id, state, user_id, anonymous_id FROM {runs.name} "  # noqa: S608
        f"WHERE run_id IN ({marks})"
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
        if conn.dialect.name == "postgresql":
            parts: Iterable[Sequence[str]] = [ids]
        else:
            parts = slices(ids)
        for part in parts:
            if conn.dialect.name == "postgresql":
                result = await conn.exec_driver_sql(_PG_LOCK_RUNS, (orjson.dumps(part).decode(),))
            else:
                result = await conn.exec_driver_sql(_sqlite_lock_runs(len(part)), tuple(part))
            rows: Sequence[Any] = result.all()
            for row in rows:
                found[row[0]] = StoredRun(_json_value(row[1]), row[2], row[3])
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
        found: list[EntryRecord] = []
        if not keys or not people:
            return found
        for part in slices(people):
            rows = await conn.execute(
                sa.select(
                    runs.c.run_id,
                    runs.c.journey_key,
                    runs.c.profile_id,
                    runs.c.entry_key,
                    runs.c.status,
                )
                .where(
                    runs.c.workspace_id == workspace_id,
                    runs.c.journey_key.in_(keys),
                    runs.c.profile_id.in_(part),
                )
                .order_by(runs.c.run_id)
            )
            found.extend(
                EntryRecord(run_id, key, profile_id, entry_key, status == "waiting")
                for run_id, key, profile_id, entry_key, status in rows
            )
        return found

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
        found: list[tuple[str, str, str, str, int | None]] = []
        for part in slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(
                    run_listeners.c.profile_id,
                    run_listeners.c.kind,
                    run_listeners.c.name,
                    run_listeners.c.run_id,
                    run_listeners.c.until_ms,
                ).where(
                    run_listeners.c.workspace_id == workspace_id,
                    run_listeners.c.profile_id.in_(part),
                )
            )
            found.extend(
                (row.profile_id, row.kind, row.name, row.run_id, row.until_ms) for row in rows
            )
        return found

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
        for part in slices(people):
            for profile_id, traits in await conn.execute(
                sa.select(profiles.c.id, profiles.c.traits).where(
                    profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part)
                )
            ):
                found[profile_id].traits = dict(traits)
            for profile_id, segment in await conn.execute(
                sa.select(segment_members.c.profile_id, segment_members.c.segment_key).where(
                    segment_members.c.workspace_id == workspace_id,
                    segment_members.c.profile_id.in_(part),
                )
            ):
                found[profile_id].segments.add(segment)
            for profile_id, key, value in await conn.execute(
                sa.select(
                    computed_trait_values.c.profile_id,
                    computed_trait_values.c.key,
                    computed_trait_values.c.value,
                ).where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.profile_id.in_(part),
                )
            ):
                found[profile_id].computed_traits[key] = value
            if not names:
                continue
            for profile_id, name, seq, at_ms, properties in await conn.execute(
                sa.select(
                    events.c.profile_id,
                    events.c.event,
                    events.c.seq,
                    events.c.timestamp_ms,
                    events.c.payload["properties"].label("properties"),
                )
                .where(events.c.profile_id.in_(part), events.c.event.in_(names))
                .order_by(events.c.timestamp_ms, events.c.seq)
            ):
                found[profile_id].events.setdefault(name, []).append(
                    (
                        seq,
                        EventFact(name, at_ms, properties if isinstance(properties, dict) else {}),
                    )
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
        postgres = conn.dialect.name == "postgresql"
        result = await conn.exec_driver_sql(
            _PG_CLAIM if postgres else _SQLITE_CLAIM, (now_ms, limit)
        )
        rows: Sequence[Any] = result.all()
        claimed = [
            ClaimedTimer(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], _json_value(row[8])
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
