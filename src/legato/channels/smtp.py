"""Email over SMTP (aiosmtplib): STARTTLS or implicit TLS, pooled connections reused across
sends, multipart text + HTML, and RFC 8058 one-click unsubscribe headers.

SMTP replies map onto the error tree: 4xx → `Retryable`, 5xx → `Permanent` (a refused recipient
is flagged `invalid_recipient`, a refused login or sender `provider_fault`), connection trouble
→ `Retryable`. The SMTP host is operator configuration, so it is not subject to the outbound
address guard (local relays are the normal case). Never decides whether to send.
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar, Literal

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legato.channels.registry import ProviderContext, parse_settings
from legato.domain.delivery import EmailContent, OutboundMessage, SendResult
from legato.errors import Permanent, ProviderError, Retryable
from legato.ports import Clock

# RFC 5322 allows 998 characters a line; folding at 78 could split a long unsubscribe URL.
_POLICY = email.policy.SMTP.clone(max_line_length=998)
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
        sender = parseaddr(mail["From"])[1]
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            connection = await self._deliver(connection, mail, sender, message.to)
            connection.sent += 1
            if connection.sent >= self.settings.max_messages_per_connection:
                await _quit(connection)
            else:
                self._idle.append(connection)
        return SendResult(provider=self._name, provider_message_id=str(mail["Message-ID"]))

    async def _deliver(
        self, connection: _Connection | None, mail: EmailMessage, sender: str, to: str
    ) -> _Connection:
        reused = connection is not None
        try:
            if connection is None or not connection.smtp.is_connected:
                connection = await self._connect()
            await connection.smtp.send_message(mail, sender=sender, recipients=[to])
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
        return await self._deliver(None, mail, sender, to)

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

    def _build(self, message: OutboundMessage, content: EmailContent) -> EmailMessage:
        mail = EmailMessage(policy=_POLICY)
        from_address = content.from_address or self.settings.from_address
        domain = parseaddr(from_address)[1].rpartition("@")[2] or "legato.invalid"
        try:
            mail["From"] = from_address
            mail["To"] = Address(addr_spec=message.to)
            mail["Subject"] = content.subject
            mail["Date"] = format_datetime(
                datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=UTC)
            )
            # Derived from the outbox key: a retried send carries the same Message-ID, so
            # receiving systems can recognise the duplicate.
            mail["Message-ID"] = f"<{message.message_id}@{domain}>"
            reply_to = content.reply_to or self.settings.reply_to
            if reply_to:
                mail["Reply-To"] = reply_to
            unsubscribe = [
                f"<{uri}>"
                for uri in (
                    content.unsubscribe_url,
                    content.unsubscribe_mailto and f"mailto:{content.unsubscribe_mailto}",
                )
                if uri
            ]
            if unsubscribe:
                mail["List-Unsubscribe"] = ", ".join(unsubscribe)
            if content.unsubscribe_url and content.unsubscribe_url.startswith("https://"):
                # RFC 8058: only an HTTPS URI may be used for one-click unsubscribe.
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            for header, value in content.headers.items():
                if header.lower() in _RESERVED_HEADERS:
                    raise Permanent(f"header {header!r} is set by Legato, not by templates")
                mail[header] = value
            if content.text is not None:
                mail.set_content(content.text)
                if content.html is not None:
                    mail.add_alternative(content.html, subtype="html")
            elif content.html is not None:
                mail.set_content(content.html, subtype="html")
            else:
                raise Permanent("email has neither text nor html")
        except (ValueError, TypeError, IndexError) as exc:
            raise Permanent(f"email cannot be built: {exc}") from exc
        return mail

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
