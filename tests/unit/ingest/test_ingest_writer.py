"""The group-commit writer and the ingest use case, on the in-memory event log."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from legato.domain.messages import EventRow, RejectedMessage
from legato.errors import InvalidInput, Retryable
from legato.runtime.ingest import GroupCommitWriter, Ingest, IngestConfig
from legato.settings import Settings
from legato.testing import FakeClock, InMemoryEventLog


def rows(prefix: str, n: int, workspace: str = "ws") -> list[EventRow]:
    return [
        EventRow(workspace, f"{prefix}-{i}", 0, "track", "e", "u", None, 1, 1, "{}")
        for i in range(n)
    ]


class GatedLog(InMemoryEventLog):
    """Holds every append until the test opens the gate, to observe what waits for what."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.groups: list[int] = []

    async def append(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        self.started.set()
        await self.gate.wait()
        self.groups.append(len(rows))
        await super().append(rows, rejected)


async def test_requests_waiting_together_share_one_transaction() -> None:
    log = GatedLog()
    writer = GroupCommitWriter(log)
    first = asyncio.create_task(writer.write(rows("a", 20)))
    await log.started.wait()  # the first request is being committed alone
    others = [asyncio.create_task(writer.write(rows(f"b{i}", 20))) for i in range(10)]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(t.done() for t in others), "no answer before commit"
    log.gate.set()
    await asyncio.gather(first, *others)
    assert log.groups == [20, 200], "the ten waiting requests were written in one transaction"
    assert len(log.rows) == 220 and writer.commits == 2
    await writer.close()


async def test_a_full_queue_refuses_with_retry_after() -> None:
    log = GatedLog()
    writer = GroupCommitWriter(log, max_pending_rows=50)
    first = asyncio.create_task(writer.write(rows("a", 10)))
    await log.started.wait()
    queued = asyncio.create_task(writer.write(rows("b", 40)))
    await asyncio.sleep(0)
    with pytest.raises(Retryable) as refused:
        await writer.write(rows("c", 20))
    assert refused.value.retry_after == 1.0 and "overloaded" in refused.value.message
    log.gate.set()
    await asyncio.gather(first, queued)
    await writer.write(rows("c", 20))  # room again
    assert len(log.rows) == 70
    await writer.close()


async def test_a_failed_group_is_retried_request_by_request() -> None:
    log = InMemoryEventLog()
    writer = GroupCommitWriter(log)
    log.fail_next = [RuntimeError("deadlock"), RuntimeError("still broken")]
    results = await asyncio.gather(
        writer.write(rows("a", 5)),
        writer.write(rows("b", 5)),
        writer.write(rows("c", 5)),
        return_exceptions=True,
    )
    # The group of three failed; retried one by one, "a" failed again and b and c went through.
    assert isinstance(results[0], Retryable)
    assert results[1:] == [None, None] and log.appends == 2
    assert sorted(r.message_id for _, r in log.rows) == sorted(
        [f"b-{i}" for i in range(5)] + [f"c-{i}" for i in range(5)]
    )
    await writer.close()


async def test_close_finishes_queued_writes_then_refuses() -> None:
    log = GatedLog()
    writer = GroupCommitWriter(log)
    pending = [asyncio.create_task(writer.write(rows(f"r{i}", 3))) for i in range(4)]
    await log.started.wait()
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    log.gate.set()
    await asyncio.gather(*pending, closing)
    assert len(log.rows) == 12
    with pytest.raises(Retryable, match="shutting down"):
        await writer.write(rows("late", 1))


async def test_an_empty_write_returns_at_once() -> None:
    log = InMemoryEventLog()
    writer = GroupCommitWriter(log)
    await writer.write([], [])
    assert log.appends == 0


def ingest(log: InMemoryEventLog) -> Ingest:
    ids = (f"id-{n}" for n in itertools.count())
    return Ingest(GroupCommitWriter(log), FakeClock(), lambda: next(ids), IngestConfig(4, 1024))


async def test_ingest_stores_valid_and_rejected_messages_together() -> None:
    log = InMemoryEventLog()
    service = ingest(log)
    body = {
        "batch": [
            {"type": "track", "event": "A", "userId": "u", "messageId": "m1"},
            {"type": "track", "userId": "u"},
            {"type": "track", "event": "A", "userId": "u", "messageId": "m1"},
        ]
    }
    rejected = await service.accept("ws", "batch", body)
    assert [(r.index, r.field) for r in rejected] == [(1, "event")]
    assert [r.message_id for _, r in log.rows] == ["m1"], "a duplicate in one batch is stored once"
    assert log.rejected == rejected and log.appends == 1
    assert all(0 <= r.partition < 4 for _, r in log.rows)
    await service.close()


async def test_ingest_refuses_a_body_that_is_not_a_batch() -> None:
    service = ingest(InMemoryEventLog())
    with pytest.raises(InvalidInput):
        await service.accept("ws", "batch", {"batch": "nope"})
    await service.close()


async def test_message_and_batch_limits_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"LEGATO_MAX_MESSAGE_BYTES": "1024", "LEGATO_MAX_BATCH_BYTES": "65536"}
    )
    assert (settings.max_message_bytes, settings.max_batch_bytes) == (1024, 65536)
    log = InMemoryEventLog()
    service = ingest(log)  # IngestConfig(partitions=4, max_message_bytes=1024)
    body = {
        "batch": [
            {"type": "track", "event": "A", "userId": "u", "messageId": "small"},
            {"type": "track", "event": "A", "userId": "u", "properties": {"x": "y" * 2000}},
        ]
    }
    rejected = await service.accept("ws", "batch", body)
    assert [r.index for r in rejected] == [1] and "the limit is 1024 bytes" in rejected[0].reason
    assert [r.message_id for _, r in log.rows] == ["small"]
    await service.close()
