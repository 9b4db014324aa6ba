"""The demo's live moment and audience: they match what the example journeys read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from legato.demo.audience import COMPUTED_TRAITS, LAPSED_CONDITION, LAPSED_KEY
from legato.demo.dataset import DemoSpec, customer_user_id, generate
from legato.demo.live import live_moment
from legato.domain.conditions import parse_condition
from legato.domain.messages import normalise, parse_instant
from legato.domain.segments import ComputedTrait

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "journeys"
NOW = 1_767_603_600_000  # 2026-01-05T09:00:00Z
SPEC = DemoSpec(NOW, customers=200, days=30, seed=7)


def _examples() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]


def _event_names(node: Any) -> set[str]:
    """Every event name a journey document mentions (trigger, conditions, waits, goals)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "event" and isinstance(value, str):
                found.add(value)
            found |= _event_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= _event_names(value)
    return found


def test_the_live_moment_triggers_every_example_journey() -> None:
    names = {m.get("event") for m in live_moment(SPEC)}
    for journey in _examples():
        trigger = journey["trigger"]
        if "segment" in trigger:
            assert trigger["segment"] == LAPSED_KEY, journey["key"]
        else:
            assert trigger["event"] in names, journey["key"]


def test_the_live_moment_answers_what_the_journeys_wait_for() -> None:
    names = {m.get("event") for m in live_moment(SPEC)}
    mentioned = set().union(*(_event_names(j) for j in _examples()))
    emitted_by_journeys = {"Lead Routing Failed"}
    # Answers to what a journey sends (an invitation, a sales call) come from real people.
    answers = {"VIP Invitation Accepted", "Demo Booked"}
    missing = mentioned - names - emitted_by_journeys - answers
    assert missing == set(), missing


def test_the_live_moment_is_well_formed_recent_and_reproducible() -> None:
    moment = live_moment(SPEC)
    assert moment == live_moment(SPEC)
    assert live_moment(DemoSpec(NOW + 60_000, 200, 30, 7))[0]["messageId"] != moment[0]["messageId"]
    outcome = normalise(
        moment,
        kind="batch",
        workspace_id="ws",
        received_ms=NOW,
        partitions=8,
        new_message_id=lambda: pytest.fail("every message has its own messageId"),
    )
    assert outcome.rejected == []
    times = [parse_instant(m["timestamp"], "timestamp") for m in moment]
    assert times == sorted(times)
    assert all(NOW - 31 * 60_000 <= t <= NOW for t in times)
    assert len({m["messageId"] for m in moment}) == len(moment)


def test_the_live_moment_is_done_by_customers_of_the_dataset() -> None:
    known = {customer_user_id(i, SPEC.seed) for i in range(SPEC.customers)}
    history = {m.get("userId") for batch in generate(SPEC) for m in batch}
    users = {m["userId"] for m in live_moment(SPEC)}
    new = {u for u in users if u.startswith("cus_live")}
    assert users - new <= known
    assert (users - new) & history  # people with a past, not strangers
    assert len(new) == 3


def test_calls_carry_what_the_contact_centre_split_reads() -> None:
    calls = [m["properties"] for m in live_moment(SPEC) if m.get("event") == "Call Completed"]
    pairs = {(c["intent"], c["outcome"]) for c in calls}
    assert ("delivery", "callback_scheduled") in pairs
    assert ("upgrade", "callback_scheduled") in pairs
    assert any(c["outcome"] == "abandoned" for c in calls)
    assert all(c["call_id"].startswith("call_") for c in calls)


@pytest.mark.parametrize("document", COMPUTED_TRAITS, ids=lambda d: str(d["key"]))
def test_the_computed_traits_are_valid_documents(document: dict[str, Any]) -> None:
    trait = ComputedTrait.model_validate(document)
    mentioned = {
        c.get("computed_trait") for j in _examples() for c in _conditions(j) if isinstance(c, dict)
    }
    assert trait.key in mentioned


def _conditions(node: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(node, dict):
        out.append(node)
        for value in node.values():
            out += _conditions(value)
    elif isinstance(node, list):
        for value in node:
            out += _conditions(value)
    return out


def test_the_lapsed_segment_condition_parses() -> None:
    parse_condition(LAPSED_CONDITION, "$.condition")
