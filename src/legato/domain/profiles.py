"""Unified profiles: how traits combine, and what a profile looks like to its readers.

Traits combine per trait, newest event timestamp wins (`trait_times` keeps the timestamp of
each kept value), so the result does not depend on the order in which events or merges are
applied. First and last seen are the earliest and latest event timestamps.

Pure: no I/O, no clock; the runtime passes event timestamps in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(slots=True)
class ProfileDraft:
    """A profile's mutable state while a chunk of events is applied to it."""

    traits: dict[str, Any] = field(default_factory=dict)
    trait_times: dict[str, int] = field(default_factory=dict)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    event_count: int = 0

    def set_traits(self, incoming: Mapping[str, Any], at_ms: int) -> frozenset[str]:
        """Apply traits observed at `at_ms`; returns the keys whose value changed.

        A trait is replaced unless the kept value is from a strictly newer event (on equal
        timestamps the later-processed event wins, i.e. log order).
        """
        changed: set[str] = set()
        for key, value in incoming.items():
            kept_at = self.trait_times.get(key)
            if kept_at is not None and kept_at > at_ms:
                continue
            if key not in self.traits or self.traits[key] != value:
                changed.add(key)
            self.traits[key] = value
            self.trait_times[key] = at_ms
        return frozenset(changed)

    def observe(self, at_ms: int) -> None:
        """Count one event that happened at `at_ms`."""
        self.event_count += 1
        self.seen(at_ms, at_ms)

    def seen(self, first_ms: int | None, last_ms: int | None) -> None:
        """Widen first/last seen to include [first_ms, last_ms]."""
        if first_ms is not None and (self.first_seen_ms is None or first_ms < self.first_seen_ms):
            self.first_seen_ms = first_ms
        if last_ms is not None and (self.last_seen_ms is None or last_ms > self.last_seen_ms):
            self.last_seen_ms = last_ms

    def absorb(self, other: ProfileDraft) -> frozenset[str]:
        """Merge `other` (a merged-away profile) into this one; returns the changed trait keys.

        Per trait the newer value wins; on a tie this profile (the survivor) keeps its own.
        """
        changed: set[str] = set()
        for key, value in other.traits.items():
            at = other.trait_times.get(key, 0)
            kept_at = self.trait_times.get(key)
            if kept_at is not None and kept_at >= at:
                continue
            if key not in self.traits or self.traits[key] != value:
                changed.add(key)
            self.traits[key] = value
            self.trait_times[key] = at
        self.event_count += other.event_count
        self.seen(other.first_seen_ms, other.last_seen_ms)
        return frozenset(changed)


def combine_group_traits(
    kept: Mapping[str, Any], kept_at_ms: int, incoming: Mapping[str, Any], at_ms: int
) -> tuple[dict[str, Any], int]:
    """A group's traits after a group call at `at_ms`; returns (traits, newest call time).

    Groups keep one timestamp, that of the newest call applied: a newer call overrides every
    trait it names, an older one only fills traits not known yet.
    """
    if at_ms >= kept_at_ms:
        return {**kept, **incoming}, at_ms
    return {**incoming, **kept}, kept_at_ms


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class IdentityView(_View):
    """One identifier of a profile."""

    kind: str = Field(description="anonymous_id, user_id, email, phone or a configured trait key")
    value: str
    created_ms: int = Field(description="When the identifier was first linked (epoch ms)")


class GroupView(_View):
    """A group (account, company...) the profile belongs to, with the group's own traits."""

    group_id: str
    traits: dict[str, Any]
    joined_ms: int = Field(description="Timestamp of the first group call joining it (epoch ms)")


class Profile(_View):
    """One person: identifiers, traits, groups and activity, across every merged profile."""

    id: str
    identities: list[IdentityView]
    traits: dict[str, Any]
    groups: list[GroupView]
    first_seen_ms: int
    last_seen_ms: int
    event_count: int = Field(description="Events attributed to this person (internal ones aside)")
    merged_from: list[str] = Field(description="Ids of profiles merged into this one")
    created_ms: int
    updated_ms: int


class ProfileEvent(_View):
    """One event on a profile's timeline."""

    seq: int = Field(description="Log offset")
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    received_ms: int
    payload: dict[str, Any]


class ProfilePage(_View):
    """A page of profiles; pass `next_cursor` back as `cursor` for the next one."""

    profiles: list[Profile]
    next_cursor: str | None


class EventPage(_View):
    """A page of a profile's events, newest first."""

    events: list[ProfileEvent]
    next_cursor: str | None
