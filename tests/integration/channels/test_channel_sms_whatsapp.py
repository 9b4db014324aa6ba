"""SMS (Twilio REST format) and WhatsApp (Cloud API format) against local servers answering
in each vendor's success and error shapes."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import pytest

from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext
from legato.channels.twilio import TwilioSmsProvider
from legato.channels.whatsapp import WhatsAppProvider
from legato.domain.delivery import OutboundMessage, SmsContent, WhatsAppContent
from legato.errors import InvalidInput, Permanent, Retryable
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply

SID = "AC0123456789abcdef0123456789abcdef"


def twilio(vendor: VendorServer, http: OutboundClient, **settings: Any) -> TwilioSmsProvider:
    base = {
        "account_sid": SID,
        "auth_token": "tok",
        "from": "+14155550100",
        "base_url": vendor.base_url,
    }
    context = ProviderContext(http=http, clock=FakeClock())
    return TwilioSmsProvider.from_settings("twilio-main", {**base, **settings}, context)


def sms(to: str = "+14155552671", body: str = "Your code is 123456") -> OutboundMessage:
    return OutboundMessage(message_id="m1", channel="sms", to=to, content=SmsContent(body=body))


def twilio_error(status: int, code: int, message: str) -> Reply:
    return json_reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


async def test_sms_is_a_form_post_with_basic_auth(
    vendor: VendorServer, http: OutboundClient
) -> None:
    vendor.handler = lambda request: json_reply(
        201, {"sid": "SM0001", "status": "queued", "to": "+14155552671"}
    )
    provider = twilio(vendor, http, status_callback="https://legato.example/hooks/twilio")
    result = await provider.send(sms())

    assert (result.provider, result.provider_message_id) == ("twilio-main", "SM0001")
    [request] = vendor.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"{SID}:tok".encode()).decode()
    )
    assert parse_qs(request.body.decode()) == {
        "To": ["+14155552671"],
        "From": ["+14155550100"],
        "Body": ["Your code is 123456"],
        "StatusCallback": ["https://legato.example/hooks/twilio"],
    }


async def test_messaging_service_and_api_key_auth(
    vendor: VendorServer, http: OutboundClient
) -> None:
    vendor.handler = lambda request: json_reply(201, {"sid": "SM0002"})
    provider = twilio(
        vendor,
        http,
        **{
            "from": None,
            "auth_token": None,
            "messaging_service_sid": "MG123",
            "api_key_sid": "SK1",
            "api_key_secret": "shh",
        },
    )
    await provider.send(sms())
    [request] = vendor.requests
    assert parse_qs(request.body.decode())["MessagingServiceSid"] == ["MG123"]
    assert "From" not in parse_qs(request.body.decode())
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"SK1:shh").decode()


@pytest.mark.parametrize(
    ("reply", "error", "flags"),
    [
        (
            twilio_error(400, 21211, "The 'To' number is not a valid phone number."),
            Permanent,
            {"invalid_recipient": True, "code": 21211},
        ),
        (
            twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
            Permanent,
            {"unsubscribed": True},
        ),
        (twilio_error(401, 20003, "Authenticate"), Permanent, {"provider_fault": True}),
        (
            twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            ),
            Permanent,
            {"code": 21617},
        ),
        (twilio_error(429, 20429, "Too Many Requests"), Retryable, {"code": 20429}),
        (
            json_reply(503, {"message": "Service Unavailable"}, {"retry-after": "7"}),
            Retryable,
            {"status": 503},
        ),
    ],
)
async def test_twilio_errors_map_to_the_tree(
    vendor: VendorServer,
    http: OutboundClient,
    reply: Reply,
    error: type[Exception],
    flags: dict[str, Any],
) -> None:
    vendor.handler = lambda request: reply
    with pytest.raises(error) as caught:
        await twilio(vendor, http).send(sms())
    for key, value in flags.items():
        assert caught.value.details[key] == value  # type: ignore[attr-defined]
    if reply[0] == 503:
        assert caught.value.retry_after == 7.0  # type: ignore[attr-defined]


def test_twilio_settings_need_a_sender_and_credentials() -> None:
    context = ProviderContext(http=OutboundClient(), clock=FakeClock())
    with pytest.raises(InvalidInput, match="from"):
        TwilioSmsProvider.from_settings("t", {"account_sid": SID, "auth_token": "x"}, context)
    with pytest.raises(InvalidInput, match="auth_token"):
        TwilioSmsProvider.from_settings("t", {"account_sid": SID, "from": "+1415"}, context)


# -- WhatsApp ------------------------------------------------------------------------------------


def whatsapp(vendor: VendorServer, http: OutboundClient) -> WhatsAppProvider:
    settings = {
        "phone_number_id": "106540352242922",
        "access_token": "EAAG-token",
        "base_url": vendor.base_url,
        "api_version": "v21.0",
    }
    return WhatsAppProvider.from_settings(
        "wa", settings, ProviderContext(http=http, clock=FakeClock())
    )


def wa_success(request: Recorded) -> Reply:
    return json_reply(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": request.json()["to"], "wa_id": request.json()["to"]}],
            "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
        },
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            WhatsAppContent(text="Your order shipped"),
            {"type": "text", "text": {"preview_url": False, "body": "Your order shipped"}},
        ),
        (
            WhatsAppContent(
                template_name="order_update",
                language="fr",
                components=({"type": "body", "parameters": [{"type": "text", "text": "Ann"}]},),
            ),
            {
                "type": "template",
                "template": {
                    "name": "order_update",
                    "language": {"code": "fr"},
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}
                    ],
                },
            },
        ),
    ],
)
async def test_whatsapp_session_text_and_template(
    vendor: VendorServer, http: OutboundClient, content: WhatsAppContent, expected: dict[str, Any]
) -> None:
    vendor.handler = wa_success
    result = await whatsapp(vendor, http).send(
        OutboundMessage(message_id="m1", channel="whatsapp", to="+16467043595", content=content)
    )
    assert (
        result.provider_message_id == "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"
    )
    [request] = vendor.requests
    assert request.path == "/v21.0/106540352242922/messages"
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16467043595",
        **expected,
    }


def wa_error(status: int, code: int, message: str, details: str = "") -> Reply:
    return json_reply(
        status,
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "AbCdEf",
            }
        },
    )


@pytest.mark.parametrize(
    ("reply", "error", "flag"),
    [
        (
            wa_error(400, 131047, "Re-engagement message", "More than 24 hours have passed"),
            Permanent,
            "session_closed",
        ),
        (wa_error(400, 131026, "Message undeliverable"), Permanent, "invalid_recipient"),
        (
            wa_error(401, 190, "Error validating access token: Session has expired"),
            Permanent,
            "provider_fault",
        ),
        (wa_error(400, 131050, "User stopped marketing messages"), Permanent, "unsubscribed"),
        (wa_error(400, 130429, "Rate limit hit"), Retryable, None),
        (wa_error(500, 131000, "Something went wrong"), Retryable, None),
        (wa_error(400, 132001, "Template name does not exist in the translation"), Permanent, None),
    ],
)
async def test_whatsapp_errors_map_to_the_tree(
    vendor: VendorServer,
    http: OutboundClient,
    reply: Reply,
    error: type[Exception],
    flag: str | None,
) -> None:
    vendor.handler = lambda request: reply
    message = OutboundMessage(
        message_id="m1", channel="whatsapp", to="+16467043595", content=WhatsAppContent(text="hi")
    )
    with pytest.raises(error) as caught:
        await whatsapp(vendor, http).send(message)
    details = caught.value.details  # type: ignore[attr-defined]
    assert details["code"] == reply_code(reply)
    assert details["trace"] == "AbCdEf"
    if flag is not None:
        assert details[flag] is True
    else:
        assert not {"session_closed", "invalid_recipient", "provider_fault", "unsubscribed"} & set(
            details
        )


def reply_code(reply: Reply) -> int:
    import json

    return int(json.loads(reply[2])["error"]["code"])
