"""Identity resolution: which identifiers a message carries, and which profiles they join.

An identifier is a (kind, value) pair: `anonymous_id`, `user_id`, or a configured trait key
(`email`, `phone`, external ids such as `crm_id`). Every identifier belongs to at most one
canonical profile. A message whose identifiers belong to several profiles merges them — with one
exception that keeps people apart: a profile never holds two different user ids, so an
identifier owned by the profile of another user is refused (not linked) and the profiles stay
apart; the message's own userId decides which side the event lands on.

Pure: no I/O, no clock. The runtime loads the part of the graph a chunk touches into an
`IdentityGraph`, lets it decide, and writes the decisions back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import phonenumbers

from legato.domain.pipeline import INTERNAL, LoggedEvent

ANONYMOUS_ID = "anonymous_id"
USER_ID = "user_id"
EMAIL = "email"
PHONE = "phone"
#: The longest identifier value the identity graph stores (the longest email address).
MAX_VALUE_LENGTH = 320


class Identifier(NamedTuple):
    """One identifier of a person, normalised (emails lower-cased, phones in E.164).

    A named tuple, not a dataclass: a chunk of the pipeline hashes, compares and sorts tens of
    thousands of them, which tuples do in C.
    """

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """Which traits identify a person, and how phone numbers without a country code read."""

    trait_keys: tuple[str, ...] = (EMAIL, PHONE)
    default_phone_region: str = "US"


def normalise_email(raw: object) -> str | None:
    """`raw` trimmed and lower-cased if it looks like an address (x@y), else None."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        return None
    return value if len(value) <= MAX_VALUE_LENGTH else None


def normalise_phone(raw: object, region: str = "US") -> str | None:
    """`raw` in E.164 (+15555550100) if it is a possible number, else None.

    Numbers without a country code are read as numbers of `region` (ISO 3166 code).
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    if not text or len(text) > 64:
        return None
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_external(raw: object) -> str | None:
    """An external id (crm_id, erp_customer_id...) as text: strings trimmed, integers written."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str):
        value = raw.strip()
        return value if value and len(value) <= MAX_VALUE_LENGTH else None
    return None


def normalise(kind: str, raw: object, config: IdentityConfig) -> str | None:
    """The stored form of an identifier of `kind`, or None when `raw` cannot be one."""
    if kind == EMAIL:
        return normalise_email(raw)
    if kind == PHONE:
        return normalise_phone(raw, config.default_phone_region)
    if kind in (USER_ID, ANONYMOUS_ID):
        # Ids are opaque and case-sensitive: SDKs send them back exactly as they made them.
        if isinstance(raw, str) and raw and len(raw) <= MAX_VALUE_LENGTH:
            return raw
        return None
    return normalise_external(raw)


@dataclass(frozen=True, slots=True)
class MessageIdentifiers:
    """The identifiers one message carries.

    `user_id` anchors the message: the event always lands on that user's profile. `others` are
    in priority order (anonymousId first, then trait keys in configured order): when two of them
    belong to profiles of different users, the first one wins. `alias_previous` is an alias's
    previousId, which may be either an earlier userId or an anonymousId.
    """

    user_id: str | None = None
    others: tuple[Identifier, ...] = ()
    alias_previous: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when the message names nobody."""
        return self.user_id is None and not self.others and self.alias_previous is None

    def lookups(self) -> tuple[Identifier, ...]:
        """Every identifier whose owner must be known to resolve this message."""
        found: list[Identifier] = []
        if self.user_id is not None:
            found.append(Identifier(USER_ID, self.user_id))
        found.extend(self.others)
        if self.alias_previous is not None:
            found.append(Identifier(USER_ID, self.alias_previous))
            found.append(Identifier(ANONYMOUS_ID, self.alias_previous))
        return tuple(found)


def _trait_sources(event: LoggedEvent) -> list[Mapping[str, Any]]:
    payload = event.payload
    sources: list[Mapping[str, Any]] = []
    # Identify traits describe the person (context.traits already folded in by ingestion);
    # a group call's traits describe the group, never the person.
    if event.type == "identify" and isinstance(payload.get("traits"), dict):
        sources.append(payload["traits"])
    context = payload.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        sources.append(context["traits"])
    return sources


def identifiers_of(event: LoggedEvent, config: IdentityConfig) -> MessageIdentifiers:
    """The normalised identifiers of a logged message (none for internal events)."""
    if event.type == INTERNAL:
        return MessageIdentifiers()
    user_id = normalise(USER_ID, event.user_id, config)
    others: list[Identifier] = []
    seen: set[Identifier] = set()

    def add(kind: str, raw: object) -> None:
        value = normalise(kind, raw, config)
        if value is None:
            return
        identifier = Identifier(kind, value)
        if identifier not in seen:
            seen.add(identifier)
            others.append(identifier)

    add(ANONYMOUS_ID, event.anonymous_id)
    sources = _trait_sources(event)
    for key in config.trait_keys:
        for source in sources:
            if key in source:
                add(key, source[key])
                break
    previous = None
    if event.type == "alias":
        previous = normalise(USER_ID, event.payload.get("previousId"), config)
        if previous is not None and previous == user_id:
            previous = None
    return MessageIdentifiers(user_id=user_id, others=tuple(others), alias_previous=previous)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An identifier a message carried but that was not linked, and why."""

    identifier: Identifier
    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class Merge:
    """`loser` merged into `survivor` because `via` (an identifier of the message) joined them."""

    loser: str
    survivor: str
    via: Identifier


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolving one message decided."""

    profile_id: str | None
    created: bool = False
    claimed: tuple[Identifier, ...] = ()
    merges: tuple[Merge, ...] = ()
    refused: tuple[Refusal, ...] = ()


@dataclass(slots=True)
class IdentityGraph:
    """The part of the identity graph one chunk of messages touches, decided in memory.

    Built from the stored owners of the chunk's identifiers and the user id of each owning
    profile; `resolve` decides a message and applies the decision to the graph, so the next
    message of the chunk sees it.
    """

    owners: dict[Identifier, str] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    claims: dict[Identifier, str] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)

    @classmethod
    def of(cls, owners: Mapping[Identifier, str], user_ids: Mapping[str, str]) -> IdentityGraph:
        """A graph from stored owners (identifier → live profile) and profile → user id."""
        return cls(owners=dict(owners), user_ids=dict(user_ids))

    def canonical(self, profile_id: str) -> str:
        """The live profile `profile_id` ended up in after this graph's merges."""
        while profile_id in self.merged_into:
            profile_id = self.merged_into[profile_id]
        return profile_id

    def owner(self, identifier: Identifier) -> str | None:
        """The live profile owning `identifier`, or None when it is unclaimed."""
        found = self.owners.get(identifier)
        return None if found is None else self.canonical(found)

    def resolve(self, ids: MessageIdentifiers, fresh_id: Callable[[], str]) -> Resolution:
        """Decide which profile a message belongs to; `fresh_id()` names a new one if needed."""
        if ids.is_empty:
            return Resolution(profile_id=None)
        ordered: list[Identifier] = []
        if ids.user_id is not None:
            ordered.append(Identifier(USER_ID, ids.user_id))
        ordered.extend(ids.others)
        if ids.alias_previous is not None:
            as_user = Identifier(USER_ID, ids.alias_previous)
            as_anonymous = Identifier(ANONYMOUS_ID, ids.alias_previous)
            # previousId names an earlier userId if one is known, else an anonymousId.
            previous = as_user if self.owner(as_user) is not None else as_anonymous
            if previous not in ordered:
                ordered.append(previous)

        user = ids.user_id
        joined: list[str] = []
        joined_via: dict[str, Identifier] = {}
        unclaimed: list[Identifier] = []
        refused: list[Refusal] = []
        for identifier in ordered:
            owner = self.owner(identifier)
            if owner is None:
                unclaimed.append(identifier)
                continue
            if owner in joined_via:
                continue
            owner_user = self.user_ids.get(owner)
            if user is not None and owner_user is not None and owner_user != user:
                # Joining would give one profile two user ids: two people, not one. The
                # identifier stays with its owner; the event lands on the userId's side.
                refused.append(
                    Refusal(
                        identifier,
                        owner,
                        f"{identifier} belongs to profile {owner} of user {owner_user!r}, "
                        f"not {user!r}: a profile never holds two user ids",
                    )
                )
                continue
            joined.append(owner)
            joined_via[owner] = identifier
            if owner_user is not None:
                user = owner_user

        if joined:
            # The user's profile survives (other systems know it); else the oldest (ids sort
            # by creation time).
            survivor = next((p for p in joined if p in self.user_ids), min(joined))
            created = False
        else:
            survivor = fresh_id()
            created = True
            self.created.append(survivor)
        merges = tuple(
            Merge(loser, survivor, joined_via[loser])
            for loser in sorted(joined)
            if loser != survivor
        )
        for merge in merges:
            self.merged_into[merge.loser] = survivor
            if merge.loser in self.user_ids:
                self.user_ids[survivor] = self.user_ids.pop(merge.loser)
            self.merges.append(merge)
        for identifier in unclaimed:
            self.owners[identifier] = survivor
            self.claims[identifier] = survivor
            if identifier.kind == USER_ID:
                self.user_ids[survivor] = identifier.value
        return Resolution(
            profile_id=survivor,
            created=created,
            claimed=tuple(unclaimed),
            merges=merges,
            refused=tuple(refused),
        )

    def final_claims(self) -> dict[Identifier, str]:
        """Identifiers claimed in this graph, each with the live profile it ended up on."""
        return {identifier: self.canonical(p) for identifier, p in self.claims.items()}


def lookups_of(all_ids: Iterable[MessageIdentifiers]) -> list[Identifier]:
    """Every identifier a chunk needs to look up, each once, in a stable order."""
    return sorted({identifier for ids in all_ids for identifier in ids.lookups()})
