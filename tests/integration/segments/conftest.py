"""A Legato on a real database (SQLite and PostgreSQL) on a fake clock, for segments.

Events go through real ingestion and the whole pipeline (identity, profile, computed traits,
segments, journeys); `settle()` runs the pipeline and the re-check worker until nothing moves.
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
from legato.settings import Settings
from legato.store.journeys import timers
from legato.store.log import MEMBER_PARTITION
from legato.store.segments import computed_trait_values, segment_rechecks
from legato.store.tables import events, log_offsets
from legato.testing import FakeClock
from tests.conftest import drop_pg_database, make_pg_database

#: 2026-01-05T09:00:00Z (the FakeClock's default start).
T0 = 1_767_603_600_000
HOUR = 3_600_000
DAY = 86_400_000


@dataclass
class World:
    """One Legato (no background workers) with one workspace, on a fake clock."""

    legato: Legato
    workspace_id: str
    clock: FakeClock
    admin_key: str = ""

    async def send(self, *messages: dict[str, Any]) -> None:
        """Messages through real ingestion, stamped with the clock unless they say otherwise."""
        stamped = [
            {"timestamp": format_instant(self.clock.now_ms()), **message} for message in messages
        ]
        rejected = await self.legato.ingest.accept(self.workspace_id, "batch", {"batch": stamped})
        assert not rejected, rejected

    async def track(self, user: str, event: str, at_ms: int | None = None, **props: Any) -> None:
        """A `track` call of `user` (at the clock's time unless `at_ms`)."""
        message: dict[str, Any] = {
            "type": "track",
            "userId": user,
            "event": event,
            "properties": props,
        }
        if at_ms is not None:
            message["timestamp"] = format_instant(at_ms)
        await self.send(message)

    async def identify(self, user: str, **traits: Any) -> None:
        """An `identify` call of `user`."""
        await self.send({"type": "identify", "userId": user, "traits": traits})

    async def settle(self) -> int:
        """Run the pipeline and the re-check worker until nothing moves."""
        total = 0
        while True:
            done = await self.legato.pipeline.drain()
            done += await self.legato.segment_rechecks.drain()
            done += await self.legato.timers.drain()
            if not done:
                return total
            total += done

    async def advance_to(self, moment: int) -> None:
        """Move the clock to `moment`, firing every re-check due on the way at its due time."""
        await self.settle()
        while True:
            async with self.legato.db.connect() as conn:
                due = await self.legato.memberships.next_due(conn)
            if due is None or due > moment:
                break
            self.clock.set(max(due, self.clock.now_ms()))
            await self.settle()
        self.clock.set(moment)
        await self.settle()

    async def profile_of(self, user: str) -> str:
        """The profile id of a user id."""
        await self.legato.pipeline.drain()
        return (await self.legato.profiles.lookup(self.workspace_id, "user_id", user)).id

    async def members(self, key: str) -> set[str]:
        """User ids of a segment's members."""
        page = await self.legato.segments.members(self.workspace_id, key, limit=1000)
        users: set[str] = set()
        for member in page.members:
            profile = await self.legato.profiles.get(self.workspace_id, member.profile_id)
            users.update(i.value for i in profile.identities if i.kind == "user_id")
        return users

    async def segment_events(self) -> list[tuple[str, str, str, int]]:
        """(event, segment, profile, timestamp) of every logged Segment Entered/Exited."""
        async with self.legato.db.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    events.c.event, events.c.payload, events.c.profile_id, events.c.timestamp_ms
                )
                .where(
                    events.c.workspace_id == self.workspace_id,
                    events.c.event.in_([SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT]),
                )
                .order_by(events.c.seq)
            )
            return [
                (str(e), str(p["properties"]["segment"]), str(pid), int(t)) for e, p, pid, t in rows
            ]

    async def apply(self, text: str) -> list[Any]:
        """`legato apply` of a YAML text."""
        from legato.runtime.documents import apply_documents, parse_documents

        return await apply_documents(
            parse_documents(text), workspace_id=self.workspace_id, services=self.legato
        )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def segments_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per test module and dialect (each test gets a new workspace)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('segments') / 'legato.db'}"
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
async def world(segments_db: str) -> AsyncIterator[World]:
    """A World in a workspace of its own at T0."""
    legato = Legato(Settings(database_url=segments_db, run_workers=False), clock=FakeClock(T0))
    # Earlier tests of the module ran on clocks of their own: their due rows must not fire here.
    async with legato.db.transaction() as conn:
        await conn.execute(timers.delete())
        await conn.execute(segment_rechecks.delete())
        await conn.execute(computed_trait_values.update().values(due_ms=None))
        await conn.execute(log_offsets.delete().where(log_offsets.c.partition == MEMBER_PARTITION))
        await conn.execute(log_offsets.update().values(owner=None, lease_until_ms=None))
    await legato.pipeline.drain()
    created = await legato.workspaces.create(f"shop-{uuid.uuid4().hex[:8]}", T0)
    clock = legato.clock
    assert isinstance(clock, FakeClock)
    try:
        yield World(legato, created.workspace.id, clock, created.admin_key)
    finally:
        await legato.ingest.close()
        await legato.db.dispose()
