"""The profile stage: applies each resolved event to its profile.

Identify traits combine newest-wins (`domain.profiles.ProfileDraft`), every customer event
counts and widens first/last seen, and `group` calls update the group's traits and the
profile's memberships. Per chunk: one read and one write of the profiles that get traits, one
in-place update (count, first/last seen) of the others, on the pipeline's transaction. Never
resolves identity: it trusts `ResolvedEvent.profile_id` from the identity stage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.pipeline import ResolvedEvent
from legato.errors import NotFound
from legato.ports import Clock
from legato.store.profiles import Activity, GroupCall, ProfileStore


def _traits(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    traits = payload.get("traits")
    return traits if isinstance(traits, dict) else {}


def _group_id(payload: Mapping[str, Any]) -> str | None:
    raw = payload.get("groupId")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    return text if text and len(text) <= 200 else None


class ProfileStage:
    """`Stage` that keeps traits, activity and group memberships of profiles."""

    name = "profile"

    def __init__(self, store: ProfileStore, clock: Clock):
        self.store = store
        self.clock = clock

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Apply the batch's events to their profiles, workspace by workspace."""
        by_workspace: dict[str, list[ResolvedEvent]] = defaultdict(list)
        for item in batch:
            if item.profile_id is not None and not item.is_internal:
                by_workspace[item.row.workspace_id].append(item)
        now_ms = self.clock.now_ms()
        for workspace_id in sorted(by_workspace):
            items = by_workspace[workspace_id]
            # Only profiles with traits to set are read; the others just count events, which
            # `add_activity` does in place (most events of a chunk are tracks and pages).
            identified = {
                item.profile_id
                for item in items
                if item.row.type == "identify" and item.profile_id is not None
            }
            drafts = await self.store.drafts(conn, workspace_id, identified, lock=True)
            activity: dict[str, Activity] = {}
            calls: list[GroupCall] = []
            for item in items:
                assert item.profile_id is not None
                row = item.row
                draft = drafts.get(item.profile_id)
                if draft is not None:
                    draft.observe(row.timestamp_ms)
                elif item.profile_id in identified:
                    raise NotFound(f"profile {item.profile_id} of event seq {item.seq} is gone")
                elif (counted := activity.get(item.profile_id)) is not None:
                    counted.observe(row.timestamp_ms)
                else:
                    activity[item.profile_id] = Activity(1, row.timestamp_ms, row.timestamp_ms)
                if row.type == "identify" and draft is not None:
                    changed = draft.set_traits(_traits(row.payload), row.timestamp_ms)
                    if changed:
                        item.changed_traits = item.changed_traits | changed
                elif row.type == "group":
                    group_id = _group_id(row.payload)
                    if group_id is not None:
                        calls.append(
                            GroupCall(
                                item.profile_id, group_id, _traits(row.payload), row.timestamp_ms
                            )
                        )
            await self.store.save(conn, drafts, now_ms)
            await self.store.add_activity(conn, activity, now_ms)
            await self.store.join_groups(conn, workspace_id, calls, now_ms)
