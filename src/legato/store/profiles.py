"""Profiles, the identity graph, merges and groups, in SQL (SQLite and PostgreSQL).

Writes run on the pipeline's connection, inside the transaction that also advances the log
offset; reads for the admin API open their own connection. Lookups follow `merged_into` to the
live profile. Correct under concurrent pipeline workers on PostgreSQL: identifiers are claimed
through the identities primary key (`ON CONFLICT DO NOTHING`, a lost race raises `Conflict` so
the chunk is retried), and profile rows are locked in id order (`FOR UPDATE`) before they are
changed or merged. This module decides nothing about identity; `domain.identity` does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import USER_ID, Identifier, IdentityConfig, normalise
from legato.domain.profiles import (
    EventPage,
    GroupView,
    IdentityView,
    Profile,
    ProfileDraft,
    ProfileEvent,
    ProfilePage,
    combine_group_traits,
)
from legato.errors import Conflict, InvalidInput, NotFound
from legato.ids import new_id
from legato.store.database import Database
from legato.store.tables import (
    events,
    groups,
    identities,
    profile_groups,
    profile_merges,
    profiles,
)

#: Rows per statement when a list is spread over IN (...) or multi-row VALUES.
SLICE = 500
#: Merge chains are compressed on every merge; a longer one means a corrupt graph.
MAX_MERGE_HOPS = 32
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """One merge to apply: `loser` into `survivor`, why, and the message that caused it."""

    loser: str
    survivor: str
    reason: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class GroupCall:
    """A `group` message: the profile joins `group_id`, whose traits it reports at `at_ms`."""

    profile_id: str
    group_id: str
    traits: Mapping[str, Any]
    at_ms: int


_PG_OWNERS = sa.text(
    "SELECT i.kind, i.value, i.profile_id FROM identities AS i"
    " JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS u(kind, value)"
    " ON i.kind = u.kind AND i.value = u.value"
    " WHERE i.workspace_id = :ws"
)
# Bulk writes on PostgreSQL: arrays unnested into one UPDATE (executemany is a round trip a row).
_PG_SET_EVENT_PROFILES = sa.text(
    "UPDATE events SET profile_id = u.pid"
    " FROM unnest(CAST(:seqs AS bigint[]), CAST(:pids AS text[])) AS u(seq, pid)"
    " WHERE events.seq = u.seq"
)
# Built from constants only (no caller input), hence the S608 waivers.
_SQLITE_SET_EVENT_PROFILES = f"UPDATE {events.name} SET profile_id = ? WHERE seq = ?"  # noqa: S608
_SQLITE_SAVE_PROFILES = (
    f"UPDATE {profiles.name} SET traits = ?, trait_times = ?, first_seen_ms = ?,"  # noqa: S608
    " last_seen_ms = ?, event_count = ?, updated_ms = ? WHERE id = ?"
)
_PG_SAVE_PROFILES = sa.text(
    "UPDATE profiles SET traits = u.traits::jsonb, trait_times = u.times::jsonb,"
    " first_seen_ms = u.first, last_seen_ms = u.last, event_count = u.count,"
    " updated_ms = :now"
    " FROM unnest(CAST(:ids AS text[]), CAST(:traits AS text[]), CAST(:times AS text[]),"
    " CAST(:firsts AS bigint[]), CAST(:lasts AS bigint[]), CAST(:counts AS bigint[]))"
    " AS u(id, traits, times, first, last, count)"
    " WHERE profiles.id = u.id"
)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _slices(items: Sequence[Any], size: int = SLICE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT of the connection's dialect, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _draft(row: Any) -> ProfileDraft:
    return ProfileDraft(
        traits=dict(row.traits),
        trait_times=dict(row.trait_times),
        first_seen_ms=row.first_seen_ms,
        last_seen_ms=row.last_seen_ms,
        event_count=row.event_count,
    )


class ProfileStore:
    """Profiles and the identity graph of every workspace."""

    def __init__(self, db: Database, config: IdentityConfig | None = None):
        self.db = db
        self.config = config or IdentityConfig()

    @property
    def serialised(self) -> bool:
        """True when the database runs one writing transaction at a time (SQLite): what a
        transaction read cannot change before it commits, so no row locks are needed."""
        return self.db.is_sqlite

    # -- the pipeline's writes (on the caller's transaction) -------------------------------

    async def owners(
        self, conn: AsyncConnection, workspace_id: str, wanted: Sequence[Identifier]
    ) -> dict[Identifier, str]:
        """The profile each known identifier points at (identities always point at live ones)."""
        found: dict[Identifier, str] = {}
        if conn.dialect.name == "postgresql":
            # One statement for every kind: the pairs are unnested and joined on the key.
            for part in _slices(sorted(set(wanted)), 2000):
                rows = await conn.execute(
                    _PG_OWNERS,
                    {
                        "ws": workspace_id,
                        "kinds": [i.kind for i in part],
                        "vals": [i.value for i in part],
                    },
                )
                for kind, value, profile_id in rows:
                    found[Identifier(kind, value)] = profile_id
            return found
        by_kind: dict[str, list[str]] = {}
        for identifier in wanted:
            by_kind.setdefault(identifier.kind, []).append(identifier.value)
        # One IN list per kind: (kind, value) row-value lists would scan the workspace on SQLite.
        for kind, values in sorted(by_kind.items()):
            for values_part in _slices(sorted(set(values))):
                rows = await conn.execute(
                    sa.select(identities.c.value, identities.c.profile_id).where(
                        identities.c.workspace_id == workspace_id,
                        identities.c.kind == kind,
                        identities.c.value.in_(values_part),
                    )
                )
                for value, profile_id in rows:
                    found[Identifier(kind, value)] = profile_id
        return found

    async def lock(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str | None]:
        """Lock profile rows in id order (PostgreSQL); returns each one's `merged_into`."""
        ordered = sorted(set(profile_ids))
        found: dict[str, str | None] = {}
        for part in _slices(ordered):
            rows = await conn.execute(
                sa.select(profiles.c.id, profiles.c.merged_into)
                .where(profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part))
                .order_by(profiles.c.id)
                .with_for_update()
            )
            found.update({row.id: row.merged_into for row in rows})
        return found

    async def user_ids(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        """The user id held by each of these profiles (a profile holds at most one)."""
        found: dict[str, str] = {}
        for part in _slices(sorted(set(profile_ids))):
            # By profile id only (ids are unique across workspaces): with workspace and kind in
            # the filter SQLite walks every user id of the workspace by the primary key instead.
            rows = await conn.execute(
                sa.select(identities.c.profile_id, identities.c.kind, identities.c.value).where(
                    identities.c.profile_id.in_(part)
                )
            )
            for profile_id, kind, value in rows:
                if kind == USER_ID:
                    found[profile_id] = value
        return found

    async def live(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        """Each profile id mapped to the live profile it was merged into (itself if live)."""
        result = {p: p for p in profile_ids}
        pending = set(result.values())
        for _ in range(MAX_MERGE_HOPS):
            if not pending:
                return result
            merged = await self._merged_into(conn, workspace_id, pending)
            for original, current in result.items():
                if current in merged:
                    result[original] = merged[current]
            pending = set(merged.values())
        raise Conflict(f"merge chain longer than {MAX_MERGE_HOPS} hops", profiles=sorted(pending))

    async def _merged_into(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        merged: dict[str, str] = {}
        for part in _slices(sorted(profile_ids)):
            rows = await conn.execute(
                sa.select(profiles.c.id, profiles.c.merged_into).where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.id.in_(part),
                    profiles.c.merged_into.is_not(None),
                )
            )
            merged.update({row.id: row.merged_into for row in rows})
        return merged

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
        for part in _slices(rows, 200):
            await conn.execute(profiles.insert(), list(part))

    async def claim(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        claims: Mapping[Identifier, str],
        now_ms: int,
    ) -> None:
        """Point unclaimed identifiers at profiles; Conflict if another worker got one first."""
        rows = [
            {
                "workspace_id": workspace_id,
                "kind": identifier.kind,
                "value": identifier.value,
                "profile_id": profile_id,
                "created_ms": now_ms,
            }
            for identifier, profile_id in sorted(claims.items())
        ]
        if not rows:
            return
        # executemany + RETURNING (SQLAlchemy's "insertmanyvalues"): one cached statement,
        # batched; rows that hit an existing identifier are not returned.
        statement = (
            _insert(conn, identities)
            .on_conflict_do_nothing()
            .returning(identities.c.kind, identities.c.value)
        )
        inserted = (await conn.execute(statement, rows)).all()
        if len(inserted) != len(rows):
            got = {(kind, value) for kind, value in inserted}
            lost = [f"{r['kind']}={r['value']}" for r in rows if (r["kind"], r["value"]) not in got]
            raise Conflict("identifiers were claimed by a concurrent worker", lost=lost)

    async def merge_all(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        merges: Sequence[MergeRecord],
        now_ms: int,
    ) -> list[frozenset[str]]:
        """Apply merges decided for a chunk, in order (profiles locked); changed traits of each.

        Traits combine newest-wins and counts add up (`ProfileDraft.absorb`); identities,
        events and group memberships move to the final survivor, earlier merges into a loser
        now point at it too, and a `profile_merges` record keeps each step. A fixed number of
        statements whatever the number of merges.
        """
        if not merges:
            return []
        involved = {m.loser for m in merges} | {m.survivor for m in merges}
        drafts = await self.drafts(conn, workspace_id, involved)
        missing = involved - set(drafts)
        if missing:
            raise NotFound(f"cannot merge: profiles {sorted(missing)} are missing")
        final: dict[str, str] = {}
        changed: list[frozenset[str]] = []
        for m in merges:
            changed.append(drafts[m.survivor].absorb(drafts[m.loser]))
            final[m.loser] = m.survivor
        for loser in final:
            while final[loser] in final:
                final[loser] = final[final[loser]]
        survivors = {p for p in final.values()}
        await self.save(conn, {p: drafts[p] for p in survivors}, now_ms)
        moves = [{"b_loser": loser, "b_final": into} for loser, into in sorted(final.items())]
        # Profiles merged earlier into a loser point at the final survivor too (chains stay one
        # hop long). Found through profile_merges, which is indexed where profiles is not.
        pointing = {loser: into for loser, into in final.items()}
        for root, earlier in (await self._ancestors(conn, workspace_id, list(final))).items():
            for profile_id in earlier:
                pointing.setdefault(profile_id, final[root])
        await conn.execute(
            profiles.update()
            .where(profiles.c.id == sa.bindparam("b_id"))
            .values(merged_into=sa.bindparam("b_final"), updated_ms=now_ms),
            [{"b_id": p, "b_final": into} for p, into in sorted(pointing.items())],
        )
        await conn.execute(
            identities.update()
            .where(identities.c.profile_id == sa.bindparam("b_loser"))
            .values(profile_id=sa.bindparam("b_final")),
            moves,
        )
        await conn.execute(
            events.update()
            .where(events.c.profile_id == sa.bindparam("b_loser"))
            .values(profile_id=sa.bindparam("b_final")),
            moves,
        )
        memberships = (
            await conn.execute(
                sa.select(
                    profile_groups.c.profile_id,
                    profile_groups.c.group_id,
                    profile_groups.c.joined_ms,
                ).where(
                    profile_groups.c.workspace_id == workspace_id,
                    profile_groups.c.profile_id.in_(sorted(final)),
                )
            )
        ).all()
        if memberships:
            await conn.execute(
                _insert(conn, profile_groups)
                .values(
                    [
                        {
                            "workspace_id": workspace_id,
                            "profile_id": final[profile_id],
                            "group_id": group_id,
                            "joined_ms": joined_ms,
                        }
                        for profile_id, group_id, joined_ms in memberships
                    ]
                )
                .on_conflict_do_nothing()
            )
            await conn.execute(
                profile_groups.delete().where(
                    profile_groups.c.workspace_id == workspace_id,
                    profile_groups.c.profile_id.in_(sorted(final)),
                )
            )
        await conn.execute(
            profile_merges.insert(),
            [
                {
                    "id": new_id(),
                    "workspace_id": workspace_id,
                    "from_profile_id": m.loser,
                    "into_profile_id": m.survivor,
                    "reason": m.reason[:64],
                    "message_id": m.message_id,
                    "merged_ms": now_ms,
                }
                for m in merges
            ],
        )
        return changed

    async def _ancestors(
        self, conn: AsyncConnection, workspace_id: str, roots: Sequence[str]
    ) -> dict[str, list[str]]:
        """Every profile merged, directly or through others, into each of `roots`."""
        found: dict[str, list[str]] = {root: [] for root in roots}
        for part in _slices(sorted(set(roots))):
            walk = (
                sa.select(
                    profile_merges.c.into_profile_id.label("root"),
                    profile_merges.c.from_profile_id.label("id"),
                )
                .where(
                    profile_merges.c.workspace_id == workspace_id,
                    profile_merges.c.into_profile_id.in_(part),
                )
                .cte("ancestors", recursive=True)
            )
            walk = walk.union(
                sa.select(walk.c.root, profile_merges.c.from_profile_id).where(
                    profile_merges.c.into_profile_id == walk.c.id
                )
            )
            for root, profile_id in await conn.execute(
                sa.select(walk.c.root, walk.c.id).order_by(walk.c.root, walk.c.id)
            ):
                found[root].append(profile_id)
        return found

    async def set_event_profiles(
        self, conn: AsyncConnection, assignments: Sequence[tuple[int, str]]
    ) -> None:
        """Set `events.profile_id` for (seq, profile id) pairs."""
        if not assignments:
            return
        if conn.dialect.name == "postgresql":
            # One statement over two arrays: executemany would be one round trip per row.
            await conn.execute(
                _PG_SET_EVENT_PROFILES,
                {"seqs": [seq for seq, _ in assignments], "pids": [p for _, p in assignments]},
            )
            return
        # SQLite: straight to the driver's executemany (SQLAlchemy's per-row parameter
        # processing would cost more than the updates themselves).
        await conn.exec_driver_sql(
            _SQLITE_SET_EVENT_PROFILES, [(profile_id, seq) for seq, profile_id in assignments]
        )

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
        for part in _slices(sorted(set(profile_ids))):
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

    async def join_groups(
        self, conn: AsyncConnection, workspace_id: str, calls: Sequence[GroupCall], now_ms: int
    ) -> None:
        """Apply `group` messages: the group's traits (newest call wins) and the memberships."""
        if not calls:
            return
        group_ids = sorted({call.group_id for call in calls})
        kept: dict[str, tuple[dict[str, Any], int]] = {}
        for part in _slices(group_ids):
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
            _insert(conn, profile_groups)
            .values(
                [
                    {"workspace_id": workspace_id, "profile_id": p, "group_id": g, "joined_ms": at}
                    for (p, g), at in sorted(joined.items())
                ]
            )
            .on_conflict_do_nothing()
        )

    # -- reads for the admin API and the CLI --------------------------------------------------

    async def get(self, workspace_id: str, profile_id: str) -> Profile:
        """A profile by id; the id of a merged-away profile gives the one it was merged into."""
        async with self.db.connect() as conn:
            live = (await self.live(conn, workspace_id, [profile_id]))[profile_id]
            found = await self._hydrate(conn, workspace_id, [live])
        if not found:
            raise NotFound(f"no profile {profile_id!r} in this workspace", field="id")
        return found[0]

    async def lookup(self, workspace_id: str, kind: str, value: str) -> Profile:
        """The profile an identifier (user_id, anonymous_id, email, phone, crm_id...) points at."""
        if not kind or len(kind) > 64:
            raise InvalidInput("an identifier kind has 1 to 64 characters", field="kind")
        normal = normalise(kind, value, self.config)
        if normal is None:
            raise InvalidInput(f"{value!r} is not a valid {kind}", field=kind)
        async with self.db.connect() as conn:
            profile_id = await conn.scalar(
                sa.select(identities.c.profile_id).where(
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == kind,
                    identities.c.value == normal,
                )
            )
        if profile_id is None:
            raise NotFound(f"no profile with {kind} {normal!r}", field=kind)
        return await self.get(workspace_id, profile_id)

    async def events(
        self, workspace_id: str, profile_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> EventPage:
        """A profile's events, newest first, a page at a time."""
        limit = _check_limit(limit)
        profile = await self.get(workspace_id, profile_id)
        query = (
            sa.select(
                events.c.seq,
                events.c.message_id,
                events.c.type,
                events.c.event,
                events.c.user_id,
                events.c.anonymous_id,
                events.c.timestamp_ms,
                events.c.received_ms,
                events.c.payload,
            )
            .where(events.c.profile_id == profile.id)
            .order_by(events.c.timestamp_ms.desc(), events.c.seq.desc())
            .limit(limit + 1)
        )
        if cursor:
            at_ms, seq = _decode_event_cursor(cursor)
            query = query.where(
                sa.or_(
                    events.c.timestamp_ms < at_ms,
                    sa.and_(events.c.timestamp_ms == at_ms, events.c.seq < seq),
                )
            )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        page = [ProfileEvent(**row._mapping) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = _encode_cursor(f"e:{last.timestamp_ms}:{last.seq}")
        return EventPage(events=page, next_cursor=next_cursor)

    async def find(
        self,
        workspace_id: str,
        *,
        traits: Mapping[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ProfilePage:
        """Live profiles, oldest first, optionally those whose traits equal the given texts.

        A trait matches when its value written as text equals the filter (`42`, `true`, `ann`).
        """
        limit = _check_limit(limit)
        query = (
            sa.select(profiles.c.id)
            .where(profiles.c.workspace_id == workspace_id, profiles.c.merged_into.is_(None))
            .order_by(profiles.c.id)
            .limit(limit + 1)
        )
        if cursor:
            query = query.where(profiles.c.id > _decode_cursor(cursor, "p:"))
        for key, value in sorted((traits or {}).items()):
            query = query.where(self._trait_text(key) == value)
        async with self.db.connect() as conn:
            ids = list((await conn.execute(query)).scalars())
            found = await self._hydrate(conn, workspace_id, ids[:limit])
        next_cursor = _encode_cursor(f"p:{found[-1].id}") if len(ids) > limit else None
        return ProfilePage(profiles=found, next_cursor=next_cursor)

    def _trait_text(self, key: str) -> sa.ColumnElement[Any]:
        if not key or len(key) > 200 or '"' in key or "\\" in key:
            raise InvalidInput(f"not a trait key: {key!r}", field=f"trait.{key}")
        if self.db.dialect == "postgresql":
            return profiles.c.traits.op("->>", return_type=sa.Text)(sa.literal(key, sa.String))
        # SQLite's json_extract answers 1/0 for booleans: spell them as JSON does.
        path = sa.literal(f'$."{key}"', sa.String)
        return sa.case(
            (sa.func.json_type(profiles.c.traits, path) == "true", "true"),
            (sa.func.json_type(profiles.c.traits, path) == "false", "false"),
            else_=sa.cast(sa.func.json_extract(profiles.c.traits, path), sa.Text),
        )

    async def _hydrate(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Sequence[str]
    ) -> list[Profile]:
        if not profile_ids:
            return []
        rows = {
            row.id: row
            for row in await conn.execute(
                sa.select(profiles).where(
                    profiles.c.workspace_id == workspace_id, profiles.c.id.in_(profile_ids)
                )
            )
        }
        ids_of: dict[str, list[IdentityView]] = {p: [] for p in profile_ids}
        for ident in await conn.execute(
            sa.select(
                identities.c.profile_id,
                identities.c.kind,
                identities.c.value,
                identities.c.created_ms,
            )
            .where(identities.c.profile_id.in_(profile_ids))
            .order_by(identities.c.kind, identities.c.value)
        ):
            ids_of[ident.profile_id].append(
                IdentityView(kind=ident.kind, value=ident.value, created_ms=ident.created_ms)
            )
        groups_of: dict[str, list[GroupView]] = {p: [] for p in profile_ids}
        for member in await conn.execute(
            sa.select(
                profile_groups.c.profile_id,
                profile_groups.c.group_id,
                profile_groups.c.joined_ms,
                groups.c.traits,
            )
            .select_from(
                profile_groups.join(
                    groups,
                    sa.and_(
                        groups.c.workspace_id == profile_groups.c.workspace_id,
                        groups.c.group_id == profile_groups.c.group_id,
                    ),
                )
            )
            .where(
                profile_groups.c.workspace_id == workspace_id,
                profile_groups.c.profile_id.in_(profile_ids),
            )
            .order_by(profile_groups.c.group_id)
        ):
            groups_of[member.profile_id].append(
                GroupView(
                    group_id=member.group_id, traits=member.traits, joined_ms=member.joined_ms
                )
            )
        merged_from = await self._ancestors(conn, workspace_id, profile_ids)
        return [
            Profile(
                id=p,
                identities=ids_of[p],
                traits=rows[p].traits,
                groups=groups_of[p],
                first_seen_ms=rows[p].first_seen_ms,
                last_seen_ms=rows[p].last_seen_ms,
                event_count=rows[p].event_count,
                merged_from=merged_from[p],
                created_ms=rows[p].created_ms,
                updated_ms=rows[p].updated_ms,
            )
            for p in profile_ids
            if p in rows
        ]


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def _encode_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, prefix: str) -> str:
    """The text inside a cursor this module made with `prefix`, or InvalidInput."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith(prefix) or len(text) > 100:
        raise InvalidInput("not a cursor from a previous page", field="cursor")
    return text[len(prefix) :]


def _decode_event_cursor(cursor: str) -> tuple[int, int]:
    at, _, seq = _decode_cursor(cursor, "e:").partition(":")
    try:
        return int(at), int(seq)
    except ValueError as exc:
        raise InvalidInput("not a cursor from a previous page", field="cursor") from exc
