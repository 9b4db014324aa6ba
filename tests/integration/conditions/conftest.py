"""A fresh, migrated database per test, on SQLite and on PostgreSQL (its own database there)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from legato.store.database import Database

PG_ADMIN = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated `Database` (the segments migration included)."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'segments.db'}"
    else:
        if not _pg_reachable():
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true")
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        name = f"legato_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        db.migrate()
        yield db
    finally:
        await db.dispose()
        if name is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
