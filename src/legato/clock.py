"""The real clock: the operating system's time."""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    """`Clock` backed by the OS wall clock."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC."""
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(seconds)
