"""The segments admin API in process (HTTP through ASGI), on SQLite and PostgreSQL: create,
update and delete segments and computed traits, members page by page, count, history, CSV
export, static uploads, the profile API's `computed_traits` beside `segments`, and bad input
refused with 422 naming the JSON path."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest

from legato.api import create_api
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT
from tests.integration.segments.conftest import DAY, T0, World


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(world.legato, manage_lifecycle=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://t",
        headers={"Authorization": f"Bearer {world.admin_key}"},
    ) as http:
        yield http


async def _people(world: World) -> None:
    for user, country, revenues in (
        ("ana", "ES", [60, 45]),
        ("bob", "US", [500]),
        ("cy", "ES", []),
        ("di", "FR", [5, 5, 5]),
    ):
        await world.identify(user, country=country, email=f"{user}@x.io")
        for revenue in revenues:
            await world.track(user, "Order Completed", revenue=revenue)
    await world.settle()


async def test_create_update_delete_through_the_api(
    world: World, client: httpx.AsyncClient
) -> None:
    await _people(world)
    trait = await client.put(
        "/api/v1/computed-traits/ltv",
        json={"aggregate": "sum", "event": "Order Completed", "property": "revenue"},
    )
    assert trait.status_code == 200, trait.text
    assert trait.json()["created"] is True
    created = await client.put(
        "/api/v1/segments/spain",
        json={"name": "Spain", "condition": {"trait": "country", "eq": "ES"}},
    )
    assert created.status_code == 200, created.text
    assert created.json() == {
        "key": "spain", "created": True, "version": 1, "members": 2, "entered": 0, "exited": 0,
    }  # fmt: skip
    shown = (await client.get("/api/v1/segments/spain")).json()
    assert (shown["name"], shown["state"], shown["members"]) == ("Spain", "live", 2)

    # An edit backfills again and logs the difference as Segment Entered / Exited.
    updated = await client.put(
        "/api/v1/segments/spain",
        json={"condition": {"all": [{"trait": "country", "in": ["ES", "FR"]},
                                    {"computed_trait": "ltv", "gte": 15}]}},
    )  # fmt: skip
    assert updated.json() | {"members": None} == {
        "key": "spain", "created": False, "version": 2, "members": None, "entered": 1, "exited": 1,
    }  # fmt: skip
    assert await world.members("spain") == {"ana", "di"}
    assert sorted((e[0], e[1]) for e in await world.segment_events()) == [
        (SEGMENT_ENTERED_EVENT, "spain"),
        (SEGMENT_EXITED_EVENT, "spain"),
    ]
    cy = await world.profile_of("cy")
    history = (await client.get(f"/api/v1/profiles/{cy}/segment-history")).json()
    assert [(h["segment"], h["entered"]) for h in history] == [("spain", False)]

    # The profile API shows computed_traits beside segments.
    ana = await world.profile_of("ana")
    profile = (await client.get(f"/api/v1/profiles/{ana}")).json()
    assert profile["computed_traits"] == {"ltv": 105}
    assert profile["segments"] == ["spain"]
    assert profile["traits"]["country"] == "ES"

    # A computed trait or segment that another segment reads cannot go first.
    assert (await client.delete("/api/v1/computed-traits/ltv")).status_code == 409
    assert (await client.delete("/api/v1/segments/spain")).status_code == 204
    assert (await client.get("/api/v1/segments/spain")).status_code == 404
    assert (await client.delete("/api/v1/segments/spain")).status_code == 404
    assert (await client.delete("/api/v1/computed-traits/ltv")).status_code == 204
    assert (await client.get("/api/v1/computed-traits/ltv")).status_code == 404
    assert (await client.get(f"/api/v1/profiles/{ana}")).json()["computed_traits"] == {}


async def test_members_pages_count_export_and_upload(
    world: World, client: httpx.AsyncClient
) -> None:
    await _people(world)
    await client.put("/api/v1/segments/all", json={"condition": {"trait": "email", "exists": True}})
    pages: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/segments/all/members", params=params)).json()
        pages.append(",".join(m["profile_id"] for m in page["members"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = ",".join(pages).split(",")
    assert len(ids) == 4 and ids == sorted(ids) and len(pages) == 2
    assert (await client.get("/api/v1/segments/all/count")).json() == {"count": 4}
    exported = await client.get("/api/v1/segments/all/export.csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["profile_id", "user_id", "entered_ms"]
    assert sorted(r[1] for r in rows[1:]) == ["ana", "bob", "cy", "di"]
    assert [r[0] for r in rows[1:]] == ids

    await client.put("/api/v1/segments/picked", json={"static": True})
    upload = await client.post(
        "/api/v1/segments/picked/upload",
        files={"file": ("p.csv", b"email,user_id\nANA@x.io,\n,di\n,nobody\n", "text/csv")},
    )
    assert upload.json() == {"members": 2, "matched": 2, "unmatched": 1}
    assert await world.members("picked") == {"ana", "di"}
    again = await client.post(
        "/api/v1/segments/picked/upload", files={"file": ("p.csv", b"user_id\nbob\n", "text/csv")}
    )
    assert again.json()["members"] == 1
    assert await world.members("picked") == {"bob"}
    # Uploads log entries and exits like any membership change.
    logged = [(e[0], e[1]) for e in await world.segment_events() if e[1] == "picked"]
    assert sorted(logged) == [
        *[(SEGMENT_ENTERED_EVENT, "picked")] * 3,
        *[(SEGMENT_EXITED_EVENT, "picked")] * 2,
    ]
    refused = await client.post(
        "/api/v1/segments/all/upload", files={"file": ("p.csv", b"user_id\nbob\n", "text/csv")}
    )
    assert refused.status_code == 422
    headerless = await client.post(
        "/api/v1/segments/picked/upload", files={"file": ("p.csv", b"name\nbob\n", "text/csv")}
    )
    assert headerless.status_code == 422 and headerless.json()["field"] == "file"


BAD_SEGMENTS = [
    ({"condition": {"all": [{"trait": "a", "eq": 1}, {"trait": "b", "gte": [1]}]}},
     "$.condition.all[1].gte", "number or a string"),
    ({"condition": {"trait": "a", "type": "datetime", "eq": 1}}, "$.condition.type",
     "unknown type"),
    ({"condition": {"not": {"segment": "nope"}}}, "$.condition.not.segment", "unknown segment"),
    ({"condition": {"computed_trait": "nope", "gt": 1}}, "$.condition.computed_trait",
     "unknown computed trait"),
    ({"condition": {"segment": "probe"}}, "$.condition.segment", "refers to itself"),
    ({"condition": {"event": "E", "within": "40000d"}}, "$.condition.within", "36500d"),
    ({"condition": {"trait": "a", "in": list(range(1001))}}, "$.condition.in", "1000"),
    ({"condition": {"trait": "a", "starts_with": "x" * 1001}}, "$.condition.starts_with", "1000"),
    ({"key": "other", "condition": {"trait": "a", "exists": True}}, "$.key", "differs"),
    ({}, "$", "needs a condition"),
]  # fmt: skip


async def test_bad_segments_are_refused_with_the_json_path(
    world: World, client: httpx.AsyncClient
) -> None:
    for body, path, message in BAD_SEGMENTS:
        answer = await client.put("/api/v1/segments/probe", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["path"] == path, (body, answer.json())
        assert message in answer.json()["message"], (body, answer.json())
    deep: dict[str, object] = {"trait": "a", "exists": True}
    for _ in range(20):
        deep = {"not": deep}
    answer = await client.put("/api/v1/segments/probe", json={"condition": deep})
    assert answer.status_code == 422 and "16 levels" in answer.json()["message"]
    # A cycle through two saved segments.
    await client.put("/api/v1/segments/a", json={"condition": {"trait": "x", "exists": True}})
    await client.put("/api/v1/segments/b", json={"condition": {"segment": "a"}})
    cyclic = await client.put("/api/v1/segments/a", json={"condition": {"segment": "b"}})
    assert cyclic.status_code == 422
    assert cyclic.json()["path"] == "$.condition.segment"
    assert "a -> b -> a" in cyclic.json()["message"]
    bad_trait = await client.put(
        "/api/v1/computed-traits/t", json={"aggregate": "median", "event": "E"}
    )
    assert bad_trait.status_code == 422 and bad_trait.json()["path"] == "$.aggregate"
    assert (await client.get("/api/v1/segments")).json()[0]["key"] == "a"


async def test_entering_a_segment_is_an_event_conditions_can_read(world: World) -> None:
    """Everything is an event: "entered segment buyers in the last 7 days" is a plain event
    condition over the internal Segment Entered events, kept live and lapsing on time."""
    await world.apply(
        """
kind: Segment
key: buyers
condition: {event: Order Completed}
---
kind: Segment
key: new_buyers
condition:
  event: Segment Entered
  where: [{property: segment, eq: buyers}]
  within: 7d
"""
    )
    await world.track("ana", "Order Completed")
    await world.track("bob", "Page Viewed")
    await world.settle()
    assert await world.members("new_buyers") == {"ana"}
    await world.advance_to(T0 + 7 * DAY - 1)
    assert await world.members("new_buyers") == {"ana"}
    await world.advance_to(T0 + 8 * DAY)
    assert await world.members("new_buyers") == set()
    assert await world.members("buyers") == {"ana"}
    assert [(e[0], e[1], e[3]) for e in await world.segment_events()] == [
        (SEGMENT_ENTERED_EVENT, "buyers", T0),
        (SEGMENT_ENTERED_EVENT, "new_buyers", T0),
        (SEGMENT_EXITED_EVENT, "new_buyers", T0 + 7 * DAY),
    ]
