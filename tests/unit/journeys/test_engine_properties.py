"""Properties of `advance` over arbitrary stimulus sequences (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from legato.domain.engine import CallWebhook, Emit, Send, UpdateProfile

from .harness import HOUR, T0, Harness, Profile, fact

# Every node type, two waits of each kind, a loop, a webhook and a goal with an exit criterion.
DOC: dict[str, Any] = {
    "kind": "Journey",
    "key": "everything",
    "trigger": {"event": "Checkout Started", "key": "properties.cart_id"},
    "goal": {"event": "Order Completed", "within": "2d", "exit": False},
    "exit_criteria": [
        {"event": "Cart Emptied", "match": {"properties.cart_id": "trigger.properties.cart_id"}},
        {"condition": {"trait": "blocked", "eq": True}},
    ],
    "nodes": [
        {
            "id": "listen",
            "type": "wait_for_event",
            "event": "Order Completed",
            "match": {"properties.cart_id": "trigger.properties.cart_id"},
            "timeout": "1h",
            "on_event": "thanks",
            "on_timeout": "ab",
        },
        {
            "id": "thanks",
            "type": "message",
            "channel": "email",
            "template": "thanks",
            "next": "bye",
        },
        {
            "id": "ab",
            "type": "random_split",
            "branches": [{"weight": 1, "next": "push"}, {"weight": 1, "next": "hook"}],
            "holdout": 20,
        },
        {"id": "push", "type": "message", "channel": "push", "template": "p", "next": "count"},
        {
            "id": "hook",
            "type": "webhook",
            "url": "https://x.example/h",
            "give_up_after": "30m",
            "response": {"traits": {"tier": "tier"}},
            "on_success": "count",
            "on_failure": "count",
        },
        {"id": "count", "type": "update_profile", "increment": {"touches": 1}, "next": "enough"},
        {
            "id": "enough",
            "type": "split",
            "branches": [{"condition": {"trait": "touches", "gte": 3}, "next": "bye"}],
            "default": "morning",
        },
        {"id": "morning", "type": "wait_until", "time": "09:00", "next": "again"},
        {"id": "again", "type": "wait", "duration": "5h", "next": "emit"},
        {"id": "emit", "type": "emit_event", "event": "Nudged", "next": "ab"},
        {"id": "bye", "type": "exit"},
    ],
}

actions = st.lists(
    st.one_of(
        st.tuples(st.just("time"), st.integers(min_value=1, max_value=30 * HOUR)),
        st.tuples(
            st.just("event"),
            st.sampled_from(["Order Completed", "Cart Emptied", "Page Viewed"]),
            st.sampled_from(["c1", "c2"]),
        ),
        st.tuples(st.just("webhook"), st.sampled_from([200, 500, 0])),
        st.tuples(st.just("block"), st.booleans()),
    ),
    max_size=25,
)


def play(person: str, steps: list[tuple[Any, ...]]) -> Harness:
    h = Harness(DOC, Profile(profile_id=person, traits={"timezone": "Europe/Paris"}))
    h.enter(fact("Checkout Started", cart_id="c1"))
    now = T0
    for step in steps:
        assert h.run is not None
        if step[0] == "time":
            now += step[1]
            h.run_until(now)
        elif step[0] == "event":
            h.event(fact(step[1], now, cart_id=step[2]))
        elif step[0] == "webhook":
            if h.run.node_id == "hook" and h.run.status == "waiting":
                h.webhook("hook", step[1], {"tier": "gold"}, now)
        else:
            h.profile.traits["blocked"] = step[1]
        check_invariants(h)
    return h


def check_invariants(h: Harness) -> None:
    run = h.run
    assert run is not None
    assert run.status != "active"
    # the timers the effects left scheduled are exactly those the run expects
    assert h.timers == set(run.timers())
    if run.status == "waiting":
        assert run.wait_deadline_ms is not None
    else:
        assert not h.timers
    # one idempotency key per side effect: a replay can never double-send
    keys = [
        e.idempotency_key for e in h.log if isinstance(e, Send | Emit | UpdateProfile | CallWebhook)
    ]
    assert len(keys) == len(set(keys))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(person=st.sampled_from(["ana", "ben", "chloe", "dev", "eli"]), steps=actions)
def test_any_sequence_keeps_the_invariants_and_replays_identically(
    person: str, steps: list[tuple[Any, ...]]
) -> None:
    first = play(person, steps)
    second = play(person, steps)
    assert first.transitions == second.transitions
    assert first.log == second.log
