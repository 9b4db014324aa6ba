"""Loading the demo into a running Legato: its workspace and keys, the dataset through
ingestion, the pipeline catching up with the log, and the example journeys.

Used by `legato demo`. It goes through the services the APIs use — ingestion's `Ingest.accept`
(what `POST /v1/batch` calls), the workspace store, the log consumer's offsets — and never
composes SQL nor writes a table itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from legato.app import Legato
from legato.demo.audience import activate_lapsed_customers, define_audience
from legato.demo.dataset import DemoSpec, Message, generate
from legato.demo.live import live_moment
from legato.errors import InvalidInput, LegatoError, NotFound, Retryable
from legato.runtime.documents import APPLY_ORDER, Document, apply_documents, parse_documents
from legato.runtime.segment_views import Progress

#: The workspace `legato demo` creates, or reuses when it exists.
DEMO_WORKSPACE = "demo"
#: Messages per `Ingest.accept` call: what an SDK's batch holds at most, give or take.
BATCH_SIZE = 500
#: Batches handed to ingestion at once, so that one commits while the next is prepared.
IN_FLIGHT = 8
#: Times one batch is offered again while ingestion says it is overloaded.
MAX_RETRIES = 60
#: The pipeline is deemed stuck when its offsets have not moved for this long (seconds).
STALL_SECONDS = 120.0


class LogProgress(Protocol):
    """What waiting for the pipeline reads of its log consumer (`store.log.LogConsumer`)."""

    partitions: int

    async def watermark(self) -> int:
        """The highest seq in the log."""
        ...

    async def offsets(self) -> dict[int, tuple[int, str | None, int | None]]:
        """Each partition's (offset, owner, lease until)."""
        ...

    async def read(self, partition: int, after_seq: int, limit: int) -> Sequence[object]:
        """Up to `limit` events of `partition` after `after_seq`."""
        ...


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """The demo workspace and keys made for this run (shown once: stored hashed)."""

    workspace_id: str
    name: str
    write_key: str
    admin_key: str
    created: bool


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What ingesting the dataset did."""

    messages: int
    rejected: int
    first_rejection: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class JourneyReport:
    """What became of the example documents: published, or not with the reason (a segment the
    workspace lacks...: saved as a draft unless the reason starts "not saved"), or a note."""

    published: tuple[str, ...]
    unpublished: tuple[tuple[str, str], ...]
    note: str | None


async def open_demo_workspace(legato: Legato, name: str = DEMO_WORKSPACE) -> DemoKeys:
    """The demo workspace with fresh keys: created with it, or added to it when it exists."""
    now_ms = legato.clock.now_ms()
    try:
        workspace = await legato.workspaces.get(name)
    except NotFound:
        created = await legato.workspaces.create(name, now_ms)
        return DemoKeys(
            created.workspace.id, name, created.write_key, created.admin_key, created=True
        )
    # Keys are stored hashed, so the ones made before cannot be shown again: add new ones.
    _, write_key = await legato.workspaces.create_key(
        workspace.id, "write", None, "legato demo", now_ms
    )
    _, admin_key = await legato.workspaces.create_key(
        workspace.id, "admin", "admin", "legato demo", now_ms
    )
    return DemoKeys(workspace.id, workspace.name, write_key, admin_key, created=False)


async def ingest_dataset(
    legato: Legato,
    workspace_id: str,
    spec: DemoSpec,
    *,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    in_flight: int = IN_FLIGHT,
) -> IngestReport:
    """Generate the dataset and hand it to ingestion batch by batch, as SDKs would.

    Duplicate messageIds (a second run with the same seed) are stored once by ingestion, so
    running the demo again adds nothing twice. `on_progress` gets the messages accepted so far.
    """
    return await ingest_batches(
        legato,
        workspace_id,
        generate(spec, batch_size),
        on_progress=on_progress,
        in_flight=in_flight,
    )


async def ingest_batches(
    legato: Legato,
    workspace_id: str,
    batches: Iterable[list[Message]],
    *,
    on_progress: Callable[[int], None] | None = None,
    in_flight: int = IN_FLIGHT,
) -> IngestReport:
    """Hand batches of tracking messages to ingestion, `in_flight` at a time."""
    started = time.perf_counter()
    pending: set[asyncio.Task[tuple[int, list[str]]]] = set()
    accepted = 0
    rejected = 0
    first_rejection: str | None = None

    def collect(task: asyncio.Task[tuple[int, list[str]]]) -> None:
        nonlocal accepted, rejected, first_rejection
        count, reasons = task.result()
        accepted += count
        rejected += len(reasons)
        if reasons and first_rejection is None:
            first_rejection = reasons[0]
        if on_progress is not None:
            on_progress(accepted)

    try:
        for batch in batches:
            while len(pending) >= in_flight:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    collect(task)
            pending.add(asyncio.create_task(_accept(legato, workspace_id, batch)))
            # Generating a batch never awaits: let the ingestion tasks and the writer run.
            await asyncio.sleep(0)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                collect(task)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return IngestReport(accepted, rejected, first_rejection, time.perf_counter() - started)


async def _accept(legato: Legato, workspace_id: str, batch: list[Message]) -> tuple[int, list[str]]:
    body: dict[str, Any] = {"batch": batch}
    for _ in range(MAX_RETRIES):
        try:
            refused = await legato.ingest.accept(workspace_id, "batch", body)
        except Retryable as exc:
            await asyncio.sleep(exc.retry_after or 0.5)
            continue
        return len(batch), [f"message {r.index}: {r.reason}" for r in refused]
    raise Retryable(f"ingestion stayed overloaded through {MAX_RETRIES} attempts")


async def log_head(legato: Legato) -> int:
    """The log's highest seq now: the pipeline has caught up with the demo once past it."""
    return await legato.pipeline.log.watermark()


async def pipeline_progress(consumer: LogProgress, start_seq: int) -> tuple[float, bool]:
    """(fraction of the log after `start_seq` the consumer has applied, whether it is all).

    Each partition's offset is compared with the log head; a partition whose offset is behind
    the head but has nothing left to read is done (the head's events are in other partitions).
    """
    head = await consumer.watermark()
    offsets = await consumer.offsets()
    span = max(1, head - start_seq)
    fractions: list[float] = []
    caught_up = True
    for partition in range(consumer.partitions):
        seq = offsets[partition][0] if partition in offsets else 0
        if seq >= head or not await consumer.read(partition, seq, 1):
            fractions.append(1.0)
            continue
        caught_up = False
        fractions.append(min(1.0, max(0.0, (seq - start_seq) / span)))
    return sum(fractions) / len(fractions), caught_up


async def wait_for_pipeline(
    legato: Legato,
    start_seq: int,
    *,
    on_progress: Callable[[float], None] | None = None,
    poll_seconds: float = 0.25,
    stall_seconds: float = STALL_SECONDS,
) -> float:
    """Wait until the pipeline has applied the whole log; returns the seconds waited.

    The pipeline must be running (`Legato.start()`); `LegatoError` if it stops moving.
    """
    consumer = legato.pipeline.log
    started = time.perf_counter()
    last_move = started
    last_fraction = -1.0
    while True:
        fraction, done = await pipeline_progress(consumer, start_seq)
        if on_progress is not None:
            on_progress(1.0 if done else fraction)
        if done:
            return time.perf_counter() - started
        now = time.perf_counter()
        if fraction > last_fraction:
            last_fraction, last_move = fraction, now
        elif now - last_move > stall_seconds:
            raise LegatoError(
                f"the pipeline has not moved for {stall_seconds:.0f} s at {fraction:.0%}; "
                "see `legato rejections list` and the log for the cause"
            )
        await asyncio.sleep(poll_seconds)


def read_documents(directory: Path) -> list[Document]:
    """The documents (journeys, and any segments they need) of `directory`'s YAML files.

    `InvalidInput` names the file and what is wrong in it; a missing folder has none.
    """
    documents: list[Document] = []
    if not directory.is_dir():
        return documents
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            found = parse_documents(path.read_text(encoding="utf-8"))
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}", file=str(path), **exc.details) from None
        documents += [
            Document(len(documents) + i, d.kind, d.key, d.body) for i, d in enumerate(found)
        ]
    return documents


@dataclass(frozen=True, slots=True)
class LiveReport:
    """What happened once the journeys were live: people who entered `lapsed_customers` (and
    so win-back), the live moment's messages, and the runs each journey holds afterwards."""

    lapsed_entered: int
    messages: int
    rejected: int
    entries: dict[str, int]


async def prepare_audience(
    legato: Legato, workspace_id: str, *, progress: Progress | None = None
) -> list[str]:
    """Define what the example journeys read (computed traits, the win-back segment);
    `progress` follows the computed traits' backfills (key, events done, events in all)."""
    return await define_audience(legato, workspace_id, progress=progress)


async def go_live(
    legato: Legato,
    workspace_id: str,
    spec: DemoSpec,
    journeys: Iterable[str],
    *,
    on_progress: Callable[[float], None] | None = None,
) -> LiveReport:
    """With the journeys published: turn `lapsed_customers` on, send the live moment through
    ingestion, wait until the pipeline has applied it, and count each journey's entries.

    The workers must be running (`Legato.start()`).
    """
    start_seq = await log_head(legato)
    lapsed = await activate_lapsed_customers(legato, workspace_id)
    report = await ingest_batches(legato, workspace_id, [live_moment(spec)])
    await wait_for_pipeline(legato, start_seq, on_progress=on_progress)
    entries: dict[str, int] = {}
    for key in journeys:
        stats = await legato.journeys.stats(workspace_id, key, None)
        entries[key] = int(stats["journey"].get("entered", 0) or 0)
    return LiveReport(lapsed, report.messages, report.rejected, entries)


def _apply_rank(document: Document) -> int:
    kinds = APPLY_ORDER
    return kinds.index(document.kind) if document.kind in kinds else len(kinds)


async def install_journeys(legato: Legato, workspace_id: str, directory: Path) -> JourneyReport:
    """Apply the example documents as `legato apply -f FILE --publish` would, one at a time.

    A journey whose references the workspace lacks (a segment, a computed trait) is saved as
    a draft instead, with the reason: the console shows it, ready to fix and publish.
    """
    documents = read_documents(directory)
    if not documents:
        return JourneyReport((), (), f"no journey documents in {directory}")
    published: list[str] = []
    unpublished: list[tuple[str, str]] = []
    for document in sorted(documents, key=_apply_rank):
        # One at a time, in dependency order, so that one missing reference blocks one journey.
        single = [Document(0, document.kind, document.key, document.body)]
        try:
            await apply_documents(
                single, workspace_id=workspace_id, services=legato, options={"publish": True}
            )
        except InvalidInput as refused:
            reason = _reason(refused)
            try:
                await apply_documents(single, workspace_id=workspace_id, services=legato)
            except InvalidInput as broken:
                reason = "not saved: " + _reason(broken)
            unpublished.append((document.key, reason))
            continue
        published.append(document.key)
    return JourneyReport(tuple(published), tuple(unpublished), None)


def _reason(error: InvalidInput) -> str:
    """The message without the "document 0 (Journey 'key'): " that `apply_documents` adds."""
    head, sep, rest = error.message.partition("): ")
    return rest if sep and head.startswith("document ") else error.message
