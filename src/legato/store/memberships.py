"""Segment and computed-trait state in SQL: definitions, members, re-checks, values, backfills.

The segment runtime (`legato.runtime.segments`), its re-check worker and the segment service
read and write the tables of `legato.store.segments` only through this module. Backfills run
the SQL compiler of the condition language (`conditions_sql`) as one INSERT ... SELECT.
Never evaluates a condition in Python and never decides membership itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import ConditionNode, EventFact
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT
from legato.errors import NotFound
from legato.store.conditions_sql import (
    count_matching_profiles,
    matching_profile_ids,
)
from legato.store.database import Database
from legato.store.segments import (
    computed_trait_values,
    computed_traits,
    segment_members,
    segment_rechecks,
    segments,
)
from legato.store.tables import events, identities, profiles

#: Most ids in one IN list (well under SQLite's variable limit).
SLICE = 500


def _slices(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), SLICE):
        yield ids[start : start + SLICE]


def _value_text() -> sa.ColumnElement[str]:
    """A computed value as JSON text: SQLite gives a column declared JSON numeric affinity,
    so a stored `3` reads back as an integer that the JSON type would fail to decode."""
    return sa.cast(computed_trait_values.c.value, sa.Text).label("value")


def _decoded(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@dataclass(frozen=True, slots=True)
class StoredDefinition:
    """One saved segment or computed trait: its document and bookkeeping."""

    key: str
    document: dict[str, Any]
    version: int
    state: str
    created_ms: int
    updated_ms: int


@dataclass(slots=True)
class Facts:
    """What conditions read about one person, as loaded (events keep their log offsets)."""

    traits: dict[str, Any] = field(default_factory=dict)
    computed_traits: dict[str, Any] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)
    #: name -> [(seq, fact)], sorted by (timestamp, seq).
    events: dict[str, list[tuple[int, EventFact]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One computed trait's stored value and aggregator state for one profile."""

    key: str
    profile_id: str
    value: Any
    state: dict[str, Any]
    due_ms: int | None


class MembershipStore:
    """SQL for segments and computed traits (definitions, members, values, re-checks)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------- definitions

    async def definitions(
        self, conn: AsyncConnection, workspace_id: str, kind: str
    ) -> list[StoredDefinition]:
        """Every segment (`kind` "segment") or computed trait ("computed_trait"), by key."""
        table = segments if kind == "segment" else computed_traits
        rows = await conn.execute(
            sa.select(
                table.c.key,
                table.c.document,
                table.c.version,
                table.c.state,
                table.c.created_ms,
                table.c.updated_ms,
            )
            .where(table.c.workspace_id == workspace_id)
            .order_by(table.c.key)
        )
        return [StoredDefinition(*row) for row in rows]

    async def signature(self, conn: AsyncConnection, workspace_id: str) -> tuple[Any, ...]:
        """What changes whenever a definition of the workspace is saved or deleted."""
        parts: list[Any] = []
        for table in (segments, computed_traits):
            row = (
                await conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.max(table.c.updated_ms),
                        sa.func.sum(table.c.version),
                    ).where(table.c.workspace_id == workspace_id)
                )
            ).one()
            parts.extend(row)
        return tuple(parts)

    async def save_definition(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        kind: str,
        key: str,
        document: dict[str, Any],
        now_ms: int,
        *,
        name: str | None = None,
        description: str | None = None,
        static: bool = False,
    ) -> tuple[int, bool]:
        """Insert or replace a definition (state "backfilling"); (version, created)."""
        table = segments if kind == "segment" else computed_traits
        current = (
            await conn.execute(
                sa.select(table.c.version).where(
                    table.c.workspace_id == workspace_id, table.c.key == key
                )
            )
        ).scalar_one_or_none()
        values: dict[str, Any] = {
            "document": document,
            "state": "backfilling",
            "updated_ms": now_ms,
        }
        if kind == "segment":
            values |= {"name": name or key, "description": description, "static": static}
        if current is None:
            await conn.execute(
                table.insert().values(
                    workspace_id=workspace_id, key=key, version=1, created_ms=now_ms, **values
                )
            )
            return 1, True
        await conn.execute(
            table.update()
            .where(table.c.workspace_id == workspace_id, table.c.key == key)
            .values(version=current + 1, **values)
        )
        return current + 1, False

    async def set_state(
        self, conn: AsyncConnection, workspace_id: str, kind: str, key: str, state: str
    ) -> None:
        """Mark a definition "backfilling" or "live"."""
        table = segments if kind == "segment" else computed_traits
        await conn.execute(
            table.update()
            .where(table.c.workspace_id == workspace_id, table.c.key == key)
            .values(state=state)
        )

    async def delete_definition(
        self, conn: AsyncConnection, workspace_id: str, kind: str, key: str
    ) -> None:
        """Delete a definition and everything kept for it (NotFound if there is none)."""
        if kind == "segment":
            table = segments
            for owned in (segment_members, segment_rechecks):
                await conn.execute(
                    owned.delete().where(
                        owned.c.workspace_id == workspace_id, owned.c.segment_key == key
                    )
                )
        else:
            table = computed_traits
            await conn.execute(
                computed_trait_values.delete().where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.key == key,
                )
            )
        result = await conn.execute(
            table.delete().where(table.c.workspace_id == workspace_id, table.c.key == key)
        )
        if result.rowcount == 0:
            raise NotFound(f"no {kind.replace('_', ' ')} {key!r}", key=key)

    # ------------------------------------------------------------------------ facts

    async def facts(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        event_names: Iterable[str],
    ) -> dict[str, Facts]:
        """Traits, computed traits, memberships and the named events of these people."""
        people = sorted(set(profile_ids))
        names = sorted(set(event_names))
        found = {p: Facts() for p in people}
        for part in _slices(people):
            for profile_id, traits in await conn.execute(
                sa.select(profiles.c.id, profiles.c.traits).where(profiles.c.id.in_(part))
            ):
                found[profile_id].traits = dict(traits)
            for profile_id, segment in await conn.execute(
                sa.select(segment_members.c.profile_id, segment_members.c.segment_key).where(
                    segment_members.c.workspace_id == workspace_id,
                    segment_members.c.profile_id.in_(part),
                )
            ):
                found[profile_id].segments.add(segment)
            for profile_id, key, value in await conn.execute(
                sa.select(
                    computed_trait_values.c.profile_id,
                    computed_trait_values.c.key,
                    _value_text(),
                ).where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.profile_id.in_(part),
                )
            ):
                found[profile_id].computed_traits[key] = _decoded(value)
            if not names:
                continue
            for profile_id, name, seq, at_ms, properties in await conn.execute(
                sa.select(
                    events.c.profile_id,
                    events.c.event,
                    events.c.seq,
                    events.c.timestamp_ms,
                    events.c.payload["properties"].label("properties"),
                )
                .where(events.c.profile_id.in_(part), events.c.event.in_(names))
                .order_by(events.c.timestamp_ms, events.c.seq)
            ):
                found[profile_id].events.setdefault(name, []).append(
                    (
                        seq,
                        EventFact(name, at_ms, properties if isinstance(properties, dict) else {}),
                    )
                )
        return found

    async def user_ids(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        """The user id of each of these profiles that has one."""
        found: dict[str, str] = {}
        for part in _slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(identities.c.profile_id, identities.c.value).where(
                    identities.c.profile_id.in_(part),
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == "user_id",
                )
            )
            found.update({profile: value for profile, value in rows})
        return found

    # ---------------------------------------------------------------- memberships

    async def write_members(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        entered: Iterable[tuple[str, str, int]],
        exited: Iterable[tuple[str, str]],
    ) -> None:
        """Insert (segment, profile, entered_ms) and delete (segment, profile) memberships."""
        rows = [
            {"workspace_id": workspace_id, "segment_key": s, "profile_id": p, "entered_ms": at}
            for s, p, at in entered
        ]
        if rows:
            await conn.execute(_insert(conn, segment_members).on_conflict_do_nothing(), rows)
        gone = sorted(exited)
        if gone:
            await conn.execute(
                segment_members.delete().where(
                    segment_members.c.workspace_id == sa.bindparam("w"),
                    segment_members.c.segment_key == sa.bindparam("s"),
                    segment_members.c.profile_id == sa.bindparam("p"),
                ),
                [{"w": workspace_id, "s": s, "p": p} for s, p in gone],
            )

    async def write_rechecks(
        self, conn: AsyncConnection, workspace_id: str, due: Mapping[tuple[str, str], int | None]
    ) -> None:
        """Set (segment, profile) -> due_ms; None removes the re-check."""
        keep = [
            {"workspace_id": workspace_id, "segment_key": s, "profile_id": p, "due_ms": at}
            for (s, p), at in sorted(due.items())
            if at is not None
        ]
        if keep:
            statement = _insert(conn, segment_rechecks)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["workspace_id", "segment_key", "profile_id"],
                    set_={"due_ms": statement.excluded.due_ms},
                ),
                keep,
            )
        drop = sorted(key for key, at in due.items() if at is None)
        if drop:
            await conn.execute(
                segment_rechecks.delete().where(
                    segment_rechecks.c.workspace_id == sa.bindparam("w"),
                    segment_rechecks.c.segment_key == sa.bindparam("s"),
                    segment_rechecks.c.profile_id == sa.bindparam("p"),
                ),
                [{"w": workspace_id, "s": s, "p": p} for s, p in drop],
            )

    async def claim_rechecks(
        self, conn: AsyncConnection, now_ms: int, limit: int
    ) -> list[tuple[str, str, str, int]]:
        """Take (delete) up to `limit` due re-checks, earliest first (ws, segment, profile, due)."""
        query = (
            sa.select(
                segment_rechecks.c.workspace_id,
                segment_rechecks.c.segment_key,
                segment_rechecks.c.profile_id,
                segment_rechecks.c.due_ms,
            )
            .where(segment_rechecks.c.due_ms <= now_ms)
            .order_by(segment_rechecks.c.due_ms)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = [tuple(row) for row in await conn.execute(query)]
        for ws, segment_key, profile_id, due in rows:
            await conn.execute(
                segment_rechecks.delete().where(
                    segment_rechecks.c.workspace_id == ws,
                    segment_rechecks.c.segment_key == segment_key,
                    segment_rechecks.c.profile_id == profile_id,
                    segment_rechecks.c.due_ms == due,
                )
            )
        return [(str(w), str(s), str(p), int(d)) for w, s, p, d in rows]

    async def next_due(self, conn: AsyncConnection) -> int | None:
        """The earliest re-check or computed-trait change due (None: nothing scheduled)."""
        first = (await conn.execute(sa.select(sa.func.min(segment_rechecks.c.due_ms)))).scalar()
        second = (
            await conn.execute(sa.select(sa.func.min(computed_trait_values.c.due_ms)))
        ).scalar()
        dues = [int(d) for d in (first, second) if d is not None]
        return min(dues) if dues else None

    async def members(
        self, conn: AsyncConnection, workspace_id: str, key: str, after: str, limit: int
    ) -> list[tuple[str, int]]:
        """(profile id, entered_ms) of members after `after`, by profile id."""
        rows = await conn.execute(
            sa.select(segment_members.c.profile_id, segment_members.c.entered_ms)
            .where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.segment_key == key,
                segment_members.c.profile_id > after,
            )
            .order_by(segment_members.c.profile_id)
            .limit(limit)
        )
        return [(str(p), int(at)) for p, at in rows]

    async def member_count(self, conn: AsyncConnection, workspace_id: str, key: str) -> int:
        """How many members a segment has."""
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).where(
                        segment_members.c.workspace_id == workspace_id,
                        segment_members.c.segment_key == key,
                    )
                )
            ).scalar_one()
        )

    async def memberships_of(
        self, conn: AsyncConnection, workspace_id: str, profile_id: str
    ) -> dict[str, int]:
        """segment key -> entered_ms of one profile's memberships."""
        rows = await conn.execute(
            sa.select(segment_members.c.segment_key, segment_members.c.entered_ms).where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.profile_id == profile_id,
            )
        )
        return {str(k): int(at) for k, at in rows}

    async def membership_events(
        self, conn: AsyncConnection, workspace_id: str, profile_id: str, limit: int
    ) -> list[tuple[int, str, int, dict[str, Any]]]:
        """(seq, event name, timestamp_ms, properties) of a profile's Segment Entered/Exited."""
        rows = await conn.execute(
            sa.select(
                events.c.seq,
                events.c.event,
                events.c.timestamp_ms,
                events.c.payload["properties"].label("properties"),
            )
            .where(
                events.c.profile_id == profile_id,
                events.c.workspace_id == workspace_id,
                events.c.event.in_([SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT]),
            )
            .order_by(events.c.timestamp_ms.desc(), events.c.seq.desc())
            .limit(limit)
        )
        return [(int(s), str(e), int(t), p if isinstance(p, dict) else {}) for s, e, t, p in rows]

    # -------------------------------------------------------------------- backfills

    async def replace_members(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        key: str,
        condition: ConditionNode,
        now_ms: int,
    ) -> int:
        """Membership of `key` := the profiles for which `condition` holds (one INSERT SELECT).

        Members who stay keep their entry time; returns the member count.
        """
        dialect = conn.dialect.name
        matching = matching_profile_ids(
            condition, dialect=dialect, workspace_id=workspace_id, now_ms=now_ms
        ).subquery("matching")
        await conn.execute(
            segment_members.delete().where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.segment_key == key,
                segment_members.c.profile_id.not_in(sa.select(matching.c.id)),
            )
        )
        fresh = sa.select(
            sa.literal(workspace_id, sa.String),
            sa.literal(key, sa.String),
            matching.c.id,
            sa.literal(now_ms, sa.BigInteger),
        ).where(sa.true())  # SQLite reads ON CONFLICT after a bare SELECT as a join clause
        await conn.execute(
            _insert(conn, segment_members)
            .from_select(["workspace_id", "segment_key", "profile_id", "entered_ms"], fresh)
            .on_conflict_do_nothing()
        )
        return await self.member_count(conn, workspace_id, key)

    async def member_ids(self, conn: AsyncConnection, workspace_id: str, key: str) -> set[str]:
        """Every member of a segment (diffs around an edit)."""
        rows = await conn.execute(
            sa.select(segment_members.c.profile_id).where(
                segment_members.c.workspace_id == workspace_id,
                segment_members.c.segment_key == key,
            )
        )
        return {str(p) for (p,) in rows}

    async def count_matching(
        self, conn: AsyncConnection, workspace_id: str, condition: ConditionNode, now_ms: int
    ) -> int:
        """How many live profiles a condition holds for now (a preview, nothing saved)."""
        statement = count_matching_profiles(
            condition, dialect=conn.dialect.name, workspace_id=workspace_id, now_ms=now_ms
        )
        return int((await conn.execute(statement)).scalar_one())

    async def profile_page(
        self, conn: AsyncConnection, workspace_id: str, after: str, limit: int
    ) -> list[str]:
        """Ids of live profiles after `after`, by id (backfills walk them page by page)."""
        rows = await conn.execute(
            sa.select(profiles.c.id)
            .where(
                profiles.c.workspace_id == workspace_id,
                profiles.c.merged_into.is_(None),
                profiles.c.id > after,
            )
            .order_by(profiles.c.id)
            .limit(limit)
        )
        return [str(p) for (p,) in rows]

    async def profile_total(self, conn: AsyncConnection, workspace_id: str) -> int:
        """How many live profiles the workspace has."""
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).where(
                        profiles.c.workspace_id == workspace_id, profiles.c.merged_into.is_(None)
                    )
                )
            ).scalar_one()
        )

    async def resolve_identifiers(
        self, conn: AsyncConnection, workspace_id: str, kind: str, values: Sequence[str]
    ) -> dict[str, str]:
        """identifier value -> live profile id, for one identifier kind."""
        found: dict[str, str] = {}
        for part in _slices(sorted(set(values))):
            rows = await conn.execute(
                sa.select(identities.c.value, identities.c.profile_id).where(
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == kind,
                    identities.c.value.in_(part),
                )
            )
            found.update({str(v): str(p) for v, p in rows})
        return found

    async def canonical(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Sequence[str]
    ) -> set[str]:
        """Which of these ids are live profiles of the workspace."""
        found: set[str] = set()
        for part in _slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(profiles.c.id).where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.merged_into.is_(None),
                    profiles.c.id.in_(part),
                )
            )
            found.update(str(p) for (p,) in rows)
        return found

    # ------------------------------------------------------------- computed traits

    async def values(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        keys: Iterable[str],
        profile_ids: Iterable[str],
    ) -> dict[tuple[str, str], ValueRow]:
        """Stored values and states of these traits for these people, by (key, profile)."""
        keys = sorted(set(keys))
        found: dict[tuple[str, str], ValueRow] = {}
        if not keys:
            return found
        for part in _slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(
                    computed_trait_values.c.key,
                    computed_trait_values.c.profile_id,
                    _value_text(),
                    computed_trait_values.c.state,
                    computed_trait_values.c.due_ms,
                ).where(
                    computed_trait_values.c.workspace_id == workspace_id,
                    computed_trait_values.c.key.in_(keys),
                    computed_trait_values.c.profile_id.in_(part),
                )
            )
            for key, profile_id, value, state, due in rows:
                found[(key, profile_id)] = ValueRow(
                    key, profile_id, _decoded(value), dict(state), due
                )
        return found

    async def write_values(
        self, conn: AsyncConnection, workspace_id: str, rows: Sequence[ValueRow], now_ms: int
    ) -> None:
        """Upsert computed-trait values with their states and due moments."""
        if not rows:
            return
        statement = _insert(conn, computed_trait_values)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["workspace_id", "key", "profile_id"],
                set_={
                    "value": statement.excluded.value,
                    "state": statement.excluded.state,
                    "due_ms": statement.excluded.due_ms,
                    "updated_ms": statement.excluded.updated_ms,
                },
            ),
            [
                {
                    "workspace_id": workspace_id,
                    "key": row.key,
                    "profile_id": row.profile_id,
                    # JSON null must be stored as JSON, not SQL NULL (the column is NOT NULL).
                    "value": sa.JSON.NULL if row.value is None else row.value,
                    "state": row.state,
                    "due_ms": row.due_ms,
                    "updated_ms": now_ms,
                }
                for row in rows
            ],
        )

    async def delete_values(self, conn: AsyncConnection, workspace_id: str, key: str) -> None:
        """Forget every value of a computed trait (before it is computed again)."""
        await conn.execute(
            computed_trait_values.delete().where(
                computed_trait_values.c.workspace_id == workspace_id,
                computed_trait_values.c.key == key,
            )
        )

    async def claim_due_values(
        self, conn: AsyncConnection, now_ms: int, limit: int
    ) -> list[tuple[str, ValueRow]]:
        """Computed-trait values whose window changes them by now: (workspace, row)."""
        query = (
            sa.select(
                computed_trait_values.c.workspace_id,
                computed_trait_values.c.key,
                computed_trait_values.c.profile_id,
                _value_text(),
                computed_trait_values.c.state,
                computed_trait_values.c.due_ms,
            )
            .where(computed_trait_values.c.due_ms <= now_ms)
            .order_by(computed_trait_values.c.due_ms)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [
            (str(ws), ValueRow(key, profile_id, _decoded(value), dict(state), due))
            for ws, key, profile_id, value, state, due in await conn.execute(query)
        ]

    async def trait_events(
        self, workspace_id: str, name: str, *, page: int = 20_000
    ) -> AsyncIterator[list[tuple[str, int, int, dict[str, Any]]]]:
        """(profile, seq, timestamp_ms, properties) of every event of `name` with a profile,
        by profile then time, a page at a time (computed-trait backfills)."""
        after: tuple[str, int] = ("", -1)
        while True:
            async with self.db.connect() as conn:
                rows = [
                    (str(p), int(s), int(t), props if isinstance(props, dict) else {})
                    for p, s, t, props in await conn.execute(
                        sa.select(
                            events.c.profile_id,
                            events.c.seq,
                            events.c.timestamp_ms,
                            events.c.payload["properties"].label("properties"),
                        )
                        .where(
                            events.c.workspace_id == workspace_id,
                            events.c.event == name,
                            events.c.profile_id.is_not(None),
                            sa.tuple_(events.c.profile_id, events.c.seq) > sa.tuple_(*after),
                        )
                        .order_by(events.c.profile_id, events.c.seq)
                        .limit(page)
                    )
                ]
            if not rows:
                return
            yield rows
            after = (rows[-1][0], rows[-1][1])
