"""A computed trait's backfill reads history as one stream, page by page, and folds it into
exactly the values and states the pipeline stage keeps event by event."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from legato.store.segments import computed_trait_values
from tests.integration.segments.conftest import DAY, HOUR, World

CATEGORIES = ("Shoes", "Bags", "Hats")


def trait(key: str) -> str:
    return (
        f"kind: ComputedTrait\nkey: {key}\naggregate: most_frequent\nevent: Product Viewed\n"
        "property: category\nwithin: 30d\n"
    )


async def history(world: World) -> None:
    """Three people viewing products over 40 days (some outside the window), out of order."""
    start = world.clock.now_ms() - 40 * DAY
    for person, views in (("ana", 9), ("bob", 4), ("cy", 1)):
        for i in range(views):
            at = start + (i * 5 % 40) * DAY + i * HOUR
            category = CATEGORIES[(i * i + len(person)) % len(CATEGORIES)]
            await world.track(person, "Product Viewed", at, category=category)
        await world.track(person, "Page Viewed")


async def stored(world: World, key: str) -> dict[str, tuple[Any, dict[str, Any], int | None]]:
    async with world.legato.db.connect() as conn:
        rows = await conn.execute(
            sa.select(
                computed_trait_values.c.profile_id,
                sa.cast(computed_trait_values.c.value, sa.Text),
                computed_trait_values.c.state,
                computed_trait_values.c.due_ms,
            ).where(
                computed_trait_values.c.workspace_id == world.workspace_id,
                computed_trait_values.c.key == key,
            )
        )
        return {str(p): (v, dict(s), d) for p, v, s, d in rows}


async def test_trait_events_streams_every_event_by_profile_then_log_order(world: World) -> None:
    await history(world)
    await world.settle()
    pages = [
        page
        async for page in world.legato.memberships.trait_events(
            world.workspace_id, "Product Viewed", page=4
        )
    ]
    assert [len(page) for page in pages] == [4, 4, 4, 2]
    rows = [row for page in pages for row in page]
    assert [(p, s) for p, s, _, _ in rows] == sorted((p, s) for p, s, _, _ in rows)
    assert {p for p, _, _, _ in rows} == {
        await world.profile_of(user) for user in ("ana", "bob", "cy")
    }
    assert all(set(props) == {"category"} for _, _, _, props in rows)


async def test_a_backfill_gives_the_values_and_states_the_pipeline_keeps(world: World) -> None:
    await world.apply(trait("live"))  # before the events: kept by the pipeline stage
    await history(world)
    await world.settle()
    await world.apply(trait("backfilled"))  # after them: computed over the history
    live, backfilled = await stored(world, "live"), await stored(world, "backfilled")
    assert len(backfilled) == 3
    assert backfilled == live
    ana = await world.profile_of("ana")
    extras = await world.legato.segments.profile_segments(world.workspace_id, ana)
    assert extras.computed_traits["backfilled"] == extras.computed_traits["live"] is not None
