"""Tables of segments and computed traits: definitions, memberships, values, re-checks.

Declared on the shared `legato.store.tables.metadata`; migration `0002_segments` creates
exactly these. The SQL condition compiler (`conditions_sql`) reads `segment_members` and
`computed_trait_values`; the segment runtime writes them. Membership history needs no table:
every change is a `Segment Entered` / `Segment Exited` event in the log. The index of
`events` by (profile, name, time) is declared here (migration `0006_events_by_profile_event`):
the segment stage is what reads events that way.
"""

from __future__ import annotations

import sqlalchemy as sa

from legato.store.tables import Id, Json, events, metadata

Key = sa.String(100)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    # Static segments hold uploaded members; the others follow their condition.
    sa.Column("static", sa.Boolean, nullable=False),
    # The document as written (`legato.domain.segments.dump_segment`).
    sa.Column("document", Json, nullable=False),
    # Bumped on every edit; a backfill computes the membership of one version.
    sa.Column("version", sa.Integer, nullable=False),
    # "backfilling" until membership over all history is computed, then "live".
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

# Current members. Entering inserts, exiting deletes.
segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("segment_key", Key, primary_key=True),
    sa.Column("profile_id", Id, primary_key=True),
    sa.Column("entered_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_segment_members_workspace_profile", "workspace_id", "profile_id"),
)

# When a (segment, profile) verdict lapses with no new input (a window closing, a dated event
# coming due): the evaluation's "holds until". Due rows are read by index, never by a scan.
segment_rechecks = sa.Table(
    "segment_rechecks",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("segment_key", Key, primary_key=True),
    sa.Column("profile_id", Id, primary_key=True),
    sa.Column("due_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_segment_rechecks_due", "due_ms"),
)

computed_traits = sa.Table(
    "computed_traits",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    # The document as written (`legato.domain.segments.dump_computed_trait`).
    sa.Column("document", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

computed_trait_values = sa.Table(
    "computed_trait_values",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", Key, primary_key=True),
    sa.Column("profile_id", Id, primary_key=True),
    # The current value (JSON null when there is none, e.g. the average of no events).
    sa.Column("value", Json, nullable=False),
    # The incremental aggregator's state (`AggregateState.to_json`).
    sa.Column("state", Json, nullable=False),
    # When a window next changes the value with no new event (None: only events change it).
    sa.Column("due_ms", sa.BigInteger, nullable=True),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_computed_trait_values_workspace_profile", "workspace_id", "profile_id"),
    sa.Index("ix_computed_trait_values_due", "due_ms"),
)

# The events of some names of some people (`MembershipStore.facts`), read from the index alone.
ix_events_profile_event_time = sa.Index(
    "ix_events_profile_event_time", events.c.profile_id, events.c.event, events.c.timestamp_ms
)
