"""The admin API of delivery: documents (422 naming the field), template previews for a chosen
person, the transactional send API (idempotent, served ahead of bulk traffic)."""

from __future__ import annotations

from typing import Any

import pytest

from legato.ids import new_id
from legato.store.delivery import PRIORITY_BULK, NewDelivery
from tests.integration.delivery.conftest import Smtp, World

TEMPLATE = {
    "channel": "email",
    "subject": "{{ profile.traits.first_name | default: 'Hi' }}, {{ data.what }}",
    "html": "<p>{{ trigger.properties.cart_id }} / {{ profile.computed.ltv | default: 0 }}</p>",
    "locales": {"fr": {"subject": "Bonjour {{ profile.traits.first_name }}"}},
}


async def channel(world: World, smtp: Smtp) -> None:
    async with world.admin() as admin:
        answer = await admin.put(
            "/api/v1/channels/email",
            json={
                "provider": "smtp",
                "settings": {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "none",
                    "from": "shop@example.com",
                },
            },
        )
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("collection", "document", "path"),
    [
        (
            "channels",
            {"provider": "smtp", "settings": {"port": 25, "from": "a@b.c"}},
            "settings.host",
        ),
        ("channels", {"provider": "carrier-pigeon"}, "provider"),
        (
            "channels",
            {
                "providers": [
                    {
                        "name": "a",
                        "provider": "twilio",
                        "settings": {"account_sid": "AC1", "auth_token": "t"},
                    }
                ]
            },
            "providers[0].settings",
        ),
        ("templates", {"channel": "sms"}, "body"),
        ("templates", {"channel": "nowhere", "body": "x"}, "channel"),
        ("templates", {"channel": "email", "subject": "x", "text": "y", "topic": "nope"}, "topic"),
        ("topics", {"channel": "fax"}, "channel"),
    ],
)
async def test_invalid_documents_answer_422_naming_the_field(
    world: World, collection: str, document: dict[str, Any], path: str
) -> None:
    async with world.admin() as admin:
        answer = await admin.put(f"/api/v1/{collection}/thing", json=document)
    assert answer.status_code == 422, answer.text
    assert answer.json()["path"] == path, answer.json()


async def test_documents_round_trip_and_preview(world: World, smtp: Smtp) -> None:
    await channel(world, smtp)
    await world.identify("ann", email="ann@example.com", first_name="Ann", locale="fr-FR")
    await world.settle()
    profile = await world.profile_of("ann")
    async with world.admin() as admin:
        saved = await admin.put("/api/v1/templates/cart", json=TEMPLATE)
        assert saved.json()["version"] == 1
        again = await admin.put("/api/v1/templates/cart", json=TEMPLATE)
        assert again.json()["version"] == 2
        listed = (await admin.get("/api/v1/templates")).json()["templates"]
        assert [t["key"] for t in listed] == ["cart"]
        channels = (await admin.get("/api/v1/channels")).json()["channels"]
        assert channels[0]["provider"] == "smtp"

        preview = await admin.post(
            "/api/v1/templates/cart/preview",
            json={
                "to": {"profile_id": profile},
                "data": {"what": "look"},
                "event": {"name": "Checkout Started", "properties": {"cart_id": "c9"}},
            },
        )
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert (body["locale"], body["content"]["subject"]) == ("fr", "Bonjour Ann")
        assert "<p>c9 / 0</p>" in body["content"]["html"]
        english = await admin.post(
            "/api/v1/templates/cart/preview",
            json={"to": {"user_id": "ann"}, "data": {"what": "look"}, "locale": "en"},
        )
        assert english.json()["content"]["subject"] == "Ann, look"

        await admin.put(
            "/api/v1/templates/strict",
            json={
                "channel": "email",
                "subject": "x",
                "text": "{% for i in (1..data.n) %}{{ i }}{% endfor %}",
            },
        )
        failing = await admin.post(
            "/api/v1/templates/strict/preview",
            json={"to": {"user_id": "ann"}, "data": {"n": 10_000_000}},
        )
        assert failing.status_code == 422 and failing.json()["path"] == "text"
        assert (await admin.delete("/api/v1/templates/strict")).status_code == 204
        assert (await admin.get("/api/v1/templates/strict")).status_code == 404
        missing = await admin.post("/api/v1/templates/cart/preview", json={"to": {}})
        assert missing.status_code == 422 and missing.json()["path"] == "to"


async def test_transactional_sends_are_idempotent_and_served_first(
    world: World, smtp: Smtp
) -> None:
    await channel(world, smtp)
    await world.apply(
        "kind: Template\nkey: receipt\nchannel: email\ncategory: transactional\n"
        "subject: Receipt\ntext: Thanks\n"
    )
    await world.identify("ann", email="ann@example.com")
    await world.settle()
    profile = await world.profile_of("ann")
    # A bulk backlog (a campaign) queued before the receipt.
    backlog = [
        NewDelivery(
            world.workspace_id,
            f"bulk:{n}",
            "journey",
            PRIORITY_BULK,
            profile,
            "email",
            "receipt",
            None,
            {},
        )
        for n in range(30)
    ]
    async with world.legato.db.transaction() as conn:
        await world.legato.deliveries.enqueue(
            conn, backlog, [new_id() for _ in backlog], world.clock.now_ms()
        )
    async with world.admin() as admin:
        body = {"template": "receipt", "to": {"email": "buyer@example.com"}}
        first = await admin.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "o-1"})
        second = await admin.post("/api/v1/messages", json=body, headers={"Idempotency-Key": "o-1"})
        assert (first.status_code, second.status_code) == (202, 200)
        assert first.json()["id"] == second.json()["id"] and second.json()["created"] is False
        unknown = await admin.post(
            "/api/v1/messages", json={"template": "nope", "to": {"email": "a@b.co"}}
        )
        assert unknown.status_code == 404
        bad = await admin.post(
            "/api/v1/messages", json={"template": "receipt", "to": {"phone": "12"}}
        )
        assert bad.status_code == 422 and bad.json()["path"] == "to.phone"
    world.legato.delivery.options = world.legato.delivery.options.__class__(batch_size=5)
    await world.legato.delivery.step()
    # Served first: it is in the first batch of 5 (their mails travel on several pooled SMTP
    # connections at once, so the order they reach the server in is not the claim order).
    first_batch = [mail["To"] for mail in smtp.mails()]
    assert len(first_batch) == 5 and "buyer@example.com" in first_batch
    await world.settle()
    assert len(smtp.mails()) == 31


@pytest.mark.parametrize(
    ("channel", "address", "listed"),
    [
        ("email", "Ann@Example.com", "Ann@example.com"),
        ("sms", "+1 415 555 0123", "+14155550123"),
        ("webpush", "https://push.example/s/a1?x=1", "https://push.example/s/a1?x=1"),
    ],
)
async def test_suppressions_are_added_listed_and_removed(
    world: World, channel: str, address: str, listed: str
) -> None:
    async with world.admin() as admin:
        added = await admin.post(
            "/api/v1/suppressions", json={"channel": channel, "address": address}
        )
        assert added.status_code == 201, added.text
        again = await admin.post(
            "/api/v1/suppressions", json={"channel": channel, "address": address}
        )
        assert again.status_code == 200 and again.json()["added"] is False, again.text
        found = (await admin.get("/api/v1/suppressions")).json()["suppressions"]
        assert [(s["channel"], s["address"]) for s in found] == [(channel, listed)]
        bad = await admin.post("/api/v1/suppressions", json={"channel": channel, "address": "x"})
        assert bad.status_code == 422, bad.text
        assert bad.json()["field"] == "address", bad.text
        from urllib.parse import quote

        removed = await admin.delete(f"/api/v1/suppressions/{channel}/{quote(address, safe='')}")
        assert removed.status_code == 204, removed.text
        assert (await admin.get("/api/v1/suppressions")).json()["suppressions"] == []
