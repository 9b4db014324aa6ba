"""Migration 0002_segments creates exactly the tables `legato.store.segments` declares, and
goes down and up again cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from legato.store import segments
from legato.store.database import MIGRATIONS, Database, driver_urls
from legato.store.tables import metadata

TABLES = (
    segments.segments,
    segments.segment_members,
    segments.segment_rechecks,
    segments.computed_traits,
    segments.computed_trait_values,
)
MINE = {table.name for table in TABLES}


def _differences(conn: sa.Connection) -> list[object]:
    diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in diffs if any(name in repr(diff) for name in MINE)]


def _alembic(conn: sa.Connection, direction: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    getattr(command, direction)(config, revision)


async def test_the_migration_matches_the_tables(database: Database) -> None:
    engine = sa.create_engine(driver_urls(database.url)[1])
    try:
        with engine.begin() as conn:
            assert set(sa.inspect(conn).get_table_names()) >= MINE
            assert _differences(conn) == []
            _alembic(conn, "downgrade", "0001_foundation")
            assert not MINE & set(sa.inspect(conn).get_table_names())
            _alembic(conn, "upgrade", "0002_segments")
            assert _differences(conn) == []
    finally:
        engine.dispose()
