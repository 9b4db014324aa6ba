"""The runtime state of journey runs in SQL: runs, timers, the dispatch index, rollups, and
the facts conditions read, on SQLite and PostgreSQL.

Every write of the runtime goes through `RunStore.write`, which applies one `JourneyChanges`
(everything a batch of transitions produced) on the caller's connection, so a batch's run
states, timers, outbox rows, rollups, listeners, profile changes and internal events commit
together or not at all. Runs are locked (`FOR UPDATE`) before they are advanced; timers are
claimed in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share them
(SQLite has one engine process). Decides nothing about journeys: the runtime does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import EventFact
from legato.domain.messages import format_instant, partition_for
from legato.domain.pipeline import INTERNAL
from legato.domain.profiles import ProfileDraft
from legato.store.database import Database
from legato.store.events import LOG_LOCK_KEY
from legato.store.journeys import (
    SLICE,
    journey_rollups,
    outbox,
    run_listeners,
    runs,
    timers,
)
from legato.store.segments import computed_trait_values, segment_members
from legato.store.tables import events, profiles


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


@dataclass(frozen=True, slots=True)
class InternalEvent:
    """An event the platform logs for a person (emitted by a journey, a profile change...)."""

    workspace_id: str
    message_id: str
    event: str
    profile_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    properties: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TraitChange:
    """One trait operation for a profile, at `at_ms` (newest wins against identify calls)."""

    op: str
    trait: str
    value: Any
    at_ms: int


@dataclass(slots=True)
class ProfileFacts:
    """What conditions read about one person: traits, computed traits, segments, events."""

    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    segments: set[str]
    #: name → [(seq, fact)], sorted by (timestamp, seq).
    events: dict[str, list[tuple[int, EventFact]]]


@dataclass(slots=True)
class JourneyChanges:
    """Everything a batch of transitions writes, applied by `JourneyStore.write` at once."""

    new_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Runs whose pending run timers are all deleted before `timers` are inserted.
    cancelled_timers: set[str] = field(default_factory=set)
    timers: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    rollups: Counter[tuple[str, str, int, str, str]] = field(default_factory=Counter)
    #: (workspace, profile, kind, name, run) → until_ms, to insert / to delete.
    listeners_added: dict[tuple[str, str, str, str, str], int | None] = field(default_factory=dict)
    listeners_removed: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    internal_events: list[InternalEvent] = field(default_factory=list)
    trait_changes: dict[tuple[str, str], list[TraitChange]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.new_runs
            or self.updated_runs
            or self.cancelled_timers
            or self.timers
            or self.outbox
            or self.rollups
            or self.listeners_added
            or self.listeners_removed
            or self.internal_events
            or self.trait_changes
        )


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT of the connection's dialect, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_JSON_COLUMNS = frozenset({"state", "payload"})


async def _bulk_insert(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]], conflict: str = ""
) -> None:
    """INSERT many rows of `table` straight through the driver (JSON columns serialised here)."""
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    columns = list(rows[0])
    marks = ", ".join(
        ("%s::jsonb" if name in _JSON_COLUMNS else "%s") if postgres else "?" for name in columns
    )
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - names, not input
        f"VALUES ({marks}) {conflict}"
    )
    await conn.exec_driver_sql(
        sql,
        [
            tuple(_json_text(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns)
            for row in rows
        ],
    )


def _slices(items: Sequence[Any], size: int = SLICE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        for part in _slices(sorted(set(run_ids))):
            rows = await conn.execute(
                sa.select(runs.c.run_id, runs.c.state, runs.c.user_id, runs.c.anonymous_id)
                .where(runs.c.run_id.in_(part))
                .order_by(runs.c.run_id)
                .with_for_update()
            )
            for row in rows:
                found[row.run_id] = StoredRun(dict(row.state), row.user_id, row.anonymous_id)
        return found

    async def repoint(
        self, conn: AsyncConnection, workspace_id: str, merges: Mapping[str, str]
    ) -> int:
        """Move the runs (and their listeners and timers) of merged-away profiles to the
        profile each was merged into (`merges`: loser → survivor); returns the runs moved."""
        if not merges:
            return 0
        moved: list[tuple[str, dict[str, Any]]] = []
        for part in _slices(sorted(merges)):
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
        for part in _slices(people):
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
        for part in _slices(sorted(set(profile_ids))):
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
        for part in _slices(people):
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
        due = (
            sa.select(timers.c.owner, timers.c.name, timers.c.due_ms)
            .where(timers.c.due_ms <= now_ms)
            .order_by(timers.c.due_ms)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        statement = (
            timers.delete()
            .where(sa.tuple_(timers.c.owner, timers.c.name, timers.c.due_ms).in_(due))
            .returning(*timers.c)
        )
        rows = (await conn.execute(statement)).all()
        claimed = [
            ClaimedTimer(
                row.owner,
                row.name,
                row.due_ms,
                row.kind,
                row.workspace_id,
                row.journey_key,
                row.version,
                row.profile_id,
                row.payload,
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
        """Apply everything a batch of transitions produced, on the caller's transaction.

        Rows are written in a fixed order (sorted keys), so two transactions touching the same
        rollups or runs lock them in the same order and never deadlock each other.
        """
        # The hot rows (one run, timer and request per transition) go to the driver with their
        # JSON already serialised: SQLAlchemy's per-row processing would cost more than the SQL.
        if changes.new_runs:
            await _bulk_insert(conn, runs, [changes.new_runs[k] for k in sorted(changes.new_runs)])
        if changes.updated_runs:
            json_mark = "%s::jsonb" if conn.dialect.name == "postgresql" else "?"
            mark = "%s" if conn.dialect.name == "postgresql" else "?"
            await conn.exec_driver_sql(
                f"UPDATE {runs.name} SET status = {mark}, node_id = {mark}, "  # noqa: S608
                f"state = {json_mark}, updated_ms = {mark} WHERE run_id = {mark}",
                [
                    (
                        row["status"],
                        row["node_id"],
                        _json_text(row["state"]),
                        row["updated_ms"],
                        run_id,
                    )
                    for run_id, row in sorted(changes.updated_runs.items())
                ],
            )
        if changes.cancelled_timers:
            for part in _slices(sorted(changes.cancelled_timers)):
                await conn.execute(
                    timers.delete().where(timers.c.owner.in_(part), timers.c.kind == "run")
                )
        if changes.timers:
            await _bulk_insert(
                conn,
                timers,
                [changes.timers[k] for k in sorted(changes.timers)],
                "ON CONFLICT DO NOTHING",
            )
        if changes.outbox:
            await _bulk_insert(
                conn,
                outbox,
                sorted(changes.outbox, key=lambda row: str(row["idempotency_key"])),
                "ON CONFLICT (idempotency_key) DO NOTHING",
            )
        if changes.listeners_removed:
            await conn.execute(
                run_listeners.delete().where(
                    run_listeners.c.workspace_id == sa.bindparam("b_ws"),
                    run_listeners.c.profile_id == sa.bindparam("b_profile"),
                    run_listeners.c.kind == sa.bindparam("b_kind"),
                    run_listeners.c.name == sa.bindparam("b_name"),
                    run_listeners.c.run_id == sa.bindparam("b_run"),
                ),
                [
                    {"b_ws": w, "b_profile": p, "b_kind": k, "b_name": n, "b_run": r}
                    for w, p, k, n, r in sorted(changes.listeners_removed)
                ],
            )
        if changes.listeners_added:
            statement = _insert(conn, run_listeners)
            statement = statement.on_conflict_do_update(
                index_elements=[c.name for c in run_listeners.primary_key.columns],
                set_={"until_ms": statement.excluded.until_ms},
            )
            await conn.execute(
                statement,
                [
                    {
                        "workspace_id": w,
                        "profile_id": p,
                        "kind": k,
                        "name": n,
                        "run_id": r,
                        "until_ms": until,
                    }
                    for (w, p, k, n, r), until in sorted(changes.listeners_added.items())
                ],
            )
        if changes.trait_changes:
            await self._change_traits(conn, changes.trait_changes)
        if changes.internal_events:
            await self.append_internal(conn, changes.internal_events)
        counts = sorted((key, n) for key, n in changes.rollups.items() if n)
        if counts:
            statement = _insert(conn, journey_rollups)
            statement = statement.on_conflict_do_update(
                index_elements=[c.name for c in journey_rollups.primary_key.columns],
                set_={"count": journey_rollups.c.count + statement.excluded.count},
            )
            await conn.execute(
                statement,
                [
                    {
                        "workspace_id": w,
                        "journey_key": k,
                        "version": v,
                        "node_id": n,
                        "metric": m,
                        "count": count,
                    }
                    for (w, k, v, n, m), count in counts
                ],
            )

    async def _change_traits(
        self, conn: AsyncConnection, changes: Mapping[tuple[str, str], Sequence[TraitChange]]
    ) -> None:
        by_workspace: dict[str, dict[str, Sequence[TraitChange]]] = {}
        for (workspace_id, profile_id), ops in changes.items():
            by_workspace.setdefault(workspace_id, {})[profile_id] = ops
        for workspace_id, per_profile in sorted(by_workspace.items()):
            rows = await conn.execute(
                sa.select(profiles.c.id, profiles.c.traits, profiles.c.trait_times)
                .where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.id.in_(sorted(per_profile)),
                )
                .order_by(profiles.c.id)
                .with_for_update()
            )
            updates: list[dict[str, Any]] = []
            for row in rows:
                draft = ProfileDraft(traits=dict(row.traits), trait_times=dict(row.trait_times))
                for change in per_profile[row.id]:
                    apply_trait_change(draft, change)
                updates.append(
                    {"b_id": row.id, "b_traits": draft.traits, "b_times": draft.trait_times}
                )
            if updates:
                await conn.execute(
                    profiles.update()
                    .where(profiles.c.id == sa.bindparam("b_id"))
                    .values(
                        traits=sa.bindparam("b_traits", type_=profiles.c.traits.type),
                        trait_times=sa.bindparam("b_times", type_=profiles.c.trait_times.type),
                    ),
                    updates,
                )

    async def append_internal(self, conn: AsyncConnection, items: Sequence[InternalEvent]) -> None:
        """Log internal events on the caller's transaction, on their person's partition.

        On PostgreSQL this takes the log's append lock (as every appender does) so that `seq`
        values commit in order; it is held until the caller's transaction ends.
        """
        if not items:
            return
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOG_LOCK_KEY)))
        rows = []
        for item in items:
            key = item.user_id or item.anonymous_id or item.profile_id
            payload: dict[str, Any] = {
                "type": INTERNAL,
                "event": item.event,
                "messageId": item.message_id,
                "timestamp": format_instant(item.timestamp_ms),
                "properties": dict(item.properties),
            }
            if item.user_id:
                payload["userId"] = item.user_id
            if item.anonymous_id:
                payload["anonymousId"] = item.anonymous_id
            if item.context:
                payload["context"] = {"legato": dict(item.context)}
            rows.append(
                {
                    "workspace_id": item.workspace_id,
                    "message_id": item.message_id,
                    "partition": partition_for(key, self.partitions),
                    "type": INTERNAL,
                    "event": item.event,
                    "user_id": item.user_id,
                    "anonymous_id": item.anonymous_id,
                    "profile_id": item.profile_id,
                    "timestamp_ms": item.timestamp_ms,
                    "received_ms": item.timestamp_ms,
                    "payload": payload,
                }
            )
        await conn.execute(_insert(conn, events).on_conflict_do_nothing(), rows)


def apply_trait_change(draft: ProfileDraft, change: TraitChange) -> None:
    """Apply one set/unset/increment to a profile draft, newest-wins like identify calls."""
    kept_at = draft.trait_times.get(change.trait)
    if kept_at is not None and kept_at > change.at_ms:
        return
    if change.op == "unset":
        draft.traits.pop(change.trait, None)
    elif change.op == "increment":
        current = draft.traits.get(change.trait)
        numeric = isinstance(current, int | float) and not isinstance(current, bool)
        draft.traits[change.trait] = (current if numeric else 0) + change.value
    else:
        draft.traits[change.trait] = change.value
    draft.trait_times[change.trait] = change.at_ms
