"""Identity resolution rules (pure): identifiers of a message, normalisation, merge decisions."""

from __future__ import annotations

from typing import Any

import pytest

from legato.domain.identity import (
    ANONYMOUS_ID,
    EMAIL,
    PHONE,
    USER_ID,
    Identifier,
    IdentityConfig,
    IdentityGraph,
    MessageIdentifiers,
    identifiers_of,
    lookups_of,
    normalise,
    normalise_email,
    normalise_phone,
)
from legato.domain.pipeline import LoggedEvent

CONFIG = IdentityConfig(("email", "phone", "crm_id"), "US")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  ann@example.com\n", "ann@example.com"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
        ("no-at-sign", None),
        ("@example.com", None),
        ("ann@", None),
        ("ann smith@example.com", None),
        ("", None),
        (42, None),
        (None, None),
        ("a" * 320 + "@x.io", None),
    ],
)
def test_email_normalisation(raw: object, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+1 (415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("0044 20 7946 0018", "FR", "+442079460018"),
        ("06 12 34 56 78", "fr", "+33612345678"),
        (4155552671, "US", "+14155552671"),
        ("12", "US", None),
        ("not a phone", "US", None),
        ("", "US", None),
        (True, "US", None),
        (None, "US", None),
    ],
)
def test_phone_normalisation_to_e164(raw: object, region: str, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    "kind, raw, expected",
    [
        (USER_ID, "User-1", "User-1"),  # ids are case-sensitive and kept as sent
        (ANONYMOUS_ID, "", None),
        ("crm_id", 77, "77"),
        ("crm_id", " C-77 ", "C-77"),
        ("crm_id", True, None),
        ("crm_id", {"nested": 1}, None),
        ("crm_id", 7.5, None),
        (EMAIL, "A@B.C", "a@b.c"),
        (PHONE, "+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_normalise_by_kind(kind: str, raw: object, expected: str | None) -> None:
    assert normalise(kind, raw, CONFIG) == expected


def event(
    type_: str, user: str | None = None, anon: str | None = None, **payload: Any
) -> LoggedEvent:
    return LoggedEvent(1, "ws", "m", 0, type_, None, user, anon, None, 0, 0, payload)


@pytest.mark.parametrize(
    "logged, expected",
    [
        (
            event("identify", "u1", "a1", traits={"email": "A@x.io", "phone": "+14155552671"}),
            MessageIdentifiers(
                "u1",
                (
                    Identifier(ANONYMOUS_ID, "a1"),
                    Identifier(EMAIL, "a@x.io"),
                    Identifier(PHONE, "+14155552671"),
                ),
            ),
        ),
        (
            event("track", None, "a1", context={"traits": {"email": "b@x.io", "crm_id": 9}}),
            MessageIdentifiers(
                None,
                (
                    Identifier(ANONYMOUS_ID, "a1"),
                    Identifier(EMAIL, "b@x.io"),
                    Identifier("crm_id", "9"),
                ),
            ),
        ),
        # A group call's traits describe the group: its email is not the person's.
        (
            event("group", "u1", None, groupId="g", traits={"email": "billing@acme.io"}),
            MessageIdentifiers("u1", ()),
        ),
        # Invalid identifier values are ignored (they stay plain traits).
        (
            event("identify", "u1", None, traits={"email": "nope", "phone": "12"}),
            MessageIdentifiers("u1", ()),
        ),
        # Identify traits win over context.traits for the same key.
        (
            event(
                "identify",
                "u1",
                None,
                traits={"email": "t@x.io"},
                context={"traits": {"email": "c@x.io"}},
            ),
            MessageIdentifiers("u1", (Identifier(EMAIL, "t@x.io"),)),
        ),
        (
            event("alias", "u2", "a1", previousId="u1"),
            MessageIdentifiers("u2", (Identifier(ANONYMOUS_ID, "a1"),), alias_previous="u1"),
        ),
        (event("alias", "u2", None, previousId="u2"), MessageIdentifiers("u2", ())),
        (event("internal", "u1", "a1"), MessageIdentifiers()),
    ],
    ids=[
        "identify",
        "context-traits",
        "group-traits",
        "invalid-values",
        "traits-first",
        "alias",
        "alias-self",
        "internal",
    ],
)
def test_identifiers_of_a_message(logged: LoggedEvent, expected: MessageIdentifiers) -> None:
    assert identifiers_of(logged, CONFIG) == expected


def U(v: str) -> Identifier:
    return Identifier(USER_ID, v)


def A(v: str) -> Identifier:
    return Identifier(ANONYMOUS_ID, v)


def E(v: str) -> Identifier:
    return Identifier(EMAIL, v)


# Each case: stored owners, stored user ids of profiles, the message, then the expected
# (profile, created, merged losers, claimed, refused identifiers).
MERGE_CASES = [
    pytest.param(
        {},
        {},
        MessageIdentifiers(None, (A("a1"),)),
        ("NEW", True, [], [A("a1")], []),
        id="first-sight-creates",
    ),
    pytest.param(
        {A("a1"): "p1"},
        {},
        MessageIdentifiers("u1", (A("a1"),)),
        ("p1", False, [], [U("u1")], []),
        id="identify-claims-anonymous-profile",
    ),
    pytest.param(
        {U("u1"): "p2", A("a1"): "p1"},
        {"p2": "u1"},
        MessageIdentifiers("u1", (A("a1"),)),
        ("p2", False, ["p1"], [], []),
        id="identify-merges-anonymous-into-user",
    ),
    pytest.param(
        {U("u1"): "p1", A("a1"): "p2"},
        {"p1": "u1"},
        MessageIdentifiers("u1", (A("a1"),)),
        ("p1", False, ["p2"], [], []),
        id="user-profile-survives-even-if-older",
    ),
    pytest.param(
        {A("a1"): "p3", E("e@x.io"): "p2"},
        {},
        MessageIdentifiers(None, (A("a1"), E("e@x.io"))),
        ("p2", False, ["p3"], [], []),
        id="no-user-oldest-survives",
    ),
    pytest.param(
        {U("u1"): "p1", A("a1"): "p2"},
        {"p1": "u1", "p2": "u2"},
        MessageIdentifiers("u1", (A("a1"),)),
        ("p1", False, [], [], [A("a1")]),
        id="two-users-never-merge",
    ),
    pytest.param(
        {A("a1"): "p2"},
        {"p2": "u2"},
        MessageIdentifiers("u1", (A("a1"),)),
        ("NEW", True, [], [U("u1")], [A("a1")]),
        id="new-user-on-someone-elses-device",
    ),
    pytest.param(
        {A("a1"): "p1", E("e@x.io"): "p2"},
        {"p1": "u1", "p2": "u2"},
        MessageIdentifiers(None, (A("a1"), E("e@x.io"))),
        ("p1", False, [], [], [E("e@x.io")]),
        id="anonymous-first-wins-over-email",
    ),
    pytest.param(
        {U("u1"): "p1", A("old"): "p2"},
        {"p1": "u1"},
        MessageIdentifiers("u1", (), alias_previous="old"),
        ("p1", False, ["p2"], [], []),
        id="alias-anonymous-previous",
    ),
    pytest.param(
        {U("u1"): "p1"},
        {"p1": "u1"},
        MessageIdentifiers("u1", (), alias_previous="old"),
        ("p1", False, [], [A("old")], []),
        id="alias-unknown-previous-is-claimed",
    ),
    pytest.param(
        {U("u1"): "p1", U("u2"): "p2"},
        {"p1": "u1", "p2": "u2"},
        MessageIdentifiers("u2", (), alias_previous="u1"),
        ("p2", False, [], [], [U("u1")]),
        id="alias-between-two-users-refused",
    ),
    pytest.param(
        {A("a1"): "p1", A("a2"): "p2", E("e@x.io"): "p3"},
        {"p2": "u1"},
        MessageIdentifiers("u1", (A("a1"), A("a2"), E("e@x.io"))),
        ("p2", False, ["p1", "p3"], [U("u1")], []),
        id="three-way-merge",
    ),
]


@pytest.mark.parametrize("owners, users, ids, expected", MERGE_CASES)
def test_merge_decisions(
    owners: dict[Identifier, str],
    users: dict[str, str],
    ids: MessageIdentifiers,
    expected: tuple[str, bool, list[str], list[Identifier], list[Identifier]],
) -> None:
    graph = IdentityGraph.of(owners, users)
    decision = graph.resolve(ids, lambda: "NEW")
    profile, created, losers, claimed, refused = expected
    assert decision.profile_id == profile and decision.created is created
    assert [m.loser for m in decision.merges] == losers
    assert all(m.survivor == profile for m in decision.merges)
    assert list(decision.claimed) == claimed
    assert [r.identifier for r in decision.refused] == refused
    for refusal in decision.refused:
        assert "two user ids" in refusal.reason
    # The graph now answers with the decision, and no profile holds two user ids.
    for identifier in [*claimed, *(i for i in ids.lookups() if owners.get(i) in losers)]:
        assert graph.owner(identifier) == profile
    assert len(set(graph.user_ids.values())) == len(graph.user_ids)


def test_a_chunk_of_decisions_chains_merges_and_claims() -> None:
    graph = IdentityGraph.of({A("a1"): "p1", A("a2"): "p2"}, {})
    first = graph.resolve(MessageIdentifiers("u1", (A("a2"),)), lambda: "n1")
    second = graph.resolve(MessageIdentifiers(None, (A("a1"), A("a2"), E("e@x.io"))), lambda: "n2")
    assert first.profile_id == "p2" and not first.merges
    # p2 holds u1 now, so it survives even though p1 is older.
    assert second.profile_id == "p2" and [m.loser for m in second.merges] == ["p1"]
    assert graph.canonical("p1") == "p2"
    assert graph.final_claims() == {U("u1"): "p2", E("e@x.io"): "p2"}
    third = graph.resolve(MessageIdentifiers(None, (A("a3"),)), lambda: "n3")
    assert third.created and graph.created == ["n3"]
    assert graph.resolve(MessageIdentifiers(), lambda: "n4").profile_id is None


def test_lookups_cover_both_readings_of_an_alias_previous_id() -> None:
    ids = MessageIdentifiers("u2", (A("a1"),), alias_previous="x")
    assert lookups_of([ids, MessageIdentifiers("u2")]) == sorted([A("a1"), A("x"), U("u2"), U("x")])
