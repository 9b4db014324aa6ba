"""Deliveries in SQL: the queue the delivery worker drains — queueing, claiming, marking sends,
settling, recovering what a vanished worker held — and what it reads in bulk (recent sends for
frequency caps). The table and its values are `store.delivery_rows`; the history reads of the
admin API are `store.delivery_history`; what delivery reads about people is `store.recipients`.

Lifecycle (`status`): queued → claimed (a worker holds it; it has not reached a provider) →
sending (handed to a provider: the outcome is unknown until recorded) → sent / delivered /
bounced / complained, or skipped (gate or render said no), failed (permanent error), dead
(retries exhausted, or interrupted while sending). Every transition names the claim token of
the worker that holds the row, so a worker whose lease lapsed cannot overwrite another's work.
Decides nothing: `legato.runtime.delivery` does.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.delivery import MessageCategory, RecentSend
from legato.store.database import SLICE, insert_for, slices
from legato.store.delivery_history import DeliveryHistory
from legato.store.delivery_rows import (
    ID_CHARS,
    PRIORITY_BULK,
    PRIORITY_TRANSACTIONAL,
    REPLAYABLE,
    SENT_STATUSES,
    STATUSES,
    DeliveryRow,
    NewDelivery,
    Settlement,
    deliveries,
    delivery_row,
    delivery_secrets,
)

__all__ = [
    "PRIORITY_BULK",
    "PRIORITY_TRANSACTIONAL",
    "REPLAYABLE",
    "SENT_STATUSES",
    "SLICE",
    "STATUSES",
    "DeliveryHistory",
    "DeliveryRow",
    "DeliveryStore",
    "NewDelivery",
    "Settlement",
    "deliveries",
    "delivery_secrets",
]


class DeliveryStore(DeliveryHistory):
    """The deliveries table: queueing, claiming and settling for the worker, plus the
    history reads (`DeliveryHistory`) and the process's secrets."""

    # -- queueing -------------------------------------------------------------------------------

    async def enqueue(
        self, conn: AsyncConnection, items: Sequence[NewDelivery], ids: Sequence[str], now_ms: int
    ) -> None:
        """Queue messages on the caller's transaction; a key already queued is left alone."""
        if not items:
            return
        await conn.execute(
            insert_for(conn, deliveries).on_conflict_do_nothing(
                index_elements=[deliveries.c.workspace_id, deliveries.c.key]
            ),
            [
                {
                    "id": delivery_id,
                    "workspace_id": item.workspace_id,
                    "key": item.key,
                    "source": item.source,
                    "priority": item.priority,
                    "profile_id": item.profile_id,
                    "channel": item.channel,
                    "template": item.template,
                    "topic": item.topic,
                    "journey_key": item.journey_key,
                    "journey_version": item.journey_version,
                    "run_id": item.run_id,
                    "node_id": item.node_id,
                    "request": dict(item.request),
                    "status": "queued",
                    "attempts": 0,
                    "next_attempt_ms": now_ms,
                    "created_ms": now_ms,
                    "updated_ms": now_ms,
                }
                for delivery_id, item in zip(ids, items, strict=True)
            ],
        )

    async def by_key(self, workspace_id: str, key: str) -> DeliveryRow | None:
        """The delivery queued under an idempotency key, if any."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries).where(
                        deliveries.c.workspace_id == workspace_id, deliveries.c.key == key
                    )
                )
            ).first()
        return None if row is None else delivery_row(row)

    # -- claiming and settling ------------------------------------------------------------------

    async def claim(
        self,
        now_ms: int,
        limit: int,
        *,
        claim: str,
        lease_ms: int,
        lane: tuple[int, int] = (0, 1),
    ) -> list[DeliveryRow]:
        """Claim up to `limit` due deliveries, transactional first, then oldest due first.

        `lane` (index, count) takes only the people of one lane: a person's messages always
        fall in the same lane (by the last character of the profile id; messages without a
        profile in lane 0), so lanes working at once never race on one person's caps.
        """
        async with self.db.transaction() as conn:
            ready = (
                sa.select(deliveries.c.id)
                .where(deliveries.c.status == "queued", deliveries.c.next_attempt_ms <= now_ms)
                .order_by(deliveries.c.priority, deliveries.c.next_attempt_ms, deliveries.c.id)
                .limit(limit)
            )
            index, count = lane
            if count > 1:
                chars = [c for i, c in enumerate(ID_CHARS) if i % count == index]
                mine: sa.ColumnElement[bool] = sa.func.substr(deliveries.c.profile_id, 26, 1).in_(
                    chars
                )
                if index == 0:
                    mine = sa.or_(deliveries.c.profile_id.is_(None), mine)
                ready = ready.where(mine)
            if conn.dialect.name == "postgresql":
                ready = ready.with_for_update(skip_locked=True)
            rows = (
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(ready))
                    .values(
                        status="claimed",
                        claim=claim,
                        lease_until_ms=now_ms + lease_ms,
                        updated_ms=now_ms,
                    )
                    .returning(*deliveries.c)
                )
            ).all()
        claimed = [delivery_row(row) for row in rows]
        claimed.sort(key=lambda d: (d.priority, d.next_attempt_ms, d.id))
        return claimed

    async def settle(
        self, conn: AsyncConnection, claim: str, settlements: Sequence[Settlement], now_ms: int
    ) -> int:
        """Apply decisions to rows this claim still holds (one multi-row statement per shape
        of decision); returns how many rows were no longer held by it."""
        groups: dict[tuple[str, tuple[str, ...]], list[Settlement]] = defaultdict(list)
        for item in settlements:
            groups[(item.status, tuple(sorted(item.values)))].append(item)
        lost = 0
        for (status, columns), items in sorted(groups.items()):
            fixed: dict[str, Any] = {"status": status, "updated_ms": now_ms}
            if status not in {"claimed", "sending"}:
                fixed.update(claim=None, lease_until_ms=None)
            rows = [(item.id, *(item.values[c] for c in columns)) for item in items]
            done = await _update_rows(conn, columns, rows, fixed, claim)
            lost += len(items) - len(done)
        return lost

    async def mark_sending(
        self,
        conn: AsyncConnection,
        claim: str,
        rows: Sequence[tuple[str, str, str]],
        lease_until_ms: int,
        now_ms: int,
    ) -> set[str]:
        """The rows (id, channel kind, address) are about to be handed to providers: from here
        their outcome is unknown until recorded, so a crash leaves them `sending` (with the
        address, for whoever checks a dead letter). Returns the ids this claim still held
        (only those may be sent)."""
        fixed = {"status": "sending", "lease_until_ms": lease_until_ms, "updated_ms": now_ms}
        return await _update_rows(
            conn, ("kind", "address"), rows, fixed, claim, statuses=("claimed", "sending")
        )

    async def recover(
        self, now_ms: int, *, resend_kinds: Iterable[str] = (), everything: bool = False
    ) -> tuple[int, int]:
        """Rows whose worker vanished (lease lapsed; with `everything`, every held row — the
        caller knows no other worker runs): `claimed` ones go back to the queue (they never
        reached a provider); `sending` ones become dead letters (the provider may have sent
        them, and a second send could be a duplicate) unless their channel kind recognises a
        repeated send itself. Dead letters keep their claim, so a worker that was only slow can
        still record what happened. Returns (requeued, dead)."""
        resend = sorted(set(resend_kinds))
        held = deliveries.c.lease_until_ms.is_not(None)
        stale = held if everything else sa.and_(held, deliveries.c.lease_until_ms < now_ms)
        async with self.db.transaction() as conn:
            requeued = await conn.execute(
                deliveries.update()
                .where(
                    stale,
                    sa.or_(
                        deliveries.c.status == "claimed",
                        sa.and_(deliveries.c.status == "sending", deliveries.c.kind.in_(resend)),
                    ),
                )
                .values(status="queued", claim=None, lease_until_ms=None, updated_ms=now_ms)
            )
            dead = await conn.execute(
                deliveries.update()
                .where(stale, deliveries.c.status == "sending")
                .values(
                    status="dead",
                    lease_until_ms=None,
                    reason="interrupted",
                    detail=(
                        "the worker stopped while the provider had the message: it may or may "
                        "not have been sent, so it is not retried automatically (replay it if "
                        "it was not received)"
                    ),
                    updated_ms=now_ms,
                )
            )
        return int(requeued.rowcount or 0), int(dead.rowcount or 0)

    async def next_due_ms(self) -> int | None:
        """When the earliest queued delivery comes due (None when nothing is queued)."""
        async with self.db.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.min(deliveries.c.next_attempt_ms)).where(
                    deliveries.c.status == "queued"
                )
            )
        return None if value is None else int(value)

    # -- reads for the worker -------------------------------------------------------------------

    async def recent_sends(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        since_ms: int,
        *,
        ignore_kinds: Iterable[str] = (),
    ) -> dict[str, list[RecentSend]]:
        """Messages sent to these profiles since `since_ms` (by channel kind), for frequency
        caps; kinds in `ignore_kinds` do not count."""
        found: dict[str, list[RecentSend]] = defaultdict(list)
        ignored = set(ignore_kinds)
        for part in slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(
                    deliveries.c.profile_id,
                    deliveries.c.kind,
                    deliveries.c.category,
                    deliveries.c.sent_ms,
                ).where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.profile_id.in_(part),
                    deliveries.c.sent_ms > since_ms,
                )
            )
            for row in rows:
                if row.kind in ignored:
                    continue
                category = MessageCategory(row.category or MessageCategory.MARKETING.value)
                found[row.profile_id].append(RecentSend(row.kind or "", category, row.sent_ms))
        return dict(found)

    # -- secrets ----------------------------------------------------------------------------------

    async def secret(self, name: str, candidate: str, now_ms: int) -> str:
        """The stored secret called `name`, storing `candidate` first if there is none (several
        processes starting at once agree on the first one stored)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                insert_for(conn, delivery_secrets)
                .values(name=name, value=candidate, created_ms=now_ms)
                .on_conflict_do_nothing()
            )
            value = await conn.scalar(
                sa.select(delivery_secrets.c.value).where(delivery_secrets.c.name == name)
            )
        return str(value)


#: Rows per multi-row statement on SQLite (its limit on bound variables is far above this).
_SQLITE_ROWS = 256


async def _update_rows(
    conn: AsyncConnection,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fixed: Mapping[str, Any],
    claim: str,
    *,
    statuses: Sequence[str] = (),
) -> set[str]:
    """Set `fixed` and, per row (id, *values), `columns` on the deliveries `claim` holds (and,
    if given, whose status is in `statuses`), in one statement per database (a few on SQLite
    for big batches); returns the ids updated.

    A single statement instead of one per row: with `executemany` the driver hands the GIL
    back and forth with the event loop once per row, which made these writes the slowest
    part of a wave while the loop was busy with provider calls."""
    if not rows:
        return set()
    names = ("id", *columns)
    unknown = {*names, *fixed} - set(deliveries.c.keys())
    if unknown:  # names are spliced into the SQL: only the table's own columns
        raise ValueError(f"not columns of deliveries: {sorted(unknown)}")
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    table = deliveries.name
    assignments = [f"{name} = {mark}" for name in fixed]
    assignments += [f"{name} = v.{name}" for name in columns]
    where = f"{table}.id = v.id AND {table}.claim = {mark}"
    if statuses:
        where += f" AND {table}.status IN ({', '.join(mark for _ in statuses)})"
    tail = (
        f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 (column names checked)
        f"FROM v WHERE {where} RETURNING {table}.id"
    )
    params = (*fixed.values(), claim, *statuses)
    updated: set[str] = set()
    if postgres:
        fields = ", ".join(f"{name} {_pg_type(name)}" for name in names)
        source = f"SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r({fields})"  # noqa: S608
        statement = f"WITH v AS ({source}) {tail}"
        payload = orjson.dumps([dict(zip(names, row, strict=True)) for row in rows]).decode()
        result = await conn.exec_driver_sql(statement, (payload, *params))
        updated.update(row[0] for row in result)
        return updated
    marks = "(" + ", ".join("?" for _ in names) + ")"
    for start in range(0, len(rows), _SQLITE_ROWS):
        part = rows[start : start + _SQLITE_ROWS]
        values = ", ".join([marks] * len(part))
        statement = f"WITH v ({', '.join(names)}) AS (VALUES {values}) {tail}"
        flat = tuple(itertools.chain.from_iterable(part))
        result = await conn.exec_driver_sql(statement, (*flat, *params))
        updated.update(row[0] for row in result)
    return updated


def _pg_type(name: str) -> str:
    """The PostgreSQL type of a deliveries column, for reading it out of JSON."""
    kind = deliveries.c[name].type
    if isinstance(kind, sa.BigInteger):
        return "bigint"
    if isinstance(kind, sa.Integer):
        return "integer"
    return "text"
