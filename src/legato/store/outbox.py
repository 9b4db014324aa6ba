"""The journey outbox in SQL: claiming requests in batches, finishing them, and the record of
sends the channel-independent recorder keeps until the delivery worker takes over.

Rows are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share them; a
claim that works outside the transaction (a webhook call) leases its rows, which come back when
the lease lapses. Decides nothing about what to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.store.database import Database
from legato.store.journeys import (
    journey_sends,
    outbox,
)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An outbox row claimed by a worker."""

    id: str
    idempotency_key: str
    workspace_id: str
    kind: str
    run_id: str
    journey_key: str
    version: int
    node_id: str
    profile_id: str
    payload: dict[str, Any]
    attempts: int
    created_ms: int


class OutboxStore:
    """Claims and finishes outbox rows; records sends."""

    def __init__(self, db: Database):
        self.db = db

    async def claim_outbox(
        self,
        conn: AsyncConnection,
        kind: str,
        now_ms: int,
        limit: int,
        *,
        status: str,
        lease_ms: int = 0,
    ) -> list[OutboxItem]:
        """Claim up to `limit` available outbox rows of `kind`, oldest first.

        The claimed rows take `status` ("done" for the recorder, "inflight" for callers that
        work outside the transaction; these come back after `lease_ms` unless finished).
        """
        ready = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.kind == kind,
                outbox.c.status.in_(("pending", "inflight")),
                outbox.c.available_ms <= now_ms,
            )
            .order_by(outbox.c.available_ms, outbox.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            ready = ready.with_for_update(skip_locked=True)
        statement = (
            outbox.update()
            .where(outbox.c.id.in_(ready))
            .values(
                status=status,
                attempts=outbox.c.attempts + 1,
                available_ms=now_ms + lease_ms,
                updated_ms=now_ms,
            )
            .returning(*outbox.c)
        )
        rows = (await conn.execute(statement)).all()
        items = [
            OutboxItem(
                row.id,
                row.idempotency_key,
                row.workspace_id,
                row.kind,
                row.run_id,
                row.journey_key,
                row.version,
                row.node_id,
                row.profile_id,
                dict(row.payload),
                row.attempts,
                row.created_ms,
            )
            for row in rows
        ]
        items.sort(key=lambda item: item.id)
        return items

    async def finish_outbox(
        self,
        conn: AsyncConnection,
        item_id: str,
        attempts: int,
        now_ms: int,
        *,
        retry_at_ms: int | None = None,
    ) -> bool:
        """Mark a claimed row done (or pending again at `retry_at_ms`); False if it was
        reclaimed meanwhile (its lease lapsed and another attempt owns it)."""
        values: dict[str, Any] = {"updated_ms": now_ms}
        if retry_at_ms is None:
            values["status"] = "done"
        else:
            values.update(status="pending", available_ms=retry_at_ms)
        done = await conn.execute(
            outbox.update()
            .where(
                outbox.c.id == item_id,
                outbox.c.status == "inflight",
                outbox.c.attempts == attempts,
            )
            .values(**values)
        )
        return bool(done.rowcount)

    async def record_sends(
        self, conn: AsyncConnection, items: Sequence[OutboxItem], now_ms: int
    ) -> None:
        """Record claimed send requests (a second record of a key violates its unique index)."""
        if not items:
            return
        await conn.execute(
            journey_sends.insert(),
            [
                {
                    "id": item.id,
                    "idempotency_key": item.idempotency_key,
                    "workspace_id": item.workspace_id,
                    "run_id": item.run_id,
                    "journey_key": item.journey_key,
                    "version": item.version,
                    "node_id": item.node_id,
                    "profile_id": item.profile_id,
                    "channel": str(item.payload.get("channel", "")),
                    "template": str(item.payload.get("template", "")),
                    "payload": item.payload,
                    "requested_ms": item.created_ms,
                    "recorded_ms": now_ms,
                }
                for item in items
            ],
        )

    async def sends(
        self, workspace_id: str, journey_key: str | None = None
    ) -> list[dict[str, Any]]:
        """The recorded sends of a workspace (or one journey), oldest first."""
        query = sa.select(journey_sends).where(journey_sends.c.workspace_id == workspace_id)
        if journey_key is not None:
            query = query.where(journey_sends.c.journey_key == journey_key)
        async with self.db.connect() as conn:
            rows = await conn.execute(query.order_by(journey_sends.c.id))
            return [dict(row._mapping) for row in rows]
