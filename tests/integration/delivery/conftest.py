"""A Legato on a real database (SQLite and PostgreSQL) driven by a fake clock, with real vendor
stand-ins: an aiosmtpd SMTP server and a recording HTTP server (`channels/channel_fakes`).

Events go in through real ingestion; `settle()` runs the pipeline (identity, profile, journeys),
the timer worker and the delivery worker until nothing moves — `legato serve` minus waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller

from legato.api import create_api
from legato.app import Legato
from legato.domain.durations import parse_duration_ms
from legato.domain.messages import format_instant
from legato.runtime.documents import apply_documents, parse_documents
from legato.settings import Settings
from legato.store.delivery import deliveries
from legato.store.tables import events
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import (
    MailSink,
    VendorServer,
    free_port,
)

#: 2026-01-05T09:00:00Z, a Monday (the FakeClock's default start).
T0 = 1_767_603_600_000
SECRET = "tracking-secret-for-tests-0123456789"
BASE_URL = "https://legato.example"


@dataclass
class Smtp:
    """A real SMTP server on loopback and what it received."""

    sink: MailSink
    port: int

    def mails(self) -> list[EmailMessage]:
        """Every accepted message, parsed."""
        return [
            email.message_from_bytes(m.data, policy=email.policy.default)  # type: ignore[misc]
            for m in self.sink.messages
        ]


@dataclass
class World:
    """One Legato (no background workers) with one workspace, on a fake clock."""

    legato: Legato
    workspace_id: str
    clock: FakeClock
    write_key: str = ""
    admin_key: str = ""

    def admin(self) -> httpx.AsyncClient:
        """The admin API, in process (ASGI), with the admin key."""
        app = create_api(self.legato, manage_lifecycle=False)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"authorization": f"Bearer {self.admin_key}"},
        )

    def public(self) -> httpx.AsyncClient:
        """The public and client routes, in process, with the write key as Basic auth."""
        app = create_api(self.legato, manage_lifecycle=False)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, auth=(self.write_key, "")
        )

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[str]:
        """The API on a real loopback port (streaming responses need a real server)."""
        app = create_api(self.legato, manage_lifecycle=False)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{server.config.port}"
        finally:
            server.should_exit = True
            await task

    async def send(self, *messages: dict[str, Any]) -> None:
        """Messages through real ingestion, stamped with the fake clock's time."""
        stamped = [
            {"timestamp": format_instant(self.clock.now_ms()), **message} for message in messages
        ]
        rejected = await self.legato.ingest.accept(self.workspace_id, "batch", {"batch": stamped})
        assert not rejected, rejected

    async def track(self, user: str, event: str, **properties: Any) -> None:
        await self.send({"type": "track", "userId": user, "event": event, "properties": properties})

    async def identify(self, user: str, **traits: Any) -> None:
        await self.send({"type": "identify", "userId": user, "traits": traits})

    async def apply(self, text: str, **options: Any) -> None:
        """`legato apply -f` of a YAML text."""
        await apply_documents(
            parse_documents(text),
            workspace_id=self.workspace_id,
            services=self.legato,
            options=options,
        )

    async def settle(self) -> int:
        """Run pipeline, timers and delivery until nothing moves; returns the work done."""
        total = 0
        while True:
            done = await self.legato.pipeline.drain()
            done += await self.legato.timers.drain()
            done += await self.legato.delivery.drain()
            if not done:
                return total
            total += done

    async def wait(self, duration: str) -> None:
        """Let time pass on the fake clock in steps, firing timers and due retries."""
        target = self.clock.now_ms() + parse_duration_ms(duration)
        await self.settle()
        while True:
            due = [
                d
                for d in (
                    await self.legato.runs.next_due(),
                    await self.legato.deliveries.next_due_ms(),
                )
                if d is not None
            ]
            if not due or min(due) > target:
                break
            self.clock.set(max(min(due), self.clock.now_ms()))
            await self.settle()
        self.clock.set(target)
        await self.settle()

    async def profile_of(self, user: str) -> str:
        return (await self.legato.profiles.lookup(self.workspace_id, "user_id", user)).id

    async def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery row, oldest first."""
        async with self.legato.db.connect() as conn:
            rows = await conn.execute(sa.select(deliveries).order_by(deliveries.c.id))
            return [dict(row._mapping) for row in rows]

    async def timeline(self, *names: str) -> list[dict[str, Any]]:
        """Internal events (name, properties) of the workspace, in log order."""
        query = sa.select(events.c.event, events.c.profile_id, events.c.payload).where(
            events.c.workspace_id == self.workspace_id, events.c.type == "internal"
        )
        if names:
            query = query.where(events.c.event.in_(names))
        async with self.legato.db.connect() as conn:
            rows = await conn.execute(query.order_by(events.c.seq))
            return [
                {"event": r.event, "profile_id": r.profile_id, **r.payload["properties"]}
                for r in rows
            ]


def make_legato(db_url: str, **settings: Any) -> Legato:
    """A migrated Legato without background workers, on a fake clock at T0."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "run_workers": False,
        "allow_private_webhooks": True,
        "tracking_secrets": (SECRET,),
        "public_base_url": BASE_URL,
        **settings,
    }
    legato = Legato(Settings(**values), clock=FakeClock(T0))
    legato.migrate()
    return legato


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    """A World on SQLite and on PostgreSQL."""
    legato = make_legato(db_url)
    created = await legato.workspaces.create("shop", T0)
    clock = legato.clock
    assert isinstance(clock, FakeClock)
    try:
        yield World(legato, created.workspace.id, clock, created.write_key, created.admin_key)
    finally:
        await legato.stop()


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """aiosmtpd on a loopback port."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp(sink, port)
    controller.stop()


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    """A recording HTTP server answering in vendor shapes (see channel_fakes)."""
    server = VendorServer().start()
    yield server
    server.stop()
