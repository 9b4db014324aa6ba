"""The demo loader: ingestion through the real `Ingest` service, retries, pipeline progress,
journeys and the demo workspace — on in-memory fakes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from legato.demo.dataset import DemoSpec, Message, generate
from legato.demo.loader import (
    ingest_batches,
    ingest_dataset,
    install_journeys,
    open_demo_workspace,
    pipeline_progress,
    read_documents,
    wait_for_pipeline,
)
from legato.domain.journey_validation import KnownReferences
from legato.domain.messages import RejectedMessage, parse_instant
from legato.errors import InvalidInput, LegatoError, NotFound, Retryable
from legato.ids import new_id
from legato.runtime.ingest import GroupCommitWriter, Ingest, IngestConfig
from legato.runtime.journey_service import Saved, check_journey
from legato.store.workspaces import CreatedWorkspace, Workspace
from legato.testing import FakeClock, InMemoryEventLog

NOW_MS = 1_767_600_000_000
SPEC = DemoSpec(now_ms=NOW_MS, customers=120, days=30, seed=4)

ABANDONED_CART = """
kind: Journey
key: abandoned_cart
name: Abandoned cart
trigger: {event: Checkout Started, key: properties.cart_id}
nodes:
  - {id: wait_order, type: wait_for_event, event: Order Completed,
     match: {properties.cart_id: trigger.properties.cart_id}, timeout: 1h,
     on_event: done, on_timeout: email}
  - {id: email, type: message, channel: email, template: cart_email, next: done}
  - {id: done, type: exit}
"""


def real_ingest() -> tuple[Any, InMemoryEventLog]:
    log = InMemoryEventLog()
    ingest = Ingest(GroupCommitWriter(log), FakeClock(NOW_MS), new_id, IngestConfig(partitions=8))
    return SimpleNamespace(ingest=ingest), log


# -- ingestion -----------------------------------------------------------------------------


async def test_the_dataset_goes_through_the_ingestion_service() -> None:
    legato, log = real_ingest()
    seen: list[int] = []
    report = await ingest_dataset(legato, "ws_demo", SPEC, on_progress=seen.append, batch_size=200)
    messages = [m for batch in generate(SPEC) for m in batch]
    assert report.messages == len(messages) == len(log.rows)
    assert report.rejected == 0 and report.first_rejection is None
    assert seen == sorted(seen) and seen[-1] == len(messages)
    rows = {row.message_id: row for _, row in log.rows}
    for m in messages[:500]:
        row = rows[m["messageId"]]
        assert row.workspace_id == "ws_demo"
        assert row.timestamp_ms == parse_instant(m["timestamp"], "timestamp")
        assert (row.user_id, row.anonymous_id) == (m.get("userId"), m.get("anonymousId"))
    assert {row.partition for row in rows.values()} == set(range(8))
    await legato.ingest.close()


async def test_running_the_demo_twice_stores_nothing_twice() -> None:
    legato, log = real_ingest()
    first = await ingest_dataset(legato, "ws_demo", SPEC)
    stored = len(log.rows)
    again = await ingest_dataset(legato, "ws_demo", SPEC)
    assert again.messages == first.messages
    assert len(log.rows) == stored
    await legato.ingest.close()


@dataclass
class FakeIngest:
    """`Ingest.accept` that can refuse, reject, and measure how many calls overlap."""

    overloaded: int = 0
    reject_index: int | None = None
    delay: float = 0.0
    calls: list[int] = field(default_factory=list)
    running: int = 0
    most_running: int = 0

    async def accept(self, workspace_id: str, kind: str, body: Any) -> list[RejectedMessage]:
        assert kind == "batch" and isinstance(body["batch"], list)
        if self.overloaded:
            self.overloaded -= 1
            raise Retryable("overloaded", retry_after=0.001)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        self.calls.append(len(body["batch"]))
        if self.reject_index is None:
            return []
        return [RejectedMessage(workspace_id, NOW_MS, self.reject_index, "bad", "event", "{}")]


def batches(count: int, size: int) -> list[list[Message]]:
    return [[{"type": "track"} for _ in range(size)] for _ in range(count)]


@pytest.mark.parametrize("in_flight", [1, 3, 8])
async def test_batches_in_flight_stay_within_the_bound(in_flight: int) -> None:
    fake = FakeIngest(delay=0.002)
    report = await ingest_batches(
        SimpleNamespace(ingest=fake), "ws", batches(20, 5), in_flight=in_flight
    )
    assert report.messages == 100 and fake.calls == [5] * 20
    assert fake.most_running == in_flight


async def test_an_overloaded_ingestion_is_offered_the_batch_again() -> None:
    fake = FakeIngest(overloaded=3)
    report = await ingest_batches(SimpleNamespace(ingest=fake), "ws", batches(2, 10))
    assert report.messages == 20 and fake.calls == [10, 10]


async def test_rejections_are_counted_and_the_first_is_reported() -> None:
    fake = FakeIngest(reject_index=3)
    report = await ingest_batches(SimpleNamespace(ingest=fake), "ws", batches(4, 10))
    assert report.rejected == 4
    assert report.first_rejection == "message 3: bad"


# -- waiting for the pipeline --------------------------------------------------------------


@dataclass
class FakeConsumer:
    """A `LogConsumer` over partitions given as lists of seqs."""

    log: dict[int, list[int]]
    offsets_now: dict[int, int]
    moves: list[dict[int, int]] = field(default_factory=list)
    partitions: int = 4

    async def watermark(self) -> int:
        return max((s for seqs in self.log.values() for s in seqs), default=0)

    async def offsets(self) -> dict[int, tuple[int, str | None, int | None]]:
        if self.moves:
            self.offsets_now = self.moves.pop(0)
        return {p: (s, "me", None) for p, s in self.offsets_now.items()}

    async def read(self, partition: int, after_seq: int, limit: int) -> list[int]:
        return [s for s in self.log.get(partition, []) if s > after_seq][:limit]


LOG = {0: [1, 5, 9], 1: [2, 6, 10], 2: [3, 7], 3: [4, 8]}


@pytest.mark.parametrize(
    ("offsets", "start", "fraction", "done"),
    [
        ({}, 0, 0.0, False),
        ({0: 9, 1: 10, 2: 7, 3: 8}, 0, 1.0, True),
        # Partitions 2 and 3 hold nothing past their offsets though the head is 10.
        ({0: 5, 1: 6, 2: 7, 3: 8}, 0, (0.5 + 0.6 + 1 + 1) / 4, False),
        ({0: 5, 1: 6, 2: 3, 3: 4}, 4, (1 / 6 + 2 / 6 + 0 + 0) / 4, False),
    ],
    ids=["not started", "caught up", "two behind", "since a start seq"],
)
async def test_pipeline_progress_compares_offsets_with_the_log(
    offsets: dict[int, int], start: int, fraction: float, done: bool
) -> None:
    consumer = FakeConsumer(LOG, offsets)
    got, finished = await pipeline_progress(consumer, start)
    assert finished is done
    assert got == pytest.approx(fraction)


async def test_waiting_for_the_pipeline_reports_progress_until_it_is_done() -> None:
    consumer = FakeConsumer(
        LOG, {}, moves=[{0: 1}, {0: 5, 1: 6, 2: 3, 3: 4}, {0: 9, 1: 10, 2: 7, 3: 8}]
    )
    legato = SimpleNamespace(pipeline=SimpleNamespace(log=consumer))
    seen: list[float] = []
    await wait_for_pipeline(legato, 0, on_progress=seen.append, poll_seconds=0.001)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 3


async def test_a_stalled_pipeline_is_an_error_not_a_hang() -> None:
    consumer = FakeConsumer(LOG, {0: 5, 1: 6, 2: 3, 3: 4})
    legato = SimpleNamespace(pipeline=SimpleNamespace(log=consumer))
    with pytest.raises(LegatoError, match="has not moved"):
        await wait_for_pipeline(legato, 0, poll_seconds=0.001, stall_seconds=0.02)


# -- journeys ------------------------------------------------------------------------------

WIN_BACK = """
kind: Journey
key: win_back
name: Win back
trigger: {segment: lapsed_customers}
nodes:
  - {id: email, type: message, channel: email, template: win_back_email, next: done}
  - {id: done, type: exit}
"""


@dataclass
class FakeJourneys:
    """The parts of `JourneyService` that `legato apply` uses; knows the given segments."""

    segments: frozenset[str] = frozenset()
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def known_references(self, workspace_id: str, declared: Any = None) -> KnownReferences:
        extra = frozenset((declared or {}).get("segments", ()))
        return KnownReferences(segments=self.segments | extra, computed_traits=frozenset())

    async def save_draft(self, workspace_id: str, document: Any, key: str | None = None) -> Saved:
        journey = check_journey(document)
        self.calls.append(("draft", journey.key))
        return Saved(journey.key, True, "draft")

    async def publish(self, workspace_id: str, key: str) -> dict[str, Any]:
        self.calls.append(("publish", key))
        return {"key": key, "version": 1, "status": "published", "created": True}


def journeys_dir(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


async def test_example_journeys_are_published_or_kept_as_drafts(tmp_path: Path) -> None:
    folder = journeys_dir(
        tmp_path,
        **{
            "b.yaml": ABANDONED_CART,
            "a.yml": ABANDONED_CART.replace("abandoned_cart", "cart_two"),
            "c.yaml": WIN_BACK,
        },
    )
    service = FakeJourneys()
    legato = SimpleNamespace(journeys=service, clock=FakeClock(NOW_MS))
    report = await install_journeys(legato, "ws", folder)
    assert report.published == ("cart_two", "abandoned_cart") and report.note is None
    assert report.unpublished == (("win_back", "segment 'lapsed_customers' does not exist"),)
    assert service.calls == [
        ("draft", "cart_two"),
        ("publish", "cart_two"),
        ("draft", "abandoned_cart"),
        ("publish", "abandoned_cart"),
        ("draft", "win_back"),
    ]


async def test_a_journey_is_published_once_its_segment_exists(tmp_path: Path) -> None:
    service = FakeJourneys(segments=frozenset({"lapsed_customers"}))
    legato = SimpleNamespace(journeys=service, clock=FakeClock(NOW_MS))
    report = await install_journeys(legato, "ws", journeys_dir(tmp_path, **{"w.yaml": WIN_BACK}))
    assert report.published == ("win_back",) and report.unpublished == ()


async def test_an_empty_folder_installs_nothing_and_says_so(tmp_path: Path) -> None:
    legato = SimpleNamespace(journeys=FakeJourneys(), clock=FakeClock(NOW_MS))
    report = await install_journeys(legato, "ws", tmp_path / "nowhere")
    assert report.published == () and report.unpublished == ()
    assert report.note is not None and "no journey documents in" in report.note


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key: [unclosed", "not valid YAML"),
        ("- a list", "a document is a mapping"),
        ("kind: Nonsense\nkey: x", "unknown kind 'Nonsense'"),
    ],
    ids=["not yaml", "not a mapping", "unknown kind"],
)
def test_a_broken_document_names_its_file(tmp_path: Path, text: str, message: str) -> None:
    journeys_dir(tmp_path, **{"good.yaml": ABANDONED_CART, "broken.yaml": text})
    with pytest.raises(InvalidInput) as caught:
        read_documents(tmp_path)
    assert "broken.yaml" in caught.value.message and message in caught.value.message
    assert caught.value.details["file"].endswith("broken.yaml")


def test_documents_of_several_files_are_numbered_in_turn(tmp_path: Path) -> None:
    journeys_dir(
        tmp_path,
        **{
            "a.yaml": ABANDONED_CART + "---\n" + WIN_BACK,
            "b.yaml": WIN_BACK.replace("win_back", "w2"),
        },
    )
    documents = read_documents(tmp_path)
    assert [(d.index, d.kind, d.key) for d in documents] == [
        (0, "Journey", "abandoned_cart"),
        (1, "Journey", "win_back"),
        (2, "Journey", "w2"),
    ]


# -- the demo workspace --------------------------------------------------------------------


@dataclass
class FakeWorkspaces:
    existing: Workspace | None = None
    made_keys: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def get(self, ref: str) -> Workspace:
        if self.existing is None or ref != self.existing.name:
            raise NotFound(f"no workspace {ref!r}")
        return self.existing

    async def create(self, name: str, now_ms: int) -> CreatedWorkspace:
        self.existing = Workspace("ws_new", name, now_ms, {})
        return CreatedWorkspace(self.existing, "wk_first", "ak_first")

    async def create_key(
        self, workspace_id: str, kind: str, role: str | None, label: str, now_ms: int
    ) -> tuple[str, str]:
        self.made_keys.append((workspace_id, kind, role))
        return "key_id", f"{kind}_{len(self.made_keys)}"


async def test_the_demo_workspace_is_created_with_its_keys() -> None:
    store = FakeWorkspaces()
    keys = await open_demo_workspace(SimpleNamespace(workspaces=store, clock=FakeClock(NOW_MS)))
    assert (keys.workspace_id, keys.name, keys.created) == ("ws_new", "demo", True)
    assert (keys.write_key, keys.admin_key) == ("wk_first", "ak_first")
    assert store.made_keys == []


async def test_an_existing_demo_workspace_gets_fresh_keys() -> None:
    store = FakeWorkspaces(existing=Workspace("ws_old", "demo", 1, {}))
    keys = await open_demo_workspace(SimpleNamespace(workspaces=store, clock=FakeClock(NOW_MS)))
    assert (keys.workspace_id, keys.created) == ("ws_old", False)
    assert store.made_keys == [("ws_old", "write", None), ("ws_old", "admin", "admin")]
    assert (keys.write_key, keys.admin_key) == ("write_1", "admin_2")
