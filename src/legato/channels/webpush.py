"""Browser web push: the payload encrypted for the subscription (RFC 8291, `aes128gcm`
content coding, via pywebpush) and authorised with VAPID (RFC 8292, via py-vapid), POSTed to the
subscription's push-service endpoint.

The endpoint comes from a browser, so the call goes through the guarded `OutboundClient`.
404/410 mean the subscription is gone: `Permanent` with `invalid_recipient` (delete it); 413 is
a payload too large; 429/5xx are `Retryable`. Never decides whether to send.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02, VapidException
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pywebpush import WebPusher, WebPushException

from legato.channels.outbound import OutboundClient, error_for_status
from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import OutboundMessage, PushContent, SendResult
from legato.errors import Permanent
from legato.ports import Clock

# RFC 8291 §4: one 4096-byte record, minus the header, tag and padding delimiter.
MAX_PAYLOAD_BYTES = 3993
_VAPID_LIFETIME_S = 12 * 3600


class WebPushSettings(BaseModel):
    """Settings of one web push sender (a VAPID key pair)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The private key: base64url of the raw 32-byte scalar, or PEM.
    vapid_private_key: str = Field(min_length=1)
    # Who push services may contact about this sender: "mailto:..." or an https URL.
    vapid_subject: str = Field(pattern=r"^(mailto:.+|https://.+)$")
    ttl_seconds: int = Field(default=86_400, ge=0, le=28 * 86_400)
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("vapid_private_key")
    @classmethod
    def _loadable(cls, value: str) -> str:
        _load_vapid(value)
        return value


def _load_vapid(key: str) -> Vapid02:
    try:
        if "-----BEGIN" in key:
            return Vapid02.from_pem(key.encode())
        return Vapid02.from_string(key.strip())
    except (ValueError, TypeError, VapidException) as exc:
        raise ValueError(f"VAPID private key unreadable: {exc}") from exc


def public_key(settings: WebPushSettings) -> str:
    """The VAPID public key (base64url, uncompressed point) browsers subscribe with as
    `applicationServerKey`."""
    raw = _load_vapid(settings.vapid_private_key).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class WebPushProvider:
    """Sends `PushContent` to a browser push subscription (given as JSON in `to`)."""

    channel: ClassVar[str] = "webpush"

    def __init__(
        self, name: str, settings: WebPushSettings, *, http: OutboundClient, clock: Clock
    ) -> None:
        self._name = name
        self.settings = settings
        self._http = http
        self._clock = clock
        self._vapid = _load_vapid(settings.vapid_private_key)

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> WebPushProvider:
        """Build from a channel document's settings."""
        parsed = parse_settings(WebPushSettings, settings)
        return cls(name, parsed, http=context.http, clock=context.clock)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Encrypt and deliver one notification; the push service's `Location` is the id."""
        content = message.content
        if not isinstance(content, PushContent):
            raise Permanent(f"webpush sends push content, got {type(content).__name__}")
        subscription = _subscription(message.to)
        endpoint: str = subscription["endpoint"]
        payload = orjson.dumps(notification_payload(message.message_id, content))
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Permanent(
                f"web push payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}"
            )
        try:
            body = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError) as exc:
            raise Permanent(
                f"web push subscription keys unusable: {exc}", invalid_recipient=True
            ) from exc
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "sub": self.settings.vapid_subject,
            "exp": self._clock.now_ms() // 1000 + _VAPID_LIFETIME_S,
        }
        headers = {
            **self._vapid.sign(claims),
            "ttl": str(
                content.ttl_seconds
                if content.ttl_seconds is not None
                else self.settings.ttl_seconds
            ),
            "urgency": self.settings.urgency,
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
        }
        response = await self._http.request(
            "POST",
            endpoint,
            content=bytes(body),
            headers=headers,
            time_limit=self.settings.timeout,
            follow_redirects=False,
        )
        if response.ok:
            return SendResult(
                provider=self._name, provider_message_id=response.headers.get("location")
            )
        if response.status in {404, 410}:
            raise Permanent(
                f"webpush {self._name}: HTTP {response.status}, subscription expired",
                status=response.status,
                invalid_recipient=True,
            )
        error = error_for_status(response, f"webpush {self._name}", now_ms=self._http.now_ms())
        assert error is not None
        raise error

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and owned by the composition root."""


def notification_payload(message_id: str, content: PushContent) -> dict[str, Any]:
    """The JSON the service worker receives (Legato's service worker shows it as-is)."""
    payload: dict[str, Any] = {"id": message_id, "title": content.title, "body": content.body}
    for key in ("url", "icon", "image"):
        value = getattr(content, key)
        if value:
            payload[key] = value
    if content.data:
        payload["data"] = dict(content.data)
    return payload


def _subscription(to: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(to)
    except orjson.JSONDecodeError as exc:
        raise Permanent("web push subscription is not JSON", invalid_recipient=True) from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("endpoint"), str):
        raise Permanent("web push subscription lacks an endpoint", invalid_recipient=True)
    keys = parsed.get("keys")
    if not isinstance(keys, dict) or not keys.get("p256dh") or not keys.get("auth"):
        raise Permanent("web push subscription lacks keys.p256dh/auth", invalid_recipient=True)
    return {
        "endpoint": parsed["endpoint"],
        "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
    }
