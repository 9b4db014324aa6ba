"""The identity stage: resolves each event of a chunk to its canonical profile.

Per workspace in the chunk: look up the owners of every identifier at once, lock the owning
profiles (id order), let `domain.identity.IdentityGraph` decide message by message, then write
the decisions: new profiles, merges (in the order they happened), newly claimed identifiers and
each event's `profile_id`. Never decides identity itself and never touches traits, except what
a merge combines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import (
    NOBODY,
    IdentityConfig,
    IdentityGraph,
    MessageIdentifiers,
    Resolution,
    identifiers_of,
    lookups_of,
)
from legato.domain.pipeline import ResolvedEvent
from legato.errors import Conflict
from legato.ids import new_id
from legato.ports import Clock
from legato.store.profiles import MergeRecord, ProfileStore

log = structlog.get_logger(__name__)

#: Rounds of "read owners, lock them" before giving up on a graph that keeps moving.
MAX_LOCK_ROUNDS = 8


class IdentityStage:
    """`Stage` that sets `ResolvedEvent.profile_id` and merges profiles that turn out one."""

    name = "identity"

    def __init__(self, store: ProfileStore, clock: Clock, config: IdentityConfig | None = None):
        self.store = store
        self.clock = clock
        self.config = config or store.config

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Resolve every event of the batch (workspace by workspace, in log order)."""
        by_workspace: dict[str, list[ResolvedEvent]] = defaultdict(list)
        for item in batch:
            by_workspace[item.row.workspace_id].append(item)
        for workspace_id in sorted(by_workspace):
            await self._resolve(conn, workspace_id, by_workspace[workspace_id])

    async def _resolve(
        self, conn: AsyncConnection, workspace_id: str, batch: list[ResolvedEvent]
    ) -> None:
        now_ms = self.clock.now_ms()
        config = self.config
        found = [identifiers_of(item.row, config) for item in batch]
        graph = await self._load(conn, workspace_id, found, batch)
        decisions: list[Resolution | None] = []
        born_at: dict[str, int] = {}
        records: list[MergeRecord] = []
        causes: list[ResolvedEvent] = []
        for item, ids in zip(batch, found, strict=True):
            if ids is NOBODY:
                decisions.append(None)
                continue
            resolved = graph.resolve(ids, new_id)
            decisions.append(resolved)
            if resolved.created and resolved.profile_id is not None:
                born_at[resolved.profile_id] = item.row.timestamp_ms
            if resolved.merges:
                item.merged_from = tuple(m.loser for m in resolved.merges)
                for merge in resolved.merges:
                    reason = f"{item.row.type}:{merge.via.kind}"
                    records.append(
                        MergeRecord(merge.loser, merge.survivor, reason, item.row.message_id)
                    )
                    causes.append(item)
            for refusal in resolved.refused:
                log.info(
                    "identity not linked",
                    workspace_id=workspace_id,
                    message_id=item.row.message_id,
                    reason=refusal.reason,
                )

        await self.store.create(conn, workspace_id, sorted(born_at.items()), now_ms)
        changed = await self.store.merge_all(conn, workspace_id, records, now_ms)
        for item, keys in zip(causes, changed, strict=True):
            if keys:
                item.changed_traits = item.changed_traits | keys
        await self.store.claim(conn, workspace_id, graph.final_claims(), now_ms)

        preset = [i.row.profile_id for i in batch if i.row.profile_id is not None]
        live = await self.store.live(conn, workspace_id, preset) if preset else {}
        assignments: list[tuple[int, str]] = []
        canonical = graph.canonical
        for item, decision in zip(batch, decisions, strict=True):
            row = item.row
            if decision is not None and decision.profile_id is not None:
                profile_id = canonical(decision.profile_id)
            elif row.profile_id is not None:
                # Internal events arrive with their profile; it may have been merged since.
                profile_id = canonical(live[row.profile_id])
            else:
                continue
            item.profile_id = profile_id
            if profile_id != row.profile_id:
                assignments.append((row.seq, profile_id))
        await self.store.set_event_profiles(conn, assignments)

    async def _load(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        found: Sequence[MessageIdentifiers],
        batch: Sequence[ResolvedEvent],
    ) -> IdentityGraph:
        """The graph around the chunk's identifiers, with every owning profile locked.

        Owners are read, then locked. Identifiers move between profiles only by merges, which
        lock both profiles and mark the loser `merged_into`: if a locked profile turns out
        merged, the owners are read again (and the new ones locked) until none moved. User ids
        are read under the locks, of the profiles whose user id the decisions may consult and
        the owners do not show. On SQLite the transaction already excludes every other writer.
        """
        wanted = lookups_of(found)
        locked: set[str] = set()
        extra = {i.row.profile_id for i in batch if i.row.profile_id is not None}
        for _ in range(MAX_LOCK_ROUNDS):
            owners = await self.store.owners(conn, workspace_id, wanted) if wanted else {}
            needed = set(owners.values()) | extra
            fresh = needed - locked
            if fresh and not self.store.serialised:
                merged_into = await self.store.lock(conn, workspace_id, fresh)
                locked |= fresh
                moved = {target for target in merged_into.values() if target is not None}
                if moved or len(merged_into) != len(fresh):
                    extra |= moved
                    continue
            graph = IdentityGraph.of(owners, {})
            unknown = graph.unvetted(found)
            graph.user_ids.update(await self.store.user_ids(conn, workspace_id, unknown))
            return graph
        raise Conflict(
            "the identity graph kept changing under concurrent merges", workspace_id=workspace_id
        )
