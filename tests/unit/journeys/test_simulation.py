"""Simulation: every example of the library replayed on a realistic history, and the replay's
rules (time order, timers between events, schedules, webhooks assumed to succeed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from legato.domain.conditions import EventFact
from legato.domain.journey_validation import KnownReferences, validate_journey
from legato.domain.journeys import MessageNode, parse_journey
from legato.errors import InvalidInput
from legato.runtime.simulation import (
    Seed,
    SimEvent,
    SimulationReport,
    events_from_lines,
    simulate,
)

from .harness import DAY, HOUR, T0

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "journeys"
MINUTE = 60_000


def ev(person: str, name: str, at: int, **properties: Any) -> SimEvent:
    return SimEvent(person, EventFact(name, at, properties))


def day(offset_days: int) -> str:
    return datetime.fromtimestamp((T0 + offset_days * DAY) / 1000, UTC).date().isoformat()


@dataclass
class Replay:
    """A history for one example and what its simulation must show."""

    example: str
    events: list[SimEvent]
    entered: int
    messages: dict[str, dict[str, int]]
    reached: dict[str, int] = field(default_factory=dict)
    seeds: dict[str, Seed] = field(default_factory=dict)
    days: int = 30
    converted: int = 0


def carts() -> list[SimEvent]:
    events = [ev(f"p{i}", "Checkout Started", T0 + i * MINUTE, cart_id=f"c{i}") for i in range(6)]
    events.append(ev("p0", "Order Completed", T0 + 30 * MINUTE, cart_id="c0"))
    events.append(ev("p1", "Order Completed", T0 + 20 * MINUTE, cart_id="other"))
    events.append(ev("p2", "Application Opened", T0 + 2 * DAY))
    return events


REPLAYS = [
    Replay(
        "abandoned_cart",
        carts(),
        entered=6,
        converted=1,
        messages={
            "push": {day(0): 5},
            "email": {day(1): 5},
            "in_app": {day(2): 1},
        },
        reached={"push": 5, "free_shipping": 1},
    ),
    Replay(
        "welcome_series",
        [ev(f"p{i}", "Signed Up", T0 + i * HOUR) for i in range(4)]
        + [ev("p0", "Profile Completed", T0 + DAY)],
        entered=4,
        # Welcome at once; nudge or tips after 2 days (Wednesday); 3 days later is Saturday:
        # the tour waits for the next weekday, Monday 10:00 London.
        messages={"email": {day(0): 4, day(2): 4, day(7): 4}},
        reached={"tips": 1, "finish_profile": 3, "tour": 4},
        seeds={"p3": Seed(traits={"unsubscribed": False})},
    ),
    Replay(
        "post_purchase_cross_sell",
        [ev(f"p{i}", "Order Completed", T0, order_id=f"o{i}") for i in range(3)]
        + [ev("p2", "Order Refunded", T0 + DAY, order_id="o2")],
        entered=3,
        messages={"email": {day(3): 2}},
        reached={"socks_and_care": 1, "bestsellers": 1},
        seeds={
            "p0": Seed(computed_traits={"favourite_category": "Shoes > Boots"}),
            "p1": Seed(computed_traits={"favourite_category": "Home > Kitchen"}),
        },
    ),
    Replay(
        "vip_fifth_purchase",
        [ev("p0", "Order Completed", T0 + i * DAY) for i in range(5)]
        + [ev("p1", "Order Completed", T0 + i * DAY) for i in range(2)]
        + [ev("p0", "VIP Invitation Accepted", T0 + 5 * DAY)],
        entered=7,
        # Every run of p0 (ended at once, but in its 14-day goal window) converts.
        converted=5,
        messages={"email": {day(4): 1}, "push": {day(5): 1}},
        reached={"mark": 1, "not_yet": 2, "welcome": 1},
    ),
    Replay(
        "win_back",
        [ev(f"p{i}", "Segment Entered", T0, segment="lapsed_customers") for i in range(3)]
        + [ev("p0", "Application Opened", T0 + 3 * DAY), ev("p2", "Order Completed", T0 + DAY)],
        entered=3,
        converted=1,
        messages={
            "email": {day(0): 3, day(21): 2},
            "push": {day(7): 1},
            "sms": {day(7): 1},
        },
    ),
    Replay(
        "lead_nurturing",
        [ev(f"p{i}", "Lead Created", T0, source="web") for i in range(3)]
        + [ev("p3", "Lead Created", T0, source="cold-call")],
        entered=3,
        days=20,
        messages={"email": {day(0): 3, day(7): 1, day(14): 2}},
        # Hot: to the CRM (the simulated webhook succeeds); warm: weekly content; cold: the
        # newsletter every two weeks.
        reached={"to_crm": 1, "sales_intro": 1, "nurture": 1, "newsletter": 1},
        seeds={
            "p0": Seed(computed_traits={"lead_score": 90}),
            "p1": Seed(computed_traits={"lead_score": 50}),
            "p2": Seed(computed_traits={"lead_score": 10}),
        },
    ),
    Replay(
        "contact_centre_follow_up",
        [
            ev(
                "p0",
                "Call Completed",
                T0,
                call_id="k0",
                intent="delivery",
                outcome="callback_scheduled",
            ),
            ev(
                "p1",
                "Call Completed",
                T0,
                call_id="k1",
                intent="upgrade",
                outcome="callback_scheduled",
            ),
            ev("p2", "Call Completed", T0, call_id="k2", intent="billing", outcome="resolved"),
            ev("p3", "Call Completed", T0, call_id="k3", intent="mortgage", outcome="abandoned"),
            ev("p4", "Call Completed", T0, call_id="k4", intent="delivery", outcome="resolved"),
            ev("p5", "Call Completed", T0, call_id="k5", intent="billing", outcome="transferred"),
        ],
        entered=5,
        messages={
            "sms": {day(0): 3, day(1): 2},
            "email": {day(0): 1},
            "push": {day(5): 1},
        },
        reached={"open_ticket": 1, "apology": 1, "call_back_offer": 1, "survey": 2},
    ),
    Replay(
        "hotel_stay",
        [
            ev(
                "p0",
                "Booking Confirmed",
                T0,
                booking_id="b0",
                check_in="2026-01-10",
                check_out="2026-01-12",
            ),
            ev(
                "p1",
                "Booking Confirmed",
                T0,
                booking_id="b1",
                check_in="2026-01-20",
                check_out="2026-01-21",
            ),
            ev("p1", "Booking Cancelled", T0 + DAY, booking_id="b1"),
        ],
        entered=2,
        messages={
            "email": {day(0): 2},
            "whatsapp": {"2026-01-08": 1},
            "push": {"2026-01-10": 1},
            "sms": {"2026-01-13": 1},
        },
    ),
    Replay(
        "mortgage_enquiry",
        [ev(f"p{i}", "Mortgage Enquiry Submitted", T0, enquiry_id=f"e{i}") for i in range(3)]
        + [ev("p0", "Adviser Call Booked", T0 + 5 * HOUR)],
        entered=3,
        converted=1,
        messages={"email": {day(0): 3}, "sms": {day(1): 2}, "push": {day(3): 3}},
        reached={"book_a_call": 2},
    ),
]


def test_every_example_has_a_replay() -> None:
    assert {r.example for r in REPLAYS} == {p.stem for p in EXAMPLES.glob("*.yaml")}


@pytest.mark.parametrize("replay", REPLAYS, ids=[r.example for r in REPLAYS])
def test_each_example_validates_and_simulates(replay: Replay) -> None:
    journey = parse_journey((EXAMPLES / f"{replay.example}.yaml").read_text())
    templates = {n.template for n in journey.nodes if isinstance(n, MessageNode)}
    validate_journey(
        journey,
        KnownReferences(
            templates=templates,
            segments={"lapsed_customers"},
            computed_traits={"lead_score", "favourite_category"},
        ),
    )
    report = simulate(
        journey,
        replay.events,
        start_ms=T0,
        end_ms=T0 + replay.days * DAY,
        seeds=replay.seeds,
    )
    assert report.entered == replay.entered
    assert report.converted == replay.converted
    assert report.messages == replay.messages
    for node, people in replay.reached.items():
        assert report.nodes[node]["people"] == people, (node, report.nodes)
    # A simulation sends nothing and is deterministic.
    again = simulate(
        journey, replay.events, start_ms=T0, end_ms=T0 + replay.days * DAY, seeds=replay.seeds
    )
    assert again.to_dict() == report.to_dict()


def test_the_replay_runs_in_time_order_with_timers_in_between() -> None:
    journey = parse_journey(
        {
            "key": "j",
            "trigger": {"event": "Started"},
            "nodes": [
                {
                    "id": "w",
                    "type": "wait_for_event",
                    "event": "Done",
                    "timeout": "1h",
                    "on_event": "yes",
                    "on_timeout": "no",
                },
                {"id": "yes", "type": "message", "channel": "sms", "template": "y"},
                {"id": "no", "type": "message", "channel": "email", "template": "n"},
            ],
        }
    )
    # Given out of order: the replay sorts them. p1's Done comes after its timeout.
    events = [
        ev("p1", "Done", T0 + 2 * HOUR),
        ev("p0", "Done", T0 + 30 * MINUTE),
        ev("p0", "Started", T0),
        ev("p1", "Started", T0),
    ]
    report = simulate(journey, events, start_ms=T0, end_ms=T0 + DAY)
    assert report.messages == {"sms": {day(0): 1}, "email": {day(0): 1}}
    assert report.nodes["w"]["waiting"] == 0


def test_runs_still_waiting_at_the_end_are_counted_as_waiting() -> None:
    journey = parse_journey(
        {
            "key": "j",
            "trigger": {"event": "Started"},
            "nodes": [
                {"id": "w", "type": "wait", "duration": "7d", "next": "m"},
                {"id": "m", "type": "message", "channel": "sms", "template": "t"},
            ],
        }
    )
    report = simulate(journey, [ev("p0", "Started", T0)], start_ms=T0, end_ms=T0 + DAY)
    assert report.nodes["w"] == {"people": 1, "visits": 1, "waiting": 1}
    assert report.messages == {}


def test_a_schedule_enrols_the_segment_members_of_the_moment() -> None:
    journey = parse_journey(
        {
            "key": "j",
            "trigger": {"segment": "vip", "schedule": {"every": "day", "time": "12:00"}},
            "entry": {"re_entry": "always"},
            "nodes": [{"id": "m", "type": "message", "channel": "email", "template": "t"}],
        }
    )
    events = [
        ev("p1", "Segment Entered", T0 + DAY, segment="vip"),
        ev("p0", "Segment Exited", T0 + DAY, segment="vip"),
    ]
    seeds = {"p0": Seed(segments=frozenset({"vip"}))}
    report = simulate(journey, events, start_ms=T0, end_ms=T0 + 3 * DAY, seeds=seeds)
    # Day 0: p0; day 1: p1 (p0 left); day 2: p1.
    assert report.messages == {"email": {day(0): 1, day(1): 1, day(2): 1}}
    assert report.entered == 3


def test_events_come_from_json_lines_and_bad_lines_are_named() -> None:
    lines = [
        '{"type": "track", "userId": "u1", "event": "Started",'
        ' "timestamp": "2026-01-05T09:00:00Z"}',
        "",
        '{"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"},'
        ' "timestamp": "2026-01-05T10:00:00Z"}',
    ]
    first, second = events_from_lines(lines)
    assert (first.profile_id, first.fact.name, first.fact.timestamp_ms) == ("u1", "Started", T0)
    assert (second.profile_id, second.traits) == ("a1", {"plan": "pro"})
    with pytest.raises(InvalidInput, match="line 2: a message needs an ISO 8601 timestamp"):
        list(events_from_lines([*lines[:1], '{"userId": "u", "event": "x"}']))
    with pytest.raises(InvalidInput, match="line 1: a message needs userId or anonymousId"):
        list(events_from_lines(['{"event": "x", "timestamp": "2026-01-05T09:00:00Z"}']))
    with pytest.raises(InvalidInput, match="line 1: not JSON"):
        list(events_from_lines(["{nope"]))


def test_the_report_is_json_ready() -> None:
    report = SimulationReport("j", T0, T0 + DAY, messages={"sms": {"2026-01-05": 2}})
    assert orjson.loads(orjson.dumps(report.to_dict()))["messages"] == {"sms": {"2026-01-05": 2}}
