"""In-memory fakes of the ports, for unit tests and for users testing their own journeys.

`FakeClock` follows temporalio's time-skipping test environment: time moves only when a test
says so, and `advance` lets whatever waits on it run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from legato.domain.delivery import OutboundMessage, SendResult
from legato.domain.durations import parse_duration_ms
from legato.domain.messages import EventRow, RejectedMessage
from legato.errors import ProviderError


class FakeClock:
    """A `Clock` that moves only when told to."""

    def __init__(self, start: datetime | int | None = None) -> None:
        if start is None:
            start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._now = start if isinstance(start, int) else int(start.timestamp() * 1000)
        self._changed = asyncio.Event()

    def now_ms(self) -> int:
        """The fake current time."""
        return self._now

    def set(self, when: datetime | int) -> None:
        """Jump to an absolute moment (never backwards)."""
        target = when if isinstance(when, int) else int(when.timestamp() * 1000)
        if target < self._now:
            raise ValueError("FakeClock never moves backwards")
        self._now = target
        self._changed.set()
        self._changed = asyncio.Event()

    def advance(self, duration: str | None = None, **units: float) -> int:
        """Move forward by a duration ("3d", "90m") or keyword units (days=3); returns now."""
        delta = parse_duration_ms(duration) if duration else 0
        scale = {"days": 86_400_000, "hours": 3_600_000, "minutes": 60_000, "seconds": 1000}
        for unit, amount in units.items():
            delta += int(amount * scale[unit])
        self.set(self._now + delta)
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Yield to the loop without real waiting; workers under test spin on `advance`."""
        await asyncio.sleep(0)


class RecordingChannel:
    """A `ChannelProvider` that records what it is asked to send; `failures` are raised first,
    one per send, before it starts accepting."""

    def __init__(
        self,
        channel: str = "email",
        name: str = "recording",
        failures: Iterable[ProviderError] = (),
    ) -> None:
        self._channel = channel
        self._name = name
        self.failures = list(failures)
        self.sent: list[OutboundMessage] = []
        self.attempts = 0
        self.closed = False

    @property
    def channel(self) -> str:
        """The channel kind this fake pretends to serve."""
        return self._channel

    @property
    def name(self) -> str:
        """The configuration name recorded on results."""
        return self._name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Raise the next queued failure, or record the message as sent."""
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendResult(provider=self._name, provider_message_id=f"{self._name}-{len(self.sent)}")

    async def aclose(self) -> None:
        """Mark closed."""
        self.closed = True


class InMemoryEventLog:
    """An `EventLog` in a list: seq numbers, dedupe per (workspace, messageId), rejections.

    `fail_next` makes the next appends raise (to test what the writer does on failure);
    `appends` counts transactions, as a real database would see them.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[int, EventRow]] = []
        self.rejected: list[RejectedMessage] = []
        self.appends = 0
        self.fail_next: list[Exception] = []
        self._seen: set[tuple[str, str]] = set()

    async def append(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        """Append atomically: all rows and rejections, or (on a queued failure) none."""
        await asyncio.sleep(0)
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.appends += 1
        for row in rows:
            key = (row.workspace_id, row.message_id)
            if key not in self._seen:
                self._seen.add(key)
                self.rows.append((len(self.rows) + 1, row))
        self.rejected.extend(rejected)
