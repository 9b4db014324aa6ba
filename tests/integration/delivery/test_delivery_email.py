"""A journey sends a real email to an SMTP server; the unsubscribe link works (RFC 8058)."""

from __future__ import annotations

import re

import httpx

from legato.api import create_api
from tests.integration.delivery.conftest import BASE_URL, Smtp, World

CHANNELS = """
kind: Channel
key: email
provider: smtp
settings: {{host: 127.0.0.1, port: {port}, security: none, from: "Shop <shop@example.com>"}}
---
kind: SubscriptionTopic
key: newsletter
channel: email
name: Newsletter
---
kind: Template
key: cart_email
channel: email
topic: newsletter
subject: "{{{{ profile.traits.first_name | default: 'Hi' }}}}, your cart is waiting"
mjml: >-
  <mjml><mj-body><mj-section><mj-column>
  <mj-text>Hello {{{{ profile.traits.first_name }}}},
  cart {{{{ trigger.properties.cart_id }}}}.</mj-text>
  <mj-button href="https://shop.example/cart">Back to my cart</mj-button>
  <mj-text><a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></mj-text>
  </mj-column></mj-section></mj-body></mjml>
"""

JOURNEY = """
kind: Journey
key: cart
trigger: {event: Checkout Started, key: properties.cart_id}
nodes:
  - {id: email, type: message, channel: email, template: cart_email, next: done}
  - {id: done, type: exit}
"""


async def test_journey_email_reaches_smtp_and_one_click_unsubscribes(
    world: World, smtp: Smtp
) -> None:
    await world.apply(CHANNELS.format(port=smtp.port))
    await world.apply(JOURNEY, publish=True)
    await world.identify("ann", email="Ann@Example.com", first_name="Ann")
    await world.track("ann", "Checkout Started", cart_id="c1")
    await world.settle()

    (mail,) = smtp.mails()
    assert mail["To"] == "Ann@example.com"
    assert mail["Subject"] == "Ann, your cart is waiting"
    assert mail["From"] == "Shop <shop@example.com>"
    (row,) = await world.deliveries()
    assert row["status"] == "sent"
    assert mail["Message-ID"] == f"<{row['id']}@example.com>"
    unsubscribe = re.fullmatch(r"<(https://[^>]+)>", mail["List-Unsubscribe"])
    assert unsubscribe is not None and unsubscribe.group(1).startswith(BASE_URL + "/u/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "Hello Ann, cart c1." in html and "Hello Ann, cart c1." in text
    assert "https://shop.example/cart" not in html  # rewritten to a signed redirect
    assert BASE_URL + "/t/c/" in html and BASE_URL + "/t/o/" in html
    assert unsubscribe.group(1).replace("&", "&amp;") in html or unsubscribe.group(1) in html

    sent = await world.timeline("Message Sent")
    assert [(e["template"], e["journey"], e["node"], e["message_id"]) for e in sent] == [
        ("cart_email", "cart", "email", row["id"])
    ]

    # The mail client's one-click POST (RFC 8058) unsubscribes from the topic.
    app = create_api(world.legato, manage_lifecycle=False)
    path = unsubscribe.group(1).removeprefix(BASE_URL)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        answer = await client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 200
    await world.settle()
    assert [e["status"] for e in await world.timeline("Subscription Changed")] == ["unsubscribed"]
    assert len(await world.timeline("Message Unsubscribed")) == 1

    # Never again through the journey: the next cart is skipped with the reason.
    await world.track("ann", "Checkout Started", cart_id="c2")
    await world.settle()
    assert len(smtp.mails()) == 1
    skipped = await world.timeline("Message Skipped")
    assert [e["reason"] for e in skipped] == ["unsubscribed"]
