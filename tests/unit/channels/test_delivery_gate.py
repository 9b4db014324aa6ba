"""The send-time gate and its parts: consent folding, frequency caps and quiet hours across
daylight-saving changes (address validation: `test_delivery_addresses`). Tables of decisions,
no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from legato.domain.consent import (
    ChannelPolicy,
    ConsentChange,
    ConsentState,
    ConsentStatus,
    OptMode,
    SubscriptionTopic,
    Suppression,
    SuppressionReason,
    default_channel_policy,
    subscribe_change,
)
from legato.domain.delivery import (
    Defer,
    DeliveryPolicy,
    FrequencyCap,
    GateDecision,
    MessageCategory,
    QuietHours,
    RecentSend,
    Send,
    Skip,
    SkipReason,
    gate,
    quiet_until_ms,
)

MARKETING, TRANSACTIONAL = MessageCategory.MARKETING, MessageCategory.TRANSACTIONAL
DAY = 86_400_000


def ms(year: int, month: int, day: int, hour: int, minute: int = 0, tz: str = "UTC") -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


NOW = ms(2026, 1, 5, 12)  # Monday 13:00 in Paris
POLICY = DeliveryPolicy(
    frequency_caps=(
        FrequencyCap(limit=3, window="7d"),
        FrequencyCap(limit=1, window="1d", channel="sms"),
    ),
    quiet_hours=(QuietHours(start="21:00", end="08:00", channels=("sms", "push")),),
)
NEWSLETTER = SubscriptionTopic(key="newsletter", channel="email", mode=OptMode.OPT_IN)
PROMOS = SubscriptionTopic(key="promos", channel="email")
SMS_PROMOS = SubscriptionTopic(key="sms-promos", channel="sms")


def said(
    channel: str, status: ConsentStatus, topic: str | None = None, at: int = NOW - DAY
) -> ConsentChange:
    return ConsentChange(channel=channel, topic=topic, status=status, source="test", at_ms=at)


def sends(channel: str, category: MessageCategory, *ages_ms: int) -> list[RecentSend]:
    return [RecentSend(channel=channel, category=category, at_ms=NOW - age) for age in ages_ms]


@dataclass
class Case:
    channel: str = "email"
    address: str | None = "ann@example.com"
    category: MessageCategory = MARKETING
    topic: SubscriptionTopic | None = None
    consent: list[ConsentChange] = field(default_factory=list)
    suppression: Suppression | None = None
    recent: list[RecentSend] = field(default_factory=list)
    timezone: str | None = "Europe/Paris"
    now: int = NOW
    policy: DeliveryPolicy = POLICY


def decide(case: Case) -> GateDecision:
    return gate(
        channel=case.channel,
        address=case.address,
        category=case.category,
        topic=case.topic,
        consent=ConsentState.from_changes(case.consent),
        suppression=case.suppression,
        recent_sends=case.recent,
        policy=case.policy,
        timezone=case.timezone,
        now_ms=case.now,
    )


BOUNCED = Suppression(
    "email", "ann@example.com", SuppressionReason.HARD_BOUNCE, NOW - DAY, "550 5.1.1"
)
SUBSCRIBED_SMS = [said("sms", ConsentStatus.SUBSCRIBED)]
LATE = ms(2026, 1, 5, 22, 30, "Europe/Paris")

GATE_TABLE: list[tuple[str, Case, Any]] = [
    ("plain marketing email", Case(), Send("ann@example.com")),
    ("domain is normalised", Case(address=" Ann@Example.COM "), Send("Ann@example.com")),
    ("no address", Case(address=None), SkipReason.MISSING_ADDRESS),
    ("blank address", Case(address="  "), SkipReason.MISSING_ADDRESS),
    ("malformed email", Case(address="ann@"), SkipReason.INVALID_ADDRESS),
    (
        "invalid phone",
        Case(channel="sms", address="+1555", consent=SUBSCRIBED_SMS),
        SkipReason.INVALID_ADDRESS,
    ),
    (
        "phone without country code",
        Case(channel="sms", address="415 555 2671", consent=SUBSCRIBED_SMS),
        SkipReason.INVALID_ADDRESS,
    ),
    (
        "phone is normalised",
        Case(channel="sms", address="+1 (415) 555-2671", consent=SUBSCRIBED_SMS),
        Send("+14155552671"),
    ),
    ("suppressed marketing", Case(suppression=BOUNCED), SkipReason.SUPPRESSED),
    (
        "suppressed transactional",
        Case(suppression=BOUNCED, category=TRANSACTIONAL),
        SkipReason.SUPPRESSED,
    ),
    (
        "email opt-out",
        Case(consent=[said("email", ConsentStatus.UNSUBSCRIBED)]),
        SkipReason.UNSUBSCRIBED,
    ),
    (
        "email opt-out, receipt still goes",
        Case(consent=[said("email", ConsentStatus.UNSUBSCRIBED)], category=TRANSACTIONAL),
        Send("ann@example.com"),
    ),
    (
        "sms STOP blocks even transactional",
        Case(
            channel="sms",
            address="+14155552671",
            category=TRANSACTIONAL,
            consent=[said("sms", ConsentStatus.UNSUBSCRIBED)],
        ),
        SkipReason.UNSUBSCRIBED,
    ),
    ("sms is opt-in", Case(channel="sms", address="+14155552671"), SkipReason.NO_CONSENT),
    (
        "sms subscribed",
        Case(channel="sms", address="+14155552671", consent=SUBSCRIBED_SMS),
        Send("+14155552671"),
    ),
    (
        "sms transactional needs no opt-in",
        Case(channel="sms", address="+14155552671", category=TRANSACTIONAL),
        Send("+14155552671"),
    ),
    (
        "channel subscription pending",
        Case(consent=[said("email", ConsentStatus.PENDING)]),
        SkipReason.CONSENT_PENDING,
    ),
    ("opt-in topic, silence", Case(topic=NEWSLETTER), SkipReason.NO_CONSENT),
    (
        "opt-in topic, subscribed",
        Case(topic=NEWSLETTER, consent=[said("email", ConsentStatus.SUBSCRIBED, "newsletter")]),
        Send("ann@example.com"),
    ),
    (
        "opt-in topic, pending",
        Case(topic=NEWSLETTER, consent=[said("email", ConsentStatus.PENDING, "newsletter")]),
        SkipReason.CONSENT_PENDING,
    ),
    ("opt-out topic, silence", Case(topic=PROMOS), Send("ann@example.com")),
    (
        "opt-out topic, left",
        Case(topic=PROMOS, consent=[said("email", ConsentStatus.UNSUBSCRIBED, "promos")]),
        SkipReason.UNSUBSCRIBED,
    ),
    (
        "channel opt-out beats topic opt-in",
        Case(
            topic=NEWSLETTER,
            consent=[
                said("email", ConsentStatus.SUBSCRIBED, "newsletter"),
                said("email", ConsentStatus.UNSUBSCRIBED),
            ],
        ),
        SkipReason.UNSUBSCRIBED,
    ),
    (
        "resubscribed later wins",
        Case(
            consent=[
                said("email", ConsentStatus.UNSUBSCRIBED, at=NOW - 2 * DAY),
                said("email", ConsentStatus.SUBSCRIBED),
            ]
        ),
        Send("ann@example.com"),
    ),
    (
        "opt-out topic on an opt-in channel, silence",
        Case(channel="sms", address="+14155552671", topic=SMS_PROMOS),
        SkipReason.NO_CONSENT,
    ),
    (
        "topic subscription implies the channel",
        Case(
            channel="sms",
            address="+14155552671",
            topic=SMS_PROMOS,
            consent=[said("sms", ConsentStatus.SUBSCRIBED, "sms-promos")],
        ),
        Send("+14155552671"),
    ),
    (
        "two marketing sends this week",
        Case(recent=sends("email", MARKETING, DAY, 2 * DAY)),
        Send("ann@example.com"),
    ),
    (
        "three marketing sends this week",
        Case(recent=sends("email", MARKETING, DAY, 2 * DAY, 6 * DAY)),
        SkipReason.FREQUENCY_CAPPED,
    ),
    (
        "global cap counts every channel",
        Case(
            recent=[
                *sends("email", MARKETING, DAY),
                *sends("sms", MARKETING, 2 * DAY),
                *sends("push", MARKETING, 3 * DAY),
            ]
        ),
        SkipReason.FREQUENCY_CAPPED,
    ),
    (
        "a send older than the window drops out",
        Case(recent=sends("email", MARKETING, DAY, 2 * DAY, 7 * DAY + 1)),
        Send("ann@example.com"),
    ),
    (
        "transactional sends are not counted",
        Case(recent=sends("email", TRANSACTIONAL, 1, 2, 3, 4)),
        Send("ann@example.com"),
    ),
    (
        "transactional is exempt from caps",
        Case(category=TRANSACTIONAL, recent=sends("email", MARKETING, 1, 2, 3, 4)),
        Send("ann@example.com"),
    ),
    (
        "per-channel cap",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            recent=sends("sms", MARKETING, DAY - 1),
        ),
        SkipReason.FREQUENCY_CAPPED,
    ),
    (
        "per-channel cap ignores other channels",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            recent=sends("email", MARKETING, 60_000),
        ),
        Send("+14155552671"),
    ),
    (
        "quiet hours defer sms to 08:00 local",
        Case(channel="sms", address="+14155552671", consent=SUBSCRIBED_SMS, now=LATE),
        Defer(
            ms(2026, 1, 6, 8, 0, "Europe/Paris"),
            SkipReason.QUIET_HOURS,
            "quiet hours 21:00-08:00 Europe/Paris",
        ),
    ),
    (
        "quiet hours follow the profile's zone",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            now=LATE,
            timezone="America/New_York",
        ),
        Send("+14155552671"),
    ),
    (
        "unknown zone falls back to the default",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            now=ms(2026, 1, 5, 23),
            timezone="Mars/Olympus",
        ),
        Defer(ms(2026, 1, 6, 8), SkipReason.QUIET_HOURS, "quiet hours 21:00-08:00 UTC"),
    ),
    ("quiet hours skip email here", Case(now=LATE), Send("ann@example.com")),
    (
        "transactional ignores quiet hours",
        Case(channel="sms", address="+14155552671", category=TRANSACTIONAL, now=LATE),
        Send("+14155552671"),
    ),
    (
        "drop instead of defer",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            now=LATE,
            policy=POLICY.model_copy(
                update={"quiet_hours": (QuietHours(start="21:00", end="08:00", action="drop"),)}
            ),
        ),
        SkipReason.QUIET_HOURS,
    ),
    (
        "capped beats quiet (skip, not defer)",
        Case(
            channel="sms",
            address="+14155552671",
            consent=SUBSCRIBED_SMS,
            now=LATE,
            recent=sends("sms", MARKETING, 1000),
        ),
        SkipReason.FREQUENCY_CAPPED,
    ),
]


@pytest.mark.parametrize(
    ("case", "expected"), [(c, e) for _, c, e in GATE_TABLE], ids=[n for n, _, _ in GATE_TABLE]
)
def test_gate(case: Case, expected: Any) -> None:
    decision = decide(case)
    if isinstance(expected, SkipReason):
        assert isinstance(decision, Skip), decision
        assert decision.reason is expected
        assert decision.detail
    else:
        assert decision == expected


# -- quiet hours across daylight-saving changes ----------------------------------------------------

QUIET_TABLE = [
    # (zone, start, end, now, expected resume or None)
    (
        "spring forward overnight (New York)",
        "America/New_York",
        "21:00",
        "08:00",
        ms(2026, 3, 7, 23, 0, "America/New_York"),
        ms(2026, 3, 8, 12),
    ),
    (
        "spring forward overnight (Paris)",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 3, 28, 22, 0, "Europe/Paris"),
        ms(2026, 3, 29, 6),
    ),
    (
        "fall back overnight (Paris)",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 10, 24, 23, 0, "Europe/Paris"),
        ms(2026, 10, 25, 7),
    ),
    (
        "end inside the spring gap moves forward by the gap",
        "America/New_York",
        "00:00",
        "02:30",
        ms(2026, 3, 8, 6, 30),
        ms(2026, 3, 8, 7, 30),
    ),
    (
        "end in the repeated hour, first pass",
        "America/New_York",
        "00:00",
        "01:30",
        ms(2026, 11, 1, 4, 30),
        ms(2026, 11, 1, 5, 30),
    ),
    (
        "inside the repeated hour, second pass",
        "America/New_York",
        "01:00",
        "01:45",
        ms(2026, 11, 1, 6, 10),
        ms(2026, 11, 1, 6, 45),
    ),
    (
        "after midnight part of the window",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 1, 6, 5, 0, "Europe/Paris"),
        ms(2026, 1, 6, 7),
    ),
    ("daytime window", "UTC", "12:00", "14:00", ms(2026, 1, 5, 13), ms(2026, 1, 5, 14)),
    (
        "outside the window",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 1, 5, 20, 59, "Europe/Paris"),
        None,
    ),
    (
        "the end is allowed",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 1, 6, 8, 0, "Europe/Paris"),
        None,
    ),
    (
        "the start is quiet",
        "Europe/Paris",
        "21:00",
        "08:00",
        ms(2026, 1, 5, 21, 0, "Europe/Paris"),
        ms(2026, 1, 6, 7),
    ),
    ("empty window", "UTC", "09:00", "09:00", ms(2026, 1, 5, 9), None),
]


@pytest.mark.parametrize(
    ("zone", "start", "end", "now", "expected"),
    [row[1:] for row in QUIET_TABLE],
    ids=[row[0] for row in QUIET_TABLE],
)
def test_quiet_hours_end_at_the_next_allowed_local_moment(
    zone: str, start: str, end: str, now: int, expected: int | None
) -> None:
    assert quiet_until_ms(QuietHours(start=start, end=end), tz_name=zone, now_ms=now) == expected


def test_overnight_quiet_hours_last_eleven_hours_in_spring_ten_in_autumn() -> None:
    window = QuietHours(start="21:00", end="08:00")
    spring_start = ms(2026, 3, 28, 21, 0, "Europe/Paris")
    autumn_start = ms(2026, 10, 24, 21, 0, "Europe/Paris")
    assert (
        quiet_until_ms(window, tz_name="Europe/Paris", now_ms=spring_start)
        == spring_start + 10 * 3_600_000
    )
    assert (
        quiet_until_ms(window, tz_name="Europe/Paris", now_ms=autumn_start)
        == autumn_start + 12 * 3_600_000
    )


# -- consent ---------------------------------------------------------------------------------------


def test_consent_fold_keeps_the_latest_record_whatever_the_order() -> None:
    early = said("email", ConsentStatus.UNSUBSCRIBED, at=1)
    late = said("email", ConsentStatus.SUBSCRIBED, at=2)
    for order in ([early, late], [late, early]):
        assert ConsentState.from_changes(order).status("email") is ConsentStatus.SUBSCRIBED
    state = ConsentState.from_changes([late]).apply(said("email", ConsentStatus.UNSUBSCRIBED, at=3))
    assert state.status("email") is ConsentStatus.UNSUBSCRIBED
    assert state.status("email", "newsletter") is None


@pytest.mark.parametrize(
    ("topic", "policy", "confirmed", "expected"),
    [
        (
            SubscriptionTopic(key="n", channel="email", double_opt_in=True),
            default_channel_policy("email"),
            False,
            ConsentStatus.PENDING,
        ),
        (
            SubscriptionTopic(key="n", channel="email", double_opt_in=True),
            default_channel_policy("email"),
            True,
            ConsentStatus.SUBSCRIBED,
        ),
        (
            SubscriptionTopic(key="n", channel="email"),
            default_channel_policy("email"),
            False,
            ConsentStatus.SUBSCRIBED,
        ),
        (None, ChannelPolicy(channel="email", double_opt_in=True), False, ConsentStatus.PENDING),
    ],
)
def test_double_opt_in_records_pending_until_confirmed(
    topic: SubscriptionTopic | None, policy: ChannelPolicy, confirmed: bool, expected: ConsentStatus
) -> None:
    change = subscribe_change(
        channel="email",
        topic=topic,
        policy=policy,
        source="signup_form",
        at_ms=NOW,
        confirmed=confirmed,
        evidence={"ip": "203.0.113.9"},
    )
    assert change.status is expected
    assert change.topic == (topic.key if topic else None)
    assert change.evidence == {"ip": "203.0.113.9"}


def test_a_topic_of_another_channel_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="belongs to channel"):
        decide(Case(channel="sms", address="+14155552671", topic=NEWSLETTER))


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (FrequencyCap, {"limit": 3, "window": "7x"}),
        (FrequencyCap, {"limit": 0, "window": "7d"}),
        (QuietHours, {"start": "25:00", "end": "08:00"}),
        (QuietHours, {"start": "21:00", "end": "08:00", "action": "later"}),
        (DeliveryPolicy, {"default_timezone": "Mars/Olympus"}),
    ],
)
def test_bad_policy_documents_are_refused(model: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_history_window_covers_the_longest_cap() -> None:
    assert POLICY.history_window_ms == 7 * DAY
    assert DeliveryPolicy().history_window_ms == 0


def test_now_is_a_plain_instant() -> None:
    assert int(datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp() * 1000) == NOW
