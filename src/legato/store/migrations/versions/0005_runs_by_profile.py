"""Runs by person: an index on (workspace_id, profile_id) of `runs`.

A profile's journeys (`GET /api/v1/profiles/{id}/journeys`) and the re-pointing of a merged
profile's runs look runs up by person; the journey-first index made both scan every run of the
workspace (60 ms with 100,000 runs on PostgreSQL).

Revision ID: 0005_runs_by_profile
Revises: 0004_delivery
"""

from __future__ import annotations

from alembic import op

revision = "0005_runs_by_profile"
down_revision = "0004_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_workspace_profile", "runs", ["workspace_id", "profile_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_workspace_profile", table_name="runs")
