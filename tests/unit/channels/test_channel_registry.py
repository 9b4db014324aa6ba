"""Provider plugins (entry points, named configurations), failover, the Standard Webhooks
signature vector, and how HTTP statuses map onto the error tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from legato.channels.failover import FailoverChannel
from legato.channels.outbound import (
    OutboundClient,
    OutboundResponse,
    address_refusal,
    error_for_status,
    retry_after_seconds,
)
from legato.channels.ratelimit import RateLimitedChannel
from legato.channels.registry import (
    ChannelConfig,
    ProviderContext,
    ProviderRegistry,
)
from legato.channels.smtp import SmtpProvider
from legato.channels.webhook import sign
from legato.domain.delivery import OutboundMessage, SendResult, SmsContent, TokenBucket
from legato.errors import InvalidInput, Permanent, ProviderError, Retryable
from legato.ports import ChannelProvider
from legato.testing import FakeClock, RecordingChannel

MESSAGE = OutboundMessage(
    message_id="m1", channel="sms", to="+14155552671", content=SmsContent("hi")
)


def test_installed_entry_points_name_every_built_in_provider() -> None:
    registry = ProviderRegistry.from_entry_points()
    assert {"smtp", "twilio", "whatsapp", "webpush", "fcm", "webhook"} <= set(registry.kinds())
    assert registry.factory("smtp") is SmtpProvider
    channels = {
        kind: registry.factory(kind).channel
        for kind in ("twilio", "whatsapp", "fcm", "webpush", "webhook")
    }
    assert channels == {
        "twilio": "sms",
        "whatsapp": "whatsapp",
        "fcm": "push",
        "webpush": "webpush",
        "webhook": "webhook",
    }


def test_built_providers_satisfy_the_port() -> None:
    context = ProviderContext(http=OutboundClient(), clock=FakeClock())
    provider = ProviderRegistry.from_entry_points().build_channel(
        {
            "kind": "Channel",
            "key": "email",
            "provider": "smtp",
            "settings": {"host": "127.0.0.1", "port": 2525, "from": "Shop <shop@example.com>"},
        },
        context,
    )
    assert isinstance(provider, ChannelProvider)
    assert (provider.channel, provider.name) == ("email", "email")


def built_in_settings() -> dict[str, dict[str, Any]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    vapid = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "smtp": {"host": "127.0.0.1", "from": "shop@example.com"},
        "twilio": {"account_sid": "AC1", "auth_token": "t", "from": "+14155550100"},
        "whatsapp": {"phone_number_id": "1065", "access_token": "EAAG"},
        "fcm": {
            "service_account": {"client_email": "a@b.iam", "private_key": pem, "project_id": "p"}
        },
        "webpush": {"vapid_private_key": vapid.decode(), "vapid_subject": "mailto:ops@example.com"},
        "webhook": {"secrets": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    }


async def test_every_built_in_provider_implements_the_port() -> None:
    registry = ProviderRegistry.from_entry_points()
    context = ProviderContext(http=OutboundClient(), clock=FakeClock())
    for kind, settings in built_in_settings().items():
        provider = registry.build_channel(
            {"key": kind, "provider": kind, "settings": settings}, context
        )
        assert isinstance(provider, ChannelProvider), kind
        assert provider.channel == registry.factory(kind).channel
        await provider.aclose()


class Recording:
    """A plugin factory shaped like the built-in provider classes."""

    channel: ClassVar[str] = "sms"

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> ChannelProvider:
        if "fail" in settings:
            raise InvalidInput("settings.fail: not allowed", path="settings.fail")
        return RecordingChannel(channel=str(settings.get("channel", "sms")), name=name)


CONTEXT = ProviderContext(http=OutboundClient(), clock=FakeClock())


@pytest.mark.parametrize(
    ("document", "path", "complaint"),
    [
        ({"key": "sms"}, "channel", "needs `provider` or `providers`"),
        (
            {"key": "sms", "provider": "rec", "providers": [{"name": "a", "provider": "rec"}]},
            "channel",
            "not both",
        ),
        (
            {"key": "sms", "provider": "pigeon"},
            "provider",
            r"unknown provider 'pigeon' \(known: rec\)",
        ),
        (
            {"key": "sms", "provider": "rec", "settings": {"fail": 1}},
            "settings.fail",
            "not allowed",
        ),
        (
            {
                "key": "sms",
                "providers": [
                    {"name": "a", "provider": "rec"},
                    {"name": "b", "provider": "rec", "settings": {"fail": 1}},
                ],
            },
            "providers[1].settings.fail",
            "not allowed",
        ),
        (
            {
                "key": "sms",
                "providers": [{"name": "a", "provider": "rec"}, {"name": "a", "provider": "rec"}],
            },
            "",
            "unique",
        ),
        (
            {
                "key": "sms",
                "providers": [
                    {"name": "a", "provider": "rec"},
                    {"name": "b", "provider": "rec", "settings": {"channel": "email"}},
                ],
            },
            "providers",
            "mixes provider kinds",
        ),
    ],
)
def test_bad_channel_documents_name_the_place(
    document: dict[str, Any], path: str, complaint: str
) -> None:
    registry = ProviderRegistry({"rec": Recording})
    with pytest.raises(InvalidInput, match=complaint) as caught:
        registry.build_channel(document, CONTEXT)
    if path:
        assert caught.value.details["path"] == path


def test_several_configurations_make_a_failover_channel_in_order() -> None:
    registry = ProviderRegistry({"rec": Recording})
    channel = registry.build_channel(
        ChannelConfig(
            key="sms",
            providers=(
                {"name": "primary", "provider": "rec"},
                {"name": "backup", "provider": "rec"},
            ),
        ),  # type: ignore[arg-type]
        CONTEXT,
    )
    assert isinstance(channel, FailoverChannel)
    assert [p.name for p in channel.providers] == ["primary", "backup"]


def rec(name: str, *failures: ProviderError) -> RecordingChannel:
    return RecordingChannel(channel="sms", name=name, failures=failures)


FAILOVER_TABLE: list[tuple[str, list[RecordingChannel], Any, list[int]]] = [
    ("first succeeds", [rec("a"), rec("b")], ("a", ()), [1, 0]),
    ("retryable fails over", [rec("a", Retryable("503")), rec("b")], ("b", ("a",)), [1, 1]),
    (
        "provider fault fails over",
        [rec("a", Permanent("401", provider_fault=True)), rec("b")],
        ("b", ("a",)),
        [1, 1],
    ),
    (
        "recipient error stops at once",
        [rec("a", Permanent("invalid number", invalid_recipient=True)), rec("b")],
        Permanent,
        [1, 0],
    ),
    (
        "all retryable",
        [rec("a", Retryable("x", retry_after=30)), rec("b", Retryable("y", retry_after=5))],
        Retryable,
        [1, 1],
    ),
    (
        "all provider faults",
        [
            rec("a", Permanent("x", provider_fault=True)),
            rec("b", Permanent("y", provider_fault=True)),
        ],
        Permanent,
        [1, 1],
    ),
    (
        "mixed ends retryable",
        [rec("a", Permanent("x", provider_fault=True)), rec("b", Retryable("y"))],
        Retryable,
        [1, 1],
    ),
]


@pytest.mark.parametrize(
    ("providers", "expected", "attempts"),
    [row[1:] for row in FAILOVER_TABLE],
    ids=[row[0] for row in FAILOVER_TABLE],
)
async def test_failover(
    providers: list[RecordingChannel], expected: Any, attempts: list[int]
) -> None:
    channel = FailoverChannel(providers, name="sms")
    if isinstance(expected, tuple):
        result = await channel.send(MESSAGE)
        assert (result.provider, result.attempted) == expected
    else:
        with pytest.raises(expected):
            await channel.send(MESSAGE)
    assert [p.attempts for p in providers] == attempts
    await channel.aclose()
    assert all(p.closed for p in providers)


async def test_failover_asks_for_the_shortest_retry_after() -> None:
    channel = FailoverChannel(
        [rec("a", Retryable("x", retry_after=30)), rec("b", Retryable("y", retry_after=5))],
        name="sms",
    )
    with pytest.raises(Retryable) as caught:
        await channel.send(MESSAGE)
    assert caught.value.retry_after == 5
    assert caught.value.details["attempted"] == ["a", "b"]


def test_failover_refuses_mixed_channels() -> None:
    with pytest.raises(ValueError, match="share"):
        FailoverChannel([RecordingChannel("sms", "a"), RecordingChannel("email", "b")], name="x")


def test_standard_webhooks_reference_vector() -> None:
    """The signing example published with the Standard Webhooks reference libraries."""
    signature = sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def response(status: int, **headers: str) -> OutboundResponse:
    return OutboundResponse(status=status, headers=headers, body=b"", url="https://x.example/")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (301, Permanent),
        (400, Permanent),
        (401, Permanent),
        (404, Permanent),
        (410, Permanent),
        (408, Retryable),
        (425, Retryable),
        (429, Retryable),
        (500, Retryable),
        (502, Retryable),
        (503, Retryable),
    ],
)
def test_status_mapping(status: int, kind: type[ProviderError] | None) -> None:
    error = error_for_status(response(status), "hook", now_ms=0)
    if kind is None:
        assert error is None
    else:
        assert type(error) is kind and error.details["status"] == status


NOW_MS = 1_767_603_600_000  # Mon, 05 Jan 2026 09:00:00 GMT


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after": "120"}, 120.0),
        ({"retry-after": "Mon, 05 Jan 2026 09:01:30 GMT"}, 90.0),
        (
            {
                "retry-after": "Mon, 05 Jan 2026 09:01:30 GMT",
                "date": "Mon, 05 Jan 2026 09:01:00 GMT",
            },
            30.0,
        ),
        ({"retry-after": "Mon, 05 Jan 2026 08:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, NOW_MS) == seconds


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "private"),
        ("100.64.0.1", "non-global"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("240.0.0.1", "private"),
    ],
)
def test_address_refusals(address: str, refusal: str | None) -> None:
    assert address_refusal(address) == refusal


@pytest.mark.parametrize(
    ("rate", "burst", "at_ms", "waits"),
    [
        (2.0, 3.0, [0, 0, 0, 0, 0], [0, 0, 0, 500, 1000]),
        (2.0, 3.0, [0, 0, 0, 1000, 1000, 1000], [0, 0, 0, 0, 0, 500]),
        (10.0, 1.0, [0, 50, 100, 5000], [0, 50, 100, 0]),
        (1.0, 2.0, [0, 0, 10_000, 10_000, 10_000], [0, 0, 0, 0, 1000]),
    ],
)
def test_token_bucket(rate: float, burst: float, at_ms: list[int], waits: list[int]) -> None:
    bucket = TokenBucket.full(rate, burst, 0)
    seen = []
    for now in at_ms:
        bucket, wait = bucket.take(now)
        seen.append(wait)
    assert seen == waits


class SleepingClock(FakeClock):
    """A fake clock whose sleeps move time forward (what a real sleep would do)."""

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds=seconds)


class TimedChannel(RecordingChannel):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(channel="sms", name="timed")
        self.clock = clock
        self.times: list[int] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.times.append(self.clock.now_ms())
        return await super().send(message)


async def test_rate_limited_provider_spaces_sends() -> None:
    clock = SleepingClock()
    inner = TimedChannel(clock)
    channel = RateLimitedChannel(inner, rate=10, burst=2, clock=clock)
    start = clock.now_ms()
    for _ in range(5):
        await channel.send(MESSAGE)
    assert [t - start for t in inner.times] == [0, 0, 100, 200, 300]
    assert (channel.channel, channel.name) == ("sms", "timed")


def test_configured_rate_wraps_the_provider() -> None:
    registry = ProviderRegistry({"rec": Recording})
    channel = registry.build_channel(
        {"key": "sms", "provider": "rec", "rate_per_second": 50, "burst": 5}, CONTEXT
    )
    assert isinstance(channel, RateLimitedChannel)
    with pytest.raises(InvalidInput, match="rate_per_second"):
        registry.build_channel({"key": "sms", "provider": "rec", "rate_per_second": 0}, CONTEXT)
