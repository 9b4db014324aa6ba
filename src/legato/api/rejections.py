"""Admin API: the messages refused at ingestion (or by the pipeline), with their reasons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from legato.api.auth import Viewer
from legato.app import Legato

router = APIRouter(prefix="/api/v1", tags=["rejections"])


class Rejection(BaseModel):
    """One refused message, kept with the reason: nothing is silently dropped."""

    id: str
    received_ms: int = Field(description="When it was refused (epoch ms)")
    index: int | None = Field(
        description="Its position in the batch it came in (0 for single-message routes); "
        "null when the pipeline refused it"
    )
    reason: str = Field(description="Why it was refused, readable")
    field: str | None = Field(
        description="The field at fault (`event`, `userId`...), or `pipeline.<stage>` when a "
        "pipeline stage could not apply it"
    )
    payload: str = Field(description="The message as received, cut at the message size limit")


class RejectionPage(BaseModel):
    """A page of rejections, newest first; pass `next` back as `before` for the next one."""

    rejections: list[Rejection]
    next: str | None


@router.get("/rejections", response_model=RejectionPage)
async def list_rejections(
    request: Request,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 50,
    before: Annotated[
        str | None, Query(max_length=26, description="The `next` of the previous page.")
    ] = None,
) -> RejectionPage:
    """Rejected messages of the workspace, newest first: index in its batch, reason, field, and
    the message as received (cut at the message size limit)."""
    legato: Legato = request.app.state.legato
    page = await legato.rejections.list(key.workspace_id, limit=limit, before=before)
    return RejectionPage.model_validate({"rejections": page.items, "next": page.next})
