"""The identity graph's shortcuts give the decisions the full rules give.

`IdentityGraph.resolve` settles a message whose identifiers already sit on one profile without
deciding anything, and the identity stage reads user ids only for the profiles `unvetted`
names: both must leave every decision exactly as the full rules make it.
"""

from __future__ import annotations

import itertools

import pytest

from legato.domain.identity import (
    ANONYMOUS_ID,
    EMAIL,
    NOBODY,
    USER_ID,
    Identifier,
    IdentityConfig,
    IdentityGraph,
    MessageIdentifiers,
    identifiers_of,
)
from legato.domain.pipeline import INTERNAL, LoggedEvent


def U(v: str) -> Identifier:
    return Identifier(USER_ID, v)


def A(v: str) -> Identifier:
    return Identifier(ANONYMOUS_ID, v)


def E(v: str) -> Identifier:
    return Identifier(EMAIL, v)


OWNERS = {U("u1"): "p1", A("a1"): "p1", E("e1@x.io"): "p1", A("a2"): "p2", U("u3"): "p3"}
USERS = {"p1": "u1", "p3": "u3"}


@pytest.mark.parametrize(
    "ids",
    [
        MessageIdentifiers("u1", ()),
        MessageIdentifiers("u1", (A("a1"), E("e1@x.io"))),
        MessageIdentifiers(None, (A("a1"),)),
        MessageIdentifiers(None, (A("a2"),)),
    ],
)
def test_a_settled_message_changes_nothing(ids: MessageIdentifiers) -> None:
    graph = IdentityGraph.of(OWNERS, USERS)
    decision = graph.resolve(ids, lambda: "NEW")
    assert decision.profile_id == OWNERS[ids.lookups()[0]]
    assert not (decision.created or decision.claimed or decision.merges or decision.refused)
    assert graph.owners == OWNERS and graph.user_ids == USERS
    assert not (graph.claims or graph.merges or graph.created or graph.merged_into)


def test_settled_follows_merges_made_earlier_in_the_chunk() -> None:
    graph = IdentityGraph.of({A("a1"): "p1", A("a2"): "p2"}, {})
    graph.resolve(MessageIdentifiers(None, (A("a1"), A("a2"))), lambda: "NEW")
    assert graph.canonical("p2") == "p1"
    again = graph.resolve(MessageIdentifiers(None, (A("a2"), A("a1"))), lambda: "NEW")
    assert again.profile_id == "p1" and not again.merges


def test_the_owner_of_a_user_id_holds_it() -> None:
    graph = IdentityGraph.of({U("u1"): "p1", A("a1"): "p2"}, {"p2": "u2"})
    assert graph.user_ids == {"p1": "u1", "p2": "u2"}


def test_unvetted_names_only_owners_that_decisions_may_consult() -> None:
    graph = IdentityGraph.of(OWNERS, {})
    settled = [MessageIdentifiers("u1", (A("a1"),)), MessageIdentifiers(None, (A("a2"),))]
    assert graph.unvetted(settled) == set()
    # a2's owner p2 might hold another user id: only reading it tells whether u1 may join it.
    assert graph.unvetted([*settled, MessageIdentifiers("u1", (A("a2"),))]) == {"p2"}
    # p3 holds u3 (its owner shows it): nothing to read for a3's message.
    assert graph.unvetted([MessageIdentifiers("u3", (A("a3"),))]) == set()
    assert graph.unvetted([MessageIdentifiers(None, (A("a2"),), alias_previous="x")]) == {"p2"}


# Every message of 1-3 identifiers over a small graph, resolved in sequence: a graph that was
# given only the user ids `unvetted` asked for decides exactly as one given all of them.
STORED = {A("a1"): "p1", A("a2"): "p2", E("e@x.io"): "p2", U("u1"): "p3", A("a3"): "p4"}
ALL_USERS = {"p3": "u1", "p4": "u9"}
POOL = [A("a1"), A("a2"), A("a3"), A("a4"), E("e@x.io"), E("f@x.io")]


def messages() -> list[MessageIdentifiers]:
    found = []
    for user in (None, "u1", "u2", "u9"):
        for size in range(0, 3):
            for others in itertools.combinations(POOL, size):
                if user is not None or others:
                    found.append(MessageIdentifiers(user, others))
    found.append(MessageIdentifiers("u2", (), alias_previous="u1"))
    found.append(MessageIdentifiers("u1", (), alias_previous="a2"))
    return found


@pytest.mark.parametrize("window", range(0, len(messages()), 7))
def test_unvetted_user_ids_decide_like_all_user_ids(window: int) -> None:
    chunk = (messages() * 2)[window : window + 9]
    full = IdentityGraph.of(STORED, ALL_USERS)
    lean = IdentityGraph.of(STORED, {})
    lean.user_ids.update({p: u for p, u in ALL_USERS.items() if p in lean.unvetted(chunk)})
    names = itertools.count()
    for ids in chunk:
        fresh = f"n{next(names)}"
        assert lean.resolve(ids, lambda f=fresh: f) == full.resolve(ids, lambda f=fresh: f)
    assert lean.final_claims() == full.final_claims()


def test_internal_events_and_messages_naming_nobody_carry_nobody() -> None:
    def logged(type_: str, user: str | None, anon: str | None) -> LoggedEvent:
        return LoggedEvent(1, "ws", "m", 0, type_, None, user, anon, "p1", 0, 0, {})

    config = IdentityConfig()
    assert identifiers_of(logged(INTERNAL, "u1", "a1"), config) is NOBODY
    assert identifiers_of(logged("track", None, None), config) is NOBODY
    assert identifiers_of(logged("track", "", None), config) is NOBODY
