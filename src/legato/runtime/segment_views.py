"""What the segment use cases hand to the API, the CLI and `legato apply`: read-only views
of segments, members, histories and uploads, and the backfill progress callback.

Plain pydantic models (their JSON is the API's); no I/O, no logic beyond building a view
from a stored row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from legato.domain.profiles import Profile

#: progress(segment or trait key, done, total): called as a backfill moves.
Progress = Callable[[str, int, int], None]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class SegmentInfo(_View):
    """A segment as the API shows it."""

    key: str
    name: str
    description: str | None
    static: bool
    version: int
    state: str
    document: dict[str, Any]
    members: int
    created_ms: int
    updated_ms: int


class ComputedTraitInfo(_View):
    """A computed trait as the API shows it."""

    key: str
    version: int
    state: str
    document: dict[str, Any]
    created_ms: int
    updated_ms: int


class Saved(_View):
    """What saving a definition did."""

    key: str
    created: bool
    version: int
    members: int | None = None
    entered: int = 0
    exited: int = 0


class Member(_View):
    """One member of a segment."""

    profile_id: str
    entered_ms: int


class MemberPage(_View):
    """A page of members; pass `next_cursor` back as `cursor` for the next one."""

    members: list[Member]
    next_cursor: str | None


class MembershipEvent(_View):
    """One entry in a profile's membership history."""

    seq: int
    segment: str
    entered: bool
    timestamp_ms: int


class ProfileSegments(_View):
    """What the profile API adds: computed-trait values and current segments."""

    computed_traits: dict[str, Any] = Field(default_factory=dict)
    segments: list[str] = Field(default_factory=list)


class ProfileDetail(Profile):
    """A profile with its computed-trait values and current segments (the profile API)."""

    computed_traits: dict[str, Any] = Field(default_factory=dict)
    segments: list[str] = Field(default_factory=list)


class UploadResult(_View):
    """What a static upload did: rows matched to profiles, and those that matched none."""

    members: int
    matched: int
    unmatched: int


def segment_info(row: Any, members: int) -> SegmentInfo:
    """The view of a stored segment definition."""
    document = dict(row.document)
    return SegmentInfo(
        key=row.key,
        name=str(document.get("name") or row.key),
        description=document.get("description"),
        static=bool(document.get("static", False)),
        version=row.version,
        state=row.state,
        document=document,
        members=members,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )


def trait_info(row: Any) -> ComputedTraitInfo:
    """The view of a stored computed-trait definition."""
    return ComputedTraitInfo(
        key=row.key,
        version=row.version,
        state=row.state,
        document=dict(row.document),
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )
