"""SMS through a Twilio-compatible REST API: a form-encoded POST to
`{base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth (account SID
and auth token, or an API key pair).

Twilio's error JSON (`code`, `message`, `more_info`) refines the status mapping: invalid or
unreachable numbers are `Permanent` with `invalid_recipient`, a number that texted STOP is
`Permanent` with `unsubscribed`, credential and sender problems carry `provider_fault`, 429 and
5xx are `Retryable`. Calls go through the guarded `OutboundClient`. Never decides whether to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from legato.channels.outbound import (
    OutboundClient,
    OutboundResponse,
    basic_auth,
    error_for_status,
)
from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import OutboundMessage, SendResult, SmsContent
from legato.errors import Permanent, ProviderError, Retryable

# https://www.twilio.com/docs/api/errors — the codes that say something about the recipient.
_INVALID_RECIPIENT = frozenset({21211, 21214, 21217, 21401, 21407, 21421, 21612, 21614})
_UNSUBSCRIBED = frozenset({21610})
_PROVIDER_FAULT = frozenset({20003, 20005, 20404, 21408, 21606, 21659, 21660})
_RATE_LIMITED = frozenset({20429, 14107})


class TwilioSettings(BaseModel):
    """Settings of one Twilio-compatible SMS provider configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    account_sid: str = Field(min_length=1)
    auth_token: str | None = None
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    from_number: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = None
    base_url: str = "https://api.twilio.com"
    status_callback: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> TwilioSettings:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("give `from` (a sender number) or `messaging_service_sid`")
        if self.auth_token is None and (self.api_key_sid is None or self.api_key_secret is None):
            raise ValueError("give `auth_token`, or `api_key_sid` with `api_key_secret`")
        return self


class TwilioSmsProvider:
    """Sends `SmsContent` through one Twilio account (or a compatible API)."""

    channel: ClassVar[str] = "sms"

    def __init__(self, name: str, settings: TwilioSettings, *, http: OutboundClient) -> None:
        self._name = name
        self.settings = settings
        self._http = http
        base = settings.base_url.rstrip("/")
        self._url = (
            f"{base}/2010-04-01/Accounts/{quote(settings.account_sid, safe='')}/Messages.json"
        )
        if settings.api_key_sid is not None and settings.api_key_secret is not None:
            self._auth = basic_auth(settings.api_key_sid, settings.api_key_secret)
        else:
            self._auth = basic_auth(settings.account_sid, settings.auth_token or "")

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> TwilioSmsProvider:
        """Build from a channel document's settings."""
        return cls(name, parse_settings(TwilioSettings, settings), http=context.http)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and owned by the composition root."""

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create one Message resource; its SID is the provider message id."""
        content = message.content
        if not isinstance(content, SmsContent):
            raise Permanent(f"twilio sends sms content, got {type(content).__name__}")
        form = {"To": message.to, "Body": content.body}
        if self.settings.messaging_service_sid is not None:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        if self.settings.from_number is not None:
            form["From"] = self.settings.from_number
        if self.settings.status_callback is not None:
            form["StatusCallback"] = self.settings.status_callback
        response = await self._http.request(
            "POST",
            self._url,
            form=form,
            headers={"authorization": self._auth, "accept": "application/json"},
            time_limit=self.settings.timeout,
            follow_redirects=False,
        )
        if response.ok:
            body = response.json()
            sid = body.get("sid") if isinstance(body, dict) else None
            return SendResult(provider=self._name, provider_message_id=sid)
        raise _twilio_error(self._name, response, now_ms=self._http.now_ms())


def _twilio_error(name: str, response: OutboundResponse, *, now_ms: int) -> ProviderError:
    base = error_for_status(response, f"twilio {name}", now_ms=now_ms)
    assert base is not None
    status, body = response.status, response.json()
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        if status in {401, 403, 404} and isinstance(base, Permanent):
            return Permanent(base.message, status=status, provider_fault=True)
        return base
    code: int = body["code"]
    text = f"twilio {name}: {code} {body.get('message', '')}".rstrip()
    details = {"status": status, "code": code, "more_info": body.get("more_info")}
    if code in _RATE_LIMITED or isinstance(base, Retryable):
        retry_after = base.retry_after if isinstance(base, Retryable) else None
        return Retryable(text, retry_after=retry_after, **details)
    if code in _UNSUBSCRIBED:
        return Permanent(text, unsubscribed=True, **details)
    if code in _INVALID_RECIPIENT:
        return Permanent(text, invalid_recipient=True, **details)
    if code in _PROVIDER_FAULT or status in {401, 403}:
        return Permanent(text, provider_fault=True, **details)
    return Permanent(text, **details)
