"""Draining the journey outbox: the send recorder and the webhook caller.

`OutboxRecorder` is the channel-independent stand-in for delivery until the delivery issue
lands: it moves send requests into `journey_sends`, claiming and recording each batch in one
transaction, so an idempotency key is recorded exactly once whatever crashes. `WebhookWorker`
makes the HTTP calls of `webhook` nodes through the SSRF-guarded `OutboundClient` (loopback and
private addresses are refused at connect time unless settings allow them), outside any
transaction: rows are leased while in flight, retried with backoff on timeouts, 429 and 5xx
until the request's give-up time, and the answer goes back to the run as `WebhookDone` in the
transaction that finishes the row. A call may repeat after a crash (it carries an
`Idempotency-Key` header); its effect on the run never does. Never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from legato.channels.outbound import OutboundClient
from legato.channels.templates import TemplateRenderer, prepare
from legato.domain.engine import WebhookDone
from legato.errors import InvalidInput, Permanent, Retryable
from legato.ports import Clock
from legato.runtime.listening import Facts, Versions
from legato.runtime.transitions import Unit
from legato.store.database import Database
from legato.store.log import classify_failure
from legato.store.outbox import OutboxItem, OutboxStore
from legato.store.runs import RunStore

log = structlog.get_logger(__name__)

#: How long a claimed webhook row stays leased (the longest call timeout plus a margin).
WEBHOOK_LEASE_MS = 90_000
#: Retry delays of a webhook call: doubling from 1 s, at most this long.
MAX_BACKOFF_MS = 300_000


async def _idle(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class OutboxRecorder:
    """`Worker` that records send requests once per idempotency key (until delivery exists)."""

    name = "outbox-recorder"

    def __init__(
        self,
        db: Database,
        store: OutboxStore,
        clock: Clock,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.1,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        #: Sends recorded by this instance.
        self.recorded = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Record until `stop` is set."""
        while not stop.is_set():
            if await self.tick() < self.batch_size:
                await _idle(stop, self.poll_seconds)

    async def drain(self) -> int:
        """Record everything pending now (tests, benchmarks)."""
        total = 0
        while count := await self.tick():
            total += count
        return total

    async def tick(self) -> int:
        """Claim and record one batch in one transaction; returns how many were recorded."""
        for attempt in range(6):
            try:
                now = self.clock.now_ms()
                async with self.db.transaction() as conn:
                    items = await self.store.claim_outbox(
                        conn, "send", now, self.batch_size, status="done"
                    )
                    await self.store.record_sends(conn, items, now)
                self.recorded += len(items)
                return len(items)
            except Exception as exc:
                if classify_failure(exc) != "transient" or attempt == 5:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)
        return 0  # pragma: no cover


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What a call came to: an answer for the run, or a retry after a transient failure."""

    status: int = 0
    body: Any = None
    retry: bool = False
    reason: str = ""


class WebhookWorker:
    """`Worker` that calls webhook nodes' endpoints and feeds the answers back to the runs.

    `client` makes the SSRF-guarded HTTP client (the composition root decides its settings).
    """

    name = "webhooks"

    def __init__(
        self,
        db: Database,
        outbox: OutboxStore,
        runs: RunStore,
        versions: Versions,
        client: Callable[[], OutboundClient],
        clock: Clock,
        *,
        batch_size: int = 50,
        concurrency: int = 20,
        poll_seconds: float = 0.25,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.runs = runs
        self.versions = versions
        self._make_client = client
        self._client: OutboundClient | None = None
        self.clock = clock
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._renderer = TemplateRenderer()
        #: Calls made and answers applied by this instance.
        self.calls = 0
        self.answered = 0

    @property
    def client(self) -> OutboundClient:
        """The outbound HTTP client (made on first use, closed by `aclose`)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client's connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self, stop: asyncio.Event) -> None:
        """Call until `stop` is set."""
        try:
            while not stop.is_set():
                if await self.tick() < self.batch_size:
                    await _idle(stop, self.poll_seconds)
        finally:
            await self.aclose()

    async def drain(self) -> int:
        """Make every call available now (tests); returns how many were handled."""
        total = 0
        while count := await self.tick():
            total += count
        return total

    async def tick(self) -> int:
        """Claim a batch, call concurrently, apply each answer in its own transaction."""
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            items = await self.outbox.claim_outbox(
                conn, "webhook", now, self.batch_size, status="inflight", lease_ms=WEBHOOK_LEASE_MS
            )
        if not items:
            return 0
        outcomes = await asyncio.gather(*(self._guarded_call(item) for item in items))
        for item, outcome in zip(items, outcomes, strict=True):
            await self._finish(item, outcome)
        return len(items)

    async def _guarded_call(self, item: OutboxItem) -> WebhookOutcome:
        async with self._slots:
            try:
                return await self.call(item)
            except Exception as exc:  # a bug here must not strand the row: it is retried
                log.exception("webhook call failed unexpectedly", key=item.idempotency_key)
                return WebhookOutcome(retry=True, reason=f"{type(exc).__name__}: {exc}")

    async def call(self, item: OutboxItem) -> WebhookOutcome:
        """Render the body and make the call once."""
        request = item.payload
        try:
            body = await self._body(item)
        except InvalidInput as exc:
            return WebhookOutcome(status=0, reason=f"body: {exc.message}")
        headers = {str(k): str(v) for k, v in dict(request.get("headers") or {}).items()}
        lowered = {name.lower() for name in headers}
        headers.setdefault("Idempotency-Key", item.idempotency_key)
        if body is not None and "content-type" not in lowered:
            headers["Content-Type"] = "application/json"
        self.calls += 1
        try:
            response = await self.client.request(
                str(request["method"]),
                str(request["url"]),
                headers=headers,
                content=body.encode() if body is not None else None,
                time_limit=int(request["timeout_ms"]) / 1000,
            )
        except Retryable as exc:
            return WebhookOutcome(retry=True, reason=exc.message)
        except Permanent as exc:
            # A refused address, a bad URL, a redirect loop: retrying changes nothing.
            return WebhookOutcome(status=0, reason=exc.message)
        status = response.status
        if status in {408, 425, 429} or status >= 500:
            return WebhookOutcome(status=status, retry=True, reason=f"HTTP {status}")
        return WebhookOutcome(status=status, body=response.json())

    async def _body(self, item: OutboxItem) -> str | None:
        source = item.payload.get("body_template")
        if not isinstance(source, str):
            return None
        async with self.db.connect() as conn:
            facts = (await self.runs.facts(conn, item.workspace_id, [item.profile_id], ()))[
                item.profile_id
            ]
        scope = {
            "trigger": item.payload.get("trigger") or {},
            "data": item.payload.get("data") or {},
            "profile": {
                "id": item.profile_id,
                "traits": facts.traits,
                "computed_traits": facts.computed_traits,
            },
        }
        template = prepare({"key": "webhook-body", "channel": "sms", "body": source})
        rendered = self._renderer.render(template, scope).content
        return str(getattr(rendered, "body", ""))

    async def _finish(self, item: OutboxItem, outcome: WebhookOutcome) -> None:
        for attempt in range(6):
            try:
                await self._apply(item, outcome)
                return
            except Exception as exc:
                if classify_failure(exc) != "transient" or attempt == 5:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)

    async def _apply(self, item: OutboxItem, outcome: WebhookOutcome) -> None:
        now = self.clock.now_ms()
        give_up_at = int(item.payload.get("give_up_at_ms") or now)
        async with self.db.transaction() as conn:
            if outcome.retry:
                retry_at = now + min(MAX_BACKOFF_MS, 1000 * 2 ** max(0, item.attempts - 1))
                if retry_at < give_up_at:
                    await self.outbox.finish_outbox(
                        conn, item.id, item.attempts, now, retry_at_ms=retry_at
                    )
                    log.info(
                        "webhook call will be retried",
                        key=item.idempotency_key,
                        reason=outcome.reason,
                        attempt=item.attempts,
                    )
                    return
            if not await self.outbox.finish_outbox(conn, item.id, item.attempts, now):
                return  # the lease lapsed and another attempt owns the row now
            stored = await self.runs.lock_runs(conn, [item.run_id])
            state = stored.get(item.run_id)
            if state is None:
                return
            version = await self.versions.get(
                conn, item.workspace_id, item.journey_key, item.version
            )
            unit = Unit(item.workspace_id, now)
            tracked = unit.adopt(version, state)
            loaded = await self.runs.facts(
                conn, item.workspace_id, [item.profile_id], self.versions.reads(version)
            )
            done = WebhookDone(
                item.node_id,
                outcome.status if not outcome.retry else 0,
                outcome.body,
                item.idempotency_key,
            )
            ctx = Facts(item.profile_id, loaded[item.profile_id])
            unit.step(version, tracked, done, ctx, now)
            await self.runs.write(conn, unit.finish())
        self.answered += 1
