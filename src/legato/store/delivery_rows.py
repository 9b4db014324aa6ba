"""The deliveries table and its values: one row per message to send (journey send request or
transactional API call), what a worker decides about it, and the process's own secrets.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
these. A delivery is unique per (workspace, idempotency key) — the journey outbox key
"run:node:visit", or the API caller's key — so a request is queued once whatever is retried.
Lifecycle (`status`): see `legato.store.delivery`. Holds no queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from legato.store.tables import Id, Json, metadata

#: Statuses of a message that reached a provider (counted by frequency caps).
SENT_STATUSES = ("sent", "delivered", "bounced", "complained")
#: Statuses a replay may put back in the queue.
REPLAYABLE = ("failed", "dead")
#: Every status, in lifecycle order.
STATUSES = ("queued", "claimed", "sending", *SENT_STATUSES, "skipped", "failed", "dead")

#: The characters ids end with (`legato.ids`): lanes split people by them.
ID_CHARS = "0123456789abcdefghjkmnpqrstvwxyz"

#: Priority of transactional messages (API sends, confirmations) and of bulk (journeys).
PRIORITY_TRANSACTIONAL = 0
PRIORITY_BULK = 1

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    # The idempotency key: the journey outbox key, or the API caller's.
    sa.Column("key", sa.String(200), nullable=False),
    # journey, api, confirm (double opt-in), replay.
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("profile_id", Id, nullable=True),
    sa.Column("channel", sa.String(64), nullable=False),
    # The channel's kind (email, sms...): known once a worker has looked the channel up.
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(64), nullable=True),
    # marketing / transactional: known once the template is read.
    sa.Column("category", sa.String(16), nullable=True),
    sa.Column("journey_key", sa.String(128), nullable=True),
    sa.Column("journey_version", sa.Integer, nullable=True),
    sa.Column("run_id", Id, nullable=True),
    sa.Column("node_id", sa.String(64), nullable=True),
    # What rendering needs: trigger event, data, an explicit `to`, journey delivery settings.
    sa.Column("request", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("claim", Id, nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    # The normalised address used, the provider that accepted it and its message id.
    sa.Column("address", sa.Text, nullable=True),
    sa.Column("provider", sa.String(128), nullable=True),
    sa.Column("provider_message_id", sa.String(256), nullable=True),
    sa.Column("locale", sa.String(32), nullable=True),
    # A skip reason, or the kind of the last error (retryable, permanent, interrupted...).
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("sent_ms", sa.BigInteger, nullable=True),
    sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    sa.Column("opened_ms", sa.BigInteger, nullable=True),
    sa.Column("clicked_ms", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("workspace_id", "key"),
    sa.Index("ix_deliveries_queue", "status", "priority", "next_attempt_ms"),
    sa.Index("ix_deliveries_profile_sent", "workspace_id", "profile_id", "sent_ms"),
    sa.Index("ix_deliveries_workspace_status", "workspace_id", "status", "id"),
    sa.Index("ix_deliveries_provider_message", "provider_message_id"),
)

# Secrets the process generated for itself (the tracking secret when none is configured).
delivery_secrets = sa.Table(
    "delivery_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message to queue."""

    workspace_id: str
    key: str
    source: str
    priority: int
    profile_id: str | None
    channel: str
    template: str
    topic: str | None
    request: Mapping[str, Any]
    journey_key: str | None = None
    journey_version: int | None = None
    run_id: str | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A stored delivery."""

    id: str
    workspace_id: str
    key: str
    source: str
    priority: int
    profile_id: str | None
    channel: str
    kind: str | None
    template: str
    topic: str | None
    category: str | None
    journey_key: str | None
    journey_version: int | None
    run_id: str | None
    node_id: str | None
    request: dict[str, Any]
    status: str
    attempts: int
    next_attempt_ms: int
    claim: str | None
    lease_until_ms: int | None
    address: str | None
    provider: str | None
    provider_message_id: str | None
    locale: str | None
    reason: str | None
    detail: str | None
    created_ms: int
    updated_ms: int
    sent_ms: int | None
    delivered_ms: int | None
    opened_ms: int | None
    clicked_ms: int | None

    def public(self) -> dict[str, Any]:
        """The delivery as the admin API shows it."""
        body = {name: getattr(self, name) for name in self.__slots__}
        body.pop("claim")
        body.pop("lease_until_ms")
        return body


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a worker decided about a claimed delivery: the new status and the fields to set."""

    id: str
    status: str
    values: Mapping[str, Any] = field(default_factory=dict)


def delivery_row(row: Any) -> DeliveryRow:
    """A result row of `deliveries` as a `DeliveryRow`."""
    values = dict(row._mapping)
    values["request"] = dict(values["request"] or {})
    return DeliveryRow(**values)
