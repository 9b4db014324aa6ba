"""Merges stay correct while ingestion and the pipeline run at the same time, on SQLite (one
engine, one worker) and PostgreSQL (two workers splitting the partitions): messages go through
the real ingestion service (group commit) from several senders while the workers consume."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
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
from legato.store.tables import profile_merges, profiles
from tests.integration.pipeline.graph_checks import assert_graph_consistent

PEOPLE = 80
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[tuple[Legato, str]]:
    legato = Legato(
        Settings(database_url=db_url, run_workers=False, partitions=8), clock=SystemClock()
    )
    legato.migrate()
    created = await legato.workspaces.create("shop", legato.clock.now_ms())
    try:
        yield legato, created.workspace.id
    finally:
        await legato.ingest.close()
        await legato.db.dispose()


def story(p: int) -> list[dict[str, Any]]:
    """One person's messages, in order: two devices, an email seen anonymously, an alias.

    Every tenth person shares a device with the next person: two users, never merged.
    """

    def msg(n: int, kind: str, **fields: Any) -> dict[str, Any]:
        at = datetime.fromtimestamp(T0 + p + n, UTC).isoformat().replace("+00:00", "Z")
        return {"type": kind, "messageId": f"p{p}-{n}", "timestamp": at, **fields}

    own = [
        msg(0, "track", anonymousId=f"a{p}", event="Viewed"),
        msg(1, "track", anonymousId=f"b{p}", event="Viewed"),
        msg(2, "identify", userId=f"u{p}", anonymousId=f"a{p}", traits={"email": f"p{p}@x.io"}),
        msg(3, "identify", userId=f"u{p}", anonymousId=f"b{p}", traits={"plan": "pro"}),
        msg(4, "track", anonymousId=f"c{p}", event="Opened",
            context={"traits": {"email": f"P{p}@X.io"}}),
        msg(5, "alias", userId=f"u{p}", previousId=f"d{p}"),
        msg(6, "track", anonymousId=f"d{p}", event="Viewed"),
    ]  # fmt: skip
    if p % 10 == 0:
        own.append(msg(7, "identify", userId=f"u{p}", anonymousId=f"s{p}"))
        own.append(msg(8, "identify", userId=f"u{p + 1}", anonymousId=f"s{p}"))
    return own


def worker(legato: Legato, owner: str, exclusive: bool) -> Pipeline:
    store = legato.profiles
    return Pipeline(
        legato.db,
        LogConsumer(legato.db, "pipeline", legato.settings.partitions, lease_ms=3000),
        [IdentityStage(store, legato.clock), ProfileStage(store, legato.clock)],
        legato.clock,
        owner=owner,
        chunk_size=25,
        exclusive=exclusive,
    )


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_merges_are_correct_while_ingestion_runs(shop: tuple[Legato, str]) -> None:
    legato, workspace_id = shop
    everyone = [story(p) for p in range(PEOPLE)]
    total = sum(len(own) for own in everyone)
    # Each person's messages in order across waves; inside a wave, traffic is shuffled.
    waves: list[list[dict[str, Any]]] = [[], [], []]
    for own in everyone:
        for i, body in enumerate(own):
            waves[i * len(waves) // len(own)].append(body)
    rng = random.Random(11)

    async def send(wave: list[dict[str, Any]], senders: int = 4) -> None:
        rng.shuffle(wave)
        parts = [wave[i::senders] for i in range(senders)]

        async def sender(part: list[dict[str, Any]]) -> None:
            for start in range(0, len(part), 10):
                rejected = await legato.ingest.accept(
                    workspace_id, "batch", {"batch": part[start : start + 10]}
                )
                assert rejected == []
                await asyncio.sleep(0.01)

        await asyncio.gather(*(sender(part) for part in parts))

    sqlite = legato.settings.is_sqlite
    workers = [worker(legato, f"w{i}", sqlite) for i in range(1 if sqlite else 2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]

    async def applied() -> bool:
        return sum(w.applied for w in workers) > 0

    async def consumed() -> bool:
        return sum(w.applied for w in workers) >= total

    async def split() -> bool:
        return all(len(w.partitions) == 8 // len(workers) for w in workers)

    try:
        await wait_until(split, 30, "the workers to share the partitions")
        await send(waves[0])
        # The workers are consuming when the next waves arrive: ingestion and merges overlap.
        await wait_until(applied, 30, "the pipeline to start applying")
        for wave in waves[1:]:
            await send(wave)
        await wait_until(consumed, 120, "the workers to consume the log")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert sum(w.applied for w in workers) == total and sum(w.failed for w in workers) == 0
    if not sqlite:
        assert all(w.applied > 0 for w in workers), "both workers took part"
    await assert_graph_consistent(legato, total)
    async with legato.db.connect() as conn:
        merged_rows = await conn.execute(
            sa.select(profiles.c.id).where(profiles.c.merged_into.is_not(None))
        )
        merged_away = set(merged_rows.scalars())
        recorded = set((await conn.execute(sa.select(profile_merges.c.from_profile_id))).scalars())
    assert merged_away and merged_away == recorded, "each merged-away profile has its record"

    for p in range(PEOPLE):
        person = await legato.profiles.lookup(workspace_id, "user_id", f"u{p}")
        ids = {(i.kind, i.value) for i in person.identities}
        expected = {("anonymous_id", f"{d}{p}") for d in "abcd"} | {("email", f"p{p}@x.io")}
        assert expected <= ids, p
        assert person.traits.get("plan") == "pro", p
        if p % 10 == 0:
            neighbour = await legato.profiles.lookup(workspace_id, "user_id", f"u{p + 1}")
            assert neighbour.id != person.id
            shared = await legato.profiles.lookup(workspace_id, "anonymous_id", f"s{p}")
            assert shared.id in {person.id, neighbour.id}
        # An event with a userId lands on that user: the shared device's second identify
        # (in the story of person p, 10 | p) belongs to person p + 1.
        expected_count = len(everyone[p]) - (p % 10 == 0) + (p % 10 == 1)
        assert person.event_count == expected_count, p
