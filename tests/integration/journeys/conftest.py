"""A Legato on a real database (SQLite and PostgreSQL) driven by a fake clock, for journeys.

Events go in through real ingestion, the pipeline runs the identity, profile and journey
stages, and `settle()` runs the pipeline, the timer worker and the outbox recorder until
nothing is left to do — the way `legato serve` would, minus the waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from legato.app import Legato
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT
from legato.domain.messages import format_instant
from legato.ids import new_id
from legato.settings import Settings
from legato.store.journeys import outbox, runs, timers
from legato.store.log import MEMBER_PARTITION
from legato.store.runs import InternalEvent
from legato.store.segments import segment_members
from legato.store.tables import log_offsets
from legato.testing import FakeClock
from tests.conftest import drop_pg_database, make_pg_database

#: 2026-01-05T09:00:00Z, a Monday (the FakeClock's default start).
T0 = 1_767_603_600_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


@dataclass
class World:
    """One Legato (no background workers) with one workspace, on a fake clock."""

    legato: Legato
    workspace_id: str
    clock: FakeClock

    # -- input ---------------------------------------------------------------------------------

    async def send(self, *messages: dict[str, Any]) -> None:
        """Messages through real ingestion, stamped with the fake clock's time."""
        stamped = [
            {"timestamp": format_instant(self.clock.now_ms()), **message} for message in messages
        ]
        rejected = await self.legato.ingest.accept(self.workspace_id, "batch", {"batch": stamped})
        assert not rejected, rejected

    async def track(self, user: str, event: str, **properties: Any) -> None:
        """A `track` call of `user`."""
        await self.send({"type": "track", "userId": user, "event": event, "properties": properties})

    async def identify(self, user: str, **traits: Any) -> None:
        """An `identify` call of `user`."""
        await self.send({"type": "identify", "userId": user, "traits": traits})

    async def segment_change(self, user: str, segment: str, *, entered: bool = True) -> None:
        """What the segment stage logs when `user` enters (or leaves) `segment`."""
        await self.settle()
        profile = await self.profile_of(user)
        name = SEGMENT_ENTERED_EVENT if entered else SEGMENT_EXITED_EVENT
        event = InternalEvent(
            self.workspace_id, new_id(), name, profile, user, None, self.clock.now_ms(),
            {"segment": segment},
        )  # fmt: skip
        async with self.legato.db.transaction() as conn:
            await self.legato.runs.append_internal(conn, [event])
            if entered:
                await conn.execute(
                    segment_members.insert().values(
                        workspace_id=self.workspace_id,
                        segment_key=segment,
                        profile_id=profile,
                        entered_ms=self.clock.now_ms(),
                    )
                )

    async def define_segment(self, key: str) -> None:
        """A (static) segment of the workspace, so that journeys may name it."""
        await self.legato.segments.put_segment(
            self.workspace_id, {"kind": "Segment", "key": key, "static": True}
        )

    async def publish(self, document: dict[str, Any] | str) -> int:
        """Save a journey's draft and publish it; returns the version."""
        saved = await self.legato.journeys.save_draft(self.workspace_id, document)
        published = await self.legato.journeys.publish(self.workspace_id, saved.key)
        return int(published["version"])

    # -- running -------------------------------------------------------------------------------

    async def settle(self) -> int:
        """Run the pipeline, timers and recorder until nothing moves; returns the work done."""
        total = 0
        while True:
            done = await self.legato.pipeline.drain()
            done += await self.legato.timers.drain()
            done += await self.legato.outbox_recorder.drain()
            done += await self.legato.webhooks.drain()
            if not done:
                return total
            total += done

    async def wait(self, duration: str) -> None:
        """Let time pass on the fake clock in small steps, firing what comes due on the way."""
        target = self.clock.now_ms() + _ms(duration)
        await self.settle()
        while True:
            due = await self.legato.runs.next_due()
            if due is None or due > target:
                break
            self.clock.set(max(due, self.clock.now_ms()))
            await self.settle()
        self.clock.set(target)
        await self.settle()

    # -- output --------------------------------------------------------------------------------

    async def profile_of(self, user: str) -> str:
        """The profile id of a user id (once the pipeline has caught up)."""
        await self.legato.pipeline.drain()
        return (await self.legato.profiles.lookup(self.workspace_id, "user_id", user)).id

    async def sends(self, journey: str | None = None) -> list[dict[str, Any]]:
        """Recorded sends, oldest first."""
        return await self.legato.outbox.sends(self.workspace_id, journey)

    async def sent(self, journey: str | None = None) -> list[tuple[str, str, int]]:
        """(user id, template, requested at) of every recorded send, in order."""
        return [
            (
                row["payload"].get("user_id") or row["profile_id"],
                row["template"],
                row["requested_ms"],
            )
            for row in await self.sends(journey)
        ]

    async def runs(self, journey: str) -> list[dict[str, Any]]:
        """The runs of a journey, oldest first."""
        async with self.legato.db.connect() as conn:
            rows = await conn.execute(
                sa.select(runs)
                .where(runs.c.workspace_id == self.workspace_id, runs.c.journey_key == journey)
                .order_by(runs.c.run_id)
            )
            return [dict(row._mapping) for row in rows]

    async def stats(self, journey: str) -> dict[str, Any]:
        """The journey's stats."""
        return await self.legato.journeys.stats(self.workspace_id, journey)


def _ms(duration: str) -> int:
    from legato.domain.durations import parse_duration_ms

    return parse_duration_ms(duration)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def journey_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per test module and dialect (each test gets a new workspace)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('journeys') / 'legato.db'}"
        Legato(Settings(database_url=url, run_workers=False)).migrate()
        yield url
        return
    url = make_pg_database()
    try:
        Legato(Settings(database_url=url, run_workers=False)).migrate()
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def world(journey_db: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """A World in a workspace of its own at T0 (indirect param: extra settings)."""
    settings = Settings(database_url=journey_db, run_workers=False, **getattr(request, "param", {}))
    legato = Legato(settings, clock=FakeClock(T0))
    # Earlier tests of the module ran on clocks of their own: their timers, requests and
    # pipeline leases must not outlive them on this one.
    async with legato.db.transaction() as conn:
        await conn.execute(timers.delete())
        await conn.execute(outbox.delete().where(outbox.c.status != "done"))
        await conn.execute(log_offsets.delete().where(log_offsets.c.partition == MEMBER_PARTITION))
        await conn.execute(log_offsets.update().values(owner=None, lease_until_ms=None))
    await legato.pipeline.drain()
    created = await legato.workspaces.create(f"shop-{uuid.uuid4().hex[:8]}", T0)
    clock = legato.clock
    assert isinstance(clock, FakeClock)
    try:
        yield World(legato, created.workspace.id, clock)
    finally:
        await legato.ingest.close()
        await legato.webhooks.aclose()
        await legato.db.dispose()
