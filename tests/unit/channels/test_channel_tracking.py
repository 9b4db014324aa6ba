"""Signed link tokens and HTML rewriting for click and open tracking."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest

from legato.channels.tracking import (
    CLICK_PATH,
    OPEN_PATH,
    PREFERENCES_PATH,
    UNSUBSCRIBE_PATH,
    TokenPurpose,
    Tracker,
)
from legato.errors import InvalidInput

SECRET = "tracking-secret-0123456789abcdef"
TRACKER = Tracker([SECRET], "https://links.shop.example/")


def token_of(url: str, prefix: str) -> str:
    assert url.startswith("https://links.shop.example" + prefix)
    return url.removeprefix("https://links.shop.example" + prefix)


URLS: list[tuple[str, Callable[[], str], str, Callable[[str], Any], Any]] = [
    (
        "click",
        lambda: TRACKER.click_url(
            workspace_id="w", message_id="m", url="https://a.example/?q=1&r=2", link=3
        ),
        CLICK_PATH,
        TRACKER.verify_click,
        ("w", "m", "https://a.example/?q=1&r=2", 3),
    ),
    (
        "open",
        lambda: TRACKER.open_url(workspace_id="w", message_id="m"),
        OPEN_PATH,
        TRACKER.verify_open,
        ("w", "m"),
    ),
    (
        "unsubscribe topic",
        lambda: TRACKER.unsubscribe_url(
            workspace_id="w", profile_id="p", channel="email", topic="news", message_id="m"
        ),
        UNSUBSCRIBE_PATH,
        TRACKER.verify_unsubscribe,
        ("w", "p", "email", "news", "m"),
    ),
    (
        "unsubscribe channel",
        lambda: TRACKER.unsubscribe_url(workspace_id="w", profile_id="p", channel="sms"),
        UNSUBSCRIBE_PATH,
        TRACKER.verify_unsubscribe,
        ("w", "p", "sms", None, None),
    ),
    (
        "preferences",
        lambda: TRACKER.preferences_url(workspace_id="w", profile_id="p"),
        PREFERENCES_PATH,
        TRACKER.verify_preferences,
        ("w", "p"),
    ),
]


@pytest.mark.parametrize(
    ("make", "prefix", "verify", "fields"), [row[1:] for row in URLS], ids=[row[0] for row in URLS]
)
def test_urls_round_trip(
    make: Callable[[], str], prefix: str, verify: Callable[[str], Any], fields: Any
) -> None:
    url = make()
    assert re.fullmatch(r"[A-Za-z0-9_\-./:]+", url), url  # URL-safe as is
    claim = verify(token_of(url, prefix))
    assert tuple(getattr(claim, name) for name in claim.__slots__) == fields


def flip(token: str, index: int) -> str:
    chars = list(token)
    chars[index] = "A" if chars[index] != "A" else "B"
    return "".join(chars)


def test_tampering_anywhere_is_refused() -> None:
    token = token_of(
        TRACKER.click_url(workspace_id="w", message_id="m", url="https://a.example/"), CLICK_PATH
    )
    for index in range(0, len(token), 3):
        if token[index] == ".":
            continue
        with pytest.raises(InvalidInput):
            TRACKER.verify_click(flip(token, index))


def test_a_token_only_serves_its_purpose() -> None:
    click = token_of(
        TRACKER.click_url(workspace_id="w", message_id="m", url="https://a.example/"), CLICK_PATH
    )
    unsubscribe = token_of(
        TRACKER.unsubscribe_url(workspace_id="w", profile_id="p", channel="email"), UNSUBSCRIBE_PATH
    )
    with pytest.raises(InvalidInput):
        TRACKER.verify_unsubscribe(click)
    with pytest.raises(InvalidInput):
        TRACKER.verify_preferences(unsubscribe)


def test_redirect_target_cannot_be_swapped() -> None:
    """Re-signing nothing: a payload for another URL with the old signature is refused."""
    token = token_of(
        TRACKER.click_url(workspace_id="w", message_id="m", url="https://a.example/"), CLICK_PATH
    )
    _, signature = token.split(".")
    forged_payload = token_of(
        TRACKER.click_url(workspace_id="w", message_id="m", url="https://evil.example/"), CLICK_PATH
    ).split(".")[0]
    with pytest.raises(InvalidInput):
        TRACKER.verify_click(f"{forged_payload}.{signature}")


def test_rotation_old_secret_still_verifies_new_one_signs() -> None:
    old = Tracker([SECRET], "https://links.shop.example")
    rotated = Tracker(["the-new-secret-0123456789abcdef!", SECRET], "https://links.shop.example")
    issued_before = token_of(
        old.unsubscribe_url(workspace_id="w", profile_id="p", channel="email"), UNSUBSCRIBE_PATH
    )
    assert rotated.verify_unsubscribe(issued_before).profile_id == "p"
    issued_after = token_of(
        rotated.unsubscribe_url(workspace_id="w", profile_id="p", channel="email"), UNSUBSCRIBE_PATH
    )
    with pytest.raises(InvalidInput):
        old.verify_unsubscribe(issued_after)


@pytest.mark.parametrize("token", ["", "nodot", ".sig", "x" * 9000, "!!!.???"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        TRACKER.verify(TokenPurpose.CLICK, token)


def test_signed_but_non_http_click_target_is_refused() -> None:
    token = TRACKER.sign(
        TokenPurpose.CLICK, {"w": "w", "m": "m", "u": "javascript:alert(1)", "l": 0}
    )
    with pytest.raises(InvalidInput, match="http"):
        TRACKER.verify_click(token)


@pytest.mark.parametrize(
    ("secrets", "base_url"),
    [
        ([], "https://l.example"),
        (["short"], "https://l.example"),
        ([SECRET], "ftp://l.example"),
        ([SECRET], "/relative"),
    ],
)
def test_bad_configuration_is_refused(secrets: list[str], base_url: str) -> None:
    with pytest.raises(InvalidInput):
        Tracker(secrets, base_url)


def test_html_links_are_rewritten_and_a_pixel_added() -> None:
    unsubscribe = TRACKER.unsubscribe_url(workspace_id="w", profile_id="p", channel="email")
    source = (
        "<html><body>"
        '<a href="https://shop.example/a?x=1&amp;y=2">A</a>'
        "<A HREF='http://shop.example/b'>B</A>"
        '<a class="btn" href="https://shop.example/c" data-legato-notrack>C</a>'
        '<a href="mailto:help@shop.example">mail</a>'
        '<a href="tel:+14155552671">call</a>'
        '<a href="#top">top</a>'
        f'<a href="{unsubscribe}">unsubscribe</a>'
        '<a name="anchor">no href</a>'
        "</body></html>"
    )
    out = TRACKER.track_html(source, workspace_id="w", message_id="m")
    hrefs = [html.unescape(h) for h in re.findall(r"""href=["']([^"']*)["']""", out, re.IGNORECASE)]
    clicks = [
        TRACKER.verify_click(h.removeprefix("https://links.shop.example" + CLICK_PATH))
        for h in hrefs[:2]
    ]
    assert [(c.url, c.link) for c in clicks] == [
        ("https://shop.example/a?x=1&y=2", 0),
        ("http://shop.example/b", 1),
    ]
    assert hrefs[2:] == [
        "https://shop.example/c",
        "mailto:help@shop.example",
        "tel:+14155552671",
        "#top",
        unsubscribe,
    ]
    pixel = re.search(r'<img src="([^"]+)"[^>]*/></body>', out)
    assert pixel is not None
    assert TRACKER.verify_open(html.unescape(pixel.group(1)).rsplit("/", 1)[1]).message_id == "m"


@pytest.mark.parametrize(("clicks", "opens"), [(False, True), (True, False), (False, False)])
def test_tracking_can_be_switched_off(clicks: bool, opens: bool) -> None:
    source = '<p><a href="https://shop.example/">x</a></p>'
    out = TRACKER.track_html(source, workspace_id="w", message_id="m", clicks=clicks, opens=opens)
    assert ("https://shop.example/" in out) is not clicks
    assert (OPEN_PATH in out) is opens
    assert out.endswith("</p>") is not opens
