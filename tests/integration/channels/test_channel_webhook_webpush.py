"""Signed webhooks (Standard Webhooks, verified by an independent implementation here) and web
push (VAPID-authorised, aes128gcm-encrypted, decrypted here with the subscription's private key)
against local endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext
from legato.channels.webhook import WebhookProvider
from legato.channels.webpush import WebPushProvider, public_key
from legato.domain.delivery import OutboundMessage, PushContent, WebhookContent
from legato.errors import Permanent, Retryable
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import Recorded, VendorServer, json_reply

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"an older secret, being rotated!!").decode()


def verify_standard_webhook(request: Recorded, secret: str) -> bool:
    """What a receiver does, written from the spec rather than from Legato's code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = b".".join(
        [
            request.headers["webhook-id"].encode(),
            request.headers["webhook-timestamp"].encode(),
            request.body,
        ]
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        s.split(",", 1)[1]
        for s in request.headers["webhook-signature"].split(" ")
        if s.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def webhook(http: OutboundClient, **settings: Any) -> WebhookProvider:
    return WebhookProvider.from_settings(
        "hooks", {"secrets": SECRET, **settings}, ProviderContext(http=http, clock=FakeClock())
    )


def hook_message(url: str, payload: Any = None) -> OutboundMessage:
    content = WebhookContent(payload=payload or {"type": "cart.abandoned", "data": {"cart": "c42"}})
    return OutboundMessage(message_id="msg_01hxyz", channel="webhook", to=url, content=content)


async def test_webhook_is_signed_per_standard_webhooks(
    vendor: VendorServer, http: OutboundClient
) -> None:
    vendor.handler = lambda request: (204, {}, b"")
    provider = webhook(http, secrets=[SECRET, OLD_SECRET], headers={"x-tenant": "shop"})
    result = await provider.send(hook_message(f"{vendor.base_url}/hooks/legato"))

    [request] = vendor.requests
    assert result.provider_message_id == "msg_01hxyz"
    assert request.path == "/hooks/legato"
    assert request.headers["webhook-id"] == "msg_01hxyz"
    assert request.headers["webhook-timestamp"] == str(FakeClock().now_ms() // 1000)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tenant"] == "shop"
    assert json.loads(request.body) == {"type": "cart.abandoned", "data": {"cart": "c42"}}
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify_standard_webhook(request, SECRET)
    assert verify_standard_webhook(request, OLD_SECRET)
    wrong = "whsec_" + base64.b64encode(b"somebody else's secret bytes!!!").decode()
    assert not verify_standard_webhook(request, wrong)


async def test_tampered_body_no_longer_verifies(vendor: VendorServer, http: OutboundClient) -> None:
    await webhook(http).send(hook_message(f"{vendor.base_url}/h"))
    [request] = vendor.requests
    request.body = request.body.replace(b"c42", b"c43")
    assert not verify_standard_webhook(request, SECRET)


async def test_configured_url_is_used_when_the_message_has_none(
    vendor: VendorServer, http: OutboundClient
) -> None:
    await webhook(http, url=f"{vendor.base_url}/default").send(hook_message(""))
    assert vendor.requests[0].path == "/default"


@pytest.mark.parametrize(
    ("status", "error", "flag"),
    [
        (410, Permanent, "endpoint_gone"),
        (400, Permanent, None),
        (500, Retryable, None),
        (429, Retryable, None),
        (302, Permanent, None),
    ],
)
async def test_webhook_responses_map_to_the_tree(
    vendor: VendorServer,
    http: OutboundClient,
    status: int,
    error: type[Exception],
    flag: str | None,
) -> None:
    vendor.handler = lambda request: (status, {"location": "/elsewhere"}, b"")
    with pytest.raises(error) as caught:
        await webhook(http).send(hook_message(f"{vendor.base_url}/h"))
    if flag:
        assert caught.value.details[flag] is True  # type: ignore[attr-defined]
    assert len(vendor.requests) == 1


async def test_webhook_to_a_private_address_is_refused_by_default(vendor: VendorServer) -> None:
    async with OutboundClient() as guarded:
        with pytest.raises(Permanent, match="refused"):
            await webhook(guarded).send(hook_message(f"{vendor.base_url}/h"))
    assert vendor.requests == []


# -- web push ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Browser:
    """A browser's push subscription: its key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = json.dumps(
            {"endpoint": endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}
        )

    def decrypt(self, body: bytes) -> Any:
        return json.loads(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


VAPID = ec.generate_private_key(ec.SECP256R1())
VAPID_SETTINGS = {
    "vapid_private_key": b64url(VAPID.private_numbers().private_value.to_bytes(32, "big")),
    "vapid_subject": "mailto:ops@shop.example",
}


def webpush(http: OutboundClient) -> WebPushProvider:
    return WebPushProvider.from_settings(
        "vapid", VAPID_SETTINGS, ProviderContext(http=http, clock=FakeClock())
    )


def notification(subscription: str) -> OutboundMessage:
    content = PushContent(
        title="Back in stock",
        body="Your size is available",
        url="https://shop.example/p/1",
        data={"sku": "p1"},
    )
    return OutboundMessage(
        message_id="m-push-1", channel="webpush", to=subscription, content=content
    )


async def test_web_push_is_encrypted_for_the_subscription_and_vapid_signed(
    vendor: VendorServer, http: OutboundClient
) -> None:
    vendor.handler = lambda request: (201, {"location": f"{vendor.base_url}/msg/77"}, b"")
    browser = Browser(f"{vendor.base_url}/push/sub-1")
    result = await webpush(http).send(notification(browser.subscription))

    [request] = vendor.requests
    assert result.provider_message_id == f"{vendor.base_url}/msg/77"
    assert request.path == "/push/sub-1"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == "86400"
    assert request.headers["urgency"] == "normal"
    assert b"Back in stock" not in request.body
    assert browser.decrypt(request.body) == {
        "id": "m-push-1",
        "title": "Back in stock",
        "body": "Your size is available",
        "url": "https://shop.example/p/1",
        "data": {"sku": "p1"},
    }
    # VAPID (RFC 8292): "vapid t=<JWT>,k=<public key>", the JWT signed by that key for this origin.
    scheme, _, params = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key(webpush(http).settings)
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), base64.urlsafe_b64decode(fields["k"] + "==")
    )
    claims = jwt.decode(
        fields["t"],
        public,
        algorithms=["ES256"],
        audience=vendor.base_url,
        options={"verify_exp": False},
    )
    assert claims["sub"] == "mailto:ops@shop.example"
    assert claims["exp"] == FakeClock().now_ms() // 1000 + 12 * 3600


async def test_another_subscription_cannot_read_the_payload(
    vendor: VendorServer, http: OutboundClient
) -> None:
    vendor.handler = lambda request: (201, {}, b"")
    browser = Browser(f"{vendor.base_url}/push/sub-1")
    await webpush(http).send(notification(browser.subscription))
    stranger = Browser(f"{vendor.base_url}/push/sub-2")
    with pytest.raises(Exception):  # noqa: B017 - any decryption failure will do
        stranger.decrypt(vendor.requests[0].body)


@pytest.mark.parametrize(
    ("status", "error", "flag"),
    [
        (410, Permanent, "invalid_recipient"),
        (404, Permanent, "invalid_recipient"),
        (413, Permanent, None),
        (429, Retryable, None),
        (502, Retryable, None),
    ],
)
async def test_push_service_answers_map_to_the_tree(
    vendor: VendorServer,
    http: OutboundClient,
    status: int,
    error: type[Exception],
    flag: str | None,
) -> None:
    vendor.handler = lambda request: json_reply(status, {"reason": "x"})
    with pytest.raises(error) as caught:
        await webpush(http).send(notification(Browser(f"{vendor.base_url}/push/s").subscription))
    if flag:
        assert caught.value.details[flag] is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "subscription",
    [
        "not json",
        json.dumps({"endpoint": "https://push.example/x"}),
        json.dumps({"keys": {"p256dh": "a", "auth": "b"}}),
    ],
)
async def test_broken_subscriptions_are_invalid_recipients(
    http: OutboundClient, subscription: str
) -> None:
    with pytest.raises(Permanent) as caught:
        await webpush(http).send(notification(subscription))
    assert caught.value.details["invalid_recipient"] is True


async def test_oversized_payload_is_refused_before_sending(
    vendor: VendorServer, http: OutboundClient
) -> None:
    content = PushContent(title="t", body="x" * 5000)
    message = OutboundMessage(
        message_id="m",
        channel="webpush",
        to=Browser(f"{vendor.base_url}/p").subscription,
        content=content,
    )
    with pytest.raises(Permanent, match="more than 3993"):
        await webpush(http).send(message)
    assert vendor.requests == []
