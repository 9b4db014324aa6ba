"""The ports: `typing.Protocol`s that services depend on and adapters implement.

Services in `runtime/`, `analytics/`, `channels/`, `connectors/` receive these from the
composition root (`legato.app`); they never construct an adapter themselves. Each port has an
in-memory fake in `legato.testing`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection

    from legato.domain.delivery import OutboundMessage, SendResult
    from legato.domain.messages import EventRow, RejectedMessage
    from legato.domain.pipeline import ResolvedEvent


@runtime_checkable
class Clock(Protocol):
    """Where time comes from. The domain never asks the OS; tests use `FakeClock`."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait (worker pacing only: business waits are timers, never sleeps)."""
        ...


@runtime_checkable
class Worker(Protocol):
    """A background loop run by `legato serve` (pipeline, timers, delivery...)."""

    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then return promptly (finishing the current unit)."""
        ...


@runtime_checkable
class ChannelProvider(Protocol):
    """One configured provider of a channel (SMTP server, Twilio account, FCM project...).

    `send` raises `Retryable` (try later or fail over) or `Permanent` (never retry; details
    carry `invalid_recipient=True` when the address should be suppressed and
    `provider_fault=True` when another provider might still succeed).
    """

    @property
    def channel(self) -> str:
        """The channel kind served: email, sms, whatsapp, push, webpush, webhook..."""
        ...

    @property
    def name(self) -> str:
        """The configuration's name, recorded on every send result."""
        ...

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hand one message to the provider; returns once the provider accepted it."""
        ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...


@runtime_checkable
class Stage(Protocol):
    """One step of the event pipeline (identity, profile, then segments, journeys...).

    `process` runs inside the transaction that also advances the log offset, on events of one
    partition in log order; it fills the `ResolvedEvent` fields it owns for later stages. It
    raises to refuse the chunk: the pipeline then retries event by event and records the
    event that keeps failing, so one bad event never stops the others.
    """

    name: str

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Apply this stage's effects for `batch` on `conn` (no commit: the pipeline commits)."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """The event log's write side: durable appends, idempotent per (workspace, messageId).

    `append` returns only once rows and rejections are committed; a row whose messageId the
    workspace already has is dropped silently (SDKs retry whole batches).
    """

    async def append(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        """Append `rows` and keep `rejected`, in one transaction."""
        ...
