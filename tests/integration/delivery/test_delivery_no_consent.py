"""Whatever the journeys say, a person who unsubscribed from a channel, or whose address is on
the suppression list, receives nothing on it: two journeys send on every channel (email, SMS,
WhatsApp, FCM push, web push, and the in-app inbox, which keeps no consent), and the vendors
and the SMTP server see nothing for that person while another, with the same journeys, gets
everything."""

from __future__ import annotations

import pytest

from tests.integration.channels.channel_fakes import VendorServer
from tests.integration.delivery.conftest import Smtp, World
from tests.integration.delivery.test_delivery_vendors import Browser, channels, vendor_answers

#: (channel, template) of every send; the journeys below reach each of them.
SENDS = [
    ("email", "cart_email"),
    ("sms", "cart_sms"),
    ("whatsapp", "cart_whatsapp"),
    ("push", "cart_push"),
    ("webpush", "cart_webpush"),
    ("inapp", "cart_inapp"),
]

EXTRA = """
kind: Channel
key: email
provider: smtp
settings: {{host: 127.0.0.1, port: {port}, security: none, from: shop@example.com}}
---
kind: Template
key: cart_email
channel: email
subject: "Your cart, {{{{ profile.traits.first_name }}}}"
html: "<p>It is waiting</p>"
---
kind: Template
key: cart_inapp
channel: inapp
title: Your cart
body: It is waiting
"""


def journeys() -> str:
    """One journey per trigger, each sending on every channel in a different order."""
    docs = []
    for index, event in enumerate(("Checkout Started", "Product Viewed")):
        order = SENDS[index:] + SENDS[:index]
        nodes = [
            f"  - {{id: m{n}, type: message, channel: {channel}, template: {template}, "
            f"next: {'m' + str(n + 1) if n + 1 < len(order) else 'done'}}}"
            for n, (channel, template) in enumerate(order)
        ]
        docs.append(
            f"kind: Journey\nkey: j{index}\ntrigger: {{event: {event}}}\nnodes:\n"
            + "\n".join(nodes)
            + "\n  - {id: done, type: exit}\n"
        )
    return "---\n".join(docs)


@pytest.mark.parametrize("refusal", ["unsubscribed", "suppressed"])
async def test_a_person_who_said_no_receives_nothing_through_any_journey(
    world: World, vendor: VendorServer, smtp: Smtp, refusal: str
) -> None:
    vendor.handler = vendor_answers
    # Channels first: publishing then checks every reference, the built-in `inapp` channel too.
    await world.apply(channels(vendor.base_url))
    await world.apply(EXTRA.format(port=smtp.port))
    await world.apply(journeys(), publish=True)
    people = {
        "ann": ("ann@example.com", "+33612345678", "fcm-token-ann"),
        "bob": ("bob@example.com", "+33612345679", "fcm-token-bob"),
    }
    browsers = {}
    for user, (address, phone, token) in people.items():
        await world.identify(user, first_name=user.title(), email=address, phone=phone)
        await world.settle()
        browsers[user] = Browser(f"{vendor.base_url}/push/{user}")
        async with world.public() as client:
            for route, body in (
                ("/v1/push/tokens", {"userId": user, "token": token}),
                (
                    "/v1/push/subscriptions",
                    {"userId": user, "subscription": browsers[user].subscription},
                ),
            ):
                assert (await client.post(route, json=body)).status_code == 201
        profile = await world.profile_of(user)
        for channel in ("sms", "whatsapp"):  # opt-in channels: both said yes once
            await world.legato.consent.change(
                world.workspace_id, profile, channel=channel, status="subscribed", source="test"
            )
    ann = await world.profile_of("ann")
    address, phone, token = people["ann"]
    if refusal == "unsubscribed":
        for channel, _ in SENDS:
            if channel == "inapp":
                continue  # shown inside the product the person uses: no consent kept for it
            await world.legato.consent.change(
                world.workspace_id, ann, channel=channel, status="unsubscribed", source="test"
            )
    else:
        for channel, value in (
            ("email", address),
            ("sms", phone),
            ("whatsapp", phone),
            ("push", token),
            ("webpush", browsers["ann"].subscription["endpoint"]),
        ):
            assert await world.legato.consent.suppress(world.workspace_id, channel, value)

    for user in people:
        await world.track(user, "Checkout Started")
        await world.track(user, "Product Viewed")
    await world.settle()

    rows = await world.deliveries()
    assert len(rows) == 2 * 2 * len(SENDS)
    for_ann = [r for r in rows if r["profile_id"] == ann]
    for_bob = [r for r in rows if r["profile_id"] != ann]
    assert {r["status"] for r in for_bob} == {"sent"}
    expected_skips = {"unsubscribed"} if refusal == "unsubscribed" else {"suppressed"}
    sent_to_ann = [(r["channel"], r["status"], r["reason"]) for r in for_ann]
    # The in-app inbox has neither consent nor an address to suppress: it still shows.
    assert sorted(s for s in sent_to_ann if s[0] == "inapp") == [("inapp", "sent", None)] * 2
    sent_to_ann = [s for s in sent_to_ann if s[0] != "inapp"]
    assert {s[1] for s in sent_to_ann} == {"skipped"}
    assert {s[2] for s in sent_to_ann} == expected_skips

    # What the outside world saw: only Bob's messages.
    assert [m["To"] for m in smtp.mails()] == ["bob@example.com"] * 2
    calls = [r for r in vendor.requests if r.path != "/token"]
    assert len(calls) == 2 * 4
    assert all(b"ann" not in r.body and b'612345678"' not in r.body for r in calls)
    assert not [r for r in calls if r.path == "/push/ann"]
    async with world.public() as client:
        inbox = (await client.get("/v1/inbox", params={"userId": "ann"})).json()["messages"]
    assert len(inbox) == 2
    skipped = await world.timeline("Message Skipped")
    assert {e["profile_id"] for e in skipped} == {ann}
    assert len(skipped) == len(sent_to_ann)
