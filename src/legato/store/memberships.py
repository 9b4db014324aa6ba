"""Segment and computed-trait state in SQL: members, re-checks, the facts conditions read,
backfills; with definitions (`definitions`) and computed values (`computed_values`) mixed in.

The segment runtime (`legato.runtime.segments`), its re-check worker and the segment service
read and write the tables of `legato.store.segments` only through `MembershipStore`. Backfills
run the SQL compiler of the condition language (`conditions_sql`) as one INSERT ... SELECT.
Never evaluates a condition in Python and never decides membership itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.conditions import ConditionNode, EventFact
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT
from legato.store.computed_values import ComputedValueQueries, ValueRow, decoded, value_text
from legato.store.conditions_sql import (
    count_matching_profiles,
    matching_profile_ids,
)
from legato.store.database import (
    Database,
    Sql,
    driver_rows,
    insert_for,
    json_text,
    json_value,
    slices,
)
from legato.store.definitions import DefinitionQueries, StoredDefinition
from legato.store.segments import computed_trait_values, segment_members, segment_rechecks
from legato.store.tables import events, identities, profiles

#: The advisory lock key of segment definitions on PostgreSQL ("lgsegdef" as a big-endian int8).
DEFINITIONS_LOCK_KEY = int.from_bytes(b"lgsegdef", "big")


@dataclass(slots=True)
class Facts:
    """What conditions read about one person, as loaded (events keep their log offsets)."""

    traits: dict[str, Any] = field(default_factory=dict)
    computed_traits: dict[str, Any] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)
    #: segment key -> due_ms of the re-checks asked for (to write only those that change).
    rechecks: dict[str, int] = field(default_factory=dict)
    #: name -> [(seq, fact)], sorted by (timestamp, seq).
    events: dict[str, list[tuple[int, EventFact]]] = field(default_factory=dict)


class MembershipStore(DefinitionQueries, ComputedValueQueries):
    """SQL for segments and computed traits (definitions, members, values, re-checks)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def facts(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        event_names: Iterable[str],
        recheck_keys: Iterable[str] = (),
        upto_seq: int | None = None,
        *,
        computed: bool = True,
        with_properties: Iterable[str] | None = None,
    ) -> dict[str, Facts]:
        """Traits, computed traits (unless `computed` is False), memberships, the named
        events of these people (logged at or before offset `upto_seq`, if given), and their
        re-checks of `recheck_keys`. Events keep their properties only if their name is in
        `with_properties` (None: all do); the others are read for their timestamps alone."""
        people = sorted(set(profile_ids))
        names = sorted(set(event_names))
        # Properties mean parsing every payload: read only where a filter needs them.
        filtered = sorted(set(names if with_properties is None else with_properties) & set(names))
        timed = sorted(set(recheck_keys))
        found = {p: Facts() for p in people}
        for part in slices(people):
            for profile_id, traits in await conn.execute(
                sa.select(profiles.c.id, profiles.c.traits).where(profiles.c.id.in_(part))
            ):
                found[profile_id].traits = dict(traits)
            if conn.dialect.name == "sqlite":
                # Without statistics SQLite prefers scanning the workspace's whole primary key
                # (it covers the query) to probing the (workspace, profile) index: told which.
                memberships = await conn.execute(
                    _SQLITE_MEMBERS_OF, {"ws": workspace_id, "ids": orjson.dumps(part).decode()}
                )
            else:
                memberships = await conn.execute(
                    sa.select(segment_members.c.profile_id, segment_members.c.segment_key).where(
                        segment_members.c.workspace_id == workspace_id,
                        segment_members.c.profile_id.in_(part),
                    )
                )
            for profile_id, segment in memberships:
                found[profile_id].segments.add(segment)
            if timed:
                # By primary key (workspace, segment, profile): no scan of the workspace's rows.
                for profile_id, segment, due in await conn.execute(
                    sa.select(
                        segment_rechecks.c.profile_id,
                        segment_rechecks.c.segment_key,
                        segment_rechecks.c.due_ms,
                    ).where(
                        segment_rechecks.c.workspace_id == workspace_id,
                        segment_rechecks.c.segment_key.in_(timed),
                        segment_rechecks.c.profile_id.in_(part),
                    )
                ):
                    found[profile_id].rechecks[segment] = int(due)
            if computed:
                for profile_id, key, value in await conn.execute(
                    sa.select(
                        computed_trait_values.c.profile_id,
                        computed_trait_values.c.key,
                        value_text(),
                    ).where(
                        computed_trait_values.c.workspace_id == workspace_id,
                        computed_trait_values.c.profile_id.in_(part),
                    )
                ):
                    found[profile_id].computed_traits[key] = decoded(value)
            if not names:
                continue
            # Often thousands of rows per chunk: by the driver, without SQLAlchemy's per-row
            # result processing (it cost more than the query itself, measured).
            rows = await driver_rows(
                conn,
                _EVENTS_WITH_PROPERTIES if filtered else _EVENTS_OF,
                (
                    *((json_text(filtered),) if filtered else ()),
                    json_text(part),
                    json_text(names),
                    _NO_LIMIT if upto_seq is None else upto_seq,
                ),
            )
            for profile_id, name, seq, at_ms, properties in rows:
                if properties is not None:
                    properties = json_value(properties)
                found[profile_id].events.setdefault(name, []).append(
                    (
                        seq,
                        EventFact(name, at_ms, properties if isinstance(properties, dict) else {}),
                    )
                )
        return found

    async def without_history(
        self, conn: AsyncConnection, profile_ids: Iterable[str], before_seq: int
    ) -> set[str]:
        """Which of these profiles have no event logged before offset `before_seq`."""
        people = sorted(set(profile_ids))
        seen: set[str] = set()
        for part in slices(people):
            # EXISTS stops at the first earlier event (the oldest, in index order): O(1) for a
            # profile with a long history.
            earlier = sa.exists().where(
                events.c.profile_id == profiles.c.id, events.c.seq < before_seq
            )
            rows = await conn.execute(
                sa.select(profiles.c.id).where(profiles.c.id.in_(part), earlier)
            )
            seen.update(str(p) for (p,) in rows)
        return set(people) - seen

    async def user_ids(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, str]:
        """The user id of each of these profiles that has one."""
        found: dict[str, str] = {}
        for part in slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(identities.c.profile_id, identities.c.value).where(
                    identities.c.profile_id.in_(part),
                    identities.c.workspace_id == workspace_id,
                    identities.c.kind == "user_id",
                )
            )
            found.update({profile: value for profile, value in rows})
        return found

    # ------------------------------------------------------------------- handover

    async def hold_definitions(self, conn: AsyncConnection, *, exclusive: bool = False) -> None:
        """Take the segment-definition lock until the caller's transaction ends.

        Live evaluation (pipeline chunks, re-checks) takes it shared before it reads which
        segments exist; a backfill takes it exclusive before it reads history. So a backfill
        waits for every chunk that may have been compiled without its segment (and whose
        writes it must see), and a chunk that reads the definitions after a backfill has
        started waits for the backfill's answer before it evaluates the segment live.
        PostgreSQL only: on SQLite every writing transaction already excludes the others.
        """
        if conn.dialect.name != "postgresql":
            return
        lock = sa.func.pg_advisory_xact_lock if exclusive else sa.func.pg_advisory_xact_lock_shared
        await conn.execute(sa.select(lock(DEFINITIONS_LOCK_KEY)))

    # ---------------------------------------------------------------- memberships

    async def write_members(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        entered: Iterable[tuple[str, str, int]],
        exited: Iterable[tuple[str, str]],
    ) -> None:
        """Insert (segment, profile, entered_ms) and delete (segment, profile) memberships,
        one statement each however many rows."""
        rows = [list(row) for row in entered]
        if rows:
            await _run_bulk(conn, _INSERT_MEMBERS, workspace_id, rows)
        gone = sorted(exited)
        if gone:
            await _run_bulk(conn, _DELETE_MEMBERS, workspace_id, gone)

    async def write_rechecks(
        self, conn: AsyncConnection, workspace_id: str, due: Mapping[tuple[str, str], int | None]
    ) -> None:
        """Set (segment, profile) -> due_ms; None removes the re-check (one statement each)."""
        keep = [[s, p, at] for (s, p), at in sorted(due.items()) if at is not None]
        if keep:
            await _run_bulk(conn, _UPSERT_RECHECKS, workspace_id, keep)
        drop = sorted(key for key, at in due.items() if at is None)
        if drop:
            await _run_bulk(conn, _DELETE_RECHECKS, workspace_id, drop)

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
        rows = [(str(w), str(s), str(p), int(d)) for w, s, p, d in await conn.execute(query)]
        by_workspace: dict[str, list[list[Any]]] = {}
        for ws, segment_key, profile_id, due in rows:
            by_workspace.setdefault(ws, []).append([segment_key, profile_id, due])
        for ws, claimed in sorted(by_workspace.items()):
            await _run_bulk(conn, _DELETE_DUE_RECHECKS, ws, claimed)
        return rows

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
        # Unordered: a set to delete against and insert from (the sort would only cost).
        matching = (
            matching_profile_ids(
                condition, dialect=dialect, workspace_id=workspace_id, now_ms=now_ms
            )
            .order_by(None)
            .subquery("matching")
        )
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
            insert_for(conn, segment_members)
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
        for part in slices(sorted(set(values))):
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
        for part in slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(profiles.c.id).where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.merged_into.is_(None),
                    profiles.c.id.in_(part),
                )
            )
            found.update(str(p) for (p,) in rows)
        return found


#: `seq <= ?` when every logged event is wanted (the largest int8).
_NO_LIMIT = 2**63 - 1


def _events_of(properties: Sql) -> Sql:
    # Events of some names of some people, up to a log offset; the (profile_id, event,
    # timestamp_ms) index answers it (index-only on SQLite without properties).
    return Sql(
        f"SELECT profile_id, event, seq, timestamp_ms, {properties.sqlite} FROM {events.name} "  # noqa: S608
        "WHERE profile_id IN (SELECT value FROM json_each(?)) "
        "AND event IN (SELECT value FROM json_each(?)) AND seq <= ? "
        "ORDER BY timestamp_ms, seq",
        f"SELECT profile_id, event, seq, timestamp_ms, {properties.postgresql} "  # noqa: S608
        f"FROM {events.name} "
        "WHERE profile_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) "
        "AND event = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) AND seq <= %s "
        "ORDER BY timestamp_ms, seq",
    )


_EVENTS_OF = _events_of(Sql("NULL", "NULL"))
#: The same, with the properties (JSON text) of the events whose name is in the first parameter.
_EVENTS_WITH_PROPERTIES = _events_of(
    Sql(
        "CASE WHEN event IN (SELECT value FROM json_each(?)) "
        "THEN json_quote(json_extract(payload, '$.properties')) END",
        "CASE WHEN event = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) "
        "THEN (payload->'properties')::text END",
    )
)

_SQLITE_MEMBERS_OF = sa.text(
    f"SELECT profile_id, segment_key FROM {segment_members.name} "  # noqa: S608
    "INDEXED BY ix_segment_members_workspace_profile "
    "WHERE workspace_id = :ws AND profile_id IN (SELECT value FROM json_each(:ids))"
)

# ------------------------------------------------------------------ bulk statements
#
# Many rows, one statement, one parameter: the rows travel as one JSON array that the database
# unpacks in C (SQLite `json_each`, PostgreSQL `jsonb_array_elements`), instead of SQLAlchemy
# building parameters row by row (an executemany costs more in Python than the writes do).
# Each statement is (SQLite text, PostgreSQL text); `:ws` is the workspace, `:rows` the JSON.
# Built from constants only, hence the S608 waivers.

#: One statement per dialect.
_Bulk = dict[str, sa.TextClause]


def _rows_from(dialect: str, types: Sequence[str]) -> tuple[list[str], str]:
    """Column expressions and FROM clause reading `:rows` (one JSON array per row)."""
    if dialect == "postgresql":
        columns = [f"CAST(r->>{i} AS {t})" for i, t in enumerate(types)]
        return columns, "jsonb_array_elements(CAST(:rows AS jsonb)) AS g(r)"
    return [f"json_extract(g.value, '$[{i}]')" for i in range(len(types))], "json_each(:rows) AS g"


def _bulk_insert(table: sa.Table, columns: Sequence[str], types: Sequence[str], tail: str) -> _Bulk:
    def text(dialect: str) -> str:
        values, source = _rows_from(dialect, types)
        # `WHERE true`: SQLite would read ON CONFLICT after a bare FROM as a join constraint.
        return (
            f"INSERT INTO {table.name} (workspace_id, {', '.join(columns)}) "  # noqa: S608
            f"SELECT :ws, {', '.join(values)} FROM {source} WHERE true {tail}"
        )

    return {name: sa.text(text(name)) for name in ("sqlite", "postgresql")}


def _bulk_delete(table: sa.Table, columns: Sequence[str], types: Sequence[str]) -> _Bulk:
    def text(dialect: str) -> str:
        values, source = _rows_from(dialect, types)
        # A row-value IN over a subquery: both databases look each row up by primary key.
        return (
            f"DELETE FROM {table.name} WHERE workspace_id = :ws "  # noqa: S608
            f"AND ({', '.join(columns)}) IN (SELECT {', '.join(values)} FROM {source})"
        )

    return {name: sa.text(text(name)) for name in ("sqlite", "postgresql")}


_INSERT_MEMBERS = _bulk_insert(
    segment_members,
    ["segment_key", "profile_id", "entered_ms"],
    ["text", "text", "bigint"],
    "ON CONFLICT DO NOTHING",
)
_DELETE_MEMBERS = _bulk_delete(segment_members, ["segment_key", "profile_id"], ["text", "text"])
_UPSERT_RECHECKS = _bulk_insert(
    segment_rechecks,
    ["segment_key", "profile_id", "due_ms"],
    ["text", "text", "bigint"],
    "ON CONFLICT (workspace_id, segment_key, profile_id) DO UPDATE SET due_ms = excluded.due_ms",
)
_DELETE_RECHECKS = _bulk_delete(segment_rechecks, ["segment_key", "profile_id"], ["text", "text"])
_DELETE_DUE_RECHECKS = _bulk_delete(
    segment_rechecks, ["segment_key", "profile_id", "due_ms"], ["text", "text", "bigint"]
)


async def _run_bulk(
    conn: AsyncConnection, statement: _Bulk, workspace_id: str, rows: Sequence[Any]
) -> None:
    await conn.execute(
        statement[conn.dialect.name], {"ws": workspace_id, "rows": orjson.dumps(rows).decode()}
    )


__all__ = ["Facts", "MembershipStore", "StoredDefinition", "ValueRow"]
