"""Real-time segments: the pipeline stage that keeps memberships per event, and its re-checks.

`Definitions` compiles a workspace's segments and computed traits once (cached until one is
saved or deleted) into a dispatch index: event name / trait key / computed trait / segment →
the segments whose conditions mention it. The `SegmentStage` looks each event up in that index,
so an event no condition mentions evaluates nothing, however many segments exist. The
`Evaluator` loads only the facts the touched segments read (traits, computed traits,
memberships and events of the names they mention, by index), evaluates the compiled predicates
in topological order (a segment of segments after the segments it reads), writes membership
changes, logs `Segment Entered` / `Segment Exited` internal events (journeys trigger on them)
and keeps one re-check per (segment, profile) at the verdict's "holds until". The
`RecheckWorker` fires those re-checks, and computed-trait windows, exactly when due: no
periodic scan. Never composes SQL (that is `legato.store.memberships`), never parses YAML.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.computed_traits import AggregateState, Aggregator
from legato.domain.conditions import (
    EventFact,
    Predicate,
    References,
    compile_condition,
    may_hold_for_a_new_profile,
    references,
)
from legato.domain.engine import SEGMENT_ENTERED_EVENT, SEGMENT_EXITED_EVENT, SEGMENT_PROPERTY
from legato.domain.pipeline import ResolvedEvent
from legato.domain.segments import (
    ComputedTrait,
    Segment,
    parse_computed_trait,
    parse_segment,
    segment_dependencies,
)
from legato.ports import Clock
from legato.store.database import Database
from legato.store.log import classify_failure
from legato.store.memberships import Facts, MembershipStore, ValueRow
from legato.store.runs import InternalEvent

log = structlog.get_logger(__name__)

#: Appends internal events to the log on the caller's transaction (`RunStore.append_internal`).
AppendInternal = Callable[[AsyncConnection, Sequence[InternalEvent]], Awaitable[None]]
#: Key of the aggregator state's extra field: the last log offset folded into it.
LOG_SEQ = "log_seq"


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    """One segment, compiled: its predicate, what it reads, and its place in dependency order."""

    key: str
    version: int
    document: Segment
    predicate: Predicate
    reads: References
    order: int


@dataclass(slots=True)
class CompiledWorkspace:
    """A workspace's segments and computed traits, compiled, with the dispatch index."""

    segments: dict[str, CompiledSegment] = field(default_factory=dict)
    static: dict[str, Segment] = field(default_factory=dict)
    by_event: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_trait: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_computed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    dependents: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: Each segment with every segment that reads it, directly or not (filled on compile).
    closures: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Segments that can hold for a profile with no facts yet: evaluated when one is born.
    on_new_profile: set[str] = field(default_factory=set)
    aggregators: dict[str, Aggregator] = field(default_factory=dict)
    traits_by_event: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def touched(
        self, event: str | None, traits: Iterable[str], computed: Iterable[str]
    ) -> set[str]:
        """Keys of the segments an event (with the traits and computed traits it changed)
        can affect, straight from the index."""
        found: set[str] = set()
        if event:
            found |= self.by_event.get(event, set())
        for trait in traits:
            found |= self.by_trait.get(trait, set())
        for key in computed:
            found |= self.by_computed.get(key, set())
        return found


def compile_workspace(
    segment_docs: Iterable[tuple[Segment, int]], trait_docs: Iterable[ComputedTrait]
) -> CompiledWorkspace:
    """Compile definitions into predicates, aggregators and the dispatch index."""
    compiled = CompiledWorkspace()
    live: dict[str, tuple[Segment, int]] = {}
    for doc, version in segment_docs:
        if doc.static or doc.condition is None:
            compiled.static[doc.key] = doc
        else:
            live[doc.key] = (doc, version)
    graph = {key: segment_dependencies(doc) for key, (doc, _) in live.items()}
    for position, key in enumerate(_topological(graph)):
        doc, version = live[key]
        assert doc.condition is not None
        reads = references(doc.condition)
        compiled.segments[key] = CompiledSegment(
            key, version, doc, compile_condition(doc.condition), reads, position
        )
        for name in reads.events:
            compiled.by_event[name].add(key)
        for trait in reads.traits:
            compiled.by_trait[trait].add(key)
        for trait_key in reads.computed_traits:
            compiled.by_computed[trait_key].add(key)
        for other in reads.segments:
            compiled.dependents[other].add(key)
        if may_hold_for_a_new_profile(doc.condition):
            compiled.on_new_profile.add(key)
    for key in compiled.segments:
        found: set[str] = set()
        stack = [key]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(compiled.dependents.get(current, ()))
        compiled.closures[key] = frozenset(found)
    for computed in trait_docs:
        compiled.aggregators[computed.key] = Aggregator(computed)
        compiled.traits_by_event[computed.event].append(computed.key)
    return compiled


def _topological(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Keys so that each comes after the keys it depends on (cycles, refused on save, last)."""
    done: list[str] = []
    placed: set[str] = set()
    remaining = dict(graph)
    while remaining:
        ready = sorted(
            key
            for key, needs in remaining.items()
            if all(n in placed or n not in graph for n in needs)
        )
        if not ready:
            ready = sorted(remaining)
        for key in ready:
            done.append(key)
            placed.add(key)
            remaining.pop(key)
    return done


class Definitions:
    """Compiled definitions per workspace, recompiled only when one is saved or deleted."""

    def __init__(self, store: MembershipStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[tuple[Any, ...], CompiledWorkspace]] = {}
        #: Compilations so far (tests assert the cache holds).
        self.compilations = 0

    async def get(self, conn: AsyncConnection, workspace_id: str) -> CompiledWorkspace:
        """The workspace's compiled definitions as of `conn`'s transaction."""
        signature = await self.store.signature(conn, workspace_id)
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        segment_rows = await self.store.definitions(conn, workspace_id, "segment")
        trait_rows = await self.store.definitions(conn, workspace_id, "computed_trait")
        compiled = compile_workspace(
            [(parse_segment(row.document), row.version) for row in segment_rows],
            [parse_computed_trait(row.document) for row in trait_rows],
        )
        self.compilations += 1
        self._cache[workspace_id] = (signature, compiled)
        return compiled

    def forget(self, workspace_id: str) -> None:
        """Drop the cached compilation (after a save in this process)."""
        self._cache.pop(workspace_id, None)


class _Context:
    """An `EvalContext` over loaded facts; `upto_seq` hides events logged after the one
    being processed."""

    __slots__ = (
        "_all",
        "_events",
        "_latest",
        "computed_traits",
        "profile_id",
        "segments",
        "traits",
        "upto_seq",
    )

    def __init__(self, profile_id: str, facts: Facts) -> None:
        self.profile_id = profile_id
        self.traits: dict[str, Any] = facts.traits
        self.computed_traits: dict[str, Any] = facts.computed_traits
        self.segments: set[str] = facts.segments
        self._events = facts.events
        # Per name: every fact, and the latest log offset among them. Most evaluations see
        # them all (the event being processed is the person's latest), so no copy is made.
        self._all = {name: [fact for _, fact in found] for name, found in facts.events.items()}
        self._latest = {
            name: max(seq for seq, _ in found) for name, found in facts.events.items() if found
        }
        self.upto_seq: int | None = None

    def events(self, name: str) -> Sequence[EventFact]:
        limit = self.upto_seq
        if limit is None or self._latest.get(name, -1) <= limit:
            return self._all.get(name, ())
        return [fact for seq, fact in self._events[name] if seq <= limit]


@dataclass(frozen=True, slots=True)
class Touch:
    """A reason to evaluate some segments of one person: an event, a re-check, a backfill.

    `cause` makes the logged events' message ids unique and stable ("e<seq>", "r<due>").
    """

    profile_id: str
    segments: frozenset[str]
    upto_seq: int | None
    cause: str
    user_id: str | None = None
    anonymous_id: str | None = None
    computed: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One membership change, as logged."""

    segment: str
    profile_id: str
    entered: bool
    at_ms: int


class Evaluator:
    """Evaluates touched segments for people and writes what changed (members, re-checks,
    Segment Entered/Exited events) on the caller's transaction."""

    def __init__(self, store: MembershipStore, append_internal: AppendInternal) -> None:
        self.store = store
        self.append_internal = append_internal
        #: Predicate evaluations and membership changes so far (metrics, tests).
        self.evaluations = 0
        self.changes = 0

    async def evaluate(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        compiled: CompiledWorkspace,
        touches: Sequence[Touch],
        now_ms: int,
        *,
        emit: bool = True,
    ) -> list[Change]:
        """Evaluate each touch's segments (and the segments reading those that change)."""
        touches = [t for t in touches if t.segments]
        if not touches:
            return []
        wanted: set[str] = set()
        for touch in touches:
            wanted |= self._closure(compiled, touch.segments)
        names: set[str] = set()
        for key in wanted:
            names |= compiled.segments[key].reads.events
        timed = [k for k in wanted if compiled.segments[k].reads.uses_time]
        # Events logged after the last one being processed are not read (a backlog can be
        # long); a touch without an offset (re-check, backfill) sees every event.
        offsets = [t.upto_seq for t in touches]
        upto = None if None in offsets else max(o for o in offsets if o is not None)
        loaded = await self.store.facts(
            conn,
            workspace_id,
            {t.profile_id for t in touches},
            names,
            timed,
            upto,
            computed=any(compiled.segments[k].reads.computed_traits for k in wanted),
            with_properties={n for k in wanted for n in compiled.segments[k].reads.filtered_events},
        )
        stored_rechecks = {
            (key, profile_id): due
            for profile_id, facts in loaded.items()
            for key, due in facts.rechecks.items()
        }
        contexts = {p: _Context(p, facts) for p, facts in loaded.items()}
        initial = {p: set(ctx.segments) for p, ctx in contexts.items()}
        changes: list[Change] = []
        rechecks: dict[tuple[str, str], int | None] = {}
        internal: list[InternalEvent] = []
        for touch in touches:
            ctx = contexts[touch.profile_id]
            ctx.upto_seq = touch.upto_seq
            if touch.computed:
                ctx.computed_traits.update(touch.computed)
            queue = [
                (compiled.segments[k].order, k) for k in touch.segments if k in compiled.segments
            ]
            heapq.heapify(queue)
            seen: set[str] = set()
            while queue:
                _, key = heapq.heappop(queue)
                if key in seen:
                    continue
                seen.add(key)
                segment = compiled.segments[key]
                verdict = segment.predicate(ctx, now_ms)
                self.evaluations += 1
                if segment.reads.uses_time or verdict.valid_until_ms is not None:
                    rechecks[(key, touch.profile_id)] = verdict.valid_until_ms
                if verdict.value == (key in ctx.segments):
                    continue
                if verdict.value:
                    ctx.segments.add(key)
                else:
                    ctx.segments.discard(key)
                change = Change(key, touch.profile_id, verdict.value, now_ms)
                changes.append(change)
                if emit:
                    internal.append(logged_change(workspace_id, change, touch))
                for dependent in compiled.dependents.get(key, ()):
                    heapq.heappush(queue, (compiled.segments[dependent].order, dependent))
        entered: list[tuple[str, str, int]] = []
        exited: list[tuple[str, str]] = []
        for profile_id, ctx in contexts.items():
            before = initial[profile_id]
            entered.extend((k, profile_id, now_ms) for k in sorted(ctx.segments - before))
            exited.extend((k, profile_id) for k in sorted(before - ctx.segments))
        await self.store.write_members(conn, workspace_id, entered, exited)
        # Only the re-checks that change: most evaluations keep the moment already stored.
        changed = {slot: due for slot, due in rechecks.items() if stored_rechecks.get(slot) != due}
        await self.store.write_rechecks(conn, workspace_id, changed)
        if internal:
            await self.append_internal(conn, internal)
        self.changes += len(changes)
        return changes

    @staticmethod
    def _closure(compiled: CompiledWorkspace, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for key in keys:
            found |= compiled.closures.get(key, frozenset())
        return found


def logged_change(workspace_id: str, change: Change, touch: Touch) -> InternalEvent:
    """The `Segment Entered` / `Segment Exited` event that logs a membership change."""
    name = SEGMENT_ENTERED_EVENT if change.entered else SEGMENT_EXITED_EVENT
    verb = "entered" if change.entered else "exited"
    return InternalEvent(
        workspace_id=workspace_id,
        message_id=f"segment:{change.segment}:{change.profile_id}:{touch.cause}:{verb}",
        event=name,
        profile_id=change.profile_id,
        user_id=touch.user_id,
        anonymous_id=touch.anonymous_id,
        timestamp_ms=change.at_ms,
        properties={SEGMENT_PROPERTY: change.segment},
        context={"segment": change.segment, "cause": touch.cause},
    )


class SegmentStage:
    """`Stage` that keeps segment memberships with each event (after profile and computed
    traits, before journeys)."""

    name = "segments"

    def __init__(
        self,
        definitions: Definitions,
        evaluator: Evaluator,
        clock: Clock,
        computed_changes: Callable[[int], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.definitions = definitions
        self.evaluator = evaluator
        self.clock = clock
        self.computed_changes = computed_changes or (lambda _seq: None)
        #: Events that touched at least one segment (the rest cost one index lookup).
        self.dispatched = 0

    async def process(self, conn: AsyncConnection, batch: Sequence[ResolvedEvent]) -> None:
        """Evaluate the segments each event of the batch concerns, in log order."""
        by_workspace: dict[str, list[ResolvedEvent]] = defaultdict(list)
        for item in batch:
            if item.profile_id is not None:
                by_workspace[item.row.workspace_id].append(item)
        if by_workspace:
            # Before reading which segments exist: a backfill running now finishes first, and
            # one starting now waits for this chunk (`MembershipStore.hold_definitions`).
            await self.evaluator.store.hold_definitions(conn)
        for workspace_id in sorted(by_workspace):
            compiled = await self.definitions.get(conn, workspace_id)
            if not compiled.segments:
                continue
            items = by_workspace[workspace_id]
            born: set[str] = set()
            if compiled.on_new_profile:
                # A profile with no earlier event in the log was born in this batch: segments
                # that hold for nobody-in-particular get their first evaluation now.
                born = await self.evaluator.store.without_history(
                    conn, {i.profile_id for i in items if i.profile_id}, min(i.seq for i in items)
                )
            touches: list[Touch] = []
            for item in items:
                assert item.profile_id is not None
                computed = self.computed_changes(item.seq)
                keys = compiled.touched(item.row.event, item.changed_traits, computed or ())
                if item.profile_id in born:
                    born.discard(item.profile_id)
                    keys = keys | compiled.on_new_profile
                if item.merged_from:
                    keys = set(compiled.segments)  # a merge can change any verdict
                if not keys:
                    continue
                self.dispatched += 1
                touches.append(
                    Touch(
                        item.profile_id,
                        frozenset(keys),
                        item.seq,
                        f"e{item.seq}",
                        item.row.user_id,
                        item.row.anonymous_id,
                        computed,
                    )
                )
            await self.evaluator.evaluate(
                conn, workspace_id, compiled, touches, self.clock.now_ms()
            )


class RecheckWorker:
    """`Worker` that fires due segment re-checks and computed-trait window changes."""

    name = "segment-rechecks"

    def __init__(
        self,
        db: Database,
        store: MembershipStore,
        definitions: Definitions,
        evaluator: Evaluator,
        clock: Clock,
        *,
        batch_size: int = 1000,
        poll_seconds: float = 0.25,
    ) -> None:
        self.db = db
        self.store = store
        self.definitions = definitions
        self.evaluator = evaluator
        self.clock = clock
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        #: Re-checks and value changes fired so far; how late the latest fired (ms), bounded.
        self.fired = 0
        self.lateness_ms: deque[int] = deque(maxlen=100_000)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Something may be due sooner than planned: look again now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire re-checks until `stop` is set, sleeping until the next one is due."""
        while not stop.is_set():
            try:
                fired = await self.tick()
            except Exception as exc:
                if classify_failure(exc) != "transient":
                    raise
                log.info("segment re-check batch lost a race; retrying", error=str(exc))
                await asyncio.sleep(0.05)
                continue
            if fired >= self.batch_size:
                continue
            pause = self.poll_seconds
            async with self.db.connect() as conn:
                due = await self.store.next_due(conn)
            if due is not None:
                pause = min(pause, max(0.0, (due - self.clock.now_ms()) / 1000))
            if pause <= 0:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), pause
                )
            for waiter in waiters:
                waiter.cancel()

    async def drain(self) -> int:
        """Fire everything due now (tests, benchmarks); returns how many fired."""
        total = 0
        while count := await self.tick():
            total += count
        return total

    async def tick(self) -> int:
        """One batch in one transaction: due computed-trait values, then due re-checks."""
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            await self.store.hold_definitions(conn)
            values = await self.store.claim_due_values(conn, now, self.batch_size)
            rechecks = await self.store.claim_rechecks(conn, now, self.batch_size)
            if not values and not rechecks:
                return 0
            touches: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
            computed: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
            dues: dict[tuple[str, str], int] = {}
            by_workspace: dict[str, list[ValueRow]] = defaultdict(list)
            for workspace_id, row in values:
                by_workspace[workspace_id].append(row)
            for workspace_id, rows in by_workspace.items():
                compiled = await self.definitions.get(conn, workspace_id)
                written: list[ValueRow] = []
                for row in rows:
                    aggregator = compiled.aggregators.get(row.key)
                    if aggregator is None:
                        continue
                    state = AggregateState.from_json(row.state)
                    value, until = aggregator.value(state, now)
                    written.append(
                        ValueRow(
                            row.key,
                            row.profile_id,
                            value,
                            {**state.to_json(), LOG_SEQ: row.state.get(LOG_SEQ, 0)},
                            until,
                        )
                    )
                    if row.due_ms is not None:
                        dues[(workspace_id, row.profile_id)] = row.due_ms
                    if value != row.value:
                        computed[workspace_id][row.profile_id][row.key] = value
                        touches[workspace_id][row.profile_id] |= compiled.by_computed.get(
                            row.key, set()
                        )
                await self.store.write_values(conn, workspace_id, written, now)
            for workspace_id, segment_key, profile_id, due in rechecks:
                touches[workspace_id][profile_id].add(segment_key)
                dues[(workspace_id, profile_id)] = due
            for workspace_id in sorted(touches):
                compiled = await self.definitions.get(conn, workspace_id)
                people = touches[workspace_id]
                users = await self.store.user_ids(conn, workspace_id, people)
                await self.evaluator.evaluate(
                    conn,
                    workspace_id,
                    compiled,
                    [
                        Touch(
                            profile_id,
                            frozenset(keys),
                            None,
                            f"r{dues.get((workspace_id, profile_id), now)}",
                            users.get(profile_id),
                            None,
                            computed[workspace_id].get(profile_id),
                        )
                        for profile_id, keys in sorted(people.items())
                    ],
                    now,
                )
        fired = len(values) + len(rechecks)
        self.fired += fired
        self.lateness_ms.extend(now - due for *_, due in rechecks)
        return fired
