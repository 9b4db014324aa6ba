"""The composition root: the one place that decides which adapter serves which port.

`Legato` builds the database, stores, services and workers from `Settings`; routes, CLI
commands and workers receive what they need from it and never build adapters themselves.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from legato.channels.outbound import OutboundClient
from legato.channels.registry import ProviderContext, ProviderRegistry
from legato.channels.templates import TemplateRenderer
from legato.clock import SystemClock
from legato.domain.identity import IdentityConfig
from legato.ids import new_id
from legato.ports import Clock, Worker
from legato.runtime.channels import BUILTIN_CHANNELS, DeliveryConfig
from legato.runtime.computed_traits import ComputedTraitStage
from legato.runtime.consent import ConsentService
from legato.runtime.delivery import DeliveryOptions, DeliveryWorker
from legato.runtime.identity import IdentityStage
from legato.runtime.inbox import Inbox, InboxChannel, InboxHub
from legato.runtime.ingest import GroupCommitWriter, Ingest, IngestConfig
from legato.runtime.journey_service import JourneyService
from legato.runtime.journeys import JourneyStage
from legato.runtime.keys import KeyResolver
from legato.runtime.links import Links
from legato.runtime.listening import Versions
from legato.runtime.messages import Messages
from legato.runtime.outbox import OutboxRecorder, WebhookWorker
from legato.runtime.outcomes import Outcomes
from legato.runtime.pipeline import Pipeline
from legato.runtime.profiles import ProfileStage
from legato.runtime.segment_service import SegmentService
from legato.runtime.segments import Definitions, Evaluator, RecheckWorker, SegmentStage
from legato.runtime.simulation import Simulations
from legato.runtime.timers import TimerWorker
from legato.settings import Settings
from legato.store.channels import ChannelStore
from legato.store.consent import ConsentStore
from legato.store.database import Database, ProcessLock
from legato.store.delivery import DeliveryStore
from legato.store.devices import DeviceStore
from legato.store.events import EventLog, RejectedStore
from legato.store.inbox import InboxStore
from legato.store.journeys import JourneyStore
from legato.store.log import LogConsumer
from legato.store.memberships import MembershipStore
from legato.store.outbox import OutboxStore
from legato.store.profiles import ProfileStore
from legato.store.recipients import RecipientStore
from legato.store.runs import RunStore
from legato.store.workspaces import WorkspaceStore

log = structlog.get_logger(__name__)

#: Pause before a crashed worker is started again (doubling up to the cap).
WORKER_RESTART_SECONDS = (0.5, 30.0)


class Legato:
    """One Legato process: its adapters, services and background workers."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None):
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.workspaces = WorkspaceStore(self.db)
        self.keys = KeyResolver(self.workspaces)
        self.events = EventLog(self.db)
        self.rejections = RejectedStore(self.db)
        self.ingest = Ingest(
            GroupCommitWriter(self.events),
            self.clock,
            new_id,
            IngestConfig(settings.partitions, settings.max_message_bytes),
        )
        self.workers: list[Worker] = []
        self.profiles = ProfileStore(
            self.db, IdentityConfig(settings.identity_traits, settings.default_phone_region)
        )
        # One engine process on SQLite (ProcessLock): it holds every partition at once.
        self.pipeline = Pipeline(
            self.db,
            LogConsumer(self.db, "pipeline", settings.partitions),
            [IdentityStage(self.profiles, self.clock), ProfileStage(self.profiles, self.clock)],
            self.clock,
            chunk_size=settings.pipeline_chunk_size,
            exclusive=settings.is_sqlite,
        )
        self.workers.append(self.pipeline)
        # Events committed by this process wake the pipeline at once (no idle poll to wait out).
        self.ingest.writer.on_commit(self.pipeline.notify)
        self._compose_segments()
        # Journeys: the stage runs after every other stage (segments included), then the
        # timer, outbox-recorder and webhook workers.
        self.journey_store = JourneyStore(self.db)
        self.runs = RunStore(self.db, settings.partitions)
        self.outbox = OutboxStore(self.db)
        self.versions = Versions(self.journey_store)
        self.journeys = JourneyService(
            self.db,
            self.journey_store,
            self.runs,
            self.versions,
            self.profiles,
            self.clock,
            allow_private_webhooks=settings.allow_private_webhooks,
        )
        self.journey_stage = JourneyStage(self.journey_store, self.runs, self.versions, self.clock)
        self.pipeline.stages.append(self.journey_stage)
        self.timers = TimerWorker(
            self.db, self.journey_store, self.runs, self.versions, self.profiles, self.clock
        )
        self.outbox_recorder = OutboxRecorder(self.db, self.outbox, self.clock)
        self.webhooks = WebhookWorker(
            self.db,
            self.outbox,
            self.runs,
            self.versions,
            lambda: OutboundClient(allow_private=settings.allow_private_webhooks, clock=self.clock),
            self.clock,
        )
        self.workers.extend([self.timers, self.outbox_recorder, self.webhooks])
        self.simulations = Simulations(self.runs, self.clock)
        self._compose_delivery(settings)
        self._lock = ProcessLock(settings.database_url) if settings.is_sqlite else None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _compose_segments(self) -> None:
        """Segments and computed traits (issue 3): their stages after the profile stage (and
        before journeys), the re-check worker, and the service behind the API and CLI."""
        self.memberships = MembershipStore(self.db)
        self.segment_definitions = Definitions(self.memberships)
        runs = RunStore(self.db, self.settings.partitions)
        self.segment_evaluator = Evaluator(self.memberships, runs.append_internal)
        self.computed_trait_stage = ComputedTraitStage(
            self.memberships, self.segment_definitions, self.clock
        )
        self.segment_stage = SegmentStage(
            self.segment_definitions,
            self.segment_evaluator,
            self.clock,
            self.computed_trait_stage.changed,
        )
        self.pipeline.stages.extend([self.computed_trait_stage, self.segment_stage])
        self.segment_rechecks = RecheckWorker(
            self.db, self.memberships, self.segment_definitions, self.segment_evaluator, self.clock
        )
        self.workers.append(self.segment_rechecks)
        self.segments = SegmentService(
            self.db,
            self.memberships,
            self.segment_definitions,
            self.segment_evaluator,
            self.clock,
            on_change=self.segment_rechecks.notify,
        )

    def _compose_delivery(self, settings: Settings) -> None:
        """Delivery (issue 5): channels, templates, consent, the worker and client services.

        Its worker drains the outbox's send requests (recording them in `journey_sends` as the
        recorder did) and takes the recorder's place.
        """
        self.outbound = OutboundClient(
            allow_private=settings.allow_private_webhooks,
            timeout=settings.outbound_timeout,
            connect_timeout=settings.outbound_connect_timeout,
            allowed_networks=settings.outbound_allowed_networks,
            clock=self.clock,
        )
        self.channel_store = ChannelStore(self.db)
        self.deliveries = DeliveryStore(self.db)
        self.recipients = RecipientStore(self.db)
        self.consent_store = ConsentStore(self.db)
        self.devices = DeviceStore(self.db)
        self.inbox_store = InboxStore(self.db)
        self.inbox_hub = InboxHub()
        builtins = {
            kind: InboxChannel(kind, self.inbox_store, self.inbox_hub, self.clock)
            for kind in BUILTIN_CHANNELS
        }
        self.delivery_config = DeliveryConfig(
            self.channel_store,
            ProviderRegistry.from_entry_points(),
            ProviderContext(self.outbound, self.clock),
            self.clock,
            builtins=builtins,
        )
        base_url = settings.public_base_url or f"http://{settings.host}:{settings.port}"
        self.links = Links(settings.tracking_secrets, base_url, self.deliveries, self.clock)
        renderer = TemplateRenderer()
        wake = self._wake_delivery
        self.consent = ConsentService(
            self.db,
            self.consent_store,
            self.deliveries,
            self.recipients,
            self.delivery_config,
            self.links,
            self.runs.append_internal,
            self.clock,
            wake=wake,
        )
        self.delivery = DeliveryWorker(
            self.db,
            self.deliveries,
            self.recipients,
            self.consent_store,
            self.devices,
            self.delivery_config,
            self.links,
            renderer,
            self.runs.append_internal,
            self.clock,
            consent=self.consent,
            outbox=self.outbox,
            options=DeliveryOptions(
                batch_size=settings.delivery_batch_size,
                concurrency=settings.delivery_concurrency,
                max_attempts=settings.delivery_max_attempts,
                lease_ms=settings.delivery_lease_seconds * 1000,
                exclusive=settings.is_sqlite,
            ),
        )
        self.messages = Messages(
            self.db,
            self.deliveries,
            self.recipients,
            self.delivery_config,
            self.links,
            renderer,
            self.clock,
            wake=wake,
        )
        self.outcomes = Outcomes(
            self.db,
            self.deliveries,
            self.recipients,
            self.consent_store,
            self.consent,
            self.runs.append_internal,
            self.clock,
        )
        self.inbox = Inbox(self.inbox_store, self.devices, self.inbox_hub, self.clock)
        self.workers = [w for w in self.workers if w is not self.outbox_recorder]
        self.workers.append(self.delivery)

    def _wake_delivery(self) -> None:
        self.delivery.notify()

    def migrate(self) -> None:
        """Bring the database schema up to date (blocking)."""
        self.db.migrate()

    def claim_engine(self) -> None:
        """On SQLite, take the one-engine-process lock (Conflict if another process has it)."""
        if self._lock is not None and not self._lock.held:
            self._lock.acquire()

    async def start(self) -> None:
        """Take the engine lock (SQLite) and start the background workers."""
        self.claim_engine()
        self._stop = asyncio.Event()
        if self.settings.run_workers:
            self._tasks = [
                asyncio.create_task(self._supervise(worker), name=worker.name)
                for worker in self.workers
            ]

    async def _supervise(self, worker: Worker) -> None:
        pause, cap = WORKER_RESTART_SECONDS
        while not self._stop.is_set():
            try:
                await worker.run(self._stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker crashed; restarting", worker=worker.name, pause=pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)
                pause = min(pause * 2, cap)

    async def stop(self) -> None:
        """Let workers finish their current unit of work, then close everything."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        await self.ingest.close()
        self.events.close()
        await self.delivery_config.aclose()
        await self.outbound.aclose()
        await self.db.dispose()
        if self._lock is not None:
            self._lock.release()
