"""Journeys: drafts and versions, runs, timers, the outbox, sends, rollups, the dispatch index.

Revision ID: 0003_journeys
Revises: 0002_segments
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_journeys"
down_revision = "0002_segments"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("draft", _json(), nullable=False),
        sa.Column("draft_updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("trigger_event", sa.String(length=200), nullable=True),
        sa.Column("trigger_segment", sa.String(length=128), server_default="", nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_journeys")),
    )
    op.create_index(
        "ix_journeys_trigger",
        "journeys",
        ["workspace_id", "trigger_event", "trigger_segment"],
        unique=False,
    )
    op.create_table(
        "journey_versions",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("published_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "journey_key", "version", name=op.f("pk_journey_versions")
        ),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("entry_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=True),
        sa.Column("state", _json(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index(
        "ix_runs_workspace_journey_profile",
        "runs",
        ["workspace_id", "journey_key", "profile_id"],
        unique=False,
    )
    op.create_table(
        "timers",
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=True),
        sa.Column("payload", _json(), nullable=True),
        sa.PrimaryKeyConstraint("owner", "name", "due_ms", name=op.f("pk_timers")),
    )
    op.create_index("ix_timers_due_ms", "timers", ["due_ms"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(
        "ix_outbox_kind_status_available",
        "outbox",
        ["kind", "status", "available_ms"],
        unique=False,
    )
    op.create_table(
        "journey_sends",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("template", sa.String(length=128), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("requested_ms", sa.BigInteger(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_sends")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_journey_sends_idempotency_key")),
    )
    op.create_index(
        "ix_journey_sends_workspace_journey",
        "journey_sends",
        ["workspace_id", "journey_key"],
        unique=False,
    )
    op.create_table(
        "journey_rollups",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("journey_key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "journey_key",
            "version",
            "node_id",
            "metric",
            name=op.f("pk_journey_rollups"),
        ),
    )
    op.create_table(
        "run_listeners",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("until_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "workspace_id", "profile_id", "kind", "name", "run_id", name=op.f("pk_run_listeners")
        ),
    )


def downgrade() -> None:
    op.drop_table("run_listeners")
    op.drop_table("journey_rollups")
    op.drop_index("ix_journey_sends_workspace_journey", table_name="journey_sends")
    op.drop_table("journey_sends")
    op.drop_index("ix_outbox_kind_status_available", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_timers_due_ms", table_name="timers")
    op.drop_table("timers")
    op.drop_index("ix_runs_workspace_journey_profile", table_name="runs")
    op.drop_table("runs")
    op.drop_table("journey_versions")
    op.drop_index("ix_journeys_trigger", table_name="journeys")
    op.drop_table("journeys")
