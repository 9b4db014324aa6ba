"""Per-provider rate limits: a `ChannelProvider` wrapper that spaces sends to a configured rate
(the token bucket in `legato.domain.delivery`), waiting on the injected clock.

Never drops or reorders a send; never retries (that is the delivery worker's job).
"""

from __future__ import annotations

from legato.domain.delivery import OutboundMessage, SendResult, TokenBucket
from legato.ports import ChannelProvider, Clock


class RateLimitedChannel:
    """Sends through `inner` at most `rate` times a second on average (bursts up to `burst`)."""

    def __init__(self, inner: ChannelProvider, *, rate: float, burst: float, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self._bucket = TokenBucket.full(rate, burst, clock.now_ms())

    @property
    def channel(self) -> str:
        """The wrapped provider's channel kind."""
        return self._inner.channel

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self._inner.name

    async def send(self, message: OutboundMessage) -> SendResult:
        """Wait for a token, then send."""
        # Taking is synchronous (no await between read and write), so concurrent senders each
        # reserve their own slot without a lock.
        self._bucket, wait_ms = self._bucket.take(self._clock.now_ms())
        if wait_ms:
            await self._clock.sleep(wait_ms / 1000)
        return await self._inner.send(message)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._inner.aclose()
