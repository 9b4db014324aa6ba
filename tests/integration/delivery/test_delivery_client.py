"""The client API apps call for their user (write key + user id): the in-app inbox (fetch, mark
read, dismiss, live server-sent events) and web personalisation placements."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.delivery.conftest import World

SETUP = """
kind: Template
key: offer
channel: inapp
title: "Free shipping, {{ profile.traits.first_name }}"
body: On your next order
url: https://shop.example/offer
data: {code: "SHIP-{{ trigger.properties.n }}"}
expires_after: 7d
---
kind: Template
key: hero
channel: web
placement: homepage_hero
title: "Welcome back, {{ profile.traits.first_name }}"
body: Your cart is saved
---
kind: Journey
key: offers
trigger: {event: Came Back, key: properties.n}
nodes:
  - {id: inbox, type: message, channel: inapp, template: offer, next: hero}
  - {id: hero, type: message, channel: web, template: hero, next: done}
  - {id: done, type: exit}
"""


async def test_inbox_fetch_read_dismiss_and_placements(world: World) -> None:
    await world.apply(SETUP, publish=True)
    await world.identify("ann", first_name="Ann")
    await world.track("ann", "Came Back", n=1)
    await world.settle()
    async with world.public() as client:
        empty = await client.get("/v1/inbox", params={"userId": "bob"})
        assert empty.json() == {"messages": [], "unread": 0, "next": None}
        box = (await client.get("/v1/inbox", params={"userId": "ann"})).json()
        assert box["unread"] == 1
        (message,) = box["messages"]
        assert (message["title"], message["data"], message["read"]) == (
            "Free shipping, Ann",
            {"code": "SHIP-1"},
            False,
        )
        assert message["expires_ms"] == world.clock.now_ms() + 7 * 86_400_000
        read = await client.post(f"/v1/inbox/{message['id']}/read", params={"userId": "ann"})
        assert read.json()["changed"] is True
        assert (await client.get("/v1/inbox", params={"userId": "ann"})).json()["unread"] == 0
        stranger = await client.post(f"/v1/inbox/{message['id']}/read", params={"userId": "bob"})
        assert stranger.status_code == 404
        hero = (await client.get("/v1/placements/homepage_hero", params={"userId": "ann"})).json()
        assert hero["content"]["title"] == "Welcome back, Ann"
        none = (await client.get("/v1/placements/footer", params={"userId": "ann"})).json()
        assert none == {"placement": "footer", "content": None}
        await client.post(f"/v1/inbox/{message['id']}/dismiss", params={"userId": "ann"})
        assert (await client.get("/v1/inbox", params={"userId": "ann"})).json()["messages"] == []
        unauthorised = await client.get("/v1/inbox", params={"userId": "ann"}, auth=("wk_x", ""))
        assert unauthorised.status_code == 401
    opened = await world.timeline("Message Opened")
    assert sorted(e["channel"] for e in opened) == ["inapp", "web"]


async def test_inbox_stream_delivers_new_messages_live(world: World) -> None:
    await world.apply(SETUP, publish=True)
    await world.identify("ann", first_name="Ann")
    await world.settle()
    received: list[str] = []

    async def listen(base_url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as client,
            client.stream(
                "GET",
                "/v1/inbox/stream",
                params={"userId": "ann", "writeKey": world.write_key},
            ) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    received.append(line)
                    return

    async with world.served() as base_url:
        listener = asyncio.create_task(listen(base_url))
        await asyncio.sleep(0.3)
        await world.track("ann", "Came Back", n=7)
        await world.settle()
        await asyncio.wait_for(listener, 10)
    assert '"title":"Free shipping, Ann"' in received[0] and "SHIP-7" in received[0]
