"""The state of profiles the pipeline keeps: traits, activity and group memberships, in SQL.

Rows are read (`drafts`, locked on PostgreSQL) and written back (`save`) on the pipeline's
connection, inside the transaction that also advances the log offset, so a chunk changes them
exactly once. Decides nothing: how traits combine is `domain.profiles`; which profile an event
belongs to is the identity stage's business (`store.identities`).

The pipeline's statements (here and in `store.identities`) go to the database driver itself, on
the connection's transaction (`store.database.driver_rows` / `driver_write`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import IdentityConfig
from legato.domain.profiles import ProfileDraft, combine_group_traits
from legato.errors import NotFound
from legato.store.database import Database, Sql, driver_rows, driver_write, json_text, json_value


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


# Bulk writes: the driver's executemany on SQLite (one C loop), one statement over a JSON
# array on PostgreSQL (psycopg's executemany is a statement per row). There, `id = ANY(ARRAY(
# ...))` makes the ids an index condition: joined to the array's rows alone, or by `IN (...)`,
# the planner hashed the whole profiles table (seen with EXPLAIN ANALYZE).
_CREATE = Sql(
    "INSERT INTO profiles (id, workspace_id, traits, trait_times, first_seen_ms, last_seen_ms,"
    " event_count, created_ms, updated_ms) VALUES (?, ?, '{}', '{}', ?, ?, 0, ?, ?)",
    "INSERT INTO profiles (id, workspace_id, traits, trait_times, first_seen_ms, last_seen_ms,"
    " event_count, created_ms, updated_ms) SELECT j.r->>0, %s, '{}', '{}', (j.r->>1)::bigint,"
    " (j.r->>1)::bigint, 0, %s, %s FROM jsonb_array_elements(%s::jsonb) AS j(r)",
)
_DRAFTS = Sql(
    "SELECT id, traits, trait_times, first_seen_ms, last_seen_ms, event_count FROM profiles"
    " WHERE workspace_id = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
    "SELECT id, traits::text, trait_times::text, first_seen_ms, last_seen_ms, event_count"
    " FROM profiles WHERE workspace_id = %s"
    " AND id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) ORDER BY id",
)
_LOCK_DRAFTS = Sql(_DRAFTS.sqlite, _DRAFTS.postgresql + " FOR UPDATE")
_SAVE = Sql(
    "UPDATE profiles SET traits = ?, trait_times = ?, first_seen_ms = ?,"
    " last_seen_ms = ?, event_count = ?, updated_ms = ? WHERE id = ?",
    "WITH u AS (SELECT r->>0 AS id, r->1 AS traits, r->2 AS times, (r->>3)::bigint AS first,"
    " (r->>4)::bigint AS last, (r->>5)::bigint AS n FROM jsonb_array_elements(%s::jsonb) AS r)"
    " UPDATE profiles SET traits = u.traits, trait_times = u.times, first_seen_ms = u.first,"
    " last_seen_ms = u.last, event_count = u.n, updated_ms = %s FROM u"
    " WHERE profiles.id = u.id AND profiles.id = ANY(ARRAY(SELECT id FROM u))",
)
_ADD_ACTIVITY = Sql(
    "UPDATE profiles SET event_count = event_count + ?,"
    " first_seen_ms = min(first_seen_ms, ?), last_seen_ms = max(last_seen_ms, ?),"
    " updated_ms = ? WHERE id = ?",
    "WITH u AS (SELECT r->>0 AS id, (r->>1)::bigint AS n, (r->>2)::bigint AS first,"
    " (r->>3)::bigint AS last FROM jsonb_array_elements(%s::jsonb) AS r)"
    " UPDATE profiles SET event_count = profiles.event_count + u.n,"
    " first_seen_ms = LEAST(profiles.first_seen_ms, u.first),"
    " last_seen_ms = GREATEST(profiles.last_seen_ms, u.last), updated_ms = %s FROM u"
    " WHERE profiles.id = u.id AND profiles.id = ANY(ARRAY(SELECT id FROM u))",
)
# Groups (a few `group` calls per chunk): row by row on both databases.
_LOCK_GROUPS = Sql(
    "SELECT group_id, traits, updated_ms FROM groups WHERE workspace_id = ?"
    " AND group_id IN (SELECT value FROM json_each(?)) ORDER BY group_id",
    "SELECT group_id, traits::text, updated_ms FROM groups WHERE workspace_id = %s"
    " AND group_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " ORDER BY group_id FOR UPDATE",
)
_NEW_GROUP = Sql.same(
    "INSERT INTO groups (workspace_id, group_id, traits, updated_ms) VALUES (?, ?, ?, ?)"
)
_CHANGE_GROUP = Sql.same(
    "UPDATE groups SET traits = ?, updated_ms = ? WHERE workspace_id = ? AND group_id = ?"
)
JOIN_GROUP = Sql.same(
    "INSERT INTO profile_groups (workspace_id, profile_id, group_id, joined_ms)"
    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


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
        if not born:
            return
        if conn.dialect.name == "postgresql":
            await driver_write(conn, _CREATE, (workspace_id, now_ms, now_ms, json_text(born)))
            return
        rows = [(p, workspace_id, at, at, now_ms, now_ms) for p, at in born]
        await driver_write(conn, _CREATE, rows, many=True)

    async def drafts(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        *,
        lock: bool = False,
    ) -> dict[str, ProfileDraft]:
        """The current state of these profiles, to change and `save` in the same transaction."""
        wanted = sorted(set(profile_ids))
        if not wanted:
            return {}
        statement = _LOCK_DRAFTS if lock else _DRAFTS
        rows = await driver_rows(conn, statement, (workspace_id, json_text(wanted)))
        return {
            profile_id: ProfileDraft(
                traits=json_value(traits),
                trait_times=json_value(times),
                first_seen_ms=first,
                last_seen_ms=last,
                event_count=count,
            )
            for profile_id, traits, times, first, last, count in rows
        }

    async def save(
        self, conn: AsyncConnection, drafts: Mapping[str, ProfileDraft], now_ms: int
    ) -> None:
        """Write changed profile states back."""
        if not drafts:
            return
        ordered = sorted(drafts.items())
        if conn.dialect.name == "postgresql":
            rows = [
                (
                    p,
                    d.traits,
                    d.trait_times,
                    _or(d.first_seen_ms, now_ms),
                    _or(d.last_seen_ms, now_ms),
                    d.event_count,
                )
                for p, d in ordered
            ]
            await driver_write(conn, _SAVE, (json_text(rows), now_ms))
            return
        values = [
            (
                json_text(d.traits),
                json_text(d.trait_times),
                _or(d.first_seen_ms, now_ms),
                _or(d.last_seen_ms, now_ms),
                d.event_count,
                now_ms,
                p,
            )
            for p, d in ordered
        ]
        await driver_write(conn, _SAVE, values, many=True)

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
            rows = json_text([(p, a.count, a.first_ms, a.last_ms) for p, a in ordered])
            changed = await driver_write(conn, _ADD_ACTIVITY, (rows, now_ms))
        else:
            changed = await driver_write(
                conn,
                _ADD_ACTIVITY,
                [(a.count, a.first_ms, a.last_ms, now_ms, p) for p, a in ordered],
                many=True,
            )
        if changed != len(ordered):
            raise NotFound(
                f"{len(ordered) - changed} of {len(ordered)} profiles to count events on are gone"
            )

    async def join_groups(
        self, conn: AsyncConnection, workspace_id: str, calls: Sequence[GroupCall], now_ms: int
    ) -> None:
        """Apply `group` messages: the group's traits (newest call wins) and the memberships."""
        if not calls:
            return
        group_ids = sorted({call.group_id for call in calls})
        rows = await driver_rows(conn, _LOCK_GROUPS, (workspace_id, json_text(group_ids)))
        kept: dict[str, tuple[dict[str, Any], int]] = {
            group_id: (json_value(traits), at) for group_id, traits, at in rows
        }
        existing = set(kept)
        joined: dict[tuple[str, str], int] = {}
        for call in calls:
            traits, at = kept.get(call.group_id, ({}, call.at_ms))
            kept[call.group_id] = combine_group_traits(traits, at, call.traits, call.at_ms)
            key = (call.profile_id, call.group_id)
            joined[key] = min(joined.get(key, call.at_ms), call.at_ms)
        new_rows = [
            (workspace_id, g, json_text(t), at)
            for g, (t, at) in sorted(kept.items())
            if g not in existing
        ]
        if new_rows:
            await driver_write(conn, _NEW_GROUP, new_rows, many=True)
        changed_rows = [
            (json_text(t), at, workspace_id, g)
            for g, (t, at) in sorted(kept.items())
            if g in existing
        ]
        if changed_rows:
            await driver_write(conn, _CHANGE_GROUP, changed_rows, many=True)
        memberships = [(workspace_id, p, g, at) for (p, g), at in sorted(joined.items())]
        await driver_write(conn, JOIN_GROUP, memberships, many=True)
