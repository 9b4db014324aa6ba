"""Provider status callbacks: verifying who sent them and reading what they say.

Three shapes are accepted. Twilio's status callback (form-encoded `MessageSid`,
`MessageStatus`, `ErrorCode`), authenticated by `X-Twilio-Signature` — base64 HMAC-SHA1, keyed by
the account's auth token, of the full callback URL followed by every POST parameter as name and
value, sorted by name. The WhatsApp Cloud API's webhook (`entry[].changes[].value.statuses[]`),
authenticated by `X-Hub-Signature-256` — `sha256=` and the hex HMAC-SHA256 of the raw body, keyed
by the Meta app secret. And a generic JSON callback signed per the Standard Webhooks spec
(`webhook-id`, `webhook-timestamp`, `webhook-signature`), for any vendor a small relay can
translate. All come out as `StatusUpdate`s. Pure: no I/O; the caller passes the current time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from legato.channels.webhook import secret_key
from legato.errors import InvalidInput, Unauthorized

#: What a status update may say about a sent message.
STATUSES = frozenset(
    {"delivered", "bounced", "complained", "failed", "opened", "clicked", "unsubscribed"}
)
#: How far a signed callback's timestamp may be from now (replay protection).
TOLERANCE_SECONDS = 300

# https://www.twilio.com/docs/api/errors: the number does not exist / cannot receive SMS.
_TWILIO_INVALID = frozenset({21211, 21214, 21217, 21407, 21612, 21614, 30005, 30006})
_TWILIO_UNSUBSCRIBED = frozenset({21610})
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
_WHATSAPP_INVALID = frozenset({131026})
_WHATSAPP_UNSUBSCRIBED = frozenset({131050})
_WHATSAPP_STATUSES = {"delivered": "delivered", "read": "opened", "failed": "failed"}
_TWILIO_STATUSES = {
    "delivered": "delivered",
    "read": "opened",
    "undelivered": "failed",
    "failed": "failed",
}


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a provider said about one message: found by Legato's message id or by the
    provider's own id. `hard` marks a bounce that must suppress the address."""

    status: str
    message_id: str | None = None
    provider_message_id: str | None = None
    reason: str = ""
    hard: bool = False
    url: str | None = None


def twilio_signature(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> str:
    """The `X-Twilio-Signature` Twilio computes for a POST to `url` with these parameters."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(
    url: str, params: Sequence[tuple[str, str]], signature: str | None, auth_tokens: Sequence[str]
) -> None:
    """Unauthorized unless `signature` is Twilio's for one of the account's auth tokens."""
    if not signature:
        raise Unauthorized("missing X-Twilio-Signature")
    valid = False
    for token in auth_tokens:
        valid |= hmac.compare_digest(twilio_signature(url, params, token), signature)
    if not valid:
        raise Unauthorized("X-Twilio-Signature does not match")


def parse_twilio(params: Mapping[str, str]) -> StatusUpdate | None:
    """The update a Twilio status callback carries (None for in-transit statuses)."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        raise InvalidInput("Twilio callback lacks MessageSid", field="MessageSid")
    raw = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    status = _TWILIO_STATUSES.get(raw)
    if status is None:
        return None
    code_text = params.get("ErrorCode") or ""
    code = int(code_text) if code_text.isdigit() else None
    reason = f"twilio {raw}" + (f" (error {code})" if code else "")
    if status == "failed" and code in _TWILIO_UNSUBSCRIBED:
        return StatusUpdate("unsubscribed", provider_message_id=sid, reason=reason)
    if status == "failed" and code in _TWILIO_INVALID:
        return StatusUpdate("bounced", provider_message_id=sid, reason=reason, hard=True)
    return StatusUpdate(status, provider_message_id=sid, reason=reason)


def verify_standard_webhook(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now_ms: int
) -> None:
    """Unauthorized unless the request carries a valid, fresh Standard Webhooks signature by
    one of `secrets` (`whsec_...`). `headers` keys are lower-case."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent_s = int(timestamp)
    except ValueError:
        raise Unauthorized("webhook-timestamp is not a number") from None
    if abs(now_ms // 1000 - sent_s) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is too far from now")
    signed = f"{msg_id}.{sent_s}.".encode() + body
    offered = [part.split(",", 1)[1] for part in signatures.split() if part.startswith("v1,")]
    valid = False
    for secret in secrets:
        expected = base64.b64encode(
            hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
        ).decode()
        for candidate in offered:
            valid |= hmac.compare_digest(expected, candidate)
    if not valid:
        raise Unauthorized("webhook-signature does not match")


def parse_generic(body: bytes) -> StatusUpdate:
    """The update of a generic JSON callback: `{"message_id" | "provider_message_id",
    "status", "reason"?, "hard"?, "url"?}`."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the body is not JSON", path="$") from exc
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", path="$")
    status = data.get("status")
    if status not in STATUSES:
        known = ", ".join(sorted(STATUSES))
        raise InvalidInput(f"status must be one of {known}", path="$.status")
    message_id = data.get("message_id")
    provider_id = data.get("provider_message_id")
    if not isinstance(message_id, str) and not isinstance(provider_id, str):
        raise InvalidInput("give message_id or provider_message_id", path="$.message_id")
    reason = data.get("reason")
    url = data.get("url")
    return StatusUpdate(
        status=str(status),
        message_id=message_id if isinstance(message_id, str) else None,
        provider_message_id=provider_id if isinstance(provider_id, str) else None,
        reason=reason if isinstance(reason, str) else "",
        hard=data.get("hard") is True,
        url=url if isinstance(url, str) else None,
    )


def verify_meta(body: bytes, signature: str | None, app_secrets: Sequence[str]) -> None:
    """Unauthorized unless `signature` (the `X-Hub-Signature-256` header) is `sha256=` and the
    hex HMAC-SHA256 of the raw body by one of the Meta app's secrets."""
    if not signature:
        raise Unauthorized("missing X-Hub-Signature-256")
    scheme, _, offered = signature.partition("=")
    if scheme != "sha256" or not offered:
        raise Unauthorized("X-Hub-Signature-256 must be sha256=<hex digest>")
    valid = False
    for secret in app_secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        valid |= hmac.compare_digest(expected, offered.lower())
    if not valid:
        raise Unauthorized("X-Hub-Signature-256 does not match")


def parse_whatsapp(body: bytes) -> list[StatusUpdate]:
    """The updates of a WhatsApp Cloud API webhook: one per entry of
    `entry[].changes[].value.statuses[]` (`sent` is already known and yields none); a webhook
    about inbound messages only yields none. InvalidInput when the body is not that shape."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the body is not JSON", path="$") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise InvalidInput("a WhatsApp webhook has an `entry` list", path="$.entry")
    updates: list[StatusUpdate] = []
    for entry_index, entry in enumerate(data["entry"]):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise InvalidInput("each entry has a `changes` list", path=f"$.entry[{entry_index}]")
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            statuses = value.get("statuses") if isinstance(value, dict) else None
            for status in statuses if isinstance(statuses, list) else []:
                update = _whatsapp_status(status)
                if update is not None:
                    updates.append(update)
    return updates


def _whatsapp_status(status: Any) -> StatusUpdate | None:
    if not isinstance(status, dict) or not isinstance(status.get("id"), str):
        raise InvalidInput("a status needs the message's `id` (wamid)", path="$.statuses.id")
    wamid: str = status["id"]
    raw = str(status.get("status") or "").lower()
    mapped = _WHATSAPP_STATUSES.get(raw)
    if mapped is None:
        return None
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), int) else None
    title = first.get("title") or first.get("message") or ""
    reason = f"whatsapp {raw}" + (f" (error {code}: {title})" if code else "")
    if mapped == "failed" and code in _WHATSAPP_UNSUBSCRIBED:
        return StatusUpdate("unsubscribed", provider_message_id=wamid, reason=reason)
    if mapped == "failed" and code in _WHATSAPP_INVALID:
        return StatusUpdate("bounced", provider_message_id=wamid, reason=reason, hard=True)
    return StatusUpdate(mapped, provider_message_id=wamid, reason=reason)
