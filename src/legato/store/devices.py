"""Devices in SQL: browser web push subscriptions and mobile push tokens, registered by clients.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
these. A device is registered under the identifier the client knows (user id, else anonymous
id), not a profile id: at send time the identity graph says which devices are the person's, so
registrations made before a profile existed, or on profiles merged since, still count.
Decides nothing about sending.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.store.database import Database, insert_for
from legato.store.tables import Id, Json, identities, metadata, profiles

webpush_subscriptions = sa.Table(
    "webpush_subscriptions",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    # SHA-256 of the push-service endpoint URL (endpoints are long; this keeps the key short).
    sa.Column("endpoint_hash", sa.String(64), primary_key=True),
    sa.Column("identity_kind", sa.String(16), nullable=False),
    sa.Column("identity_value", sa.String(200), nullable=False),
    # The browser's PushSubscription JSON: endpoint, keys.p256dh, keys.auth.
    sa.Column("subscription", Json, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_webpush_subscriptions_identity", "workspace_id", "identity_kind", "identity_value"
    ),
)

push_tokens = sa.Table(
    "push_tokens",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("token", sa.String(512), primary_key=True),
    sa.Column("platform", sa.String(16), nullable=False),
    sa.Column("identity_kind", sa.String(16), nullable=False),
    sa.Column("identity_value", sa.String(200), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_push_tokens_identity", "workspace_id", "identity_kind", "identity_value"),
)


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who a client says it is: `user_id` or `anonymous_id` and the value."""

    kind: str
    value: str


def endpoint_hash(endpoint: str) -> str:
    """The key a web push endpoint is stored under."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


class DeviceStore:
    """Registers devices and finds a person's devices through the identity graph."""

    def __init__(self, db: Database):
        self.db = db

    async def add_webpush(
        self, workspace_id: str, who: ClientIdentity, subscription: dict[str, Any], now_ms: int
    ) -> None:
        """Register (or move to this person) a browser subscription."""
        key = endpoint_hash(str(subscription["endpoint"]))
        values = {
            "identity_kind": who.kind,
            "identity_value": who.value,
            "subscription": subscription,
            "updated_ms": now_ms,
        }
        async with self.db.transaction() as conn:
            await conn.execute(
                insert_for(conn, webpush_subscriptions)
                .values(workspace_id=workspace_id, endpoint_hash=key, created_ms=now_ms, **values)
                .on_conflict_do_update(
                    index_elements=[
                        webpush_subscriptions.c.workspace_id,
                        webpush_subscriptions.c.endpoint_hash,
                    ],
                    set_=values,
                )
            )

    async def remove_webpush(self, workspace_id: str, endpoint: str) -> bool:
        """Forget a subscription (unsubscribed, or the push service said it is gone)."""
        async with self.db.transaction() as conn:
            done = await conn.execute(
                webpush_subscriptions.delete().where(
                    webpush_subscriptions.c.workspace_id == workspace_id,
                    webpush_subscriptions.c.endpoint_hash == endpoint_hash(endpoint),
                )
            )
        return bool(done.rowcount)

    async def add_token(
        self, workspace_id: str, who: ClientIdentity, token: str, platform: str, now_ms: int
    ) -> None:
        """Register (or move to this person) a mobile push token."""
        values = {
            "identity_kind": who.kind,
            "identity_value": who.value,
            "platform": platform,
            "updated_ms": now_ms,
        }
        async with self.db.transaction() as conn:
            await conn.execute(
                insert_for(conn, push_tokens)
                .values(workspace_id=workspace_id, token=token, created_ms=now_ms, **values)
                .on_conflict_do_update(
                    index_elements=[push_tokens.c.workspace_id, push_tokens.c.token], set_=values
                )
            )

    async def remove_token(self, workspace_id: str, token: str) -> bool:
        """Forget a push token."""
        async with self.db.transaction() as conn:
            done = await conn.execute(
                push_tokens.delete().where(
                    push_tokens.c.workspace_id == workspace_id, push_tokens.c.token == token
                )
            )
        return bool(done.rowcount)

    async def latest_addresses(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: list[str], channel: str
    ) -> dict[str, str]:
        """Profile id → the most recently registered device address for `channel` ("push": the
        token; "webpush": the subscription as JSON text)."""
        if not profile_ids:
            return {}
        if channel == "push":
            table, address = push_tokens, push_tokens.c.token
        else:
            table, address = webpush_subscriptions, webpush_subscriptions.c.subscription
        join = table.join(
            identities,
            sa.and_(
                identities.c.workspace_id == table.c.workspace_id,
                identities.c.kind == table.c.identity_kind,
                identities.c.value == table.c.identity_value,
            ),
        )
        rows = await conn.execute(
            sa.select(identities.c.profile_id, address)
            .select_from(join)
            .where(table.c.workspace_id == workspace_id, identities.c.profile_id.in_(profile_ids))
            .order_by(table.c.updated_ms)
        )
        found: dict[str, str] = {}
        for row in rows:
            value = row[1]
            if not isinstance(value, str):
                value = orjson.dumps(value).decode()
            found[row.profile_id] = value  # ordered by age: the newest stays
        return found

    async def profile_family(
        self, workspace_id: str, who: ClientIdentity
    ) -> tuple[str | None, list[str]]:
        """The live profile a client identifier points at, and every profile id merged into it
        (messages delivered before a merge stay the person's)."""
        async with self.db.connect() as conn:
            live = await conn.scalar(
                sa.select(identities.c.profile_id).where(
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == who.kind,
                    identities.c.value == who.value,
                )
            )
            if live is None:
                return None, []
            family = [str(live)]
            frontier = [str(live)]
            for _ in range(8):
                merged = list(
                    (
                        await conn.execute(
                            sa.select(profiles.c.id).where(
                                profiles.c.workspace_id == workspace_id,
                                profiles.c.merged_into.in_(frontier),
                            )
                        )
                    ).scalars()
                )
                if not merged:
                    break
                family.extend(merged)
                frontier = merged
        return str(live), family
