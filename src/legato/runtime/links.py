"""The signing of links in messages: one `Tracker` per process, from the configured secrets or,
when none are configured, from a secret generated once and kept in the database (so links keep
working across restarts and every process of a deployment agrees).

Never builds URLs itself: `legato.channels.tracking.Tracker` does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from legato.channels.tracking import Tracker
from legato.ports import Clock
from legato.store.delivery import DeliveryStore

#: Name of the generated secret in `delivery_secrets`.
TRACKING_SECRET = "tracking"  # noqa: S105 (a name, not the secret)


class Links:
    """Hands out the process's `Tracker`, building it on first use."""

    def __init__(
        self, configured: Sequence[str], base_url: str, store: DeliveryStore, clock: Clock
    ) -> None:
        self.configured = tuple(configured)
        self.base_url = base_url.rstrip("/")
        self.store = store
        self.clock = clock
        self._tracker: Tracker | None = None
        self._lock = asyncio.Lock()

    async def tracker(self) -> Tracker:
        """The tracker signing and verifying this deployment's links."""
        if self._tracker is not None:
            return self._tracker
        async with self._lock:
            if self._tracker is None:
                keys = list(self.configured)
                if not keys:
                    candidate = secrets.token_urlsafe(32)
                    keys = [
                        await self.store.secret(TRACKING_SECRET, candidate, self.clock.now_ms())
                    ]
                self._tracker = Tracker(keys, self.base_url)
        return self._tracker
