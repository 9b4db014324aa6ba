"""Computed-trait values in SQL: stored values with their aggregator states, the moments
windows change them (claimed when due), and the events a backfill folds.

Part of `MembershipStore` (a mixin over its `db`). Never computes an aggregate itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.store.database import Database, insert_for, slices
from legato.store.segments import computed_trait_values
from legato.store.tables import events


def value_text() -> sa.ColumnElement[str]:
    """A computed value as JSON text: SQLite gives a column declared JSON numeric affinity,
    so a stored `3` reads back as an integer that the JSON type would fail to decode."""
    return sa.cast(computed_trait_values.c.value, sa.Text).label("value")


def decoded(text: str | None) -> Any:
    """The JSON value `value_text` read (None for SQL NULL)."""
    return None if text is None else orjson.loads(text)


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One computed trait's stored value and aggregator state for one profile."""

    key: str
    profile_id: str
    value: Any
    state: dict[str, Any]
    due_ms: int | None


class ComputedValueQueries:
    """SQL for `computed_trait_values` (and the log reads of computed-trait backfills)."""

    db: Database

    async def values(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        keys: Iterable[str],
        profile_ids: Iterable[str],
    ) -> dict[tuple[str, str], ValueRow]:
        """Stored values and states of these traits for these people, by (key, profile)."""
        keys = sorted(set(keys))
        found: dict[tuple[str, str], ValueRow] = {}
        if not keys:
            return found
        for part in slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(
                    computed_trait_values.c.key,
                    computed_trait_values.c.profile_id,
                    value_text(),
                    computed_trait_values.c.state,
                    computed_trait_values.c.due_ms,
                ).where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.key.in_(keys),
                    computed_trait_values.c.profile_id.in_(part),
                )
            )
            for key, profile_id, value, state, due in rows:
                found[(key, profile_id)] = ValueRow(
                    key, profile_id, decoded(value), dict(state), due
                )
        return found

    async def write_values(
        self, conn: AsyncConnection, workspace_id: str, rows: Sequence[ValueRow], now_ms: int
    ) -> None:
        """Upsert computed-trait values with their states and due moments."""
        if not rows:
            return
        statement = insert_for(conn, computed_trait_values)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["workspace_id", "key", "profile_id"],
                set_={
                    "value": statement.excluded.value,
                    "state": statement.excluded.state,
                    "due_ms": statement.excluded.due_ms,
                    "updated_ms": statement.excluded.updated_ms,
                },
            ),
            [
                {
                    "workspace_id": workspace_id,
                    "key": row.key,
                    "profile_id": row.profile_id,
                    # JSON null must be stored as JSON, not SQL NULL (the column is NOT NULL).
                    "value": sa.JSON.NULL if row.value is None else row.value,
                    "state": row.state,
                    "due_ms": row.due_ms,
                    "updated_ms": now_ms,
                }
                for row in rows
            ],
        )

    async def delete_values(self, conn: AsyncConnection, workspace_id: str, key: str) -> None:
        """Forget every value of a computed trait (before it is computed again)."""
        await conn.execute(
            computed_trait_values.delete().where(
                computed_trait_values.c.workspace_id == workspace_id,
                computed_trait_values.c.key == key,
            )
        )

    async def claim_due_values(
        self, conn: AsyncConnection, now_ms: int, limit: int
    ) -> list[tuple[str, ValueRow]]:
        """Computed-trait values whose window changes them by now: (workspace, row)."""
        query = (
            sa.select(
                computed_trait_values.c.workspace_id,
                computed_trait_values.c.key,
                computed_trait_values.c.profile_id,
                value_text(),
                computed_trait_values.c.state,
                computed_trait_values.c.due_ms,
            )
            .where(computed_trait_values.c.due_ms <= now_ms)
            .order_by(computed_trait_values.c.due_ms)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [
            (str(ws), ValueRow(key, profile_id, decoded(value), dict(state), due))
            for ws, key, profile_id, value, state, due in await conn.execute(query)
        ]

    async def trait_events(
        self, workspace_id: str, name: str, *, page: int = 5_000
    ) -> AsyncGenerator[list[tuple[str, int, int, dict[str, Any]]], None]:
        """(profile, seq, timestamp_ms, properties) of every event of `name` with a profile,
        by profile then log order, a page at a time (computed-trait backfills).

        One query streamed through a cursor: the database sorts the events once, where a
        page per query sorted them all again for every page. Close the iterator when done
        early (`contextlib.aclosing`): it holds a connection.
        """
        query = (
            sa.select(
                events.c.profile_id,
                events.c.seq,
                events.c.timestamp_ms,
                events.c.payload["properties"].label("properties"),
            )
            .where(
                events.c.workspace_id == workspace_id,
                events.c.event == name,
                events.c.profile_id.is_not(None),
            )
            .order_by(events.c.profile_id, events.c.seq)
        )
        async with self.db.connect() as conn:
            result = await conn.stream(query)
            async for part in result.partitions(page):
                yield [
                    (str(p), int(s), int(t), props if isinstance(props, dict) else {})
                    for p, s, t, props in part
                ]

    async def event_total(self, conn: AsyncConnection, workspace_id: str, name: str) -> int:
        """How many events of `name` the log holds (a computed-trait backfill's total)."""
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).where(
                        events.c.workspace_id == workspace_id,
                        events.c.event == name,
                        events.c.profile_id.is_not(None),
                    )
                )
            ).scalar_one()
        )
