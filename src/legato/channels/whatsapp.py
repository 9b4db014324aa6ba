"""WhatsApp through the WhatsApp Cloud API format: `POST {base_url}/{api_version}/
{phone_number_id}/messages` with a bearer token, sending session text or a pre-approved
template.

The error object (`error.code`, `error.message`, `error.error_data.details`) refines the status
mapping: throttling and transient platform errors are `Retryable`; token and account problems
carry `provider_fault`; undeliverable recipients `invalid_recipient`; a closed 24-hour session
`session_closed` (send a template instead); a person who stopped marketing `unsubscribed`.
Calls go through the guarded `OutboundClient`. Never decides whether to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from legato.channels.outbound import OutboundClient, OutboundResponse, error_for_status
from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import OutboundMessage, SendResult, WhatsAppContent
from legato.errors import Permanent, ProviderError, Retryable

# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
_RETRYABLE = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
_PROVIDER_FAULT = frozenset({0, 3, 10, 190, 368, 131031, 131042, 131045, 133010})
_INVALID_RECIPIENT = frozenset({131026})
_SESSION_CLOSED = frozenset({131047})
_UNSUBSCRIBED = frozenset({131050})


class WhatsAppSettings(BaseModel):
    """Settings of one WhatsApp Cloud API sender (a business phone number)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phone_number_id: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    base_url: str = "https://graph.facebook.com"
    api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    timeout: float = Field(default=10.0, gt=0)
    # The Meta app's secret: status webhooks (`/hooks/whatsapp/...`) are verified with it.
    app_secret: str | None = Field(default=None, min_length=1)
    # What Meta echoes when the webhook URL is registered (the GET subscription handshake).
    verify_token: str | None = Field(default=None, min_length=1)


class WhatsAppProvider:
    """Sends `WhatsAppContent` from one business phone number."""

    channel: ClassVar[str] = "whatsapp"

    def __init__(self, name: str, settings: WhatsAppSettings, *, http: OutboundClient) -> None:
        self._name = name
        self.settings = settings
        self._http = http
        base = settings.base_url.rstrip("/")
        number = quote(settings.phone_number_id, safe="")
        self._url = f"{base}/{settings.api_version}/{number}/messages"
        self._headers = {"authorization": f"Bearer {settings.access_token}"}

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> WhatsAppProvider:
        """Build from a channel document's settings."""
        return cls(name, parse_settings(WhatsAppSettings, settings), http=context.http)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and owned by the composition root."""

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; the `wamid` returned is the provider message id."""
        content = message.content
        if not isinstance(content, WhatsAppContent):
            raise Permanent(f"whatsapp sends whatsapp content, got {type(content).__name__}")
        response = await self._http.request(
            "POST",
            self._url,
            json=whatsapp_payload(message.to, content),
            headers=self._headers,
            time_limit=self.settings.timeout,
            follow_redirects=False,
        )
        if response.ok:
            body = response.json()
            messages = body.get("messages") if isinstance(body, dict) else None
            wamid = None
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
            return SendResult(provider=self._name, provider_message_id=wamid)
        raise _whatsapp_error(self._name, response, now_ms=self._http.now_ms())


def whatsapp_payload(to: str, content: WhatsAppContent) -> dict[str, Any]:
    """The Cloud API request body for one message (`to` as digits, no `+`)."""
    recipient = "".join(ch for ch in to if ch.isdigit())
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient,
    }
    if content.template_name is not None:
        template: dict[str, Any] = {
            "name": content.template_name,
            "language": {"code": content.language},
        }
        if content.components:
            template["components"] = [dict(component) for component in content.components]
        payload.update(type="template", template=template)
        return payload
    if not content.text:
        raise Permanent("whatsapp message has neither text nor a template")
    payload.update(type="text", text={"preview_url": content.preview_url, "body": content.text})
    return payload


def _whatsapp_error(name: str, response: OutboundResponse, *, now_ms: int) -> ProviderError:
    base = error_for_status(response, f"whatsapp {name}", now_ms=now_ms)
    assert base is not None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        if response.status in {401, 403} and isinstance(base, Permanent):
            return Permanent(base.message, status=response.status, provider_fault=True)
        return base
    code: int = error["code"]
    error_data = error.get("error_data")
    extra = error_data.get("details") if isinstance(error_data, dict) else None
    text = f"whatsapp {name}: {code} {error.get('message', '')}" + (f" ({extra})" if extra else "")
    details: dict[str, Any] = {
        "status": response.status,
        "code": code,
        "subcode": error.get("error_subcode"),
        "trace": error.get("fbtrace_id"),
    }
    if code in _RETRYABLE or isinstance(base, Retryable):
        retry_after = base.retry_after if isinstance(base, Retryable) else None
        return Retryable(text, retry_after=retry_after, **details)
    if code in _PROVIDER_FAULT or 200 <= code <= 299 or response.status in {401, 403}:
        return Permanent(text, provider_fault=True, **details)
    if code in _INVALID_RECIPIENT:
        return Permanent(text, invalid_recipient=True, **details)
    if code in _SESSION_CLOSED:
        return Permanent(text, session_closed=True, **details)
    if code in _UNSUBSCRIBED:
        return Permanent(text, unsubscribed=True, **details)
    return Permanent(text, **details)
