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

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

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


#: Whitespace as `str.isspace` sees it (`\s` of a str pattern is the same class).
_SPACE = re.compile(r"\s")


def normalise_email(raw: object) -> str | None:
    """`raw` trimmed and lower-cased if it looks like an address (x@y), else None."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or _SPACE.search(value):
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
    return _e164(text, region.upper())


@functools.lru_cache(maxsize=8192)
def _e164(text: str, region: str) -> str | None:
    # Parsing a number costs tens of microseconds, and people send the same one again and
    # again (every identify call): remembered, as the answer depends on the text alone.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_opaque(raw: object) -> str | None:
    """A userId or anonymousId as stored: the non-empty string itself, else None.

    Ids are opaque and case-sensitive: SDKs send them back exactly as they made them.
    """
    if isinstance(raw, str) and raw and len(raw) <= MAX_VALUE_LENGTH:
        return raw
    return None


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


def _normaliser(kind: str, region: str) -> Callable[[object], str | None]:
    """The function that gives the stored form of an identifier of `kind`."""
    if kind == EMAIL:
        return normalise_email
    if kind == PHONE:
        return functools.partial(normalise_phone, region=region)
    if kind in (USER_ID, ANONYMOUS_ID):
        return normalise_opaque
    return normalise_external


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """Which traits identify a person, and how phone numbers without a country code read."""

    trait_keys: tuple[str, ...] = (EMAIL, PHONE)
    default_phone_region: str = "US"
    #: (trait key, its normaliser) for each of `trait_keys`, chosen once.
    readers: tuple[tuple[str, Callable[[object], str | None]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        readers = tuple((k, _normaliser(k, self.default_phone_region)) for k in self.trait_keys)
        object.__setattr__(self, "readers", readers)


def normalise(kind: str, raw: object, config: IdentityConfig) -> str | None:
    """The stored form of an identifier of `kind`, or None when `raw` cannot be one."""
    return _normaliser(kind, config.default_phone_region)(raw)


class MessageIdentifiers(NamedTuple):
    """The identifiers one message carries.

    `user_id` anchors the message: the event always lands on that user's profile. `others` are
    in priority order (anonymousId first, then trait keys in configured order): when two of them
    belong to profiles of different users, the first one wins. `alias_previous` is an alias's
    previousId, which may be either an earlier userId or an anonymousId. A named tuple: one is
    made for every event the pipeline reads.
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


#: What an internal event, or a message naming nobody, carries.
NOBODY = MessageIdentifiers()


def identifiers_of(event: LoggedEvent, config: IdentityConfig) -> MessageIdentifiers:
    """The normalised identifiers of a logged message (none for internal events)."""
    kind = event.type
    if kind == INTERNAL:
        return NOBODY
    user_id = normalise_opaque(event.user_id)
    anonymous_id = normalise_opaque(event.anonymous_id)
    others: list[Identifier] = (
        [] if anonymous_id is None else [Identifier(ANONYMOUS_ID, anonymous_id)]
    )
    payload = event.payload
    # Identify traits describe the person (context.traits already folded in by ingestion);
    # a group call's traits describe the group, never the person.
    traits = payload.get("traits") if kind == "identify" else None
    context = payload.get("context")
    context_traits = context.get("traits") if isinstance(context, dict) else None
    sources = [s for s in (traits, context_traits) if isinstance(s, dict) and s]
    for key, read in config.readers if sources else ():
        for source in sources:
            if key in source:
                value = read(source[key])
                if value is not None:
                    identifier = Identifier(key, value)
                    if identifier not in others:
                        others.append(identifier)
                break
    previous = None
    if kind == "alias":
        previous = normalise_opaque(payload.get("previousId"))
        if previous is not None and previous == user_id:
            previous = None
    if user_id is None and not others and previous is None:
        return NOBODY
    return MessageIdentifiers(user_id, tuple(others), previous)


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


class Resolution(NamedTuple):
    """What resolving one message decided (a named tuple: one is made for every message)."""

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
        """A graph from stored owners (identifier → live profile) and profile → user id.

        The owner of a userId holds that user id: `user_ids` need only name the others (see
        `unvetted`).
        """
        users = {p: value for (kind, value), p in owners.items() if kind == USER_ID}
        users.update(user_ids)
        return cls(owners=dict(owners), user_ids=users)

    def unvetted(self, all_ids: Iterable[MessageIdentifiers]) -> set[str]:
        """Profiles whose user id resolving `all_ids` may consult and the graph doesn't know.

        Only messages that the graph does not already settle (every identifier on one profile)
        look at user ids, and only those of the owners of their identifiers; merges and claims
        within the chunk keep the graph's user ids up to date from there on.
        """
        unknown: set[str] = set()
        for ids in set(all_ids):
            if ids.alias_previous is None and self._settled(ids) is not None:
                continue
            for identifier in ids.lookups():
                owner = self.owners.get(identifier)
                if owner is not None and owner not in self.user_ids:
                    unknown.add(owner)
        return unknown

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
        if ids.alias_previous is None:
            settled = self._settled(ids)
            if settled is not None:
                return Resolution(settled or None)
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

    def _settled(self, ids: MessageIdentifiers) -> str | None:
        """The profile already owning every identifier of `ids` ("" if there are none), or
        None when resolving it could change the graph (the common case made cheap: most
        messages come from someone the graph knows, with identifiers it knows)."""
        found = ""
        if ids.user_id is not None:
            # A plain tuple finds an Identifier key (named tuples hash and compare as tuples).
            owner = self.owners.get((USER_ID, ids.user_id))  # type: ignore[call-overload]
            if owner is None:
                return None
            found = self.canonical(owner)
        for identifier in ids.others:
            owner = self.owners.get(identifier)
            if owner is None:
                return None
            owner = self.canonical(owner)
            if found and owner != found:
                return None
            found = owner
        return found

    def final_claims(self) -> dict[Identifier, str]:
        """Identifiers claimed in this graph, each with the live profile it ended up on."""
        return {identifier: self.canonical(p) for identifier, p in self.claims.items()}


def lookups_of(all_ids: Iterable[MessageIdentifiers]) -> list[Identifier]:
    """Every identifier a chunk needs to look up, each once, in a stable order."""
    wanted: set[Identifier] = set()
    for ids in set(all_ids):  # the same person's messages mostly carry the same identifiers
        wanted.update(ids.lookups())
    return sorted(wanted)
