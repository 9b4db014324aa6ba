"""Unified profiles for their readers (admin API, CLI, other services), in SQL.

`ProfileStore` is the one class the rest of Legato uses: the identity graph and merges
(`store.identities`) and the pipeline's profile state (`store.profile_state`) are its bases;
this module adds the reads: a profile by id or identifier, its events newest first, and
profiles filtered by trait, a page at a time. Reads open their own connection.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.identity import normalise
from legato.domain.profiles import (
    EventPage,
    GroupView,
    IdentityView,
    Profile,
    ProfileEvent,
    ProfilePage,
)
from legato.errors import InvalidInput, NotFound
from legato.store.database import SLICE
from legato.store.identities import MAX_MERGE_HOPS, IdentityStore, MergeRecord
from legato.store.profile_state import Activity, GroupCall, ProfileStateStore
from legato.store.tables import events, groups, identities, profile_groups, profiles

__all__ = [
    "MAX_MERGE_HOPS",
    "MAX_PAGE",
    "SLICE",
    "Activity",
    "GroupCall",
    "IdentityStore",
    "MergeRecord",
    "ProfileStateStore",
    "ProfileStore",
]

MAX_PAGE = 500


class ProfileStore(IdentityStore):
    """Profiles and the identity graph of every workspace: the pipeline's writes (from the
    bases) and the reads of the admin API and the CLI."""

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
