"""Admin API: the messages refused at ingestion (or by the pipeline), with their reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from legato.api.auth import Viewer
from legato.app import Legato

router = APIRouter(prefix="/api/v1", tags=["rejections"])


@router.get("/rejections")
async def list_rejections(
    request: Request,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 50,
    before: Annotated[
        str | None, Query(max_length=26, description="The `next` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    """Rejected messages of the workspace, newest first: index in its batch, reason, field, and
    the message as received (cut at the message size limit)."""
    legato: Legato = request.app.state.legato
    page = await legato.rejections.list(key.workspace_id, limit=limit, before=before)
    return {"rejections": page.items, "next": page.next}
