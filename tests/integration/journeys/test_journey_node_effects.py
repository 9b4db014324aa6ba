"""What single nodes leave behind in the real runtime, on SQLite and PostgreSQL: a random
split's sticky, weighted arms with a holdout; a wait as one timer row; a send request with
everything delivery needs to apply its gates at send time."""

from __future__ import annotations

import sqlalchemy as sa

from legato.domain.engine import random_split_arm
from legato.domain.journeys import RandomSplitNode, parse_journey
from legato.store.journeys import timers
from tests.integration.journeys.conftest import HOUR, T0, World
from tests.integration.journeys.test_journey_scenarios import doc, msg


async def test_random_split_is_sticky_and_weighted_with_a_holdout(world: World) -> None:
    journey = doc(
        [
            {
                "id": "r",
                "type": "random_split",
                "holdout": 20,
                "branches": [
                    {"name": "A", "weight": 1, "next": "a"},
                    {"name": "B", "weight": 3, "next": "b"},
                ],
            },
            msg("a"),
            msg("b"),
        ],
    )
    await world.publish(journey)
    users = [f"u{i}" for i in range(40)]
    for user in users:
        await world.track(user, "Signed Up")
    await world.settle()
    node = parse_journey(journey).node("r")
    assert isinstance(node, RandomSplitNode)
    expected: dict[str, str] = {}
    for user in users:
        arm = random_split_arm("j", node, await world.profile_of(user))
        if arm is not None:
            expected[user] = "ab"[arm]
    assert {user: template for user, template, _ in await world.sent("j")} == expected
    stats = await world.stats("j")
    arms = stats["nodes"]["r"]["arms"]
    assert arms.get("holdout", 0) == len(users) - len(expected)
    assert arms.get("A", 0) + arms.get("B", 0) == len(expected)
    assert stats["journey"]["exit_reasons"].get("holdout", 0) == len(users) - len(expected)


async def test_a_wait_is_one_timer_row_and_firing_deletes_it(world: World) -> None:
    await world.publish(doc([{"id": "w", "type": "wait", "duration": "1h", "next": "m"}, msg("m")]))
    await world.track("ann", "Signed Up")
    await world.settle()
    async with world.legato.db.connect() as conn:
        rows = (await conn.execute(sa.select(timers.c.name, timers.c.due_ms))).all()
    assert [tuple(row) for row in rows] == [("w", T0 + HOUR)]
    await world.wait("1h")
    async with world.legato.db.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(timers))) == 0
    assert [t for _, t, _ in await world.sent("j")] == ["m"]


async def test_a_send_request_carries_channel_topic_and_delivery_settings(world: World) -> None:
    """Delivery enforces quiet hours and caps at send time: the request says which apply."""
    settings = {
        "timezone": "Europe/Madrid",
        "quiet_hours": {"start": "21:00", "end": "08:00", "action": "drop"},
        "frequency_cap": "exempt",
    }
    node = {**msg("receipt"), "channel": "sms", "topic": "orders"}
    await world.publish(doc([node], settings=settings))
    await world.track("ann", "Signed Up", plan="pro")
    await world.settle()
    (send,) = await world.sends("j")
    payload = send["payload"]
    assert (payload["channel"], payload["template"], payload["topic"]) == (
        "sms",
        "receipt",
        "orders",
    )
    assert payload["settings"]["timezone"] == "Europe/Madrid"
    assert payload["settings"]["quiet_hours"] == {
        "start": "21:00",
        "end": "08:00",
        "action": "drop",
    }
    assert payload["settings"]["frequency_cap"] == "exempt"
    assert payload["trigger"]["properties"] == {"plan": "pro"}
    assert payload["user_id"] == "ann"
