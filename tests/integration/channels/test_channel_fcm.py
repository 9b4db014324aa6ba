"""FCM HTTP v1 against a local server that plays both Google's OAuth token endpoint (verifying
the service-account JWT with PyJWT) and the FCM send endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from legato.channels.fcm import FCM_SCOPE, FcmProvider
from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext
from legato.domain.delivery import OutboundMessage, PushContent
from legato.errors import InvalidInput, Permanent, Retryable
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SEND_PATH = "/v1/projects/demo-shop/messages:send"


class FakeGoogle:
    """Token endpoint + FCM endpoint; `send_replies` answer sends in turn (then success)."""

    def __init__(self, vendor: VendorServer) -> None:
        self.vendor = vendor
        self.tokens_issued = 0
        self.claims: list[dict[str, Any]] = []
        self.send_replies: list[Reply] = []
        vendor.handler = self.handle

    def handle(self, request: Recorded) -> Reply:
        if request.path == "/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            try:
                claims = jwt.decode(
                    form["assertion"],
                    KEY.public_key(),
                    algorithms=["RS256"],
                    audience=f"{self.vendor.base_url}/token",
                    options={"verify_exp": False, "verify_iat": False},
                )
            except jwt.InvalidTokenError as exc:
                return json_reply(400, {"error": "invalid_grant", "error_description": str(exc)})
            self.claims.append(claims)
            self.tokens_issued += 1
            return json_reply(
                200,
                {
                    "access_token": f"ya29.t{self.tokens_issued}",
                    "expires_in": 3599,
                    "token_type": "Bearer",
                },
            )
        assert request.path == SEND_PATH
        if request.headers.get("authorization") != f"Bearer ya29.t{self.tokens_issued}":
            return fcm_error(
                401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials."
            )
        if self.send_replies:
            return self.send_replies.pop(0)
        return json_reply(
            200, {"name": f"projects/demo-shop/messages/0:{len(self.vendor.requests)}"}
        )


def fcm_error(
    status: int,
    status_name: str,
    code: str | None,
    message: str,
    headers: dict[str, str] | None = None,
) -> Reply:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
        if code
        else []
    )
    return json_reply(
        status,
        {"error": {"code": status, "message": message, "status": status_name, "details": details}},
        headers,
    )


def provider(
    vendor: VendorServer, http: OutboundClient, clock: FakeClock, pem: str = PEM, **extra: Any
) -> FcmProvider:
    settings = {
        "service_account": {
            "type": "service_account",
            "project_id": "demo-shop",
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": "legato@demo-shop.iam.gserviceaccount.com",
            "token_uri": f"{vendor.base_url}/token",
        },
        "api_base": vendor.base_url,
        **extra,
    }
    return FcmProvider.from_settings("fcm", settings, ProviderContext(http=http, clock=clock))


def push(token: str = "fcm-token-abc") -> OutboundMessage:
    content = PushContent(
        title="Your cart misses you",
        body="2 items are waiting",
        url="https://shop.example/cart",
        image="https://shop.example/cart.png",
        data={"cart_id": "c42"},
        ttl_seconds=3600,
    )
    return OutboundMessage(message_id="m1", channel="push", to=token, content=content)


async def test_send_exchanges_a_jwt_once_and_posts_the_v1_message(
    vendor: VendorServer, http: OutboundClient
) -> None:
    google = FakeGoogle(vendor)
    clock = FakeClock()
    fcm = provider(vendor, http, clock)
    first = await fcm.send(push())
    await fcm.send(push("fcm-token-def"))

    assert google.tokens_issued == 1
    [claims] = google.claims
    issued = clock.now_ms() // 1000
    assert claims == {
        "iss": "legato@demo-shop.iam.gserviceaccount.com",
        "scope": FCM_SCOPE,
        "aud": f"{vendor.base_url}/token",
        "iat": issued,
        "exp": issued + 3600,
    }
    assert first.provider_message_id == "projects/demo-shop/messages/0:2"
    send = vendor.requests[1]
    assert send.headers["authorization"] == "Bearer ya29.t1"
    assert send.json() == {
        "message": {
            "token": "fcm-token-abc",
            "notification": {
                "title": "Your cart misses you",
                "body": "2 items are waiting",
                "image": "https://shop.example/cart.png",
            },
            "data": {"cart_id": "c42", "url": "https://shop.example/cart"},
            "android": {"priority": "high", "ttl": "3600s"},
            "webpush": {"fcm_options": {"link": "https://shop.example/cart"}},
        }
    }


async def test_token_is_refreshed_when_it_nears_expiry(
    vendor: VendorServer, http: OutboundClient
) -> None:
    google = FakeGoogle(vendor)
    clock = FakeClock()
    fcm = provider(vendor, http, clock)
    await fcm.send(push())
    clock.advance(minutes=50)
    await fcm.send(push())
    assert google.tokens_issued == 1
    clock.advance(minutes=9)
    await fcm.send(push())
    assert google.tokens_issued == 2


async def test_a_revoked_token_is_replaced_once(vendor: VendorServer, http: OutboundClient) -> None:
    google = FakeGoogle(vendor)
    fcm = provider(vendor, http, FakeClock())
    await fcm.send(push())
    google.tokens_issued += 1  # the server forgets the token it gave
    await fcm.send(push())
    assert google.tokens_issued == 3
    assert [r.path for r in vendor.requests].count("/token") == 2


@pytest.mark.parametrize(
    ("reply", "error", "flag", "retry_after"),
    [
        (
            fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
            Permanent,
            "invalid_recipient",
            None,
        ),
        (
            fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
            Permanent,
            "invalid_recipient",
            None,
        ),
        (
            fcm_error(
                400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.data'"
            ),
            Permanent,
            None,
            None,
        ),
        (
            fcm_error(
                401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "APNs certificate rejected"
            ),
            Permanent,
            "provider_fault",
            None,
        ),
        (
            fcm_error(
                429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded", {"retry-after": "30"}
            ),
            Retryable,
            None,
            30.0,
        ),
        (
            fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
            Retryable,
            None,
            None,
        ),
    ],
)
async def test_fcm_errors_map_to_the_tree(
    vendor: VendorServer,
    http: OutboundClient,
    reply: Reply,
    error: type[Exception],
    flag: str | None,
    retry_after: float | None,
) -> None:
    google = FakeGoogle(vendor)
    google.send_replies = [reply, reply]
    with pytest.raises(error) as caught:
        await provider(vendor, http, FakeClock()).send(push())
    details = caught.value.details  # type: ignore[attr-defined]
    if flag is not None:
        assert details[flag] is True
    else:
        assert "invalid_recipient" not in details and "provider_fault" not in details
    if error is Retryable:
        assert caught.value.retry_after == retry_after  # type: ignore[attr-defined]


async def test_refused_token_exchange_is_a_provider_fault(
    vendor: VendorServer, http: OutboundClient
) -> None:
    FakeGoogle(vendor)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    fcm = provider(vendor, http, FakeClock(), pem=other_pem)  # a key Google does not know
    with pytest.raises(Permanent) as caught:
        await fcm.send(push())
    assert caught.value.details["provider_fault"] is True
    assert "invalid_grant" in caught.value.message


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            {"service_account": {"client_email": "x@y", "private_key": "not a key"}},
            "settings.service_account.private_key",
        ),
        ({"service_account": {"client_email": "x@y", "private_key": PEM}}, "settings.project_id"),
        ({"service_account": "{not json"}, "settings.service_account"),
    ],
)
def test_bad_service_accounts_name_the_field(change: dict[str, Any], path: str) -> None:
    vendor_url = "http://127.0.0.1:9"
    settings = {"api_base": vendor_url, **change}
    with pytest.raises(InvalidInput) as caught:
        FcmProvider.from_settings(
            "fcm", settings, ProviderContext(http=OutboundClient(), clock=FakeClock())
        )
    assert caught.value.details["path"] == path
