"""The preview of an unsaved template (`POST /api/v1/templates/preview`), on SQLite and
PostgreSQL: rendered for a chosen person exactly as the saved template would be (MJML compiled,
locale variant, Liquid sandbox limits), saving nothing, and syntax errors answered 422 with the
field, line and column — what the console's editor shows while you type."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.delivery.conftest import T0, Smtp, World
from tests.integration.delivery.test_delivery_api import channel

DRAFT: dict[str, Any] = {
    "channel": "email",
    "category": "transactional",
    "subject": "{{ profile.traits.first_name | default: 'Hi' }}, {{ data.what }}",
    "mjml": (
        "<mjml><mj-body><mj-section><mj-column>"
        "<mj-text>Cart {{ trigger.properties.cart_id }} for {{ profile.traits.first_name }}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    ),
    "locales": {"fr": {"subject": "Bonjour {{ profile.traits.first_name }}"}},
}
TRIGGER = {"name": "Checkout Started", "properties": {"cart_id": "c9"}}


async def test_a_draft_renders_as_the_saved_template_and_saves_nothing(
    world: World, smtp: Smtp
) -> None:
    await channel(world, smtp)
    await world.identify("ann", email="ann@example.com", first_name="Ann", locale="fr-FR")
    await world.identify("bob", email="bob@example.com", first_name="Bob")
    await world.settle()
    async with world.admin() as admin:
        ask = {"to": {"user_id": "ann"}, "data": {"what": "look"}, "event": TRIGGER}
        draft = await admin.post("/api/v1/templates/preview", json={"template": DRAFT, **ask})
        assert draft.status_code == 200, draft.text
        shown = draft.json()
        assert (shown["locale"], shown["content"]["subject"]) == ("fr", "Bonjour Ann")
        assert "<mj-" not in shown["content"]["html"]  # MJML compiled, as when saved
        assert "Cart c9 for Ann" in shown["content"]["html"]
        assert shown["profile_id"] == await world.profile_of("ann")
        english = await admin.post(
            "/api/v1/templates/preview",
            json={"template": DRAFT, "to": {"user_id": "bob"}, "data": {"what": "look"}},
        )
        assert english.json()["content"]["subject"] == "Bob, look"
        # For nobody (no person chosen yet): rendered all the same, which checks the syntax.
        nobody = await admin.post(
            "/api/v1/templates/preview", json={"template": DRAFT, "data": {"what": "look"}}
        )
        assert nobody.status_code == 200, nobody.text
        assert (nobody.json()["profile_id"], nobody.json()["content"]["subject"]) == (
            None,
            "Hi, look",
        )
        # Nothing was saved: no template appeared, under the draft's key or any other.
        assert (await admin.get("/api/v1/templates")).json()["templates"] == []

        # Saved, the same document previews identically...
        saved = await admin.put("/api/v1/templates/cart", json=DRAFT)
        assert saved.status_code == 200, saved.text
        stored = await admin.post("/api/v1/templates/cart/preview", json=ask)
        keyed = await admin.post(
            "/api/v1/templates/preview", json={"template": {**DRAFT, "key": "cart"}, **ask}
        )
        assert keyed.json() == stored.json()
        assert draft.json() | {"template": "cart"} == stored.json()
        # ...and a real send carries the subject the preview showed.
        sent = await admin.post(
            "/api/v1/messages",
            json={"template": "cart", "to": {"user_id": "ann"}, "data": {"what": "look"}},
        )
        assert sent.status_code in (200, 201, 202), sent.text
    await world.settle()
    assert [m["Subject"] for m in smtp.mails()] == ["Bonjour Ann"]


@pytest.mark.parametrize(
    ("change", "path", "line", "column"),
    [
        ({"subject": "Hi {{ profile.traits.first_name "}, "subject", 1, None),
        ({"mjml": None, "html": "<p>one</p>\n<p>{% if data.x %}two</p>"}, "html", 2, None),
        ({"locales": {"fr": {"subject": "Salut\n  {{ x | nope }}"}}}, "locales.fr.subject", 2, 10),
    ],
)
async def test_syntax_errors_answer_422_with_field_line_and_column(
    world: World, smtp: Smtp, change: dict[str, Any], path: str, line: int, column: int | None
) -> None:
    await channel(world, smtp)
    await world.identify("ann", email="ann@example.com")
    await world.settle()
    template = {k: v for k, v in (DRAFT | change).items() if v is not None}
    async with world.admin() as admin:
        answer = await admin.post(
            "/api/v1/templates/preview", json={"template": template, "to": {"user_id": "ann"}}
        )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["path"], body["line"]) == (path, line), body
    assert isinstance(body["column"], int)
    if column is not None:
        assert body["column"] == column
    assert f"line {line}" in body["message"]


async def test_sandbox_limits_and_bad_requests_answer_422(world: World, smtp: Smtp) -> None:
    await channel(world, smtp)
    await world.identify("ann", email="ann@example.com")
    await world.settle()
    loop = {
        "channel": "email",
        "subject": "x",
        "text": "{% for i in (1..data.n) %}{{ i }}{% endfor %}",
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"template": loop, "to": {"user_id": "ann"}, "data": {"n": 10_000_000}}, "text"),
        ({"template": {"channel": "nowhere", "body": "x"}, "to": {"user_id": "ann"}}, "channel"),
        ({"template": {"channel": "sms"}, "to": {"user_id": "ann"}}, "body"),
        ({"template": DRAFT | {"key": "Not A Key"}, "to": {"user_id": "ann"}}, "key"),
        ({"template": DRAFT, "to": {}}, "to"),
        ({"to": {"user_id": "ann"}}, "$.template"),
    ]
    async with world.admin() as admin:
        for request, path in cases:
            answer = await admin.post("/api/v1/templates/preview", json=request)
            assert answer.status_code == 422, (request, answer.text)
            assert answer.json()["path"] == path, (request, answer.json())
        unknown = await admin.post(
            "/api/v1/templates/preview", json={"template": DRAFT, "to": {"user_id": "zed"}}
        )
        assert unknown.status_code == 404 and unknown.json()["path"] == "to.user_id"


async def test_viewers_preview_drafts_and_write_keys_do_not(world: World, smtp: Smtp) -> None:
    await channel(world, smtp)
    await world.identify("ann", email="ann@example.com")
    await world.settle()
    _, viewer = await world.legato.workspaces.create_key(
        world.workspace_id, "admin", "viewer", "console", T0
    )
    request = {"template": DRAFT, "to": {"user_id": "ann"}}
    async with world.admin() as admin:
        as_viewer = await admin.post(
            "/api/v1/templates/preview", json=request, headers={"authorization": f"Bearer {viewer}"}
        )
        assert as_viewer.status_code == 200, as_viewer.text
        as_writer = await admin.post(
            "/api/v1/templates/preview",
            json=request,
            headers={"authorization": f"Bearer {world.write_key}"},
        )
        assert as_writer.status_code in (401, 403)
        spec = (await admin.get("/openapi.json")).json()
        assert "post" in spec["paths"]["/api/v1/templates/preview"]
