"""The identity graph in SQL: identifiers, their owning profiles, and merges.

Writes run on the pipeline's connection, inside the transaction that also advances the log
offset. Lookups follow `merged_into` (the primary key) to the live profile; a merge keeps a
`profile_merges` record, and the profiles merged into a loser earlier are found by a recursive
walk over those records (indexed), so that every merged-away profile points straight at the
final survivor (chains stay one hop long). Correct under concurrent pipeline workers on
PostgreSQL: identifiers are claimed through the identities primary key (`ON CONFLICT DO
NOTHING`, a lost race raises `Conflict` so the chunk is retried), and profile rows are locked in
id order (`FOR UPDATE`) before they are changed or merged. This module decides nothing about
identity; `domain.identity` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import USER_ID, Identifier
from legato.errors import Conflict, NotFound
from legato.ids import new_id
from legato.store.database import insert_for, slices
from legato.store.profile_state import ProfileStateStore
from legato.store.tables import events, identities, profile_groups, profile_merges, profiles

#: Merge chains are compressed on every merge; a longer one means a corrupt graph.
MAX_MERGE_HOPS = 32


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """One merge to apply: `loser` into `survivor`, why, and the message that caused it."""

    loser: str
    survivor: str
    reason: str
    message_id: str | None


_PG_OWNERS = sa.text(
    "SELECT i.kind, i.value, i.profile_id FROM identities AS i"
    " JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS u(kind, value)"
    " ON i.kind = u.kind AND i.value = u.value"
    " WHERE i.workspace_id = :ws"
)
# Bulk writes on PostgreSQL: arrays unnested into one UPDATE (executemany is a round trip a row).
# The seq range bounds the join to the chunk's stretch of the primary key: without it the
# planner hashed the whole events table on every chunk (seen with EXPLAIN ANALYZE).
_PG_SET_EVENT_PROFILES = sa.text(
    "UPDATE events SET profile_id = u.pid"
    " FROM unnest(CAST(:seqs AS bigint[]), CAST(:pids AS text[])) AS u(seq, pid)"
    " WHERE events.seq = u.seq AND events.seq BETWEEN :low AND :high"
)
# Built from constants only (no caller input), hence the S608 waiver.
_SQLITE_SET_EVENT_PROFILES = f"UPDATE {events.name} SET profile_id = ? WHERE seq = ?"  # noqa: S608


class IdentityStore(ProfileStateStore):
    """Identifiers → profiles, and merges of profiles, for every workspace."""

    async def owners(
        self, conn: AsyncConnection, workspace_id: str, wanted: Sequence[Identifier]
    ) -> dict[Identifier, str]:
        """The profile each known identifier points at (identities always point at live ones)."""
        found: dict[Identifier, str] = {}
        if conn.dialect.name == "postgresql":
            # One statement for every kind: the pairs are unnested and joined on the key.
            for part in slices(sorted(set(wanted)), 2000):
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
            for values_part in slices(sorted(set(values))):
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
        for part in slices(ordered):
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
        for part in slices(sorted(set(profile_ids))):
            # By profile id and kind, without the workspace (ids are unique across workspaces):
            # with the workspace in the filter SQLite walks every user id of the workspace by
            # the primary key instead of using the profile_id index.
            rows = await conn.execute(
                sa.select(identities.c.profile_id, identities.c.value).where(
                    identities.c.profile_id.in_(part), identities.c.kind == USER_ID
                )
            )
            for profile_id, value in rows:
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
        for part in slices(sorted(profile_ids)):
            rows = await conn.execute(
                sa.select(profiles.c.id, profiles.c.merged_into).where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.id.in_(part),
                    profiles.c.merged_into.is_not(None),
                )
            )
            merged.update({row.id: row.merged_into for row in rows})
        return merged

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
            insert_for(conn, identities)
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
                insert_for(conn, profile_groups)
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
        for part in slices(sorted(set(roots))):
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
                {
                    "seqs": [seq for seq, _ in assignments],
                    "pids": [p for _, p in assignments],
                    "low": min(seq for seq, _ in assignments),
                    "high": max(seq for seq, _ in assignments),
                },
            )
            return
        # SQLite: straight to the driver's executemany (SQLAlchemy's per-row parameter
        # processing would cost more than the updates themselves).
        await conn.exec_driver_sql(
            _SQLITE_SET_EVENT_PROFILES, [(profile_id, seq) for seq, profile_id in assignments]
        )
