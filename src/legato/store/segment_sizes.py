"""A segment's size over time, read from the membership history the log already holds.

Every membership change after a segment's first backfill is a `Segment Entered` / `Segment
Exited` event (`legato.runtime.segments.logged_change`), so the size at the end of a past day
is today's member count minus the entries logged after that day plus the exits logged after
it. One grouped count over the log's (workspace, event, time) index gives the changes per day;
nothing is stored. Days that ended before the segment existed have no size (its first backfill
logs no entries: nobody entered a segment that did not exist). Read-only: never writes a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT, SEGMENT_PROPERTY
from legato.store.segments import segment_members
from legato.store.tables import events

DAY_MS = 86_400_000
#: The longest series the API lets one request ask for, in days.
MAX_SIZE_DAYS = 366


@dataclass(frozen=True, slots=True)
class DaySize:
    """One UTC day of a segment: members when it ended (None: the segment did not exist yet;
    today's is the count now), and the entries and exits logged during it."""

    start_ms: int
    members: int | None
    entered: int
    exited: int


async def segment_sizes(
    conn: AsyncConnection,
    workspace_id: str,
    key: str,
    *,
    created_ms: int,
    now_ms: int,
    days: int,
) -> list[DaySize]:
    """The `days` UTC days up to and including today's, oldest first."""
    first_ms = (now_ms // DAY_MS - (days - 1)) * DAY_MS
    current = (
        await conn.execute(
            sa.select(sa.func.count()).where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.segment_key == key,
            )
        )
    ).scalar_one()
    # Changes logged before the segment was (last) created belong to an earlier segment of
    # the same key; changes after `now_ms` are not part of "now" yet.
    since_ms = max(first_ms, created_ms)
    day = ((events.c.timestamp_ms - first_ms) // DAY_MS).label("day")
    entered = sa.func.sum(sa.case((events.c.event == SEGMENT_ENTERED_EVENT, 1), else_=0))
    rows = await conn.execute(
        sa.select(day, entered.label("entered"), sa.func.count().label("changes"))
        .where(
            events.c.workspace_id == workspace_id,
            events.c.event.in_([SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT]),
            events.c.timestamp_ms >= since_ms,
            events.c.timestamp_ms <= now_ms,
            events.c.payload[("properties", SEGMENT_PROPERTY)].as_string() == key,
        )
        .group_by(day)
    )
    changes = [(0, 0)] * days
    for index, came, total in rows:
        changes[int(index)] = (int(came), int(total) - int(came))
    found: list[DaySize] = []
    members = int(current)
    for index in range(days - 1, -1, -1):
        start = first_ms + index * DAY_MS
        came, left = changes[index]
        existed = start + DAY_MS > created_ms
        found.append(DaySize(start, members if existed else None, came, left))
        # Walking back over this day: who entered during it was not in before it, who left was.
        members += left - came
    found.reverse()
    return found


__all__ = ["DAY_MS", "MAX_SIZE_DAYS", "DaySize", "segment_sizes"]
