"""Templates: saving (required fields, MJML, Liquid syntax errors with line and column), locale
choice, rendering per channel, sandbox limits, escaping, and the derived text part."""

from __future__ import annotations

from typing import Any

import pytest

from legato.channels.templates import (
    TemplateLimits,
    TemplateRenderer,
    TemplateRenderError,
    choose_locale,
    html_to_text,
    prepare,
)
from legato.domain.delivery import (
    EmailContent,
    InAppContent,
    PushContent,
    SmsContent,
    WebhookContent,
    WhatsAppContent,
)
from legato.errors import InvalidInput

MJML = (
    "<mjml><mj-body><mj-section><mj-column>"
    "<mj-text>Hello {{ profile.traits.first_name | default: 'there' }}</mj-text>"
    '<mj-button href="{{ cart_url }}">Back to cart</mj-button>'
    "</mj-column></mj-section></mj-body></mjml>"
)


def email_doc(**extra: Any) -> dict[str, Any]:
    return {"key": "cart_email", "channel": "email", "subject": "Hi", "mjml": MJML, **extra}


@pytest.mark.parametrize(
    ("doc", "path", "line", "column"),
    [
        ({"key": "t", "channel": "sms", "body": "Hello\n  {{ name | }}"}, "body", 2, 6),
        (
            {"key": "t", "channel": "sms", "body": "a\nb\n  {% for x in items %}{{ x }}"},
            "body",
            3,
            3,
        ),
        ({"key": "t", "channel": "sms", "body": "ok {% bogus %}"}, "body", 1, 7),
        ({"key": "t", "channel": "sms", "body": "x\n {{ name | shout }}"}, "body", 2, 12),
        (email_doc(subject="{% if %}"), "subject", 1, 4),
        (
            email_doc(locales={"fr": {"subject": "Bonjour\n{{ 'oops }}"}}),
            "locales.fr.subject",
            2,
            4,
        ),
        ({"key": "t", "channel": "sms", "body": "a {% include 'secrets' %}"}, "body", 1, 6),
        ({"key": "t", "channel": "sms", "body": "a {% render 'secrets' %}"}, "body", 1, 6),
        (
            {"key": "t", "channel": "webhook", "payload": {"a": [1, {"b": "{{ x | }}"}]}},
            "payload.a[1].b",
            1,
            4,
        ),
    ],
)
def test_liquid_syntax_errors_name_field_line_and_column(
    doc: dict[str, Any], path: str, line: int, column: int
) -> None:
    with pytest.raises(InvalidInput) as caught:
        prepare(doc)
    assert caught.value.details == {"path": path, "line": line, "column": column}
    assert f"line {line}, column {column}" in caught.value.message


@pytest.mark.parametrize(
    ("doc", "path", "complaint"),
    [
        ({"key": "t", "channel": "email", "mjml": MJML}, "subject", "needs subject"),
        ({"key": "t", "channel": "email", "subject": "s"}, "html", "needs html or text"),
        ({"key": "t", "channel": "sms"}, "body", "needs body"),
        ({"key": "t", "channel": "push", "title": "t"}, "body", "needs body"),
        ({"key": "t", "channel": "webhook"}, "payload", "needs payload"),
        (email_doc(html="<p>x</p>"), "mjml", "either mjml or html"),
        (email_doc(mjml="<mjml><mj-body><mj-section>"), "mjml", "MJML does not compile"),
        (email_doc(locales={"fr_FR!": {"subject": "x"}}), "locales.fr_FR!", "not a locale"),
        (email_doc(locales={"fr-ca": {}, "fr-CA": {}}), "locales.fr-CA", "repeats"),
        (email_doc(key="Bad Key"), "key", "String should match"),
        (email_doc(colour="red"), "colour", "Extra inputs"),
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, Any], path: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint) as caught:
        prepare(doc)
    assert caught.value.details["path"] == path


def test_mjml_is_compiled_when_saved_and_liquid_survives_it() -> None:
    prepared = prepare(email_doc())
    html = prepared.variants[""].html
    assert html is not None and html.startswith("<!doctype html>")
    assert "{{ profile.traits.first_name | default: 'there' }}" in html
    assert 'href="{{ cart_url }}"' in html
    # The prepared form is plain JSON: stored as is, loaded back identically.
    assert type(prepared).model_validate_json(prepared.model_dump_json()) == prepared


@pytest.mark.parametrize(
    ("available", "requested", "chosen"),
    [
        (["fr", "fr-CA", "de"], "fr-CA", "fr-CA"),
        (["fr", "de"], "fr-CA", "fr"),
        (["fr", "de"], "fr_ca", "fr"),
        (["fr-CA"], "FR-ca", "fr-CA"),
        (["zh-Hant"], "zh-Hant-TW", "zh-Hant"),
        (["fr", "de"], "es-MX", ""),
        (["fr"], None, ""),
        (["fr"], "", ""),
    ],
)
def test_locale_fallback(available: list[str], requested: str | None, chosen: str) -> None:
    assert choose_locale(["", *available], requested) == chosen


def test_locale_variants_override_fields_and_inherit_the_rest() -> None:
    prepared = prepare(
        email_doc(
            from_address="Shop <shop@example.com>",
            locales={
                "fr": {"subject": "Salut {{ profile.traits.first_name }}"},
                "fr-CA": {"subject": "Allô", "html": "<p>Bonjour du Québec</p>"},
            },
        )
    )
    renderer = TemplateRenderer()
    context = {"profile": {"traits": {"first_name": "Zoé"}}, "cart_url": "https://s.example/c"}
    fr = renderer.render(prepared, context, locale="fr-BE")
    ca = renderer.render(prepared, context, locale="fr-CA")
    default = renderer.render(prepared, context, locale="ja")
    assert fr.locale == "fr" and isinstance(fr.content, EmailContent)
    assert fr.content.subject == "Salut Zoé"
    assert "Hello Zoé" in (fr.content.html or "")  # MJML body inherited from the default
    assert fr.content.from_address == "Shop <shop@example.com>"
    assert ca.locale == "fr-CA" and isinstance(ca.content, EmailContent)
    assert ca.content.html == "<p>Bonjour du Québec</p>"
    assert ca.content.text == "Bonjour du Québec"
    assert default.locale == "" and isinstance(default.content, EmailContent)
    assert default.content.subject == "Hi"


def test_email_render_escapes_html_but_not_the_subject_and_derives_text() -> None:
    prepared = prepare(email_doc(subject="{{ profile.traits.first_name }} & co\nBcc: evil@x.y"))
    rendered = TemplateRenderer().render(
        prepared,
        {
            "profile": {"traits": {"first_name": "<b>Ann</b>"}},
            "cart_url": "https://s.example/c?a=1&b=2",
        },
    )
    content = rendered.content
    assert isinstance(content, EmailContent)
    assert content.subject == "<b>Ann</b> & co Bcc: evil@x.y"  # one line: no header injection
    assert "Hello &lt;b&gt;Ann&lt;/b&gt;" in (content.html or "")
    assert 'href="https://s.example/c?a=1&amp;b=2"' in (content.html or "")
    assert content.text == "Hello <b>Ann</b>\n\nBack to cart (https://s.example/c?a=1&b=2)"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"channel": "sms", "body": "Code {{ code }}"}, SmsContent(body="Code 42")),
        ({"channel": "whatsapp", "body": "Hi {{ name }}"}, WhatsAppContent(text="Hi Ann")),
        (
            {
                "channel": "whatsapp",
                "whatsapp_template": {
                    "name": "order_update",
                    "language": "fr",
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": "{{ name }}"}]}
                    ],
                },
            },
            WhatsAppContent(
                template_name="order_update",
                language="fr",
                components=({"type": "body", "parameters": [{"type": "text", "text": "Ann"}]},),
            ),
        ),
        (
            {
                "channel": "push",
                "title": "{{ name }}",
                "body": "b",
                "url": "https://s.example/{{ code }}",
                "data": {"c": "{{ code }}"},
            },
            PushContent(title="Ann", body="b", url="https://s.example/42", data={"c": "42"}),
        ),
        (
            {"channel": "inapp", "title": "Hi {{ name }}", "body": "New offer"},
            InAppContent(title="Hi Ann", body="New offer"),
        ),
        (
            {
                "channel": "webhook",
                "event_type": "cart",
                "payload": {"who": "{{ name }}", "n": 3, "tags": ["{{ code }}", True]},
            },
            WebhookContent(payload={"who": "Ann", "n": 3, "tags": ["42", True]}, event_type="cart"),
        ),
    ],
)
def test_each_channel_renders_its_content(doc: dict[str, Any], expected: Any) -> None:
    prepared = prepare({"key": "t", **doc})
    rendered = TemplateRenderer().render(prepared, {"name": "Ann", "code": 42})
    assert rendered.content == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}",
            "LoopIterationLimitError",
        ),
        ("{% for a in (1..100) %}{{ big }}{% endfor %}", "OutputStreamLimitError"),
        (
            "{% assign s = 'aaaaaaaaaa' %}"
            "{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}",
            "LocalNamespaceLimitError",
        ),
        ("{{ 10 | divided_by: 0 }}", "FilterArgumentError"),
    ],
)
def test_render_failures_are_render_errors_with_a_position(body: str, error: str) -> None:
    prepared = prepare({"key": "t", "channel": "sms", "body": body})
    renderer = TemplateRenderer(TemplateLimits(loop_iterations=10_000, output_bytes=100_000))
    with pytest.raises(TemplateRenderError) as caught:
        renderer.render(prepared, {"big": "x" * 5000})
    assert error in caught.value.message
    assert caught.value.details["path"] == "body"
    assert isinstance(caught.value, InvalidInput)


def test_limits_do_not_stop_ordinary_templates() -> None:
    prepared = prepare(
        {"key": "t", "channel": "sms", "body": "{% for i in items %}{{ i.name }},{% endfor %}"}
    )
    items = [{"name": f"n{i}"} for i in range(500)]
    content = TemplateRenderer().render(prepared, {"items": items}).content
    assert isinstance(content, SmsContent) and content.body.count(",") == 500


def test_parsed_templates_are_cached_by_source() -> None:
    renderer = TemplateRenderer()
    prepared = prepare({"key": "t", "channel": "sms", "body": "Hi {{ name }}"})
    for name in ("a", "b", "c"):
        content = renderer.render(prepared, {"name": name}).content
        assert isinstance(content, SmsContent) and content.body == f"Hi {name}"
    assert len(renderer._cache) == 1


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two<br>Three</p>", "One\n\nTwo\nThree"),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
        ('<a href="https://x.example/">Shop now</a>', "Shop now (https://x.example/)"),
        ('<a href="https://x.example/">https://x.example/</a>', "https://x.example/"),
        ('<a href="mailto:help@x.example">Write to us</a>', "Write to us (help@x.example)"),
        (
            "<head><title>T</title><style>p{color:red}</style></head><body>Hi &amp; bye</body>",
            "Hi & bye",
        ),
        ("<!--[if mso]><table><tr><td><![endif]-->Body<script>alert(1)</script>", "Body"),
        ('<img src="logo.png" alt="Shop logo"> <h1>Sale</h1>', "Shop logo\n\nSale"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("{% assign x = 'one' %}{{ x }}", "[{{ x }}]", ("one", "[]")),
        ("{% capture x %}one{% endcapture %}{{ x }}", "[{{ x }}]", ("one", "[]")),
        ("{% increment n %}{% increment n %}", "{% increment n %}", ("01", "0")),
        ("{% decrement n %}", "{% increment n %}", ("-1", "0")),
        ("{% cycle 'a', 'b' %}", "{% cycle 'a', 'b' %}", ("a", "a")),
        ("{% ifchanged %}same{% endifchanged %}", "{% ifchanged %}same{% endifchanged %}",
         ("same", "same")),
        (
            "{% for i in items limit: 2 %}{{ i }}{% endfor %}",
            "{% for i in items offset: continue %}{{ i }}{% endfor %}",
            ("12", "123"),
        ),
        ("{{ 1 | divided_by: 0 | default: 'x' }}", "[{{ x }}]", None),
    ],
)  # fmt: skip
def test_no_field_sees_what_another_field_left(
    first: str, second: str, expected: tuple[str, str] | None
) -> None:
    # The fields of one message share a Liquid context only while each leaves it untouched:
    # every field renders as if alone, whatever comes before it.
    doc = {"key": "t", "channel": "push", "title": first, "body": second, "url": second}
    prepared = prepare(doc)
    renderer = TemplateRenderer()
    if expected is None:
        with pytest.raises(TemplateRenderError) as caught:
            renderer.render(prepared, {"items": [1, 2, 3]})
        assert caught.value.details["path"] == "title"
        return
    for _ in range(2):  # the second time, parsed templates come from the cache
        content = renderer.render(prepared, {"items": [1, 2, 3]}).content
        assert isinstance(content, PushContent)
        assert (content.title, content.body, content.url) == (*expected, expected[1])


def test_limits_apply_to_each_field_alone() -> None:
    loop = "{% for a in (1..90) %}{% for b in (1..100) %}{% endfor %}{% endfor %}ok"
    big = "{% for a in (1..9) %}{{ big }}{% endfor %}"
    prepared = prepare({"key": "t", "channel": "push", "title": loop, "body": big, "url": loop})
    renderer = TemplateRenderer(TemplateLimits(loop_iterations=10_000, output_bytes=50_000))
    content = renderer.render(prepared, {"big": "x" * 5000}).content
    assert isinstance(content, PushContent)
    assert (content.title, content.url, len(content.body)) == ("ok", "ok", 45_000)
