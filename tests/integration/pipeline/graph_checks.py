"""What must hold of the identity graph and the profiles after concurrent processing."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from legato.app import Legato
from legato.store.tables import events, identities, profiles, rejected_messages


async def assert_graph_consistent(legato: Legato, total: int) -> None:
    """Every identifier and event on a live profile, one user id per profile, every one of
    `total` events counted once, nothing refused."""
    async with legato.db.connect() as conn:
        dangling = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(identities.join(profiles, profiles.c.id == identities.c.profile_id))
            .where(profiles.c.merged_into.is_not(None))
        )
        user_rows = await conn.execute(
            sa.select(identities.c.profile_id).where(identities.c.kind == "user_id")
        )
        users_per_profile = Counter(user_rows.scalars())
        live_rows = await conn.execute(
            sa.select(profiles.c.id, profiles.c.event_count).where(profiles.c.merged_into.is_(None))
        )
        live_counts = {profile_id: count for profile_id, count in live_rows}
        attributed = Counter((await conn.execute(sa.select(events.c.profile_id))).scalars())
        refused = await conn.scalar(sa.select(sa.func.count()).select_from(rejected_messages))
    assert dangling == 0, "every identifier points at a live profile"
    assert max(users_per_profile.values()) == 1, "no profile holds two user ids"
    assert set(attributed) <= set(live_counts), "every event names a live profile"
    assert {p: attributed[p] for p in live_counts} == live_counts
    assert sum(live_counts.values()) == total and refused == 0
