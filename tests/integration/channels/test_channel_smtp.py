"""SMTP provider against a real aiosmtpd server: headers, parts, one-click unsubscribe,
connection reuse, STARTTLS and implicit TLS with login, and the error mapping."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext
from legato.channels.smtp import SmtpProvider
from legato.channels.templates import TemplateRenderer, prepare
from legato.channels.tracking import Tracker
from legato.domain.delivery import EmailContent, OutboundMessage, SmsContent
from legato.errors import InvalidInput, Permanent, Retryable
from legato.testing import FakeClock
from tests.integration.channels.channel_fakes import Certificate, SmtpServer, free_port

TRACKER = Tracker(["a-tracking-secret-of-32-bytes!!"], "https://links.shop.example")


def provider(port: int | None = None, **settings: Any) -> SmtpProvider:
    context = ProviderContext(http=OutboundClient(), clock=FakeClock())
    base = {
        "host": "127.0.0.1",
        "port": port,
        "from": "Shop <shop@example.com>",
        "security": "none",
    }
    return SmtpProvider.from_settings("primary", {**base, **settings}, context)


def message(
    to: str, content: Any, message_id: str = "01hmsg0000000000000000000a"
) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="email", to=to, content=content)


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_rendered_email_arrives_with_parts_and_one_click_unsubscribe(
    smtp_server: SmtpServer,
) -> None:
    template = prepare(
        {
            "key": "cart_email",
            "channel": "email",
            "subject": "{{ profile.traits.first_name | default: 'Hi' }}, your cart is waiting",
            "mjml": (
                "<mjml><mj-body><mj-section><mj-column>"
                "<mj-text>Hello {{ profile.traits.first_name }}, 2 items wait.</mj-text>"
                '<mj-button href="https://shop.example/cart">Back to cart</mj-button>'
                '<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>'
                "</mj-column></mj-section></mj-body></mjml>"
            ),
        }
    )
    unsubscribe = TRACKER.unsubscribe_url(
        workspace_id="ws1", profile_id="p1", channel="email", message_id="m1"
    )
    rendered = TemplateRenderer().render(
        template, {"profile": {"traits": {"first_name": "Ann"}}, "unsubscribe_url": unsubscribe}
    )
    assert isinstance(rendered.content, EmailContent)
    content = EmailContent(
        subject=rendered.content.subject,
        html=TRACKER.track_html(rendered.content.html or "", workspace_id="ws1", message_id="m1"),
        text=rendered.content.text,
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto="unsubscribe@shop.example",
    )
    smtp = provider(smtp_server.port)
    result = await smtp.send(message("ann@example.org", content))
    await smtp.aclose()

    [received] = smtp_server.sink.messages
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["ann@example.org"]
    mail = parse(received.data)
    assert mail["Subject"] == "Ann, your cart is waiting"
    assert mail["From"] == "Shop <shop@example.com>"
    assert mail["To"] == "ann@example.org"
    assert (
        mail["Message-ID"]
        == result.provider_message_id
        == "<01hmsg0000000000000000000a@example.com>"
    )
    assert mail["Date"] == "Mon, 05 Jan 2026 09:00:00 +0000"
    assert mail["List-Unsubscribe"] == f"<{unsubscribe}>, <mailto:unsubscribe@shop.example>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    text_body, html_body = text.get_content(), html.get_content()
    assert "Hello Ann, 2 items wait." in text_body
    assert f"Unsubscribe ({unsubscribe})" in text_body
    # The unsubscribe link is left as is; the shop link goes through a signed redirect.
    assert f'href="{unsubscribe}"' in html_body
    assert 'href="https://shop.example/cart"' not in html_body
    assert "https://links.shop.example/t/c/" in html_body
    assert "https://links.shop.example/t/o/" in html_body
    # The unsubscribe token in the header verifies back to who and what.
    claim = TRACKER.verify_unsubscribe(unsubscribe.rsplit("/", 1)[1])
    assert (claim.profile_id, claim.channel, claim.message_id) == ("p1", "email", "m1")


async def test_several_sends_reuse_one_connection(smtp_server: SmtpServer) -> None:
    smtp = provider(smtp_server.port, pool_size=1)
    for index in range(5):
        await smtp.send(
            message(
                f"r{index}@example.org", EmailContent(subject=f"n{index}", text="hi"), f"m{index}"
            )
        )
    await smtp.aclose()
    peers = {received.peer for received in smtp_server.sink.messages}
    assert len(smtp_server.sink.messages) == 5
    assert len(peers) == 1


async def test_connection_is_renewed_after_its_message_budget(smtp_server: SmtpServer) -> None:
    smtp = provider(smtp_server.port, pool_size=1, max_messages_per_connection=2)
    for index in range(5):
        await smtp.send(message("r@example.org", EmailContent(subject="s", text="t"), f"m{index}"))
    await smtp.aclose()
    assert len({received.peer for received in smtp_server.sink.messages}) == 3


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
async def test_starttls_and_login_when_the_server_offers_them(
    smtp_server: SmtpServer, certificate: Certificate
) -> None:
    smtp = provider(
        smtp_server.port,
        security="starttls",
        ca_file=str(certificate.cert_path),
        username="legato",
        password="s3cret",
    )
    await smtp.send(message("ann@example.org", EmailContent(subject="secure", text="over TLS")))
    await smtp.aclose()
    [received] = smtp_server.sink.messages
    assert received.tls


@pytest.mark.parametrize("smtp_server", ["tls"], indirect=True)
async def test_implicit_tls_and_login(smtp_server: SmtpServer, certificate: Certificate) -> None:
    smtp = provider(
        smtp_server.port,
        security="tls",
        ca_file=str(certificate.cert_path),
        username="legato",
        password="s3cret",
    )
    for index in range(2):
        await smtp.send(
            message("ann@example.org", EmailContent(subject="tls", text="t"), f"m{index}")
        )
    await smtp.aclose()
    first, second = smtp_server.sink.messages
    assert first.tls and second.tls and first.authenticated
    assert first.peer == second.peer  # one connection, reused


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
async def test_refused_login_is_a_provider_fault(
    smtp_server: SmtpServer, certificate: Certificate
) -> None:
    smtp = provider(
        smtp_server.port,
        security="require_starttls",
        ca_file=str(certificate.cert_path),
        username="legato",
        password="wrong",
    )
    with pytest.raises(Permanent) as caught:
        await smtp.send(message("ann@example.org", EmailContent(subject="s", text="t")))
    await smtp.aclose()
    assert caught.value.details.get("provider_fault") is True
    assert smtp_server.sink.messages == []


async def test_require_starttls_refuses_a_server_without_it(smtp_server: SmtpServer) -> None:
    smtp = provider(smtp_server.port, security="require_starttls")
    with pytest.raises(Permanent) as caught:
        await smtp.send(message("ann@example.org", EmailContent(subject="s", text="t")))
    assert caught.value.details.get("provider_fault") is True
    assert smtp_server.sink.messages == []


@pytest.mark.parametrize(
    ("reply", "error", "flag"),
    [
        ("550 5.1.1 No such user", Permanent, "invalid_recipient"),
        ("450 4.2.1 Mailbox busy", Retryable, None),
    ],
)
async def test_recipient_refusals_map_to_the_error_tree(
    smtp_server: SmtpServer, reply: str, error: type[Exception], flag: str | None
) -> None:
    smtp_server.sink.refuse["nobody@example.org"] = reply
    smtp = provider(smtp_server.port, pool_size=1)
    with pytest.raises(error) as caught:
        await smtp.send(message("nobody@example.org", EmailContent(subject="s", text="t")))
    if flag is not None:
        assert caught.value.details.get(flag) is True  # type: ignore[attr-defined]
    # The session survives the refusal and the next message goes out on it.
    await smtp.send(message("ann@example.org", EmailContent(subject="s", text="t"), "m2"))
    await smtp.aclose()
    assert [m.rcpt_tos for m in smtp_server.sink.messages] == [["ann@example.org"]]
    assert len({m.peer for m in smtp_server.sink.messages}) == 1


async def test_unreachable_server_is_retryable() -> None:

    smtp = provider(free_port(), timeout=2)
    with pytest.raises(Retryable):
        await smtp.send(message("ann@example.org", EmailContent(subject="s", text="t")))


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (SmsContent(body="hi"), "email content"),
        (EmailContent(subject="s"), "neither text nor html"),
        (EmailContent(subject="s", text="t", headers={"Subject": "x"}), "set by Legato"),
    ],
)
async def test_unsendable_content_is_permanent(
    smtp_server: SmtpServer, content: Any, complaint: str
) -> None:
    smtp = provider(smtp_server.port)
    with pytest.raises(Permanent, match=complaint):
        await smtp.send(message("ann@example.org", content))
    assert smtp_server.sink.messages == []


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"from": "not an address"}, "settings.from"),
        ({"port": 0}, "settings.port"),
        ({"security": "ssl3"}, "settings.security"),
        ({"hostname": "x"}, "settings.hostname"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        provider(**{"port": 2525, **settings})
    assert caught.value.details["path"] == path
