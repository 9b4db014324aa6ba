"""Segments and computed traits: definitions, memberships, values, re-checks.

Revision ID: 0002_segments
Revises: 0001_foundation
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_segments"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("static", sa.Boolean(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_segments")),
    )
    op.create_table(
        "segment_members",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("segment_key", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "segment_key", "profile_id", name=op.f("pk_segment_members")
        ),
    )
    op.create_index(
        "ix_segment_members_workspace_profile",
        "segment_members",
        ["workspace_id", "profile_id"],
        unique=False,
    )
    op.create_table(
        "segment_rechecks",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("segment_key", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "segment_key", "profile_id", name=op.f("pk_segment_rechecks")
        ),
    )
    op.create_index("ix_segment_rechecks_due", "segment_rechecks", ["due_ms"], unique=False)
    op.create_table(
        "computed_traits",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "key", name=op.f("pk_computed_traits")),
    )
    op.create_table(
        "computed_trait_values",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=26), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "key", "profile_id", name=op.f("pk_computed_trait_values")
        ),
    )
    op.create_index(
        "ix_computed_trait_values_workspace_profile",
        "computed_trait_values",
        ["workspace_id", "profile_id"],
        unique=False,
    )
    op.create_index(
        "ix_computed_trait_values_due", "computed_trait_values", ["due_ms"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_computed_trait_values_due", table_name="computed_trait_values")
    op.drop_index("ix_computed_trait_values_workspace_profile", table_name="computed_trait_values")
    op.drop_table("computed_trait_values")
    op.drop_table("computed_traits")
    op.drop_index("ix_segment_rechecks_due", table_name="segment_rechecks")
    op.drop_table("segment_rechecks")
    op.drop_index("ix_segment_members_workspace_profile", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("segments")
