"""The delivery worker: drains journey send requests and transactional messages to providers.

Each round it moves new send requests from the journey outbox into `deliveries` (one row per
outbox key, in the transaction that marks the outbox row done), then claims a batch of due
deliveries — transactional before bulk — and for each: the gate (consent and subscription,
suppression, frequency caps, quiet hours in the person's timezone → defer or drop), rendering
(profile traits, computed traits, trigger event, journey data), link tracking and the
unsubscribe header, then the provider call. Whatever the journey says, the gate decides.

Idempotency: a batch is claimed in one transaction (`claimed`), and the rows about to reach a
provider are marked `sending` in another before any call is made. A crash leaves `claimed`
rows to be queued again and `sending` rows as dead letters ("interrupted"), never re-sent
automatically — except on channels whose receivers recognise a repeat (webhook-id, the inbox's
delivery-id key). Providers get the delivery id as message id (SMTP Message-ID, webhook-id).
Retryable errors back off exponentially (or per Retry-After) up to `max_attempts`, then the
message is a dead letter; permanent errors are recorded, suppress invalid addresses and record
unsubscribes the provider reports. Every outcome is an internal event (`runtime.timeline`).
Never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.channels.templates import TemplateRenderer
from legato.domain.consent import (
    ConsentStatus,
    Suppression,
    SuppressionReason,
)
from legato.domain.delivery import (
    SendResult,
    suppression_key,
)
from legato.errors import Permanent, ProviderError, Retryable
from legato.ids import new_id
from legato.ports import Clock
from legato.runtime.channels import (
    BUILTIN_CHANNELS,
    DeliveryConfig,
    WorkspaceConfig,
)
from legato.runtime.composer import DEVICE_KINDS, Composer, Plan
from legato.runtime.consent import ConsentService
from legato.runtime.links import Links
from legato.runtime.timeline import (
    MESSAGE_BOUNCED,
    MESSAGE_FAILED,
    MESSAGE_SENT,
    AppendInternal,
    message_event,
)
from legato.store.consent import ConsentStore
from legato.store.database import Database
from legato.store.delivery import (
    PRIORITY_BULK,
    DeliveryRow,
    DeliveryStore,
    NewDelivery,
    Settlement,
)
from legato.store.devices import DeviceStore
from legato.store.outbox import OutboxItem, OutboxStore
from legato.store.recipients import RecipientStore
from legato.store.runs import InternalEvent

log = structlog.get_logger(__name__)

#: Channel kinds whose receivers recognise a repeated send: an interrupted send is re-sent.
RESEND_SAFE_KINDS = frozenset({"webhook", *BUILTIN_CHANNELS.values()})


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Tunables of the delivery worker."""

    batch_size: int = 200
    concurrency: int = 64
    # Messages handed to providers per wave, in multiples of `concurrency`.
    wave_factor: int = 4
    # Batches worked at once (people split between them), so that one batch's provider calls
    # overlap another's reads, rendering and writes.
    lanes: int = 2
    max_attempts: int = 8
    # A batch's provider calls must end within the lease, or its rows count as interrupted.
    lease_ms: int = 300_000
    # First retry delay and the cap of the exponential backoff.
    backoff_ms: tuple[int, int] = (30_000, 6 * 3_600_000)
    idle_seconds: tuple[float, float] = (0.005, 0.25)
    recover_every_ms: int = 30_000
    # No other delivery worker can run (SQLite's one engine process): rows held at start are
    # a previous process's, released at once instead of when their lease lapses.
    exclusive: bool = False


@dataclass(slots=True)
class _Outcomes:
    """A wave's provider answers, judged: rows to settle, events, and side effects."""

    settlements: list[Settlement] = field(default_factory=list)
    events: list[InternalEvent | None] = field(default_factory=list)
    suppress: list[tuple[Plan, SuppressionReason, str]] = field(default_factory=list)
    unsubscribed: list[Plan] = field(default_factory=list)
    gone: list[Plan] = field(default_factory=list)


def backoff_ms(delivery_id: str, attempts: int, options: DeliveryOptions) -> int:
    """The delay before attempt `attempts + 1`: doubling from the base up to the cap, spread
    by up to 20% (a hash of the id, so retries of many messages do not align)."""
    base, cap = options.backoff_ms
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    spread = (zlib.crc32(delivery_id.encode()) % 1000) / 5000
    return int(delay * (1 + spread))


def delivery_from_outbox(item: OutboxItem) -> NewDelivery:
    """The delivery of a journey send request (the outbox payload of a `Send` effect)."""
    payload = item.payload
    topic = payload.get("topic")
    return NewDelivery(
        workspace_id=item.workspace_id,
        key=item.idempotency_key,
        source="journey",
        priority=PRIORITY_BULK,
        profile_id=item.profile_id,
        channel=str(payload.get("channel") or ""),
        template=str(payload.get("template") or ""),
        topic=topic if isinstance(topic, str) else None,
        request={
            "trigger": payload.get("trigger") or {},
            "data": payload.get("data") or {},
            "settings": payload.get("settings") or {},
        },
        journey_key=item.journey_key,
        journey_version=item.version,
        run_id=item.run_id,
        node_id=item.node_id,
    )


class DeliveryWorker:
    """`Worker` that turns queued deliveries into provider calls and outcome events."""

    name = "delivery"

    def __init__(
        self,
        db: Database,
        store: DeliveryStore,
        people: RecipientStore,
        consent_store: ConsentStore,
        devices: DeviceStore,
        config: DeliveryConfig,
        links: Links,
        renderer: TemplateRenderer,
        append: AppendInternal,
        clock: Clock,
        *,
        consent: ConsentService,
        outbox: OutboxStore | None = None,
        options: DeliveryOptions | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.consent_store = consent_store
        self.devices = devices
        self.config = config
        self.links = links
        self.composer = Composer(db, store, people, consent_store, devices, config, renderer, clock)
        self.append = append
        self.clock = clock
        self.consent = consent
        self.outbox = outbox
        self.options = options or DeliveryOptions()
        self._wake = asyncio.Event()
        self._next_recover_ms = 0
        #: Counters for metrics and tests: provider calls made, outcomes by status.
        self.calls = 0
        self.outcomes: dict[str, int] = defaultdict(int)

    def notify(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set (finishing the batches in hand)."""
        if self.options.exclusive:
            await self.recover(everything=True)
        lanes = max(1, self.options.lanes)
        await asyncio.gather(*(self._lane(stop, index, lanes) for index in range(lanes)))

    async def _lane(self, stop: asyncio.Event, index: int, lanes: int) -> None:
        low, high = self.options.idle_seconds
        pause = low
        while not stop.is_set():
            moved = await self.intake() if index == 0 else 0
            handled = await self.step(lane=(index, lanes))
            if moved or handled:
                pause = low
                continue
            self._wake.clear()
            wait = pause
            due = await self.store.next_due_ms()
            if due is not None:
                wait = min(wait, max(0.0, (due - self.clock.now_ms()) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            pause = min(pause * 2, high)

    async def drain(self, *, rounds: int = 1000) -> int:
        """Handle everything due now (tests, benchmarks); returns the deliveries handled."""
        total = 0
        lanes = max(1, self.options.lanes)
        for _ in range(rounds):
            moved = await self.intake()
            handled = sum(await asyncio.gather(*(self.step(lane=(i, lanes)) for i in range(lanes))))
            total += handled
            if not moved and not handled:
                break
        return total

    async def intake(self) -> int:
        """Move new send requests from the journey outbox into the delivery queue."""
        if self.outbox is None:
            return 0
        now_ms = self.clock.now_ms()
        async with self.db.transaction() as conn:
            items = await self.outbox.claim_outbox(
                conn, "send", now_ms, self.options.batch_size, status="done"
            )
            if not items:
                return 0
            items.sort(key=lambda item: (item.created_ms, item.idempotency_key))
            await self.outbox.record_sends(conn, items, now_ms)
            await self.store.enqueue(
                conn,
                [delivery_from_outbox(item) for item in items],
                [new_id() for _ in items],
                now_ms,
            )
        return len(items)

    async def recover(self, *, everything: bool = False) -> tuple[int, int]:
        """Release the rows of workers that vanished (see `DeliveryStore.recover`)."""
        requeued, dead = await self.store.recover(
            self.clock.now_ms(), resend_kinds=RESEND_SAFE_KINDS, everything=everything
        )
        if requeued or dead:
            log.warning("recovered interrupted deliveries", requeued=requeued, dead=dead)
        return requeued, dead

    async def step(self, lane: tuple[int, int] = (0, 1)) -> int:
        """Claim one batch of due deliveries (of one lane) and take each to its outcome."""
        now_ms = self.clock.now_ms()
        if lane[0] == 0 and now_ms >= self._next_recover_ms:
            self._next_recover_ms = now_ms + self.options.recover_every_ms
            await self.recover()
        claim = new_id()
        rows = await self.store.claim(
            now_ms,
            self.options.batch_size,
            claim=claim,
            lease_ms=self.options.lease_ms,
            lane=lane,
        )
        if not rows:
            return 0
        by_workspace: dict[str, list[DeliveryRow]] = defaultdict(list)
        for row in rows:
            by_workspace[row.workspace_id].append(row)
        for workspace_id, batch in by_workspace.items():
            await self._process(workspace_id, claim, batch)
        return len(rows)

    # -- one workspace's batch ----------------------------------------------------------------

    async def _process(self, workspace_id: str, claim: str, rows: list[DeliveryRow]) -> None:
        config = await self.config.snapshot(workspace_id)
        tracker = await self.links.tracker()
        plans = await self.composer.plan(config, tracker, rows)
        decided = [p.settlement for p in plans if p.settlement is not None]
        first_events = [p.event for p in plans if p.event is not None]
        for item in decided:
            self.outcomes[item.status] += 1
        sending = [p for p in plans if p.message is not None]
        # In waves: a crash leaves at most one wave's outcomes unknown; `concurrency` calls at
        # a time within a wave. One transaction per wave records the previous wave's outcomes
        # and marks this wave `sending`.
        size = max(1, self.options.concurrency * self.options.wave_factor)
        limit = asyncio.Semaphore(max(1, self.options.concurrency))
        waves = [sending[start : start + size] for start in range(0, len(sending), size)]
        previous: _Outcomes | None = None
        for wave in [*waves, []]:
            now_ms = self.clock.now_ms()
            async with self.db.transaction() as conn:
                if decided or first_events:
                    await self.store.settle(conn, claim, decided, now_ms)
                    await self.append(conn, first_events)
                    decided, first_events = [], []
                if previous is not None:
                    await self._write(conn, config, claim, previous, now_ms)
                held: set[str] = set()
                if wave:
                    held = await self.store.mark_sending(
                        conn,
                        claim,
                        [(p.row.id, p.kind or "", p.message.to) for p in wave if p.message],
                        now_ms + self.options.lease_ms,
                        now_ms,
                    )
            if previous is not None:
                await self._after(config, previous)
                previous = None
            wave = [p for p in wave if p.row.id in held]
            if wave:
                results = await asyncio.gather(*(self._call(plan, limit) for plan in wave))
                self.calls += len(wave)
                previous = self._judge(wave, results)

    @staticmethod
    async def _call(plan: Plan, limit: asyncio.Semaphore) -> SendResult | BaseException:
        assert plan.provider is not None and plan.message is not None
        async with limit:
            try:
                return await plan.provider.send(plan.message)
            except ProviderError as exc:
                return exc
            except Exception as exc:  # a provider bug must not lose the other outcomes
                log.exception("provider raised an unexpected error", message=plan.row.id)
                return exc

    def _judge(
        self, plans: Sequence[Plan], results: Sequence[SendResult | BaseException]
    ) -> _Outcomes:
        """What each provider answer means for its message: a settlement, an event, and
        the side effects to apply."""
        now_ms = self.clock.now_ms()
        found = _Outcomes()
        settlements, events = found.settlements, found.events
        suppress, unsubscribed, gone = found.suppress, found.unsubscribed, found.gone
        for plan, result in zip(plans, results, strict=True):
            row = Composer.row_of(plan)
            message = plan.message
            assert message is not None
            base = {
                "attempts": row.attempts + 1,
                "address": message.to,
                "kind": plan.kind,
                "category": row.category,
                "locale": plan.locale,
            }
            if isinstance(result, SendResult):
                settlements.append(
                    Settlement(
                        row.id,
                        "sent",
                        {
                            **base,
                            "sent_ms": now_ms,
                            "provider": result.provider,
                            "provider_message_id": result.provider_message_id,
                            "reason": None,
                            "detail": None,
                        },
                    )
                )
                events.append(
                    message_event(
                        row,
                        MESSAGE_SENT,
                        suffix="sent",
                        at_ms=now_ms,
                        who=plan.who,
                        provider=result.provider,
                        provider_message_id=result.provider_message_id,
                        failed_over=list(result.attempted) or None,
                    )
                )
                continue
            detail = result.message if isinstance(result, ProviderError) else repr(result)
            if isinstance(result, Permanent):
                flags = result.details
                status, reason, name = "failed", "permanent", MESSAGE_FAILED
                if flags.get("unsubscribed"):
                    reason = "unsubscribed"
                    unsubscribed.append(plan)
                elif flags.get("endpoint_gone") or (
                    flags.get("invalid_recipient") and plan.kind in DEVICE_KINDS
                ):
                    reason = "endpoint_gone"
                    gone.append(plan)
                elif flags.get("invalid_recipient"):
                    reason = "invalid_recipient"
                    why = SuppressionReason.INVALID
                    if plan.kind == "email":
                        status, name, why = (
                            "bounced",
                            MESSAGE_BOUNCED,
                            SuppressionReason.HARD_BOUNCE,
                        )
                    suppress.append((plan, why, detail))
                elif flags.get("provider_fault"):
                    reason = "provider_fault"
                settlements.append(
                    Settlement(row.id, status, {**base, "reason": reason, "detail": detail})
                )
                events.append(
                    message_event(
                        row,
                        name,
                        suffix=f"{status}:{now_ms}",
                        at_ms=now_ms,
                        who=plan.who,
                        reason=reason,
                        detail=detail,
                        hard=True if status == "bounced" else None,
                    )
                )
                continue
            attempts = row.attempts + 1
            if attempts >= self.options.max_attempts:
                settlements.append(
                    Settlement(
                        row.id,
                        "dead",
                        {**base, "reason": "retries_exhausted", "detail": detail},
                    )
                )
                events.append(
                    message_event(
                        row,
                        MESSAGE_FAILED,
                        suffix=f"dead:{now_ms}",
                        at_ms=now_ms,
                        who=plan.who,
                        reason="retries_exhausted",
                        detail=detail,
                    )
                )
                continue
            delay = backoff_ms(row.id, attempts, self.options)
            if isinstance(result, Retryable) and result.retry_after is not None:
                delay = max(delay // 8, int(result.retry_after * 1000))
            settlements.append(
                Settlement(
                    row.id,
                    "queued",
                    {
                        **base,
                        "next_attempt_ms": now_ms + delay,
                        "reason": "retryable",
                        "detail": detail,
                    },
                )
            )
        return found

    async def _write(
        self,
        conn: AsyncConnection,
        config: WorkspaceConfig,
        claim: str,
        found: _Outcomes,
        now_ms: int,
    ) -> None:
        """Record a wave's outcomes on the caller's transaction."""
        lost = await self.store.settle(conn, claim, found.settlements, now_ms)
        for plan, why, detail in found.suppress:
            assert plan.kind is not None and plan.message is not None
            address = plan.message.to
            await self.consent_store.suppress(
                conn,
                config.workspace_id,
                Suppression(plan.kind, address, why, now_ms, detail[:500]),
                suppression_key(plan.kind, address),
                profile_id=plan.who.profile_id if plan.who else None,
                message_id=plan.row.id,
            )
        await self.append(conn, [e for e in found.events if e is not None])
        if lost:
            log.warning("deliveries settled by another worker meanwhile", lost=lost)
        for item in found.settlements:
            self.outcomes[item.status] += 1

    async def _after(self, config: WorkspaceConfig, found: _Outcomes) -> None:
        """Side effects outside the outcome transaction: consent withdrawn at the provider
        (e.g. an SMS STOP) and push endpoints that no longer exist."""
        for plan in found.unsubscribed:
            if plan.who is None or plan.kind is None:
                continue
            try:
                await self.consent.change(
                    config.workspace_id,
                    plan.who.profile_id,
                    channel=plan.kind,
                    status=ConsentStatus.UNSUBSCRIBED,
                    source="provider",
                    evidence={"provider": plan.provider.name if plan.provider else ""},
                    message_id=plan.row.id,
                )
            except Exception:
                log.exception("recording a provider-reported unsubscribe failed")
        for plan in found.gone:
            assert plan.message is not None
            if plan.kind == "push":
                await self.devices.remove_token(config.workspace_id, plan.message.to)
            elif plan.kind == "webpush":
                endpoint = _endpoint(plan.message.to)
                if endpoint:
                    await self.devices.remove_webpush(config.workspace_id, endpoint)


def _endpoint(subscription: str) -> str | None:
    try:
        value = orjson.loads(subscription)
    except orjson.JSONDecodeError:
        return None
    endpoint = value.get("endpoint") if isinstance(value, dict) else None
    return endpoint if isinstance(endpoint, str) else None
