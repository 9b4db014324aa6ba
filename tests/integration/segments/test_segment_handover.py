"""A segment saved while the pipeline is inside a chunk misses none of the chunk's events.

The chunk below reads the segment definitions before the new segment exists, so it evaluates
nothing for it; the save's backfill must then see what the chunk wrote (the event's profile,
its traits). On PostgreSQL that only holds if the backfill waits for the chunk's commit; on
SQLite the chunk's transaction excludes the save's writes until it commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.pipeline import ResolvedEvent
from tests.integration.segments.conftest import World

#: How long the chunk stays open while the save runs beside it (seconds).
HOLD = 1.0


class _Gate:
    """A last pipeline stage that keeps the chunk's transaction open until released."""

    name = "gate"

    def __init__(self) -> None:
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        self.inside.set()
        await self.release.wait()


async def test_segment_saved_during_a_chunk_backfills_its_events(world: World) -> None:
    # Another segment exists, so the chunk compiles (and caches) an index without the new one.
    await world.apply("kind: Segment\nkey: browsers\ncondition: {event: Page Viewed}\n")
    await world.identify("ana", country="ES")
    await world.track("ana", "Order Completed")
    gate = _Gate()
    world.legato.pipeline.stages.append(gate)
    chunk = asyncio.create_task(world.legato.pipeline.drain())
    await asyncio.wait_for(gate.inside.wait(), 30)
    saving = asyncio.create_task(
        world.apply(
            "kind: Segment\nkey: spanish_buyers\ncondition:\n  all:\n"
            "    - {event: Order Completed}\n    - {trait: country, eq: ES}\n"
        )
    )
    # The save runs as far as it can while the chunk is open, then the chunk commits.
    await asyncio.wait([saving], timeout=HOLD)
    gate.release.set()
    await asyncio.wait_for(chunk, 30)
    await asyncio.wait_for(saving, 30)
    world.legato.pipeline.stages.remove(gate)
    await world.settle()
    store = world.legato.memberships
    async with world.legato.db.connect() as conn:
        ana = await store.resolve_identifiers(conn, world.workspace_id, "user_id", ["ana"])
        members = await store.member_ids(conn, world.workspace_id, "spanish_buyers")
    assert members == {ana["ana"]}
