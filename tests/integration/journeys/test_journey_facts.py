"""What conditions read about people (`RunStore.facts`), read straight through the driver:
traits, computed traits (a JSON null included), segments and the named events with their
properties, in (timestamp, seq) order, for the people asked about only."""

from __future__ import annotations

import sqlalchemy as sa

from legato.domain.conditions import EventFact
from legato.store.segments import computed_trait_values, segment_members
from legato.store.tables import events, profiles

from .conftest import World


async def test_facts_read_every_kind_of_fact(world: World) -> None:
    legato, ws = world.legato, world.workspace_id
    people = [
        {"id": p, "workspace_id": ws, "traits": traits, "trait_times": {}, "first_seen_ms": 0}
        | {"last_seen_ms": 0, "created_ms": 0, "updated_ms": 0}
        for p, traits in [("p1", {"plan": "pro", "visits": 3}), ("p2", {}), ("p3", {"x": 1})]
    ]
    computed = [
        ("p1", "ltv", 120.5),
        ("p1", "fav", "shoes"),
        ("p1", "avg", None),
        ("p2", "ltv", 0),
        ("p3", "ltv", 9),
    ]
    logged = [  # (seq, profile, name, at_ms, payload)
        (1, "p1", "Order Completed", 300, {"properties": {"total": 50}}),
        (2, "p1", "Order Completed", 100, {"properties": {"total": 10, "sku": ["a"]}}),
        (3, "p1", "Viewed", 200, {"properties": {}}),
        (4, "p2", "Order Completed", 100, {}),
        (5, "p1", "Order Completed", 300, {"properties": {"total": 70}}),
        (6, "p3", "Order Completed", 100, {"properties": {"total": 1}}),
    ]
    async with legato.db.transaction() as conn:
        await conn.execute(sa.insert(profiles), people)
        await conn.execute(
            sa.insert(computed_trait_values),
            [
                {"workspace_id": ws, "key": k, "profile_id": p, "value": v, "state": {}}
                | {"updated_ms": 0}
                for p, k, v in computed
            ],
        )
        await conn.execute(
            sa.insert(segment_members),
            [
                {"workspace_id": ws, "segment_key": s, "profile_id": p, "entered_ms": 0}
                for p, s in [("p1", "vip"), ("p1", "buyers"), ("p3", "vip")]
            ],
        )
        await conn.execute(
            sa.insert(events),
            [
                {"seq": seq, "workspace_id": ws, "message_id": f"m{seq}", "partition": 0}
                | {"type": "track", "event": name, "profile_id": p, "timestamp_ms": at}
                | {"received_ms": at, "payload": payload}
                for seq, p, name, at, payload in logged
            ],
        )
    async with legato.db.transaction() as conn:
        found = await legato.runs.facts(conn, ws, ["p2", "p1"], ["Order Completed", "Gone"])
        bare = await legato.runs.facts(conn, ws, ["p1"], [])

    assert set(found) == {"p1", "p2"}
    p1, p2 = found["p1"], found["p2"]
    assert p1.traits == {"plan": "pro", "visits": 3}
    assert p1.computed_traits == {"ltv": 120.5, "fav": "shoes", "avg": None}
    assert p1.segments == {"vip", "buyers"}
    assert p1.events == {
        "Order Completed": [
            (2, EventFact("Order Completed", 100, {"total": 10, "sku": ["a"]})),
            (1, EventFact("Order Completed", 300, {"total": 50})),
            (5, EventFact("Order Completed", 300, {"total": 70})),
        ]
    }
    assert (p2.traits, p2.computed_traits, p2.segments) == ({}, {"ltv": 0}, set())
    assert p2.events == {"Order Completed": [(4, EventFact("Order Completed", 100, {}))]}
    assert bare["p1"].events == {}
    assert bare["p1"].traits == p1.traits
