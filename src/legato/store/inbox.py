"""The in-app inbox and web placements in SQL: messages delivered to a person's app or web page.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
this. One table serves both: an inbox message has no placement; web personalisation content
has the placement it fills (the latest live one wins). The row id is the delivery id, so a
retried send stores the message once. Decides nothing about what to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from legato.errors import NotFound
from legato.store.database import Database, insert_for
from legato.store.tables import Id, Json, metadata

inbox_messages = sa.Table(
    "inbox_messages",
    metadata,
    # The delivery id: one stored message per delivery whatever is retried.
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("profile_id", Id, nullable=False),
    # "" for the inbox; the placement key for web personalisation content.
    sa.Column("placement", sa.String(64), nullable=False, server_default=""),
    sa.Column("template", sa.String(64), nullable=False),
    # title, body, url, image, data.
    sa.Column("content", Json, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("read_ms", sa.BigInteger, nullable=True),
    sa.Column("dismissed_ms", sa.BigInteger, nullable=True),
    sa.Column("expires_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_inbox_messages_profile", "workspace_id", "profile_id", "placement", "id"),
)


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One stored inbox message or placement content."""

    id: str
    profile_id: str
    placement: str
    template: str
    content: dict[str, Any]
    created_ms: int
    read_ms: int | None
    dismissed_ms: int | None
    expires_ms: int | None

    def public(self) -> dict[str, Any]:
        """The message as the client API answers it."""
        return {
            "id": self.id,
            "template": self.template,
            **self.content,
            "created_ms": self.created_ms,
            "read": self.read_ms is not None,
            "read_ms": self.read_ms,
            "expires_ms": self.expires_ms,
        }


def _message(row: Any) -> InboxMessage:
    return InboxMessage(
        row.id,
        row.profile_id,
        row.placement,
        row.template,
        dict(row.content),
        row.created_ms,
        row.read_ms,
        row.dismissed_ms,
        row.expires_ms,
    )


class InboxStore:
    """Stores delivered in-app messages and placement content, and their read/dismiss state."""

    def __init__(self, db: Database):
        self.db = db

    async def put(
        self,
        *,
        message_id: str,
        workspace_id: str,
        profile_id: str,
        placement: str,
        template: str,
        content: dict[str, Any],
        now_ms: int,
        expires_ms: int | None = None,
    ) -> bool:
        """Store a message once per id; False when it was already stored (a retried send)."""
        async with self.db.transaction() as conn:
            done = await conn.execute(
                insert_for(conn, inbox_messages)
                .values(
                    id=message_id,
                    workspace_id=workspace_id,
                    profile_id=profile_id,
                    placement=placement,
                    template=template,
                    content=content,
                    created_ms=now_ms,
                    expires_ms=expires_ms,
                )
                .on_conflict_do_nothing()
                # RETURNING, not rowcount: psycopg reports -1 rows for INSERT ... ON CONFLICT.
                .returning(inbox_messages.c.id)
            )
        return done.first() is not None

    async def inbox(
        self,
        workspace_id: str,
        profile_ids: list[str],
        *,
        now_ms: int,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        unread_only: bool = False,
    ) -> list[InboxMessage]:
        """A person's live inbox messages (not dismissed, not expired), newest first; `after`
        lists only newer messages (oldest first), for live updates."""
        query = sa.select(inbox_messages).where(
            inbox_messages.c.workspace_id == workspace_id,
            inbox_messages.c.profile_id.in_(profile_ids),
            inbox_messages.c.placement == "",
            inbox_messages.c.dismissed_ms.is_(None),
            sa.or_(inbox_messages.c.expires_ms.is_(None), inbox_messages.c.expires_ms > now_ms),
        )
        if unread_only:
            query = query.where(inbox_messages.c.read_ms.is_(None))
        if after is not None:
            query = query.where(inbox_messages.c.id > after).order_by(inbox_messages.c.id)
        else:
            query = query.order_by(inbox_messages.c.id.desc())
        if before is not None:
            query = query.where(inbox_messages.c.id < before)
        async with self.db.connect() as conn:
            rows = await conn.execute(query.limit(limit))
            return [_message(row) for row in rows]

    async def unread(self, workspace_id: str, profile_ids: list[str], now_ms: int) -> int:
        """How many live inbox messages the person has not read."""
        async with self.db.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).where(
                    inbox_messages.c.workspace_id == workspace_id,
                    inbox_messages.c.profile_id.in_(profile_ids),
                    inbox_messages.c.placement == "",
                    inbox_messages.c.dismissed_ms.is_(None),
                    inbox_messages.c.read_ms.is_(None),
                    sa.or_(
                        inbox_messages.c.expires_ms.is_(None),
                        inbox_messages.c.expires_ms > now_ms,
                    ),
                )
            )
        return int(count or 0)

    async def touch(
        self,
        workspace_id: str,
        profile_ids: list[str],
        message_id: str,
        column: str,
        now_ms: int,
    ) -> bool:
        """Set `read_ms` or `dismissed_ms` of the person's message (first time only); False if
        it was set already. NotFound when the person has no such message."""
        target = inbox_messages.c[column]
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(inbox_messages.c.id, target).where(
                        inbox_messages.c.workspace_id == workspace_id,
                        inbox_messages.c.profile_id.in_(profile_ids),
                        inbox_messages.c.id == message_id,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no inbox message {message_id!r} for this user", field="id")
            if row[1] is not None:
                return False
            await conn.execute(
                inbox_messages.update()
                .where(inbox_messages.c.id == message_id)
                .values({column: now_ms})
            )
        return True

    async def placement(
        self, workspace_id: str, profile_ids: list[str], placement: str, now_ms: int
    ) -> InboxMessage | None:
        """The newest live content decided for a person at a placement."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(inbox_messages)
                    .where(
                        inbox_messages.c.workspace_id == workspace_id,
                        inbox_messages.c.profile_id.in_(profile_ids),
                        inbox_messages.c.placement == placement,
                        inbox_messages.c.dismissed_ms.is_(None),
                        sa.or_(
                            inbox_messages.c.expires_ms.is_(None),
                            inbox_messages.c.expires_ms > now_ms,
                        ),
                    )
                    .order_by(inbox_messages.c.id.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else _message(row)
