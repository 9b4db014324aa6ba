"""The delivery worker's pure rules: retry backoff, journey settings tightening the workspace
policy, what templates see, how a journey send request becomes a delivery, and the form of an
address the suppression list is keyed by."""

from __future__ import annotations

from typing import Any

import pytest

from legato.domain.delivery import (
    DeliveryPolicy,
    QuietHours,
    suppression_key,
    validate_suppression_address,
)
from legato.errors import InvalidInput
from legato.runtime.composer import effective_policy, render_context
from legato.runtime.delivery import DeliveryOptions, backoff_ms, delivery_from_outbox
from legato.store.delivery import PRIORITY_BULK
from legato.store.outbox import OutboxItem
from legato.store.recipients import Recipient

OPTIONS = DeliveryOptions(backoff_ms=(30_000, 3_600_000))


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1, 30_000, 36_000),
        (2, 60_000, 72_000),
        (5, 480_000, 576_000),
        (8, 3_600_000, 4_320_000),  # capped, then spread
        (30, 3_600_000, 4_320_000),
    ],
)
def test_backoff_doubles_up_to_the_cap(attempts: int, low: int, high: int) -> None:
    assert low <= backoff_ms("01abc", attempts, OPTIONS) <= high


def test_backoff_spreads_messages_apart() -> None:
    delays = {backoff_ms(f"id-{n}", 3, OPTIONS) for n in range(50)}
    assert len(delays) > 40


WORKSPACE = DeliveryPolicy(
    quiet_hours=(QuietHours(start="22:00", end="07:00"),), default_timezone="Europe/Paris"
)


@pytest.mark.parametrize(
    ("settings", "windows", "zone", "trait"),
    [
        (None, 1, "Europe/Paris", "timezone"),
        ({}, 1, "Europe/Paris", "timezone"),
        ({"timezone": "UTC", "timezone_trait": "tz"}, 1, "Europe/Paris", "tz"),
        ({"timezone": "Asia/Tokyo"}, 1, "Asia/Tokyo", "timezone"),
        (
            {"quiet_hours": {"start": "12:00", "end": "14:00", "action": "drop"}},
            2,
            "Europe/Paris",
            "timezone",
        ),
    ],
)
def test_journey_settings_add_to_the_workspace_policy(
    settings: Any, windows: int, zone: str, trait: str
) -> None:
    policy, found = effective_policy(WORKSPACE, settings)
    assert len(policy.quiet_hours) == windows
    assert policy.quiet_hours[0] == WORKSPACE.quiet_hours[0]  # never replaced
    assert (policy.default_timezone, found) == (zone, trait)


def test_templates_see_profile_event_data_and_links() -> None:
    who = Recipient("p1", {"first_name": "Ann"}, {"ltv": 120}, "ann", None)
    context = render_context(
        message_id="m1",
        channel="email",
        template="cart",
        who=who,
        request={
            "trigger": {"name": "Checkout Started", "timestamp_ms": 0, "properties": {"c": 1}},
            "data": {"coupon": "X"},
        },
        journey_key="cart",
        node_id="email",
        unsubscribe_url="https://u",
        preferences_url="https://p",
    )
    assert context["profile"] == {
        "id": "p1",
        "user_id": "ann",
        "traits": {"first_name": "Ann"},
        "computed": {"ltv": 120},
        "computed_traits": {"ltv": 120},
    }
    assert (
        context["event"]
        == context["trigger"]
        == {
            "name": "Checkout Started",
            "properties": {"c": 1},
            "timestamp": "1970-01-01T00:00:00.000Z",
        }
    )
    assert context["data"] == {"coupon": "X"}
    assert (context["unsubscribe_url"], context["preferences_url"]) == ("https://u", "https://p")
    assert context["journey"] == {"key": "cart", "node": "email"}


def test_a_journey_send_request_becomes_a_bulk_delivery_keyed_by_the_outbox_key() -> None:
    item = OutboxItem(
        id="o1",
        idempotency_key="run1:email:1",
        workspace_id="w",
        kind="send",
        run_id="run1",
        journey_key="cart",
        version=3,
        node_id="email",
        profile_id="p1",
        payload={
            "channel": "email",
            "template": "cart_email",
            "topic": "deals",
            "trigger": {"name": "Checkout Started"},
            "data": {"x": 1},
            "settings": {"timezone": "UTC"},
            "user_id": "ann",
        },
        attempts=1,
        created_ms=5,
    )
    new = delivery_from_outbox(item)
    assert (new.key, new.priority, new.source) == ("run1:email:1", PRIORITY_BULK, "journey")
    assert (new.channel, new.template, new.topic) == ("email", "cart_email", "deals")
    assert (new.journey_key, new.journey_version, new.run_id, new.node_id) == (
        "cart",
        3,
        "run1",
        "email",
    )
    assert new.request == {
        "trigger": {"name": "Checkout Started"},
        "data": {"x": 1},
        "settings": {"timezone": "UTC"},
    }


SUBSCRIPTION = '{"endpoint": "https://push.example/s/1", "keys": {"p256dh": "k", "auth": "a"}}'
RENEWED = '{"endpoint": "https://push.example/s/1", "keys": {"p256dh": "k2", "auth": "a2"}}'


@pytest.mark.parametrize(
    ("channel", "address", "key"),
    [
        ("email", " Ann@Example.COM ", "ann@example.com"),
        ("sms", "+14155550123", "+14155550123"),
        ("push", "fcm-Token", "fcm-Token"),
        # A browser's subscription is known by its endpoint, whatever its keys are now.
        ("webpush", SUBSCRIPTION, "https://push.example/s/1"),
        ("webpush", RENEWED, "https://push.example/s/1"),
        ("webpush", "https://push.example/s/1", "https://push.example/s/1"),
    ],
)
def test_suppression_keys(channel: str, address: str, key: str) -> None:
    assert suppression_key(channel, address) == key


def test_web_push_is_suppressed_by_subscription_or_endpoint() -> None:
    assert validate_suppression_address("webpush", SUBSCRIPTION) == SUBSCRIPTION
    assert validate_suppression_address("webpush", "https://push.example/s/1") == (
        "https://push.example/s/1"
    )
    with pytest.raises(InvalidInput):
        validate_suppression_address("webpush", "not a url")
    with pytest.raises(InvalidInput):
        validate_suppression_address("email", "https://push.example/s/1")
