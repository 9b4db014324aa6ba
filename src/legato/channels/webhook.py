"""Webhook calls signed per the Standard Webhooks spec (standardwebhooks.com).

Each call carries `webhook-id` (the outbox key: the same across retries, so receivers can
deduplicate), `webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,<base64
HMAC-SHA256 of "id.timestamp.body">` keyed by the base64 bytes of a `whsec_` secret; several
secrets (rotation) give several space-separated signatures. The URL is user-defined, so calls go
through the guarded `OutboundClient`; 410 Gone is `Permanent` with `endpoint_gone` (disable the
endpoint). Redirects are not followed unless the settings say so. Never decides whether to send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legato.channels.outbound import OutboundClient, error_for_status
from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import OutboundMessage, SendResult, WebhookContent
from legato.errors import InvalidInput, Permanent
from legato.ports import Clock

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
    }
)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("webhook secret is not base64 after 'whsec_'", path="secret") from exc
    if len(key) < 16:
        raise InvalidInput("webhook secret must hold at least 16 bytes", path="secret")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: one `v1,<sig>` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


class WebhookSettings(BaseModel):
    """Settings of one webhook destination configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Used when a message names no URL of its own.
    url: str | None = None
    secrets: tuple[str, ...] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=15.0, gt=0)
    follow_redirects: bool = False

    @field_validator("secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("secrets")
    @classmethod
    def _decodable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for secret in value:
            try:
                secret_key(secret)
            except InvalidInput as exc:
                raise ValueError(exc.message) from exc
        return value

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by Legato")
        return value


class WebhookProvider:
    """POSTs `WebhookContent` as JSON to the message's URL (`to`) or the configured one."""

    channel: ClassVar[str] = "webhook"

    def __init__(
        self, name: str, settings: WebhookSettings, *, http: OutboundClient, clock: Clock
    ) -> None:
        self._name = name
        self.settings = settings
        self._http = http
        self._clock = clock

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> WebhookProvider:
        """Build from a channel document's settings."""
        parsed = parse_settings(WebhookSettings, settings)
        return cls(name, parsed, http=context.http, clock=context.clock)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Make one signed call; any 2xx counts as delivered."""
        content = message.content
        if not isinstance(content, WebhookContent):
            raise Permanent(f"webhook sends webhook content, got {type(content).__name__}")
        url = message.to.strip() or self.settings.url
        if not url:
            raise Permanent(f"webhook {self._name}: no URL in the message or the settings")
        body = orjson.dumps(content.payload)
        timestamp = self._clock.now_ms() // 1000
        headers = {
            **self.settings.headers,
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.settings.secrets, message.message_id, timestamp, body),
        }
        response = await self._http.request(
            "POST",
            url,
            content=body,
            headers=headers,
            time_limit=self.settings.timeout,
            follow_redirects=self.settings.follow_redirects,
        )
        if response.ok:
            return SendResult(provider=self._name, provider_message_id=message.message_id)
        if response.status == 410:
            raise Permanent(f"webhook {self._name}: HTTP 410, endpoint gone", endpoint_gone=True)
        error = error_for_status(response, f"webhook {self._name}", now_ms=self._http.now_ms())
        assert error is not None
        raise error

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and owned by the composition root."""
