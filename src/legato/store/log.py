"""The consumer side of the event log: reading partitions in order, offsets and leases.

A consumer (e.g. "pipeline") keeps one `log_offsets` row per partition: the last seq it applied,
and which worker holds the partition until when (`lease_until_ms`). Workers register themselves
with a heartbeat row (partition -1, consumer "<consumer>/<worker>") so that each can take its
fair share of partitions; a dead worker's partitions are taken over once its lease lapses.

Every chunk's transaction starts by renewing the lease of its partition (`open_chunk`, which
fails if another worker took it) and ends by moving the offset (`advance`): the chunk's effects
and its offset commit together, so nothing is applied twice or skipped. This module never
writes events; the ingestion writer does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.pipeline import LoggedEvent
from legato.errors import Conflict
from legato.ids import new_id
from legato.store.database import Database, insert_for
from legato.store.tables import events, log_offsets, rejected_messages

#: The `log_offsets.partition` of a worker's heartbeat row.
MEMBER_PARTITION = -1
#: SQLSTATEs worth retrying the whole chunk for: serialization failure, deadlock, lock timeout,
#: and a unique key another worker inserted first (e.g. the same new group).
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03", "23505"})

Failure = Literal["transient", "infrastructure", "event"]


def classify_failure(exc: BaseException) -> Failure:
    """Whose fault a failed chunk is: a race to retry, the database's, or the event's own.

    `transient`: a deadlock, serialization failure, busy SQLite, or a lost identity claim —
    retry the same chunk. `infrastructure`: the database is unreachable or broken — stop and
    let the supervisor restart the worker. `event`: anything else (bad data, a value too long
    for a column, a bug meeting odd input) — isolate the event and record it.
    """
    if isinstance(exc, Conflict):
        return "transient"
    if isinstance(exc, sa.exc.DBAPIError):
        if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
            return "transient"
        if "database is locked" in str(exc.orig):
            return "transient"
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            return "infrastructure"
        if exc.connection_invalidated:
            return "infrastructure"
        return "event"
    if isinstance(exc, sa.exc.DisconnectionError | OSError | TimeoutError):
        return "infrastructure"
    return "event"


_EVENT_COLUMNS = (
    events.c.seq,
    events.c.workspace_id,
    events.c.message_id,
    events.c.partition,
    events.c.type,
    events.c.event,
    events.c.user_id,
    events.c.anonymous_id,
    events.c.profile_id,
    events.c.timestamp_ms,
    events.c.received_ms,
    events.c.payload,
)


assert [c.name for c in _EVENT_COLUMNS] == [f.name for f in fields(LoggedEvent)]


class LogConsumer:
    """One consumer's view of the log: `partitions` partitions, leased `lease_ms` at a time."""

    def __init__(self, db: Database, consumer: str, partitions: int, lease_ms: int = 10_000):
        if "/" in consumer or not 0 < len(consumer) <= 32:
            raise ValueError(f"consumer name {consumer!r}: 1-32 characters, no '/'")
        self.db = db
        self.consumer = consumer
        self.partitions = partitions
        self.lease_ms = lease_ms

    def _member(self, owner: str) -> str:
        return f"{self.consumer}/{owner}"[:64]

    async def watermark(self) -> int:
        """The highest seq in the log (0 when empty): new events move it."""
        async with self.db.connect() as conn:
            top = await conn.scalar(sa.select(sa.func.max(events.c.seq)))
        return int(top or 0)

    async def read(
        self, partition: int, after_seq: int, limit: int, conn: AsyncConnection | None = None
    ) -> list[LoggedEvent]:
        """Up to `limit` events of `partition` after `after_seq`, in seq order."""
        query = (
            sa.select(*_EVENT_COLUMNS)
            .where(events.c.partition == partition, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
        if conn is None:
            async with self.db.connect() as own:
                rows = (await own.execute(query)).all()
        else:
            rows = (await conn.execute(query)).all()
        # Positional: the columns are selected in the order of LoggedEvent's fields.
        values: list[tuple[Any, ...]] = [tuple(row) for row in rows]
        return [LoggedEvent(*value) for value in values]

    async def rebalance(
        self, owner: str, now_ms: int, *, exclusive: bool = False
    ) -> dict[int, int]:
        """Heartbeat, renew this worker's leases and take or give partitions toward a fair share.

        Returns the partitions this worker holds, with their offsets. With `exclusive` (one
        engine process, as on SQLite) the worker takes every partition at once.
        """
        until = now_ms + self.lease_ms
        async with self.db.transaction() as conn:
            # A write first: on SQLite it takes the write lock before anything is read.
            await self._upsert_member(conn, owner, until, now_ms)
            mine = log_offsets.c.consumer == self.consumer
            known = await conn.scalar(
                sa.select(sa.func.count()).where(mine, log_offsets.c.partition >= 0)
            )
            if int(known or 0) < self.partitions:
                await self._add_partitions(conn, now_ms)
            if exclusive:
                await conn.execute(
                    log_offsets.update()
                    .where(mine, log_offsets.c.partition >= 0)
                    .values(owner=owner, lease_until_ms=until, updated_ms=now_ms)
                )
            else:
                await self._share(conn, owner, now_ms, until)
            rows = await conn.execute(
                sa.select(log_offsets.c.partition, log_offsets.c.seq)
                .where(mine, log_offsets.c.owner == owner, log_offsets.c.partition >= 0)
                .order_by(log_offsets.c.partition)
            )
            return {int(p): int(seq) for p, seq in rows}

    async def _add_partitions(self, conn: AsyncConnection, now_ms: int) -> None:
        await conn.execute(
            insert_for(conn, log_offsets)
            .values(
                [
                    {
                        "consumer": self.consumer,
                        "partition": p,
                        "seq": 0,
                        "owner": None,
                        "lease_until_ms": 0,
                        "updated_ms": now_ms,
                    }
                    for p in range(self.partitions)
                ]
            )
            .on_conflict_do_nothing()
        )

    async def _upsert_member(
        self, conn: AsyncConnection, owner: str, until: int, now_ms: int
    ) -> None:
        member = self._member(owner)
        statement = insert_for(conn, log_offsets).values(
            consumer=member,
            partition=MEMBER_PARTITION,
            seq=0,
            owner=owner,
            lease_until_ms=until,
            updated_ms=now_ms,
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[log_offsets.c.consumer, log_offsets.c.partition],
                set_={"lease_until_ms": until, "updated_ms": now_ms},
            )
        )

    async def _share(self, conn: AsyncConnection, owner: str, now_ms: int, until: int) -> None:
        mine = log_offsets.c.consumer == self.consumer
        await conn.execute(
            log_offsets.update()
            .where(mine, log_offsets.c.owner == owner, log_offsets.c.partition >= 0)
            .values(lease_until_ms=until, updated_ms=now_ms)
        )
        members = log_offsets.c.consumer.like(f"{self.consumer}/%")
        live = await conn.scalar(
            sa.select(sa.func.count()).where(
                members,
                log_offsets.c.partition == MEMBER_PARTITION,
                log_offsets.c.lease_until_ms >= now_ms,
            )
        )
        share = math.ceil(self.partitions / max(1, int(live or 1)))
        held = list(
            (
                await conn.execute(
                    sa.select(log_offsets.c.partition)
                    .where(mine, log_offsets.c.owner == owner, log_offsets.c.partition >= 0)
                    .order_by(log_offsets.c.partition)
                )
            ).scalars()
        )
        if len(held) > share:
            # Another worker joined: give back the surplus so that it can take it.
            await self._release(conn, owner, held[share:], now_ms)
        elif len(held) < share:
            free = (
                sa.select(log_offsets.c.partition)
                .where(
                    mine,
                    log_offsets.c.partition >= 0,
                    sa.or_(log_offsets.c.owner.is_(None), log_offsets.c.lease_until_ms < now_ms),
                )
                .order_by(log_offsets.c.partition)
                .limit(share - len(held))
            )
            if conn.dialect.name == "postgresql":
                # A partition in the middle of a chunk is locked by its (live) owner: skip it.
                free = free.with_for_update(skip_locked=True)
            wanted = list((await conn.execute(free)).scalars())
            if wanted:
                await conn.execute(
                    log_offsets.update()
                    .where(
                        mine,
                        log_offsets.c.partition.in_(wanted),
                        sa.or_(
                            log_offsets.c.owner.is_(None), log_offsets.c.lease_until_ms < now_ms
                        ),
                    )
                    .values(owner=owner, lease_until_ms=until, updated_ms=now_ms)
                )
        # Forget workers that have been silent for long.
        await conn.execute(
            log_offsets.delete().where(
                members,
                log_offsets.c.partition == MEMBER_PARTITION,
                log_offsets.c.lease_until_ms < now_ms - 10 * self.lease_ms,
            )
        )

    async def _release(
        self, conn: AsyncConnection, owner: str, partitions: Iterable[int], now_ms: int
    ) -> None:
        await conn.execute(
            log_offsets.update()
            .where(
                log_offsets.c.consumer == self.consumer,
                log_offsets.c.owner == owner,
                log_offsets.c.partition.in_(list(partitions)),
            )
            .values(owner=None, lease_until_ms=0, updated_ms=now_ms)
        )

    async def leave(self, owner: str, now_ms: int) -> None:
        """Give back every partition and the heartbeat (a clean stop: others take over at once)."""
        async with self.db.transaction() as conn:
            await self._release(conn, owner, range(self.partitions), now_ms)
            await conn.execute(
                log_offsets.delete().where(
                    log_offsets.c.consumer == self._member(owner),
                    log_offsets.c.partition == MEMBER_PARTITION,
                )
            )

    async def open_chunk(
        self, conn: AsyncConnection, partition: int, owner: str, now_ms: int
    ) -> int | None:
        """Renew the lease at the start of a chunk's transaction; the offset, or None if lost.

        On PostgreSQL this locks the offset row until the chunk commits, so a worker taking the
        partition over waits for the chunk and then sees its renewed lease.
        """
        row = (
            await conn.execute(
                log_offsets.update()
                .where(
                    log_offsets.c.consumer == self.consumer,
                    log_offsets.c.partition == partition,
                    log_offsets.c.owner == owner,
                )
                .values(lease_until_ms=now_ms + self.lease_ms, updated_ms=now_ms)
                .returning(log_offsets.c.seq)
            )
        ).first()
        return None if row is None else int(row.seq)

    async def advance(self, conn: AsyncConnection, partition: int, seq: int, now_ms: int) -> None:
        """Record that everything up to `seq` in `partition` is applied (same transaction)."""
        await conn.execute(
            log_offsets.update()
            .where(log_offsets.c.consumer == self.consumer, log_offsets.c.partition == partition)
            .values(seq=seq, updated_ms=now_ms)
        )

    async def record_failure(
        self, conn: AsyncConnection, event: LoggedEvent, reason: str, field: str, now_ms: int
    ) -> None:
        """Keep an event that a stage could not apply, with the reason, for an operator."""
        await conn.execute(
            rejected_messages.insert().values(
                id=new_id(),
                workspace_id=event.workspace_id,
                received_ms=now_ms,
                batch_index=None,
                reason=f"event seq {event.seq} ({event.message_id}): {reason}"[:4000],
                field=field[:200],
                payload=orjson.dumps(event.payload).decode(),
            )
        )

    async def offsets(self) -> dict[int, tuple[int, str | None, int | None]]:
        """Each partition's (offset, owner, lease until): for operators and tests."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    log_offsets.c.partition,
                    log_offsets.c.seq,
                    log_offsets.c.owner,
                    log_offsets.c.lease_until_ms,
                )
                .where(log_offsets.c.consumer == self.consumer, log_offsets.c.partition >= 0)
                .order_by(log_offsets.c.partition)
            )
            return {int(p): (int(s), o, u) for p, s, o, u in rows}
