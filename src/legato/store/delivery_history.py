"""Deliveries as people and providers look back at them: one message, the list and counts of a
workspace (failures and dead letters included), replaying them, and feedback about sent
messages (opens, clicks, provider statuses). Decides nothing: `legato.runtime.messages` and
`legato.runtime.outcomes` do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.errors import InvalidInput, NotFound
from legato.store.database import Database, slices
from legato.store.delivery_rows import REPLAYABLE, STATUSES, DeliveryRow, deliveries, delivery_row


class DeliveryHistory:
    """Reads and changes of the deliveries table for the admin API and feedback."""

    def __init__(self, db: Database):
        self.db = db

    async def get(self, workspace_id: str, delivery_id: str) -> DeliveryRow:
        """One delivery; NotFound if the workspace has no such message."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries).where(
                        deliveries.c.workspace_id == workspace_id, deliveries.c.id == delivery_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no message {delivery_id!r} in this workspace", field="id")
        return delivery_row(row)

    async def get_any(self, delivery_id: str) -> DeliveryRow | None:
        """A delivery by id whatever its workspace (tracking links carry the workspace)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
            ).first()
        return None if row is None else delivery_row(row)

    async def by_provider_message(self, provider_message_id: str) -> DeliveryRow | None:
        """The delivery a provider knows under this message id (status callbacks)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries)
                    .where(deliveries.c.provider_message_id == provider_message_id)
                    .order_by(deliveries.c.id.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else delivery_row(row)

    async def search(
        self,
        workspace_id: str,
        *,
        statuses: Sequence[str] = (),
        channel: str | None = None,
        profile_id: str | None = None,
        journey_key: str | None = None,
        template: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> tuple[list[DeliveryRow], str | None]:
        """Deliveries newest first, filtered; returns the page and the `before` of the next."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise InvalidInput(
                f"unknown status {unknown[0]!r} (known: {', '.join(STATUSES)})", field="status"
            )
        query = (
            sa.select(deliveries)
            .where(deliveries.c.workspace_id == workspace_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit + 1)
        )
        if statuses:
            query = query.where(deliveries.c.status.in_(list(statuses)))
        for column, value in (
            (deliveries.c.channel, channel),
            (deliveries.c.profile_id, profile_id),
            (deliveries.c.journey_key, journey_key),
            (deliveries.c.template, template),
        ):
            if value is not None:
                query = query.where(column == value)
        if before is not None:
            query = query.where(deliveries.c.id < before)
        async with self.db.connect() as conn:
            rows = [delivery_row(r) for r in await conn.execute(query)]
        page = rows[:limit]
        return page, (page[-1].id if len(rows) > limit else None)

    async def counts(self, workspace_id: str) -> dict[str, int]:
        """How many deliveries a workspace has in each status."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.workspace_id == workspace_id)
                .group_by(deliveries.c.status)
            )
            return {row[0]: int(row[1]) for row in rows}

    async def requeue(
        self, workspace_id: str, ids: Sequence[str] | None, now_ms: int, *, limit: int = 10_000
    ) -> list[str]:
        """Put failed or dead deliveries back in the queue (all of them when `ids` is None);
        returns the ids requeued (a delivery in another status is left alone)."""
        async with self.db.transaction() as conn:
            query = (
                sa.select(deliveries.c.id)
                .where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.status.in_(REPLAYABLE),
                )
                .order_by(deliveries.c.id)
                .limit(limit)
            )
            if ids is not None:
                query = query.where(deliveries.c.id.in_(list(ids)))
            chosen = list((await conn.execute(query)).scalars())
            for part in slices(chosen):
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(part), deliveries.c.status.in_(REPLAYABLE))
                    .values(
                        status="queued",
                        attempts=0,
                        next_attempt_ms=now_ms,
                        reason=None,
                        detail=None,
                        claim=None,
                        lease_until_ms=None,
                        updated_ms=now_ms,
                    )
                )
        return chosen

    async def mark(
        self,
        conn: AsyncConnection,
        delivery_id: str,
        *,
        status: str | None = None,
        first: Mapping[str, int] | None = None,
        now_ms: int,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Record feedback about a sent message: a new status and/or first-time instants
        (`opened_ms`, `clicked_ms`, `delivered_ms` are set only if still empty)."""
        update: dict[str, Any] = {"updated_ms": now_ms, **(values or {})}
        if status is not None:
            update["status"] = status
        for column, at_ms in (first or {}).items():
            update[column] = sa.func.coalesce(deliveries.c[column], at_ms)
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(**update)
        )
