"""Failover across the named provider configurations of one channel.

Providers are tried in order: a `Retryable` error, or a `Permanent` one flagged
`provider_fault` (bad credentials, suspended account), moves on to the next; any other
`Permanent` error concerns the message or recipient and stops at once. Never retries the same
provider itself: backoff is the delivery worker's job.
"""

from __future__ import annotations

from collections.abc import Sequence

from legato.domain.delivery import OutboundMessage, SendResult
from legato.errors import Permanent, ProviderError, Retryable
from legato.ports import ChannelProvider


class FailoverChannel:
    """A `ChannelProvider` that tries several providers of one channel in order."""

    def __init__(self, providers: Sequence[ChannelProvider], *, name: str) -> None:
        if not providers:
            raise ValueError("a failover channel needs at least one provider")
        kinds = {provider.channel for provider in providers}
        if len(kinds) != 1:
            raise ValueError(f"providers of one channel must share its kind, got {sorted(kinds)}")
        self._providers = tuple(providers)
        self._name = name
        self._channel = kinds.pop()

    @property
    def channel(self) -> str:
        """The channel kind all providers serve."""
        return self._channel

    @property
    def name(self) -> str:
        """The channel's key."""
        return self._name

    @property
    def providers(self) -> tuple[ChannelProvider, ...]:
        """The providers, in the order they are tried."""
        return self._providers

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send through the first provider that accepts; raise the last error if none does.

        When all fail with `Retryable`, the error raised asks for the shortest Retry-After any
        of them gave.
        """
        attempted: list[str] = []
        failures: list[ProviderError] = []
        for provider in self._providers:
            try:
                result = await provider.send(message)
            except Retryable as exc:
                failures.append(exc)
            except Permanent as exc:
                if not exc.details.get("provider_fault"):
                    raise
                failures.append(exc)
            else:
                if attempted:
                    return SendResult(
                        provider=result.provider,
                        provider_message_id=result.provider_message_id,
                        attempted=(*attempted, *result.attempted),
                    )
                return result
            attempted.append(provider.name)
        retryable = [f for f in failures if isinstance(f, Retryable)]
        summary = "; ".join(
            f"{name}: {f.message}" for name, f in zip(attempted, failures, strict=True)
        )
        if not retryable:
            raise Permanent(
                f"every provider failed: {summary}", attempted=attempted, provider_fault=True
            )
        delays = [f.retry_after for f in retryable if f.retry_after is not None]
        raise Retryable(
            f"every provider failed: {summary}",
            retry_after=min(delays) if delays else None,
            attempted=attempted,
        )

    async def aclose(self) -> None:
        """Close every provider."""
        for provider in self._providers:
            await provider.aclose()
