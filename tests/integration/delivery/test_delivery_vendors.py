"""Journeys reach every HTTP vendor in its own format through the whole delivery path (gate,
render, provider): Twilio SMS, WhatsApp Cloud API, FCM HTTP v1, Standard Webhooks, and VAPID web
push encrypted for a browser subscription registered through the client API. Vendors are a real
local HTTP server answering in their success shapes."""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply
from tests.integration.delivery.conftest import World

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
VAPID = ec.generate_private_key(ec.SECP256R1())
HOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vendor_answers(request: Recorded) -> Reply:
    """Each vendor's success shape."""
    if request.path.endswith("/Messages.json"):
        return json_reply(201, {"sid": "SM" + "a" * 32, "status": "queued"})
    if request.path.endswith("/messages") and "/v21.0/" in request.path:
        return json_reply(200, {"messages": [{"id": "wamid.HBgM"}]})
    if request.path == "/token":
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        jwt.decode(  # the service account's key signed the grant
            form["assertion"],
            RSA_KEY.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
        )
        return json_reply(200, {"access_token": "ya29.t1", "expires_in": 3599})
    if request.path.endswith("messages:send"):
        return json_reply(200, {"name": "projects/demo-shop/messages/0:1"})
    if request.path.startswith("/push/"):
        return (201, {"location": "/msg/1"}, b"")
    return json_reply(200, {"ok": True})


def channels(base: str) -> str:
    vapid = b64url(VAPID.private_numbers().private_value.to_bytes(32, "big"))
    account = {
        "type": "service_account",
        "project_id": "demo-shop",
        "private_key": PEM,
        "client_email": "legato@demo-shop.iam.gserviceaccount.com",
        "token_uri": f"{base}/token",
    }
    return f"""
kind: Channel
key: sms
provider: twilio
settings: {{account_sid: AC123, auth_token: tok, from: "+14155550100", base_url: "{base}"}}
---
kind: Channel
key: whatsapp
provider: whatsapp
settings: {{phone_number_id: "1055", access_token: wa-token, base_url: "{base}"}}
---
kind: Channel
key: push
provider: fcm
settings: {{service_account: {json.dumps(json.dumps(account))}, api_base: "{base}"}}
---
kind: Channel
key: hooks
provider: webhook
settings: {{url: "{base}/hooks/orders", secrets: ["{HOOK_SECRET}"]}}
---
kind: Channel
key: webpush
provider: webpush
settings: {{vapid_private_key: "{vapid}", vapid_subject: "mailto:ops@shop.example"}}
---
kind: Template
key: cart_sms
channel: sms
body: "{{{{ profile.traits.first_name }}}}, cart {{{{ trigger.properties.cart_id }}}} is waiting"
---
kind: Template
key: cart_whatsapp
channel: whatsapp
whatsapp_template:
  name: cart_reminder
  language: fr
  components:
    - type: body
      parameters: [{{type: text, text: "{{{{ profile.traits.first_name }}}}"}}]
---
kind: Template
key: cart_push
channel: push
title: "Your cart, {{{{ profile.traits.first_name }}}}"
body: "{{{{ trigger.properties.items }}}} items are waiting"
url: https://shop.example/cart
---
kind: Template
key: cart_hook
channel: hooks
event_type: cart.abandoned
payload: {{cart: "{{{{ trigger.properties.cart_id }}}}", user: "{{{{ profile.user_id }}}}"}}
---
kind: Template
key: cart_webpush
channel: webpush
title: "Still thinking, {{{{ profile.traits.first_name }}}}?"
body: Your cart is saved
"""


JOURNEY = """
kind: Journey
key: cart_everywhere
trigger: {{event: Checkout Started}}
nodes:
  - {{id: m, type: message, channel: {channel}, template: {template}, next: done}}
  - {{id: done, type: exit}}
"""


class Browser:
    """A browser's push subscription: its key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> Any:
        return json.loads(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


@pytest.mark.parametrize(
    ("channel", "template"),
    [
        ("sms", "cart_sms"),
        ("whatsapp", "cart_whatsapp"),
        ("push", "cart_push"),
        ("hooks", "cart_hook"),
        ("webpush", "cart_webpush"),
    ],
)
async def test_journey_reaches_each_vendor_in_its_format(
    world: World, vendor: VendorServer, channel: str, template: str
) -> None:
    vendor.handler = vendor_answers
    await world.apply(channels(vendor.base_url))
    await world.apply(
        JOURNEY.format(channel=channel, template=template).replace(
            "cart_everywhere", f"cart_{channel}"
        ),
        publish=True,
    )
    await world.identify("ann", first_name="Ann", phone="+33 6 12 34 56 78")
    await world.settle()
    browser = Browser(f"{vendor.base_url}/push/sub-1")
    async with world.public() as client:
        registered = await client.post(
            "/v1/push/tokens", json={"userId": "ann", "token": "fcm-token-abcdef"}
        )
        assert registered.status_code == 201, registered.text
        subscribed = await client.post(
            "/v1/push/subscriptions",
            json={"userId": "ann", "subscription": browser.subscription},
        )
        assert subscribed.status_code == 201, subscribed.text
        key = await client.get("/v1/push/vapid-public-key")
        public = VAPID.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert key.json()["publicKey"] == b64url(public)
    if channel in {"sms", "whatsapp"}:
        # Both are opt-in: without the person's yes, nothing goes.
        profile = await world.profile_of("ann")
        await world.legato.consent.change(
            world.workspace_id, profile, channel=channel, status="subscribed", source="test"
        )
    await world.track("ann", "Checkout Started", cart_id="c42", items=2)
    await world.settle()

    (row,) = await world.deliveries()
    assert row["status"] == "sent", row
    calls = [r for r in vendor.requests if r.path != "/token"]
    (call,) = calls
    if channel == "sms":
        assert call.path == "/2010-04-01/Accounts/AC123/Messages.json"
        form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}
        assert form == {
            "To": "+33612345678",
            "From": "+14155550100",
            "Body": "Ann, cart c42 is waiting",
        }
        assert call.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
        assert row["provider_message_id"] == "SM" + "a" * 32
    elif channel == "whatsapp":
        assert call.path == "/v21.0/1055/messages"
        body = call.json()
        assert body["to"] == "33612345678" and body["type"] == "template"
        assert body["template"]["name"] == "cart_reminder"
        assert body["template"]["components"][0]["parameters"][0]["text"] == "Ann"
    elif channel == "push":
        assert call.headers["authorization"] == "Bearer ya29.t1"
        message = call.json()["message"]
        assert message["token"] == "fcm-token-abcdef"
        assert message["notification"] == {"title": "Your cart, Ann", "body": "2 items are waiting"}
    elif channel == "hooks":
        assert call.path == "/hooks/orders"
        assert call.json() == {"cart": "c42", "user": "ann"}
        assert call.headers["webhook-id"] == row["id"]
        assert call.headers["webhook-signature"].startswith("v1,")
    else:
        assert call.path == "/push/sub-1"
        assert call.headers["content-encoding"] == "aes128gcm"
        payload = browser.decrypt(call.body)
        assert payload["title"] == "Still thinking, Ann?" and payload["id"] == row["id"]
    sent = await world.timeline("Message Sent")
    assert [e["channel"] for e in sent] == [channel]
