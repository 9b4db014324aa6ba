"""Read side of one person's journey runs, for the profile's 360° view in the console.

A read model only: which journeys a profile is in or was in, the version, the node each run is
at now and its status. It never writes; the runtime (`store.runs`) owns the runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.store.journeys import runs

#: Most runs one answer lists (newest first).
MAX_RUNS = 200


@dataclass(frozen=True, slots=True)
class ProfileRun:
    """One run of one person through one journey version."""

    run_id: str
    journey_key: str
    version: int
    status: str
    node_id: str | None
    entry_key: str | None
    entered_ms: int
    updated_ms: int


async def runs_of_profile(
    conn: AsyncConnection, workspace_id: str, profile_ids: list[str], limit: int = MAX_RUNS
) -> list[ProfileRun]:
    """The runs of these profile ids (a profile and those merged into it), newest first."""
    if not profile_ids:
        return []
    rows = await conn.execute(
        sa.select(
            runs.c.run_id,
            runs.c.journey_key,
            runs.c.version,
            runs.c.status,
            runs.c.node_id,
            runs.c.entry_key,
            runs.c.entered_ms,
            runs.c.updated_ms,
        )
        .where(runs.c.workspace_id == workspace_id, runs.c.profile_id.in_(profile_ids))
        .order_by(runs.c.entered_ms.desc(), runs.c.run_id.desc())
        .limit(limit)
    )
    return [
        ProfileRun(
            str(r.run_id),
            str(r.journey_key),
            int(r.version),
            str(r.status),
            r.node_id,
            r.entry_key,
            int(r.entered_ms),
            int(r.updated_ms),
        )
        for r in rows
    ]
