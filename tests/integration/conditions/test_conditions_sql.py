"""The SQL condition compiler through the real `Database` (async engines) on SQLite and
PostgreSQL: backfill-style queries, counts, re-running at a later `now_ms`, event filters."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from legato.domain.conditions import parse_condition, parse_event_filters
from legato.store.conditions_sql import (
    condition_clause,
    count_matching_profiles,
    event_filter_clause,
    matching_profile_ids,
)
from legato.store.database import Database
from legato.store.segments import computed_trait_values, segment_members
from legato.store.tables import events, profiles

DAY = 86_400_000
NOW = 1_767_603_600_000
WS, OTHER = "w" * 26, "o" * 26


def profile(
    pid: str, traits: dict[str, Any], workspace: str = WS, merged_into: str | None = None
) -> dict[str, Any]:
    return {
        "id": pid,
        "workspace_id": workspace,
        "traits": traits,
        "trait_times": {},
        "first_seen_ms": 0,
        "last_seen_ms": 0,
        "event_count": 0,
        "created_ms": 0,
        "updated_ms": 0,
        "merged_into": merged_into,
    }


def event(
    pid: str, name: str, offset: int, props: dict[str, Any], workspace: str = WS
) -> dict[str, Any]:
    return {
        "workspace_id": workspace,
        "message_id": f"{pid}-{name}-{offset}-{workspace[0]}",
        "partition": 0,
        "type": "track",
        "event": name,
        "profile_id": pid,
        "timestamp_ms": NOW + offset,
        "received_ms": NOW + offset,
        "payload": {"event": name, "properties": props},
    }


async def seed(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            profiles.insert(),
            [
                profile(
                    "ana", {"country": "ES", "plan": "pro", "signup_at": "2026-01-01T10:00:00Z"}
                ),
                profile("bob", {"country": "MX", "plan": "free"}),
                profile("cai", {"country": "FR", "address": {"city": "Paris"}}),
                profile("dee", {"country": "US"}),
                profile("old", {"country": "ES"}, merged_into="ana"),
                profile("zed", {"country": "ES"}, workspace=OTHER),
            ],
        )
        await conn.execute(
            events.insert(),
            [
                event("ana", "Order Completed", -20 * DAY, {"revenue": 120}),
                event("ana", "Order Completed", -2 * DAY, {"revenue": 30}),
                event("bob", "Order Completed", -40 * DAY, {"revenue": 500}),
                event("bob", "Order Completed", -3 * DAY, {"revenue": 80}),
                event("cai", "Order Completed", -1 * DAY, {"revenue": 60}),
                event("old", "Order Completed", -1 * DAY, {"revenue": 60}),
                event("zed", "Order Completed", -1 * DAY, {"revenue": 60}, workspace=OTHER),
                event("zed", "Order Completed", -2 * DAY, {"revenue": 60}, workspace=OTHER),
                event("dee", "Segment Entered", -3 * DAY, {"segment": "vip"}),
            ],
        )
        await conn.execute(
            segment_members.insert(),
            [
                {
                    "workspace_id": WS,
                    "segment_key": "vip",
                    "profile_id": "dee",
                    "entered_ms": NOW - 3 * DAY,
                }
            ],
        )
        await conn.execute(
            computed_trait_values.insert(),
            [
                {"workspace_id": WS, "key": "ltv", "profile_id": pid, "value": value}
                | {"state": {}, "due_ms": None, "updated_ms": NOW}
                for pid, value in (("ana", 150), ("bob", 580), ("cai", 60))
            ],
        )


async def ids(db: Database, shape: dict[str, Any], now: int = NOW) -> list[str]:
    query = matching_profile_ids(
        parse_condition(shape), dialect=db.dialect, workspace_id=WS, now_ms=now
    )
    async with db.connect() as conn:
        return list((await conn.execute(query)).scalars())


REPEAT_BUYERS = {
    "all": [
        {"event": "Order Completed", "count": {"gte": 2}, "within": "30d"},
        {"trait": "country", "in": ["ES", "MX", "FR"]},
    ]
}


async def test_the_issue_segment_selects_its_members(database: Database) -> None:
    await seed(database)
    assert await ids(database, REPEAT_BUYERS) == ["ana"]  # bob's first order is 40 days old
    cond = parse_condition(REPEAT_BUYERS)
    counted = count_matching_profiles(cond, dialect=database.dialect, workspace_id=WS, now_ms=NOW)
    async with database.connect() as conn:
        assert (await conn.execute(counted)).scalar_one() == 1
        # The same statement, re-run later: ana's older order has left the window.
        query = matching_profile_ids(cond, dialect=database.dialect, workspace_id=WS, now_ms=NOW)
        later = (await conn.execute(query.params(now_ms=NOW + 10 * DAY + 1))).scalars().all()
        assert later == []


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"event": "Order Completed", "where": [{"property": "revenue", "gte": 100}]}, ["ana", "bob"]),
    ({"event": "Order Completed", "performed": False, "within": "2d"}, ["ana", "bob", "dee"]),
    ({"event": "Order Completed", "last_performed": {"within_last": "2d"}}, ["cai"]),
    ({"event": "Order Completed", "first_performed": {"before": "2025-12-01"}}, ["bob"]),
    (
        {
            "event": "Segment Entered",
            "where": [{"property": "segment", "eq": "vip"}],
            "within": "7d",
        },
        ["dee"],
    ),
    ({"trait": "address.city", "eq": "Paris"}, ["cai"]),
    ({"trait": "signup_at", "within_last": "7d"}, ["ana"]),
    ({"trait": "plan", "ne": "pro"}, ["bob", "cai", "dee"]),
    ({"computed_trait": "ltv", "gt": 100}, ["ana", "bob"]),
    ({"not": {"computed_trait": "ltv", "exists": True}}, ["dee"]),
    ({"segment": "vip"}, ["dee"]),
    ({"random_bucket": {"percent": 100}}, ["ana", "bob", "cai", "dee"]),
    ({"any": []}, []),
]


async def test_leaves_on_real_data(database: Database) -> None:
    await seed(database)
    for shape, expected in CASES:
        assert await ids(database, shape) == expected, shape


async def test_a_clause_composes_into_other_queries(database: Database) -> None:
    await seed(database)
    person = profiles.alias("person")
    clause = condition_clause(
        parse_condition({"trait": "country", "eq": "ES"}),
        dialect=database.dialect,
        workspace_id=WS,
        now_ms=NOW,
        profile=person,
    )
    query = sa.select(person.c.id).where(person.c.workspace_id == WS, clause).order_by(person.c.id)
    async with database.connect() as conn:
        assert (await conn.execute(query)).scalars().all() == ["ana", "old"]


async def test_event_filters_select_single_events(database: Database) -> None:
    await seed(database)
    where = parse_event_filters([{"property": "revenue", "between": [60, 120]}])
    query = (
        sa.select(events.c.profile_id)
        .where(events.c.workspace_id == WS, event_filter_clause(where, dialect=database.dialect))
        .order_by(events.c.profile_id)
    )
    async with database.connect() as conn:
        assert (await conn.execute(query)).scalars().all() == ["ana", "bob", "cai", "old"]
