"""Consent in SQL: the append-only consent records (the evidence) and the suppression list.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
these. A consent record is never updated or deleted: the current state is the fold of a person's
records (`legato.domain.consent.ConsentState`). Suppressions are unique per (workspace, channel,
suppression key of the address). Decides nothing about consent: `legato.runtime.consent` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.consent import ConsentChange, ConsentStatus, Suppression, SuppressionReason
from legato.errors import InvalidInput, NotFound
from legato.ids import new_id
from legato.store.database import Database, insert_for, slices
from legato.store.tables import Id, Json, metadata

consent_records = sa.Table(
    "consent_records",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("profile_id", Id, nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    # None: the whole channel.
    sa.Column("topic", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Where it was said: preference_centre, unsubscribe_link, one_click, api, provider...
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    # What proves it: IP address, user agent, message id, the address at the time...
    sa.Column("evidence", Json, nullable=False),
    sa.Index("ix_consent_records_workspace_profile", "workspace_id", "profile_id", "at_ms"),
    sa.Index("ix_consent_records_workspace_at", "workspace_id", "at_ms"),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    # `legato.domain.delivery.suppression_key(channel, address)`.
    sa.Column("address_key", sa.String(512), primary_key=True),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("profile_id", Id, nullable=True),
    sa.Column("message_id", Id, nullable=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A stored consent record (the evidence row)."""

    id: str
    workspace_id: str
    profile_id: str
    change: ConsentChange

    def to_dict(self) -> dict[str, Any]:
        """The record as the evidence export writes it."""
        c = self.change
        return {
            "id": self.id,
            "profile_id": self.profile_id,
            "channel": c.channel,
            "topic": c.topic,
            "status": c.status.value,
            "source": c.source,
            "at_ms": c.at_ms,
            "evidence": dict(c.evidence),
        }


def _change(row: Any) -> ConsentChange:
    return ConsentChange(
        channel=row.channel,
        topic=row.topic,
        status=ConsentStatus(row.status),
        source=row.source,
        at_ms=row.at_ms,
        evidence=dict(row.evidence or {}),
    )


def _suppression(row: Any) -> Suppression:
    return Suppression(
        channel=row.channel,
        address=row.address,
        reason=SuppressionReason(row.reason),
        at_ms=row.at_ms,
        note=row.note,
    )


class ConsentStore:
    """Appends and reads consent records; keeps the suppression list."""

    def __init__(self, db: Database):
        self.db = db

    # -- consent records ------------------------------------------------------------------------

    async def record(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_id: str,
        changes: Sequence[ConsentChange],
    ) -> list[str]:
        """Append consent records on the caller's transaction; returns their ids."""
        ids = [new_id() for _ in changes]
        if changes:
            await conn.execute(
                consent_records.insert(),
                [
                    {
                        "id": record_id,
                        "workspace_id": workspace_id,
                        "profile_id": profile_id,
                        "channel": c.channel,
                        "topic": c.topic,
                        "status": c.status.value,
                        "source": c.source,
                        "at_ms": c.at_ms,
                        "evidence": dict(c.evidence),
                    }
                    for record_id, c in zip(ids, changes, strict=True)
                ],
            )
        return ids

    async def changes_of(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, list[ConsentChange]]:
        """Every consent record of these profiles, oldest first, by profile."""
        found: dict[str, list[ConsentChange]] = defaultdict(list)
        wanted = sorted(set(profile_ids))
        for part in slices(wanted):
            rows = await conn.execute(
                sa.select(consent_records)
                .where(
                    consent_records.c.workspace_id == workspace_id,
                    consent_records.c.profile_id.in_(part),
                )
                .order_by(consent_records.c.at_ms, consent_records.c.id)
            )
            for row in rows:
                found[row.profile_id].append(_change(row))
        return dict(found)

    async def history(self, workspace_id: str, profile_id: str) -> list[ConsentRecord]:
        """One person's consent records, oldest first."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(consent_records)
                .where(
                    consent_records.c.workspace_id == workspace_id,
                    consent_records.c.profile_id == profile_id,
                )
                .order_by(consent_records.c.at_ms, consent_records.c.id)
            )
            return [ConsentRecord(r.id, r.workspace_id, r.profile_id, _change(r)) for r in rows]

    async def export(
        self,
        workspace_id: str,
        *,
        profile_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        page: int = 1000,
    ) -> AsyncIterator[ConsentRecord]:
        """Consent records in (time, id) order, read a page at a time (for evidence export)."""
        after: tuple[int, str] | None = None
        while True:
            query = (
                sa.select(consent_records)
                .where(consent_records.c.workspace_id == workspace_id)
                .order_by(consent_records.c.at_ms, consent_records.c.id)
                .limit(page)
            )
            if profile_id is not None:
                query = query.where(consent_records.c.profile_id == profile_id)
            if since_ms is not None:
                query = query.where(consent_records.c.at_ms >= since_ms)
            if until_ms is not None:
                query = query.where(consent_records.c.at_ms < until_ms)
            if after is not None:
                query = query.where(
                    sa.or_(
                        consent_records.c.at_ms > after[0],
                        sa.and_(
                            consent_records.c.at_ms == after[0], consent_records.c.id > after[1]
                        ),
                    )
                )
            async with self.db.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                yield ConsentRecord(row.id, row.workspace_id, row.profile_id, _change(row))
            if len(rows) < page:
                return
            after = (rows[-1].at_ms, rows[-1].id)

    # -- suppressions ---------------------------------------------------------------------------

    async def suppress(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        suppression: Suppression,
        key: str,
        *,
        profile_id: str | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Add an address to the list on the caller's transaction; False if it already was."""
        done = await conn.execute(
            insert_for(conn, suppressions)
            .values(
                workspace_id=workspace_id,
                channel=suppression.channel,
                address_key=key,
                address=suppression.address,
                reason=suppression.reason.value,
                note=suppression.note,
                profile_id=profile_id,
                message_id=message_id,
                at_ms=suppression.at_ms,
            )
            .on_conflict_do_nothing()
            # RETURNING, not rowcount: psycopg reports -1 rows for INSERT ... ON CONFLICT.
            .returning(suppressions.c.address_key)
        )
        return done.first() is not None

    async def unsuppress(self, workspace_id: str, channel: str, key: str) -> None:
        """Remove an address from the list; NotFound if it was not on it."""
        async with self.db.transaction() as conn:
            done = await conn.execute(
                suppressions.delete().where(
                    suppressions.c.workspace_id == workspace_id,
                    suppressions.c.channel == channel,
                    suppressions.c.address_key == key,
                )
            )
        if not done.rowcount:
            raise NotFound(f"{channel} address is not suppressed", field="address")

    async def suppressed(
        self, conn: AsyncConnection, workspace_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Suppression]:
        """The suppressions among (channel, address key) pairs."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], Suppression] = {}
        for part in slices(wanted):
            condition = sa.tuple_(suppressions.c.channel, suppressions.c.address_key).in_(part)
            rows = await conn.execute(
                sa.select(suppressions).where(
                    suppressions.c.workspace_id == workspace_id, condition
                )
            )
            for row in rows:
                found[(row.channel, row.address_key)] = _suppression(row)
        return found

    async def list_suppressions(
        self,
        workspace_id: str,
        *,
        channel: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Suppressed addresses by (channel, address key), a page at a time."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        query = (
            sa.select(suppressions)
            .where(suppressions.c.workspace_id == workspace_id)
            .order_by(suppressions.c.channel, suppressions.c.address_key)
            .limit(limit)
        )
        if channel is not None:
            query = query.where(suppressions.c.channel == channel)
        if after is not None:
            chan, _, key = after.partition(":")
            query = query.where(
                sa.tuple_(suppressions.c.channel, suppressions.c.address_key) > (chan, key)
            )
        async with self.db.connect() as conn:
            rows = await conn.execute(query)
            return [
                {
                    "channel": r.channel,
                    "address": r.address,
                    "address_key": r.address_key,
                    "reason": r.reason,
                    "note": r.note,
                    "profile_id": r.profile_id,
                    "message_id": r.message_id,
                    "at_ms": r.at_ms,
                }
                for r in rows
            ]
