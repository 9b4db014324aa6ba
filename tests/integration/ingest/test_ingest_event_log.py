"""The event log adapter on SQLite and PostgreSQL: idempotent appends, seq order, rejections."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import sqlalchemy as sa

from legato.domain.messages import EventRow, RejectedMessage
from legato.errors import InvalidInput
from legato.store.tables import events
from tests.integration.ingest.conftest import Shop


def row(shop: Shop, message_id: str, **payload: object) -> EventRow:
    body = orjson.dumps({"type": "track", "messageId": message_id, **payload}).decode()
    return EventRow(shop.workspace_id, message_id, 3, "track", "E", "u", None, 10, 20, body)


def rejection(shop: Shop, index: int, received_ms: int = 5) -> RejectedMessage:
    return RejectedMessage(shop.workspace_id, received_ms, index, f"bad {index}", "event", "{}")


@pytest.mark.parametrize("count", [1, 7, 512, 1300])
async def test_append_stores_rows_in_order_once(shop: Shop, count: int) -> None:
    log = shop.legato.events
    batch = [row(shop, f"m{i}") for i in range(count)]
    await log.append(batch)
    await log.append(batch[: count // 2 + 1])  # an SDK retrying part of it
    assert await shop.message_ids() == [f"m{i}" for i in range(count)]
    stored = await log.get(shop.workspace_id, "m0")
    assert stored is not None
    assert stored.payload == {"type": "track", "messageId": "m0"}
    assert (stored.partition, stored.event, stored.timestamp_ms, stored.received_ms) == (
        3,
        "E",
        10,
        20,
    )


async def test_duplicates_within_one_append_are_stored_once(shop: Shop) -> None:
    await shop.legato.events.append([row(shop, "a"), row(shop, "b"), row(shop, "a", again=True)])
    assert await shop.message_ids() == ["a", "b"]
    first = await shop.legato.events.get(shop.workspace_id, "a")
    assert first is not None and "again" not in first.payload, "the first copy wins"


async def test_the_same_message_id_in_two_workspaces_is_two_events(shop: Shop) -> None:
    other = await shop.legato.workspaces.create(f"other-{shop.workspace_id}", 1)
    theirs = row(shop, "same")._replace(workspace_id=other.workspace.id)
    await shop.legato.events.append([row(shop, "same"), theirs])
    assert await shop.legato.events.count(shop.workspace_id) == 1
    assert await shop.legato.events.count(other.workspace.id) == 1


async def test_seq_grows_across_appends(shop: Shop) -> None:
    for n in range(3):
        await shop.legato.events.append([row(shop, f"{n}-{i}") for i in range(3)])
    async with shop.legato.db.connect() as conn:
        seqs = list(
            (
                await conn.execute(
                    sa.select(events.c.seq)
                    .where(events.c.workspace_id == shop.workspace_id)
                    .order_by(events.c.message_id)
                )
            ).scalars()
        )
    assert seqs == sorted(seqs) and len(set(seqs)) == 9


async def test_rejections_are_listed_newest_first_in_pages(shop: Shop) -> None:
    await shop.legato.events.append([], [rejection(shop, i, received_ms=i) for i in range(5)])
    store = shop.legato.rejections
    first = await store.list(shop.workspace_id, limit=2)
    assert [item["index"] for item in first.items] == [4, 3] and first.next is not None
    second = await store.list(shop.workspace_id, limit=2, before=first.next)
    third = await store.list(shop.workspace_id, limit=2, before=second.next)
    assert [item["index"] for item in second.items + third.items] == [2, 1, 0]
    assert third.next is None
    assert third.items[-1] == {
        "id": third.items[-1]["id"],
        "received_ms": 0,
        "index": 0,
        "reason": "bad 0",
        "field": "event",
        "payload": "{}",
    }
    other = await shop.legato.workspaces.create(f"other-{shop.workspace_id}", 1)
    assert (await store.list(other.workspace.id)).items == []
    with pytest.raises(InvalidInput, match="limit"):
        await store.list(shop.workspace_id, limit=0)


@pytest.mark.postgres
async def test_appenders_take_turns_so_seq_commits_in_order(pg_url: str) -> None:
    """A reader that saw seq N committed must never later see a smaller seq appear."""
    from legato.app import Legato
    from legato.settings import Settings

    legato = Legato(Settings(database_url=pg_url, run_workers=False))
    legato.migrate()
    try:
        ws = (await legato.workspaces.create("w", 1)).workspace.id

        def r(message_id: str) -> EventRow:
            return EventRow(ws, message_id, 0, "track", "E", "u", None, 1, 1, "{}")

        holding = asyncio.Event()
        release = asyncio.Event()

        async def slow_writer() -> None:
            async with legato.db.transaction() as conn:
                await legato.events.append_in(conn, [r("first")])
                holding.set()
                await release.wait()

        slow = asyncio.create_task(slow_writer())
        await holding.wait()
        fast = asyncio.create_task(legato.events.append([r("second")]))
        await asyncio.sleep(0.3)
        assert not fast.done(), "the second appender waits for the first to commit"
        release.set()
        await asyncio.gather(slow, fast)
        async with legato.db.connect() as conn:
            order = list(
                (
                    await conn.execute(sa.select(events.c.message_id).order_by(events.c.seq))
                ).scalars()
            )
        assert order == ["first", "second"]
    finally:
        await legato.db.dispose()
