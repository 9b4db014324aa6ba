"""The timer worker: fires due timers in batches and advances the runs waiting on them.

Each batch is one transaction: claim (delete) up to `batch_size` due timers, earliest first —
with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers share the load — lock their
runs, advance each with `TimerFired`, and write every transition's rows. A crash rolls the
batch back and its timers fire again; the engine ignores stale or duplicate firings. Besides
run waits, timers end an ended run's listening for its goal (`$listen`) and enrol a scheduled
journey's segment (`$schedule`, a page of members per batch). Idle, the worker sleeps until the
next due time, never longer than `poll_seconds`. Never composes SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.engine import CompiledJourney, Occurrence, TimerFired
from legato.domain.journeys import ScheduleTrigger
from legato.errors import NotFound
from legato.ports import Clock
from legato.runtime.listening import Facts, Versions, listener_rows
from legato.runtime.transitions import Origin, Unit, entry_book
from legato.store.database import Database
from legato.store.journeys import JourneyStore, schedule_owner
from legato.store.log import classify_failure
from legato.store.profiles import ProfileStore
from legato.store.runs import ClaimedTimer, RunStore

log = structlog.get_logger(__name__)

#: The timer id of a journey's schedule.
SCHEDULE_TIMER = "$schedule"
#: Attempts at one batch when it loses races (deadlocks with the pipeline on PostgreSQL).
MAX_ATTEMPTS = 6


def schedule_row(
    workspace_id: str, version: CompiledJourney, occurrence: Occurrence, after: str | None = None
) -> dict[str, Any]:
    """The timer row of a schedule's next enrolment (or of the next page of one)."""
    payload: dict[str, Any] = {"local": occurrence.local}
    if after is not None:
        payload["after"] = after
    return {
        "owner": schedule_owner(workspace_id, version.key),
        "name": SCHEDULE_TIMER,
        "due_ms": occurrence.fire_ms,
        "kind": "schedule",
        "workspace_id": workspace_id,
        "journey_key": version.key,
        "version": version.version,
        "profile_id": None,
        "payload": payload,
    }


class TimerWorker:
    """`Worker` that fires due timers (run waits, goal windows, schedules)."""

    name = "timers"

    def __init__(
        self,
        db: Database,
        journeys: JourneyStore,
        runs: RunStore,
        versions: Versions,
        profiles: ProfileStore,
        clock: Clock,
        *,
        batch_size: int = 1000,
        schedule_page: int = 500,
        poll_seconds: float = 0.25,
        lateness_window: int = 100_000,
    ) -> None:
        self.db = db
        self.journeys = journeys
        self.runs = runs
        self.versions = versions
        self.profiles = profiles
        self.clock = clock
        self.batch_size = batch_size
        self.schedule_page = schedule_page
        self.poll_seconds = poll_seconds
        #: Timers fired, transitions written, and how late recent timers fired (ms).
        self.fired = 0
        self.transitions = 0
        self.lateness_ms: deque[int] = deque(maxlen=lateness_window)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A timer may be due sooner than the worker planned: look again now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire timers until `stop` is set."""
        while not stop.is_set():
            fired = await self.tick()
            if fired >= self.batch_size:
                continue
            pause = self.poll_seconds
            due = await self.runs.next_due()
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
        """Fire everything due now (tests, benchmarks); returns the timers fired."""
        total = 0
        while count := await self.tick():
            total += count
        return total

    async def tick(self) -> int:
        """One batch: claim due timers and apply what they cause, in one transaction."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self._batch()
            except Exception as exc:
                if classify_failure(exc) != "transient" or attempt == MAX_ATTEMPTS - 1:
                    raise
                log.info("timer batch lost a race; retrying", error=str(exc), attempt=attempt)
                await asyncio.sleep(0.01 * 2**attempt)
        return 0  # pragma: no cover - the loop returns or raises

    async def _batch(self) -> int:
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            claimed = await self.runs.claim_timers(conn, now, self.batch_size)
            if not claimed:
                return 0
            by_workspace: dict[str, list[ClaimedTimer]] = defaultdict(list)
            for timer in claimed:
                by_workspace[timer.workspace_id].append(timer)
            transitions = 0
            for workspace_id in sorted(by_workspace):
                transitions += await self._workspace(
                    conn, workspace_id, by_workspace[workspace_id], now
                )
        self.fired += len(claimed)
        self.transitions += transitions
        self.lateness_ms.extend(now - timer.due_ms for timer in claimed)
        return len(claimed)

    async def _workspace(
        self, conn: AsyncConnection, workspace_id: str, claimed: Sequence[ClaimedTimer], now: int
    ) -> int:
        unit = Unit(workspace_id, now)
        run_timers = [timer for timer in claimed if timer.kind in {"run", "listen"}]
        unit.claimed = {(timer.owner, timer.name, timer.due_ms) for timer in run_timers}
        stored = await self.runs.lock_runs(conn, {timer.owner for timer in run_timers})
        reads: set[str] = set()
        people: set[str] = set()
        needed = False
        versions: dict[tuple[str, int], CompiledJourney] = {}
        for state in stored.values():
            which = (state.state["journey_key"], int(state.state["version"]))
            version = versions.get(which)
            if version is None:
                version = versions[which] = await self.versions.get(conn, workspace_id, *which)
            adopted = unit.adopt(version, state)
            reads |= self.versions.reads(version)
            people.add(adopted.run.profile_id)
            needed = needed or self.versions.needs_facts(version)
        loaded = await self.runs.facts(conn, workspace_id, people, reads) if needed else {}
        contexts = {profile: Facts(profile, loaded.get(profile)) for profile in people}
        for timer in run_timers:
            tracked = unit.tracked.get(timer.owner)
            if tracked is None:
                continue
            if timer.kind == "listen":
                self._unlisten(unit, tracked.version, tracked.run.run_id, now)
                continue
            ctx = contexts[tracked.run.profile_id]
            unit.step(tracked.version, tracked, TimerFired(timer.name, timer.due_ms), ctx, now)
        for timer in claimed:
            if timer.kind == "schedule":
                await self._schedule(conn, unit, timer, now)
        await self.runs.write(conn, unit.finish())
        return unit.advances

    @staticmethod
    def _unlisten(unit: Unit, version: CompiledJourney, run_id: str, now: int) -> None:
        """An ended run's goal window closed: drop what it still listens to."""
        tracked = unit.tracked[run_id]
        if tracked.run.live:
            return
        for (kind, name), until in listener_rows(version, tracked.run).items():
            if until is not None and until <= now:
                key = (unit.workspace_id, tracked.run.profile_id, kind, name, run_id)
                unit.changes.listeners_removed.add(key)
                tracked.listeners_before.pop((kind, name), None)

    async def _schedule(
        self, conn: AsyncConnection, unit: Unit, timer: ClaimedTimer, now: int
    ) -> None:
        """Enrol one page of a scheduled journey's segment; arm the next page or occurrence."""
        workspace_id = timer.workspace_id
        try:
            journey = await self.journeys.lock(conn, workspace_id, timer.journey_key)
        except NotFound:
            return
        if journey.status != "published" or journey.version != timer.version:
            return  # paused, archived or republished: resume/publish arms the schedule again
        version = await self.versions.get(conn, workspace_id, timer.journey_key, timer.version)
        trigger = version.journey.trigger
        assert isinstance(trigger, ScheduleTrigger)
        payload = timer.payload if isinstance(timer.payload, dict) else {}
        occurrence = Occurrence(timer.due_ms, str(payload.get("local", "")))
        after = str(payload.get("after", ""))
        page = await self.runs.segment_page(
            conn, workspace_id, trigger.segment, after, self.schedule_page
        )
        if page:
            book = await entry_book(conn, self.journeys, self.runs, workspace_id, [version], page)
            loaded = await self.runs.facts(conn, workspace_id, page, self.versions.reads(version))
            users = await self.profiles.user_ids(conn, workspace_id, page)
            fact = occurrence.trigger()
            for profile in page:
                ctx = Facts(profile, loaded[profile])
                unit.enter(version, fact, ctx, now, book, Origin(users.get(profile)))
        if len(page) >= self.schedule_page:
            row = schedule_row(workspace_id, version, occurrence, after=page[-1])
        else:
            following = version.next_occurrence(timer.due_ms)
            if following is None:
                return
            row = schedule_row(workspace_id, version, following)
        unit.changes.timers[(row["owner"], row["name"], row["due_ms"])] = row


def percentile(values: Sequence[int], fraction: float) -> int:
    """The value below which `fraction` of `values` fall (nearest rank); 0 when empty."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]
