"""Consent: subscription topics, consent records folded into a state, suppressions.

A person's consent is the fold of their consent records (channel, topic, status, source, time),
latest first-class: the records are the evidence, the state is derived. `may_receive` answers
whether a marketing message on a channel/topic is allowed. Pure: never reads a clock or a
store — the delivery worker loads the records and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class OptMode(StrEnum):
    """Whether silence means yes (opt-out) or no (opt-in)."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class ConsentStatus(StrEnum):
    """What a person said about a channel or topic."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    # Asked to subscribe where double opt-in applies, confirmation link not clicked yet.
    PENDING = "pending"


class SuppressionReason(StrEnum):
    """Why an address must never be sent to (whatever the consent says)."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    # The provider said the address, number, token or push subscription does not exist.
    INVALID = "invalid"


class SubscriptionTopic(BaseModel):
    """A subscription topic on one channel, e.g. `newsletter` on `email` (a user document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=_KEY_PATTERN)
    channel: str = Field(pattern=_KEY_PATTERN)
    mode: OptMode = OptMode.OPT_OUT
    double_opt_in: bool = False
    name: str = ""
    description: str = ""


class ChannelPolicy(BaseModel):
    """Consent rules of a whole channel: default mode, double opt-in, what transactional ignores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str = Field(pattern=_KEY_PATTERN)
    mode: OptMode = OptMode.OPT_OUT
    double_opt_in: bool = False
    # Email receipts still go to someone who left the newsletter; an SMS STOP stops everything.
    transactional_ignores_opt_out: bool = True


_DEFAULT_POLICIES = {
    "email": ChannelPolicy(channel="email"),
    "sms": ChannelPolicy(channel="sms", mode=OptMode.OPT_IN, transactional_ignores_opt_out=False),
    "whatsapp": ChannelPolicy(
        channel="whatsapp", mode=OptMode.OPT_IN, transactional_ignores_opt_out=False
    ),
}


def default_channel_policy(channel: str) -> ChannelPolicy:
    """The built-in rules of a channel: SMS and WhatsApp are opt-in, the rest opt-out."""
    return _DEFAULT_POLICIES.get(channel) or ChannelPolicy(channel=channel)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One consent record: who said what, where and when (`topic` None = the whole channel)."""

    channel: str
    topic: str | None
    status: ConsentStatus
    source: str
    at_ms: int
    evidence: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


ConsentKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The current consent of one person: the latest record per (channel, topic)."""

    latest: Mapping[ConsentKey, ConsentChange] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_changes(cls, changes: Iterable[ConsentChange]) -> ConsentState:
        """Fold records in any order; the latest `at_ms` wins, ties go to the later record."""
        latest: dict[ConsentKey, ConsentChange] = {}
        for change in changes:
            key = (change.channel, change.topic)
            current = latest.get(key)
            if current is None or change.at_ms >= current.at_ms:
                latest[key] = change
        return cls(MappingProxyType(latest))

    def apply(self, change: ConsentChange) -> ConsentState:
        """The state after one more record."""
        return ConsentState.from_changes([*self.latest.values(), change])

    def status(self, channel: str, topic: str | None = None) -> ConsentStatus | None:
        """The latest status said for a channel (topic None) or one of its topics; None if never."""
        change = self.latest.get((channel, topic))
        return None if change is None else change.status


def subscribe_change(
    *,
    channel: str,
    topic: SubscriptionTopic | None,
    policy: ChannelPolicy,
    source: str,
    at_ms: int,
    confirmed: bool = False,
    evidence: Mapping[str, str] | None = None,
) -> ConsentChange:
    """The record of a subscribe request: PENDING until confirmed where double opt-in applies."""
    needs_confirmation = topic.double_opt_in if topic is not None else policy.double_opt_in
    status = (
        ConsentStatus.PENDING if needs_confirmation and not confirmed else ConsentStatus.SUBSCRIBED
    )
    return ConsentChange(
        channel=channel,
        topic=None if topic is None else topic.key,
        status=status,
        source=source,
        at_ms=at_ms,
        evidence=MappingProxyType(dict(evidence or {})),
    )


@dataclass(frozen=True, slots=True)
class ConsentVerdict:
    """Whether consent allows a message; `reason` is a `SkipReason` value when it does not."""

    allowed: bool
    reason: str = ""
    detail: str = ""


_ALLOWED = ConsentVerdict(allowed=True)


def may_receive(
    state: ConsentState,
    *,
    channel: str,
    topic: SubscriptionTopic | None,
    policy: ChannelPolicy,
    transactional: bool,
) -> ConsentVerdict:
    """Whether consent allows a message on `channel` (and `topic`) to this person.

    An explicit channel-level unsubscribe always wins over topics. A topic record decides
    next; silence falls back to the topic's mode, then the channel's. Transactional messages
    ignore topics and (unless the channel forbids it) channel opt-outs.
    """
    if topic is not None and topic.channel != channel:
        raise ValueError(
            f"topic {topic.key!r} belongs to channel {topic.channel!r}, not {channel!r}"
        )
    channel_status = state.status(channel)
    if transactional:
        if (
            channel_status is ConsentStatus.UNSUBSCRIBED
            and not policy.transactional_ignores_opt_out
        ):
            return ConsentVerdict(False, "unsubscribed", f"opted out of {channel}")
        return _ALLOWED
    if channel_status is ConsentStatus.UNSUBSCRIBED:
        return ConsentVerdict(False, "unsubscribed", f"opted out of {channel}")
    if channel_status is ConsentStatus.PENDING:
        return ConsentVerdict(False, "consent_pending", f"{channel} subscription not confirmed")
    channel_ok = channel_status is ConsentStatus.SUBSCRIBED or policy.mode is OptMode.OPT_OUT
    if topic is None:
        if channel_ok:
            return _ALLOWED
        return ConsentVerdict(False, "no_consent", f"{channel} is opt-in and never subscribed")
    topic_status = state.status(channel, topic.key)
    if topic_status is ConsentStatus.SUBSCRIBED:
        return _ALLOWED
    if topic_status is ConsentStatus.UNSUBSCRIBED:
        return ConsentVerdict(False, "unsubscribed", f"opted out of topic {topic.key!r}")
    if topic_status is ConsentStatus.PENDING:
        return ConsentVerdict(False, "consent_pending", f"topic {topic.key!r} not confirmed")
    if topic.mode is OptMode.OPT_IN:
        return ConsentVerdict(False, "no_consent", f"topic {topic.key!r} is opt-in")
    if channel_ok:
        return _ALLOWED
    return ConsentVerdict(False, "no_consent", f"{channel} is opt-in and never subscribed")


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address that must receive nothing on a channel, and why."""

    channel: str
    address: str
    reason: SuppressionReason
    at_ms: int
    note: str = ""
