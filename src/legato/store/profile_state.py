"""The state of profiles the pipeline keeps: traits, activity and group memberships, in SQL.

Rows are read (`drafts`, locked on PostgreSQL) and written back (`save`) on the pipeline's
connection, inside the transaction that also advances the log offset, so a chunk changes them
exactly once. Decides nothing: how traits combine is `domain.profiles`; which profile an event
belongs to is the identity stage's business (`store.identities`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import IdentityConfig
from legato.domain.profiles import ProfileDraft, combine_group_traits
from legato.errors import NotFound
from legato.store.database import Database, insert_for, slices
from legato.store.tables import groups, profile_groups, profiles


@dataclass(frozen=True, slots=True)
class GroupCall:
    """A `group` message: the profile joins `group_id`, whose traits it reports at `at_ms`."""

    profile_id: str
    group_id: str
    traits: Mapping[str, Any]
    at_ms: int


@dataclass(slots=True)
class Activity:
    """Events counted on a profile by one chunk, and the span of their timestamps."""

    count: int
    first_ms: int
    last_ms: int

    def observe(self, at_ms: int) -> None:
        """Count one more event that happened at `at_ms`."""
        self.count += 1
        if at_ms < self.first_ms:
            self.first_ms = at_ms
        if at_ms > self.last_ms:
            self.last_ms = at_ms


# Built from constants only (no caller input), hence the S608 waivers.
_SQLITE_SAVE_PROFILES = (
    f"UPDATE {profiles.name} SET traits = ?, trait_times = ?, first_seen_ms = ?,"  # noqa: S608
    " last_seen_ms = ?, event_count = ?, updated_ms = ? WHERE id = ?"
)
# On PostgreSQL, `= ANY(ids)` lets the planner reach the rows by the primary key instead of
# hashing the whole profiles table to join the unnested arrays (seen with EXPLAIN ANALYZE).
_SQLITE_ADD_ACTIVITY = (
    f"UPDATE {profiles.name} SET event_count = event_count + ?,"  # noqa: S608
    " first_seen_ms = min(first_seen_ms, ?), last_seen_ms = max(last_seen_ms, ?),"
    " updated_ms = ? WHERE id = ?"
)
_PG_ADD_ACTIVITY = sa.text(
    "UPDATE profiles SET event_count = profiles.event_count + u.n,"
    " first_seen_ms = LEAST(profiles.first_seen_ms, u.first),"
    " last_seen_ms = GREATEST(profiles.last_seen_ms, u.last), updated_ms = :now"
    " FROM unnest(CAST(:ids AS text[]), CAST(:ns AS bigint[]), CAST(:firsts AS bigint[]),"
    " CAST(:lasts AS bigint[])) AS u(id, n, first, last)"
    " WHERE profiles.id = u.id AND profiles.id = ANY(CAST(:ids AS text[]))"
)
_PG_SAVE_PROFILES = sa.text(
    "UPDATE profiles SET traits = u.traits::jsonb, trait_times = u.times::jsonb,"
    " first_seen_ms = u.first, last_seen_ms = u.last, event_count = u.count,"
    " updated_ms = :now"
    " FROM unnest(CAST(:ids AS text[]), CAST(:traits AS text[]), CAST(:times AS text[]),"
    " CAST(:firsts AS bigint[]), CAST(:lasts AS bigint[]), CAST(:counts AS bigint[]))"
    " AS u(id, traits, times, first, last, count)"
    " WHERE profiles.id = u.id AND profiles.id = ANY(CAST(:ids AS text[]))"
)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _draft(row: Any) -> ProfileDraft:
    return ProfileDraft(
        traits=dict(row.traits),
        trait_times=dict(row.trait_times),
        first_seen_ms=row.first_seen_ms,
        last_seen_ms=row.last_seen_ms,
        event_count=row.event_count,
    )


class ProfileStateStore:
    """Profile rows as the pipeline changes them: create, read as drafts, save, join groups."""

    def __init__(self, db: Database, config: IdentityConfig | None = None):
        self.db = db
        self.config = config or IdentityConfig()

    @property
    def serialised(self) -> bool:
        """True when the database runs one writing transaction at a time (SQLite): what a
        transaction read cannot change before it commits, so no row locks are needed."""
        return self.db.is_sqlite

    async def create(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        born: Sequence[tuple[str, int]],
        now_ms: int,
    ) -> None:
        """New, empty profiles: (id, timestamp of the event that made it)."""
        rows: list[dict[str, Any]] = [
            {
                "id": profile_id,
                "workspace_id": workspace_id,
                "traits": {},
                "trait_times": {},
                "first_seen_ms": at_ms,
                "last_seen_ms": at_ms,
                "event_count": 0,
                "created_ms": now_ms,
                "updated_ms": now_ms,
                "merged_into": None,
            }
            for profile_id, at_ms in born
        ]
        for part in slices(rows, 200):
            await conn.execute(profiles.insert(), list(part))

    async def drafts(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        *,
        lock: bool = False,
    ) -> dict[str, ProfileDraft]:
        """The current state of these profiles, to change and `save` in the same transaction."""
        found: dict[str, ProfileDraft] = {}
        for part in slices(sorted(set(profile_ids))):
            query = (
                sa.select(
                    profiles.c.id,
                    profiles.c.traits,
                    profiles.c.trait_times,
                    profiles.c.first_seen_ms,
                    profiles.c.last_seen_ms,
                    profiles.c.event_count,
                )
                .where(profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part))
                .order_by(profiles.c.id)
            )
            if lock:
                query = query.with_for_update()
            for row in await conn.execute(query):
                found[row.id] = _draft(row)
        return found

    async def save(
        self, conn: AsyncConnection, drafts: Mapping[str, ProfileDraft], now_ms: int
    ) -> None:
        """Write changed profile states back."""
        if not drafts:
            return
        ordered = sorted(drafts.items())
        if conn.dialect.name == "postgresql":
            await conn.execute(
                _PG_SAVE_PROFILES,
                {
                    "ids": [p for p, _ in ordered],
                    "traits": [orjson.dumps(d.traits).decode() for _, d in ordered],
                    "times": [orjson.dumps(d.trait_times).decode() for _, d in ordered],
                    "firsts": [_or(d.first_seen_ms, now_ms) for _, d in ordered],
                    "lasts": [_or(d.last_seen_ms, now_ms) for _, d in ordered],
                    "counts": [d.event_count for _, d in ordered],
                    "now": now_ms,
                },
            )
            return
        await conn.exec_driver_sql(
            _SQLITE_SAVE_PROFILES,
            [
                (
                    orjson.dumps(d.traits).decode(),
                    orjson.dumps(d.trait_times).decode(),
                    _or(d.first_seen_ms, now_ms),
                    _or(d.last_seen_ms, now_ms),
                    d.event_count,
                    now_ms,
                    profile_id,
                )
                for profile_id, d in ordered
            ],
        )

    async def add_activity(
        self, conn: AsyncConnection, activity: Mapping[str, Activity], now_ms: int
    ) -> None:
        """Add events to profiles whose traits they leave alone: counts and first/last seen
        change in place, without reading the rows (or their traits) first.

        Raises `NotFound` when a profile is missing (every one must be updated).
        """
        if not activity:
            return
        ordered = sorted(activity.items())
        if conn.dialect.name == "postgresql":
            result = await conn.execute(
                _PG_ADD_ACTIVITY,
                {
                    "ids": [p for p, _ in ordered],
                    "ns": [a.count for _, a in ordered],
                    "firsts": [a.first_ms for _, a in ordered],
                    "lasts": [a.last_ms for _, a in ordered],
                    "now": now_ms,
                },
            )
        else:
            result = await conn.exec_driver_sql(
                _SQLITE_ADD_ACTIVITY,
                [(a.count, a.first_ms, a.last_ms, now_ms, p) for p, a in ordered],
            )
        if result.rowcount != len(ordered):
            raise NotFound(
                f"{len(ordered) - result.rowcount} of {len(ordered)} profiles to count events "
                "on are gone"
            )

    async def join_groups(
        self, conn: AsyncConnection, workspace_id: str, calls: Sequence[GroupCall], now_ms: int
    ) -> None:
        """Apply `group` messages: the group's traits (newest call wins) and the memberships."""
        if not calls:
            return
        group_ids = sorted({call.group_id for call in calls})
        kept: dict[str, tuple[dict[str, Any], int]] = {}
        for part in slices(group_ids):
            rows = await conn.execute(
                sa.select(groups.c.group_id, groups.c.traits, groups.c.updated_ms)
                .where(groups.c.workspace_id == workspace_id, groups.c.group_id.in_(part))
                .order_by(groups.c.group_id)
                .with_for_update()
            )
            kept.update({row.group_id: (dict(row.traits), row.updated_ms) for row in rows})
        existing = set(kept)
        joined: dict[tuple[str, str], int] = {}
        for call in calls:
            traits, at = kept.get(call.group_id, ({}, call.at_ms))
            kept[call.group_id] = combine_group_traits(traits, at, call.traits, call.at_ms)
            key = (call.profile_id, call.group_id)
            joined[key] = min(joined.get(key, call.at_ms), call.at_ms)
        new_rows = [
            {"workspace_id": workspace_id, "group_id": g, "traits": t, "updated_ms": at}
            for g, (t, at) in sorted(kept.items())
            if g not in existing
        ]
        if new_rows:
            await conn.execute(groups.insert(), new_rows)
        changed_rows = [
            {"b_group": g, "b_traits": t, "b_at": at}
            for g, (t, at) in sorted(kept.items())
            if g in existing
        ]
        if changed_rows:
            await conn.execute(
                groups.update()
                .where(
                    groups.c.workspace_id == workspace_id,
                    groups.c.group_id == sa.bindparam("b_group"),
                )
                .values(
                    traits=sa.bindparam("b_traits", type_=groups.c.traits.type),
                    updated_ms=sa.bindparam("b_at"),
                ),
                changed_rows,
            )
        await conn.execute(
            insert_for(conn, profile_groups)
            .values(
                [
                    {"workspace_id": workspace_id, "profile_id": p, "group_id": g, "joined_ms": at}
                    for (p, g), at in sorted(joined.items())
                ]
            )
            .on_conflict_do_nothing()
        )
