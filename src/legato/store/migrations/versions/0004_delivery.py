"""Delivery: channels, templates, topics, policies, consent records, suppressions, deliveries,
the in-app inbox and push devices.

Revision ID: 0004_delivery
Revises: 0003_journeys
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_delivery"
down_revision = "0003_journeys"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=26), nullable=nullable)


def _ms(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "channels",
        _id("workspace_id"),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_channels")),
    )
    op.create_table(
        "templates",
        _id("workspace_id"),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("source", _json(), nullable=False),
        sa.Column("prepared", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_templates")),
    )
    op.create_table(
        "subscription_topics",
        _id("workspace_id"),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_subscription_topics")),
    )
    op.create_table(
        "delivery_policies",
        _id("workspace_id"),
        sa.Column("document", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_delivery_policies")),
    )
    op.create_table(
        "consent_records",
        _id("id"),
        _id("workspace_id"),
        _id("profile_id"),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        _ms("at_ms"),
        sa.Column("evidence", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(
        "ix_consent_records_workspace_profile",
        "consent_records",
        ["workspace_id", "profile_id", "at_ms"],
        unique=False,
    )
    op.create_index(
        "ix_consent_records_workspace_at",
        "consent_records",
        ["workspace_id", "at_ms"],
        unique=False,
    )
    op.create_table(
        "suppressions",
        _id("workspace_id"),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("address_key", sa.String(length=512), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        _id("profile_id", nullable=True),
        _id("message_id", nullable=True),
        _ms("at_ms"),
        sa.PrimaryKeyConstraint(
            "workspace_id", "channel", "address_key", name=op.f("pk_suppressions")
        ),
    )
    op.create_table(
        "deliveries",
        _id("id"),
        _id("workspace_id"),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        _id("profile_id", nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("journey_key", sa.String(length=128), nullable=True),
        sa.Column("journey_version", sa.Integer(), nullable=True),
        _id("run_id", nullable=True),
        sa.Column("node_id", sa.String(length=64), nullable=True),
        sa.Column("request", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _ms("next_attempt_ms"),
        _id("claim", nullable=True),
        _ms("lease_until_ms", nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(length=128), nullable=True),
        sa.Column("provider_message_id", sa.String(length=256), nullable=True),
        sa.Column("locale", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        _ms("created_ms"),
        _ms("updated_ms"),
        _ms("sent_ms", nullable=True),
        _ms("delivered_ms", nullable=True),
        _ms("opened_ms", nullable=True),
        _ms("clicked_ms", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_deliveries_workspace_id_key")),
    )
    op.create_index(
        "ix_deliveries_queue",
        "deliveries",
        ["status", "priority", "next_attempt_ms"],
        unique=False,
    )
    op.create_index(
        "ix_deliveries_profile_sent",
        "deliveries",
        ["workspace_id", "profile_id", "sent_ms"],
        unique=False,
    )
    op.create_index(
        "ix_deliveries_workspace_status",
        "deliveries",
        ["workspace_id", "status", "id"],
        unique=False,
    )
    op.create_index(
        "ix_deliveries_provider_message", "deliveries", ["provider_message_id"], unique=False
    )
    op.create_table(
        "delivery_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _ms("created_ms"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_delivery_secrets")),
    )
    op.create_table(
        "inbox_messages",
        _id("id"),
        _id("workspace_id"),
        _id("profile_id"),
        sa.Column("placement", sa.String(length=64), server_default="", nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("content", _json(), nullable=False),
        _ms("created_ms"),
        _ms("read_ms", nullable=True),
        _ms("dismissed_ms", nullable=True),
        _ms("expires_ms", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_messages")),
    )
    op.create_index(
        "ix_inbox_messages_profile",
        "inbox_messages",
        ["workspace_id", "profile_id", "placement", "id"],
        unique=False,
    )
    op.create_table(
        "webpush_subscriptions",
        _id("workspace_id"),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("identity_kind", sa.String(length=16), nullable=False),
        sa.Column("identity_value", sa.String(length=200), nullable=False),
        sa.Column("subscription", _json(), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint(
            "workspace_id", "endpoint_hash", name=op.f("pk_webpush_subscriptions")
        ),
    )
    op.create_index(
        "ix_webpush_subscriptions_identity",
        "webpush_subscriptions",
        ["workspace_id", "identity_kind", "identity_value"],
        unique=False,
    )
    op.create_table(
        "push_tokens",
        _id("workspace_id"),
        sa.Column("token", sa.String(length=512), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("identity_kind", sa.String(length=16), nullable=False),
        sa.Column("identity_value", sa.String(length=200), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.PrimaryKeyConstraint("workspace_id", "token", name=op.f("pk_push_tokens")),
    )
    op.create_index(
        "ix_push_tokens_identity",
        "push_tokens",
        ["workspace_id", "identity_kind", "identity_value"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_push_tokens_identity", table_name="push_tokens")
    op.drop_table("push_tokens")
    op.drop_index("ix_webpush_subscriptions_identity", table_name="webpush_subscriptions")
    op.drop_table("webpush_subscriptions")
    op.drop_index("ix_inbox_messages_profile", table_name="inbox_messages")
    op.drop_table("inbox_messages")
    op.drop_table("delivery_secrets")
    op.drop_index("ix_deliveries_provider_message", table_name="deliveries")
    op.drop_index("ix_deliveries_workspace_status", table_name="deliveries")
    op.drop_index("ix_deliveries_profile_sent", table_name="deliveries")
    op.drop_index("ix_deliveries_queue", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("suppressions")
    op.drop_index("ix_consent_records_workspace_at", table_name="consent_records")
    op.drop_index("ix_consent_records_workspace_profile", table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_table("delivery_policies")
    op.drop_table("subscription_topics")
    op.drop_table("templates")
    op.drop_table("channels")
