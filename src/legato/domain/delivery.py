"""Delivery values and the send-time gate.

What a channel provider is asked to send (`OutboundMessage` with channel-shaped content), what it
answers (`SendResult`), address validation, and `gate(...)`: the pure decision — send, defer
until an instant, or skip with a reason — from consent, suppression, frequency caps and quiet
hours. Whatever a journey says, the delivery worker asks the gate first. Pure: no clock (the
caller passes `now_ms`), no store, no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legato.domain.consent import (
    ChannelPolicy,
    ConsentState,
    SubscriptionTopic,
    Suppression,
    default_channel_policy,
    may_receive,
)
from legato.domain.durations import parse_duration_ms
from legato.domain.local_time import (
    format_time_of_day,
    local_instant_ms,
    parse_time_of_day,
    to_local,
    zone,
    zone_or,
)
from legato.errors import InvalidInput

# ---------------------------------------------------------------------------------------------
# Message values


class MessageCategory(StrEnum):
    """Marketing is capped, gated by topics and quiet hours; transactional is exempt."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


def _frozen_map() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EmailContent:
    """A rendered email. `unsubscribe_url` becomes List-Unsubscribe (RFC 8058 one-click)."""

    subject: str
    html: str | None = None
    text: str | None = None
    from_address: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=_frozen_map)
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True, slots=True)
class SmsContent:
    """A rendered text message."""

    body: str


@dataclass(frozen=True, slots=True)
class WhatsAppContent:
    """Session text (`text`) or a pre-approved template (`template_name`, `components`)."""

    text: str | None = None
    template_name: str | None = None
    language: str = "en_US"
    components: tuple[Mapping[str, Any], ...] = ()
    preview_url: bool = False


@dataclass(frozen=True, slots=True)
class PushContent:
    """A rendered push notification (mobile FCM or browser web push)."""

    title: str
    body: str
    url: str | None = None
    icon: str | None = None
    image: str | None = None
    data: Mapping[str, str] = field(default_factory=_frozen_map)
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookContent:
    """A JSON payload for a signed webhook call."""

    payload: Any
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class InAppContent:
    """A message for the in-app inbox."""

    title: str
    body: str
    url: str | None = None
    image: str | None = None
    data: Mapping[str, str] = field(default_factory=_frozen_map)


Content = EmailContent | SmsContent | WhatsAppContent | PushContent | WebhookContent | InAppContent


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message for one recipient; `message_id` is the outbox key, stable across retries."""

    message_id: str
    channel: str
    to: str
    content: Content
    profile_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=_frozen_map)


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider accepted the message; `attempted` lists providers that failed over before."""

    provider: str
    provider_message_id: str | None = None
    attempted: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Addresses


class AddressKind(StrEnum):
    """What a channel's `to` holds."""

    EMAIL = "email"
    PHONE = "phone"
    PUSH_TOKEN = "push_token"  # noqa: S105 (a kind name, not a credential)
    WEB_PUSH = "web_push_subscription"
    URL = "url"
    PROFILE = "profile"


CHANNEL_ADDRESS_KINDS: Mapping[str, AddressKind] = MappingProxyType(
    {
        "email": AddressKind.EMAIL,
        "sms": AddressKind.PHONE,
        "whatsapp": AddressKind.PHONE,
        "push": AddressKind.PUSH_TOKEN,
        "webpush": AddressKind.WEB_PUSH,
        "webhook": AddressKind.URL,
        "inapp": AddressKind.PROFILE,
    }
)

# RFC 5322 dot-atom local part (no quoted strings: no provider we target accepts them reliably).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def normalize_email(address: str) -> str:
    """`address` checked (RFC 5321 lengths, dot-atom local part, LDH domain) with its domain
    lower-cased and IDNA-encoded; InvalidInput says what is wrong."""
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput(f"not an email address: {address!r} (no '@')")
    if len(local) > 64:
        raise InvalidInput(f"email local part longer than 64 characters: {address!r}")
    if not _LOCAL_PART.fullmatch(local):
        raise InvalidInput(f"email local part has characters that are not allowed: {address!r}")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidInput(f"email domain is not a valid host name: {address!r}") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidInput(f"email domain is not a valid host name: {address!r}")
    if labels[-1].isdigit():
        raise InvalidInput(f"email domain must not be a bare IP address: {address!r}")
    result = f"{local}@{ascii_domain}"
    if len(result) > 254:
        raise InvalidInput(f"email address longer than 254 characters: {address!r}")
    return result


def normalize_phone(number: str) -> str:
    """`number` in E.164 if it is a valid (assigned-range) number with its country code; a
    leading 00 counts as `+`. Numbers without a country code are refused, not guessed."""
    compact = _PHONE_PUNCTUATION.sub("", number.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    hint = " (write + country code and number, e.g. +14155550123)"
    if not _E164.fullmatch(compact):
        raise InvalidInput(f"not an E.164 phone number: {number!r}{hint}")
    try:
        parsed = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"not a phone number: {number!r}{hint}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"not a valid phone number for its country: {number!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _check_web_push(subscription: str) -> str:
    try:
        parsed = orjson.loads(subscription)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("web push subscription is not JSON") from exc
    if not isinstance(parsed, dict):
        raise InvalidInput("web push subscription must be a JSON object")
    endpoint = parsed.get("endpoint")
    keys = parsed.get("keys")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in {"https", "http"}:
        raise InvalidInput("web push subscription needs an http(s) `endpoint`")
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(name), str) and keys[name] for name in ("p256dh", "auth")
    ):
        raise InvalidInput("web push subscription needs `keys.p256dh` and `keys.auth`")
    return subscription


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"not an http(s) URL: {url!r}")
    return url.strip()


def validate_address(channel: str, address: str | None) -> str:
    """The normalised address for `channel`; InvalidInput naming the problem if unusable.

    Channels this module does not know (third-party plugins) only need a non-empty address.
    """
    if address is None or not address.strip():
        raise InvalidInput(f"no {channel} address", field="to")
    kind = CHANNEL_ADDRESS_KINDS.get(channel)
    if kind is AddressKind.EMAIL:
        return normalize_email(address)
    if kind is AddressKind.PHONE:
        return normalize_phone(address)
    if kind is AddressKind.WEB_PUSH:
        return _check_web_push(address)
    if kind is AddressKind.URL:
        return _check_url(address)
    return address.strip()


def suppression_key(channel: str, address: str) -> str:
    """The form of an address that suppression lists are keyed by: case-folded emails, and the
    endpoint of a web push subscription (its keys change when the browser renews them, the
    endpoint is what identifies it)."""
    kind = CHANNEL_ADDRESS_KINDS.get(channel)
    if kind is AddressKind.EMAIL:
        return address.strip().lower()
    if kind is AddressKind.WEB_PUSH and address.lstrip().startswith("{"):
        try:
            endpoint = orjson.loads(address).get("endpoint")
        except (orjson.JSONDecodeError, AttributeError):
            endpoint = None
        if isinstance(endpoint, str):
            return endpoint.strip()
    return address.strip()


def validate_suppression_address(channel: str, address: str) -> str:
    """An address as the suppression list takes it: what `validate_address` takes, and for web
    push also the bare endpoint URL of a subscription."""
    if CHANNEL_ADDRESS_KINDS.get(
        channel
    ) is AddressKind.WEB_PUSH and not address.lstrip().startswith("{"):
        return _check_url(address)
    return validate_address(channel, address)


# ---------------------------------------------------------------------------------------------
# Policy documents


class FrequencyCap(BaseModel):
    """At most `limit` marketing messages per `window` (e.g. 3 in 7d), on one channel or all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(ge=1)
    window: str
    channel: str | None = None

    @field_validator("window")
    @classmethod
    def _window_is_duration(cls, value: str) -> str:
        try:
            window_ms = parse_duration_ms(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc
        if window_ms <= 0:
            raise ValueError("window must be longer than zero")
        return value

    @functools.cached_property
    def window_ms(self) -> int:
        """The window in milliseconds (parsed once: the gate asks for every message)."""
        return parse_duration_ms(self.window)


class QuietHours(BaseModel):
    """A nightly window in the person's timezone when messages wait (`defer`) or are dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    end: str
    action: Literal["defer", "drop"] = "defer"
    # Empty: every channel.
    channels: tuple[str, ...] = ()
    include_transactional: bool = False

    @field_validator("start", "end")
    @classmethod
    def _is_time_of_day(cls, value: str) -> str:
        try:
            return format_time_of_day(parse_time_of_day(value))
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc

    def applies_to(self, channel: str, category: MessageCategory) -> bool:
        """Whether this window covers a message of `category` on `channel`."""
        if category is MessageCategory.TRANSACTIONAL and not self.include_transactional:
            return False
        return not self.channels or channel in self.channels


class DeliveryPolicy(BaseModel):
    """A workspace's send-time rules: channel consent modes, caps, quiet hours, default zone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: dict[str, ChannelPolicy] = Field(default_factory=dict)
    frequency_caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: tuple[QuietHours, ...] = ()
    default_timezone: str = "UTC"

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc
        return value

    def channel_policy(self, channel: str) -> ChannelPolicy:
        """The consent rules of `channel` (configured, or the built-in default)."""
        return self.channels.get(channel) or default_channel_policy(channel)

    @property
    def history_window_ms(self) -> int:
        """How far back the caller must load recent sends for the caps to be exact."""
        return max((cap.window_ms for cap in self.frequency_caps), default=0)


# ---------------------------------------------------------------------------------------------
# The gate


class SkipReason(StrEnum):
    """Why a message was not sent; each becomes the reason of a `message.skipped` event."""

    MISSING_ADDRESS = "missing_address"
    INVALID_ADDRESS = "invalid_address"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"
    NO_CONSENT = "no_consent"
    CONSENT_PENDING = "consent_pending"
    FREQUENCY_CAPPED = "frequency_capped"
    QUIET_HOURS = "quiet_hours"
    # Raised by the delivery worker, not by `gate`: the template failed to render.
    RENDER_FAILED = "render_failed"


@dataclass(frozen=True, slots=True)
class RecentSend:
    """A message already sent to the person, as frequency caps count it."""

    channel: str
    category: MessageCategory
    at_ms: int


@dataclass(frozen=True, slots=True)
class Send:
    """Go ahead, to this normalised address."""

    address: str
    kind: Literal["send"] = "send"


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: ask the gate again at `until_ms`."""

    until_ms: int
    reason: SkipReason
    detail: str = ""
    kind: Literal["defer"] = "defer"


@dataclass(frozen=True, slots=True)
class Skip:
    """Never send this message."""

    reason: SkipReason
    detail: str = ""
    kind: Literal["skip"] = "skip"


GateDecision = Send | Defer | Skip


def gate(
    *,
    channel: str,
    address: str | None,
    category: MessageCategory,
    topic: SubscriptionTopic | None,
    consent: ConsentState,
    suppression: Suppression | None,
    recent_sends: Sequence[RecentSend],
    policy: DeliveryPolicy,
    timezone: str | None,
    now_ms: int,
) -> GateDecision:
    """Decide one message: address, suppression, consent, frequency caps, then quiet hours.

    `suppression` is the list entry for this address if there is one; `recent_sends` are the
    person's sends within `policy.history_window_ms`; `timezone` is the profile's IANA zone
    (missing or unknown falls back to the policy's default).
    """
    if address is None or not address.strip():
        return Skip(SkipReason.MISSING_ADDRESS, f"profile has no {channel} address")
    try:
        normalised = validate_address(channel, address)
    except InvalidInput as exc:
        return Skip(SkipReason.INVALID_ADDRESS, exc.message)
    if suppression is not None:
        note = f" ({suppression.note})" if suppression.note else ""
        return Skip(SkipReason.SUPPRESSED, f"{suppression.reason.value}{note}")
    verdict = may_receive(
        consent,
        channel=channel,
        topic=topic,
        policy=policy.channel_policy(channel),
        transactional=category is MessageCategory.TRANSACTIONAL,
    )
    if not verdict.allowed:
        return Skip(SkipReason(verdict.reason), verdict.detail)
    if category is MessageCategory.MARKETING:
        capped = _exceeded_cap(policy.frequency_caps, channel, recent_sends, now_ms)
        if capped is not None:
            scope = capped.channel or "all channels"
            return Skip(
                SkipReason.FREQUENCY_CAPPED,
                f"{capped.limit} marketing messages per {capped.window} on {scope}",
            )
    for window in policy.quiet_hours:
        if not window.applies_to(channel, category):
            continue
        tz = zone_or(timezone, zone(policy.default_timezone))
        resume_ms = quiet_until_ms(window, tz_name=tz.key, now_ms=now_ms)
        if resume_ms is None:
            continue
        detail = f"quiet hours {window.start}-{window.end} {tz.key}"
        if window.action == "drop":
            return Skip(SkipReason.QUIET_HOURS, detail)
        return Defer(resume_ms, SkipReason.QUIET_HOURS, detail)
    return Send(normalised)


def _exceeded_cap(
    caps: Sequence[FrequencyCap], channel: str, recent: Sequence[RecentSend], now_ms: int
) -> FrequencyCap | None:
    for cap in caps:
        if cap.channel is not None and cap.channel != channel:
            continue
        since = now_ms - cap.window_ms
        count = sum(
            1
            for sent in recent
            if sent.category is MessageCategory.MARKETING
            and since < sent.at_ms <= now_ms
            and (cap.channel is None or sent.channel == cap.channel)
        )
        if count >= cap.limit:
            return cap
    return None


def quiet_until_ms(window: QuietHours, *, tz_name: str, now_ms: int) -> int | None:
    """The instant quiet hours end if `now_ms` falls inside them (local time in `tz_name`),
    else None. Windows may cross midnight (21:00-08:00); DST gaps and folds follow
    `legato.domain.local_time` (gap → shifted forward, fold → first occurrence)."""
    tz = zone(tz_name)
    start, end = parse_time_of_day(window.start), parse_time_of_day(window.end)
    if start == end:
        return None
    local = to_local(now_ms, tz)
    now_t = local.time()
    if start < end:
        inside = start <= now_t < end
        end_day = local.date()
    else:
        inside = now_t >= start or now_t < end
        end_day = local.date() + timedelta(days=1) if now_t >= start else local.date()
    if not inside:
        return None
    wall = datetime.combine(end_day, end)
    resume = local_instant_ms(wall, tz)
    if resume <= now_ms:
        # Inside the repeated hour of an autumn fold the end's first occurrence is already
        # past; its second occurrence (PEP 495 fold=1) is the one still ahead.
        second = int(wall.replace(tzinfo=tz, fold=1).timestamp() * 1000)
        resume = second if second > now_ms else local_instant_ms(wall + timedelta(days=1), tz)
    return resume


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A provider's send rate: `rate` sends a second on average, bursts of up to `burst`.

    `take` always grants the send but may ask to wait first: tokens go negative while sends are
    queued, so concurrent senders are spaced out instead of all waking at once.
    """

    rate: float
    burst: float
    tokens: float
    updated_ms: int

    @classmethod
    def full(cls, rate: float, burst: float, now_ms: int) -> TokenBucket:
        """A bucket that can burst right away."""
        if rate <= 0 or burst < 1:
            raise InvalidInput("a rate limit needs rate > 0 and burst >= 1", field="rate")
        return cls(rate, burst, burst, now_ms)

    def take(self, now_ms: int) -> tuple[TokenBucket, int]:
        """The bucket after one send, and how many milliseconds to wait before sending."""
        elapsed = max(0, now_ms - self.updated_ms)
        tokens = min(self.burst, self.tokens + elapsed * self.rate / 1000) - 1
        wait_ms = 0 if tokens >= 0 else int(-tokens * 1000 / self.rate + 0.999)
        return TokenBucket(self.rate, self.burst, tokens, max(now_ms, self.updated_ms)), wait_ms
