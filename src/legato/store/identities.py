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

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import Identifier
from legato.errors import Conflict, NotFound
from legato.ids import new_id
from legato.store.database import Sql, driver_rows, driver_write, json_text
from legato.store.profile_state import JOIN_GROUP, ProfileStateStore

#: Merge chains are compressed on every merge; a longer one means a corrupt graph.
MAX_MERGE_HOPS = 32


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """One merge to apply: `loser` into `survivor`, why, and the message that caused it."""

    loser: str
    survivor: str
    reason: str
    message_id: str | None


# Statements run by the driver (see `store.profile_state`), lists of values in one JSON
# parameter.
_OWNERS = Sql(
    "SELECT i.kind, i.value, i.profile_id FROM json_each(?) AS j CROSS JOIN identities AS i"
    " ON i.workspace_id = ? AND i.kind = json_extract(j.value, '$[0]')"
    " AND i.value = json_extract(j.value, '$[1]')",
    "SELECT i.kind, i.value, i.profile_id FROM jsonb_array_elements(%s::jsonb) AS j(r)"
    " JOIN identities AS i ON i.workspace_id = %s AND i.kind = j.r->>0 AND i.value = j.r->>1",
)
# By profile id and kind, without the workspace (ids are unique across workspaces): with the
# workspace in the filter SQLite walks every user id of the workspace by the primary key
# instead of using the profile_id index.
_USER_IDS = Sql(
    "SELECT profile_id, value FROM identities WHERE kind = 'user_id'"
    " AND profile_id IN (SELECT value FROM json_each(?))",
    "SELECT profile_id, value FROM identities WHERE kind = 'user_id'"
    " AND profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
)
_LOCK = Sql(
    "SELECT id, merged_into FROM profiles WHERE workspace_id = ?"
    " AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
    "SELECT id, merged_into FROM profiles WHERE workspace_id = %s"
    " AND id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " ORDER BY id FOR UPDATE",
)
_MERGED_INTO = Sql(
    "SELECT id, merged_into FROM profiles WHERE workspace_id = ?"
    " AND id IN (SELECT value FROM json_each(?)) AND merged_into IS NOT NULL",
    "SELECT id, merged_into FROM profiles WHERE workspace_id = %s"
    " AND id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " AND merged_into IS NOT NULL",
)
_CLAIM = Sql(
    "INSERT INTO identities (workspace_id, kind, value, profile_id, created_ms)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "INSERT INTO identities (workspace_id, kind, value, profile_id, created_ms)"
    " SELECT %s, j.r->>0, j.r->>1, j.r->>2, %s FROM jsonb_array_elements(%s::jsonb) AS j(r)"
    " ON CONFLICT DO NOTHING",
)
# PostgreSQL: `seq = ANY(ARRAY(...))` makes the seqs an index condition; joined to the array's
# rows alone the planner hashed the whole events table on every chunk (seen with EXPLAIN).
_SET_EVENT_PROFILES = Sql(
    "UPDATE events SET profile_id = ? WHERE seq = ?",
    "WITH u AS (SELECT (r->>0)::bigint AS seq, r->>1 AS pid FROM jsonb_array_elements(%s::jsonb)"
    " AS r) UPDATE events SET profile_id = u.pid FROM u"
    " WHERE events.seq = u.seq AND events.seq = ANY(ARRAY(SELECT seq FROM u))",
)
# Merges (a few per chunk at most): row by row on both databases.
_MARK_MERGED = Sql.same("UPDATE profiles SET merged_into = ?, updated_ms = ? WHERE id = ?")
_MOVE_IDENTITIES = Sql.same("UPDATE identities SET profile_id = ? WHERE profile_id = ?")
_MOVE_EVENTS = Sql.same("UPDATE events SET profile_id = ? WHERE profile_id = ?")
_MEMBERSHIPS_OF = Sql(
    "SELECT profile_id, group_id, joined_ms FROM profile_groups WHERE workspace_id = ?"
    " AND profile_id IN (SELECT value FROM json_each(?))",
    "SELECT profile_id, group_id, joined_ms FROM profile_groups WHERE workspace_id = %s"
    " AND profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
)
_DROP_MEMBERSHIPS = Sql(
    "DELETE FROM profile_groups WHERE workspace_id = ?"
    " AND profile_id IN (SELECT value FROM json_each(?))",
    "DELETE FROM profile_groups WHERE workspace_id = %s"
    " AND profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))",
)
_RECORD_MERGE = Sql.same(
    "INSERT INTO profile_merges (id, workspace_id, from_profile_id, into_profile_id, reason,"
    " message_id, merged_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
#: Every profile merged, directly or through others, into each of the profiles listed.
_ANCESTORS = Sql(
    "WITH RECURSIVE walk(root, id) AS (SELECT into_profile_id, from_profile_id"
    " FROM profile_merges WHERE workspace_id = ?"
    " AND into_profile_id IN (SELECT value FROM json_each(?))"
    " UNION SELECT walk.root, m.from_profile_id FROM profile_merges AS m"
    " JOIN walk ON m.into_profile_id = walk.id)"
    " SELECT root, id FROM walk ORDER BY root, id",
    "WITH RECURSIVE walk(root, id) AS (SELECT into_profile_id, from_profile_id"
    " FROM profile_merges WHERE workspace_id = %s"
    " AND into_profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " UNION SELECT walk.root, m.from_profile_id FROM profile_merges AS m"
    " JOIN walk ON m.into_profile_id = walk.id)"
    " SELECT root, id FROM walk ORDER BY root, id",
)


class IdentityStore(ProfileStateStore):
    """Identifiers → profiles, and merges of profiles, for every workspace."""

    async def owners(
        self, conn: AsyncConnection, workspace_id: str, wanted: Sequence[Identifier]
    ) -> dict[Identifier, str]:
        """The profile each known identifier points at (identities always point at live ones)."""
        if not wanted:
            return {}
        pairs = json_text([(i.kind, i.value) for i in wanted])
        rows = await driver_rows(conn, _OWNERS, (pairs, workspace_id))
        return {Identifier(kind, value): profile_id for kind, value, profile_id in rows}

    async def lock(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str | None]:
        """Lock profile rows in id order (PostgreSQL); returns each one's `merged_into`."""
        ordered = sorted(set(profile_ids))
        if not ordered:
            return {}
        rows = await driver_rows(conn, _LOCK, (workspace_id, json_text(ordered)))
        return {profile_id: merged_into for profile_id, merged_into in rows}

    async def user_ids(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        """The user id held by each of these profiles (a profile holds at most one)."""
        wanted = sorted(set(profile_ids))
        if not wanted:
            return {}
        rows = await driver_rows(conn, _USER_IDS, (json_text(wanted),))
        return {profile_id: user_id for profile_id, user_id in rows}

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
        wanted = json_text(sorted(profile_ids))
        rows = await driver_rows(conn, _MERGED_INTO, (workspace_id, wanted))
        return {profile_id: merged_into for profile_id, merged_into in rows}

    async def claim(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        claims: Mapping[Identifier, str],
        now_ms: int,
    ) -> None:
        """Point unclaimed identifiers at profiles; Conflict if another worker got one first."""
        if not claims:
            return
        ordered = sorted(claims.items())
        if conn.dialect.name == "postgresql":
            rows = json_text([(i.kind, i.value, p) for i, p in ordered])
            inserted = await driver_write(conn, _CLAIM, (workspace_id, now_ms, rows))
        else:
            values = [(workspace_id, i.kind, i.value, p, now_ms) for i, p in ordered]
            inserted = await driver_write(conn, _CLAIM, values, many=True)
        # Rows that hit an existing identifier are not inserted (nor counted).
        if inserted != len(ordered):
            owners = await self.owners(conn, workspace_id, list(claims))
            lost = [str(i) for i, p in ordered if owners.get(i) != p]
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
        moves = [(into, loser) for loser, into in sorted(final.items())]
        # Profiles merged earlier into a loser point at the final survivor too (chains stay one
        # hop long). Found through profile_merges, which is indexed where profiles is not.
        pointing = {loser: into for loser, into in final.items()}
        for root, earlier in (await self._ancestors(conn, workspace_id, list(final))).items():
            for profile_id in earlier:
                pointing.setdefault(profile_id, final[root])
        marks = [(into, now_ms, p) for p, into in sorted(pointing.items())]
        await driver_write(conn, _MARK_MERGED, marks, many=True)
        await driver_write(conn, _MOVE_IDENTITIES, moves, many=True)
        await driver_write(conn, _MOVE_EVENTS, moves, many=True)
        losers = (workspace_id, json_text(sorted(final)))
        memberships = await driver_rows(conn, _MEMBERSHIPS_OF, losers)
        if memberships:
            moved = [(workspace_id, final[p], g, at) for p, g, at in memberships]
            await driver_write(conn, JOIN_GROUP, moved, many=True)
            await driver_write(conn, _DROP_MEMBERSHIPS, losers)
        records = [
            (new_id(), workspace_id, m.loser, m.survivor, m.reason[:64], m.message_id, now_ms)
            for m in merges
        ]
        await driver_write(conn, _RECORD_MERGE, records, many=True)
        return changed

    async def _ancestors(
        self, conn: AsyncConnection, workspace_id: str, roots: Sequence[str]
    ) -> dict[str, list[str]]:
        """Every profile merged, directly or through others, into each of `roots`."""
        found: dict[str, list[str]] = {root: [] for root in roots}
        if not roots:
            return found
        wanted = json_text(sorted(set(roots)))
        for root, profile_id in await driver_rows(conn, _ANCESTORS, (workspace_id, wanted)):
            found[root].append(profile_id)
        return found

    async def set_event_profiles(
        self, conn: AsyncConnection, assignments: Sequence[tuple[int, str]]
    ) -> None:
        """Set `events.profile_id` for (seq, profile id) pairs."""
        if not assignments:
            return
        if conn.dialect.name == "postgresql":
            await driver_write(conn, _SET_EVENT_PROFILES, (json_text(assignments),))
            return
        rows = [(profile_id, seq) for seq, profile_id in assignments]
        await driver_write(conn, _SET_EVENT_PROFILES, rows, many=True)
