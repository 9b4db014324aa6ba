"""Statements the pipeline hands to the database driver itself behave as SQLAlchemy's would:
they belong to the connection's transaction, and driver errors arrive as SQLAlchemy errors
that `classify_failure` sorts the usual way."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from legato.store.database import Sql, driver_rows, driver_write
from legato.store.log import classify_failure
from legato.store.tables import profile_groups

from .conftest import make_legato

_JOIN = Sql.same(
    "INSERT INTO profile_groups (workspace_id, profile_id, group_id, joined_ms) VALUES (?, ?, ?, ?)"
)
_COUNT = Sql.same("SELECT count(*) FROM profile_groups WHERE workspace_id = ?")


async def test_driver_statements_commit_and_roll_back_with_the_transaction(db_url: str) -> None:
    legato = make_legato(db_url)
    try:
        with pytest.raises(RuntimeError):
            async with legato.db.transaction() as conn:
                await driver_write(
                    conn, _JOIN, [("w", "p1", "g", 1), ("w", "p2", "g", 1)], many=True
                )
                assert await driver_rows(conn, _COUNT, ("w",)) == [(2,)]
                raise RuntimeError("crash before commit")
        async with legato.db.transaction() as conn:
            assert await driver_rows(conn, _COUNT, ("w",)) == [(0,)]
            assert await driver_write(conn, _JOIN, ("w", "p1", "g", 1)) == 1
        async with legato.db.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(profile_groups)) == 1
    finally:
        await legato.db.dispose()


async def test_driver_errors_arrive_as_sqlalchemy_errors(db_url: str) -> None:
    legato = make_legato(db_url)
    try:
        with pytest.raises(sa.exc.IntegrityError) as caught:
            async with legato.db.transaction() as conn:
                await driver_write(conn, _JOIN, ("w", "p1", "g", 1))
                await driver_write(conn, _JOIN, ("w", "p1", "g", 2))  # same key
        assert isinstance(caught.value, sa.exc.DBAPIError)
        # A duplicate key is another worker's insert on PostgreSQL (retry), bad data on SQLite.
        expected = "transient" if legato.db.dialect == "postgresql" else "event"
        assert classify_failure(caught.value) == expected
        # What SQLAlchemy raises for it: OperationalError on SQLite, ProgrammingError on psycopg.
        with pytest.raises((sa.exc.OperationalError, sa.exc.ProgrammingError)):
            async with legato.db.connect() as conn:
                await driver_rows(conn, Sql.same("SELECT nothing FROM nowhere"), ())
    finally:
        await legato.db.dispose()
