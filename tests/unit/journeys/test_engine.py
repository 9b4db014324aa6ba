"""The pure engine: every trigger and node type, waits and timers, entry rules, exits, goals."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from legato.domain.engine import (
    EXIT_CHECK_TIMER,
    EXIT_CONVERTED,
    EXIT_CRITERIA,
    EXIT_END,
    EXIT_HOLDOUT,
    EXIT_LOOP_GUARD,
    EXIT_NODE,
    REFUSED_EXIT,
    REFUSED_KEY,
    REFUSED_LIMIT,
    REFUSED_MAX_ENTRIES,
    REFUSED_RE_ENTRY,
    REFUSED_TRIGGER,
    START_TIMER,
    CallWebhook,
    CancelTimers,
    Converted,
    Emit,
    Enter,
    Entered,
    EntryHistory,
    EntryRefused,
    EventArrived,
    Exit,
    NodeVisited,
    Occurrence,
    Run,
    ScheduleTimer,
    Send,
    TimerFired,
    TraitOp,
    UpdateProfile,
    WebhookDone,
    advance,
    compile_journey,
    random_split_arm,
)
from legato.domain.journeys import RandomSplitNode, parse_journey
from legato.errors import InvalidInput

from .harness import DAY, HOUR, T0, Harness, Profile, fact, journey_doc


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def message(node_id: str, nxt: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "message",
        "channel": "email",
        "template": node_id,
        "next": nxt,
        **extra,
    }


EXIT = {"id": "done", "type": "exit"}

CART = """\
kind: Journey
key: abandoned_cart
trigger: {event: Checkout Started, key: properties.cart_id}
goal: {event: Order Completed, within: 7d}
nodes:
  - {id: wait_order, type: wait_for_event, event: Order Completed,
     match: {properties.cart_id: trigger.properties.cart_id}, timeout: 1h,
     on_event: done, on_timeout: push}
  - {id: push, type: message, channel: push, template: cart_push, next: wait_day}
  - {id: wait_day, type: wait, duration: 1d, next: email}
  - {id: email, type: message, channel: email, template: cart_email, next: done}
  - {id: done, type: exit}
"""


# ------------------------------------------------------------------------------------ triggers


@pytest.mark.parametrize(
    ("trigger", "event", "enters"),
    [
        ({"event": "Signed Up"}, fact("Signed Up"), True),
        ({"event": "Signed Up"}, fact("Logged In"), False),
        (
            {"event": "Checkout Started", "where": [{"property": "total", "gte": 50}]},
            fact("Checkout Started", total=80),
            True,
        ),
        (
            {"event": "Checkout Started", "where": [{"property": "total", "gte": 50}]},
            fact("Checkout Started", total=20),
            False,
        ),
        ({"segment": "vip"}, fact("Segment Entered", segment="vip"), True),
        ({"segment": "vip"}, fact("Segment Entered", segment="other"), False),
        ({"segment": "vip"}, fact("Segment Exited", segment="vip"), False),
        ({"segment": "vip", "change": "exited"}, fact("Segment Exited", segment="vip"), True),
        (
            {"segment": "news", "schedule": {"every": "day", "time": "09:00"}},
            fact("Schedule"),
            True,
        ),
        ({"api": True}, fact("Journey API Entry", anything=1), True),
    ],
)
def test_triggers(trigger: dict[str, Any], event: Any, enters: bool) -> None:
    h = Harness(journey_doc([message("hello")], trigger=trigger))
    transition = h.enter(event)
    if enters:
        assert transition.run is not None and transition.run.status == "exited"
        assert h.of(Entered) and [s.template for s in h.of(Send)] == ["hello"]
    else:
        assert transition.run is None
        assert transition.effects == (EntryRefused("p1", REFUSED_TRIGGER),)


def test_trigger_events_feed_the_dispatch_index() -> None:
    def events(trigger: dict[str, Any]) -> frozenset[str]:
        return compile_journey(
            parse_journey(journey_doc([EXIT], trigger=trigger)), 1
        ).trigger_events()

    assert events({"event": "Signed Up"}) == {"Signed Up"}
    assert events({"segment": "vip"}) == {"Segment Entered"}
    assert events({"segment": "vip", "change": "exited"}) == {"Segment Exited"}
    assert events({"api": True}) == frozenset()


def test_schedule_at_local_time_waits_for_each_persons_morning() -> None:
    doc = journey_doc(
        [message("digest")],
        trigger={
            "segment": "news",
            "schedule": {"at": "2026-03-01T09:00"},
            "local_time": True,
        },
    )
    # The runtime enrols everyone when it is 09:00 in the earliest zone (UTC+14).
    fired = ms("2026-02-28T19:00:00+00:00")
    next_up = Harness(doc).version.next_occurrence(T0)
    assert next_up == Occurrence(fired, "2026-03-01T09:00:00")
    assert Harness(doc).version.next_occurrence(fired) is None  # one-off: over
    occurrence = next_up.trigger()
    for tz, expected in [
        ("America/New_York", ms("2026-03-01T14:00:00+00:00")),
        ("Asia/Tokyo", ms("2026-03-01T00:00:00+00:00")),
        (None, ms("2026-03-01T09:00:00+00:00")),  # no timezone trait: the journey's (UTC)
    ]:
        h = Harness(doc, Profile(traits={"timezone": tz} if tz else {}))
        entered = h.enter(occurrence, now=fired)
        assert entered.run is not None and entered.run.status == "waiting"
        assert ScheduleTimer(START_TIMER, expected) in entered.effects
        assert not h.of(Send)
        h.run_until(expected - 1)
        assert not h.of(Send)
        h.run_until(expected)
        assert [s.template for s in h.of(Send)] == ["digest"]


@pytest.mark.parametrize(
    ("schedule", "timezone", "after", "expected"),
    [
        # weekly on Mondays at 09:00 Paris; T0 is Monday 10:00 Paris → next Monday
        (
            {"every": "week", "weekdays": ["mon"], "time": "09:00"},
            "Europe/Paris",
            "2026-01-05T09:00:00+00:00",
            ("2026-01-12T08:00:00+00:00", "2026-01-12T09:00:00"),
        ),
        # daily at 09:00 New York across the spring-forward night
        (
            {"every": "day", "time": "09:00"},
            "America/New_York",
            "2026-03-07T15:00:00+00:00",
            ("2026-03-08T13:00:00+00:00", "2026-03-08T09:00:00"),
        ),
        # 01:30 happens twice in New York on 2026-11-01: fired once, at the first
        (
            {"every": "day", "time": "01:30"},
            "America/New_York",
            "2026-11-01T05:31:00+00:00",
            ("2026-11-02T06:30:00+00:00", "2026-11-02T01:30:00"),
        ),
        # ... and from inside the repeated hour, not again
        (
            {"every": "day", "time": "01:30"},
            "America/New_York",
            "2026-11-01T06:00:00+00:00",
            ("2026-11-02T06:30:00+00:00", "2026-11-02T01:30:00"),
        ),
        (
            {"every": "month", "day_of_month": 31, "time": "12:00", "ends": "2026-01-30"},
            "UTC",
            "2026-01-05T09:00:00+00:00",
            None,
        ),
    ],
)
def test_recurring_schedules(
    schedule: dict[str, Any], timezone: str, after: str, expected: tuple[str, str] | None
) -> None:
    doc = journey_doc(
        [message("m")],
        trigger={"segment": "news", "schedule": schedule},
        settings={"timezone": timezone},
    )
    occurrence = Harness(doc).version.next_occurrence(ms(after))
    if expected is None:
        assert occurrence is None
    else:
        assert occurrence == Occurrence(ms(expected[0]), expected[1])


# ---------------------------------------------------------------------------------- entry rules


@pytest.mark.parametrize(
    ("entry", "history", "refused"),
    [
        ({}, EntryHistory(), None),
        ({}, EntryHistory(finished_runs_for_key=1), REFUSED_RE_ENTRY),  # default: never
        ({"re_entry": "never"}, EntryHistory(live_runs_for_key=1), REFUSED_RE_ENTRY),
        ({"re_entry": "after_exit"}, EntryHistory(live_runs_for_key=1), REFUSED_RE_ENTRY),
        ({"re_entry": "after_exit"}, EntryHistory(finished_runs_for_key=3), None),
        ({"re_entry": "always"}, EntryHistory(live_runs_for_key=2, finished_runs_for_key=2), None),
        (
            {"re_entry": "always", "max_entries": 2},
            EntryHistory(profile_entries=2),
            REFUSED_MAX_ENTRIES,
        ),
        ({"re_entry": "always", "max_entries": 2}, EntryHistory(profile_entries=1), None),
        ({"enrollment_limit": 100}, EntryHistory(journey_enrollments=100), REFUSED_LIMIT),
        ({"enrollment_limit": 100}, EntryHistory(journey_enrollments=99), None),
    ],
)
def test_entry_rules(entry: dict[str, Any], history: EntryHistory, refused: str | None) -> None:
    h = Harness(journey_doc([message("hello")], entry=entry))
    transition = h.enter(history=history)
    if refused is None:
        assert transition.run is not None
    else:
        assert transition.run is None
        assert transition.effects == (EntryRefused("p1", refused),)


@pytest.mark.parametrize(
    ("properties", "key"),
    [({"cart_id": "c-1"}, "c-1"), ({"cart_id": 42}, "42"), ({"cart_id": True}, "true"), ({}, None)],
)
def test_entry_key_from_the_trigger(properties: dict[str, Any], key: str | None) -> None:
    h = Harness(CART)
    transition = h.enter(fact("Checkout Started", **properties))
    if key is None:
        assert transition.effects == (EntryRefused("p1", REFUSED_KEY),)
    else:
        assert transition.run is not None and transition.run.entry_key == key
        assert h.version.entry_key(fact("Checkout Started", **properties)) == key


def test_one_person_runs_once_per_cart() -> None:
    """Two carts give two independent runs; each only reacts to its own cart's order."""
    first, second = Harness(CART), Harness(CART)
    first.enter(fact("Checkout Started", cart_id="a"), run_id="ra")
    second.profile = first.profile
    second.enter(fact("Checkout Started", T0 + 1, cart_id="b"), now=T0 + 1, run_id="rb")
    order_b = fact("Order Completed", T0 + 10 * 60_000, cart_id="b")
    first.event(order_b)
    second.event(order_b)
    assert first.run is not None and first.run.status == "converted"  # any order is a conversion
    assert second.run is not None and second.run.status == "converted"
    assert [c.node_id for c in second.of(Converted)] == ["wait_order"]


# ------------------------------------------------------------------------------ the cart


def test_abandoned_cart_times_out_to_push_then_email() -> None:
    h = Harness(CART)
    entered = h.enter(fact("Checkout Started", cart_id="c1"))
    assert entered.run is not None and entered.run.status == "waiting"
    assert entered.run.node_id == "wait_order"
    assert ScheduleTimer("wait_order", T0 + HOUR) in entered.effects
    h.run_until(T0 + HOUR)
    assert [(s.channel, s.template, s.idempotency_key) for s in h.of(Send)] == [
        ("push", "cart_push", "r1:push:1")
    ]
    assert h.run is not None and h.run.node_id == "wait_day"
    h.run_until(T0 + HOUR + DAY)
    assert [s.template for s in h.of(Send)] == ["cart_push", "cart_email"]
    assert h.run.status == "exited" and h.run.exit_reason == EXIT_NODE
    assert h.visited() == ["wait_order", "push", "wait_day", "email", "done"]
    assert not h.timers


def test_abandoned_cart_order_in_time_sends_nothing() -> None:
    h = Harness(CART)
    h.enter(fact("Checkout Started", cart_id="c1"))
    other_cart = h.event(fact("Order Completed", T0 + 60_000, cart_id="zzz"))
    # a different cart's order converts (goal has no match) but does not end the wait_for_event
    assert other_cart.run is not None and other_cart.run.status == "converted"
    h2 = Harness(CART)
    h2.enter(fact("Checkout Started", cart_id="c1"))
    h2.event(fact("Order Completed", T0 + 60_000, cart_id="c1"))
    assert h2.run is not None and h2.run.status == "converted"
    assert h2.run.exit_reason == EXIT_CONVERTED
    assert h2.visited() == ["wait_order"]
    assert not h2.of(Send) and not h2.timers


# ---------------------------------------------------------------------------------- node types


def test_message_carries_topic_and_settings() -> None:
    doc = journey_doc(
        [message("promo", topic="news")],
        settings={
            "timezone": "Europe/Paris",
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "frequency_cap": "apply",
        },
    )
    h = Harness(doc)
    h.enter()
    (send,) = h.of(Send)
    assert send.topic == "news" and send.channel == "email"
    assert send.settings.timezone == "Europe/Paris"
    assert send.settings.quiet_hours is not None and send.settings.quiet_hours.action == "defer"
    assert (send.run_id, send.journey_key, send.version, send.profile_id) == ("r1", "j", 1, "p1")
    assert send.trigger.name == "Signed Up"


def test_wait_schedules_a_timer_and_stale_timers_are_ignored() -> None:
    h = Harness(
        journey_doc([{"id": "w", "type": "wait", "duration": "2h", "next": "m"}, message("m")])
    )
    entered = h.enter()
    assert entered.run is not None
    early = advance(h.version, entered.run, TimerFired("w", T0 + 2 * HOUR), T0 + HOUR, h.profile)
    assert not early.changed and early.run is entered.run
    wrong_due = advance(h.version, entered.run, TimerFired("w", T0 + 5), T0 + 3 * HOUR, h.profile)
    assert not wrong_due.changed
    wrong_node = advance(
        h.version, entered.run, TimerFired("m", T0 + 2 * HOUR), T0 + 3 * HOUR, h.profile
    )
    assert not wrong_node.changed
    fired = h.run_until(T0 + 2 * HOUR)
    assert len(fired) == 1 and fired[0].run is not None and fired[0].run.status == "exited"
    # the same timer delivered twice (at-least-once) does nothing the second time
    again = advance(
        h.version, fired[0].run, TimerFired("w", T0 + 2 * HOUR), T0 + 2 * HOUR, h.profile
    )
    assert not again.changed and again.effects == ()


@pytest.mark.parametrize(
    ("tz", "entered", "node", "due"),
    [
        # 09:00 Paris the morning DST starts is 07:00Z (09:00 the day before was 08:00Z)
        (
            "Europe/Paris",
            "2026-03-28T12:00:00+00:00",
            {"time": "09:00"},
            "2026-03-29T07:00:00+00:00",
        ),
        (
            "Europe/Paris",
            "2026-10-24T12:00:00+00:00",
            {"time": "09:00"},
            "2026-10-25T08:00:00+00:00",
        ),
        # only weekdays: Saturday → Monday
        (
            "America/New_York",
            "2026-03-07T15:00:00+00:00",
            {"time": "09:00", "weekdays": ["mon", "tue", "wed", "thu", "fri"]},
            "2026-03-09T13:00:00+00:00",
        ),
        # an unknown timezone trait falls back to the journey's (UTC)
        ("Mars/Base", "2026-01-05T10:00:00+00:00", {"time": "09:00"}, "2026-01-06T09:00:00+00:00"),
    ],
)
def test_wait_until_time_of_day_in_the_profiles_timezone(
    tz: str, entered: str, node: dict[str, Any], due: str
) -> None:
    doc = journey_doc([{"id": "w", "type": "wait_until", "next": "m", **node}, message("m")])
    h = Harness(doc, Profile(traits={"timezone": tz}))
    transition = h.enter(now=ms(entered))
    assert transition.run is not None and transition.run.wait_deadline_ms == ms(due)
    h.run_until(ms(due))
    assert [s.template for s in h.of(Send)] == ["m"]


@pytest.mark.parametrize(
    ("traits", "entered", "due", "path"),
    [
        # a date: local wall-clock (Madrid), three days before at 10:00
        (
            {"renews_at": "2026-02-10"},
            "2026-01-05T09:00:00+00:00",
            "2026-02-07T09:00:00+00:00",
            "m",
        ),
        # an instant with an offset: exactly 3 days before (10:00 local time is ignored)
        (
            {"renews_at": "2026-02-10T18:00:00Z"},
            "2026-01-05T09:00:00+00:00",
            "2026-02-07T18:00:00+00:00",
            "m",
        ),
        # epoch milliseconds
        (
            {"renews_at": ms("2026-02-10T00:00:00+00:00")},
            "2026-01-05T09:00:00+00:00",
            "2026-02-07T00:00:00+00:00",
            "m",
        ),
        # already past: straight on
        ({"renews_at": "2025-12-01"}, "2026-01-05T09:00:00+00:00", None, "m"),
        # missing or not a date: on_missing
        ({}, "2026-01-05T09:00:00+00:00", None, "unknown"),
        ({"renews_at": "soon"}, "2026-01-05T09:00:00+00:00", None, "unknown"),
    ],
)
def test_wait_until_a_date_trait(
    traits: dict[str, Any], entered: str, due: str | None, path: str
) -> None:
    doc = journey_doc(
        [
            {
                "id": "w",
                "type": "wait_until",
                "date_trait": "renews_at",
                "offset": "-3d",
                "time": "10:00",
                "next": "m",
                "on_missing": "unknown",
            },
            message("m"),
            message("unknown"),
        ],
        settings={"timezone": "Europe/Madrid"},
    )
    h = Harness(doc, Profile(traits=traits))
    transition = h.enter(now=ms(entered))
    assert transition.run is not None
    if due is None:
        assert [s.template for s in h.of(Send)] == [path]
        return
    assert transition.run.wait_deadline_ms == ms(due)
    h.run_until(ms(due))
    assert [s.template for s in h.of(Send)] == [path]


def test_wait_for_event_times_out_and_ignores_late_events() -> None:
    doc = journey_doc(
        [
            {
                "id": "listen",
                "type": "wait_for_event",
                "event": "Replied",
                "where": [{"property": "channel", "eq": "sms"}],
                "timeout": "1d",
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
            message("thanks"),
            message("nudge"),
        ]
    )
    h = Harness(doc)
    h.enter()
    filtered_out = h.event(fact("Replied", T0 + HOUR, channel="email"))
    assert not filtered_out.changed
    unrelated = h.event(fact("Page Viewed", T0 + HOUR))
    assert not unrelated.changed
    h.run_until(T0 + DAY)
    late = h.event(fact("Replied", T0 + DAY + 1, channel="sms"))
    assert not late.changed
    assert [s.template for s in h.of(Send)] == ["nudge"]

    h2 = Harness(doc)
    h2.enter()
    matched = h2.event(fact("Replied", T0 + HOUR, channel="sms"))
    assert CancelTimers() in matched.effects
    assert [s.template for s in h2.of(Send)] == ["thanks"]
    assert not h2.timers


@pytest.mark.parametrize(
    ("plan", "sent"), [("pro", "pro_tips"), ("free", "upgrade"), (None, "upgrade")]
)
def test_branch(plan: str | None, sent: str) -> None:
    doc = journey_doc(
        [
            {
                "id": "b",
                "type": "branch",
                "condition": {"trait": "plan", "eq": "pro"},
                "then": "pro_tips",
                "else": "upgrade",
            },
            message("pro_tips"),
            message("upgrade"),
        ]
    )
    h = Harness(doc, Profile(traits={"plan": plan} if plan else {}))
    h.enter()
    assert [s.template for s in h.of(Send)] == [sent]
    assert NodeVisited("b", "then" if sent == "pro_tips" else "else") in h.log


@pytest.mark.parametrize(
    ("profile", "sent", "outcome"),
    [
        (Profile(traits={"score": 90}), "hot", "hot"),
        (Profile(traits={"score": 90}, segments={"customers"}), "hot", "hot"),  # first arm wins
        (Profile(traits={"score": 10}, segments={"customers"}), "existing", "branches[1]"),
        (Profile(traits={"score": 10}), "cold", "default"),
    ],
)
def test_split_takes_the_first_matching_arm(profile: Profile, sent: str, outcome: str) -> None:
    doc = journey_doc(
        [
            {
                "id": "s",
                "type": "split",
                "branches": [
                    {"name": "hot", "condition": {"trait": "score", "gte": 80}, "next": "hot"},
                    {"condition": {"segment": "customers"}, "next": "existing"},
                ],
                "default": "cold",
            },
            message("hot"),
            message("existing"),
            message("cold"),
        ]
    )
    h = Harness(doc, profile)
    h.enter()
    assert [s.template for s in h.of(Send)] == [sent]
    assert NodeVisited("s", outcome) in h.log


RANDOM = {
    "id": "ab",
    "type": "random_split",
    "branches": [
        {"name": "A", "weight": 1, "next": "a"},
        {"name": "B", "weight": 3, "next": "b"},
    ],
    "holdout": 10,
}


def test_random_split_is_weighted_sticky_and_holds_out() -> None:
    version = compile_journey(parse_journey(journey_doc([RANDOM, message("a"), message("b")])), 1)
    node = version.nodes["ab"]
    assert isinstance(node, RandomSplitNode)
    counts = Counter(random_split_arm("j", node, f"person-{i}") for i in range(20_000))
    # holdout 10 %, then A:B = 1:3 of the other 90 %
    assert abs(counts[None] / 20_000 - 0.10) < 0.01
    assert abs(counts[0] / 20_000 - 0.225) < 0.015
    assert abs(counts[1] / 20_000 - 0.675) < 0.015
    # sticky: the same person always lands in the same arm, whatever the run
    for i in range(50):
        arms = {random_split_arm("j", node, f"person-{i}") for _ in range(3)}
        assert len(arms) == 1
    # another journey (or node) reshuffles independently
    moved = sum(
        random_split_arm("j", node, f"person-{i}") != random_split_arm("other", node, f"person-{i}")
        for i in range(2_000)
    )
    assert moved > 500


def test_random_split_in_runs() -> None:
    doc = journey_doc([RANDOM, message("a"), message("b")], entry={"re_entry": "always"})
    outcomes: Counter[str | None] = Counter()
    for i in range(300):
        h = Harness(doc, Profile(profile_id=f"person-{i}"))
        first = h.enter(run_id="r1")
        second = h.enter(run_id="r2", now=T0 + DAY)
        assert [e for e in first.effects if isinstance(e, NodeVisited)] == [
            e for e in second.effects if isinstance(e, NodeVisited)
        ]
        outcome = next(e.outcome for e in first.effects if isinstance(e, NodeVisited))
        outcomes[outcome] += 1
        if outcome == "holdout":
            assert first.run is not None and first.run.exit_reason == EXIT_HOLDOUT
            assert not [e for e in first.effects if isinstance(e, Send)]
    assert set(outcomes) == {"A", "B", "holdout"}


def test_update_profile_resolves_references_and_later_nodes_see_it() -> None:
    doc = journey_doc(
        [
            {
                "id": "u",
                "type": "update_profile",
                "set": {
                    "plan": "pro",
                    "last_cart": "trigger.properties.cart_id",
                    "missing": "trigger.properties.nope",
                },
                "unset": ["churn_risk"],
                "increment": {"visits": 2},
                "next": "b",
            },
            {
                "id": "b",
                "type": "branch",
                "condition": {
                    "all": [{"trait": "plan", "eq": "pro"}, {"trait": "visits", "eq": 3}]
                },
                "then": "yes",
                "else": "no",
            },
            message("yes"),
            message("no"),
        ],
        trigger={"event": "Checkout Started"},
    )
    h = Harness(
        doc, Profile(traits={"plan": "free", "visits": 1, "churn_risk": 0.5}), apply_updates=False
    )
    h.enter(fact("Checkout Started", cart_id="c9"))
    (update,) = h.of(UpdateProfile)
    assert update.ops == (
        TraitOp("set", "plan", "pro"),
        TraitOp("set", "last_cart", "c9"),
        TraitOp("set", "missing", None),
        TraitOp("unset", "churn_risk"),
        TraitOp("increment", "visits", 2),
    )
    assert update.idempotency_key == "r1:u:1"
    assert [s.template for s in h.of(Send)] == ["yes"]
    assert h.profile.traits["plan"] == "free"  # the engine never mutates the context


WEBHOOK_DOC = journey_doc(
    [
        {
            "id": "crm",
            "type": "webhook",
            "url": "https://crm.example.com/leads",
            "body": '{"email": "{{ profile.traits.email }}"}',
            "response": {"traits": {"crm_id": "lead.id"}, "data": {"offer": "offer.code"}},
            "give_up_after": "30m",
            "on_success": "b",
            "on_failure": "sorry",
        },
        {
            "id": "b",
            "type": "branch",
            "condition": {"trait": "crm_id", "exists": True},
            "then": "ok",
            "else": "sorry",
        },
        message("ok"),
        message("sorry"),
    ]
)


def test_webhook_success_maps_the_response() -> None:
    h = Harness(WEBHOOK_DOC)
    entered = h.enter()
    (call,) = [e for e in entered.effects if isinstance(e, CallWebhook)]
    assert call.request.url == "https://crm.example.com/leads" and call.request.method == "POST"
    assert call.idempotency_key == "r1:crm:1"
    assert call.request.give_up_at_ms == T0 + 30 * 60_000
    assert entered.run is not None and entered.run.status == "waiting"
    stale = advance(
        h.version, entered.run, WebhookDone("crm", 200, {}, "r1:crm:0"), T0 + 5, h.profile
    )
    assert not stale.changed
    done = h.webhook("crm", 201, {"lead": {"id": "L-7"}, "offer": {"code": "FREESHIP"}}, T0 + 1000)
    assert done.run is not None and done.run.data == {"offer": "FREESHIP"}
    assert (
        UpdateProfile("p1", (TraitOp("set", "crm_id", "L-7"),), "r1:crm:1:response") in done.effects
    )
    assert [s.template for s in h.of(Send)] == ["ok"]
    assert h.of(Send)[0].data == {"offer": "FREESHIP"}


@pytest.mark.parametrize("outcome", ["error", "give_up"])
def test_webhook_failure(outcome: str) -> None:
    h = Harness(WEBHOOK_DOC)
    h.enter()
    if outcome == "error":
        h.webhook("crm", 503, None, T0 + 1000)
    else:
        h.run_until(T0 + 30 * 60_000)
    assert [s.template for s in h.of(Send)] == ["sorry"]
    late = h.webhook("crm", 200, {"lead": {"id": "x"}}, T0 + HOUR)
    assert not late.changed


def test_emit_event_resolves_properties() -> None:
    doc = journey_doc(
        [
            {
                "id": "e",
                "type": "emit_event",
                "event": "Lead Qualified",
                "properties": {"source": "journey", "plan": "trigger.properties.plan"},
            }
        ],
        trigger={"event": "Signed Up"},
    )
    h = Harness(doc)
    h.enter(fact("Signed Up", plan="team"))
    assert h.of(Emit) == [
        Emit("p1", "Lead Qualified", {"source": "journey", "plan": "team"}, "r1:e:1")
    ]
    assert h.run is not None and h.run.exit_reason == EXIT_END


def test_exit_node_and_end_of_path() -> None:
    h = Harness(journey_doc([message("m", "done"), EXIT]))
    h.enter()
    assert h.of(Exit) == [Exit("done", EXIT_NODE)]
    h2 = Harness(journey_doc([message("m")]))
    h2.enter()
    assert h2.of(Exit) == [Exit("m", EXIT_END)]
    assert h2.run is not None and h2.run.status == "exited" and h2.run.exited_ms == T0


def test_a_loop_through_a_past_date_stops_instead_of_spinning() -> None:
    doc = journey_doc(
        [
            message("m", "w"),
            {"id": "w", "type": "wait_until", "date_trait": "d", "next": "m"},
        ]
    )
    h = Harness(doc, Profile(traits={"d": "2020-01-01"}))
    h.enter()
    assert len(h.of(Send)) == 2
    assert h.run is not None and h.run.exit_reason == EXIT_LOOP_GUARD


def test_a_time_of_day_loop_waits_for_the_next_day() -> None:
    doc = journey_doc(
        [message("m", "w"), {"id": "w", "type": "wait_until", "time": "09:00", "next": "m"}]
    )
    h = Harness(doc)
    h.enter(now=T0)  # exactly 09:00: passes once, then must wait a day
    assert h.run is not None and h.run.wait_deadline_ms == T0 + DAY
    h.run_until(T0 + 3 * DAY)
    assert [s.idempotency_key for s in h.of(Send)] == [f"r1:m:{i}" for i in range(1, 6)]


# ------------------------------------------------------------------------------- exit criteria


def test_exit_criteria_event_matching_the_trigger() -> None:
    doc = journey_doc(
        [{"id": "w", "type": "wait", "duration": "1d", "next": "m"}, message("m")],
        trigger={"event": "Checkout Started"},
        exit_criteria=[
            {"event": "Cart Emptied", "match": {"properties.cart_id": "trigger.properties.cart_id"}}
        ],
    )
    h = Harness(doc)
    h.enter(fact("Checkout Started", cart_id="c1"))
    assert not h.event(fact("Cart Emptied", T0 + HOUR, cart_id="c2")).changed
    left = h.event(fact("Cart Emptied", T0 + HOUR, cart_id="c1"))
    assert (
        left.run is not None
        and left.run.status == "exited"
        and left.run.exit_reason == EXIT_CRITERIA
    )
    assert Exit("w", EXIT_CRITERIA) in left.effects and CancelTimers() in left.effects
    assert not h.of(Send)


def test_exit_condition_refuses_entry_and_ends_waiting_runs() -> None:
    doc = journey_doc(
        [{"id": "w", "type": "wait", "duration": "1d", "next": "m"}, message("m")],
        exit_criteria={"condition": {"trait": "unsubscribed", "eq": True}},
    )
    refused = Harness(doc, Profile(traits={"unsubscribed": True})).enter()
    assert refused.effects == (EntryRefused("p1", REFUSED_EXIT),)
    h = Harness(doc)
    h.enter()
    h.profile.traits["unsubscribed"] = True
    fired = h.run_until(T0 + DAY)
    assert fired[-1].run is not None and fired[-1].run.exit_reason == EXIT_CRITERIA
    assert not h.of(Send)


def test_time_windowed_exit_condition_schedules_its_own_recheck() -> None:
    # Exit once the person has not opened the app for 3 days: no event will say so, the
    # condition's valid-until does.
    doc = journey_doc(
        [{"id": "w", "type": "wait", "duration": "7d", "next": "m"}, message("m")],
        exit_criteria={"condition": {"not": {"event": "App Opened", "within": "3d"}}},
    )
    profile = Profile(history=[fact("App Opened", T0 - HOUR)])
    h = Harness(doc, profile)
    entered = h.enter()
    assert entered.run is not None and entered.run.recheck_ms == T0 - HOUR + 3 * DAY
    assert ScheduleTimer(EXIT_CHECK_TIMER, T0 - HOUR + 3 * DAY) in entered.effects
    # the app is opened again: the event moves the recheck later
    moved = h.event(fact("App Opened", T0 + DAY))
    assert moved.run is not None and moved.run.recheck_ms == T0 + 4 * DAY
    fired = h.run_until(T0 + 4 * DAY)
    assert fired[-1].run is not None and fired[-1].run.exit_reason == EXIT_CRITERIA
    assert fired[-1].run.exited_ms == T0 + 4 * DAY
    assert not h.of(Send)


# ---------------------------------------------------------------------------------------- goals


GOAL_NODES = [
    {"id": "w", "type": "wait", "duration": "3d", "next": "m"},
    message("m", "w2"),
    {"id": "w2", "type": "wait", "duration": "10d", "next": "m2"},
    message("m2"),
]


@pytest.mark.parametrize(
    ("goal", "order_at", "converted", "status"),
    [
        ({"event": "Order Completed", "within": "7d"}, T0 + DAY, True, "converted"),
        ({"event": "Order Completed", "within": "7d"}, T0 + 8 * DAY, False, "waiting"),
        ({"event": "Order Completed", "within": "7d", "exit": False}, T0 + DAY, True, "waiting"),
        (
            {
                "event": "Order Completed",
                "where": [{"property": "total", "gte": 100}],
                "within": "7d",
            },
            T0 + DAY,
            False,
            "waiting",
        ),
        ({"event": "Order Completed"}, T0 + 8 * DAY, True, "converted"),  # no window: while live
    ],
)
def test_goals(goal: dict[str, Any], order_at: int, converted: bool, status: str) -> None:
    h = Harness(journey_doc(GOAL_NODES, goal=goal))
    h.enter()
    h.run_until(order_at)
    transition = h.event(fact("Order Completed", order_at, total=40))
    assert h.run is not None and h.run.status == status
    assert bool(h.of(Converted)) is converted
    if converted:
        assert h.run.converted_ms == order_at
        # converting twice is counted once
        assert not h.event(fact("Order Completed", order_at + 1, total=40)).changed
        if status == "converted":
            assert Exit(h.run.node_id, EXIT_CONVERTED) in transition.effects
            assert not h.timers


def test_conversion_after_the_run_ended_still_counts_within_the_window() -> None:
    h = Harness(journey_doc([message("m")], goal={"event": "Order Completed", "within": "7d"}))
    h.enter()
    assert h.run is not None and h.run.status == "exited"
    assert h.version.interests(h.run).events == {"Order Completed"}
    assert h.version.interests(h.run).until_ms == T0 + 7 * DAY
    late = h.event(fact("Order Completed", T0 + 2 * DAY))
    assert (
        late.run is not None
        and late.run.status == "exited"
        and late.run.converted_ms == T0 + 2 * DAY
    )
    assert late.effects == (
        Converted("Order Completed", fact("Order Completed", T0 + 2 * DAY), "m"),
    )
    assert h.version.interests(late.run).events == frozenset()
    too_late = Harness(
        journey_doc([message("m")], goal={"event": "Order Completed", "within": "7d"})
    )
    too_late.enter()
    assert not too_late.event(fact("Order Completed", T0 + 8 * DAY)).changed


def test_interests_of_a_waiting_run() -> None:
    doc = parse_journey(CART).to_document()
    doc["exit_criteria"] = [
        {"event": "Unsubscribed"},
        {
            "condition": {
                "any": [{"event": "Support Ticket"}, {"trait": "address.country", "eq": "FR"}]
            }
        },
        {"condition": {"not": {"segment": "active_buyers"}}},
    ]
    h = Harness(doc, Profile(segments={"active_buyers"}))
    h.enter(fact("Checkout Started", cart_id="c1"))
    assert h.run is not None
    interests = h.version.interests(h.run)
    assert interests.events == {"Order Completed", "Unsubscribed", "Support Ticket"}
    assert (interests.traits, interests.segments) == ({"address"}, {"active_buyers"})
    h.run_until(T0 + HOUR)
    assert h.version.interests(h.run).events == {
        "Order Completed",
        "Unsubscribed",
        "Support Ticket",
    }


# ------------------------------------------------------------------------- determinism & misuse


def _scenario() -> list[Any]:
    version = compile_journey(parse_journey(journey_doc([RANDOM, message("a"), message("b")])), 1)
    node = version.nodes["ab"]
    assert isinstance(node, RandomSplitNode)
    person = next(f"p{i}" for i in range(100) if random_split_arm("j", node, f"p{i}") is not None)
    h = Harness(
        journey_doc(
            [
                RANDOM,
                message("a", "w"),
                message("b", "w"),
                {"id": "w", "type": "wait", "duration": "1d", "next": "u"},
                {"id": "u", "type": "update_profile", "increment": {"n": 1}, "next": "done"},
                EXIT,
            ],
            goal={"event": "Order Completed", "within": "7d", "exit": False},
        ),
        Profile(profile_id=person, traits={"timezone": "Europe/Paris"}),
    )
    h.enter()
    h.event(fact("Order Completed", T0 + HOUR))
    h.run_until(T0 + 2 * DAY)
    return h.transitions


def test_same_inputs_give_the_same_transitions() -> None:
    first, second = _scenario(), _scenario()
    assert first == second
    assert len(first) == 3
    # and one advance call repeated on the same inputs is equal too
    h = Harness(CART)
    enter = Enter("r1", fact("Checkout Started", cart_id="c"))
    assert advance(h.version, None, enter, T0, h.profile) == advance(
        h.version, None, enter, T0, h.profile
    )


def test_runs_round_trip_through_a_json_column() -> None:
    import json

    for transition in _scenario():
        run = transition.run
        assert run is not None
        assert Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_advance_refuses_misuse() -> None:
    h = Harness(CART)
    entered = h.enter(fact("Checkout Started", cart_id="c"))
    assert entered.run is not None
    with pytest.raises(InvalidInput, match="exists already"):
        advance(
            h.version,
            entered.run,
            Enter("r2", fact("Checkout Started", cart_id="c")),
            T0,
            h.profile,
        )
    with pytest.raises(InvalidInput, match="needs the run"):
        advance(h.version, None, EventArrived(fact("x")), T0, h.profile)
    newer = compile_journey(parse_journey(CART), 2)
    with pytest.raises(InvalidInput, match="v1"):
        advance(newer, entered.run, EventArrived(fact("x")), T0, h.profile)
    with pytest.raises(InvalidInput, match="belongs to"):
        advance(h.version, entered.run, EventArrived(fact("x")), T0, Profile(profile_id="other"))
    active = dataclasses.replace(entered.run, status="active")
    with pytest.raises(InvalidInput, match="mid-step"):
        advance(h.version, active, EventArrived(fact("x")), T0, h.profile)


def test_compile_refuses_an_invalid_graph() -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_journey(parse_journey(journey_doc([message("m", "nowhere")])), 1)
    assert caught.value.details["node"] == "m"
