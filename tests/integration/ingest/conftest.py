"""A Legato on SQLite and PostgreSQL with a fresh workspace per test, and an HTTP client.

One database per module and backend (migrating is the slow part); tests stay apart because
each gets its own workspace, and everything ingestion stores is per workspace.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from legato.api import create_api
from legato.app import Legato
from legato.settings import Settings
from legato.store.database import Database
from legato.store.tables import events
from tests.conftest import drop_pg_database, make_pg_database


@dataclass
class Shop:
    """The workspace under test and a client on the process's API."""

    legato: Legato
    workspace_id: str
    write_key: str
    admin_key: str
    http: httpx.AsyncClient

    @property
    def basic(self) -> dict[str, str]:
        """The write key as SDKs send it: the Basic-auth username."""
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    async def message_ids(self) -> list[str]:
        """Every stored messageId of the workspace, in log order."""
        async with self.legato.db.connect() as conn:
            result = await conn.execute(
                sa.select(events.c.message_id)
                .where(events.c.workspace_id == self.workspace_id)
                .order_by(events.c.seq)
            )
            return list(result.scalars())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def ingest_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database shared by one module's tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ingest') / 'legato.db'}"
        Database(url).migrate()
        yield url
        return
    url = make_pg_database()
    try:
        Database(url).migrate()
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def shop(ingest_db: str) -> AsyncIterator[Shop]:
    """A fresh workspace on the module's database, and an HTTP client on the API."""
    settings = Settings(database_url=ingest_db, run_workers=False, max_batch_bytes=64 * 1024)
    legato = Legato(settings)
    created = await legato.workspaces.create(f"shop-{uuid.uuid4().hex[:8]}", 1)
    app = create_api(legato, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://legato.test") as http:
        yield Shop(legato, created.workspace.id, created.write_key, created.admin_key, http)
    await legato.ingest.close()
    legato.events.close()
    await legato.db.dispose()
