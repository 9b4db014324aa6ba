"""Mobile push in the FCM HTTP v1 format: `POST {api_base}/v1/projects/{project}/messages:send`
with an OAuth2 bearer token obtained by the service-account JWT grant (RFC 7523) at the
account's token URL, cached until shortly before it expires.

FCM's error details (`google.firebase.fcm.v1.FcmError.errorCode`) refine the status mapping:
UNREGISTERED and SENDER_ID_MISMATCH are `Permanent` with `invalid_recipient` (forget the
token), QUOTA_EXCEEDED/UNAVAILABLE/INTERNAL are `Retryable`, THIRD_PARTY_AUTH_ERROR and refused
credentials carry `provider_fault`; a 401 refreshes the token once. Calls go through the guarded
`OutboundClient`. Never decides whether to send.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legato.channels.outbound import OutboundClient, OutboundResponse, error_for_status
from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import OutboundMessage, PushContent, SendResult
from legato.errors import InvalidInput, Permanent, ProviderError, Retryable
from legato.ports import Clock

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_LIFETIME_S = 3600
# Refresh this long before expiry, so a token never lapses between check and use.
_REFRESH_MARGIN_MS = 120_000
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
_INVALID_RECIPIENT_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


class ServiceAccount(BaseModel):
    """The fields of a Google service-account key file that the JWT grant needs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    client_email: str = Field(min_length=3)
    private_key: str = Field(min_length=1)
    private_key_id: str | None = None
    project_id: str | None = None
    token_uri: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)


class FcmSettings(BaseModel):
    """Settings of one FCM project configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_account: ServiceAccount
    project_id: str | None = None
    api_base: str = "https://fcm.googleapis.com"
    token_url: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    android_priority: str = Field(default="high", pattern=r"^(high|normal)$")

    @field_validator("service_account", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        # The key file may be pasted whole as a JSON string.
        return orjson.loads(value) if isinstance(value, str | bytes) else value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FcmProvider:
    """Sends `PushContent` to FCM registration tokens of one Firebase project."""

    channel: ClassVar[str] = "push"

    def __init__(
        self, name: str, settings: FcmSettings, *, http: OutboundClient, clock: Clock
    ) -> None:
        self._name = name
        self.settings = settings
        self._http = http
        self._clock = clock
        account = settings.service_account
        try:
            key = serialization.load_pem_private_key(account.private_key.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"fcm {name}: service account private key unreadable: {exc}",
                path="settings.service_account.private_key",
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInput(
                f"fcm {name}: service account key is not an RSA key",
                path="settings.service_account.private_key",
            )
        project = settings.project_id or account.project_id
        if not project:
            raise InvalidInput(
                f"fcm {name}: no project_id in settings or service account",
                path="settings.project_id",
            )
        self._key = key
        self._token_url = settings.token_url or account.token_uri
        base = settings.api_base.rstrip("/")
        self._send_url = f"{base}/v1/projects/{quote(project, safe='')}/messages:send"
        self._token: str | None = None
        self._token_expires_ms = 0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> FcmProvider:
        """Build from a channel document's settings."""
        parsed = parse_settings(FcmSettings, settings)
        return cls(name, parsed, http=context.http, clock=context.clock)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one notification; the message `name` FCM returns is the provider message id."""
        content = message.content
        if not isinstance(content, PushContent):
            raise Permanent(f"fcm sends push content, got {type(content).__name__}")
        body = {"message": self._message(message.to, content)}
        response = await self._post(body)
        if response.status == 401:
            # The cached token may have been revoked early: fetch a fresh one, once.
            self._token = None
            response = await self._post(body)
        if response.ok:
            payload = response.json()
            name = payload.get("name") if isinstance(payload, dict) else None
            return SendResult(provider=self._name, provider_message_id=name)
        raise _fcm_error(self._name, response, now_ms=self._http.now_ms())

    async def _post(self, body: dict[str, Any]) -> OutboundResponse:
        token = await self.access_token()
        return await self._http.request(
            "POST",
            self._send_url,
            json=body,
            headers={"authorization": f"Bearer {token}"},
            time_limit=self.settings.timeout,
            follow_redirects=False,
        )

    def _message(self, token: str, content: PushContent) -> dict[str, Any]:
        notification: dict[str, str] = {"title": content.title, "body": content.body}
        if content.image:
            notification["image"] = content.image
        data = dict(content.data)
        if content.url:
            data.setdefault("url", content.url)
        message: dict[str, Any] = {"token": token, "notification": notification}
        if data:
            message["data"] = data
        android: dict[str, Any] = {"priority": self.settings.android_priority}
        if content.ttl_seconds is not None:
            android["ttl"] = f"{content.ttl_seconds}s"
        if content.icon:
            android["notification"] = {"icon": content.icon}
        message["android"] = android
        if content.url and content.url.startswith("https://"):
            message["webpush"] = {"fcm_options": {"link": content.url}}
        return message

    async def access_token(self) -> str:
        """A valid OAuth2 access token, exchanged for a signed JWT when the cached one is old."""
        async with self._token_lock:
            now = self._clock.now_ms()
            if self._token is not None and now < self._token_expires_ms - _REFRESH_MARGIN_MS:
                return self._token
            response = await self._http.request(
                "POST",
                self._token_url,
                form={"grant_type": _JWT_GRANT, "assertion": self._assertion(now)},
                time_limit=self.settings.timeout,
                follow_redirects=False,
            )
            payload = response.json()
            if not response.ok:
                raise _token_error(self._name, response, payload, now_ms=now)
            token = payload.get("access_token") if isinstance(payload, dict) else None
            if not isinstance(token, str) or not token:
                raise Retryable(f"fcm {self._name}: token endpoint answered without a token")
            expires_in = payload.get("expires_in", _TOKEN_LIFETIME_S)
            lifetime_s = expires_in if isinstance(expires_in, int) else _TOKEN_LIFETIME_S
            self._token = token
            self._token_expires_ms = now + lifetime_s * 1000
            return token

    def _assertion(self, now_ms: int) -> str:
        account = self.settings.service_account
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if account.private_key_id:
            header["kid"] = account.private_key_id
        issued = now_ms // 1000
        claims = {
            "iss": account.client_email,
            "scope": FCM_SCOPE,
            "aud": self._token_url,
            "iat": issued,
            "exp": issued + _TOKEN_LIFETIME_S,
        }
        signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared and owned by the composition root."""
        self._token = None


def _token_error(
    name: str, response: OutboundResponse, payload: Any, *, now_ms: int
) -> ProviderError:
    base = error_for_status(response, f"fcm {name} token exchange", now_ms=now_ms)
    assert base is not None
    if isinstance(base, Retryable):
        return base
    reason = ""
    if isinstance(payload, dict):
        reason = f": {payload.get('error', '')} {payload.get('error_description', '')}".rstrip()
    return Permanent(f"{base.message}{reason}", status=response.status, provider_fault=True)


def _fcm_error(name: str, response: OutboundResponse, *, now_ms: int) -> ProviderError:
    base = error_for_status(response, f"fcm {name}", now_ms=now_ms)
    assert base is not None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if response.status in {401, 403} and isinstance(base, Permanent):
            return Permanent(base.message, status=response.status, provider_fault=True)
        return base
    code = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            code = detail.get("errorCode")
    status_name = error.get("status")
    text = f"fcm {name}: {code or status_name} {error.get('message', '')}".rstrip()
    details = {"status": response.status, "code": code or status_name}
    if code in _RETRYABLE_CODES or isinstance(base, Retryable):
        retry_after = base.retry_after if isinstance(base, Retryable) else None
        return Retryable(text, retry_after=retry_after, **details)
    if code in _INVALID_RECIPIENT_CODES:
        return Permanent(text, invalid_recipient=True, **details)
    if code == "THIRD_PARTY_AUTH_ERROR" or response.status in {401, 403}:
        return Permanent(text, provider_fault=True, **details)
    return Permanent(text, **details)
