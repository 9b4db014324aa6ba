"""SMTP message bytes: headers stored as they are and parts built and written by the provider
give exactly the bytes the standard library's header parser, `set_content` and generator give;
hard values still go through them; a long List-Unsubscribe URL reaches the server whole (no
RFC 2047 encoded words, no folding inside the URI)."""

from __future__ import annotations

import io
import re
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import pytest

from legato.channels import smtp as smtp_module
from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext
from legato.channels.smtp import SmtpProvider
from legato.domain.delivery import EmailContent, OutboundMessage
from legato.errors import Permanent
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import SmtpServer
from tests.integration.channels.test_channel_smtp import parse

LONG_URL = "https://links.shop.example/t/u/" + "Ab9-_" * 40


def provider(port: int = 25, **settings: Any) -> SmtpProvider:
    context = ProviderContext(http=OutboundClient(), clock=FakeClock())
    base = {"host": "127.0.0.1", "port": port, "from": "Shop <shop@example.com>"}
    return SmtpProvider.from_settings("primary", {**base, "security": "none", **settings}, context)


def parsed_everywhere(smtp: SmtpProvider, to: str, content: EmailContent) -> EmailMessage:
    """The message as the header parser builds it (every header set through the registry)."""
    reference = EmailMessage(policy=smtp_module._POLICY)
    built = smtp._build(
        OutboundMessage(message_id="m1", channel="email", to=to, content=content), content
    ).message
    originals = {
        "from": content.from_address or smtp.settings.from_address,
        "to": Address(addr_spec=to),
        "reply-to": content.reply_to or smtp.settings.reply_to,
    }
    for name, value in built.items():
        if name.lower() not in {"content-type", "content-transfer-encoding", "mime-version"}:
            reference[name] = originals.get(name.lower()) or str(value)
    for name, value in content.headers.items():
        if name.lower().startswith("content-"):
            reference[name] = value
    if content.text is not None:
        reference.set_content(content.text)
        if content.html is not None:
            reference.add_alternative(content.html, subtype="html")
    else:
        reference.set_content(content.html or "", subtype="html")
    return reference


def wire(mail: EmailMessage, utf8: bool = False, seven_bit: bool = False) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, policy=smtp_module._WIRE_POLICIES[utf8, seven_bit]).flatten(mail)
    return re.sub(rb"===============\d+==", b"BOUNDARY", out.getvalue())


@pytest.mark.parametrize(
    ("to", "settings", "content"),
    [
        ("ann@example.org", {}, EmailContent(subject="Your order c12", text="hi")),
        (
            "o'brien+tag@mail.example.co.uk",
            {"from": '"Shop, Inc." <shop@example.com>', "reply_to": "help@example.com"},
            EmailContent(subject="50% (off) [today] <b> a=b; c", html="<p>hi</p>", text="hi"),
        ),
        ("ann@example.org", {}, EmailContent(subject="Grüße, Ann — «ça va»", text="é\n" * 3)),
        ("ann@example.org", {}, EmailContent(subject="=?utf-8?q?looks_encoded?=", text="x")),
        ("ann@example.org", {}, EmailContent(subject="two  spaces ", text="x")),
        ("ann@example.org", {}, EmailContent(subject="long " * 250, text="x")),
        ('"quoted local"@example.org', {}, EmailContent(subject="s", text="x")),
        ("ann@example.org", {}, EmailContent(subject="s", text="a" * 1200, html="ü" * 1200)),
        ("ann@example.org", {}, EmailContent(subject="s", html="<p>€ " + "x " * 700 + "</p>")),
        (
            "ann@example.org",
            {},
            EmailContent(
                subject="s",
                text="hi",
                html="<p>hi</p>",
                headers={"Content-Language": "fr", "X-Campaign": "c1"},
            ),
        ),
        (
            "ann@example.org",
            {"from": "Shöp (the shop) <shop@example.com>"},
            EmailContent(
                subject="s",
                html="<p>hi</p>",
                unsubscribe_url=LONG_URL,
                unsubscribe_mailto="unsubscribe@shop.example",
            ),
        ),
    ],
)
def test_stored_values_write_what_the_header_parser_writes(
    to: str, settings: dict[str, Any], content: EmailContent
) -> None:
    smtp = provider(**settings)
    message = OutboundMessage(message_id="m1", channel="email", to=to, content=content)
    for _ in range(2):  # the second time, From and Reply-To come from the cache
        built = smtp._build(message, content)
        reference = parsed_everywhere(smtp, to, content)
        for utf8 in (False, True):
            for seven_bit in (False, True):
                expected = wire(reference, utf8, seven_bit)
                assert wire(built.message, utf8, seven_bit) == expected
                written = smtp_module._bytes(built, utf8, seven_bit)
                assert re.sub(rb"===============\d+==", b"BOUNDARY", written) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", "a\r\nBcc: x@example.org"), ("from_address", "Shop <shop@example.com>\nX: y")],
)
def test_line_breaks_in_headers_are_still_refused(field: str, value: str) -> None:
    content = EmailContent(**{"subject": "s", "text": "x", field: value})
    message = OutboundMessage(message_id="m1", channel="email", to="a@example.org", content=content)
    if field == "subject":
        # Rendered subjects are one line already; a raw one is refused, never stored as is.
        with pytest.raises(Permanent):
            provider()._build(message, content)
    else:
        with pytest.raises(Permanent, match="linefeed"):
            provider()._build(message, content)


async def test_a_long_unsubscribe_url_arrives_whole(smtp_server: SmtpServer) -> None:
    smtp = provider(smtp_server.port)
    content = EmailContent(
        subject="Deals",
        html="<p>hi</p>",
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="unsubscribe@shop.example",
    )
    result = await smtp.send(
        OutboundMessage(message_id="m7", channel="email", to="ann@example.org", content=content)
    )
    await smtp.aclose()
    assert result.provider_message_id == "<m7@example.com>"
    (received,) = smtp_server.sink.messages
    header = f"List-Unsubscribe: <{LONG_URL}>, <mailto:unsubscribe@shop.example>"
    assert header.encode() in received.data  # on one line
    assert b"=?" not in received.data
    mail = parse(received.data)
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == "<m7@example.com>"
