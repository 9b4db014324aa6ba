"""Foundation: workspaces, API keys, the event log, profiles, the identity graph.

Revision ID: 0001_foundation
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.SmallInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("profile_id", sa.String(length=26), nullable=True),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "workspace_id", "message_id", name=op.f("uq_events_workspace_id_message_id")
        ),
    )
    op.create_index("ix_events_partition_seq", "events", ["partition", "seq"], unique=False)
    op.create_index(
        "ix_events_profile_time", "events", ["profile_id", "timestamp_ms"], unique=False
    )
    op.create_index(
        "ix_events_workspace_event_time",
        "events",
        ["workspace_id", "event", "timestamp_ms"],
        unique=False,
    )
    op.create_table(
        "groups",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "group_id", name=op.f("pk_groups")),
    )
    op.create_table(
        "identities",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "kind", "value", name=op.f("pk_identities")),
    )
    op.create_index(op.f("ix_identities_profile_id"), "identities", ["profile_id"], unique=False)
    op.create_table(
        "log_offsets",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "partition", name=op.f("pk_log_offsets")),
    )
    op.create_table(
        "profile_groups",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column("joined_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "profile_id", "group_id", name=op.f("pk_profile_groups")
        ),
    )
    op.create_table(
        "profile_merges",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("from_profile_id", sa.String(length=26), nullable=False),
        sa.Column("into_profile_id", sa.String(length=26), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("merged_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_merges")),
    )
    op.create_index(
        op.f("ix_profile_merges_from_profile_id"),
        "profile_merges",
        ["from_profile_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_profile_merges_into_profile_id"),
        "profile_merges",
        ["into_profile_id"],
        unique=False,
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "trait_times",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("merged_into", sa.String(length=26), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    op.create_index("ix_profiles_workspace_id_id", "profiles", ["workspace_id", "id"], unique=False)
    op.create_table(
        "rejected_messages",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_messages")),
    )
    op.create_index(
        "ix_rejected_messages_workspace_time",
        "rejected_messages",
        ["workspace_id", "received_ms"],
        unique=False,
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("name", name=op.f("uq_workspaces_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_api_keys_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_workspace_id"), "api_keys", ["workspace_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_workspace_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("workspaces")
    op.drop_index("ix_rejected_messages_workspace_time", table_name="rejected_messages")
    op.drop_table("rejected_messages")
    op.drop_index("ix_profiles_workspace_id_id", table_name="profiles")
    op.drop_table("profiles")
    op.drop_index(op.f("ix_profile_merges_into_profile_id"), table_name="profile_merges")
    op.drop_index(op.f("ix_profile_merges_from_profile_id"), table_name="profile_merges")
    op.drop_table("profile_merges")
    op.drop_table("profile_groups")
    op.drop_table("log_offsets")
    op.drop_index(op.f("ix_identities_profile_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_table("groups")
    op.drop_index("ix_events_workspace_event_time", table_name="events")
    op.drop_index("ix_events_profile_time", table_name="events")
    op.drop_index("ix_events_partition_seq", table_name="events")
    op.drop_table("events")
