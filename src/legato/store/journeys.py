"""Journeys in SQL: the tables of the journey engine, drafts and immutable versions.

Declared on the shared `legato.store.tables.metadata`; migration `0003_journeys` creates exactly
these tables. `JourneyStore` keeps definitions: drafts (what `PUT` and `legato apply` save),
published versions (never updated), the lifecycle state, the trigger index the pipeline looks
journeys up by, schedule timers and the rollups read back as stats. The runtime state of runs
is written by `store.runs`, the outbox by `store.outbox`. Decides nothing about journeys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.errors import Conflict, NotFound
from legato.store.channels import channels, subscription_topics, templates
from legato.store.database import Database, Sql, driver_rows, insert_for, json_text
from legato.store.segments import computed_traits, segments
from legato.store.tables import Id, Json, metadata

JourneyKey = sa.String(128)
NodeIdColumn = sa.String(64)

# A journey: its draft (what `PUT` and `legato apply` save) and where it is in its lifecycle.
# `trigger_event` / `trigger_segment` are set only while it accepts entries (published): the
# dispatch index of triggers. An event trigger has trigger_segment "".
journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("key", JourneyKey, primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    # draft (never published), published, paused, archived.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("draft", Json, nullable=False),
    sa.Column("draft_updated_ms", sa.BigInteger, nullable=False),
    # The latest published version (None while a draft).
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("trigger_event", sa.String(200), nullable=True),
    sa.Column("trigger_segment", sa.String(128), nullable=False, server_default=""),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_journeys_trigger", "workspace_id", "trigger_event", "trigger_segment"),
)

# Published documents; never updated. Runs name the version they entered.
journey_versions = sa.Table(
    "journey_versions",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("journey_key", JourneyKey, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", Json, nullable=False),
    sa.Column("published_ms", sa.BigInteger, nullable=False),
)

# One person's run through one version. `state` is `Run.to_dict()`; the other columns index it.
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("journey_key", JourneyKey, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("profile_id", Id, nullable=False),
    sa.Column("entry_key", sa.String(200), nullable=True),
    # waiting, exited, converted (a stored run is never mid-step).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("node_id", NodeIdColumn, nullable=True),
    sa.Column("state", Json, nullable=False),
    # The identity of the event that started the run: internal events it emits are logged on
    # the same partition as the person's own events.
    sa.Column("user_id", sa.String(200), nullable=True),
    sa.Column("anonymous_id", sa.String(200), nullable=True),
    sa.Column("entered_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_runs_workspace_journey_profile", "workspace_id", "journey_key", "profile_id"),
    # A person's runs (their journeys in the console, a merge re-pointing them): migration 0005.
    sa.Index("ix_runs_workspace_profile", "workspace_id", "profile_id"),
)

# Durable timers: a wait is a row with an indexed due time, claimed when due. `owner` is the run
# id (kinds "run" and "listen") or "<workspace>/<journey>" (kind "schedule").
timers = sa.Table(
    "timers",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("due_ms", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("journey_key", JourneyKey, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("profile_id", Id, nullable=True),
    # A schedule's enrolment cursor (the last profile id enrolled) while it pages through.
    sa.Column("payload", Json, nullable=True),
    sa.Index("ix_timers_due_ms", "due_ms"),
)

# Requests a transition made of the outside world: sends (drained by delivery, or until then by
# the recorder) and webhook calls. One row per idempotency key "run:node:visit".
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("workspace_id", Id, nullable=False),
    # send, webhook.
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("run_id", Id, nullable=False),
    sa.Column("journey_key", JourneyKey, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("node_id", NodeIdColumn, nullable=False),
    sa.Column("profile_id", Id, nullable=False),
    sa.Column("payload", Json, nullable=False),
    # pending, inflight (claimed until available_ms), done.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("available_ms", sa.BigInteger, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_outbox_kind_status_available", "kind", "status", "available_ms"),
)

# What the channel-independent recorder drained from the outbox, once per idempotency key
# (until the delivery issue's worker takes its place).
journey_sends = sa.Table(
    "journey_sends",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("workspace_id", Id, nullable=False),
    sa.Column("run_id", Id, nullable=False),
    sa.Column("journey_key", JourneyKey, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("node_id", NodeIdColumn, nullable=False),
    sa.Column("profile_id", Id, nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("template", sa.String(128), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("requested_ms", sa.BigInteger, nullable=False),
    sa.Column("recorded_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_journey_sends_workspace_journey", "workspace_id", "journey_key"),
)

# Counters per (journey, version, node, metric), kept in the transactions that move runs.
# Metrics: entered, exited, converted, waiting (a gauge), arm:<name>; on node "$journey":
# entered, refused:<reason>, exited:<reason>, converted.
journey_rollups = sa.Table(
    "journey_rollups",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("journey_key", JourneyKey, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("node_id", NodeIdColumn, primary_key=True),
    sa.Column("metric", sa.String(120), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

# The dispatch index of runs: which runs of a person listen to which event names (kind
# "event"), trait keys ("trait"), computed traits ("computed_trait") and segments ("segment").
# `until_ms` bounds an ended run's listening for its goal.
run_listeners = sa.Table(
    "run_listeners",
    metadata,
    sa.Column("workspace_id", Id, primary_key=True),
    sa.Column("profile_id", Id, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("run_id", Id, primary_key=True),
    sa.Column("until_ms", sa.BigInteger, nullable=True),
)

#: The journey-level pseudo node of rollups.
JOURNEY_NODE = "$journey"

Listener = tuple[str, str]
"""(kind, name) of a dispatch index entry."""


@dataclass(frozen=True, slots=True)
class JourneyRow:
    """A journey's row: lifecycle state and its draft."""

    workspace_id: str
    key: str
    name: str | None
    status: str
    draft: dict[str, Any]
    draft_updated_ms: int
    version: int | None
    created_ms: int
    updated_ms: int


def _journey_row(row: Any) -> JourneyRow:
    return JourneyRow(
        row.workspace_id,
        row.key,
        row.name,
        row.status,
        dict(row.draft),
        row.draft_updated_ms,
        row.version,
        row.created_ms,
        row.updated_ms,
    )


# The trigger index as the pipeline reads it: the chunk's event names and segment keys are one
# JSON parameter each (`= ANY(ARRAY(...))` keeps them index conditions on PostgreSQL).
_TRIGGERED = Sql(
    f"SELECT key, version FROM {journeys.name} WHERE workspace_id = ?"  # noqa: S608
    " AND trigger_event IN (SELECT value FROM json_each(?))"
    " AND trigger_segment IN (SELECT value FROM json_each(?)) ORDER BY key",
    f"SELECT key, version FROM {journeys.name} WHERE workspace_id = %s"  # noqa: S608
    " AND trigger_event = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " AND trigger_segment = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    " ORDER BY key",
)


class JourneyStore:
    """Journey definitions, versions and lifecycle, per workspace."""

    def __init__(self, db: Database):
        self.db = db

    async def get(self, conn: AsyncConnection, workspace_id: str, key: str) -> JourneyRow:
        """A journey by key; NotFound when there is none."""
        row = (
            await conn.execute(
                sa.select(journeys).where(
                    journeys.c.workspace_id == workspace_id, journeys.c.key == key
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no journey {key!r} in this workspace", key=key)
        return _journey_row(row)

    async def lock(self, conn: AsyncConnection, workspace_id: str, key: str) -> JourneyRow:
        """The journey's row, locked until the transaction ends (PostgreSQL)."""
        row = (
            await conn.execute(
                sa.select(journeys)
                .where(journeys.c.workspace_id == workspace_id, journeys.c.key == key)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no journey {key!r} in this workspace", key=key)
        return _journey_row(row)

    async def all(self, workspace_id: str) -> list[JourneyRow]:
        """Every journey of a workspace, by key."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(journeys)
                .where(journeys.c.workspace_id == workspace_id)
                .order_by(journeys.c.key)
            )
            return [_journey_row(row) for row in rows]

    async def keys(self, workspace_id: str) -> set[str]:
        """The keys of a workspace's journeys."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(journeys.c.key).where(journeys.c.workspace_id == workspace_id)
            )
            return {row.key for row in rows}

    async def save_draft(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        key: str,
        name: str | None,
        draft: Mapping[str, Any],
        now_ms: int,
    ) -> bool:
        """Create the journey as a draft or replace its draft; True when it was created."""
        updated = await conn.execute(
            journeys.update()
            .where(journeys.c.workspace_id == workspace_id, journeys.c.key == key)
            .values(name=name, draft=dict(draft), draft_updated_ms=now_ms, updated_ms=now_ms)
        )
        if updated.rowcount:
            return False
        inserted = await conn.execute(
            insert_for(conn, journeys)
            .values(
                workspace_id=workspace_id,
                key=key,
                name=name,
                status="draft",
                draft=dict(draft),
                draft_updated_ms=now_ms,
                version=None,
                trigger_event=None,
                trigger_segment="",
                created_ms=now_ms,
                updated_ms=now_ms,
            )
            .on_conflict_do_nothing()
            # RETURNING, not rowcount: psycopg reports -1 for a skipped conflicting insert.
            .returning(journeys.c.key)
        )
        if inserted.first() is None:
            raise Conflict(f"journey {key!r} was created concurrently; retry", key=key)
        return True

    async def add_version(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        key: str,
        document: Mapping[str, Any],
        now_ms: int,
    ) -> int:
        """Store the next immutable version of a journey; returns its number."""
        latest = await conn.scalar(
            sa.select(sa.func.max(journey_versions.c.version)).where(
                journey_versions.c.workspace_id == workspace_id,
                journey_versions.c.journey_key == key,
            )
        )
        version = int(latest or 0) + 1
        await conn.execute(
            journey_versions.insert().values(
                workspace_id=workspace_id,
                journey_key=key,
                version=version,
                document=dict(document),
                published_ms=now_ms,
            )
        )
        return version

    async def set_state(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        key: str,
        *,
        status: str,
        now_ms: int,
        version: int | None = None,
        trigger: tuple[str, str] | None = None,
    ) -> None:
        """Move the journey to `status`; `trigger` (event, segment) makes it accept entries."""
        values: dict[str, Any] = {
            "status": status,
            "updated_ms": now_ms,
            "trigger_event": trigger[0] if trigger else None,
            "trigger_segment": trigger[1] if trigger else "",
        }
        if version is not None:
            values["version"] = version
        await conn.execute(
            journeys.update()
            .where(journeys.c.workspace_id == workspace_id, journeys.c.key == key)
            .values(**values)
        )

    async def version_document(
        self, conn: AsyncConnection, workspace_id: str, key: str, version: int
    ) -> dict[str, Any]:
        """The document of a published version; NotFound when there is none."""
        document = await conn.scalar(
            sa.select(journey_versions.c.document).where(
                journey_versions.c.workspace_id == workspace_id,
                journey_versions.c.journey_key == key,
                journey_versions.c.version == version,
            )
        )
        if document is None:
            raise NotFound(f"journey {key!r} has no version {version}", key=key, version=version)
        return dict(document)

    async def versions(self, workspace_id: str, key: str) -> list[tuple[int, int]]:
        """(version, published_ms) of a journey, oldest first."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(journey_versions.c.version, journey_versions.c.published_ms)
                .where(
                    journey_versions.c.workspace_id == workspace_id,
                    journey_versions.c.journey_key == key,
                )
                .order_by(journey_versions.c.version)
            )
            return [(row.version, row.published_ms) for row in rows]

    async def triggered(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        names: Iterable[str],
        segments: Iterable[str],
    ) -> list[tuple[str, int]]:
        """(key, version) of the journeys accepting entries on one of these event names.

        A segment trigger listens to "Segment Entered"/"Segment Exited" of one segment only:
        `segments` are the segment keys those events of the batch carry.
        """
        wanted = sorted(set(names))
        if not wanted:
            return []
        # Once per chunk of the pipeline: straight to the driver (see store/profile_state.py).
        rows = await driver_rows(
            conn,
            _TRIGGERED,
            (workspace_id, json_text(wanted), json_text(sorted({"", *segments}))),
        )
        return [(key, version) for key, version in rows if version is not None]

    async def drop_schedule(self, conn: AsyncConnection, workspace_id: str, key: str) -> None:
        """Delete a journey's pending schedule timers."""
        await conn.execute(
            timers.delete().where(
                timers.c.owner == schedule_owner(workspace_id, key), timers.c.kind == "schedule"
            )
        )

    async def pending_schedule(
        self, conn: AsyncConnection, workspace_id: str, key: str
    ) -> int | None:
        """When a journey's schedule next fires (None: not armed)."""
        value = await conn.scalar(
            sa.select(sa.func.min(timers.c.due_ms)).where(
                timers.c.owner == schedule_owner(workspace_id, key), timers.c.kind == "schedule"
            )
        )
        return None if value is None else int(value)

    async def rollups(
        self, workspace_id: str, key: str, version: int | None = None
    ) -> list[tuple[int, str, str, int]]:
        """(version, node, metric, count) of a journey (one version, or all)."""
        query = sa.select(
            journey_rollups.c.version,
            journey_rollups.c.node_id,
            journey_rollups.c.metric,
            journey_rollups.c.count,
        ).where(
            journey_rollups.c.workspace_id == workspace_id, journey_rollups.c.journey_key == key
        )
        if version is not None:
            query = query.where(journey_rollups.c.version == version)
        async with self.db.connect() as conn:
            rows = await conn.execute(query)
            return [(v, node, metric, int(n)) for v, node, metric, n in rows]


def schedule_owner(workspace_id: str, key: str) -> str:
    """The `timers.owner` of a journey's schedule."""
    return f"{workspace_id}/{key}"


async def reference_keys(conn: AsyncConnection, workspace_id: str) -> dict[str, set[str]]:
    """What journeys may name in a workspace: segment, computed trait, template, channel
    (keys and kinds) and topic keys, by kind."""
    found: dict[str, set[str]] = {}
    sources: list[tuple[str, sa.Table, tuple[str, ...]]] = [
        ("segments", segments, ("key",)),
        ("computed_traits", computed_traits, ("key",)),
        ("templates", templates, ("key",)),
        ("channels", channels, ("key", "kind")),
        ("topics", subscription_topics, ("key",)),
    ]
    for kind, table, columns in sources:
        keys: set[str] = set()
        rows = await conn.execute(
            sa.select(*(table.c[name] for name in columns)).where(
                table.c.workspace_id == workspace_id
            )
        )
        for row in rows:
            keys.update(str(value) for value in row if value is not None)
        found[kind] = keys
    return found
