"""The unit of work of the journey runtime: `JourneyChanges` (everything a batch of
transitions produced) and the SQL that applies it on the caller's transaction — run states,
timers, outbox rows, listeners, profile trait changes, internal events and rollups together, on
SQLite and PostgreSQL. Decides nothing about journeys: the runtime does.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.messages import format_instant, partition_for
from legato.domain.pipeline import INTERNAL
from legato.domain.profiles import ProfileDraft
from legato.store.database import Sql, driver_write
from legato.store.events import LOG_LOCK_KEY
from legato.store.journeys import journey_rollups, outbox, run_listeners, runs, timers
from legato.store.tables import events, profiles


@dataclass(frozen=True, slots=True)
class InternalEvent:
    """An event the platform logs for a person (emitted by a journey, a profile change...)."""

    workspace_id: str
    message_id: str
    event: str
    profile_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    properties: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TraitChange:
    """One trait operation for a profile, at `at_ms` (newest wins against identify calls)."""

    op: str
    trait: str
    value: Any
    at_ms: int


@dataclass(slots=True)
class JourneyChanges:
    """Everything a batch of transitions writes, applied by `JourneyStore.write` at once."""

    new_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Runs whose pending run timers are all deleted before `timers` are inserted.
    cancelled_timers: set[str] = field(default_factory=set)
    timers: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    rollups: Counter[tuple[str, str, int, str, str]] = field(default_factory=Counter)
    #: (workspace, profile, kind, name, run) → until_ms, to insert / to delete.
    listeners_added: dict[tuple[str, str, str, str, str], int | None] = field(default_factory=dict)
    listeners_removed: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    internal_events: list[InternalEvent] = field(default_factory=list)
    trait_changes: dict[tuple[str, str], list[TraitChange]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.new_runs
            or self.updated_runs
            or self.cancelled_timers
            or self.timers
            or self.outbox
            or self.rollups
            or self.listeners_added
            or self.listeners_removed
            or self.internal_events
            or self.trait_changes
        )


# ------------------------------------------------------------------ multi-row statements
#
# A batch writes about one run, one timer and one outbox row per transition: each kind goes to
# the database as ONE statement per batch, its values bound straight through the driver, with
# no SQLAlchemy processing per row. SQLite gets multi-row `VALUES` lists in power-of-two chunks
# (a handful of distinct statement texts, all in the driver's cache; one C call each, where
# executemany would hand the GIL back and forth with the event loop once per row). PostgreSQL
# gets the whole batch as one JSON array that `jsonb_array_elements` unpacks in C (psycopg
# would otherwise adapt, and the server parse and plan, every row on its own). Statement texts
# are built from table and column names only, never from input (hence the S608 waivers).

#: Rows per SQLite statement at most (well under its 32,766 variables for any table here).
_SQLITE_CHUNK = 512


def _chunks(count: int) -> list[tuple[int, int]]:
    """(start, size) of the power-of-two parts `count` rows are written in on SQLite."""
    parts: list[tuple[int, int]] = []
    start = 0
    while start < count:
        size = min(_SQLITE_CHUNK, 1 << ((count - start).bit_length() - 1))
        parts.append((start, size))
        start += size
    return parts


def _pg_value(column: sa.Column[Any], index: int) -> str:
    """The expression reading item `index` of a JSON array row `r` as `column`'s type."""
    kind = column.type
    if isinstance(kind, sa.JSON):
        # A JSON null stands for SQL NULL, as when the value was bound as None.
        return f"NULLIF(r->{index}, 'null'::jsonb)" if column.nullable else f"r->{index}"
    if isinstance(kind, sa.BigInteger):
        return f"(r->>{index})::bigint"
    if isinstance(kind, sa.SmallInteger):
        return f"(r->>{index})::smallint"
    if isinstance(kind, sa.Integer):
        return f"(r->>{index})::integer"
    if isinstance(kind, sa.Boolean):
        return f"(r->>{index})::boolean"
    return f"r->>{index}"


class _Rows:
    """Rows of some columns of a table, bound for one multi-row statement per database."""

    def __init__(self, table: sa.Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.names = ", ".join(self.columns)
        self._json = tuple(
            i for i, name in enumerate(self.columns) if isinstance(table.c[name].type, sa.JSON)
        )
        #: The rows as a relation on PostgreSQL, in array order (one `%s`: the JSON array).
        values = ", ".join(_pg_value(table.c[name], i) for i, name in enumerate(self.columns))
        self.pg_select = (
            f"SELECT {values} "  # noqa: S608
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS g(r, n) ORDER BY n"
        )
        self._row_marks = "(" + ", ".join("?" for _ in self.columns) + ")"
        self._sqlite_values: dict[int, str] = {}

    def sqlite_values(self, rows: int) -> str:
        """`VALUES (?, ...), ...` for `rows` rows."""
        found = self._sqlite_values.get(rows)
        if found is None:
            found = self._sqlite_values[rows] = "VALUES " + ", ".join([self._row_marks] * rows)
        return found

    def pg_parameter(self, rows: Sequence[Sequence[Any]]) -> tuple[str]:
        """The one parameter of the PostgreSQL statement: the rows as a JSON array."""
        return (orjson.dumps(rows).decode(),)

    def sqlite_parameters(self, rows: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        """The flat parameters of a SQLite `VALUES` list (JSON columns serialised here)."""
        if not self._json:
            return tuple(itertools.chain.from_iterable(rows))
        flat: list[Any] = []
        json_at = self._json
        for row in rows:
            values = list(row)
            for i in json_at:
                value = values[i]
                values[i] = None if value is None else orjson.dumps(value).decode()
            flat.extend(values)
        return tuple(flat)


@functools.cache
def _rows(table: sa.Table, columns: tuple[str, ...]) -> _Rows:
    return _Rows(table, columns)


async def insert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    conflict: str = "",
) -> None:
    """INSERT `rows` (values in `columns` order, JSON columns as Python values) in one
    statement per database (a few on SQLite for big batches), in the order given."""
    if not rows:
        return
    shape = _rows(table, tuple(columns))
    head = f"INSERT INTO {table.name} ({shape.names}) "
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"{head}{shape.pg_select} {conflict}", shape.pg_parameter(rows))
        return
    for start, size in _chunks(len(rows)):
        part = rows[start : start + size]
        await conn.exec_driver_sql(
            f"{head}{shape.sqlite_values(size)} {conflict}", shape.sqlite_parameters(part)
        )


async def _with_rows(
    conn: AsyncConnection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    statement: str,
) -> None:
    """Run `statement` (which reads the CTE `v` of `columns`) over `rows`."""
    if not rows:
        return
    shape = _rows(table, tuple(columns))
    head = f"WITH v ({shape.names}) AS "
    # Straight to the driver (no SQLAlchemy result to build: see store/profile_state.py).
    if conn.dialect.name == "postgresql":
        text = f"{head}({shape.pg_select}) {statement}"
        await driver_write(conn, Sql(text, text), shape.pg_parameter(rows))
        return
    for start, size in _chunks(len(rows)):
        part = rows[start : start + size]
        text = f"{head}({shape.sqlite_values(size)}) {statement}"
        await driver_write(conn, Sql(text, text), shape.sqlite_parameters(part))


async def _insert_dicts(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[Mapping[str, Any]], conflict: str = ""
) -> None:
    """INSERT rows given as column → value mappings (all with the keys of the first)."""
    if not rows:
        return
    columns = tuple(rows[0])
    pick = operator.itemgetter(*columns)
    await insert_rows(conn, table, columns, [pick(row) for row in rows], conflict)


_RUN_UPDATE = ("run_id", "status", "node_id", "state", "updated_ms")
_UPDATE_RUNS = (
    f"UPDATE {runs.name} SET status = v.status, node_id = v.node_id, "  # noqa: S608
    f"state = v.state, updated_ms = v.updated_ms FROM v WHERE {runs.name}.run_id = v.run_id"
)
_LISTENER_KEY = ("workspace_id", "profile_id", "kind", "name", "run_id")
_DELETE_LISTENERS = (
    f"DELETE FROM {run_listeners.name} WHERE ({', '.join(_LISTENER_KEY)}) IN "  # noqa: S608
    f"(SELECT {', '.join(_LISTENER_KEY)} FROM v)"
)
_UPSERT_LISTENERS = (
    f"ON CONFLICT ({', '.join(_LISTENER_KEY)}) DO UPDATE SET until_ms = excluded.until_ms"
)
_ROLLUP_KEY = ("workspace_id", "journey_key", "version", "node_id", "metric")
_UPSERT_ROLLUPS = (
    f"ON CONFLICT ({', '.join(_ROLLUP_KEY)}) "
    f"DO UPDATE SET count = {journey_rollups.name}.count + excluded.count"
)
_CANCEL_TIMERS = f"DELETE FROM {timers.name} WHERE kind = 'run' AND owner IN (SELECT owner FROM v)"  # noqa: S608


async def write_changes(conn: AsyncConnection, changes: JourneyChanges, partitions: int) -> None:
    """Apply everything a batch of transitions produced, on the caller's transaction: one
    multi-row statement per kind of row.

    Rows are written in a fixed order (sorted keys), so two transactions touching the same
    rollups or runs lock them in the same order and never deadlock each other.
    """
    if changes.new_runs:
        await _insert_dicts(conn, runs, [changes.new_runs[k] for k in sorted(changes.new_runs)])
    if changes.updated_runs:
        pick = operator.itemgetter(*_RUN_UPDATE)
        rows = [pick(changes.updated_runs[k]) for k in sorted(changes.updated_runs)]
        await _with_rows(conn, runs, _RUN_UPDATE, rows, _UPDATE_RUNS)
    if changes.cancelled_timers:
        owners = [(owner,) for owner in sorted(changes.cancelled_timers)]
        await _with_rows(conn, timers, ("owner",), owners, _CANCEL_TIMERS)
    if changes.timers:
        await _insert_dicts(
            conn,
            timers,
            [changes.timers[k] for k in sorted(changes.timers)],
            "ON CONFLICT DO NOTHING",
        )
    if changes.outbox:
        await _insert_dicts(
            conn,
            outbox,
            sorted(changes.outbox, key=lambda row: str(row["idempotency_key"])),
            "ON CONFLICT (idempotency_key) DO NOTHING",
        )
    if changes.listeners_removed:
        await _with_rows(
            conn,
            run_listeners,
            _LISTENER_KEY,
            sorted(changes.listeners_removed),
            _DELETE_LISTENERS,
        )
    if changes.listeners_added:
        await insert_rows(
            conn,
            run_listeners,
            (*_LISTENER_KEY, "until_ms"),
            [(*key, until) for key, until in sorted(changes.listeners_added.items())],
            _UPSERT_LISTENERS,
        )
    if changes.trait_changes:
        await _change_traits(conn, changes.trait_changes)
    if changes.internal_events:
        await append_internal(conn, changes.internal_events, partitions)
    counts = sorted((key, n) for key, n in changes.rollups.items() if n)
    if counts:
        await insert_rows(
            conn,
            journey_rollups,
            (*_ROLLUP_KEY, "count"),
            [(*key, n) for key, n in counts],
            _UPSERT_ROLLUPS,
        )


async def _change_traits(
    conn: AsyncConnection, changes: Mapping[tuple[str, str], Sequence[TraitChange]]
) -> None:
    by_workspace: dict[str, dict[str, Sequence[TraitChange]]] = {}
    for (workspace_id, profile_id), ops in changes.items():
        by_workspace.setdefault(workspace_id, {})[profile_id] = ops
    for workspace_id, per_profile in sorted(by_workspace.items()):
        rows = await conn.execute(
            sa.select(profiles.c.id, profiles.c.traits, profiles.c.trait_times)
            .where(
                profiles.c.workspace_id == workspace_id,
                profiles.c.id.in_(sorted(per_profile)),
            )
            .order_by(profiles.c.id)
            .with_for_update()
        )
        updates: list[dict[str, Any]] = []
        for row in rows:
            draft = ProfileDraft(traits=dict(row.traits), trait_times=dict(row.trait_times))
            for change in per_profile[row.id]:
                apply_trait_change(draft, change)
            updates.append({"b_id": row.id, "b_traits": draft.traits, "b_times": draft.trait_times})
        if updates:
            await conn.execute(
                profiles.update()
                .where(profiles.c.id == sa.bindparam("b_id"))
                .values(
                    traits=sa.bindparam("b_traits", type_=profiles.c.traits.type),
                    trait_times=sa.bindparam("b_times", type_=profiles.c.trait_times.type),
                ),
                updates,
            )


async def append_internal(
    conn: AsyncConnection, items: Sequence[InternalEvent], partitions: int
) -> None:
    """Log internal events on the caller's transaction, on their person's partition, in one
    multi-row statement (`insert_rows`, in the order given, so `seq` follows it); a duplicate
    message id is skipped.

    On PostgreSQL this takes the log's append lock (as every appender does) so that `seq`
    values commit in order; it is held until the caller's transaction ends.
    """
    if not items:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOG_LOCK_KEY)))
    rows = []
    # A batch holds many events of one person and of one moment: hash and format each once.
    partition_of: dict[str, int] = {}
    instants: dict[int, str] = {}
    for item in items:
        key = item.user_id or item.anonymous_id or item.profile_id
        partition = partition_of.get(key)
        if partition is None:
            partition = partition_of[key] = partition_for(key, partitions)
        instant = instants.get(item.timestamp_ms)
        if instant is None:
            instant = instants[item.timestamp_ms] = format_instant(item.timestamp_ms)
        payload: dict[str, Any] = {
            "type": INTERNAL,
            "event": item.event,
            "messageId": item.message_id,
            "timestamp": instant,
            "properties": dict(item.properties),
        }
        if item.user_id:
            payload["userId"] = item.user_id
        if item.anonymous_id:
            payload["anonymousId"] = item.anonymous_id
        if item.context:
            payload["context"] = {"legato": dict(item.context)}
        rows.append(
            (
                item.workspace_id,
                item.message_id,
                partition,
                INTERNAL,
                item.event,
                item.user_id,
                item.anonymous_id,
                item.profile_id,
                item.timestamp_ms,
                item.timestamp_ms,
                payload,
            )
        )
    await insert_rows(
        conn, events, _INTERNAL_COLUMNS, rows, "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    )


_INTERNAL_COLUMNS = (
    "workspace_id",
    "message_id",
    "partition",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "profile_id",
    "timestamp_ms",
    "received_ms",
    "payload",
)


def apply_trait_change(draft: ProfileDraft, change: TraitChange) -> None:
    """Apply one set/unset/increment to a profile draft, newest-wins like identify calls."""
    kept_at = draft.trait_times.get(change.trait)
    if kept_at is not None and kept_at > change.at_ms:
        return
    if change.op == "unset":
        draft.traits.pop(change.trait, None)
    elif change.op == "increment":
        current = draft.traits.get(change.trait)
        numeric = isinstance(current, int | float) and not isinstance(current, bool)
        draft.traits[change.trait] = (current if numeric else 0) + change.value
    else:
        draft.traits[change.trait] = change.value
    draft.trait_times[change.trait] = change.at_ms
