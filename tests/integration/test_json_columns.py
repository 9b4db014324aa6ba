"""JSON columns give back what was stored, on SQLite and PostgreSQL, whatever its JSON type."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from legato.store.database import Database
from legato.store.segments import computed_trait_values

# SQLite gives a column declared JSON numeric affinity: bare numbers are stored as numbers.
VALUES: list[Any] = [55, -3, 2.5, 0, "55", "Shoes > Sneakers", True, None, [1, "a"], {"n": 1}]


@pytest.fixture
async def db(db_url: str):
    database = Database(db_url)
    database.migrate()
    yield database
    await database.dispose()


async def test_every_json_value_reads_back_as_stored(db: Database) -> None:
    rows = [
        {
            "workspace_id": "w" * 26,
            "key": f"trait_{i}",
            "profile_id": "p" * 26,
            "value": value,
            "state": {},
            "due_ms": None,
            "updated_ms": 0,
        }
        for i, value in enumerate(VALUES)
    ]
    async with db.transaction() as conn:
        await conn.execute(computed_trait_values.insert(), rows)
    query = sa.select(computed_trait_values.c.key, computed_trait_values.c.value)
    async with db.connect() as conn:
        read = {key: value for key, value in await conn.execute(query)}
    assert [read[f"trait_{i}"] for i in range(len(VALUES))] == VALUES
