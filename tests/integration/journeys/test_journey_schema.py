"""Migration 0003 creates exactly the journey tables `legato.store.journeys` declares."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from legato.store import journeys as journey_tables
from legato.store.tables import metadata

TABLES = {
    table.name
    for table in (
        journey_tables.journeys,
        journey_tables.journey_versions,
        journey_tables.runs,
        journey_tables.timers,
        journey_tables.outbox,
        journey_tables.journey_sends,
        journey_tables.journey_rollups,
        journey_tables.run_listeners,
    )
}


def test_the_migration_matches_the_declared_tables(journey_db: str) -> None:
    url = journey_db.replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
            present = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    mine = [d for d in diff if _table_of(d) in TABLES]
    assert mine == []
    assert present >= TABLES


def _table_of(change: object) -> str | None:
    item = change[0] if isinstance(change, list) else change
    assert isinstance(item, tuple)
    for part in item[1:]:
        name = getattr(part, "name", None) if not isinstance(part, str) else part
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if isinstance(name, str) and name in TABLES:
            return name
    return None
