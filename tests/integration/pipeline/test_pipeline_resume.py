"""Exactly-once: a crash mid-chunk applies nothing of it, a restart applies each event once;
an event a stage refuses is recorded and the partition moves on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.app import Legato
from legato.domain.pipeline import ResolvedEvent
from legato.runtime.identity import IdentityStage
from legato.runtime.pipeline import Pipeline
from legato.runtime.profiles import ProfileStage
from legato.store.log import LogConsumer
from legato.store.tables import events, log_offsets, profiles, rejected_messages
from tests.integration.pipeline.conftest import T0, append, make_legato, message


class SimulatedCrash(BaseException):
    """The process dies: nothing after this point runs, not even `except Exception`."""


class Tripwire:
    """A stage that fails when the batch holds a given message."""

    name = "tripwire"

    def __init__(self, message_id: str, error: BaseException):
        self.message_id = message_id
        self.error = error

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        if any(item.row.message_id == self.message_id for item in batch):
            raise self.error


def pipeline_with(legato: Legato, *extra: object, owner: str, chunk_size: int) -> Pipeline:
    store = legato.profiles
    return Pipeline(
        legato.db,
        LogConsumer(legato.db, "pipeline", legato.settings.partitions),
        [IdentityStage(store, legato.clock), ProfileStage(store, legato.clock), *extra],  # type: ignore[list-item]
        legato.clock,
        owner=owner,
        chunk_size=chunk_size,
        exclusive=legato.settings.is_sqlite,
    )


@pytest.fixture
async def one_partition(db_url: str) -> AsyncIterator[tuple[Legato, str]]:
    legato = make_legato(db_url, partitions=1)
    created = await legato.workspaces.create("shop", T0)
    try:
        yield legato, created.workspace.id
    finally:
        await legato.db.dispose()


def scenario() -> list[dict[str, object]]:
    """25 events of 5 people, with anonymous history joined by identify calls mid-way."""
    bodies: list[dict[str, object]] = []
    for i in range(25):
        person = i % 5
        if 12 <= i < 17:  # each person identifies once, inside the chunk that will crash
            bodies.append(message("identify", user=f"u{person}", anon=f"a{person}", at=T0 + i))
        else:
            bodies.append(message("track", anon=f"a{person}", at=T0 + i, event="Viewed"))
    return bodies


async def totals(legato: Legato) -> tuple[int, int, int]:
    """(sum of live profiles' event_count, events with a profile, the stored offset)."""
    async with legato.db.connect() as conn:
        counted = await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(profiles.c.event_count), 0)).where(
                profiles.c.merged_into.is_(None)
            )
        )
        attributed = await conn.scalar(
            sa.select(sa.func.count()).where(events.c.profile_id.is_not(None))
        )
        offset = await conn.scalar(
            sa.select(log_offsets.c.seq).where(
                log_offsets.c.consumer == "pipeline", log_offsets.c.partition == 0
            )
        )
    return int(counted), int(attributed), int(offset or 0)


async def test_crash_mid_chunk_applies_nothing_and_restart_applies_each_event_once(
    one_partition: tuple[Legato, str],
) -> None:
    legato, workspace_id = one_partition
    bodies = scenario()
    await append(legato.db, workspace_id, 1, *bodies)
    crashing = pipeline_with(
        legato,
        Tripwire(str(bodies[14]["messageId"]), SimulatedCrash()),
        owner="first",
        chunk_size=10,
    )
    with pytest.raises(SimulatedCrash):
        await crashing.drain()
    # The first chunk (events 1-10) committed; the second rolled back whole.
    assert await totals(legato) == (10, 10, 10)

    # The dead process still holds its lease: a new one takes over once it lapses.
    restarted = pipeline_with(legato, owner="second", chunk_size=10)
    legato.clock.advance(seconds=11)  # type: ignore[attr-defined]
    assert await restarted.drain() == 15
    assert await totals(legato) == (25, 25, 25)
    assert await restarted.drain() == 0
    for person in range(5):
        profile = await legato.profiles.lookup(workspace_id, "anonymous_id", f"a{person}")
        assert profile.event_count == 5
        assert {(i.kind, i.value) for i in profile.identities} == {
            ("anonymous_id", f"a{person}"),
            ("user_id", f"u{person}"),
        }


async def test_a_refused_event_is_recorded_and_the_partition_moves_on(
    one_partition: tuple[Legato, str],
) -> None:
    legato, workspace_id = one_partition
    bodies = scenario()
    await append(legato.db, workspace_id, 1, *bodies)
    poison = str(bodies[12]["messageId"])
    pipeline = pipeline_with(
        legato, Tripwire(poison, ValueError("cannot read this")), owner="only", chunk_size=10
    )
    assert await pipeline.drain() == 25
    assert pipeline.failed == 1 and pipeline.applied == 24
    assert await totals(legato) == (24, 24, 25)
    async with legato.db.connect() as conn:
        kept = (await conn.execute(sa.select(rejected_messages))).one()
    assert kept.workspace_id == workspace_id and kept.field == "pipeline.tripwire"
    assert poison in kept.reason and "cannot read this" in kept.reason
    assert "ValueError" in kept.reason
