"""The foundation's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Conventions every table keeps:
- ids are time-ordered 26-character strings (`legato.ids.new_id`), never random UUIDs;
- instants are integers, epoch milliseconds UTC (`*_ms`), so both dialects compare them alike;
- documents are JSON (JSONB on PostgreSQL) serialised with orjson.

Other concepts define their tables in their own store module, on the same `metadata`.
The migrations under `migrations/versions` must create exactly what is declared here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: JSON document column: JSONB on PostgreSQL (indexable, operators), JSON text on SQLite.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
#: 64-bit integer that is also SQLite's rowid alias when it is the primary key.
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Id = sa.String(26)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("settings", Json, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, sa.ForeignKey("workspaces.id"), nullable=False, index=True),
    # "write" keys authenticate ingestion; "admin" keys the admin API, with a role.
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=True),
    # SHA-256 of the key: keys are 192-bit random, so a fast hash is safe and lookups are O(1).
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger, nullable=True),
)

# The event log. `seq` is the log offset; consumers read it in order per partition.
events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("partition", sa.SmallInteger, nullable=False),
    # identify, track, page, screen, group, alias — or "internal" for the platform's own events.
    sa.Column("type", sa.String(16), nullable=False),
    # track: the event name; page/screen: the page name; internal: e.g. "Segment Entered".
    sa.Column("event", sa.String(200), nullable=True),
    sa.Column("user_id", sa.String(200), nullable=True),
    sa.Column("anonymous_id", sa.String(200), nullable=True),
    # Set by the pipeline's identity stage; re-pointed when profiles merge.
    sa.Column("profile_id", Id, nullable=True),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    # The normalised message, exactly as the tracking spec shapes it.
    sa.Column("payload", Json, nullable=False),
    sa.UniqueConstraint("workspace_id", "message_id"),
    sa.Index("ix_events_partition_seq", "partition", "seq"),
    sa.Index("ix_events_profile_time", "profile_id", "timestamp_ms"),
    sa.Index("ix_events_workspace_event_time", "workspace_id", "event", "timestamp_ms"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("traits", Json, nullable=False),
    # Per-trait event timestamp (ms) of the value kept: on merge the newest value wins.
    sa.Column("trait_times", Json, nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("event_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    # Set when this profile was merged into another; lookups follow it to the survivor.
    sa.Column("merged_into", Id, nullable=True),
    sa.Index("ix_profiles_workspace_id_id", "workspace_id", "id"),
)

# The identity graph: every identifier points at one canonical profile.
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    # anonymous_id, user_id, email, phone, or a configured trait key such as crm_id.
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("profile_id", Id, nullable=False, index=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

profile_merges = sa.Table(
    "profile_merges",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("from_profile_id", Id, nullable=False, index=True),
    sa.Column("into_profile_id", Id, nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=True),
    sa.Column("merged_ms", sa.BigInteger, nullable=False),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("group_id", sa.String(200), primary_key=True),
    sa.Column("traits", Json, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

profile_groups = sa.Table(
    "profile_groups",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("profile_id", Id, primary_key=True),
    sa.Column("group_id", sa.String(200), primary_key=True),
    sa.Column("joined_ms", sa.BigInteger, nullable=False),
)

# Messages refused at ingestion, kept with the reason so nothing is silently dropped.
rejected_messages = sa.Table(
    "rejected_messages",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("batch_index", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("field", sa.String(200), nullable=True),
    # The raw message text as received (cut at the message size limit).
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("ix_rejected_messages_workspace_time", "workspace_id", "received_ms"),
)

# Where each log consumer has got to, per partition, and who holds the partition now.
# The offset moves in the same transaction as the consumer's effects: exactly-once processing.
log_offsets = sa.Table(
    "log_offsets",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("partition", sa.SmallInteger, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
