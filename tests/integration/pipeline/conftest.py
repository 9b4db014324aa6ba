"""A Legato on a real database with one workspace, and a way to put events in its log.

Events are inserted into the `events` table directly, as the ingestion writer stores them
(normalised Segment messages, partitioned by userId-else-anonymousId), so these tests need
nothing but the pipeline.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from legato.app import Legato
from legato.domain.messages import partition_for
from legato.domain.profiles import Profile
from legato.settings import Settings
from legato.store.database import Database
from legato.store.tables import events
from legato.testing import FakeClock

#: 2026-01-05T09:00:00Z, the FakeClock's default start.
T0 = 1_767_603_600_000
_ids = itertools.count(1)


def message(
    type_: str,
    *,
    user: str | None = None,
    anon: str | None = None,
    at: int = T0,
    workspace_id: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """A normalised message: `type`, ids, a messageId, `timestamp_ms`, and Segment fields."""
    body: dict[str, Any] = {"type": type_, "messageId": f"m-{next(_ids)}", "timestamp_ms": at}
    if user is not None:
        body["userId"] = user
    if anon is not None:
        body["anonymousId"] = anon
    body.update(fields)
    if workspace_id:
        body["workspace_id"] = workspace_id
    return body


def row_of(body: dict[str, Any], workspace_id: str, partitions: int) -> dict[str, Any]:
    """The `events` row the ingestion writer would store for `body`."""
    payload = {k: v for k, v in body.items() if k not in {"timestamp_ms", "workspace_id"}}
    key = body.get("userId") or body.get("anonymousId") or ""
    kind = body["type"]
    name = body.get("event") if kind == "track" else body.get("name")
    return {
        "workspace_id": body.get("workspace_id", workspace_id),
        "message_id": body["messageId"],
        "partition": partition_for(key, partitions),
        "type": kind,
        "event": name if kind in {"track", "page", "screen"} else None,
        "user_id": body.get("userId"),
        "anonymous_id": body.get("anonymousId"),
        "timestamp_ms": body["timestamp_ms"],
        "received_ms": body["timestamp_ms"],
        "payload": payload,
    }


async def append(db: Database, workspace_id: str, partitions: int, *bodies: dict[str, Any]) -> None:
    """Append messages to the log, as ingestion would."""
    async with db.transaction() as conn:
        await conn.execute(events.insert(), [row_of(b, workspace_id, partitions) for b in bodies])


@dataclass
class World:
    """One Legato (no background workers) with a workspace, on SQLite or PostgreSQL."""

    legato: Legato
    workspace_id: str
    clock: FakeClock
    admin_key: str
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, *bodies: dict[str, Any]) -> None:
        """Append messages to the log."""
        self.sent.extend(bodies)
        await append(self.legato.db, self.workspace_id, self.legato.settings.partitions, *bodies)

    async def drain(self) -> int:
        """Run the pipeline until the log is consumed."""
        return await self.legato.pipeline.drain()

    async def lookup(self, kind: str, value: str) -> Profile:
        """The profile an identifier points at."""
        return await self.legato.profiles.lookup(self.workspace_id, kind, value)

    async def live_profiles(self) -> list[Profile]:
        """Every live profile of the workspace."""
        found: list[Profile] = []
        cursor = None
        while True:
            page = await self.legato.profiles.find(self.workspace_id, limit=500, cursor=cursor)
            found.extend(page.profiles)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def event_profiles(self) -> dict[str, str | None]:
        """message id → events.profile_id."""
        async with self.legato.db.connect() as conn:
            rows = await conn.execute(sa.select(events.c.message_id, events.c.profile_id))
            return {m: p for m, p in rows}


def make_legato(db_url: str, **settings: Any) -> Legato:
    """A migrated Legato without background workers on a fake clock."""
    legato = Legato(
        Settings(database_url=db_url, run_workers=False, **settings), clock=FakeClock(T0)
    )
    legato.migrate()
    return legato


@pytest.fixture
async def world(db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """A Legato with one workspace on SQLite and on PostgreSQL (indirect param: settings)."""
    legato = make_legato(db_url, **getattr(request, "param", {}))
    created = await legato.workspaces.create("shop", T0)
    clock = legato.clock
    assert isinstance(clock, FakeClock)
    try:
        yield World(legato, created.workspace.id, clock, created.admin_key)
    finally:
        await legato.db.dispose()
