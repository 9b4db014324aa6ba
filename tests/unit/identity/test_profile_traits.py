"""How traits combine (pure): newest event timestamp wins, whatever the order of arrival."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from legato.domain.profiles import ProfileDraft, combine_group_traits


@pytest.mark.parametrize(
    "kept, kept_at, incoming, at, expected, changed",
    [
        ({}, {}, {"plan": "pro"}, 10, {"plan": "pro"}, {"plan"}),
        ({"plan": "free"}, {"plan": 5}, {"plan": "pro"}, 10, {"plan": "pro"}, {"plan"}),
        ({"plan": "free"}, {"plan": 20}, {"plan": "pro"}, 10, {"plan": "free"}, set()),
        # Equal timestamps: the later-processed event wins (log order).
        ({"plan": "free"}, {"plan": 10}, {"plan": "pro"}, 10, {"plan": "pro"}, {"plan"}),
        ({"plan": "pro"}, {"plan": 5}, {"plan": "pro"}, 10, {"plan": "pro"}, set()),
        ({"a": 1}, {"a": 5}, {"b": None}, 1, {"a": 1, "b": None}, {"b"}),
        (
            {"a": 1, "b": 2},
            {"a": 50, "b": 1},
            {"a": 9, "b": 9},
            10,
            {"a": 1, "b": 9},
            {"b"},
        ),
    ],
)
def test_newest_event_wins_per_trait(
    kept: dict[str, Any],
    kept_at: dict[str, int],
    incoming: dict[str, Any],
    at: int,
    expected: dict[str, Any],
    changed: set[str],
) -> None:
    draft = ProfileDraft(dict(kept), dict(kept_at), 0, 0, 0)
    assert draft.set_traits(incoming, at) == changed
    assert draft.traits == expected


UPDATES = [({"plan": "free", "city": "Oslo"}, 1), ({"plan": "pro"}, 3), ({"city": "Rome"}, 2)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_result_does_not_depend_on_arrival_order(order: tuple[int, ...]) -> None:
    draft = ProfileDraft()
    for i in order:
        draft.set_traits(*UPDATES[i])
    assert draft.traits == {"plan": "pro", "city": "Rome"}
    assert draft.trait_times == {"plan": 3, "city": 2}


@pytest.mark.parametrize("split", range(4))
def test_merging_equals_applying_everything_to_one_profile(split: int) -> None:
    # Updates spread over two profiles then merged == all applied to one profile.
    updates = [*UPDATES, ({"vip": True}, 0)]
    left, right, whole = ProfileDraft(), ProfileDraft(), ProfileDraft()
    for i, (traits, at) in enumerate(updates):
        (left if i < split else right).set_traits(traits, at)
        (left if i < split else right).observe(at + 100)
        whole.set_traits(traits, at)
        whole.observe(at + 100)
    left.absorb(right)
    assert (left.traits, left.event_count) == (whole.traits, whole.event_count)
    assert (left.first_seen_ms, left.last_seen_ms) == (100, 103)


def test_absorb_reports_changes_and_keeps_the_survivors_value_on_ties() -> None:
    survivor = ProfileDraft({"a": 1, "b": 1}, {"a": 5, "b": 5}, 100, 200, 3)
    loser = ProfileDraft({"a": 2, "b": 2, "c": 2}, {"a": 5, "b": 6, "c": 1}, 50, 150, 2)
    assert survivor.absorb(loser) == {"b", "c"}
    assert survivor.traits == {"a": 1, "b": 2, "c": 2}
    assert (survivor.first_seen_ms, survivor.last_seen_ms, survivor.event_count) == (50, 200, 5)


@pytest.mark.parametrize(
    "kept, kept_at, incoming, at, expected",
    [
        ({}, 0, {"name": "Acme"}, 5, ({"name": "Acme"}, 5)),
        ({"name": "Acme", "seats": 5}, 5, {"seats": 9}, 7, ({"name": "Acme", "seats": 9}, 7)),
        # An older call only fills what is not known yet.
        ({"seats": 9}, 7, {"seats": 1, "tier": "b"}, 3, ({"seats": 9, "tier": "b"}, 7)),
    ],
)
def test_group_traits(
    kept: dict[str, Any],
    kept_at: int,
    incoming: dict[str, Any],
    at: int,
    expected: tuple[dict[str, Any], int],
) -> None:
    assert combine_group_traits(kept, kept_at, incoming, at) == expected
