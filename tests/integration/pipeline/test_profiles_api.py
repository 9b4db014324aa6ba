"""The profiles admin API over HTTP (in process), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from legato.api import create_api
from tests.integration.pipeline.conftest import T0, World, message


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    await world.send(
        message("track", anon="a1", at=T0, event="Viewed"),
        message("identify", user="u1", anon="a1", at=T0 + 1,
                traits={"email": "Ann@X.io", "phone": "+1 415 555 2671", "plan": "pro"}),
        message("group", user="u1", at=T0 + 2, groupId="acme", traits={"name": "Acme"}),
        message("identify", user="u2", at=T0 + 3, traits={"plan": "free"}),
    )  # fmt: skip
    await world.drain()
    api = create_api(world.legato, manage_lifecycle=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://t",
        headers={"Authorization": f"Bearer {world.admin_key}"},
    ) as http:
        yield http


LOOKUPS = [
    {"user_id": "u1"},
    {"anonymous_id": "a1"},
    {"email": "ann@x.IO"},
    {"phone": "(415) 555-2671"},
    {"kind": "email", "value": "ann@x.io"},
]

# (path, query, status, the field the error names). One client for the whole table: the
# database set-up is the slow part.
BAD_REQUESTS = [
    ("/api/v1/profiles/lookup", {}, 422, "user_id"),
    ("/api/v1/profiles/lookup", {"user_id": "u1", "email": "a@x.io"}, 422, "user_id"),
    ("/api/v1/profiles/lookup", {"kind": "crm_id"}, 422, "kind"),
    ("/api/v1/profiles/lookup", {"email": "nope"}, 422, "email"),
    ("/api/v1/profiles/lookup", {"phone": "12"}, 422, "phone"),
    ("/api/v1/profiles/lookup", {"user_id": "u404"}, 404, "user_id"),
    ("/api/v1/profiles/nope", {}, 404, "id"),
    ("/api/v1/profiles/nope/events", {}, 404, "id"),
    ("/api/v1/profiles", {"colour": "red"}, 422, "colour"),
    ("/api/v1/profiles", {"cursor": "%%%"}, 422, "cursor"),
    ("/api/v1/profiles", {"cursor": "ZTox"}, 422, "cursor"),
    ("/api/v1/profiles", {'trait.a"b': "1"}, 422, 'trait.a"b'),
    ("/api/v1/profiles", {"limit": "0"}, 422, None),
]


async def test_lookup_by_any_identifier(client: httpx.AsyncClient) -> None:
    for query in LOOKUPS:
        answer = await client.get("/api/v1/profiles/lookup", params=query)
        assert answer.status_code == 200, (query, answer.text)
        body = answer.json()
        assert body["event_count"] == 3 and body["traits"]["plan"] == "pro"
        assert {(i["kind"], i["value"]) for i in body["identities"]} == {
            ("anonymous_id", "a1"),
            ("user_id", "u1"),
            ("email", "ann@x.io"),
            ("phone", "+14155552671"),
        }
        assert body["groups"] == [
            {"group_id": "acme", "traits": {"name": "Acme"}, "joined_ms": T0 + 2}
        ]
        assert body["first_seen_ms"] == T0 and body["last_seen_ms"] == T0 + 2
        again = await client.get(f"/api/v1/profiles/{body['id']}")
        assert again.json() == body


async def test_bad_requests_name_the_field(client: httpx.AsyncClient) -> None:
    for path, params, status, field in BAD_REQUESTS:
        answer = await client.get(path, params=params)
        assert answer.status_code == status, (path, params, answer.text)
        assert answer.json().get("field") == field or field is None, (path, params)


async def test_list_pages_and_filters_by_trait(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/v1/profiles", params={"limit": 1})).json()
    assert len(first["profiles"]) == 1 and first["next_cursor"]
    second = (
        await client.get("/api/v1/profiles", params={"limit": 1, "cursor": first["next_cursor"]})
    ).json()
    assert second["next_cursor"] is None
    ids = {first["profiles"][0]["id"], second["profiles"][0]["id"]}
    assert len(ids) == 2
    pro = (await client.get("/api/v1/profiles", params={"trait.plan": "pro"})).json()
    assert [p["traits"]["plan"] for p in pro["profiles"]] == ["pro"]


async def test_events_newest_first_with_cursor(client: httpx.AsyncClient) -> None:
    person = (await client.get("/api/v1/profiles/lookup", params={"user_id": "u1"})).json()
    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"/api/v1/profiles/{person['id']}/events", params=params)).json()
        seen.extend((e["type"], e["timestamp_ms"]) for e in page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [("group", T0 + 2), ("identify", T0 + 1), ("track", T0)]


async def test_admin_key_required(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/profiles", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401


def test_openapi_documents_the_profile_routes(world: World) -> None:
    schema = create_api(world.legato, manage_lifecycle=False).openapi()
    profile = schema["components"]["schemas"]["Profile"]
    assert {
        "id",
        "identities",
        "traits",
        "groups",
        "first_seen_ms",
        "last_seen_ms",
        "event_count",
        "merged_from",
    } <= set(profile["properties"])
    paths = schema["paths"]

    def documented(path: str) -> tuple[set[str], str]:
        operation = paths[path]["get"]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        return {p["name"] for p in operation.get("parameters", [])}, answer["$ref"].split("/")[-1]

    assert documented("/api/v1/profiles/{profile_id}") == ({"profile_id"}, "ProfileDetail")
    assert documented("/api/v1/profiles/lookup") == (
        {"user_id", "anonymous_id", "email", "phone", "kind", "value"},
        "ProfileDetail",
    )
    assert documented("/api/v1/profiles/{profile_id}/events") == (
        {"profile_id", "limit", "cursor"},
        "EventPage",
    )
    assert documented("/api/v1/profiles") == ({"limit", "cursor", "trait"}, "ProfilePage")
    assert documented("/api/v1/rejections") == ({"limit", "before"}, "RejectionPage")
    rejection = schema["components"]["schemas"]["Rejection"]["properties"]
    assert {"index", "reason", "field", "payload", "received_ms"} <= set(rejection)


async def test_trait_filter_in_the_documented_deep_object_form(client: httpx.AsyncClient) -> None:
    # What the interactive docs send for the `trait` parameter (style deepObject).
    pro = (await client.get("/api/v1/profiles", params={"trait[plan]": "pro"})).json()
    assert [p["traits"]["plan"] for p in pro["profiles"]] == ["pro"]
    both = await client.get("/api/v1/profiles", params={"trait[plan]": "pro", "trait.plan": "x"})
    assert both.status_code == 422 and both.json()["field"] == "trait.plan"
