"""A segment's size over time through the admin API (`GET /segments/{key}/sizes`), on SQLite
and PostgreSQL: one point per UTC day rebuilt from the logged entries and exits, nothing before
the segment existed, the last point equal to the member count, and bad requests refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from legato.api import create_api
from tests.integration.segments.conftest import DAY, T0, World

SPAIN = {"name": "Spain", "condition": {"trait": "country", "eq": "ES"}}


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(world.legato, manage_lifecycle=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://t",
        headers={"Authorization": f"Bearer {world.admin_key}"},
    ) as http:
        yield http


def _points(body: dict[str, Any]) -> list[tuple[str, int | None, int, int]]:
    return [(d["day"], d["members"], d["entered"], d["exited"]) for d in body["days"]]


async def test_sizes_follow_entries_and_exits_day_by_day(
    world: World, client: httpx.AsyncClient
) -> None:
    # 2026-01-05: ana is in Spain when the segment is made (its first backfill logs nothing).
    await world.identify("ana", country="ES")
    await world.identify("bob", country="US")
    await world.settle()
    assert (await client.put("/api/v1/segments/spain", json=SPAIN)).status_code == 200
    # 2026-01-06: two people come in.
    await world.advance_to(T0 + DAY)
    await world.identify("cy", country="ES")
    await world.identify("bob", country="ES")
    await world.settle()
    # 2026-01-07: one leaves, one comes in, one comes in and leaves the same day.
    await world.advance_to(T0 + 2 * DAY)
    await world.identify("ana", country="FR")
    await world.identify("di", country="ES")
    await world.identify("eve", country="ES")
    await world.settle()
    await world.advance_to(T0 + 2 * DAY + 3_600_000)
    await world.identify("eve", country="PT")
    await world.settle()
    # 2026-01-08: nothing happens.
    await world.advance_to(T0 + 3 * DAY)

    answer = await client.get("/api/v1/segments/spain/sizes", params={"days": 6})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["segment"] == "spain"
    assert body["now_ms"] == T0 + 3 * DAY
    assert _points(body) == [
        ("2026-01-03", None, 0, 0),
        ("2026-01-04", None, 0, 0),
        ("2026-01-05", 1, 0, 0),
        ("2026-01-06", 3, 2, 0),
        ("2026-01-07", 3, 2, 2),
        ("2026-01-08", 3, 0, 0),
    ]
    assert [d["start_ms"] for d in body["days"]] == [(T0 // DAY + n) * DAY for n in range(-2, 4)]
    count = (await client.get("/api/v1/segments/spain/count")).json()["count"]
    assert body["days"][-1]["members"] == count == 3
    # The default is 30 days, today last.
    default = (await client.get("/api/v1/segments/spain/sizes")).json()["days"]
    assert len(default) == 30
    assert default[-1]["day"] == "2026-01-08"


async def test_an_edit_counts_and_an_older_segment_of_the_same_key_does_not(
    world: World, client: httpx.AsyncClient
) -> None:
    for user, country in (("ana", "ES"), ("bob", "FR"), ("cy", "FR")):
        await world.identify(user, country=country)
    await world.settle()
    await client.put("/api/v1/segments/spain", json=SPAIN)
    await world.advance_to(T0 + DAY)
    await world.identify("ana", country="IT")  # an exit of the first segment named spain
    await world.settle()
    assert (await client.delete("/api/v1/segments/spain")).status_code == 204
    await world.advance_to(T0 + 2 * DAY)
    await client.put("/api/v1/segments/spain", json=SPAIN)  # made again: nobody is in
    await world.advance_to(T0 + 3 * DAY)
    edited = {"condition": {"trait": "country", "in": ["ES", "FR"]}}
    saved = (await client.put("/api/v1/segments/spain", json=edited)).json()
    assert (saved["entered"], saved["exited"]) == (2, 0)

    body = (await client.get("/api/v1/segments/spain/sizes", params={"days": 4})).json()
    assert _points(body) == [
        ("2026-01-05", None, 0, 0),
        ("2026-01-06", None, 0, 0),
        ("2026-01-07", 0, 0, 0),
        ("2026-01-08", 2, 2, 0),
    ]


@pytest.mark.parametrize(
    ("query", "status", "path"),
    [
        ({"days": 0}, 422, "$.days"),
        ({"days": 367}, 422, "$.days"),
        ({"days": "week"}, 422, "$.days"),
    ],
)
async def test_days_out_of_range_are_refused_naming_days(
    world: World, client: httpx.AsyncClient, query: dict[str, Any], status: int, path: str
) -> None:
    await client.put("/api/v1/segments/spain", json=SPAIN)
    answer = await client.get("/api/v1/segments/spain/sizes", params=query)
    assert answer.status_code == status, answer.text
    assert answer.json()["path"] == path
    assert "days" in answer.json()["message"]


async def test_an_unknown_segment_is_a_404_naming_it(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/segments/nowhere/sizes")
    assert answer.status_code == 404
    assert "nowhere" in answer.json()["message"]


async def test_a_viewer_key_reads_sizes_and_a_write_key_does_not(
    world: World, client: httpx.AsyncClient
) -> None:
    await client.put("/api/v1/segments/spain", json=SPAIN)
    _, viewer = await world.legato.workspaces.create_key(
        world.workspace_id, "admin", "viewer", "console", T0
    )
    _, write = await world.legato.workspaces.create_key(
        world.workspace_id, "write", None, "sdk", T0
    )
    url = "/api/v1/segments/spain/sizes"
    as_viewer = await client.get(url, headers={"Authorization": f"Bearer {viewer}"})
    assert as_viewer.status_code == 200, as_viewer.text
    as_writer = await client.get(url, headers={"Authorization": f"Bearer {write}"})
    assert as_writer.status_code in (401, 403)
    anonymous = await client.get(url, headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_sizes_are_documented_in_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/segments/{segment_key}/sizes"]["get"]
    days = next(p for p in operation["parameters"] if p["name"] == "days")
    assert (days["schema"]["minimum"], days["schema"]["maximum"]) == (1, 366)
    assert "SegmentSizes" in spec["components"]["schemas"]
