"""Events by person and name: an index on (profile_id, event, timestamp_ms) of `events`.

The segment stage reads, for the people of a chunk, their events of the names its conditions
mention (`MembershipStore.facts`). With only (profile_id, timestamp_ms), every event of each
person was fetched from the table to test its name, internal events included. With this one
only the matching rows are touched (on SQLite not even those: seq is the row id, so the read
is index-only), so its cost follows the events read, not the person's whole history.

Revision ID: 0006_events_by_profile_event
Revises: 0005_runs_by_profile
"""

from __future__ import annotations

from alembic import op

revision = "0006_events_by_profile_event"
down_revision = "0005_runs_by_profile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_profile_event_time", "events", ["profile_id", "event", "timestamp_ms"]
    )


def downgrade() -> None:
    op.drop_index("ix_events_profile_event_time", table_name="events")
