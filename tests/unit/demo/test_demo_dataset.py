"""The demo dataset: deterministic, valid for ingestion, sized as promised, and believable."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from legato.demo.dataset import (
    DAY_MS,
    ERP_SOURCE_ID,
    LAPSED_AFTER_DAYS,
    VIP_MIN_ORDERS,
    DemoSpec,
    Message,
    estimated_messages,
    generate,
)
from legato.demo.locales import COUNTRIES
from legato.domain.messages import normalise, parse_instant
from legato.errors import InvalidInput

NOW_MS = 1_767_600_000_000
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
EMAIL = re.compile(r"^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]{2,}$")


def ms(message: Message) -> int:
    return parse_instant(message["timestamp"], "timestamp")


def first(spec: DemoSpec, n: int) -> list[Message]:
    return list(itertools.islice((m for b in generate(spec, 250) for m in b), n))


def full_identifies(dataset: list[Message]) -> dict[str, dict[str, Any]]:
    """userId -> traits of the identify that carried the full set (email and name)."""
    return {
        m["userId"]: m["traits"]
        for m in dataset
        if m["type"] == "identify" and "first_name" in m["traits"]
    }


def orders_by_user(dataset: list[Message]) -> Counter[str]:
    return Counter(m["userId"] for m in dataset if m.get("event") == "Order Completed")


# -- determinism ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_messages() -> None:
    spec = DemoSpec(now_ms=NOW_MS, customers=300, days=60, seed=11)
    one, two = first(spec, 3000), first(spec, 3000)
    assert len(one) == 3000
    assert orjson.dumps(one) == orjson.dumps(two)


def test_the_same_seed_gives_the_same_messages_in_another_process() -> None:
    """Nothing depends on the order of a set or on str hashes (randomised per process)."""
    script = (
        "import hashlib, orjson\n"
        "from legato.demo.dataset import DemoSpec, generate\n"
        f"spec = DemoSpec(now_ms={NOW_MS}, customers=200, days=40, seed=11)\n"
        "print(hashlib.sha256(orjson.dumps([b for b in generate(spec)])).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    spec = DemoSpec(now_ms=NOW_MS, customers=200, days=40, seed=11)
    here = hashlib.sha256(orjson.dumps(list(generate(spec)))).hexdigest()
    assert digests == {here}


@pytest.mark.parametrize(
    "other",
    [
        DemoSpec(now_ms=NOW_MS, customers=300, days=60, seed=12),
        DemoSpec(now_ms=NOW_MS + DAY_MS, customers=300, days=60, seed=11),
    ],
    ids=["another seed", "another now"],
)
def test_another_seed_or_now_gives_other_messages(other: DemoSpec) -> None:
    base = first(DemoSpec(now_ms=NOW_MS, customers=300, days=60, seed=11), 500)
    assert orjson.dumps(first(other, 500)) != orjson.dumps(base)


# -- validity ------------------------------------------------------------------------------


def test_every_message_passes_the_ingestion_validator(small_dataset: list[Message]) -> None:
    outcome = normalise(
        small_dataset,
        kind="batch",
        workspace_id="ws",
        received_ms=NOW_MS,
        partitions=8,
        new_message_id=lambda: pytest.fail("every message has its own messageId"),
    )
    assert outcome.rejected == []
    assert len(outcome.rows) == len(small_dataset)
    # The timestamp is the event's, not the time of ingestion.
    assert {r.timestamp_ms for r in outcome.rows[:50]} != {NOW_MS}


def test_message_ids_are_unique(small_dataset: list[Message]) -> None:
    ids = [m["messageId"] for m in small_dataset]
    assert len(set(ids)) == len(ids)


def test_messages_are_in_time_order_inside_the_window(
    small_dataset: list[Message], small_spec: DemoSpec
) -> None:
    stamps = [ms(m) for m in small_dataset]
    assert stamps == sorted(stamps)
    assert small_spec.start_ms <= stamps[0]
    assert stamps[-1] <= small_spec.now_ms
    # The whole window is used, not a corner of it.
    assert stamps[0] < small_spec.start_ms + DAY_MS
    assert stamps[-1] > small_spec.now_ms - DAY_MS


def test_messages_have_the_shape_sdks_send(small_dataset: list[Message]) -> None:
    for m in small_dataset:
        assert m["type"] in {"identify", "track", "page", "screen"}
        assert m.get("userId") or m.get("anonymousId"), m
        assert isinstance(m["context"]["library"]["name"], str)
        if m["type"] == "track":
            assert m["event"] and isinstance(m["properties"], dict)
        elif m["type"] == "identify":
            assert m["userId"] and m["traits"]
        else:
            assert m["name"] and isinstance(m["properties"], dict)


@pytest.mark.parametrize("batch_size", [1, 100, 1000])
def test_batches_hold_at_most_batch_size_messages(batch_size: int) -> None:
    spec = DemoSpec(now_ms=NOW_MS, customers=40, days=20, seed=3)
    batches = list(generate(spec, batch_size))
    assert all(0 < len(b) <= batch_size for b in batches)
    assert all(len(b) == batch_size for b in batches[:-1])
    assert sum(map(len, batches)) == len(first(spec, 10**6))


# -- volume --------------------------------------------------------------------------------


def test_the_default_size_meets_the_promise() -> None:
    spec = DemoSpec(now_ms=NOW_MS)
    assert (spec.customers, spec.days, spec.seed) == (10_000, 90, 7)
    assert estimated_messages(spec.customers, spec.days) >= 220_000


@pytest.mark.parametrize(
    ("customers", "days"), [(800, 90), (500, 90), (500, 30), (400, 180), (500, 7), (500, 60)]
)
def test_volume_follows_the_scaling_formula(customers: int, days: int) -> None:
    spec = DemoSpec(now_ms=NOW_MS, customers=customers, days=days, seed=5)
    count = sum(len(b) for b in generate(spec))
    estimate = estimated_messages(customers, days)
    assert abs(count - estimate) / estimate < 0.15, (count, estimate)


def test_every_customer_is_identified_and_visitors_stay_anonymous(
    small_dataset: list[Message], small_spec: DemoSpec
) -> None:
    known = full_identifies(small_dataset)
    # A signup may fall in the last minutes before `now` and be cut: allow a handful.
    assert small_spec.customers * 0.99 <= len(known) <= small_spec.customers
    linked = {m["anonymousId"] for m in small_dataset if m.get("userId") and "anonymousId" in m}
    anonymous_only = {m["anonymousId"] for m in small_dataset if "anonymousId" in m} - linked
    anonymous_only.discard(ERP_SOURCE_ID)
    assert len(anonymous_only) >= small_spec.visitors


# -- people --------------------------------------------------------------------------------


def test_traits_are_complete_and_well_formed(small_dataset: list[Message]) -> None:
    known = full_identifies(small_dataset)
    codes = {c.code for c in COUNTRIES}
    emails = [t["email"] for t in known.values()]
    phones = [t["phone"] for t in known.values()]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)
    for traits in known.values():
        assert EMAIL.match(traits["email"]), traits["email"]
        assert E164.match(traits["phone"]), traits["phone"]
        assert traits["country"] in codes
        assert traits["first_name"] and traits["last_name"] and traits["city"]
        assert re.match(r"^[a-z]{2}-[A-Z]{2}$", traits["locale"])
        assert "/" in traits["timezone"]
        assert traits["loyalty_tier"] in {"member", "silver", "gold", "platinum"}
        assert parse_instant(traits["created_at"], "created_at") <= NOW_MS
    with_crm = sum(1 for t in known.values() if "crm_id" in t)
    assert 0.4 < with_crm / len(known) < 0.8


def test_countries_follow_their_weights(small_dataset: list[Message]) -> None:
    countries = Counter(t["country"] for t in full_identifies(small_dataset).values())
    ranked = [code for code, _ in countries.most_common()]
    assert ranked[0] == "ES"
    assert set(ranked[:4]) >= {"ES", "MX"}
    assert len(countries) >= 6


def test_anonymous_browsing_becomes_identified(small_dataset: list[Message]) -> None:
    """Events of a device before its identify carry only the anonymousId; later ones both."""
    first_seen: dict[str, int] = {}
    identified_at: dict[str, int] = {}
    devices: defaultdict[str, set[str]] = defaultdict(set)
    for i, m in enumerate(small_dataset):
        anon = m.get("anonymousId")
        if anon is None or anon == ERP_SOURCE_ID:
            continue
        first_seen.setdefault(anon, i)
        if m["type"] == "identify":
            identified_at.setdefault(anon, i)
            devices[m["userId"]].add(anon)
    browsed_first = [a for a, i in identified_at.items() if first_seen[a] < i]
    assert len(browsed_first) > 100
    signups = [m for m in small_dataset if m.get("event") == "Signed Up"]
    assert len(signups) > 100
    # Several devices per person: their profiles must be merged.
    assert sum(1 for anons in devices.values() if len(anons) >= 2) > 30


def test_vip_lapsed_repeat_and_one_time_buyers_exist(
    small_dataset: list[Message], small_spec: DemoSpec
) -> None:
    orders = orders_by_user(small_dataset)
    last_seen: dict[str, int] = {}
    for m in small_dataset:
        if m.get("userId"):
            last_seen[m["userId"]] = ms(m)
    lapsed_before = small_spec.now_ms - LAPSED_AFTER_DAYS * DAY_MS
    vips = [u for u, n in orders.items() if n >= VIP_MIN_ORDERS]
    lapsed = [u for u in orders if last_seen[u] < lapsed_before]
    repeat = [u for u, n in orders.items() if 2 <= n < VIP_MIN_ORDERS]
    once = [u for u, n in orders.items() if n == 1]
    never = set(full_identifies(small_dataset)) - set(orders)
    customers = small_spec.customers
    assert 0.02 * customers <= len(vips) <= 0.1 * customers
    assert len(lapsed) >= 0.05 * customers
    assert len(repeat) >= 0.02 * customers
    assert len(once) > len(repeat) > 0
    assert len(never) >= 0.3 * customers


def test_activity_is_heavy_tailed(small_dataset: list[Message]) -> None:
    per_user = Counter(m["userId"] for m in small_dataset if m.get("userId"))
    counts = sorted(per_user.values(), reverse=True)
    top_tenth = sum(counts[: len(counts) // 10])
    assert top_tenth > 0.4 * sum(counts)
    assert counts[0] > 10 * counts[len(counts) // 2]


# -- commerce ------------------------------------------------------------------------------


def test_orders_add_up(small_dataset: list[Message]) -> None:
    currencies = {c.code: c.currency for c in COUNTRIES}
    country = {u: t["country"] for u, t in full_identifies(small_dataset).items()}
    orders = [m for m in small_dataset if m.get("event") == "Order Completed"]
    assert orders
    for m in orders:
        p = m["properties"]
        assert "anonymousId" not in m  # the shop's backend knows only the customer
        assert p["products"] and p["order_id"].startswith("ORD-") and p["cart_id"]
        lines = sum(line["price"] * line["quantity"] for line in p["products"])
        assert p["subtotal"] == pytest.approx(lines, abs=0.011)
        assert p["revenue"] == pytest.approx(p["subtotal"] - p["discount"], abs=0.011)
        assert p["total"] == pytest.approx(p["revenue"] + p["shipping"], abs=0.011)
        assert p["currency"] == currencies[country[m["userId"]]]


def test_some_carts_and_checkouts_are_abandoned(small_dataset: list[Message]) -> None:
    added = {m["properties"]["cart_id"] for m in small_dataset if m.get("event") == "Product Added"}
    started = {
        m["properties"]["cart_id"] for m in small_dataset if m.get("event") == "Checkout Started"
    }
    ordered = {
        m["properties"]["cart_id"] for m in small_dataset if m.get("event") == "Order Completed"
    }
    assert ordered <= started <= added
    assert len(started - ordered) > 0.1 * len(started)
    assert len(added - started) > 0.1 * len(added)


def test_stock_updates_tell_one_consistent_story(small_dataset: list[Message]) -> None:
    updates = [m for m in small_dataset if m.get("event") == "Product Stock Updated"]
    assert updates
    stock: dict[str, int] = {}
    reasons = Counter()
    for m in updates:
        assert m["anonymousId"] == ERP_SOURCE_ID and "userId" not in m
        p = m["properties"]
        if p["product_id"] in stock:
            assert p["previous_stock"] == stock[p["product_id"]], p
        assert p["stock"] >= 0 and p["in_stock"] == (p["stock"] > 0)
        if p["reason"] == "restock":
            assert p["stock"] > p["previous_stock"]
        else:
            assert p["stock"] < p["previous_stock"]
        stock[p["product_id"]] = p["stock"]
        reasons[p["reason"]] += 1
    assert reasons["sale"] > 0 and reasons["restock"] > 0


def test_products_carry_catalogue_fields(small_dataset: list[Message]) -> None:
    viewed = [m["properties"] for m in small_dataset if m.get("event") == "Product Viewed"]
    assert {"product_id", "sku", "name", "category", "brand", "price", "currency"} <= set(viewed[0])
    assert len({p["product_id"] for p in viewed}) > 100
    assert len({p["category"].split(" > ")[0] for p in viewed}) >= 6
    assert all(p["price"] > 0 for p in viewed)


# -- service channels ----------------------------------------------------------------------


def test_tickets_open_then_close(small_dataset: list[Message]) -> None:
    opened = {
        m["properties"]["ticket_id"]: m for m in small_dataset if m.get("event") == "Ticket Opened"
    }
    closed = [m for m in small_dataset if m.get("event") == "Ticket Closed"]
    assert opened and closed
    for m in closed:
        p = m["properties"]
        before = opened[p["ticket_id"]]
        assert ms(before) < ms(m) and before["userId"] == m["userId"]
        assert p["priority"] in {"low", "normal", "high", "urgent"}
        assert p["channel"] in {"email", "chat", "whatsapp", "web_form"}
        assert "csat" not in p or p["csat"] in range(1, 6)
    assert any("csat" in m["properties"] for m in closed)


def test_calls_cover_every_intent(small_dataset: list[Message]) -> None:
    calls = [m["properties"] for m in small_dataset if m.get("event") == "Call Completed"]
    assert {c["intent"] for c in calls} == {"billing", "delivery", "mortgage", "upgrade"}
    assert all(c["duration_seconds"] > 0 and c["outcome"] for c in calls)


def test_nps_answers_are_scores_from_0_to_10(small_dataset: list[Message]) -> None:
    scores = [m["properties"]["score"] for m in small_dataset if m.get("event") == "NPS Submitted"]
    assert len(scores) > 20
    assert all(isinstance(s, int) and 0 <= s <= 10 for s in scores)
    assert len(set(scores)) >= 6


#: What the issue asks the demo's history for, as (kind, test of a message).
HISTORY_KINDS: dict[str, Callable[[Message], bool]] = {
    "page views": lambda m: m["type"] in {"page", "screen"},
    "carts": lambda m: m.get("event") == "Product Added",
    "checkouts": lambda m: m.get("event") == "Checkout Started",
    "orders with revenue": lambda m: (
        m.get("event") == "Order Completed" and m["properties"]["revenue"] > 0
    ),
    "products with stock": lambda m: (
        m.get("event") == "Product Stock Updated" and m["properties"]["stock"] >= 0
    ),
    "support tickets": lambda m: m.get("event") in {"Ticket Opened", "Ticket Closed"},
    "contact-centre calls": lambda m: m.get("event") == "Call Completed",
    "NPS answers": lambda m: m.get("event") == "NPS Submitted",
}


def test_every_kind_of_event_runs_through_the_whole_history(
    small_dataset: list[Message], small_spec: DemoSpec
) -> None:
    # Not only near `now`: each kind happens in every month of the 90 days.
    thirds = 3
    span = small_spec.days * DAY_MS // thirds
    seen: dict[str, set[int]] = {kind: set() for kind in HISTORY_KINDS}
    for m in small_dataset:
        third = (ms(m) - small_spec.start_ms) // span
        for kind, test in HISTORY_KINDS.items():
            if test(m):
                seen[kind].add(third)
    assert {kind: sorted(parts) for kind, parts in seen.items()} == {
        kind: list(range(thirds)) for kind in HISTORY_KINDS
    }


@pytest.mark.slow
def test_the_default_dataset_holds_every_kind_and_the_promised_volume() -> None:
    # The promise for `legato demo` as it runs by default: >=10,000 customers and
    # >=200,000 events over 90 days, every kind of them there.
    spec = DemoSpec(now_ms=NOW_MS)
    counts = dict.fromkeys(HISTORY_KINDS, 0)
    users: set[str] = set()
    total = 0
    for batch in generate(spec, 5_000):
        total += len(batch)
        for m in batch:
            if m["type"] == "identify" and m.get("userId"):
                users.add(m["userId"])
            for kind, test in HISTORY_KINDS.items():
                if test(m):
                    counts[kind] += 1
    assert total >= 200_000
    assert len(users) >= 0.99 * spec.customers
    assert min(counts.values()) >= 500, counts


def test_no_engagement_events_are_invented(small_dataset: list[Message]) -> None:
    names = {m.get("event") for m in small_dataset if m["type"] == "track"}
    assert not {n for n in names if n and re.match(r"^(Email|Message|Push|SMS)\b", n)}


# -- rhythm --------------------------------------------------------------------------------


def test_weekends_and_evenings_are_busier(small_dataset: list[Message]) -> None:
    visits = [m for m in small_dataset if m["type"] in ("page", "screen") and m["name"] == "Home"]
    by_weekday: Counter[int] = Counter()
    by_hour: Counter[int] = Counter()
    for m in visits:
        when = datetime.fromtimestamp(ms(m) / 1000, UTC)
        by_weekday[when.weekday()] += 1
        by_hour[when.hour] += 1
    assert (by_weekday[5] + by_weekday[6]) / 2 > sum(by_weekday[d] for d in range(5)) / 5
    # Most customers live at UTC-6..UTC+1: their evening is busier than their night.
    assert sum(by_hour[h] for h in (18, 19, 20)) > 2 * sum(by_hour[h] for h in (3, 4, 5))


# -- streaming -----------------------------------------------------------------------------


def test_memory_grows_with_people_not_with_events() -> None:
    def peak(days: int) -> tuple[int, int]:
        spec = DemoSpec(now_ms=NOW_MS, customers=80, days=days, seed=2)
        tracemalloc.start()
        try:
            count = sum(len(b) for b in generate(spec, 200))
            return count, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short_count, short_peak = peak(30)
    long_count, long_peak = peak(360)
    assert long_count > 4 * short_count
    assert long_peak < 1.3 * short_peak


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"customers": 2_000_000}, "customers"),
        ({"days": 0}, "days"),
        ({"days": 10_000}, "days"),
    ],
)
def test_bad_sizes_are_refused_naming_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        DemoSpec(now_ms=NOW_MS, **kwargs)
    assert caught.value.details["field"] == field


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match="batch_size"):
        next(generate(DemoSpec(now_ms=NOW_MS, customers=5), 0))
