"""Delivery configuration in SQL: channel, template, subscription-topic and delivery-policy
documents of each workspace, on SQLite and PostgreSQL.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
these. Documents are stored as written (the `source`) next to what saving derived from them
(a template's `PreparedTemplate` JSON); every save bumps `version`, so caches and deliveries can
tell which version they used. Never validates a document: `legato.runtime.channels` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from legato.errors import NotFound
from legato.store.database import Database, insert_for
from legato.store.tables import Id, Json, metadata

Key = sa.String(64)

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    # The channel kind its providers serve (email, sms, whatsapp, push, webpush, webhook...).
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("document", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    sa.Column("channel", Key, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("topic", Key, nullable=True),
    # The document as written, and `PreparedTemplate` JSON (MJML compiled, locales merged).
    sa.Column("source", Json, nullable=False),
    sa.Column("prepared", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

subscription_topics = sa.Table(
    "subscription_topics",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    sa.Column("channel", Key, nullable=False),
    sa.Column("document", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# One policy per workspace (caps, quiet hours, channel consent modes).
delivery_policies = sa.Table(
    "delivery_policies",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("document", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

#: Document kinds kept by `ChannelStore`, with their table.
_TABLES = {
    "channel": channels,
    "template": templates,
    "topic": subscription_topics,
}


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One saved document: its source, what was derived from it, and its version."""

    key: str
    source: dict[str, Any]
    version: int
    updated_ms: int
    # channels: the kind; templates: the channel key; topics: the channel.
    channel: str
    prepared: dict[str, Any] | None = None


def _stored(kind: str, row: Any) -> StoredDocument:
    if kind == "template":
        return StoredDocument(
            row.key, row.source, row.version, row.updated_ms, row.channel, row.prepared
        )
    channel = row.kind if kind == "channel" else row.channel
    return StoredDocument(row.key, row.document, row.version, row.updated_ms, channel)


class ChannelStore:
    """Saves and reads the delivery documents of workspaces."""

    def __init__(self, db: Database):
        self.db = db

    async def save(
        self,
        kind: str,
        workspace_id: str,
        key: str,
        *,
        source: dict[str, Any],
        channel: str,
        now_ms: int,
        prepared: dict[str, Any] | None = None,
        category: str | None = None,
        topic: str | None = None,
    ) -> int:
        """Create or replace a document (kind: channel, template, topic); returns its version."""
        table = _TABLES[kind]
        values: dict[str, Any] = {"updated_ms": now_ms}
        if kind == "channel":
            values.update(kind=channel, document=source)
        elif kind == "topic":
            values.update(channel=channel, document=source)
        else:
            values.update(
                channel=channel,
                source=source,
                prepared=prepared,
                category=category,
                topic=topic,
            )
        async with self.db.transaction() as conn:
            statement = (
                insert_for(conn, table)
                .values(workspace_id=workspace_id, key=key, version=1, created_ms=now_ms, **values)
                .on_conflict_do_update(
                    index_elements=[table.c.workspace_id, table.c.key],
                    set_={**values, "version": table.c.version + 1},
                )
                .returning(table.c.version)
            )
            version = await conn.scalar(statement)
        return int(version or 1)

    async def get(self, kind: str, workspace_id: str, key: str) -> StoredDocument:
        """One document; NotFound naming it if there is none."""
        table = _TABLES[kind]
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(table).where(table.c.workspace_id == workspace_id, table.c.key == key)
                )
            ).first()
        if row is None:
            raise NotFound(f"no {kind} {key!r} in this workspace", field="key")
        return _stored(kind, row)

    async def list(self, kind: str, workspace_id: str) -> list[StoredDocument]:
        """Every document of a kind, by key."""
        table = _TABLES[kind]
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(table).where(table.c.workspace_id == workspace_id).order_by(table.c.key)
            )
            return [_stored(kind, row) for row in rows]

    async def delete(self, kind: str, workspace_id: str, key: str) -> None:
        """Delete a document; NotFound if there was none."""
        table = _TABLES[kind]
        async with self.db.transaction() as conn:
            done = await conn.execute(
                table.delete().where(table.c.workspace_id == workspace_id, table.c.key == key)
            )
        if not done.rowcount:
            raise NotFound(f"no {kind} {key!r} in this workspace", field="key")

    async def save_policy(self, workspace_id: str, document: dict[str, Any], now_ms: int) -> int:
        """Create or replace the workspace's delivery policy; returns its version."""
        async with self.db.transaction() as conn:
            version = await conn.scalar(
                insert_for(conn, delivery_policies)
                .values(workspace_id=workspace_id, document=document, version=1, updated_ms=now_ms)
                .on_conflict_do_update(
                    index_elements=[delivery_policies.c.workspace_id],
                    set_={
                        "document": document,
                        "updated_ms": now_ms,
                        "version": delivery_policies.c.version + 1,
                    },
                )
                .returning(delivery_policies.c.version)
            )
        return int(version or 1)

    async def policy(self, workspace_id: str) -> StoredDocument | None:
        """The workspace's delivery policy, or None when it has none (defaults apply)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(delivery_policies).where(
                        delivery_policies.c.workspace_id == workspace_id
                    )
                )
            ).first()
        if row is None:
            return None
        return StoredDocument("", row.document, row.version, row.updated_ms, "")
