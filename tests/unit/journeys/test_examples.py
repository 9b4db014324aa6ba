"""The journey library in examples/journeys: each parses, validates and runs its story."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from legato.domain.engine import EXIT_CRITERIA, EXIT_NODE, CallWebhook, Converted, Emit
from legato.domain.journey_validation import KnownReferences, validate_journey
from legato.domain.journeys import MessageNode, parse_journey

from .harness import DAY, HOUR, T0, Harness, Profile, fact

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "journeys"
ISSUE_LIBRARY = {
    "abandoned_cart",
    "welcome_series",
    "post_purchase_cross_sell",
    "vip_fifth_purchase",
    "win_back",
    "lead_nurturing",
    "contact_centre_follow_up",
    "hotel_stay",
    "mortgage_enquiry",
}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def load(name: str) -> Any:
    return parse_journey((EXAMPLES / f"{name}.yaml").read_text())


def test_the_library_is_complete() -> None:
    assert {path.stem for path in EXAMPLES.glob("*.yaml")} == ISSUE_LIBRARY


@pytest.mark.parametrize("name", sorted(ISSUE_LIBRARY))
def test_each_example_parses_and_validates(name: str) -> None:
    journey = load(name)
    assert journey.key == name
    templates = {node.template for node in journey.nodes if isinstance(node, MessageNode)}
    validate_journey(
        journey,
        KnownReferences(
            templates=templates,
            channels={"email", "sms", "push", "whatsapp", "in_app"},
            segments={"lapsed_customers"},
        ),
    )
    assert parse_journey(journey.to_document()) == journey


@dataclass
class Story:
    """One person through one example: what happens, and what they receive when."""

    name: str
    trigger: Any
    expected: list[tuple[str, int]]
    status: tuple[str, str | None]
    profile: Profile = field(default_factory=Profile)
    actions: list[tuple[int, str, Any]] = field(default_factory=list)


def orders(n: int) -> list[Any]:
    return [fact("Order Completed", T0 - (i + 1) * DAY, order_id=f"o{i}") for i in range(n)]


STORIES = [
    Story(
        "abandoned_cart",
        fact("Checkout Started", cart_id="c1"),
        [("cart_push", T0 + HOUR), ("cart_related_products", T0 + HOUR + DAY)],
        ("exited", EXIT_NODE),
    ),
    Story(
        "abandoned_cart",
        fact("Checkout Started", cart_id="c1"),
        [
            ("cart_push", T0 + HOUR),
            ("cart_related_products", T0 + HOUR + DAY),
            ("cart_free_shipping", T0 + 2 * DAY),
        ],
        ("exited", EXIT_NODE),
        actions=[(T0 + 2 * DAY, "event", fact("Application Opened", T0 + 2 * DAY))],
    ),
    Story(
        "abandoned_cart",
        fact("Checkout Started", cart_id="c1"),
        [],
        ("converted", "converted"),
        actions=[
            (T0 + 20 * 60_000, "event", fact("Order Completed", T0 + 20 * 60_000, cart_id="c1"))
        ],
    ),
    Story(
        "welcome_series",
        fact("Signed Up"),
        # Saturday 09:00 after the waits → the next weekday at 10:00 London time
        [
            ("welcome", T0),
            ("finish_your_profile", T0 + 2 * DAY),
            ("product_tour", ms("2026-01-12T10:00:00+00:00")),
        ],
        ("exited", EXIT_NODE),
    ),
    Story(
        "welcome_series",
        fact("Signed Up"),
        [("welcome", T0), ("getting_started_tips", T0 + 2 * DAY)],
        ("exited", EXIT_CRITERIA),
        actions=[
            (T0 + DAY, "event", fact("Profile Completed", T0 + DAY)),
            (T0 + 3 * DAY, "trait", ("unsubscribed", True)),
            (T0 + 3 * DAY, "event", fact("Email Opened", T0 + 3 * DAY)),
        ],
    ),
    Story(
        "post_purchase_cross_sell",
        fact("Order Completed", order_id="o1"),
        [("cross_sell_shoe_care", ms("2026-01-08T10:00:00+00:00"))],
        ("exited", EXIT_NODE),
        profile=Profile(computed_traits={"favourite_category": "Shoes > Sneakers"}),
    ),
    Story(
        "post_purchase_cross_sell",
        fact("Order Completed", order_id="o1"),
        [],
        ("exited", EXIT_CRITERIA),
        actions=[(T0 + DAY, "event", fact("Order Refunded", T0 + DAY, order_id="o1"))],
    ),
    Story(
        "vip_fifth_purchase",
        fact("Order Completed", order_id="o5"),
        [("vip_invitation", T0), ("vip_reminder", T0 + 7 * DAY)],
        ("exited", EXIT_NODE),
        profile=Profile(history=orders(4)),
    ),
    Story(
        "vip_fifth_purchase",
        fact("Order Completed", order_id="o4"),
        [],
        ("exited", EXIT_NODE),
        profile=Profile(history=orders(3)),
    ),
    Story(
        "win_back",
        fact("Segment Entered", segment="lapsed_customers"),
        [
            ("we_miss_you", T0),
            ("winback_offer_sms", T0 + 7 * DAY),
            ("winback_last_chance", T0 + 21 * DAY),
        ],
        ("exited", EXIT_NODE),
    ),
    Story(
        "win_back",
        fact("Segment Entered", segment="lapsed_customers"),
        [("we_miss_you", T0), ("winback_offer_push", T0 + 7 * DAY)],
        ("converted", "converted"),
        actions=[
            (T0 + 2 * DAY, "event", fact("Application Opened", T0 + 2 * DAY)),
            (T0 + 10 * DAY, "event", fact("Order Completed", T0 + 10 * DAY)),
        ],
    ),
    Story(
        "lead_nurturing",
        fact("Lead Created", source="web"),
        [("sales_intro", T0 + 5000)],
        ("exited", EXIT_NODE),
        profile=Profile(computed_traits={"lead_score": 91}),
        actions=[(T0 + 5000, "webhook", ("to_crm", 200, {"owner": {"email": "ana@example.com"}}))],
    ),
    Story(
        "lead_nurturing",
        fact("Lead Created", source="webinar"),
        [("nurture_content", T0 + i * 7 * DAY) for i in range(6)],
        ("exited", EXIT_NODE),
        profile=Profile(computed_traits={"lead_score": 55}),
    ),
    Story(
        "lead_nurturing",
        fact("Lead Created", source="web"),
        [("newsletter", T0), ("newsletter", T0 + 14 * DAY)],
        ("exited", EXIT_CRITERIA),
        actions=[(T0 + 20 * DAY, "trait", ("lifecycle_stage", "customer"))],
    ),
    Story(
        "contact_centre_follow_up",
        fact("Call Completed", call_id="k1", intent="delivery", outcome="callback_scheduled"),
        [("delivery_apology", T0 + 60_000), ("call_satisfaction_survey", T0 + 60_000 + DAY)],
        ("exited", EXIT_NODE),
        actions=[(T0 + 60_000, "webhook", ("open_ticket", 201, {"ticket": {"number": "T-9"}}))],
    ),
    Story(
        "contact_centre_follow_up",
        fact("Call Completed", call_id="k2", intent="upgrade", outcome="callback_scheduled"),
        [("upgrade_quote", T0), ("upgrade_quote_reminder", T0 + 5 * DAY)],
        ("exited", EXIT_NODE),
    ),
    Story(
        "contact_centre_follow_up",
        fact("Call Completed", call_id="k3", intent="billing", outcome="refund_issued"),
        [("billing_resolved", T0)],
        ("exited", EXIT_NODE),
    ),
    Story(
        "contact_centre_follow_up",
        fact("Call Completed", call_id="k4", intent="mortgage", outcome="abandoned"),
        [("missed_call_callback", T0)],
        ("exited", EXIT_NODE),
    ),
    Story(
        "contact_centre_follow_up",
        fact("Call Completed", call_id="k5", intent="upgrade", outcome="upgraded"),
        [("call_satisfaction_survey", T0 + DAY)],
        ("exited", EXIT_NODE),
    ),
    Story(
        "hotel_stay",
        fact("Booking Confirmed", booking_id="b1", check_in="2026-02-10", check_out="2026-02-13"),
        [
            ("booking_confirmation", T0),
            ("checkin_reminder", ms("2026-02-08T10:00:00+00:00")),
            ("room_upgrade_offer", ms("2026-02-10T08:00:00+00:00")),
            ("stay_survey", ms("2026-02-14T11:00:00+00:00")),
        ],
        ("exited", EXIT_NODE),
    ),
    Story(
        "hotel_stay",
        fact("Booking Confirmed", booking_id="b1", check_in="2026-02-10", check_out="2026-02-13"),
        [
            ("booking_confirmation", T0),
            ("checkin_reminder", ms("2026-02-08T10:00:00-05:00")),
            ("room_upgrade_offer", ms("2026-02-10T08:00:00-05:00")),
            ("stay_survey", ms("2026-02-14T11:00:00-05:00")),
        ],
        ("exited", EXIT_NODE),
        profile=Profile(traits={"timezone": "America/New_York"}),
    ),
    Story(
        "hotel_stay",
        fact("Booking Confirmed", booking_id="b1", check_in="2026-02-10", check_out="2026-02-13"),
        [("booking_confirmation", T0)],
        ("exited", EXIT_CRITERIA),
        actions=[(T0 + DAY, "event", fact("Booking Cancelled", T0 + DAY, booking_id="b1"))],
    ),
    Story(
        "mortgage_enquiry",
        fact("Mortgage Enquiry Submitted", enquiry_id="e1"),
        [
            ("mortgage_next_steps", T0),
            ("mortgage_book_adviser", T0 + DAY),
            ("home_buying_tips", T0 + 3 * DAY),
        ],
        ("exited", EXIT_NODE),
    ),
    Story(
        "mortgage_enquiry",
        fact("Mortgage Enquiry Submitted", enquiry_id="e1"),
        [("mortgage_next_steps", T0), ("home_buying_tips", T0 + 3 * DAY)],
        ("exited", EXIT_NODE),
        actions=[(T0 + 5 * HOUR, "event", fact("Adviser Call Booked", T0 + 5 * HOUR))],
    ),
]


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.name)
def test_each_example_tells_its_story(story: Story) -> None:
    h = Harness((EXAMPLES / f"{story.name}.yaml").read_text(), story.profile)
    entered = h.enter(story.trigger, now=story.trigger.timestamp_ms)
    assert entered.run is not None
    for at, kind, payload in story.actions:
        h.run_until(at)
        if kind == "event":
            h.event(payload)
        elif kind == "trait":
            h.profile.traits[payload[0]] = payload[1]
        else:
            assert h.run is not None and h.run.node_id == payload[0]
            h.webhook(payload[0], payload[1], payload[2], at)
    h.run_until(T0 + 90 * DAY)
    assert [(send.template, at) for at, send in h.sent] == story.expected
    assert h.run is not None and (h.run.status, h.run.exit_reason) == story.status
    assert not h.timers


def test_lead_routing_failure_is_recorded() -> None:
    h = Harness(
        (EXAMPLES / "lead_nurturing.yaml").read_text(), Profile(computed_traits={"lead_score": 95})
    )
    h.enter(fact("Lead Created", source="referral"))
    (call,) = h.of(CallWebhook)
    assert call.request.url == "https://crm.example.com/api/leads/assign"
    h.run_until(T0 + 2 * HOUR)  # no answer within give_up_after (1h): failure path
    assert [e.event for e in h.of(Emit)] == ["Lead Routing Failed"]
    assert not h.sent


def test_mortgage_conversion_does_not_stop_the_tips() -> None:
    h = Harness((EXAMPLES / "mortgage_enquiry.yaml").read_text())
    h.enter(fact("Mortgage Enquiry Submitted", enquiry_id="e1"))
    h.event(fact("Adviser Call Booked", T0 + HOUR))
    assert len(h.of(Converted)) == 1
    assert h.run is not None and h.run.status == "waiting"
