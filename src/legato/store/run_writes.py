"""The unit of work of the journey runtime: `JourneyChanges` (everything a batch of
transitions produced) and the SQL that applies it on the caller's transaction — run states,
timers, outbox rows, listeners, profile trait changes, internal events and rollups together, on
SQLite and PostgreSQL. Decides nothing about journeys: the runtime does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.messages import format_instant, partition_for
from legato.domain.pipeline import INTERNAL
from legato.domain.profiles import ProfileDraft
from legato.store.database import insert_for, slices
from legato.store.events import LOG_LOCK_KEY
from legato.store.journeys import journey_rollups, outbox, run_listeners, runs, timers
from legato.store.tables import events, profiles


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


async def write_changes(conn: AsyncConnection, changes: JourneyChanges, partitions: int) -> None:
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
        for part in slices(sorted(changes.cancelled_timers)):
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
        statement = insert_for(conn, run_listeners)
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
        await _change_traits(conn, changes.trait_changes)
    if changes.internal_events:
        await append_internal(conn, changes.internal_events, partitions)
    counts = sorted((key, n) for key, n in changes.rollups.items() if n)
    if counts:
        statement = insert_for(conn, journey_rollups)
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
    conn: AsyncConnection, changes: Mapping[tuple[str, str], Sequence[TraitChange]]
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
            updates.append({"b_id": row.id, "b_traits": draft.traits, "b_times": draft.trait_times})
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


async def append_internal(
    conn: AsyncConnection, items: Sequence[InternalEvent], partitions: int
) -> None:
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
                "partition": partition_for(key, partitions),
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
    await conn.execute(insert_for(conn, events).on_conflict_do_nothing(), rows)


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
