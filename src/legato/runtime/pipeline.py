"""The pipeline worker: consumes the event log, partition by partition, through the stages.

At each step the worker reads the new events of the partitions it holds (up to a chunk in all),
then in ONE transaction renews their leases, runs every stage in order (identity → profile →
computed traits → segments → journeys) over them in log order and advances their offsets: one
commit however many partitions had something. A crash anywhere rolls the whole step back, so
after a restart each event is applied exactly once, in log order per partition.

Failures are sorted (`store.log.classify_failure`): races are retried, a broken database stops
the worker (the supervisor restarts it), and an event a stage cannot apply is isolated — the
step's partitions are retried apart, the refused chunk one event per transaction, and the
event that still fails is recorded with the reason (in `rejected_messages`) while the
partition moves on. Never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from legato.domain.pipeline import LoggedEvent, ResolvedEvent
from legato.ids import new_id
from legato.ports import Clock, Stage
from legato.store.database import Database
from legato.store.log import LogConsumer, classify_failure

log = structlog.get_logger(__name__)

#: Attempts at one chunk when it loses races (deadlocks, concurrent identity claims).
MAX_ATTEMPTS = 6


class _LeaseLost(Exception):
    """Another worker holds the partition now."""

    def __init__(self, partition: int):
        super().__init__(partition)
        self.partition = partition


class _Moved(Exception):
    """The stored offset is not the one this worker read from."""

    def __init__(self, partition: int, seq: int):
        super().__init__(partition, seq)
        self.partition = partition
        self.seq = seq


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Events of one partition read after `offset`, to apply together."""

    partition: int
    offset: int
    rows: Sequence[LoggedEvent]


class _StageFailed(Exception):
    """A stage refused the chunk because of something in its events."""

    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"stage {stage!r}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause


class Pipeline:
    """`Worker` that runs the stages over the partitions of the log it leases."""

    name = "pipeline"

    def __init__(
        self,
        db: Database,
        log: LogConsumer,
        stages: Sequence[Stage],
        clock: Clock,
        *,
        owner: str | None = None,
        chunk_size: int = 500,
        exclusive: bool = False,
        idle_seconds: tuple[float, float] = (0.005, 0.2),
    ):
        self.db = db
        self.log = log
        self.stages = list(stages)
        self.clock = clock
        self.owner = owner or new_id()
        self.chunk_size = chunk_size
        self.exclusive = exclusive
        self.idle_seconds = idle_seconds
        #: Events applied and events recorded as failed by this instance (for metrics, tests).
        self.applied = 0
        self.failed = 0
        #: Chunks retried after losing a race to another worker.
        self.retries = 0
        self._held: dict[int, int] = {}
        self._next_rebalance_ms = 0
        self._mark = -1
        self._turn = -1
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def partitions(self) -> list[int]:
        """The partitions this worker holds now."""
        return sorted(self._held)

    def notify(self) -> None:
        """New events were appended: wake up now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; then give the partitions back for others to take.

        Idle, it sleeps until `notify` (ingestion calls it after each commit in this process)
        or, failing that, until the log's watermark moves (appends by other processes), polled
        with a pause doubling from `idle_seconds[0]` to `idle_seconds[1]`.
        """
        self._stop = stop
        low, high = self.idle_seconds
        pause = low
        pending = True
        try:
            while not stop.is_set():
                # Cleared before looking, so an append committed meanwhile is never missed.
                self._wake.clear()
                if self.clock.now_ms() >= self._next_rebalance_ms:
                    pending |= await self.rebalance()
                if pending:
                    if await self.step():
                        pause = low
                        continue
                    pending = False
                mark = await self.log.watermark()
                if mark != self._mark:
                    self._mark = mark
                    pending = True
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except TimeoutError:
                    pause = min(pause * 2, high)
                else:
                    pending = True
                    pause = low
        finally:
            with contextlib.suppress(Exception):
                await self.log.leave(self.owner, self.clock.now_ms())
            self._held = {}

    async def rebalance(self) -> bool:
        """Renew leases and take or give partitions; True when the held set changed."""
        before = set(self._held)
        self._held = await self.log.rebalance(
            self.owner, self.clock.now_ms(), exclusive=self.exclusive
        )
        self._next_rebalance_ms = self.clock.now_ms() + max(1, self.log.lease_ms // 3)
        return set(self._held) != before

    async def step(self) -> int:
        """One transaction over the held partitions' next events; returns the events handled.

        Partitions are read in turn, starting one further each step (so a backlog in one
        cannot starve the others), until `chunk_size` events are gathered: under light load
        every partition's few new events share one transaction and one commit; under a
        backlog a step is one partition's full chunk, as big a transaction as before.
        """
        chunks = await self._gather()
        return await self._attempt(chunks) if chunks else 0

    async def drain(self) -> int:
        """Handle everything in the log now (tests, benchmarks); returns the events handled."""
        if not self._held:
            await self.rebalance()
        total = 0
        while count := await self.step():
            total += count
        return total

    async def _gather(self) -> list[_Chunk]:
        held = sorted(self._held)
        if not held:
            return []
        self._turn = (self._turn + 1) % len(held)
        budget = self.chunk_size
        chunks: list[_Chunk] = []
        for partition in held[self._turn :] + held[: self._turn]:
            if budget <= 0 or self._stop.is_set():
                break
            offset = self._held.get(partition)
            if offset is None:
                continue
            rows = await self.log.read(partition, offset, budget)
            if rows:
                chunks.append(_Chunk(partition, offset, rows))
                budget -= len(rows)
        return chunks

    async def _attempt(self, chunks: list[_Chunk]) -> int:
        """Apply `chunks` in one transaction, retrying races; isolates what a stage refuses."""
        attempt = 0
        while chunks and attempt < MAX_ATTEMPTS:
            try:
                return await self._apply(chunks)
            except _LeaseLost as lost:
                self._held.pop(lost.partition, None)
            except _Moved as moved:
                self._held[moved.partition] = moved.seq
            except _StageFailed as failure:
                if len(chunks) > 1:
                    # Find the partition whose chunk holds the event: the others go through.
                    done = 0
                    for chunk in chunks:
                        if self._held.get(chunk.partition) == chunk.offset:
                            done += await self._attempt([chunk])
                    return done
                log.warning(
                    "chunk refused; applying its events one by one",
                    partition=chunks[0].partition,
                    first_seq=chunks[0].rows[0].seq,
                    error=str(failure),
                )
                break
            except Exception as exc:
                if classify_failure(exc) != "transient":
                    raise
                attempt += 1
                await self._back_off(attempt - 1)
                continue
            # A partition was lost or moved: the others' chunks are still good to apply.
            chunks = [chunk for chunk in chunks if self._held.get(chunk.partition) == chunk.offset]
        done = 0
        for chunk in chunks:
            done += await self._one_by_one(chunk.partition, chunk.rows)
        return done

    async def _apply(self, chunks: Sequence[_Chunk]) -> int:
        # Every chunk's events, in log order: each partition's stay in order among themselves.
        batch = [ResolvedEvent(row) for chunk in chunks for row in chunk.rows]
        if len(chunks) > 1:
            batch.sort(key=lambda item: item.row.seq)
        now_ms = self.clock.now_ms()
        async with self.db.transaction() as conn:
            # Sorted by partition: two workers lock offset rows in the same order (no deadlock).
            for chunk in sorted(chunks, key=lambda chunk: chunk.partition):
                current = await self.log.open_chunk(conn, chunk.partition, self.owner, now_ms)
                if current is None:
                    raise _LeaseLost(chunk.partition)
                if current != chunk.offset:
                    raise _Moved(chunk.partition, current)
            for stage in self.stages:
                try:
                    await stage.process(conn, batch)
                except Exception as exc:
                    if classify_failure(exc) != "event":
                        raise
                    raise _StageFailed(stage.name, exc) from exc
            for chunk in chunks:
                await self.log.advance(conn, chunk.partition, chunk.rows[-1].seq, now_ms)
        for chunk in chunks:
            self._held[chunk.partition] = chunk.rows[-1].seq
        self.applied += len(batch)
        return len(batch)

    async def _one_by_one(self, partition: int, rows: Sequence[LoggedEvent]) -> int:
        done = 0
        for row in rows:
            offset = self._held.get(partition)
            if offset is None or row.seq <= offset:
                continue
            failure: BaseException | None = None
            for attempt in range(MAX_ATTEMPTS):
                try:
                    done += await self._apply([_Chunk(partition, offset, [row])])
                    failure = None
                    break
                except _LeaseLost:
                    self._held.pop(partition, None)
                    return done
                except _Moved as moved:
                    self._held[partition] = moved.seq
                    return done
                except _StageFailed as refused:
                    failure = refused
                    break
                except Exception as exc:
                    if classify_failure(exc) != "transient":
                        raise
                    failure = exc
                    await self._back_off(attempt)
            if failure is not None:
                await self._record(partition, offset, row, failure)
                done += 1
        return done

    async def _record(
        self, partition: int, offset: int, row: LoggedEvent, failure: BaseException
    ) -> None:
        stage = failure.stage if isinstance(failure, _StageFailed) else "pipeline"
        now_ms = self.clock.now_ms()
        async with self.db.transaction() as conn:
            if await self.log.open_chunk(conn, partition, self.owner, now_ms) != offset:
                self._held.pop(partition, None)
                return
            await self.log.record_failure(conn, row, str(failure), f"pipeline.{stage}", now_ms)
            await self.log.advance(conn, partition, row.seq, now_ms)
        self._held[partition] = row.seq
        self.failed += 1
        log.error(
            "event could not be applied; recorded in rejected_messages",
            seq=row.seq,
            message_id=row.message_id,
            stage=stage,
            error=str(failure),
        )

    async def _back_off(self, attempt: int) -> None:
        self.retries += 1
        # Workers that collided should not retry in lockstep: spread them by their own id.
        spread = (zlib.crc32(self.owner.encode()) % 10) / 10
        await asyncio.sleep(0.01 * (2**attempt) * (1 + spread))
