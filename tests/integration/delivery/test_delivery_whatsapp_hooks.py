"""The WhatsApp Cloud API's status webhooks through the real API: Meta's subscription handshake,
`X-Hub-Signature-256` verification, then delivered / read / failed statuses recorded on the
message, on the timeline, and (undeliverable number) on the suppression list."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply
from tests.integration.delivery.conftest import World

APP_SECRET = "meta-app-secret-0123"

SETUP = """
kind: Channel
key: whatsapp
provider: whatsapp
settings:
  phone_number_id: "1055"
  access_token: wa-token
  base_url: "{base}"
  app_secret: {secret}
  verify_token: hub-token-1
---
kind: Template
key: code
channel: whatsapp
category: transactional
body: "Your code is {{{{ data.code }}}}"
"""


def numbered(request: Recorded) -> Reply:
    """The Cloud API's success shape, a new wamid per message."""
    number = json.loads(request.body)["to"]
    return json_reply(200, {"messages": [{"id": f"wamid.{number}"}]})


def hook(*statuses: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp", "statuses": list(statuses)}
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}", "content-type": "application/json"}


async def test_whatsapp_status_webhooks_are_verified_and_recorded(
    world: World, vendor: VendorServer
) -> None:
    vendor.handler = numbered
    await world.apply(SETUP.format(base=vendor.base_url, secret=APP_SECRET))
    await world.identify("ann", phone="+33612345678")
    await world.identify("bob", phone="+1 415 555 0123")
    await world.settle()
    async with world.admin() as admin:
        for to in ({"user_id": "ann"}, {"user_id": "bob"}):
            answer = await admin.post(
                "/api/v1/messages", json={"template": "code", "to": to, "data": {"code": "42"}}
            )
            assert answer.status_code == 202, answer.text
    await world.settle()
    rows = await world.deliveries()
    assert [(r["status"], r["provider_message_id"]) for r in rows] == [
        ("sent", "wamid.33612345678"),
        ("sent", "wamid.14155550123"),
    ]
    path = f"/hooks/whatsapp/{world.workspace_id}/whatsapp"
    async with world.public() as client:
        handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        wrong = await client.get(path, params={**handshake, "hub.verify_token": "guess"})
        assert wrong.status_code == 403
        ok = await client.get(path, params={**handshake, "hub.verify_token": "hub-token-1"})
        assert (ok.status_code, ok.text) == (200, "1158201444")

        body = hook(
            {"id": "wamid.33612345678", "status": "delivered", "recipient_id": "33612345678"},
            {"id": "wamid.33612345678", "status": "read", "recipient_id": "33612345678"},
            {
                "id": "wamid.14155550123",
                "status": "failed",
                "errors": [{"code": 131026, "title": "Message undeliverable"}],
            },
        )
        forged = await client.post(path, content=body, headers=signed(body, "not-the-secret"))
        assert forged.status_code == 401
        unsigned = await client.post(path, content=body)
        assert unsigned.status_code == 401
        # Refused webhooks recorded nothing.
        assert {e["event"] for e in await world.timeline()} == {"Message Sent"}
        answer = await client.post(path, content=body, headers=signed(body))
        assert answer.status_code == 200 and answer.json() == {"recorded": 3}
        # Meta retries webhooks: the same statuses again change nothing.
        again = await client.post(path, content=body, headers=signed(body))
        assert again.status_code == 200
        broken = b'{"object": "whatsapp_business_account"}'
        refused = await client.post(path, content=broken, headers=signed(broken))
        assert refused.status_code == 422 and refused.json()["path"] == "$.entry"

    ann, other = await world.deliveries()
    assert ann["status"] == "delivered" and ann["opened_ms"] is not None
    assert other["status"] == "bounced"
    assert [e["event"] for e in await world.timeline() if e["event"] != "Message Sent"] == [
        "Message Delivered",
        "Message Opened",
        "Message Bounced",
    ]
    suppressed = await world.legato.consent_store.list_suppressions(world.workspace_id)
    assert [(s["channel"], s["address"], s["reason"]) for s in suppressed] == [
        ("whatsapp", "+14155550123", "hard_bounce")
    ]
    # The next message to the bounced number is skipped at the gate, never sent.
    async with world.admin() as admin:
        await admin.post(
            "/api/v1/messages",
            json={"template": "code", "to": {"user_id": "bob"}, "data": {"code": "7"}},
        )
    await world.settle()
    last = (await world.deliveries())[-1]
    assert (last["status"], last["reason"]) == ("skipped", "suppressed")
    assert len([r for r in vendor.requests if r.method == "POST"]) == 2
