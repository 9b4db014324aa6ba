"""Provider status callbacks: Twilio's signature and statuses, the WhatsApp Cloud API webhook
(X-Hub-Signature-256), the generic Standard Webhooks callback — written from the vendors'
specs, not from Legato's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from legato.channels.status import (
    StatusUpdate,
    parse_generic,
    parse_twilio,
    parse_whatsapp,
    twilio_signature,
    verify_meta,
    verify_standard_webhook,
    verify_twilio,
)
from legato.errors import InvalidInput, Unauthorized

URL = "https://legato.example/hooks/twilio/ws/sms?x=1"
PARAMS = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+14155550123")]
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def twilio_spec(url: str, params: list[tuple[str, str]], token: str) -> str:
    """Twilio's documented algorithm: URL, then each POST variable name+value sorted by name,
    HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(f"{k}{v}" for k, v in sorted(params, key=lambda p: p[0]))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_twilio_signature_follows_the_documented_algorithm() -> None:
    assert twilio_signature(URL, PARAMS, "tok") == twilio_spec(URL, PARAMS, "tok")


@pytest.mark.parametrize(
    ("signature", "tokens", "ok"),
    [
        (twilio_spec(URL, PARAMS, "tok"), ["tok"], True),
        (twilio_spec(URL, PARAMS, "tok"), ["old", "tok"], True),  # rotation
        (twilio_spec(URL, PARAMS, "other"), ["tok"], False),
        (twilio_spec(URL + "&y=2", PARAMS, "tok"), ["tok"], False),
        (twilio_spec(URL, [*PARAMS, ("Extra", "1")], "tok"), ["tok"], False),
        (None, ["tok"], False),
    ],
)
def test_twilio_verification(signature: str | None, tokens: list[str], ok: bool) -> None:
    if ok:
        verify_twilio(URL, PARAMS, signature, tokens)
    else:
        with pytest.raises(Unauthorized):
            verify_twilio(URL, PARAMS, signature, tokens)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"MessageSid": "SM1", "MessageStatus": "sent"}, None),
        ({"MessageSid": "SM1", "MessageStatus": "queued"}, None),
        ({"MessageSid": "SM1", "MessageStatus": "delivered"}, ("delivered", False)),
        ({"MessageSid": "SM1", "MessageStatus": "read"}, ("opened", False)),
        (
            {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"},
            ("failed", False),
        ),
        (
            {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30005"},
            ("bounced", True),
        ),
        (
            {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "21610"},
            ("unsubscribed", False),
        ),
        ({"SmsSid": "SM1", "SmsStatus": "delivered"}, ("delivered", False)),
    ],
)
def test_twilio_statuses(params: dict[str, str], expected: tuple[str, bool] | None) -> None:
    update = parse_twilio(params)
    if expected is None:
        assert update is None
    else:
        assert update is not None and update.provider_message_id == "SM1"
        assert (update.status, update.hard) == expected


def test_twilio_callback_without_sid_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_twilio({"MessageStatus": "delivered"})


def signed(body: bytes, at: int, secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": "v1,bogus v1," + base64.b64encode(mac).decode(),
    }


NOW_S = 1_767_603_600


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        (signed(b"{}", NOW_S), True),
        (signed(b"{}", NOW_S - 299), True),
        (signed(b"{}", NOW_S - 301), False),
        (signed(b"{}", NOW_S + 301), False),
        (signed(b"{ }", NOW_S), False),
        (signed(b"{}", NOW_S, msg_id="msg_2") | {"webhook-id": "msg_1"}, False),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW_S)}, False),
        (signed(b"{}", NOW_S) | {"webhook-timestamp": "soon"}, False),
    ],
)
def test_standard_webhook_verification(headers: dict[str, str], ok: bool) -> None:
    if ok:
        verify_standard_webhook([SECRET], headers, b"{}", now_ms=NOW_S * 1000)
    else:
        with pytest.raises(Unauthorized):
            verify_standard_webhook([SECRET], headers, b"{}", now_ms=NOW_S * 1000)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"message_id": "m1", "status": "delivered"}', StatusUpdate("delivered", "m1")),
        (
            b'{"provider_message_id": "p1", "status": "bounced", "hard": true, "reason": "5.1.1"}',
            StatusUpdate("bounced", None, "p1", "5.1.1", True),
        ),
        (
            b'{"message_id": "m1", "status": "clicked", "url": "https://x.example"}',
            StatusUpdate("clicked", "m1", url="https://x.example"),
        ),
    ],
)
def test_generic_callbacks(body: bytes, expected: StatusUpdate) -> None:
    assert parse_generic(body) == expected


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"nope", "$"),
        (b"[]", "$"),
        (b'{"message_id": "m1", "status": "exploded"}', "$.status"),
        (b'{"status": "delivered"}', "$.message_id"),
    ],
)
def test_bad_generic_callbacks_name_the_field(body: bytes, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_generic(body)
    assert caught.value.details["path"] == path


def meta_spec(body: bytes, secret: str) -> str:
    """Meta's documented algorithm: `sha256=` + hex HMAC-SHA256 of the raw payload, keyed by
    the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("signature", "ok"),
    [
        (meta_spec(b'{"entry": []}', "app-secret"), True),
        (meta_spec(b'{"entry": []}', "app-secret").upper().replace("SHA256=", "sha256="), True),
        (meta_spec(b'{"entry": []}', "other"), False),
        (meta_spec(b'{"entry":[]}', "app-secret"), False),
        (meta_spec(b'{"entry": []}', "app-secret").replace("sha256=", "sha1="), False),
        ("sha256=", False),
        (None, False),
    ],
)
def test_meta_signature_verification(signature: str | None, ok: bool) -> None:
    body = b'{"entry": []}'
    if ok:
        verify_meta(body, signature, ["old-secret", "app-secret"])
    else:
        with pytest.raises(Unauthorized):
            verify_meta(body, signature, ["app-secret"])


def whatsapp_hook(*statuses: dict[str, Any], messages: bool = False) -> bytes:
    """A webhook as the Cloud API posts it (field `messages`, value with metadata)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "1055"},
    }
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["messages"] = [{"from": "33612345678", "id": "wamid.in", "type": "text"}]
    change = {"field": "messages", "value": value}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}
    ).encode()


def status(wamid: str, name: str, code: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": "1767603600",
        "recipient_id": "33612345678",
    }
    if code is not None:
        found["errors"] = [{"code": code, "title": "an error"}]
    return found


def test_whatsapp_statuses() -> None:
    body = whatsapp_hook(
        status("wamid.1", "sent"),
        status("wamid.1", "delivered"),
        status("wamid.1", "read"),
        status("wamid.2", "failed", 131049),
        status("wamid.3", "failed", 131026),
        status("wamid.4", "failed", 131050),
    )
    found = [(u.provider_message_id, u.status, u.hard) for u in parse_whatsapp(body)]
    assert found == [
        ("wamid.1", "delivered", False),
        ("wamid.1", "opened", False),
        ("wamid.2", "failed", False),
        ("wamid.3", "bounced", True),
        ("wamid.4", "unsubscribed", False),
    ]
    assert parse_whatsapp(whatsapp_hook(messages=True)) == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"nope", "$"),
        (b'{"object": "whatsapp_business_account"}', "$.entry"),
        (b'{"entry": [{"id": "WABA"}]}', "$.entry[0]"),
        (
            b'{"entry": [{"changes": [{"value": {"statuses": [{"status": "read"}]}}]}]}',
            "$.statuses.id",
        ),
    ],
)
def test_bad_whatsapp_webhooks_name_the_field(body: bytes, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_whatsapp(body)
    assert caught.value.details["path"] == path
