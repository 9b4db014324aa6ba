"""Every trigger and node type through the real runtime — ingestion, the pipeline's journey
stage, the timer worker, the outbox recorder — on a fake clock, on SQLite and PostgreSQL.

Each scenario publishes a journey, plays a script of events and waits, and states exactly
which messages get recorded, for whom and when.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from legato.store.segments import segment_members
from tests.integration.journeys.conftest import DAY, HOUR, MINUTE, T0, World

Step = Callable[[World], Awaitable[Any]]


def track(user: str, event: str, **properties: Any) -> Step:
    return lambda w: w.track(user, event, **properties)


def identify(user: str, **traits: Any) -> Step:
    return lambda w: w.identify(user, **traits)


def wait(duration: str) -> Step:
    return lambda w: w.wait(duration)


def segment(user: str, key: str, *, entered: bool = True) -> Step:
    return lambda w: w.segment_change(user, key, entered=entered)


def api(user: str, **properties: Any) -> Step:
    async def step(w: World) -> Any:
        return await w.legato.journeys.trigger(
            w.workspace_id, "j", user_id=user, properties=properties
        )

    return step


def member(user: str, key: str) -> Step:
    """A segment member (as the segment engine keeps them) without any event."""

    async def step(w: World) -> None:
        await w.settle()
        profile = await w.profile_of(user)
        async with w.legato.db.transaction() as conn:
            await conn.execute(
                segment_members.insert().values(
                    workspace_id=w.workspace_id,
                    segment_key=key,
                    profile_id=profile,
                    entered_ms=w.clock.now_ms(),
                )
            )

    return step


def define(key: str) -> Step:
    """A segment the workspace defines (journeys may name only those)."""
    return lambda w: w.define_segment(key)


def doc(nodes: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Journey", "key": "j", "trigger": {"event": "Signed Up"}}
    body.update(top)
    body["nodes"] = nodes
    return body


def msg(node_id: str, template: str | None = None, nxt: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "type": "message",
        "channel": "email",
        "template": template or node_id,
    }
    if nxt:
        node["next"] = nxt
    return node


END = {"id": "end", "type": "exit"}


@dataclass
class Scenario:
    name: str
    journey: dict[str, Any]
    script: list[Step]
    sent: list[tuple[str, str, int]]
    setup: list[Step] = field(default_factory=list)
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "event trigger with a property filter",
        doc(
            [msg("thanks", nxt="end"), END],
            trigger={"event": "Order Completed", "where": [{"property": "total", "gte": 50}]},
        ),
        [track("ann", "Order Completed", total=70), track("bob", "Order Completed", total=10)],
        [("ann", "thanks", 0)],
        stats={"entered": 1, "refused": {}},
    ),
    Scenario(
        "wait",
        doc(
            [
                msg("a", nxt="w"),
                {"id": "w", "type": "wait", "duration": "2h", "next": "b"},
                msg("b"),
            ]
        ),
        [track("ann", "Signed Up"), wait("3h")],
        [("ann", "a", 0), ("ann", "b", 2 * HOUR)],
    ),
    Scenario(
        "wait_until a weekday time in the person's timezone",
        doc(
            [
                {
                    "id": "w",
                    "type": "wait_until",
                    "time": "10:00",
                    "weekdays": ["wed"],
                    "next": "m",
                },
                msg("m"),
            ],
        ),
        [
            identify("bob", timezone="America/New_York"),
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
            wait("3d"),
        ],
        # Monday 09:00 UTC → Wednesday 10:00 UTC, and Wednesday 10:00 in New York (15:00 UTC).
        [("ann", "m", 2 * DAY + HOUR), ("bob", "m", 2 * DAY + 6 * HOUR)],
    ),
    Scenario(
        "wait_until a date trait with an offset, or on_missing",
        doc(
            [
                {
                    "id": "w",
                    "type": "wait_until",
                    "date_trait": "renews_at",
                    "offset": "-1d",
                    "time": "09:00",
                    "next": "remind",
                    "on_missing": "ask",
                },
                msg("remind"),
                msg("ask"),
            ],
        ),
        [
            identify("ann", renews_at="2026-01-10"),
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
            wait("6d"),
        ],
        [("bob", "ask", 0), ("ann", "remind", 4 * DAY)],
    ),
    Scenario(
        "wait_for_event: the matching event, or the timeout",
        doc(
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
                msg("thanks"),
                msg("nudge"),
            ],
            trigger={"event": "Checkout Started"},
        ),
        [
            track("ann", "Checkout Started", cart_id="c1"),
            track("bob", "Checkout Started", cart_id="c2"),
            wait("10m"),
            track("ann", "Order Completed", cart_id="c1"),
            track("bob", "Order Completed", cart_id="other"),
            wait("2h"),
        ],
        [("ann", "thanks", 10 * MINUTE), ("bob", "nudge", HOUR)],
    ),
    Scenario(
        "branch on a trait",
        doc(
            [
                {
                    "id": "b",
                    "type": "branch",
                    "condition": {"trait": "plan", "eq": "pro"},
                    "then": "pro",
                    "else": "free",
                },
                msg("pro"),
                msg("free"),
            ],
        ),
        [identify("ann", plan="pro"), track("ann", "Signed Up"), track("bob", "Signed Up")],
        [("ann", "pro", 0), ("bob", "free", 0)],
        stats={"nodes.b.arms": {"then": 1, "else": 1}},
    ),
    Scenario(
        "split: ordered arms and a default",
        doc(
            [
                {
                    "id": "s",
                    "type": "split",
                    "default": "other",
                    "branches": [
                        {"name": "gold", "condition": {"trait": "tier", "eq": "gold"}, "next": "g"},
                        {
                            "name": "silver",
                            "condition": {"trait": "tier", "in": ["silver", "gold"]},
                            "next": "sv",
                        },
                    ],
                },
                msg("g"),
                msg("sv"),
                msg("other"),
            ],
        ),
        [
            identify("ann", tier="gold"),
            identify("bob", tier="silver"),
            *(track(u, "Signed Up") for u in ("ann", "bob", "cy")),
        ],
        [("ann", "g", 0), ("bob", "sv", 0), ("cy", "other", 0)],
    ),
    Scenario(
        "update_profile: set, unset, increment, seen by a later branch",
        doc(
            [
                {
                    "id": "u",
                    "type": "update_profile",
                    "set": {"vip": True, "tier": "gold"},
                    "unset": ["trial"],
                    "increment": {"visits": 2},
                    "next": "b",
                },
                {
                    "id": "b",
                    "type": "branch",
                    "condition": {"trait": "visits", "gte": 3},
                    "then": "loyal",
                    "else": "new",
                },
                msg("loyal"),
                msg("new"),
            ],
        ),
        [
            identify("ann", trial=True, visits=1),
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
        ],
        [("ann", "loyal", 0), ("bob", "new", 0)],
        traits={
            "ann": {"vip": True, "tier": "gold", "visits": 3},
            "bob": {"vip": True, "tier": "gold", "visits": 2},
        },
    ),
    Scenario(
        "emit_event goes through the pipeline and triggers what listens to it",
        doc(
            [
                {
                    "id": "e",
                    "type": "emit_event",
                    "event": "Welcome Done",
                    "properties": {"source": "trigger.properties.source"},
                    "next": "w",
                },
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "event": "Welcome Done",
                    "timeout": "1h",
                    "on_event": "heard",
                    "on_timeout": "deaf",
                },
                msg("heard"),
                msg("deaf"),
            ],
        ),
        [track("ann", "Signed Up", source="ads"), wait("2h")],
        # The emitted event reaches the run's own wait_for_event at once.
        [("ann", "heard", 0)],
    ),
    Scenario(
        "exit node, exit criteria and goal",
        doc(
            [
                msg("a", nxt="w"),
                {"id": "w", "type": "wait", "duration": "1d", "next": "b"},
                msg("b", nxt="bye"),
                {"id": "bye", "type": "exit", "reason": "done"},
            ],
            exit_criteria=[{"event": "Unsubscribed"}],
            goal={"event": "Order Completed", "within": "7d"},
        ),
        [
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
            track("cy", "Signed Up"),
            wait("1h"),
            track("bob", "Unsubscribed"),
            track("cy", "Order Completed"),
            wait("2d"),
        ],
        [("ann", "a", 0), ("bob", "a", 0), ("cy", "a", 0), ("ann", "b", DAY)],
        stats={
            "converted": 1,
            "exit_reasons": {"converted": 1, "exit_criteria": 1, "exit_node": 1},
            "nodes.w.converted": 1,
        },
    ),
    Scenario(
        "exit criteria: a condition on the profile",
        doc(
            [
                msg("a", nxt="w"),
                {"id": "w", "type": "wait", "duration": "1d", "next": "b"},
                msg("b"),
            ],
            exit_criteria=[{"condition": {"trait": "unsubscribed", "eq": True}}],
        ),
        [
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
            wait("1h"),
            identify("bob", unsubscribed=True),
            identify("ann", unsubscribed=False),
            wait("2d"),
        ],
        [("ann", "a", 0), ("bob", "a", 0), ("ann", "b", DAY)],
        stats={"exit_reasons": {"exit_criteria": 1, "end_of_path": 1}},
    ),
    Scenario(
        "goal: a conversion event with a condition, within its window",
        doc(
            [
                msg("a", nxt="w"),
                {"id": "w", "type": "wait", "duration": "1d", "next": "b"},
                msg("b"),
            ],
            goal={
                "event": "Order Completed",
                "where": [{"property": "total", "gte": 100}],
                "within": "7d",
            },
        ),
        [
            track("ann", "Signed Up"),
            track("bob", "Signed Up"),
            track("cy", "Signed Up"),
            wait("1h"),
            track("ann", "Order Completed", total=50),
            track("bob", "Order Completed", total=150),
            wait("8d"),
            track("cy", "Order Completed", total=500),
        ],
        # bob converts (and leaves: goal.exit defaults to true); ann's order is too small;
        # cy's comes after the 7-day window.
        [("ann", "a", 0), ("bob", "a", 0), ("cy", "a", 0), ("ann", "b", DAY), ("cy", "b", DAY)],
        stats={"converted": 1, "exit_reasons": {"converted": 1, "end_of_path": 2}},
    ),
    Scenario(
        "segment trigger: entered",
        doc([msg("welcome_vip")], trigger={"segment": "vip"}),
        [
            identify("ann", plan="pro"),
            identify("bob", plan="pro"),
            wait("1m"),
            segment("ann", "vip"),
            segment("bob", "vip", entered=False),
            segment("bob", "other"),
        ],
        [("ann", "welcome_vip", MINUTE)],
        setup=[define("vip")],
    ),
    Scenario(
        "segment trigger: exited",
        doc([msg("bye_vip")], trigger={"segment": "vip", "change": "exited"}),
        [identify("ann"), segment("ann", "vip"), segment("ann", "vip", entered=False)],
        [("ann", "bye_vip", 0)],
        setup=[define("vip")],
    ),
    Scenario(
        "schedule trigger: every day at 10:00 UTC to a segment",
        doc(
            [msg("digest")],
            trigger={"segment": "vip", "schedule": {"every": "day", "time": "10:00"}},
        ),
        [wait("30h")],
        # Monday 10:00 enrols both; Tuesday 10:00 finds them already enrolled (re-entry never).
        [("ann", "digest", HOUR), ("bob", "digest", HOUR)],
        setup=[
            define("vip"),
            identify("ann"),
            identify("bob"),
            identify("cy"),
            member("ann", "vip"),
            member("bob", "vip"),
        ],
        stats={"refused": {"re_entry": 2}},
    ),
    Scenario(
        "schedule trigger at local time: 10:00 in each person's timezone",
        doc(
            [msg("digest")],
            trigger={
                "segment": "vip",
                "schedule": {"at": "2026-01-06T10:00:00"},
                "local_time": True,
            },
        ),
        [wait("2d")],
        # Tuesday 10:00 in London (UTC) and in New York (15:00 UTC).
        [("ann", "digest", DAY + HOUR), ("bob", "digest", DAY + 6 * HOUR)],
        setup=[
            define("vip"),
            identify("ann", timezone="Europe/London"),
            identify("bob", timezone="America/New_York"),
            member("ann", "vip"),
            member("bob", "vip"),
        ],
    ),
    Scenario(
        "schedule trigger: recurring, at 10:00 in each person's timezone",
        doc(
            [msg("digest")],
            trigger={
                "segment": "vip",
                "schedule": {"every": "day", "time": "10:00"},
                "local_time": True,
            },
            entry={"re_entry": "always"},
        ),
        [wait("3d")],
        # An occurrence begins in the earliest zone (UTC+14), where Monday 10:00 has passed at
        # T0 (Monday 09:00 UTC): the first date is Tuesday, then Wednesday, each at 10:00 in
        # London (UTC) and in New York (15:00 UTC).
        [
            ("ann", "digest", DAY + HOUR),
            ("bob", "digest", DAY + 6 * HOUR),
            ("ann", "digest", 2 * DAY + HOUR),
            ("bob", "digest", 2 * DAY + 6 * HOUR),
        ],
        setup=[
            define("vip"),
            identify("ann", timezone="Europe/London"),
            identify("bob", timezone="America/New_York"),
            member("ann", "vip"),
            member("bob", "vip"),
        ],
        # By Thursday 09:00 UTC, Thursday has begun in UTC+14: two more runs wait for 10:00.
        stats={"entered": 6, "waiting": 2},
    ),
    Scenario(
        "schedule trigger: weekly on the days given",
        doc(
            [msg("weekly")],
            trigger={
                "segment": "vip",
                "schedule": {"every": "week", "weekdays": ["wed"], "time": "09:30"},
            },
            entry={"re_entry": "always"},
        ),
        [wait("10d")],
        # Wednesday 09:30 UTC, and the next Wednesday.
        [("ann", "weekly", 2 * DAY + 30 * MINUTE), ("ann", "weekly", 9 * DAY + 30 * MINUTE)],
        setup=[define("vip"), identify("ann"), member("ann", "vip")],
    ),
    Scenario(
        "api trigger with an entry key",
        doc([msg("quote")], trigger={"api": True}, entry={"key": "properties.quote_id"}),
        [api("ann", quote_id="q1"), api("ann", quote_id="q2"), api("ann", quote_id="q1")],
        [("ann", "quote", 0), ("ann", "quote", 0)],
        setup=[identify("ann")],
        stats={"entered": 2, "refused": {"re_entry": 1}},
    ),
    Scenario(
        "re-entry never (the default)",
        doc([msg("hello")]),
        [track("ann", "Signed Up"), wait("1h"), track("ann", "Signed Up")],
        [("ann", "hello", 0)],
    ),
    Scenario(
        "re-entry after exit, with an entry key per cart",
        doc(
            [{"id": "w", "type": "wait", "duration": "1h", "next": "m"}, msg("m")],
            trigger={"event": "Checkout Started", "key": "properties.cart_id"},
            entry={"re_entry": "after_exit"},
        ),
        [
            track("ann", "Checkout Started", cart_id="c1"),
            track("ann", "Checkout Started", cart_id="c1"),
            track("ann", "Checkout Started", cart_id="c2"),
            wait("2h"),
            track("ann", "Checkout Started", cart_id="c1"),
            wait("2h"),
        ],
        [("ann", "m", HOUR), ("ann", "m", HOUR), ("ann", "m", 3 * HOUR)],
        stats={"refused": {"re_entry": 1}},
    ),
    Scenario(
        "re-entry always, capped by max_entries",
        doc([msg("hi")], entry={"re_entry": "always", "max_entries": 2}),
        [track("ann", "Signed Up"), track("ann", "Signed Up"), track("ann", "Signed Up")],
        [("ann", "hi", 0), ("ann", "hi", 0)],
        stats={"refused": {"max_entries": 1}},
    ),
    Scenario(
        "enrollment limit",
        doc([msg("hi")], entry={"enrollment_limit": 2}),
        [track(u, "Signed Up") for u in ("ann", "bob", "cy")],
        [("ann", "hi", 0), ("bob", "hi", 0)],
        stats={"refused": {"enrollment_limit": 1}},
    ),
]


async def _check_stats(world: World, expected: dict[str, Any]) -> None:
    stats = await world.stats("j")
    for path, value in expected.items():
        if path.startswith("nodes."):
            _, node, metric = path.split(".")
            assert stats["nodes"][node].get(metric) == value, (path, stats)
        else:
            assert stats["journey"][path] == value, (path, stats)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_scenario(world: World, scenario: Scenario) -> None:
    for step in scenario.setup:
        await step(world)
    await world.settle()
    await world.publish(scenario.journey)
    for step in scenario.script:
        await step(world)
    await world.settle()
    sent = [(user, template, at - T0) for user, template, at in await world.sent("j")]
    assert sorted(sent, key=lambda s: (s[2], s[0], s[1])) == sorted(
        scenario.sent, key=lambda s: (s[2], s[0], s[1])
    )
    for user, traits in scenario.traits.items():
        profile = await world.legato.profiles.lookup(world.workspace_id, "user_id", user)
        assert {k: profile.traits.get(k) for k in traits} == traits
        assert "trial" not in profile.traits
    await _check_stats(world, scenario.stats)
    # Whatever happened, every run is in the rollups once and nothing is left half-done.
    stats = await world.stats("j")
    waiting = sum(1 for run in await world.runs("j") if run["status"] == "waiting")
    assert stats["journey"]["waiting"] == waiting
