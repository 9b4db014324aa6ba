"""What recipients and providers reach over HTTP: click redirects and the open pixel, the
unsubscribe page, the preference centre, double opt-in, consent evidence export, and signed
provider status callbacks (Twilio's X-Twilio-Signature, Standard Webhooks), and message events
starting journeys and feeding segments."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import re

import pytest

from legato.channels.status import twilio_signature
from tests.integration.channels.channel_fakes import VendorServer, json_reply
from tests.integration.delivery.conftest import BASE_URL, Smtp, World

STATUS_SECRET = "whsec_" + base64.b64encode(b"status-secret-bytes-0123456789ab").decode()

SETUP = """
kind: Channel
key: email
provider: smtp
status_secret: "{secret}"
settings: {{host: 127.0.0.1, port: {port}, security: none, from: shop@example.com}}
---
kind: SubscriptionTopic
key: newsletter
channel: email
name: Newsletter
description: Once a week
---
kind: SubscriptionTopic
key: weekly
channel: email
name: Weekly picks
double_opt_in: true
mode: opt_in
---
kind: Template
key: news
channel: email
topic: newsletter
subject: News
html: >-
  <p><a href="https://shop.example/cart">Cart</a>
  <a href="{{{{ preferences_url }}}}">Preferences</a></p>
---
kind: Journey
key: news
trigger: {{event: Browsed}}
nodes:
  - {{id: m, type: message, channel: email, template: news, next: done}}
  - {{id: done, type: exit}}
"""


def links(html: str, prefix: str) -> list[str]:
    return [
        m.replace("&amp;", "&")
        for m in re.findall(rf'"({re.escape(BASE_URL + prefix)}[^"]+)"', html)
    ]


async def sent_email(world: World, smtp: Smtp) -> str:
    await world.apply(SETUP.format(port=smtp.port, secret=STATUS_SECRET), publish=True)
    await world.identify("ann", email="ann@example.com")
    await world.track("ann", "Browsed")
    await world.settle()
    (mail,) = smtp.mails()
    return str(mail.get_body(("html",)).get_content())


async def test_clicks_redirect_and_opens_count_once(world: World, smtp: Smtp) -> None:
    html = await sent_email(world, smtp)
    (click,) = links(html, "/t/c/")
    (pixel,) = links(html, "/t/o/")
    async with world.public() as client:
        answer = await client.get(click.removeprefix(BASE_URL))
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://shop.example/cart"
        for _ in range(2):
            image = await client.get(pixel.removeprefix(BASE_URL))
            assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        tampered = click[:-3] + ("AAA" if not click.endswith("AAA") else "BBB")
        assert (await client.get(tampered.removeprefix(BASE_URL))).status_code == 404
    await world.settle()
    (clicked,) = await world.timeline("Message Clicked")
    assert (clicked["url"], clicked["link"]) == ("https://shop.example/cart", 0)
    assert len(await world.timeline("Message Opened")) == 1
    (row,) = await world.deliveries()
    assert row["clicked_ms"] is not None and row["opened_ms"] is not None


async def test_preference_centre_and_evidence_export(world: World, smtp: Smtp) -> None:
    html = await sent_email(world, smtp)
    (preferences,) = links(html, "/p/")
    async with world.public() as client:
        page = await client.get(preferences.removeprefix(BASE_URL))
        assert page.status_code == 200 and "<script" not in page.text
        assert 'value="email:newsletter" checked' in page.text
        assert 'value="email:weekly">' in page.text  # opt-in topic, never subscribed
        saved = await client.post(
            preferences.removeprefix(BASE_URL),
            data={"subscribe": "email", "submitted": "1"},
            headers={"user-agent": "Test Browser"},
        )
        assert saved.status_code == 200 and "saved" in saved.text
        assert 'value="email:newsletter">' in saved.text
    profile = await world.profile_of("ann")
    state = await world.legato.consent.state(world.workspace_id, profile)
    assert state.status("email", "newsletter").value == "unsubscribed"  # type: ignore[union-attr]
    async with world.admin() as admin:
        exported = await admin.get("/api/v1/consent-records?format=csv")
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["channel"], r["topic"], r["status"], r["source"]) for r in rows] == [
            ("email", "newsletter", "unsubscribed", "preference_centre")
        ]
        evidence = json.loads(rows[0]["evidence"])
        assert evidence["user_agent"] == "Test Browser" and evidence["ip"]
        as_json = await admin.get(f"/api/v1/consent-records?format=json&profile_id={profile}")
        assert [r["id"] for r in as_json.json()] == [rows[0]["id"]]


async def test_unsubscribe_page_needs_the_button(world: World, smtp: Smtp) -> None:
    await sent_email(world, smtp)
    (mail,) = smtp.mails()
    url = mail["List-Unsubscribe"].strip("<>")
    profile = await world.profile_of("ann")
    async with world.public() as client:
        page = await client.get(url.removeprefix(BASE_URL))
        assert page.status_code == 200 and '<form method="post">' in page.text
        state = await world.legato.consent.state(world.workspace_id, profile)
        assert state.status("email", "newsletter") is None  # a GET changes nothing
        done = await client.post(url.removeprefix(BASE_URL), data={})
        assert done.status_code == 200 and "unsubscribed" in done.text
        bad = await client.get("/u/not-a-token")
        assert bad.status_code == 400
    (change,) = await world.timeline("Subscription Changed")
    assert (change["topic"], change["source"]) == ("newsletter", "unsubscribe_link")


async def test_double_opt_in_confirms_by_email(world: World, smtp: Smtp) -> None:
    await sent_email(world, smtp)
    async with world.admin() as admin:
        answer = await admin.post(
            "/api/v1/consent",
            json={
                "to": {"email": "ann@example.com"},
                "channel": "email",
                "topic": "weekly",
                "status": "subscribed",
                "source": "signup_form",
            },
        )
        assert answer.json()["status"] == "pending"
        assert answer.json()["confirmation_message_id"]
    await world.settle()
    confirmation = smtp.mails()[-1]
    assert confirmation["Subject"] == "Please confirm your subscription"
    (confirm,) = links(confirmation.get_body(("html",)).get_content(), "/c/")
    profile = await world.profile_of("ann")
    async with world.public() as client:
        page = await client.get(confirm.removeprefix(BASE_URL))
        assert "Confirm my subscription" in page.text
        state = await world.legato.consent.state(world.workspace_id, profile)
        assert state.status("email", "weekly").value == "pending"  # type: ignore[union-attr]
        done = await client.post(confirm.removeprefix(BASE_URL))
        assert done.status_code == 200 and "confirmed" in done.text
    state = await world.legato.consent.state(world.workspace_id, profile)
    assert state.status("email", "weekly").value == "subscribed"  # type: ignore[union-attr]
    history = await world.legato.consent_store.history(world.workspace_id, profile)
    assert [(r.change.status.value, r.change.source) for r in history] == [
        ("pending", "signup_form"),
        ("subscribed", "double_opt_in"),
    ]


async def test_twilio_status_callbacks_are_verified(world: World, vendor: VendorServer) -> None:
    vendor.handler = lambda request: json_reply(201, {"sid": "SM42", "status": "queued"})
    await world.apply(
        f"""
kind: Channel
key: sms
provider: twilio
settings:
  account_sid: AC1
  auth_token: tw-token
  from: "+14155550100"
  base_url: "{vendor.base_url}"
---
kind: Template
key: code
channel: sms
category: transactional
body: Your code is 1234
"""
    )
    for number in ("+14155550123", "+14155550124"):
        async with world.admin() as admin:
            await admin.post("/api/v1/messages", json={"template": "code", "to": {"phone": number}})
        await world.settle()
    _, second = await world.deliveries()
    path = f"/hooks/twilio/{world.workspace_id}/sms"

    def signed(params: dict[str, str], token: str = "tw-token") -> dict[str, str]:
        return {
            "x-twilio-signature": twilio_signature(BASE_URL + path, list(params.items()), token)
        }

    delivered = {"MessageSid": "SM42", "MessageStatus": "delivered", "To": "+14155550123"}
    async with world.public() as client:
        forged = await client.post(path, data=delivered, headers=signed(delivered, "wrong"))
        assert forged.status_code == 401
        ok = await client.post(path, data=delivered, headers=signed(delivered))
        assert ok.status_code == 204
    rows = await world.deliveries()
    # Both messages got SID SM42 from the fake: the callback applies to the newest.
    assert [r["status"] for r in rows] == ["sent", "delivered"]
    assert second["id"] == rows[1]["id"]


async def test_generic_signed_status_callback(world: World, smtp: Smtp) -> None:
    await sent_email(world, smtp)
    (row,) = await world.deliveries()
    body = json.dumps({"message_id": row["id"], "status": "complained"}).encode()
    path = f"/hooks/status/{world.workspace_id}/email"

    def headers(secret: str, at: int) -> dict[str, str]:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signature = base64.b64encode(
            hmac.new(key, f"msg_1.{at}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        return {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(at),
            "webhook-signature": f"v1,{signature}",
            "content-type": "application/json",
        }

    now = world.clock.now_ms() // 1000
    other = "whsec_" + base64.b64encode(b"another-secret-bytes-0123456789").decode()
    async with world.public() as client:
        assert (
            await client.post(path, content=body, headers=headers(other, now))
        ).status_code == 401
        stale = await client.post(path, content=body, headers=headers(STATUS_SECRET, now - 3600))
        assert stale.status_code == 401
        ok = await client.post(path, content=body, headers=headers(STATUS_SECRET, now))
        assert ok.status_code == 200 and ok.json()["recorded"] is True
    (row,) = await world.deliveries()
    assert row["status"] == "complained"
    assert len(await world.timeline("Message Complained")) == 1
    suppressed = await world.legato.consent_store.list_suppressions(world.workspace_id)
    assert [(s["address"], s["reason"]) for s in suppressed] == [("ann@example.com", "complaint")]


@pytest.mark.parametrize("route", ["/t/c/x.y", "/t/o/x.y.gif", "/p/x.y", "/c/x.y"])
async def test_forged_tokens_do_nothing(world: World, route: str) -> None:
    async with world.public() as client:
        answer = await client.get(route)
    assert answer.status_code in {200, 400, 404}
    assert await world.timeline() == []


async def test_message_events_trigger_journeys(world: World, smtp: Smtp) -> None:
    """A click is an event like any other: a journey can start on it."""
    await world.apply(
        """
kind: Template
key: thanks
channel: inapp
title: "Thanks for looking at {{ trigger.properties.url }}"
body: Here is 10% off
---
kind: Journey
key: clicked
trigger: {event: Message Clicked}
nodes:
  - {id: m, type: message, channel: inapp, template: thanks, next: done}
  - {id: done, type: exit}
""",
        publish=True,
    )
    html = await sent_email(world, smtp)
    (click,) = links(html, "/t/c/")
    async with world.public() as client:
        assert (await client.get(click.removeprefix(BASE_URL))).status_code == 302
    await world.settle()
    async with world.public() as client:
        box = (await client.get("/v1/inbox", params={"userId": "ann"})).json()
    assert [m["title"] for m in box["messages"]] == [
        "Thanks for looking at https://shop.example/cart"
    ]


async def test_message_events_feed_segments(world: World, smtp: Smtp) -> None:
    """Outcomes are conditions like any event: "clicked in the last 30 days", "opened the
    newsletter" (the time window's expiry is the segment engine's, tested there)."""
    await world.apply(
        """
kind: Segment
key: clicked_recently
condition: {event: Message Clicked, within: 30d}
---
kind: Segment
key: opened_news
condition: {event: Message Opened, where: [{property: template, eq: news}]}
"""
    )
    html = await sent_email(world, smtp)
    await world.identify("bob", email="bob@example.com")
    await world.track("bob", "Browsed")
    await world.settle()

    async def members(key: str) -> set[str]:
        page = await world.legato.segments.members(world.workspace_id, key)
        return {m.profile_id for m in page.members}

    assert await members("clicked_recently") == set()
    (click,) = links(html, "/t/c/")
    async with world.public() as client:
        assert (await client.get(click.removeprefix(BASE_URL))).status_code == 302
    await world.settle()
    ann = await world.profile_of("ann")
    # The click counts as an open too (the pixel may be blocked).
    assert await members("clicked_recently") == {ann}
    assert await members("opened_news") == {ann}
