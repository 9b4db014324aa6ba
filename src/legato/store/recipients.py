"""What delivery reads about the people behind messages, in bulk: the live profile behind an
id (following merges), traits, computed traits, and the ids the person is known by.

Reads only the foundation's profile tables and the segments issue's computed-trait values;
writes nothing. Decides nothing: the composer and the consent service do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.store.database import Database, slices
from legato.store.segments import computed_trait_values
from legato.store.tables import identities, profiles


@dataclass(frozen=True, slots=True)
class Recipient:
    """What delivery reads about one person: the live profile, traits and identifiers."""

    profile_id: str
    traits: dict[str, Any]
    computed: dict[str, Any]
    user_id: str | None
    anonymous_id: str | None


class RecipientStore:
    """Reads people for delivery."""

    def __init__(self, db: Database):
        self.db = db

    async def recipients(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, Recipient]:
        """The live profile behind each id (following merges), with traits, computed traits and
        a user id / anonymous id; ids with no profile are absent."""
        wanted = sorted(set(profile_ids))
        live: dict[str, str] = {}
        rows_by_id: dict[str, Any] = {}
        pending = {pid: pid for pid in wanted}
        for _ in range(8):  # merge chains are short; bound the walk anyway
            if not pending:
                break
            targets = sorted(set(pending.values()))
            found: dict[str, Any] = {}
            for part in slices(targets):
                for row in await conn.execute(
                    sa.select(profiles.c.id, profiles.c.traits, profiles.c.merged_into).where(
                        profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part)
                    )
                ):
                    found[row.id] = row
            next_pending: dict[str, str] = {}
            for origin, target in pending.items():
                hit = found.get(target)
                if hit is None:
                    continue
                if hit.merged_into is None:
                    live[origin] = target
                    rows_by_id[target] = hit
                else:
                    next_pending[origin] = hit.merged_into
            pending = next_pending
        alive = sorted(set(live.values()))
        computed: dict[str, dict[str, Any]] = defaultdict(dict)
        ids: dict[str, dict[str, str]] = defaultdict(dict)
        for part in slices(alive):
            for row in await conn.execute(
                sa.select(
                    computed_trait_values.c.profile_id,
                    computed_trait_values.c.key,
                    computed_trait_values.c.value,
                ).where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.profile_id.in_(part),
                )
            ):
                computed[row.profile_id][row.key] = row.value
            for row in await conn.execute(
                sa.select(identities.c.profile_id, identities.c.kind, identities.c.value)
                .where(
                    identities.c.workspace_id == workspace_id,
                    identities.c.profile_id.in_(part),
                    identities.c.kind.in_(("user_id", "anonymous_id")),
                )
                .order_by(identities.c.created_ms.desc())
            ):
                ids[row.profile_id].setdefault(row.kind, row.value)
        return {
            origin: Recipient(
                profile_id=target,
                traits=dict(rows_by_id[target].traits or {}),
                computed=computed.get(target, {}),
                user_id=ids[target].get("user_id"),
                anonymous_id=ids[target].get("anonymous_id"),
            )
            for origin, target in live.items()
        }

    async def profile_for(self, workspace_id: str, kind: str, value: str) -> str | None:
        """The profile an identifier (user_id, anonymous_id, email, phone...) points at."""
        async with self.db.connect() as conn:
            found = await conn.scalar(
                sa.select(identities.c.profile_id).where(
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == kind,
                    identities.c.value == value,
                )
            )
        return None if found is None else str(found)
