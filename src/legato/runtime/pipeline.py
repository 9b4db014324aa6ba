"""The pipeline worker: consumes the event log, partition by partition, through the stages.

For each partition it holds, the worker reads a chunk of events after its offset, then in ONE
transaction renews its lease, runs every stage in order (identity → profile → later issues'
segments and journeys) and advances the offset. A crash anywhere rolls the whole chunk back, so
after a restart each event is applied exactly once, in log order per partition.

Failures are sorted (`store.log.classify_failure`): races are retried, a broken database stops
the worker (the supervisor restarts it), and an event a stage cannot apply is isolated — the
chunk is replayed one event per transaction and the event that still fails is recorded with
the reason (in `rejected_messages`) while the partition moves on. Never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Sequence

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


class _Moved(Exception):
    """The stored offset is not the one this worker read from."""

    def __init__(self, seq: int):
        super().__init__(seq)
        self.seq = seq


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
        """Consume until `stop` is set; then give the partitions back for others to take."""
        self._stop = stop
        low, high = self.idle_seconds
        pause = low
        pending = True
        try:
            while not stop.is_set():
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
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                pause = min(pause * 2, high)
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
        """One chunk from each held partition; returns the number of events handled."""
        done = 0
        for partition in sorted(self._held):
            if self._stop.is_set():
                break
            done += await self._chunk(partition)
        return done

    async def drain(self) -> int:
        """Handle everything in the log now (tests, benchmarks); returns the events handled."""
        if not self._held:
            await self.rebalance()
        total = 0
        while count := await self.step():
            total += count
        return total

    async def _chunk(self, partition: int) -> int:
        offset = self._held.get(partition)
        if offset is None:
            return 0
        rows = await self.log.read(partition, offset, self.chunk_size)
        if not rows:
            return 0
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self._apply(partition, offset, rows)
            except _LeaseLost:
                self._held.pop(partition, None)
                return 0
            except _Moved as moved:
                self._held[partition] = moved.seq
                return 0
            except _StageFailed as failure:
                log.warning(
                    "chunk refused; applying its events one by one",
                    partition=partition,
                    first_seq=rows[0].seq,
                    error=str(failure),
                )
                return await self._one_by_one(partition, rows)
            except Exception as exc:
                if classify_failure(exc) != "transient":
                    raise
                await self._back_off(attempt)
        return await self._one_by_one(partition, rows)

    async def _apply(self, partition: int, offset: int, rows: Sequence[LoggedEvent]) -> int:
        batch = [ResolvedEvent(row) for row in rows]
        now_ms = self.clock.now_ms()
        async with self.db.transaction() as conn:
            current = await self.log.open_chunk(conn, partition, self.owner, now_ms)
            if current is None:
                raise _LeaseLost()
            if current != offset:
                raise _Moved(current)
            for stage in self.stages:
                try:
                    await stage.process(conn, batch)
                except Exception as exc:
                    if classify_failure(exc) != "event":
                        raise
                    raise _StageFailed(stage.name, exc) from exc
            await self.log.advance(conn, partition, rows[-1].seq, now_ms)
        self._held[partition] = rows[-1].seq
        self.applied += len(rows)
        return len(rows)

    async def _one_by_one(self, partition: int, rows: Sequence[LoggedEvent]) -> int:
        done = 0
        for row in rows:
            offset = self._held.get(partition)
            if offset is None or row.seq <= offset:
                continue
            failure: BaseException | None = None
            for attempt in range(MAX_ATTEMPTS):
                try:
                    done += await self._apply(partition, offset, [row])
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
