"""Send-time gates, whatever the journey says: consent, suppression, frequency caps, quiet hours
in the person's timezone; bad addresses and templates that fail at send time are skipped with a
reason event and the journey goes on; template syntax errors are refused with line and column."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.delivery.conftest import Smtp, World

HOUR = 3_600_000

SETUP = """
kind: Channel
key: email
provider: smtp
settings: {{host: 127.0.0.1, port: {port}, security: none, from: shop@example.com}}
---
kind: Channel
key: sms
provider: twilio
settings: {{account_sid: AC1, auth_token: t, from: "+14155550100", base_url: "http://127.0.0.1:9"}}
---
kind: SubscriptionTopic
key: deals
channel: email
---
kind: Template
key: promo
channel: email
topic: deals
subject: "Deals for {{{{ profile.traits.first_name }}}}"
html: "<p>{{{{ data.note | default: 'Hello' }}}}</p>"
---
kind: Template
key: receipt
channel: email
category: transactional
subject: Your receipt
text: "Order {{{{ data.order }}}}"
---
kind: Template
key: broken
channel: email
subject: Broken
text: "{{{{ 10 | divided_by: profile.traits.kids }}}}"
---
kind: Template
key: promo_sms
channel: sms
body: Deals!
"""

JOURNEY = """
kind: Journey
key: {key}
trigger: {{event: {event}, key: properties.n}}
{settings}
nodes:
{nodes}
  - {{id: done, type: exit}}
"""


def journey(key: str, event: str, *steps: str, settings: str = "") -> str:
    """A journey sending each step in turn: "template" (by email) or "channel:template"."""
    nodes = []
    for index, step in enumerate(steps):
        channel, _, template = step.rpartition(":")
        after = f"m{index + 1}" if index + 1 < len(steps) else "done"
        nodes.append(
            f"  - {{id: m{index}, type: message, channel: {channel or 'email'}, "
            f"template: {template}, next: {after}}}"
        )
    return JOURNEY.format(key=key, event=event, settings=settings, nodes="\n".join(nodes))


async def setup(world: World, smtp: Smtp, *docs: str) -> None:
    await world.apply(SETUP.format(port=smtp.port))
    for doc in docs:
        await world.apply(doc, publish=True)


async def api_send(world: World, template: str, to: dict[str, str], **data: Any) -> str:
    async with world.admin() as admin:
        answer = await admin.post(
            "/api/v1/messages", json={"template": template, "to": to, "data": data}
        )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def statuses(world: World) -> list[tuple[str, str, str | None]]:
    return [(d["template"], d["status"], d["reason"]) for d in await world.deliveries()]


async def test_unsubscribed_person_gets_no_marketing_from_journeys_or_the_api(
    world: World, smtp: Smtp
) -> None:
    await setup(world, smtp, journey("promo_j", "Browsed", "promo"))
    await world.identify("ann", email="ann@example.com", first_name="Ann")
    await world.settle()
    async with world.admin() as admin:
        changed = await admin.post(
            "/api/v1/consent",
            json={"to": {"user_id": "ann"}, "channel": "email", "status": "unsubscribed"},
        )
        assert changed.json()["recorded"] is True
    await world.track("ann", "Browsed", n=1)
    await api_send(world, "promo", {"email": "ANN@example.com"})
    await api_send(world, "receipt", {"user_id": "ann"}, order="o-1")
    await world.settle()

    assert sorted(await statuses(world), key=str) == [
        ("promo", "skipped", "unsubscribed"),
        ("promo", "skipped", "unsubscribed"),
        # Receipts still go to someone who left the marketing emails (the channel's policy).
        ("receipt", "sent", None),
    ]
    assert [m["Subject"] for m in smtp.mails()] == ["Your receipt"]


async def test_suppressed_address_receives_nothing_at_all(world: World, smtp: Smtp) -> None:
    await setup(world, smtp, journey("promo_j", "Browsed", "promo"))
    await world.identify("ann", email="ann@example.com", phone="+14155550123", first_name="Ann")
    await world.settle()
    async with world.admin() as admin:
        added = await admin.post(
            "/api/v1/suppressions",
            json={"channel": "email", "address": "Ann@Example.com", "note": "asked by phone"},
        )
        assert added.status_code == 201, added.text
        listed = (await admin.get("/api/v1/suppressions")).json()["suppressions"]
        assert [(s["address"], s["reason"]) for s in listed] == [("Ann@example.com", "manual")]
    await world.track("ann", "Browsed", n=1)
    await api_send(world, "promo", {"user_id": "ann"})
    await api_send(world, "receipt", {"email": "ann@example.com"}, order="o-1")
    await world.settle()

    assert [s[1:] for s in await statuses(world)] == [("skipped", "suppressed")] * 3
    assert smtp.mails() == []
    reasons = [e["reason"] for e in await world.timeline("Message Skipped")]
    assert reasons == ["suppressed"] * 3


async def test_frequency_caps_count_marketing_only(world: World, smtp: Smtp) -> None:
    policy = """
kind: DeliveryPolicy
key: default
frequency_caps: [{limit: 2, window: 7d}]
"""
    await setup(world, smtp, policy, journey("promo_j", "Browsed", "promo"))
    await world.identify("ann", email="ann@example.com", first_name="Ann")
    for n in range(3):
        await world.track("ann", "Browsed", n=n)
        await world.wait("1h")
    await api_send(world, "receipt", {"user_id": "ann"}, order="o-1")
    await world.settle()
    assert await statuses(world) == [
        ("promo", "sent", None),
        ("promo", "sent", None),
        ("promo", "skipped", "frequency_capped"),
        ("receipt", "sent", None),
    ]
    # A week later the window has moved on.
    await world.wait("7d")
    await world.track("ann", "Browsed", n=9)
    await world.settle()
    assert (await statuses(world))[-1] == ("promo", "sent", None)


@pytest.mark.parametrize(
    ("where", "action", "expected"),
    [
        ("policy", "defer", ("sent", 4 * HOUR)),
        ("policy", "drop", ("skipped", None)),
        ("journey", "defer", ("sent", 4 * HOUR)),
    ],
)
async def test_quiet_hours_in_the_persons_timezone(
    world: World, smtp: Smtp, where: str, action: str, expected: tuple[str, int | None]
) -> None:
    # T0 is 09:00 UTC: 04:00 in New York, inside 21:00-08:00 there; 08:00 NY is T0 + 4h.
    window = f"{{start: '21:00', end: '08:00', action: {action}}}"
    docs = []
    settings = ""
    if where == "policy":
        docs.append(f"kind: DeliveryPolicy\nkey: default\nquiet_hours: [{window}]\n")
    else:
        settings = f"settings: {{quiet_hours: {window}}}"
    docs.append(journey("promo_j", "Browsed", "promo", settings=settings))
    await setup(world, smtp, *docs)
    start = world.clock.now_ms()
    await world.identify("ann", email="ann@example.com", timezone="America/New_York")
    await world.identify("bob", email="bob@example.com", timezone="Europe/Paris")
    await world.track("ann", "Browsed", n=1)
    await world.track("bob", "Browsed", n=1)
    await world.settle()
    status, after = expected
    # 10:00 in Paris: outside the window, sent at once.
    assert [m["To"] for m in smtp.mails()] == ["bob@example.com"]
    await world.wait("5h")
    ann = [d for d in await world.deliveries() if d["address"] != "bob@example.com"]
    assert [d["status"] for d in ann] == [status]
    if after is not None:
        assert ann[0]["sent_ms"] == start + after
        assert [m["To"] for m in smtp.mails()] == ["bob@example.com", "ann@example.com"]
    else:
        assert ann[0]["reason"] == "quiet_hours"


@pytest.mark.parametrize(
    ("traits", "template", "reason"),
    [
        ({"email": "not-an-address"}, "promo", "invalid_address"),
        ({"first_name": "Ann"}, "promo", "missing_address"),
        ({"email": "ann@example.com", "phone": "12345"}, "promo_sms", "invalid_address"),
        ({"email": "ann@example.com", "kids": 0}, "broken", "render_failed"),
    ],
)
async def test_unsendable_messages_are_skipped_and_the_journey_goes_on(
    world: World, smtp: Smtp, traits: dict[str, Any], template: str, reason: str
) -> None:
    channel = "sms" if template == "promo_sms" else "email"
    await setup(world, smtp, journey("j", "Browsed", f"{channel}:{template}", "receipt"))
    await world.identify("ann", **traits)
    await world.settle()
    if channel == "sms":
        profile = await world.profile_of("ann")
        await world.legato.consent.change(
            world.workspace_id, profile, channel="sms", status="subscribed", source="test"
        )
    await world.track("ann", "Browsed", n=1)
    await world.settle()
    rows = {row[0]: row[1:] for row in await statuses(world)}
    assert rows[template] == ("skipped", reason)
    (skipped,) = [e for e in await world.timeline("Message Skipped") if e["template"] == template]
    assert skipped["reason"] == reason and skipped["journey"] == "j" and skipped["detail"]
    # The run went on to the next node.
    assert "receipt" in rows
    if "@" in str(traits.get("email")):
        assert rows["receipt"] == ("sent", None)


async def test_template_syntax_errors_answer_422_with_line_and_column(world: World) -> None:
    async with world.admin() as admin:
        answer = await admin.put(
            "/api/v1/templates/oops",
            json={
                "channel": "email",
                "subject": "Hi",
                "html": "<p>Hello</p>\n<p>{{ profile.traits.name | upcase </p>",
            },
        )
        assert answer.status_code == 422
        body = answer.json()
        assert (body["path"], body["line"]) == ("html", 2)
        assert body["column"] >= 1 and "line 2" in body["message"]
        missing = await admin.put("/api/v1/templates/oops", json={"channel": "email", "text": "x"})
        assert missing.status_code == 422 and missing.json()["path"] == "subject"
        assert (await admin.get("/api/v1/templates/oops")).status_code == 404
