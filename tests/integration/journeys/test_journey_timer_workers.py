"""Timer workers share due timers on PostgreSQL: a claim skips the rows another transaction holds
(`FOR UPDATE SKIP LOCKED`) instead of waiting for them, and workers running at once fire every
timer exactly once. SQLite runs one engine process (enforced elsewhere), so these are
PostgreSQL-only."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from legato.app import Legato
from legato.runtime.timers import TimerWorker
from legato.settings import Settings
from legato.store.journeys import timers
from tests.integration.journeys.conftest import HOUR, World

JOURNEY = {
    "kind": "Journey",
    "key": "j",
    "trigger": {"event": "Signed Up"},
    "nodes": [
        {"id": "w", "type": "wait", "duration": "1h", "next": "m"},
        {"id": "m", "type": "message", "channel": "email", "template": "m"},
    ],
}


# PostgreSQL only: `journey_db` (under the `world` fixture) takes only its PostgreSQL parameter.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("journey_db", ["postgres"], indirect=True),
]


async def _waiting(world: World, people: int) -> None:
    await world.publish(JOURNEY)
    await world.send(
        *({"type": "track", "userId": f"u{i}", "event": "Signed Up"} for i in range(people))
    )
    await world.settle()
    world.clock.set(world.clock.now_ms() + HOUR)


async def test_a_claim_skips_the_timers_another_worker_holds(world: World, journey_db: str) -> None:
    await _waiting(world, 10)
    runs = world.legato.runs
    async with world.legato.db.transaction() as holder:
        held = await runs.claim_timers(holder, world.clock.now_ms(), 4)
        assert len(held) == 4
        # Not committed yet: a second worker must get the other six at once, not wait.
        async with world.legato.db.transaction() as other:
            rest = await asyncio.wait_for(runs.claim_timers(other, world.clock.now_ms(), 100), 10)
        assert len(rest) == 6
        assert {t.owner for t in held}.isdisjoint({t.owner for t in rest})
        # The holder's transaction fails: its timers come back; the other claim committed.
        await holder.rollback()
    async with world.legato.db.connect() as conn:
        left = sorted((await conn.execute(sa.select(timers.c.owner))).scalars())
    assert left == sorted(t.owner for t in held)


async def test_workers_running_at_once_fire_each_timer_once(world: World, journey_db: str) -> None:
    people = 120
    await _waiting(world, people)
    # A second process would have its own engine and pool: so does this second Legato.
    other = Legato(
        Settings(database_url=world.legato.settings.database_url, run_workers=False),
        clock=world.clock,
    )
    try:
        workers = [
            TimerWorker(
                legato.db,
                legato.journey_store,
                legato.runs,
                legato.versions,
                legato.profiles,
                world.clock,
                batch_size=7,
            )
            for legato in (world.legato, other)
        ]
        fired = await asyncio.gather(*(worker.drain() for worker in workers))
    finally:
        await other.ingest.close()
        await other.db.dispose()
    assert sum(fired) == people
    await world.settle()
    sent = await world.sent("j")
    assert sorted(user for user, _, _ in sent) == sorted(f"u{i}" for i in range(people))
    stats = await world.stats("j")
    assert stats["nodes"]["m"]["entered"] == people
    assert stats["journey"]["waiting"] == 0
