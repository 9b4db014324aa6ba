"""Signed links in messages: click redirects, the open pixel, unsubscribe, preference-centre and
double-opt-in confirmation tokens.

A token is `<payload>.<signature>`: base64url compact JSON, then a 128-bit truncated
HMAC-SHA256 under a key derived per purpose, so a click token can never serve as an unsubscribe
token and a redirect target cannot be changed (no open redirect). Verification is constant-time.
Several secrets may be configured: the first signs, every one verifies (rotation). Tokens carry
no expiry: unsubscribe links must keep working long after the send (CAN-SPAM asks 30 days).
Pure computation: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import orjson

from legato.errors import InvalidInput

#: Routes phase 2 serves under `base_url` (tokens follow the prefix).
CLICK_PATH = "/t/c/"
OPEN_PATH = "/t/o/"
UNSUBSCRIBE_PATH = "/u/"
PREFERENCES_PATH = "/p/"
CONFIRM_PATH = "/c/"

_SIGNATURE_BYTES = 16
_MIN_SECRET_BYTES = 16
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_NO_TRACK = re.compile(r"\bdata-legato-notrack\b", re.IGNORECASE)
_PIXEL_STYLE = "display:block;width:1px;height:1px;border:0"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class TokenPurpose(StrEnum):
    """What a token may be used for; each purpose signs with its own derived key."""

    CLICK = "click"
    OPEN = "open"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CONFIRM = "confirm"


@dataclass(frozen=True, slots=True)
class ClickClaim:
    """A click on link number `link` of a message, redirecting to `url`."""

    workspace_id: str
    message_id: str
    url: str
    link: int


@dataclass(frozen=True, slots=True)
class OpenClaim:
    """A load of a message's open pixel."""

    workspace_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    """An unsubscribe from a channel (`topic` None) or one topic, optionally from a message."""

    workspace_id: str
    profile_id: str
    channel: str
    topic: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class PreferencesClaim:
    """Access to one person's preference centre."""

    workspace_id: str
    profile_id: str


@dataclass(frozen=True, slots=True)
class ConfirmClaim:
    """A double opt-in confirmation for a channel or topic."""

    workspace_id: str
    profile_id: str
    channel: str
    topic: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tracker:
    """Signs and verifies link tokens and rewrites HTML for click and open tracking."""

    def __init__(self, secrets: Sequence[str | bytes], base_url: str) -> None:
        if not secrets:
            raise InvalidInput("tracking needs at least one secret", field="tracking_secrets")
        keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets]
        for index, key in enumerate(keys):
            if len(key) < _MIN_SECRET_BYTES:
                raise InvalidInput(
                    f"tracking secret #{index + 1} is shorter than {_MIN_SECRET_BYTES} bytes",
                    field="tracking_secrets",
                )
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidInput(f"tracking base URL must be http(s): {base_url!r}", field="base_url")
        self.base_url = base_url.rstrip("/")
        self._keys = {
            purpose: [
                hmac.new(key, b"legato/" + purpose.encode(), hashlib.sha256).digest()
                for key in keys
            ]
            for purpose in TokenPurpose
        }

    # -- tokens ---------------------------------------------------------------------------------

    def sign(self, purpose: TokenPurpose, claims: dict[str, Any]) -> str:
        """A token carrying `claims` for `purpose`."""
        payload = _b64(orjson.dumps(claims, option=orjson.OPT_SORT_KEYS))
        return f"{payload}.{self._signature(purpose, payload, self._keys[purpose][0])}"

    def verify(self, purpose: TokenPurpose, token: str) -> dict[str, Any]:
        """The claims of a token signed for `purpose` by any configured secret; InvalidInput
        if it is malformed, tampered with or meant for another purpose."""
        payload, dot, signature = token.rpartition(".")
        if not dot or not payload or len(token) > 8192:
            raise InvalidInput("malformed link token", field="token")
        valid = False
        for key in self._keys[purpose]:
            # Check every key so timing does not reveal which one matched.
            valid |= hmac.compare_digest(self._signature(purpose, payload, key), signature)
        if not valid:
            raise InvalidInput("invalid link token", field="token")
        try:
            claims = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("malformed link token", field="token") from exc
        if not isinstance(claims, dict):
            raise InvalidInput("malformed link token", field="token")
        return claims

    @staticmethod
    def _signature(purpose: TokenPurpose, payload: str, key: bytes) -> str:
        mac = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
        return _b64(mac[:_SIGNATURE_BYTES])

    # -- URLs -----------------------------------------------------------------------------------

    def click_url(self, *, workspace_id: str, message_id: str, url: str, link: int = 0) -> str:
        """The signed redirect that records a click on `url` and sends the reader there."""
        token = self.sign(
            TokenPurpose.CLICK, {"w": workspace_id, "m": message_id, "u": url, "l": link}
        )
        return f"{self.base_url}{CLICK_PATH}{token}"

    def open_url(self, *, workspace_id: str, message_id: str) -> str:
        """The open-pixel image URL of a message."""
        token = self.sign(TokenPurpose.OPEN, {"w": workspace_id, "m": message_id})
        return f"{self.base_url}{OPEN_PATH}{token}.gif"

    def unsubscribe_url(
        self,
        *,
        workspace_id: str,
        profile_id: str,
        channel: str,
        topic: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """The unsubscribe link (GET shows a page, POST is RFC 8058 one-click)."""
        claims = {"w": workspace_id, "p": profile_id, "c": channel, "t": topic, "m": message_id}
        return f"{self.base_url}{UNSUBSCRIBE_PATH}{self.sign(TokenPurpose.UNSUBSCRIBE, claims)}"

    def preferences_url(self, *, workspace_id: str, profile_id: str) -> str:
        """The link to a person's preference centre."""
        token = self.sign(TokenPurpose.PREFERENCES, {"w": workspace_id, "p": profile_id})
        return f"{self.base_url}{PREFERENCES_PATH}{token}"

    def confirm_url(
        self, *, workspace_id: str, profile_id: str, channel: str, topic: str | None = None
    ) -> str:
        """The double opt-in confirmation link."""
        claims = {"w": workspace_id, "p": profile_id, "c": channel, "t": topic}
        return f"{self.base_url}{CONFIRM_PATH}{self.sign(TokenPurpose.CONFIRM, claims)}"

    # -- verification into typed claims ---------------------------------------------------------

    def verify_click(self, token: str) -> ClickClaim:
        """The click a redirect token stands for."""
        c = self.verify(TokenPurpose.CLICK, token)
        url = _str(c, "u")
        if urlsplit(url).scheme not in {"http", "https"}:
            raise InvalidInput("click token does not point to an http(s) URL", field="token")
        return ClickClaim(_str(c, "w"), _str(c, "m"), url, _int(c, "l"))

    def verify_open(self, token: str) -> OpenClaim:
        """The message an open-pixel token stands for (a trailing `.gif` is accepted)."""
        c = self.verify(TokenPurpose.OPEN, token.removesuffix(".gif"))
        return OpenClaim(_str(c, "w"), _str(c, "m"))

    def verify_unsubscribe(self, token: str) -> UnsubscribeClaim:
        """Who unsubscribes from what."""
        c = self.verify(TokenPurpose.UNSUBSCRIBE, token)
        return UnsubscribeClaim(
            _str(c, "w"), _str(c, "p"), _str(c, "c"), _opt_str(c, "t"), _opt_str(c, "m")
        )

    def verify_preferences(self, token: str) -> PreferencesClaim:
        """Whose preference centre a token opens."""
        c = self.verify(TokenPurpose.PREFERENCES, token)
        return PreferencesClaim(_str(c, "w"), _str(c, "p"))

    def verify_confirm(self, token: str) -> ConfirmClaim:
        """What a double opt-in confirmation token confirms."""
        c = self.verify(TokenPurpose.CONFIRM, token)
        return ConfirmClaim(_str(c, "w"), _str(c, "p"), _str(c, "c"), _opt_str(c, "t"))

    # -- HTML -----------------------------------------------------------------------------------

    def track_html(
        self,
        html: str,
        *,
        workspace_id: str,
        message_id: str,
        clicks: bool = True,
        opens: bool = True,
    ) -> str:
        """`html` with http(s) links rewritten to signed redirects and an open pixel added.

        Left alone: non-http links (mailto:, tel:, anchors), links into this tracker (unsubscribe,
        preferences) and anchors marked `data-legato-notrack`.
        """
        if clicks:
            counter = iter(range(1_000_000))

            def rewrite_anchor(match: re.Match[str]) -> str:
                tag = match.group(0)
                if _NO_TRACK.search(tag):
                    return tag
                href = _HREF.search(tag)
                if href is None:
                    return tag
                raw = next(g for g in href.groups()[1:] if g is not None)
                target = html_lib.unescape(raw).strip()
                if not self._trackable(target):
                    return tag
                tracked = self.click_url(
                    workspace_id=workspace_id, message_id=message_id, url=target, link=next(counter)
                )
                replacement = f'{href.group(1)}"{html_lib.escape(tracked)}"'
                return tag[: href.start()] + replacement + tag[href.end() :]

            html = _ANCHOR.sub(rewrite_anchor, html)
        if opens:
            src = html_lib.escape(self.open_url(workspace_id=workspace_id, message_id=message_id))
            pixel = f'<img src="{src}" width="1" height="1" alt="" style="{_PIXEL_STYLE}" />'
            ends = list(_BODY_END.finditer(html))
            if ends:
                at = ends[-1].start()
                html = html[:at] + pixel + html[at:]
            else:
                html += pixel
        return html

    def _trackable(self, url: str) -> bool:
        if "{{" in url or "{%" in url:
            return False
        if urlsplit(url).scheme.lower() not in {"http", "https"}:
            return False
        return not url.startswith(self.base_url + "/")


def _str(claims: dict[str, Any], key: str) -> str:
    value = claims.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"link token lacks {key!r}", field="token")
    return value


def _opt_str(claims: dict[str, Any], key: str) -> str | None:
    value = claims.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"link token has a malformed {key!r}", field="token")
    return value


def _int(claims: dict[str, Any], key: str) -> int:
    value = claims.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"link token lacks {key!r}", field="token")
    return value
