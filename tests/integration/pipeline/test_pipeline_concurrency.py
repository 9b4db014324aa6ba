"""Several pipeline workers on one PostgreSQL database: partitions split between them, a dead
worker's partitions are taken over, and concurrent merges keep the identity graph whole."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from legato.app import Legato
from legato.clock import SystemClock
from legato.runtime.identity import IdentityStage
from legato.runtime.pipeline import Pipeline
from legato.runtime.profiles import ProfileStage
from legato.settings import Settings
from legato.store.log import LogConsumer
from legato.store.tables import events
from tests.integration.pipeline.conftest import T0, append, message
from tests.integration.pipeline.graph_checks import assert_graph_consistent

pytestmark = pytest.mark.postgres
LEASE_MS = 1500


@pytest.fixture
async def shop(pg_url: str) -> AsyncIterator[tuple[Legato, str]]:
    legato = Legato(
        Settings(database_url=pg_url, run_workers=False, partitions=8), clock=SystemClock()
    )
    legato.migrate()
    created = await legato.workspaces.create("shop", T0)
    try:
        yield legato, created.workspace.id
    finally:
        await legato.db.dispose()


def worker(legato: Legato, owner: str) -> Pipeline:
    store = legato.profiles
    return Pipeline(
        legato.db,
        LogConsumer(legato.db, "pipeline", legato.settings.partitions, lease_ms=LEASE_MS),
        [IdentityStage(store, legato.clock), ProfileStage(store, legato.clock)],
        legato.clock,
        owner=owner,
        chunk_size=40,
    )


def people(count: int) -> list[list[dict[str, Any]]]:
    """Each person's events: three devices, an email seen anonymously, an alias.

    Every tenth person shares a device with the next person (two users: never merged).
    """
    everyone = []
    for p in range(count):
        t = T0 + p
        own = [
            message("track", anon=f"a{p}", at=t, event="Viewed"),
            message("track", anon=f"a{p}", at=t + 1, event="Viewed"),
            message("track", anon=f"b{p}", at=t + 2, event="Viewed"),
            message("identify", user=f"u{p}", anon=f"a{p}", at=t + 3,
                    traits={"email": f"p{p}@x.io"}),
            message("identify", user=f"u{p}", anon=f"b{p}", at=t + 4, traits={"plan": "pro"}),
            message("track", anon=f"c{p}", at=t + 5, event="Opened",
                    context={"traits": {"email": f"P{p}@X.io"}}),
            message("alias", user=f"u{p}", at=t + 6, previousId=f"d{p}"),
            message("track", anon=f"d{p}", at=t + 7, event="Viewed"),
        ]  # fmt: skip
        if p % 10 == 0:
            own.append(message("identify", user=f"u{p}", anon=f"s{p}", at=t + 8))
            own.append(message("identify", user=f"u{p + 1}", anon=f"s{p}", at=t + 9))
        everyone.append(own)
    return everyone


async def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def consumed(legato: Legato) -> bool:
    offsets = await LogConsumer(legato.db, "pipeline", legato.settings.partitions).offsets()
    async with legato.db.connect() as conn:
        tops = dict(
            (
                await conn.execute(
                    sa.select(events.c.partition, sa.func.max(events.c.seq)).group_by(
                        events.c.partition
                    )
                )
            ).all()
        )
    return all(offsets.get(p, (0,))[0] == top for p, top in tops.items())


async def test_two_workers_split_partitions_and_merge_correctly(
    shop: tuple[Legato, str],
) -> None:
    legato, workspace_id = shop
    first, second = worker(legato, "worker-1"), worker(legato, "worker-2")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop))]
    await wait_until(lambda: _holds(first, 8), 10, "the first worker to take every partition")
    tasks.append(asyncio.create_task(second.run(stop)))
    await wait_until(
        lambda: _holds(second, 4, exact=True), 10, "the second worker to get half the partitions"
    )

    everyone = people(120)
    waves: list[list[dict[str, Any]]] = [[], [], [], []]
    for own in everyone:
        for i, body in enumerate(own):
            waves[i * 4 // len(own)].append(body)
    rng = random.Random(7)
    try:
        for wave in waves:
            rng.shuffle(wave)
            for start in range(0, len(wave), 50):
                await append(legato.db, workspace_id, 8, *wave[start : start + 50])
                await asyncio.sleep(0.02)
        await wait_until(lambda: consumed(legato), 60, "both workers to consume the log")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    total = sum(len(own) for own in everyone)
    assert first.applied > 0 and second.applied > 0
    assert first.applied + second.applied == total and first.failed + second.failed == 0
    await assert_graph_consistent(legato, total)

    for p, _own in enumerate(everyone):
        person = await legato.profiles.lookup(workspace_id, "user_id", f"u{p}")
        ids = {(i.kind, i.value) for i in person.identities}
        assert {
            ("anonymous_id", f"a{p}"),
            ("anonymous_id", f"b{p}"),
            ("anonymous_id", f"c{p}"),
            ("anonymous_id", f"d{p}"),
            ("email", f"p{p}@x.io"),
        } <= ids, p
        if p % 10 == 0:
            neighbour = await legato.profiles.lookup(workspace_id, "user_id", f"u{p + 1}")
            assert neighbour.id != person.id
            shared = await legato.profiles.lookup(workspace_id, "anonymous_id", f"s{p}")
            assert shared.id in {person.id, neighbour.id}


async def test_a_dead_workers_partitions_are_taken_over(shop: tuple[Legato, str]) -> None:
    legato, workspace_id = shop
    dead = worker(legato, "dead")
    await dead.rebalance()  # takes every partition, then never runs again (kill -9)
    assert dead.partitions == list(range(8))
    bodies = [message("track", anon=f"a{i}", at=T0 + i, event="Viewed") for i in range(40)]
    await append(legato.db, workspace_id, 8, *bodies)

    survivor = worker(legato, "survivor")
    stop = asyncio.Event()
    task = asyncio.create_task(survivor.run(stop))
    started = time.monotonic()
    try:
        await wait_until(lambda: consumed(legato), 15, "the survivor to take over")
    finally:
        stop.set()
        await task
    assert survivor.applied == 40
    assert time.monotonic() - started >= LEASE_MS / 1000 * 0.5  # it waited for the lease


async def _holds(pipeline: Pipeline, count: int, exact: bool = False) -> bool:
    held = len(pipeline.partitions)
    return held == count if exact else held >= count
