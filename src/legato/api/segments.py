"""Admin API: segments, computed traits and the condition language's schema.

Routes translate HTTP into calls on `SegmentService` (held by the composition root) and, for
a segment's size over time, on the read-only `store.segment_sizes`; they never compose SQL.
Reads take a viewer key, writes an admin key. An invalid condition is a 422 whose `path` is the
JSON path of the offending node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from legato.api.auth import Admin, Viewer
from legato.app import Legato
from legato.runtime.segment_service import (
    MAX_PAGE,
    ComputedTraitInfo,
    MemberPage,
    MembershipEvent,
    Saved,
    SegmentInfo,
    SegmentService,
    UploadResult,
)
from legato.store.segment_sizes import MAX_SIZE_DAYS, segment_sizes

router = APIRouter(prefix="/api/v1", tags=["segments"])

Document = Annotated[dict[str, Any], Body(description="the document, as JSON")]


def _service(request: Request) -> SegmentService:
    legato: Legato = request.app.state.legato
    return legato.segments


@router.get("/segments", response_model=list[SegmentInfo])
async def list_segments(request: Request, key: Viewer) -> list[SegmentInfo]:
    """Every segment, with its member count."""
    return await _service(request).list_segments(key.workspace_id)


@router.post("/segments/preview")
async def preview_segment(
    request: Request,
    key: Viewer,
    body: Annotated[dict[str, Any], Body(description='{"condition": {...}}')],
) -> dict[str, int]:
    """How many profiles a condition holds for now, saving nothing (the console's live count)."""
    return {"count": await _service(request).preview(key.workspace_id, body.get("condition"))}


@router.get("/segments/{segment_key}", response_model=SegmentInfo)
async def get_segment(request: Request, segment_key: str, key: Viewer) -> SegmentInfo:
    """One segment."""
    return await _service(request).get_segment(key.workspace_id, segment_key)


@router.put("/segments/{segment_key}", response_model=Saved)
async def put_segment(request: Request, segment_key: str, key: Admin, document: Document) -> Saved:
    """Create or replace a segment, then backfill it over all history."""
    return await _service(request).put_segment(key.workspace_id, document, key=segment_key)


@router.delete("/segments/{segment_key}", status_code=204)
async def delete_segment(request: Request, segment_key: str, key: Admin) -> None:
    """Delete a segment (refused while another segment reads it)."""
    await _service(request).delete_segment(key.workspace_id, segment_key)


@router.get("/segments/{segment_key}/members", response_model=MemberPage)
async def segment_members(
    request: Request,
    segment_key: str,
    key: Viewer,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> MemberPage:
    """Members, by profile id, a page at a time."""
    return await _service(request).members(
        key.workspace_id, segment_key, cursor=cursor, limit=limit
    )


@router.get("/segments/{segment_key}/count")
async def segment_count(request: Request, segment_key: str, key: Viewer) -> dict[str, int]:
    """How many members a segment has."""
    return {"count": await _service(request).count(key.workspace_id, segment_key)}


class DaySize(BaseModel):
    """One UTC day of a segment's size."""

    model_config = ConfigDict(frozen=True)

    day: str = Field(description="The UTC date, YYYY-MM-DD")
    start_ms: int = Field(description="When the day began (ms since the epoch, UTC)")
    members: int | None = Field(
        description="Members when the day ended (today: now); null before the segment existed"
    )
    entered: int = Field(description="People who entered during the day")
    exited: int = Field(description="People who left during the day")


class SegmentSizes(BaseModel):
    """A segment's size over the last `days` UTC days, oldest first, today last."""

    model_config = ConfigDict(frozen=True)

    segment: str
    created_ms: int
    now_ms: int
    days: list[DaySize]


@router.get("/segments/{segment_key}/sizes", response_model=SegmentSizes)
async def segment_size_history(
    request: Request,
    segment_key: str,
    key: Viewer,
    days: Annotated[
        int, Query(ge=1, le=MAX_SIZE_DAYS, description="How many days, today included")
    ] = 30,
) -> SegmentSizes:
    """Size over time: one point per UTC day with the members at its end and the entries and
    exits during it, rebuilt from the logged Segment Entered/Exited events."""
    legato: Legato = request.app.state.legato
    info = await _service(request).get_segment(key.workspace_id, segment_key)
    now_ms = legato.clock.now_ms()
    async with legato.db.connect() as conn:
        found = await segment_sizes(
            conn,
            key.workspace_id,
            segment_key,
            created_ms=info.created_ms,
            now_ms=now_ms,
            days=days,
        )
    return SegmentSizes(
        segment=segment_key,
        created_ms=info.created_ms,
        now_ms=now_ms,
        days=[
            DaySize(
                day=datetime.fromtimestamp(d.start_ms / 1000, UTC).date().isoformat(),
                start_ms=d.start_ms,
                members=d.members,
                entered=d.entered,
                exited=d.exited,
            )
            for d in found
        ],
    )


@router.get("/segments/{segment_key}/export.csv")
async def export_segment(request: Request, segment_key: str, key: Viewer) -> StreamingResponse:
    """Members as CSV: profile_id, user_id, entered_ms."""
    service = _service(request)
    await service.get_segment(key.workspace_id, segment_key)
    return StreamingResponse(
        service.export_csv(key.workspace_id, segment_key),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{segment_key}.csv"'},
    )


@router.post("/segments/{segment_key}/upload", response_model=UploadResult)
async def upload_segment(
    request: Request, segment_key: str, key: Admin, file: UploadFile
) -> UploadResult:
    """Replace a static segment's members from a CSV (user_id, email or anonymous_id column)."""
    data = await file.read()
    return await _service(request).upload(key.workspace_id, segment_key, data)


@router.get("/profiles/{profile_id}/segment-history", response_model=list[MembershipEvent])
async def segment_history(
    request: Request,
    profile_id: str,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[MembershipEvent]:
    """A profile's segment entries and exits, newest first."""
    return await _service(request).history(key.workspace_id, profile_id, limit=limit)


@router.get("/conditions/schema")
async def conditions_schema(key: Viewer) -> dict[str, Any]:
    """The JSON Schema of conditions (the console's builder is generated from it)."""
    return SegmentService.schema()


@router.get("/computed-traits", response_model=list[ComputedTraitInfo])
async def list_computed_traits(request: Request, key: Viewer) -> list[ComputedTraitInfo]:
    """Every computed trait."""
    return await _service(request).list_computed_traits(key.workspace_id)


@router.get("/computed-traits/{trait_key}", response_model=ComputedTraitInfo)
async def get_computed_trait(request: Request, trait_key: str, key: Viewer) -> ComputedTraitInfo:
    """One computed trait."""
    return await _service(request).get_computed_trait(key.workspace_id, trait_key)


@router.put("/computed-traits/{trait_key}", response_model=Saved)
async def put_computed_trait(
    request: Request, trait_key: str, key: Admin, document: Document
) -> Saved:
    """Create or replace a computed trait, then compute it over all history."""
    return await _service(request).put_computed_trait(key.workspace_id, document, key=trait_key)


@router.delete("/computed-traits/{trait_key}", status_code=204)
async def delete_computed_trait(request: Request, trait_key: str, key: Admin) -> None:
    """Delete a computed trait (refused while a segment reads it)."""
    await _service(request).delete_computed_trait(key.workspace_id, trait_key)
