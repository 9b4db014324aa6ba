"""Templates, Messages, Settings and the profile's 360° view in a real browser, against a real
`legato serve` that sends email to a real SMTP server (aiosmtpd on loopback).

Screenshots go to test-artifacts/ui/; the browser log must stay free of errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from tests.acceptance.ui.conftest import Browsing, shot
from tests.acceptance.ui.test_console_ui import admin_get, send_batch, sign_in, wait_for_profile
from tests.conftest import Server, free_port
from tests.integration.channels.channel_fakes import MailSink

pytestmark = pytest.mark.slow

MJML = (
    "<mjml><mj-body><mj-section><mj-column>"
    "<mj-text>Hello {{ profile.traits.first_name }}, welcome!</mj-text>"
    "</mj-column></mj-section></mj-body></mjml>"
)
BOUNCING = "bounce@deliv.example"


class RefusingSender:
    """An SMTP server that refuses every sender: each message fails for good (provider fault)."""

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        return "553 5.7.1 sender not allowed"


@dataclass
class Delivery:
    """The server with an SMTP channel, a topic, a journey, two people and an SMTP sink."""

    server: Server
    sink: MailSink
    dana: dict[str, Any]


def _ok(answer: Any) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def delivery(console_server: Server) -> Iterator[Delivery]:
    sink = MailSink(refuse={BOUNCING: "550 5.1.1 no such user"})
    port, strict_port = free_port(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    strict = Controller(RefusingSender(), hostname="127.0.0.1", port=strict_port)
    strict.start()
    server = console_server
    try:
        with server.admin() as admin:
            smtp = {"host": "127.0.0.1", "port": port, "security": "none"}
            smtp["from"] = "Shop <shop@example.com>"
            _ok(admin.put("/api/v1/channels/email", json={"provider": "smtp", "settings": smtp}))
            smtp = {**smtp, "port": strict_port}
            strict_doc = {"provider": "smtp", "settings": smtp}
            _ok(admin.put("/api/v1/channels/email_strict", json=strict_doc))
            _ok(admin.put("/api/v1/topics/newsletter", json={"channel": "email", "name": "News"}))
            journey = {
                "key": "onboarding",
                "name": "Onboarding",
                "trigger": {"event": "Trial Started"},
                "nodes": [
                    {"id": "wait_day", "type": "wait", "duration": "1d", "next": "done"},
                    {"id": "done", "type": "exit"},
                ],
            }
            _ok(admin.put("/api/v1/journeys/onboarding", json=journey))
            _ok(admin.post("/api/v1/journeys/onboarding/publish"))
        ts = "2026-03-0{}T09:00:00.000Z"
        send_batch(
            server,
            [
                {
                    "type": "identify",
                    "userId": "dana",
                    "messageId": "deliv-1",
                    "timestamp": ts.format(1),
                    "traits": {"email": "dana@deliv.example", "first_name": "Dana"},
                },
                {
                    "type": "identify",
                    "userId": "eve",
                    "messageId": "deliv-2",
                    "timestamp": ts.format(1),
                    "traits": {"email": BOUNCING, "first_name": "Eve"},
                },
                {
                    "type": "track",
                    "userId": "dana",
                    "event": "Trial Started",
                    "messageId": "deliv-3",
                    "timestamp": ts.format(2),
                },
            ],
        )
        dana = wait_for_profile(server, "dana@deliv.example", 2)
        wait_for_profile(server, BOUNCING, 1)
        yield Delivery(server, sink, dana)
    finally:
        strict.stop()
        controller.stop()


def _wait_status(server: Server, message_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    with server.admin() as admin:
        while True:
            row: dict[str, Any] = admin.get(f"/api/v1/messages/{message_id}").json()
            if row.get("status") in wanted:
                return row
            assert time.monotonic() < deadline, row
            time.sleep(0.2)


def test_write_a_template_with_liquid_and_preview_it_for_a_person(
    browsing: Browsing, delivery: Delivery
) -> None:
    page = sign_in(browsing, delivery.server.admin_key, "/templates")
    expect(page.get_by_role("heading", level=1, name="Templates")).to_be_visible()
    page.locator(".page-header").get_by_role("button", name="New template").click()
    form = page.get_by_role("form", name="Template")
    form.locator('input[name="key"]').fill("welcome_email")
    expect(form.locator('select[name="channel"]')).to_have_value("email")
    form.locator('select[name="topic"]').select_option("newsletter")
    # Email fields, because the channel's provider is SMTP. While only the subject is written,
    # the live preview may be told the email needs a body (a 422 in the browser log).
    browsing.console.expect("status of 422")
    page.get_by_label("Subject").fill("Hi {{ profile.traits.first_name }}")
    expect(page.get_by_label("Body (MJML)")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_count(0)
    page.get_by_label("Body (MJML)").fill(MJML)
    # Liquid is highlighted in the editor.
    expect(page.get_by_test_id("liquid-subject").locator(".lq-output")).to_have_text(
        "{{ profile.traits.first_name }}"
    )

    # Before saving, the server renders the draft for a chosen person as it would be sent...
    page.get_by_label("Identify the person by").select_option("email")
    page.get_by_label("Person", exact=True).fill("dana@deliv.example")
    page.get_by_role("button", name="Render").click()
    expect(page.get_by_test_id("preview-subject")).to_have_text("Hi Dana")
    frame = page.frame_locator('[data-testid="preview-html"]')
    expect(frame.get_by_text("Hello Dana, welcome!")).to_be_visible()
    # ...and again as the draft changes, with nothing saved.
    page.get_by_label("Subject").fill("Welcome aboard, {{ profile.traits.first_name }}")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Welcome aboard, Dana")
    assert admin_get(delivery.server, "/api/v1/templates/welcome_email").status_code == 404
    shot(page, "30-template-preview", full_page=True)

    # A Liquid syntax error in the draft shows on its field, with where it is, as you type.
    browsing.console.expect("status of 422")
    page.get_by_label("Subject").fill("Hi {% if %}")
    error = page.locator(".field.has-error .field-error")
    expect(error).to_contain_text("line 1")
    expect(page.get_by_test_id("preview-error")).to_contain_text("subject")
    shot(page, "32-template-live-syntax-error", full_page=True)
    page.get_by_label("Subject").fill("Hi {{ profile.traits.first_name }}")
    expect(error).to_have_count(0)
    expect(page.get_by_test_id("preview-subject")).to_have_text("Hi Dana")

    page.get_by_role("button", name="Save template").click()
    expect(page).to_have_url(f"{browsing.base_url}/templates/welcome_email")
    expect(page.get_by_role("heading", level=1, name="welcome_email")).to_be_visible()

    # Saving refuses a Liquid syntax error too (the preview and the save each answer 422);
    # the saved version stays.
    browsing.console.expect("status of 422")
    browsing.console.expect("status of 422")
    page.get_by_label("Subject").fill("Hi {% if %}")
    page.get_by_role("button", name="Save template").click()
    expect(error).to_contain_text("line 1")
    shot(page, "31-template-liquid-error", full_page=True)
    with delivery.server.admin() as admin:
        saved = admin.get("/api/v1/templates/welcome_email").json()
    assert saved["subject"] == "Hi {{ profile.traits.first_name }}"
    assert saved["topic"] == "newsletter"

    # Listed with its channel.
    page.get_by_role("link", name="Templates", exact=True).first.click()
    expect(page.get_by_test_id("templates-table")).to_contain_text("welcome_email")


def test_messages_show_deliveries_and_failures_and_the_profile_shows_everything(
    browsing: Browsing, delivery: Delivery
) -> None:
    server = delivery.server
    with server.admin() as admin:
        template = {"channel": "email", "subject": "Hi {{ profile.traits.first_name }}"}
        template["mjml"] = MJML
        _ok(admin.put("/api/v1/templates/receipt", json=template))
        _ok(admin.put("/api/v1/templates/notice", json={**template, "channel": "email_strict"}))
        sent = [
            _ok(admin.post("/api/v1/messages", json={"template": name, "to": {"user_id": user}}))
            for name, user in (("receipt", "dana"), ("receipt", "eve"), ("notice", "dana"))
        ]
    ok = _wait_status(server, sent[0]["id"], {"sent", "delivered"})
    bounced = _wait_status(server, sent[1]["id"], {"bounced"})
    failed = _wait_status(server, sent[2]["id"], {"failed"})
    assert ok["address"] == "dana@deliv.example"
    assert bounced["reason"] == "invalid_recipient"

    page = sign_in(browsing, server.admin_key, "/messages")
    expect(page.get_by_role("heading", level=1, name="Messages")).to_be_visible()
    deliveries = page.get_by_test_id("messages-all")
    expect(deliveries.get_by_role("link", name="receipt")).to_have_count(2)
    expect(deliveries.get_by_role("link", name="notice")).to_have_count(1)
    expect(deliveries).to_contain_text("dana@deliv.example")
    expect(deliveries).to_contain_text("bounced")
    shot(page, "32-messages", full_page=True)

    page.get_by_role("tab", name="Failures").click()
    listed = page.get_by_test_id("messages-failed")
    expect(listed.get_by_role("row")).to_have_count(2)
    expect(listed).to_contain_text("notice")
    expect(listed).to_contain_text("provider_fault")
    listed.locator("tbody .link-btn").first.click()
    expect(page.get_by_test_id("message-detail")).to_contain_text("553")
    shot(page, "33-messages-failures", full_page=True)
    listed.get_by_role("button", name=f"Replay message {failed['id']}").click()
    expect(page.get_by_test_id("replay-notice")).to_contain_text("1 message queued again")

    # The 360° view: journeys with the step each run is at, consent, and messages on the
    # timeline next to the events.
    page.goto(f"{browsing.base_url}/profiles/{delivery.dana['id']}")
    expect(page.get_by_test_id("profile-name")).to_have_text("Dana")
    runs = page.get_by_test_id("profile-journeys")
    expect(runs).to_contain_text("Onboarding")
    expect(runs).to_contain_text("waiting")
    expect(runs).to_contain_text("at wait_day")
    consent = page.get_by_test_id("consent")
    expect(consent).to_contain_text("email")
    expect(consent).to_contain_text("News")
    timeline = page.get_by_test_id("timeline")
    messages = timeline.get_by_test_id("timeline-message")
    expect(messages).to_have_count(2)
    expect(messages.filter(has_text="receipt")).to_contain_text("sent")
    expect(messages.filter(has_text="notice")).to_contain_text("failed")
    expect(timeline.locator(".tl-title").filter(has_text="Trial Started")).to_have_count(1)
    shot(page, "34-profile-360-journeys-consent-messages", full_page=True)


def test_settings_list_channels_and_topics_and_save_a_frequency_cap(
    browsing: Browsing, delivery: Delivery
) -> None:
    page = sign_in(browsing, delivery.server.admin_key, "/settings")
    channels = page.get_by_test_id("channels-table")
    expect(channels).to_contain_text("smtp")
    expect(channels).to_contain_text("127.0.0.1")
    expect(page.get_by_test_id("topics-table")).to_contain_text("News")
    page.get_by_role("button", name="Add a cap").click()
    page.get_by_label("Cap 1 limit").fill("2")
    page.get_by_label("Cap 1 window").fill("1d")
    page.get_by_role("button", name="Add quiet hours").click()
    page.get_by_role("button", name="Save delivery policy").click()
    expect(page.get_by_test_id("policy-message")).to_contain_text("Saved")
    shot(page, "35-settings-delivery", full_page=True)
    with delivery.server.admin() as admin:
        policy = admin.get("/api/v1/delivery-policy").json()
    assert policy["frequency_caps"] == [{"limit": 2, "window": "1d"}]
    assert [(q["start"], q["end"], q["action"]) for q in policy["quiet_hours"]] == [
        ("21:00", "08:00", "defer")
    ]
    # A wrong window is refused with the field named, and nothing breaks.
    browsing.console.expect("status of 422")
    page.get_by_label("Cap 1 window").fill("soon")
    page.get_by_role("button", name="Save delivery policy").click()
    expect(page.get_by_test_id("policy-message")).to_contain_text("frequency_caps")
