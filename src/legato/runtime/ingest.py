"""Ingestion: request bodies become durable rows of the event log, with group commit.

Every request hands its rows to one writer task, which writes the rows of ALL requests waiting
at that moment in one transaction, commits, and only then resolves each request's future: an
HTTP 200 always means "committed". While one group commits, the next one gathers, so under load
a commit (one fsync on SQLite, one round trip on PostgreSQL) serves dozens of requests.

The queue is bounded: past `max_pending_rows` a request is refused with `Retryable` (HTTP 503
with Retry-After) instead of letting memory and latency grow without limit. This module never
parses HTTP and never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from legato.domain.messages import (
    EventRow,
    MessageLimits,
    RejectedMessage,
    messages_of,
    normalise,
)
from legato.errors import Retryable
from legato.ports import Clock, EventLog

log = structlog.get_logger(__name__)

#: Rows that may wait for the writer before new requests are refused (about a second of load).
MAX_PENDING_ROWS = 20_000
#: Rows written by one transaction at most; a bigger backlog is written by several.
MAX_GROUP_ROWS = 5_000
#: What a refused request is told to wait before retrying, in seconds.
RETRY_AFTER_SECONDS = 1.0


@dataclass(slots=True)
class _Pending:
    rows: Sequence[EventRow]
    rejected: Sequence[RejectedMessage]
    done: asyncio.Future[None]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows) + len(self.rejected)


class GroupCommitWriter:
    """Writes what concurrent requests hand it, many requests per transaction."""

    def __init__(
        self,
        log: EventLog,
        *,
        max_pending_rows: int = MAX_PENDING_ROWS,
        max_group_rows: int = MAX_GROUP_ROWS,
    ) -> None:
        self.log = log
        self.max_pending_rows = max_pending_rows
        self.max_group_rows = max_group_rows
        self._queue: deque[_Pending] = deque()
        self._pending_rows = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Pending] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        #: Called after every commit (the pipeline's wake-up): new rows are in the log.
        self._on_commit: list[Callable[[], None]] = []
        #: Transactions committed so far and the rows they held (for metrics and tests).
        self.commits = 0
        self.rows_written = 0

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` after each commit that added rows (it must not block)."""
        self._on_commit.append(callback)

    @property
    def pending_rows(self) -> int:
        """Rows queued and not yet in a transaction."""
        return self._pending_rows

    async def write(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        """Return once `rows` and `rejected` are committed; `Retryable` when overloaded."""
        if self._closing:
            raise Retryable("the server is shutting down", retry_after=RETRY_AFTER_SECONDS)
        if not rows and not rejected:
            return
        item = _Pending(rows, rejected, asyncio.get_running_loop().create_future())
        if self._queue and self._pending_rows + item.size > self.max_pending_rows:
            raise Retryable(
                f"ingestion is overloaded ({self._pending_rows} rows waiting); retry later",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self._queue.append(item)
        self._pending_rows += item.size
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ingest-writer")
        await item.done

    async def close(self) -> None:
        """Refuse new writes, finish the queued ones, stop the writer task."""
        self._closing = True
        task = self._task
        if task is None:
            return
        if not task.done():
            await self._idle.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                self._inflight = self._take_group()
                await self._commit(self._inflight)
                self._inflight = []
        finally:
            # A cancelled or crashed writer must not leave a request waiting forever.
            for item in self._inflight:
                _fail(item, Retryable("the ingest writer stopped", retry_after=1.0))
            self._inflight = []
            while self._queue:
                item = self._queue.popleft()
                self._pending_rows -= item.size
                _fail(item, Retryable("the ingest writer stopped", retry_after=1.0))
            self._idle.set()

    def _take_group(self) -> list[_Pending]:
        group: list[_Pending] = []
        size = 0
        while self._queue and (not group or size + self._queue[0].size <= self.max_group_rows):
            item = self._queue.popleft()
            group.append(item)
            size += item.size
        self._pending_rows -= size
        return group

    async def _commit(self, group: list[_Pending]) -> None:
        rows = [row for item in group for row in item.rows]
        rejected = [r for item in group for r in item.rejected]
        try:
            await self.log.append(rows, rejected)
        except Exception as exc:
            if len(group) > 1:
                # One bad request must not fail the others: write them one by one.
                log.warning("group commit failed; retrying requests one by one", error=str(exc))
                for item in group:
                    await self._commit([item])
                return
            log.error("event log append failed", error=str(exc))
            _fail(
                group[0],
                Retryable(
                    "the event log is unavailable; retry later", retry_after=RETRY_AFTER_SECONDS
                ),
            )
            return
        self.commits += 1
        self.rows_written += len(rows)
        if rows:
            for callback in self._on_commit:
                callback()
        for item in group:
            if not item.done.done():
                item.done.set_result(None)


def _fail(item: _Pending, error: Exception) -> None:
    if not item.done.done():
        item.done.set_exception(error)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """The tunables ingestion reads from `Settings`."""

    partitions: int = 8
    max_message_bytes: int = 32 * 1024


class Ingest:
    """The use case: one request body of a workspace becomes durable log rows."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        clock: Clock,
        new_message_id: Callable[[], str],
        config: IngestConfig = IngestConfig(),
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.new_message_id = new_message_id
        self.config = config
        self._limits = MessageLimits(config.max_message_bytes)

    async def accept(
        self, workspace_id: str, kind: str, body: Any, *, sent_at_header: str | None = None
    ) -> list[RejectedMessage]:
        """Store the valid messages of `body` and the rejected ones; returns the rejected.

        `kind` is "batch" or a message type. Raises `InvalidInput` when the body as a whole is
        unusable, `Retryable` when ingestion is overloaded or the log unavailable.
        """
        messages, envelope = messages_of(body, kind)
        outcome = normalise(
            messages,
            kind=kind,
            workspace_id=workspace_id,
            received_ms=self.clock.now_ms(),
            partitions=self.config.partitions,
            new_message_id=self.new_message_id,
            envelope=envelope,
            sent_at_header=sent_at_header,
            limits=self._limits,
        )
        await self.writer.write(outcome.rows, outcome.rejected)
        return outcome.rejected

    async def close(self) -> None:
        """Finish what is queued and stop the writer."""
        await self.writer.close()
