"""Admin API: the journeys one profile is in, with the node each run is at (the console's
360° view reads it). Read-only, viewer key; routes never compose SQL (`store.profile_runs`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from legato.api.auth import Viewer
from legato.app import Legato
from legato.store.profile_runs import MAX_RUNS, runs_of_profile

router = APIRouter(prefix="/api/v1/profiles", tags=["profiles"])


@router.get("/{profile_id}/journeys")
async def profile_journeys(
    request: Request,
    profile_id: str,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 50,
) -> dict[str, Any]:
    """A profile's journey runs, newest first: journey, version, status (waiting, exited,
    converted) and the node the run is at. A merged-away id answers for the survivor."""
    legato: Legato = request.app.state.legato
    profile = await legato.profiles.get(key.workspace_id, profile_id)
    async with legato.db.connect() as conn:
        found = await runs_of_profile(conn, key.workspace_id, [profile.id], limit)
    return {
        "profile_id": profile.id,
        "runs": [
            {
                "run_id": run.run_id,
                "journey": run.journey_key,
                "version": run.version,
                "status": run.status,
                "node": run.node_id,
                "entry_key": run.entry_key,
                "entered_ms": run.entered_ms,
                "updated_ms": run.updated_ms,
            }
            for run in found
        ],
    }
