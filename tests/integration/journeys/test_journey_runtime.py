"""The journey runtime's guarantees, on SQLite and PostgreSQL: the dispatch index touches only
what listens, runs stay on their version, pause/resume/archive, publishing refuses missing
references, an outbox key is recorded once, internal events land on the person's partition."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from legato.domain.messages import partition_for
from legato.errors import Conflict, InvalidInput
from legato.runtime.outbox import OutboxRecorder
from legato.store.journeys import journeys, outbox
from legato.store.runs import JourneyChanges
from legato.store.tables import events
from tests.integration.journeys.conftest import HOUR, T0, World


def doc(key: str, nodes: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Journey", "key": key, "trigger": {"event": "Signed Up"}}
    body.update(top)
    body["nodes"] = nodes
    return body


def message(node_id: str, template: str, nxt: str | None = None) -> dict[str, Any]:
    node = {"id": node_id, "type": "message", "channel": "email", "template": template}
    if nxt:
        node["next"] = nxt
    return node


async def test_an_event_touches_only_the_journeys_and_runs_that_listen(world: World) -> None:
    for i in range(25):
        await world.publish(doc(f"j{i}", [message("m", f"t{i}")], trigger={"event": f"E{i}"}))
    await world.publish(
        doc(
            "waiter",
            [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "event": "Order Completed",
                    "timeout": "1d",
                    "on_event": "m",
                },
                message("m", "thanks"),
            ],
            trigger={"event": "Checkout Started"},
        )
    )
    stage = world.legato.journey_stage
    versions = world.legato.versions
    before = (stage.advances, versions.compiled)
    await world.track("ann", "E7")
    await world.settle()
    # One journey compiled (the one E7 triggers), one step (ann's entry): not 26.
    assert (stage.advances - before[0], versions.compiled - before[1]) == (1, 1)
    await world.track("ann", "Checkout Started")
    await world.track("bob", "Order Completed")  # bob has no run: nothing to advance
    await world.settle()
    assert stage.advances - before[0] == 2
    await world.track("ann", "Page Viewed")  # nobody listens to it
    await world.track("ann", "Order Completed")  # ann's waiting run does
    await world.settle()
    assert stage.advances - before[0] == 3
    assert sorted(t for _, t, _ in await world.sent()) == ["t7", "thanks"]


async def test_runs_stay_on_the_version_they_entered(world: World) -> None:
    def version(template: str) -> dict[str, Any]:
        return doc(
            "j",
            [{"id": "w", "type": "wait", "duration": "1h", "next": "m"}, message("m", template)],
        )

    assert await world.publish(version("first")) == 1
    await world.track("ann", "Signed Up")
    await world.settle()
    assert await world.publish(version("second")) == 2
    assert await world.publish(version("second")) == 2  # the same draft: no new version
    await world.track("bob", "Signed Up")
    await world.wait("2h")
    assert sorted((u, t) for u, t, _ in await world.sent("j")) == [
        ("ann", "first"),
        ("bob", "second"),
    ]
    assert {run["version"] for run in await world.runs("j")} == {1, 2}
    v1 = await world.legato.journeys.stats(world.workspace_id, "j", 1)
    assert v1["journey"]["entered"] == 1 and v1["nodes"]["m"]["entered"] == 1


async def test_pause_stops_entries_resume_continues_archive_ends(world: World) -> None:
    service = world.legato.journeys
    ws = world.workspace_id
    await world.publish(
        doc("j", [{"id": "w", "type": "wait", "duration": "1h", "next": "m"}, message("m", "hi")])
    )
    await world.track("cy", "Signed Up")
    await world.settle()
    assert (await service.pause(ws, "j"))["status"] == "paused"
    await world.track("ann", "Signed Up")
    await world.wait("2h")  # cy's run, entered before the pause, carries on
    assert [u for u, _, _ in await world.sent("j")] == ["cy"]
    with pytest.raises(Conflict):
        await service.pause(ws, "j")
    assert (await service.resume(ws, "j"))["status"] == "published"
    await world.track("bob", "Signed Up")
    await world.wait("2h")
    assert sorted(u for u, _, _ in await world.sent("j")) == ["bob", "cy"]
    assert (await service.archive(ws, "j"))["status"] == "archived"
    with pytest.raises(Conflict):
        await service.resume(ws, "j")
    with pytest.raises(Conflict):
        await service.save_draft(ws, doc("j", [message("m", "x")]))
    await world.track("dee", "Signed Up")
    await world.wait("2h")
    assert sorted(u for u, _, _ in await world.sent("j")) == ["bob", "cy"]
    listed = {row["key"]: row["status"] for row in await service.list(ws)}
    assert listed == {"j": "archived"}


async def test_publishing_refuses_a_missing_reference_and_names_the_node(world: World) -> None:
    service = world.legato.journeys
    journey = doc(
        "j",
        [
            {
                "id": "gate",
                "type": "branch",
                "condition": {"segment": "vipz"},
                "then": "m",
                "else": "m",
            },
            message("m", "hi"),
        ],
    )
    await service.save_draft(world.workspace_id, journey)
    with pytest.raises(InvalidInput) as caught:
        await service.publish(world.workspace_id, "j")
    assert caught.value.details["node"] == "gate"
    assert caught.value.details["path"] == "$.nodes[0].condition"
    assert "segment 'vipz' does not exist" in caught.value.message
    got = await service.get(world.workspace_id, "j")
    assert (got["status"], got["version"], got["versions"]) == ("draft", None, [])
    await world.define_segment("vipz")
    assert (await service.publish(world.workspace_id, "j"))["version"] == 1


async def test_an_outbox_key_is_recorded_exactly_once(world: World) -> None:
    row = {
        "id": "01aaaaaaaaaaaaaaaaaaaaaaaa",
        "idempotency_key": "run-1:m:1",
        "workspace_id": world.workspace_id,
        "kind": "send",
        "run_id": "run-1",
        "journey_key": "j",
        "version": 1,
        "node_id": "m",
        "profile_id": "p1",
        "payload": {"channel": "email", "template": "hi"},
        "status": "pending",
        "attempts": 0,
        "available_ms": T0,
        "created_ms": T0,
        "updated_ms": T0,
    }
    for attempt in range(2):  # the same request written twice (a replayed transition)
        changes = JourneyChanges(outbox=[{**row, "id": f"01aaaaaaaaaaaaaaaaaaaaaaa{attempt}"}])
        async with world.legato.db.transaction() as conn:
            await world.legato.runs.write(conn, changes)
    assert await world.legato.outbox_recorder.drain() == 1
    assert await world.legato.outbox_recorder.drain() == 0
    assert [r["idempotency_key"] for r in await world.sends()] == ["run-1:m:1"]


async def test_concurrent_recorders_record_each_key_once(world: World) -> None:
    await world.publish(doc("j", [message("m", "hi")]))
    await world.send(
        *({"type": "track", "userId": f"u{i}", "event": "Signed Up"} for i in range(60))
    )
    await world.legato.pipeline.drain()
    recorders = [
        OutboxRecorder(world.legato.db, world.legato.outbox, world.clock, batch_size=7)
        for _ in range(3)
    ]
    counts = await asyncio.gather(*(recorder.drain() for recorder in recorders))
    assert sum(counts) == 60
    keys = [row["idempotency_key"] for row in await world.sends("j")]
    assert len(keys) == len(set(keys)) == 60
    async with world.legato.db.connect() as conn:
        pending = await conn.scalar(
            sa.select(sa.func.count()).where(
                outbox.c.workspace_id == world.workspace_id, outbox.c.status != "done"
            )
        )
    assert pending == 0


async def test_emitted_events_are_logged_on_the_persons_partition(world: World) -> None:
    await world.publish(
        doc("j", [{"id": "e", "type": "emit_event", "event": "Welcomed", "properties": {"n": 1}}])
    )
    await world.track("ann", "Signed Up")
    await world.settle()
    async with world.legato.db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(events).where(
                    events.c.workspace_id == world.workspace_id, events.c.event == "Welcomed"
                )
            )
        ).one()
    assert row.type == "internal"
    assert row.user_id == "ann"
    assert row.partition == partition_for("ann", world.legato.settings.partitions)
    assert row.profile_id == await world.profile_of("ann")
    assert row.payload["properties"] == {"n": 1}
    assert row.message_id.endswith(":e:1")


async def test_an_archived_or_paused_journey_is_out_of_the_trigger_index(world: World) -> None:
    await world.publish(doc("j", [message("m", "hi")]))

    async def indexed() -> Any:
        async with world.legato.db.connect() as conn:
            return await conn.scalar(
                sa.select(journeys.c.trigger_event).where(
                    journeys.c.workspace_id == world.workspace_id
                )
            )

    assert await indexed() == "Signed Up"
    await world.legato.journeys.pause(world.workspace_id, "j")
    assert await indexed() is None
    await world.legato.journeys.resume(world.workspace_id, "j")
    assert await indexed() == "Signed Up"


async def test_a_goal_after_the_run_ended_still_converts_within_its_window(world: World) -> None:
    await world.publish(
        doc("j", [message("m", "hi")], goal={"event": "Order Completed", "within": "2h"})
    )
    await world.track("ann", "Signed Up")
    await world.track("bob", "Signed Up")
    await world.wait("1h")
    await world.track("ann", "Order Completed")
    await world.wait("3h")  # the window closed: bob's late order does not count
    await world.track("bob", "Order Completed")
    await world.settle()
    stats = await world.stats("j")
    assert stats["journey"]["converted"] == 1
    assert stats["nodes"]["m"]["converted"] == 1
    assert world.clock.now_ms() > T0 + 2 * HOUR


async def test_runs_follow_a_profile_merged_into_another(world: World) -> None:
    """An anonymous visitor starts a checkout on a second device, then signs in: the run moves
    to the signed-in person, whose order then reaches it."""
    await world.publish(
        doc(
            "cart",
            [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "event": "Order Completed",
                    "match": {"properties.cart_id": "trigger.properties.cart_id"},
                    "timeout": "1h",
                    "on_event": "thanks",
                    "on_timeout": "nudge",
                },
                message("thanks", "thanks"),
                message("nudge", "nudge"),
            ],
            trigger={"event": "Checkout Started"},
        )
    )
    await world.identify("ann", email="ann@example.com")
    await world.send(
        {
            "type": "track",
            "anonymousId": "phone-1",
            "event": "Checkout Started",
            "properties": {"cart_id": "c1"},
        }
    )
    await world.settle()
    await world.send({"type": "identify", "userId": "ann", "anonymousId": "phone-1"})
    await world.settle()
    survivor = await world.profile_of("ann")
    (run,) = await world.runs("cart")
    assert run["profile_id"] == survivor == run["state"]["profile_id"]
    await world.track("ann", "Order Completed", cart_id="c1")
    await world.wait("2h")
    assert [t for _, t, _ in await world.sent("cart")] == ["thanks"]
