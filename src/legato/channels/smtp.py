"""Email over SMTP (aiosmtplib): STARTTLS or implicit TLS, pooled connections reused across
sends, multipart text + HTML, and RFC 8058 one-click unsubscribe headers.

The message bytes are written here, byte for byte as the standard library's header registry,
`set_content` and generator write them (lines up to 998 characters), but without parsing back
every header: plain ASCII values are stored as they are, From/Reply-To are parsed once per
value, and the text parts are written directly. Anything else (non-ASCII or long headers,
custom Content-* headers, 8bit parts for a server without 8BITMIME) goes through the standard
library as before.

SMTP replies map onto the error tree: 4xx → `Retryable`, 5xx → `Permanent` (a refused recipient
is flagged `invalid_recipient`, a refused login or sender `provider_fault`), connection trouble
→ `Retryable`. The SMTP host is operator configuration, so it is not subject to the outbound
address guard (local relays are the normal case). Never decides whether to send.
"""

from __future__ import annotations

import asyncio
import email.policy
import functools
import io
import random
import re
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.contentmanager import _encode_text  # type: ignore[attr-defined]
from email.generator import BytesGenerator
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar, Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import EmailContent, OutboundMessage, SendResult
from legato.errors import Permanent, ProviderError, Retryable
from legato.ports import Clock

# RFC 5322 allows 998 characters a line; folding at 78 could split a long unsubscribe URL
# (into RFC 2047 encoded words, which List-Unsubscribe does not allow). Messages are written
# with these policies by this module, not re-folded by aiosmtplib's `send_message`.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
#: The policy writing a message: by (SMTPUTF8 in use, server without 8BITMIME).
_WIRE_POLICIES = {
    (utf8, seven_bit): (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(
        max_line_length=998, cte_type="7bit" if seven_bit else "8bit"
    )
    for utf8 in (False, True)
    for seven_bit in (False, True)
}
# Values that every header kind writes unchanged: printable ASCII words separated by single
# spaces, no encoded-word opener, short enough to need no folding. Such values are stored
# as they are instead of going through the header parser (the costly part of building mail).
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_PLAIN_LINE = 998 - len("List-Unsubscribe-Post: ")
# An addr-spec whose local part and domain are dot-atoms: written as is in a To header.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_NEWLINES = re.compile(r"\r\n|\r|\n")
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")
_RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to",
        "list-unsubscribe", "list-unsubscribe-post", "content-type",
        "content-transfer-encoding", "mime-version",
    }
)  # fmt: skip


class SmtpSettings(BaseModel):
    """Settings of one SMTP provider configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    # starttls: upgrade when the server offers it; require_starttls: refuse to send in clear;
    # tls: implicit TLS (port 465); none: never encrypt (local relays, tests).
    security: Literal["starttls", "require_starttls", "tls", "none"] = "starttls"
    validate_certs: bool = True
    ca_file: str | None = None
    from_address: str = Field(alias="from", min_length=3)
    reply_to: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    pool_size: int = Field(default=2, ge=1, le=64)
    max_messages_per_connection: int = Field(default=100, ge=1)
    local_hostname: str | None = None

    @field_validator("from_address", "reply_to")
    @classmethod
    def _is_address(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError(f"not an email address: {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class _Part:
    """A text part as built here: its headers (the whole message's when it is the only
    part) and its encoded payload."""

    headers: EmailMessage
    payload: str
    eight_bit: bool


@dataclass(frozen=True, slots=True)
class _Body:
    """The parts of a message built here, and the boundary between them (None: one part)."""

    parts: tuple[_Part, ...]
    boundary: str | None = None


@dataclass(frozen=True, slots=True)
class _Mail:
    """A message ready to send: the MIME structure, the envelope sender and its Message-ID;
    `body` when this module built the parts (and writes them), None when `set_content` did."""

    message: EmailMessage
    sender: str
    message_id: str
    body: _Body | None = None


def _plain(value: str) -> bool:
    return len(value) <= _PLAIN_LINE and "=?" not in value and bool(_PLAIN_VALUE.fullmatch(value))


@functools.lru_cache(maxsize=256)
def _address_header(name: str, value: str) -> tuple[BaseHeader, str]:
    """A From or Reply-To header parsed once per value (they rarely vary), and its address."""
    if len(value.splitlines()) > 1:
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    header = _POLICY.header_factory(name, value)
    return header, parseaddr(header)[1]


@functools.lru_cache(maxsize=256)
def _domain(from_address: str) -> str:
    return parseaddr(from_address)[1].rpartition("@")[2] or "legato.invalid"


def _set(mail: EmailMessage, name: str, value: str) -> None:
    if _plain(value):
        mail.set_raw(name, value)
    else:
        mail[name] = value


@dataclass(slots=True)
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0


class SmtpProvider:
    """Sends `EmailContent` through one SMTP server, keeping up to `pool_size` connections."""

    channel: ClassVar[str] = "email"

    def __init__(self, name: str, settings: SmtpSettings, *, clock: Clock) -> None:
        self._name = name
        self.settings = settings
        self._clock = clock
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._tls_context: ssl.SSLContext | None = None
        if settings.ca_file is not None:
            self._tls_context = ssl.create_default_context(cafile=settings.ca_file)

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> SmtpProvider:
        """Build from a channel document's settings."""
        return cls(name, parse_settings(SmtpSettings, settings), clock=context.clock)

    @property
    def name(self) -> str:
        """The configuration's name."""
        return self._name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one email to the server (reusing a pooled connection when one is idle)."""
        content = message.content
        if not isinstance(content, EmailContent):
            raise Permanent(f"smtp sends email content, got {type(content).__name__}")
        mail = self._build(message, content)
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            connection = await self._deliver(connection, mail, message.to)
            connection.sent += 1
            if connection.sent >= self.settings.max_messages_per_connection:
                await _quit(connection)
            else:
                self._idle.append(connection)
        return SendResult(provider=self._name, provider_message_id=mail.message_id)

    async def _deliver(self, connection: _Connection | None, mail: _Mail, to: str) -> _Connection:
        reused = connection is not None
        try:
            if connection is None or not connection.smtp.is_connected:
                connection = await self._connect()
            smtp = connection.smtp
            data, options = await _wire(smtp, mail, to)
            await smtp.sendmail(mail.sender, [to], data, mail_options=options)
            return connection
        except aiosmtplib.SMTPServerDisconnected as exc:
            if connection is not None:
                await _close(connection)
            if not reused:
                raise Retryable(f"smtp {self._name}: server disconnected: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            if connection is not None:
                await _reset_or_close(connection, exc)
                if connection.smtp.is_connected:
                    self._idle.append(connection)
            raise _smtp_error(self._name, exc) from exc
        except OSError as exc:
            if connection is not None:
                await _close(connection)
            raise Retryable(f"smtp {self._name}: {exc!r}") from exc
        # An idle pooled connection the server had dropped: one more try on a fresh one.
        return await self._deliver(None, mail, to)

    async def _connect(self) -> _Connection:
        s = self.settings
        start_tls: bool | None = {
            "starttls": None,
            "require_starttls": True,
            "tls": False,
            "none": False,
        }[s.security]
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.security == "tls",
            start_tls=start_tls,
            validate_certs=s.validate_certs,
            tls_context=self._tls_context,
            timeout=s.timeout,
            local_hostname=s.local_hostname,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPException as exc:
            raise _smtp_error(self._name, exc) from exc
        except OSError as exc:
            raise Retryable(f"smtp {self._name}: cannot connect: {exc!r}") from exc
        return _Connection(smtp)

    def _build(self, message: OutboundMessage, content: EmailContent) -> _Mail:
        mail = EmailMessage(policy=_POLICY)
        from_address = content.from_address or self.settings.from_address
        domain = _domain(from_address)
        try:
            sender_header, sender = _address_header("From", from_address)
            mail["From"] = sender_header
            if "=?" not in message.to and _PLAIN_ADDRESS.fullmatch(message.to):
                mail.set_raw("To", message.to)
            else:
                mail["To"] = Address(addr_spec=message.to)
            _set(mail, "Subject", content.subject)
            mail.set_raw(
                "Date",
                format_datetime(datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=UTC)),
            )
            # Derived from the outbox key: a retried send carries the same Message-ID, so
            # receiving systems can recognise the duplicate.
            message_id = f"<{message.message_id}@{domain}>"
            if _plain(message_id):
                mail.set_raw("Message-ID", message_id)
            else:
                mail["Message-ID"] = message_id
                message_id = str(mail["Message-ID"])
            reply_to = content.reply_to or self.settings.reply_to
            if reply_to:
                mail["Reply-To"] = _address_header("Reply-To", reply_to)[0]
            unsubscribe = [
                f"<{uri}>"
                for uri in (
                    content.unsubscribe_url,
                    content.unsubscribe_mailto and f"mailto:{content.unsubscribe_mailto}",
                )
                if uri
            ]
            if unsubscribe:
                _set(mail, "List-Unsubscribe", ", ".join(unsubscribe))
            if content.unsubscribe_url and content.unsubscribe_url.startswith("https://"):
                # RFC 8058: only an HTTPS URI may be used for one-click unsubscribe.
                mail.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            for header, value in content.headers.items():
                if header.lower() in _RESERVED_HEADERS:
                    raise Permanent(f"header {header!r} is set by Legato, not by templates")
                mail[header] = value
            if content.text is None and content.html is None:
                raise Permanent("email has neither text nor html")
            body = None
            if any(name.lower().startswith("content-") for name in content.headers):
                # The MIME machinery moves such headers into the first part: let it.
                if content.text is not None:
                    mail.set_content(content.text)
                    if content.html is not None:
                        mail.add_alternative(content.html, subtype="html")
                else:
                    mail.set_content(content.html, subtype="html")
            else:
                body = _set_body(mail, content.text, content.html)
        except (ValueError, TypeError, IndexError) as exc:
            raise Permanent(f"email cannot be built: {exc}") from exc
        return _Mail(mail, sender, message_id, body)

    async def aclose(self) -> None:
        """Quit every pooled connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await _quit(connection)


def _smtp_error(name: str, exc: aiosmtplib.SMTPException) -> ProviderError:
    prefix = f"smtp {name}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [error.code for error in exc.recipients]
        if codes and all(code >= 500 for code in codes):
            reasons = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
            return Permanent(f"{prefix}: recipient refused: {reasons}", invalid_recipient=True)
        return Retryable(f"{prefix}: recipient deferred: {exc}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Permanent(f"{prefix}: login refused: {exc.code} {exc.message}", provider_fault=True)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        # The bare class is what aiosmtplib raises for a session it cannot set up as configured
        # (e.g. STARTTLS required but not offered): retrying will not change that.
        return Permanent(f"{prefix}: {exc}", provider_fault=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
        if 400 <= code < 500:
            return Retryable(f"{prefix}: {code} {exc.message}", code=code)
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return Permanent(f"{prefix}: sender refused: {code} {exc.message}", provider_fault=True)
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            return Permanent(f"{prefix}: {code} {exc.message}", code=code, provider_fault=True)
        if code >= 500:
            return Permanent(f"{prefix}: {code} {exc.message}", code=code)
    return Retryable(f"{prefix}: {exc!r}")


def _set_body(mail: EmailMessage, text: str | None, html: str | None) -> _Body:
    """The parts `set_content` (then `add_alternative`) would make, headers and bytes alike,
    without parsing back the headers it writes: text and/or HTML, UTF-8, the transfer
    encoding chosen by the standard library's own rule."""
    if text is not None and html is not None:
        plain = _text_part(EmailMessage(policy=_POLICY), text, "plain")
        rich = _text_part(EmailMessage(policy=_POLICY), html, "html")
        rich.headers.set_raw("MIME-Version", "1.0")
        boundary = _boundary(plain, rich)
        mail.set_raw("MIME-Version", "1.0")
        mail.set_raw("Content-Type", f'multipart/alternative; boundary="{boundary}"')
        mail.set_payload([plain.headers, rich.headers])
        return _Body((plain, rich), boundary)
    if text is not None:
        part = _text_part(mail, text, "plain")
    else:
        assert html is not None
        part = _text_part(mail, html, "html")
    mail.set_raw("MIME-Version", "1.0")
    return _Body((part,))


def _text_part(part: EmailMessage, body: str, subtype: str) -> _Part:
    # `_encode_text` is the rule `set_content` uses (7bit, 8bit, quoted-printable or base64).
    cte, payload = _encode_text(body, "utf-8", None, _POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return _Part(part, payload, cte == "8bit")


def _bytes(mail: _Mail, utf8: bool, seven_bit: bool) -> bytes:
    """The message as `BytesGenerator` writes it with the wire policy. Parts built here are
    written directly (the generator would parse back every Content-Type header first); an
    8bit part for a server without 8BITMIME is left to the generator, which re-encodes it."""
    policy = _WIRE_POLICIES[utf8, seven_bit]
    body = mail.body
    if body is None or (seven_bit and any(part.eight_bit for part in body.parts)):
        out = io.BytesIO()
        BytesGenerator(out, policy=policy).flatten(mail.message)
        return out.getvalue()
    chunks = _header_lines(mail.message, policy)
    if body.boundary is None:
        chunks.append(_lines(body.parts[0].payload))
        return b"".join(chunks)
    delimiter = f"--{body.boundary}".encode("ascii")
    for index, part in enumerate(body.parts):
        chunks += [b"\r\n" if index else b"", delimiter, b"\r\n"]
        chunks += _header_lines(part.headers, policy)
        chunks.append(_lines(part.payload))
    chunks += [b"\r\n", delimiter, b"--\r\n"]
    return b"".join(chunks)


def _header_lines(
    part: EmailMessage, policy: email.policy.EmailPolicy[EmailMessage]
) -> list[bytes]:
    return [*(policy.fold_binary(name, value) for name, value in part.raw_items()), b"\r\n"]


def _lines(payload: str) -> bytes:
    # As the generator writes a payload: every line break becomes CRLF; 8bit payloads hold
    # their bytes as surrogate escapes.
    return "\r\n".join(_NEWLINES.split(payload)).encode("ascii", "surrogateescape")


def _boundary(*parts: _Part) -> str:
    """A multipart boundary in the generator's own format, found in none of the parts."""
    while True:
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
        if not any(boundary in part.payload for part in parts):
            return boundary


async def _wire(smtp: aiosmtplib.SMTP, mail: _Mail, to: str) -> tuple[bytes, list[str]]:
    """The message's bytes and MAIL options for this session, decided as aiosmtplib's
    `send_message` decides them (SMTPUTF8 for non-ASCII addresses, 8BITMIME when offered),
    but written with this module's line length."""
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not smtp.is_connected:
                raise
            await smtp.helo()
    options: list[str] = []
    utf8 = not (mail.sender.isascii() and to.isascii())
    if utf8:
        if not smtp.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "An address containing non-ASCII characters was provided, but "
                "SMTPUTF8 is not supported by this server"
            )
        options.append("SMTPUTF8")
    seven_bit = not smtp.supports_extension("8BITMIME")
    if not seven_bit:
        options.append("BODY=8BITMIME")
    return _bytes(mail, utf8, seven_bit), options


async def _reset_or_close(connection: _Connection, exc: aiosmtplib.SMTPException) -> None:
    # After a refused transaction the session is still usable once RSET succeeds.
    if isinstance(exc, aiosmtplib.SMTPResponseException) and connection.smtp.is_connected:
        try:
            await connection.smtp.rset()
            return
        except (aiosmtplib.SMTPException, OSError):
            pass
    await _close(connection)


async def _quit(connection: _Connection) -> None:
    try:
        await connection.smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        await _close(connection)


async def _close(connection: _Connection) -> None:
    connection.smtp.close()
