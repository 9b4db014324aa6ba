"""The one mechanism every source of the demo dataset writes through: the window being played.

A `Timeline` holds the seeded generator, makes ids, and queues each message for the day its
timestamp falls in; the generator plays the window day by day, letting each `Source` add that
day's messages, then takes the day sorted by time. A source may queue messages for later days
(a ticket closed tomorrow) but never for a day already played. Never reads the clock.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, Protocol

from legato.demo.spec import DAY_MS, MINUTE_MS, DemoSpec, Message


class Source(Protocol):
    """Something that happens every day of the window (visits, calls, the ERP's sync)."""

    def play(self, day: int) -> None:
        """Queue the messages this source starts on `day`."""
        ...


class Timeline:
    """The window: its seeded generator, message and object ids, and the messages queued."""

    def __init__(self, spec: DemoSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.start_ms = spec.start_ms
        self.now_ms = spec.now_ms
        self.days = spec.days
        #: The day being played: messages for earlier days can no longer be queued.
        self.day = 0
        self._dates: dict[int, str] = {}
        self._buckets: dict[int, list[tuple[int, int, Message]]] = {}
        self._counter = 0
        self._ids = 0
        self._messages = 0
        self._id_prefix = self.uuid()[:24]

    def at(self, day: int, utc_minute: int) -> int:
        """The instant in the `day`-th 24-hour slice of the window whose UTC clock reads
        `utc_minute` (minutes after midnight, any integer)."""
        day_start = self.start_ms + day * DAY_MS
        return day_start + (utc_minute * MINUTE_MS - day_start % DAY_MS) % DAY_MS

    def emit(self, ts: int, message: Message, horizon: int) -> bool:
        """Queue a message for its day; False (dropped) if it falls after `horizon`."""
        if ts > horizon:
            return False
        day = (ts - self.start_ms) // DAY_MS
        if day < self.day:
            raise AssertionError(f"message at {ts} is for a day already played")
        message["timestamp"] = self.iso(ts)
        self._counter += 1
        bucket = self._buckets.get(day)
        if bucket is None:
            bucket = self._buckets[day] = []
        bucket.append((ts, self._counter, message))
        return True

    def take(self, day: int) -> list[Message]:
        """The messages of `day`, in timestamp order (then in the order they were queued)."""
        bucket = self._buckets.pop(day, [])
        bucket.sort()  # by time, then by creation: the counter is unique
        return [message for _, _, message in bucket]

    def drop_later(self) -> None:
        """Forget what was queued past the window (follow-ups that never happened)."""
        self._buckets.clear()

    def server(self, user_id: str | None, event: str, props: dict[str, Any], lib: Any) -> Message:
        """A `track` sent by a backend (shop, helpdesk, contact centre...): userId only."""
        return {
            "type": "track",
            "messageId": self.message_id(),
            "userId": user_id,
            "event": event,
            "properties": props,
            "context": {"library": lib},
        }

    def iso(self, ts: int) -> str:
        """`ts` as ISO-8601 UTC with milliseconds, from cached date and clock strings."""
        day, rem = divmod(ts, DAY_MS)
        date = self._dates.get(day)
        if date is None:
            date = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
            self._dates[day] = date
        minute, rem = divmod(rem, MINUTE_MS)
        return date + _CLOCK_MINUTES[minute] + _CLOCK_SECONDS[rem]

    def message_id(self) -> str:
        """A UUID-shaped id: this run's random prefix and a counter (unique, and cheap)."""
        self._messages += 1
        return f"{self._id_prefix}{self._messages:012x}"

    def uuid(self) -> str:
        """A random (version 4) UUID drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def id(self, prefix: str) -> str:
        """A short unique id (cart, checkout, order, ticket, call...) with `prefix`."""
        self._ids += 1
        return f"{prefix}{(self._ids * 2_654_435_761 + self.spec.seed) % 2**40:010x}"


#: "HH:MM:" for every minute of a day, and "SS.mmmZ" for every millisecond of a minute.
_CLOCK_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_CLOCK_SECONDS = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(MINUTE_MS))
