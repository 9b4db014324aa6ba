"""Segments kept per event on a real database: the issue's examples, backfill against SQL,
entries and exits logged exactly once, windows lapsing on time, the dispatch index."""

from __future__ import annotations

import pytest

from legato.domain.conditions import parse_condition
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT
from tests.integration.segments.conftest import DAY, HOUR, T0, World

ISSUE_EXAMPLES = """
kind: Segment
key: repeat_buyers
name: Repeat buyers
condition:
  all:
    - {event: Order Completed, count: {gte: 2}, within: 30d}
    - {trait: country, in: [ES, MX, FR]}
---
kind: ComputedTrait
key: lifetime_value
aggregate: sum
event: Order Completed
property: revenue
within: 365d
"""


async def test_issue_examples_apply_and_follow_events(world: World) -> None:
    applied = await world.apply(ISSUE_EXAMPLES)
    assert [(a.kind, a.key) for a in applied] == [
        ("ComputedTrait", "lifetime_value"),
        ("Segment", "repeat_buyers"),
    ]
    await world.identify("ana", country="ES")
    await world.identify("bob", country="US")
    for user in ("ana", "bob"):
        await world.track(user, "Order Completed", revenue=10)
    await world.settle()
    assert await world.members("repeat_buyers") == set()
    for user in ("ana", "bob"):
        await world.track(user, "Order Completed", revenue=15.5)
    await world.settle()
    assert await world.members("repeat_buyers") == {"ana"}
    ana = await world.profile_of("ana")
    logged = await world.segment_events()
    assert logged == [(SEGMENT_ENTERED_EVENT, "repeat_buyers", ana, T0)]
    extras = await world.legato.segments.profile_segments(world.workspace_id, ana)
    assert extras.segments == ["repeat_buyers"]
    assert extras.computed_traits == {"lifetime_value": 25.5}
    # A trait change alone takes ana out; the exit is logged once.
    await world.identify("ana", country="US")
    await world.settle()
    assert await world.members("repeat_buyers") == set()
    assert [e[0] for e in await world.segment_events()] == [
        SEGMENT_ENTERED_EVENT,
        SEGMENT_EXITED_EVENT,
    ]
    # Re-running the pipeline changes nothing more (exactly once).
    await world.settle()
    assert len(await world.segment_events()) == 2


async def test_window_exit_fires_exactly_at_lapse(world: World) -> None:
    await world.apply(
        """
kind: Segment
key: recent_buyers
condition: {event: Order Completed, count: {gte: 2}, within: 30d}
"""
    )
    await world.track("ana", "Order Completed")
    first = T0
    world.clock.set(T0 + 2 * HOUR)
    await world.track("ana", "Order Completed")
    await world.settle()
    assert await world.members("recent_buyers") == {"ana"}
    # The first order lapses at first + 30d: ana leaves exactly then, not a moment later.
    lapse = first + 30 * DAY
    await world.advance_to(lapse - 1)
    assert await world.members("recent_buyers") == {"ana"}
    await world.advance_to(lapse + 5 * DAY)
    assert await world.members("recent_buyers") == set()
    logged = await world.segment_events()
    assert [(e[0], e[3]) for e in logged] == [
        (SEGMENT_ENTERED_EVENT, T0 + 2 * HOUR),
        (SEGMENT_EXITED_EVENT, lapse),
    ]


async def test_dispatch_index_skips_unmentioned_events(world: World) -> None:
    conditions = "\n---\n".join(
        f"kind: Segment\nkey: s{i}\ncondition: {{event: Event {i}, count: {{gte: 1}}}}"
        for i in range(20)
    )
    await world.apply(conditions)
    await world.settle()
    evaluator = world.legato.segment_evaluator
    before = evaluator.evaluations
    await world.track("ana", "Page Viewed")
    await world.identify("ana", plan="pro")
    await world.settle()
    assert evaluator.evaluations == before  # nothing mentions these: zero segments evaluated
    await world.track("ana", "Event 7")
    await world.settle()
    assert evaluator.evaluations == before + 1
    assert await world.members("s7") == {"ana"}


@pytest.mark.parametrize(
    "condition",
    [
        {"event": "Order Completed", "count": {"gte": 2}, "within": "30d"},
        {"all": [{"trait": "country", "eq": "ES"}, {"event": "Order Completed"}]},
        {"not": {"event": "Order Completed", "within": "7d"}},
        {"trait": "age", "gte": 30},
    ],
)
async def test_backfill_equals_sql_count(world: World, condition: dict[str, object]) -> None:
    people = [("ana", "ES", 31, 3), ("bob", "US", 22, 1), ("cy", "ES", 40, 0), ("di", "FR", 30, 2)]
    for user, country, age, orders in people:
        await world.identify(user, country=country, age=age)
        for n in range(orders):
            await world.track(user, "Order Completed", at_ms=T0 - n * 10 * DAY)
    await world.settle()
    expected = await world.legato.segments.preview(world.workspace_id, condition)
    saved = await world.legato.segments.put_segment(
        world.workspace_id, {"key": "probe", "condition": condition}
    )
    assert saved.created and saved.members == expected
    assert await world.legato.segments.count(world.workspace_id, "probe") == expected
    parse_condition(condition)  # the table holds valid conditions only
    # A first backfill logs nothing: nobody entered a segment that did not exist.
    assert await world.segment_events() == []


async def test_segment_of_segment_follows_in_order(world: World) -> None:
    await world.apply(
        """
kind: Segment
key: vip_spain
condition: {all: [{segment: buyers}, {trait: country, eq: ES}]}
---
kind: Segment
key: buyers
condition: {event: Order Completed}
"""
    )
    await world.identify("ana", country="ES")
    await world.settle()
    assert await world.members("vip_spain") == set()
    await world.track("ana", "Order Completed")
    await world.settle()
    assert await world.members("buyers") == {"ana"}
    assert await world.members("vip_spain") == {"ana"}
    assert [(e[0], e[1]) for e in await world.segment_events()] == [
        (SEGMENT_ENTERED_EVENT, "buyers"),
        (SEGMENT_ENTERED_EVENT, "vip_spain"),
    ]


async def test_edit_logs_the_difference(world: World) -> None:
    await world.identify("ana", country="ES")
    await world.identify("bob", country="FR")
    await world.settle()
    await world.legato.segments.put_segment(
        world.workspace_id, {"key": "eu", "condition": {"trait": "country", "eq": "ES"}}
    )
    saved = await world.legato.segments.put_segment(
        world.workspace_id, {"key": "eu", "condition": {"trait": "country", "eq": "FR"}}
    )
    assert (saved.created, saved.version, saved.entered, saved.exited) == (False, 2, 1, 1)
    assert await world.members("eu") == {"bob"}
    assert sorted(e[0] for e in await world.segment_events()) == [
        SEGMENT_ENTERED_EVENT,
        SEGMENT_EXITED_EVENT,
    ]


async def test_segment_triggered_journey_enters_on_segment_entered(world: World) -> None:
    await world.apply("kind: Segment\nkey: buyers\ncondition: {event: Order Completed}\n")
    journey = {
        "kind": "Journey",
        "key": "welcome_buyers",
        "trigger": {"segment": "buyers"},
        "nodes": [{"id": "done", "type": "exit"}],
    }
    saved = await world.legato.journeys.save_draft(world.workspace_id, journey)
    await world.legato.journeys.publish(world.workspace_id, saved.key)
    await world.track("ana", "Order Completed")
    await world.track("bob", "Page Viewed")
    await world.settle()
    stats = await world.legato.journeys.stats(world.workspace_id, "welcome_buyers")
    assert stats["journey"]["entered"] == 1, stats


async def test_computed_trait_window_lapses_on_time(world: World) -> None:
    await world.apply(
        """
kind: ComputedTrait
key: recent_spend
aggregate: sum
event: Order Completed
property: revenue
within: 7d
---
kind: Segment
key: spenders
condition: {computed_trait: recent_spend, gte: 100}
"""
    )
    await world.track("ana", "Order Completed", revenue=120)
    await world.settle()
    assert await world.members("spenders") == {"ana"}
    lapse = T0 + 7 * DAY
    await world.advance_to(lapse - 1)
    assert await world.members("spenders") == {"ana"}
    await world.advance_to(lapse + DAY)
    ana = await world.profile_of("ana")
    extras = await world.legato.segments.profile_segments(world.workspace_id, ana)
    assert extras.computed_traits == {"recent_spend": 0}
    assert await world.members("spenders") == set()
    assert [(e[0], e[3]) for e in await world.segment_events()] == [
        (SEGMENT_ENTERED_EVENT, T0),
        (SEGMENT_EXITED_EVENT, lapse),
    ]


async def test_computed_trait_backfill_matches_history(world: World) -> None:
    for revenue in (10, 20, 30):
        await world.track("ana", "Order Completed", revenue=revenue)
    await world.settle()
    await world.apply(
        "kind: ComputedTrait\nkey: orders\naggregate: count\nevent: Order Completed\n"
    )
    await world.track("ana", "Order Completed", revenue=5)
    await world.settle()
    ana = await world.profile_of("ana")
    extras = await world.legato.segments.profile_segments(world.workspace_id, ana)
    assert extras.computed_traits == {"orders": 4}  # the backfilled three count once


async def test_segments_true_for_nobody_in_particular_take_new_profiles(world: World) -> None:
    """A segment that holds on an empty profile (not, ne, performed: false, a bucket) must
    take profiles born after its backfill, though no event name or trait of theirs is in the
    dispatch index."""
    await world.apply(
        """
kind: Segment
key: not_vip
condition: {not: {trait: vip, eq: true}}
---
kind: Segment
key: everyone
condition: {random_bucket: {percent: 100}}
---
kind: Segment
key: never_churned
condition: {event: Churned, performed: false}
---
kind: Segment
key: nobody
condition: {all: [{random_bucket: {percent: 100}}, {event: Churned}]}
"""
    )
    assert await world.members("not_vip") == set()
    await world.track("ana", "Page Viewed")
    await world.identify("bob", plan="pro")
    await world.settle()
    for key in ("not_vip", "everyone", "never_churned"):
        assert await world.members(key) == {"ana", "bob"}, key
    assert await world.members("nobody") == set()
    async with world.legato.db.connect() as conn:
        compiled = await world.legato.segment_definitions.get(conn, world.workspace_id)
    assert compiled.on_new_profile == {"not_vip", "everyone", "never_churned"}
    # Later events of known profiles do not re-evaluate them: only the index does.
    evaluations = world.legato.segment_evaluator.evaluations
    await world.track("ana", "Page Viewed")
    await world.settle()
    assert world.legato.segment_evaluator.evaluations == evaluations
    await world.identify("ana", vip=True)
    await world.track("bob", "Churned")
    await world.settle()
    assert await world.members("not_vip") == {"bob"}
    assert await world.members("never_churned") == {"ana"}
    assert await world.members("nobody") == {"bob"}
