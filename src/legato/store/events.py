"""The event log (`events` table) and the store of rejected messages, on SQLite and PostgreSQL.

Appends are idempotent per `(workspace_id, message_id)`: SDKs retry whole batches, and a
duplicate, within one append or across appends, is stored once. `seq` is the log offset;
consumers read `seq > offset` per partition, so on PostgreSQL every append first takes one
transaction-scoped advisory lock: transactions that allocate `seq` values then commit in `seq`
order, and a reader never sees seq N+1 committed while N is still in flight. (SQLite has one
writer at a time, which gives the same order.)

Appends go straight to the driver with pre-serialised JSON: this is ingestion's hot path, and
SQLAlchemy's per-row parameter processing would cost more than the insert itself. On SQLite,
`EventLog.append` even has a connection of its own (`_DirectSqlite`: inserts on the loop,
commit on a thread, WAL checkpoints in the background). Everything else is SQLAlchemy Core.
Nothing here validates messages: that is `legato.domain.messages`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.messages import EventRow, RejectedMessage
from legato.errors import InvalidInput
from legato.ids import new_id
from legato.store.database import Database
from legato.store.tables import events, rejected_messages

#: The advisory lock key every appender on PostgreSQL takes ("lgevents" as a big-endian int8).
LOG_LOCK_KEY = int.from_bytes(b"lgevents", "big")

_COLUMNS = (
    "workspace_id",
    "message_id",
    "partition",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "timestamp_ms",
    "received_ms",
    "payload",
)
_CONFLICT = "ON CONFLICT (workspace_id, message_id) DO NOTHING"

# Built from constants only (no caller input), hence the S608 waivers.
_SQLITE_INSERT = f"INSERT INTO {events.name} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608
_SQLITE_ROW = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
#: Rows per SQLite statement at most (10 columns: well under SQLite's 32766 variables).
_SQLITE_CHUNK = 512
# One statement and one JSON parameter for the whole group, every row a JSON array whose last
# item is the payload spliced in as it is: PostgreSQL parses it once, in C (psycopg's array
# adaptation escapes element by element in Python and costs more than the insert). The rows
# are inserted in array order, so seq follows it.
_PG_APPEND = (
    f"INSERT INTO {events.name} ({', '.join(_COLUMNS)}) "  # noqa: S608
    "SELECT r->>0, r->>1, (r->>2)::smallint, r->>3, r->>4, r->>5, r->>6, (r->>7)::bigint, "
    "(r->>8)::bigint, r->9 FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS g(r, n) "
    f"ORDER BY n {_CONFLICT}"
)
_REJECT_COLUMNS = ("id", "workspace_id", "received_ms", "batch_index", "reason", "field", "payload")
_SQLITE_REJECT = (
    f"INSERT INTO {rejected_messages.name} ({', '.join(_REJECT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _REJECT_COLUMNS)})"
)
#: How long a SQLite append waits for another writer's lock before giving up.
_LOCK_WAIT_SECONDS = 30.0
#: Rows appended between two WAL checkpoints (about 15 MB of WAL).
_CHECKPOINT_ROWS = 20_000
_PG_LOCK = f"SELECT pg_advisory_xact_lock({LOG_LOCK_KEY})"

assert set(_COLUMNS) <= set(events.c.keys())
assert set(_REJECT_COLUMNS) == set(rejected_messages.c.keys())
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as read back from the log."""

    seq: int
    workspace_id: str
    message_id: str
    partition: int
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    profile_id: str | None
    timestamp_ms: int
    received_ms: int
    payload: dict[str, Any]


class EventLog:
    """Appends to and reads from the `events` table (the `EventLog` port)."""

    def __init__(self, db: Database):
        self.db = db
        self._direct: _DirectSqlite | None = None
        if db.is_sqlite:
            path = make_url(db.url).database or ""
            if path and path != ":memory:":
                self._direct = _DirectSqlite(path)

    async def append(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        """Append rows and rejected messages in one transaction, committed on return."""
        if not rows and not rejected:
            return
        if self._direct is not None:
            await self._direct.append(self.db, rows, rejected)
            return
        async with self.db.transaction() as conn:
            await self.append_in(conn, rows, rejected)

    def close(self) -> None:
        """Close the SQLite writer connection, if any."""
        if self._direct is not None:
            self._direct.close()

    async def append_in(
        self,
        conn: AsyncConnection,
        rows: Sequence[EventRow],
        rejected: Sequence[RejectedMessage] = (),
    ) -> None:
        """Append inside the caller's transaction (e.g. a consumer's internal events).

        On PostgreSQL this takes the log's advisory lock until the caller's transaction ends:
        keep such transactions short.
        """
        if rows:
            if self.db.is_sqlite:
                # Multi-row statements of power-of-two sizes (few distinct texts, all cached):
                # the driver runs each in one C call, where executemany would hand the GIL
                # back and forth with the event loop once per row.
                start = 0
                while start < len(rows):
                    size = min(_SQLITE_CHUNK, 1 << (len(rows) - start).bit_length() - 1)
                    chunk = rows[start : start + size]
                    await conn.exec_driver_sql(
                        _sqlite_append(size), tuple(itertools.chain.from_iterable(chunk))
                    )
                    start += size
            else:
                await conn.exec_driver_sql(_PG_LOCK)
                await conn.exec_driver_sql(_PG_APPEND, (_as_json_rows(rows),))
        if rejected:
            await conn.execute(
                rejected_messages.insert(),
                [dict(zip(_REJECT_COLUMNS, _rejected_row(r), strict=True)) for r in rejected],
            )

    async def get(self, workspace_id: str, message_id: str) -> StoredEvent | None:
        """One event by its messageId, or None."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(events).where(
                        events.c.workspace_id == workspace_id, events.c.message_id == message_id
                    )
                )
            ).first()
        return None if row is None else _stored(row)

    async def count(self, workspace_id: str) -> int:
        """How many events a workspace has in the log."""
        async with self.db.connect() as conn:
            total = await conn.scalar(
                sa.select(sa.func.count()).where(events.c.workspace_id == workspace_id)
            )
        return int(total or 0)


@dataclass(frozen=True, slots=True)
class RejectedPage:
    """One page of rejected messages, newest first; `next` continues the listing."""

    items: list[dict[str, Any]]
    next: str | None


class RejectedStore:
    """Reads the messages refused at ingestion (written by `EventLog.append`)."""

    def __init__(self, db: Database):
        self.db = db

    async def list(
        self, workspace_id: str, *, limit: int = 50, before: str | None = None
    ) -> RejectedPage:
        """Rejected messages, newest first; pass the page's `next` as `before` for more."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        query = (
            sa.select(rejected_messages)
            .where(rejected_messages.c.workspace_id == workspace_id)
            .order_by(rejected_messages.c.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(rejected_messages.c.id < before)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        items = [
            {
                "id": row.id,
                "received_ms": row.received_ms,
                "index": row.batch_index,
                "reason": row.reason,
                "field": row.field,
                "payload": row.payload,
            }
            for row in rows[:limit]
        ]
        return RejectedPage(items, items[-1]["id"] if len(rows) > limit else None)


class _DirectSqlite:
    """SQLite appends on a connection of their own, called on the event loop's thread.

    Through the async driver a group commit takes five thread hops, and each hop waits for the
    GIL while the loop parses requests: measured, 45 ms for a 300-row group whose SQLite work
    is 5 ms. Here the inserts are one short burst of C calls on the loop (CPU only: pages reach
    the disk at commit), and only the commit, which waits for fsync, goes to a thread. It
    never waits for the write lock on the loop: with no busy timeout, a locked database makes
    it yield and try again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")

    async def _open(self, db: Database) -> sqlite3.Connection:
        if self._conn is None:
            async with db.connect() as conn:
                level = await conn.scalar(sa.text("PRAGMA synchronous"))
            # Used by one task at a time: statements on the loop, commits on `_committer`.
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "journal_mode=WAL",
                f"synchronous={int(level or 2)}",
                "busy_timeout=0",
                "cache_size=-65536",
                # Checkpoints copy the WAL into the database: off the loop (see below).
                "wal_autocheckpoint=0",
            ):
                connection.execute(f"PRAGMA {pragma}")
            self._conn = connection
        return self._conn

    async def append(
        self, db: Database, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage]
    ) -> None:
        conn = await self._open(db)
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.002)  # another writer holds the lock: let it finish
        try:
            start = 0
            while start < len(rows):
                size = min(_SQLITE_CHUNK, 1 << (len(rows) - start).bit_length() - 1)
                chunk = rows[start : start + size]
                conn.execute(_sqlite_append(size), tuple(itertools.chain.from_iterable(chunk)))
                start += size
            if rejected:
                conn.executemany(_SQLITE_REJECT, [_rejected_row(r) for r in rejected])
        except BaseException:
            conn.rollback()
            raise
        # The commit waits for the disk (fsync): on a thread, while the loop goes on. Shielded:
        # once started it finishes, even if the waiting request is cancelled.
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(self._committer, _commit, conn))
        self._since_checkpoint += len(rows) + len(rejected)
        if self._since_checkpoint >= _CHECKPOINT_ROWS and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._since_checkpoint = 0
            self._checkpoint = asyncio.create_task(_checkpoint(db), name="sqlite-checkpoint")

    def close(self) -> None:
        if self._checkpoint is not None:
            self._checkpoint.cancel()
        self._committer.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


async def _checkpoint(db: Database) -> None:
    """Copy the WAL into the database on the async driver's thread (PASSIVE: never blocks
    writers), so that no request waits for it and the WAL does not grow without end."""
    try:
        async with db.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    except Exception as exc:  # the next one will try again
        log.warning("WAL checkpoint failed", error=str(exc))


@functools.cache
def _sqlite_append(rows: int) -> str:
    return f"{_SQLITE_INSERT}{', '.join([_SQLITE_ROW] * rows)} {_CONFLICT}"


def _rejected_row(r: RejectedMessage) -> tuple[Any, ...]:
    return (new_id(), r.workspace_id, r.received_ms, r.index, r.reason, r.field, r.payload)


def _as_json_rows(rows: Sequence[EventRow]) -> str:
    # Payloads are JSON already (the domain serialised them): spliced, never re-encoded.
    return (
        "["
        + ",".join(orjson.dumps(row[:9]).decode()[:-1] + "," + row.payload + "]" for row in rows)
        + "]"
    )


def _stored(row: sa.Row[Any]) -> StoredEvent:
    return StoredEvent(
        row.seq,
        row.workspace_id,
        row.message_id,
        row.partition,
        row.type,
        row.event,
        row.user_id,
        row.anonymous_id,
        row.profile_id,
        row.timestamp_ms,
        row.received_ms,
        row.payload,
    )
