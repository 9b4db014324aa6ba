"""Benchmark: the journey runtime — timers coming due by the hundred thousand, and the latency
from an accepted event to the send request in the outbox.

    python bench/journeys.py timers --db sqlite --runs 100000
    python bench/journeys.py timers --db postgres --runs 100000 --runs 1000000
    python bench/journeys.py steady --db sqlite --rate 2000 --seconds 20
    python bench/journeys.py events --db sqlite --rate 1000 --seconds 30
    python bench/journeys.py serve --db sqlite --rate 1000 --seconds 30 --per-request 10
    python bench/journeys.py serve --db sqlite --rate 1000 --seconds 15 --breakdown

`timers`: N runs of a published journey (wait → message → exit) are written waiting on timers
that are all due at once; the timer worker then fires them in batches (one transaction per
batch, as in `legato serve`), and the outbox must then hold exactly one send request per run.
It prints transitions/s against a baseline measured in the same run on the same database —
claiming (deleting) the same number of timer rows in the same batches with no engine work —
and the process's RSS with the N runs waiting and at its peak while draining (the worker holds
one batch, never the waiting runs: memory is flat in N).

`steady`: timers come due at `--rate` per second for `--seconds` while the worker runs on the
real clock (idle poll 0.25 s, as served); prints timer lateness p50/p99/max.

`events`: a real Legato with its workers (pipeline with identity, profile and journey stages,
timers, outbox recorder) takes `--rate` events/s through ingestion (group commit) for
`--seconds`; every event starts a run whose first node is a message. Latency is measured from
the moment ingestion committed the event to the moment the transition that put the send request
in the outbox was applied (its `created_ms`); prints p50/p99/max.

`serve`: the same journey, but through a running `legato serve` subprocess (all workers, the
settings it ships with): a client posts `--rate` events/s to `POST /v1/batch`, `--per-request`
events per request, one request every `per_request / rate` s (at least 10 ms), without
waiting for answers. Latency is from the event's acceptance (`received_ms`, stamped when the
log commit that precedes the 200 happens) to the send request in the outbox (`created_ms`).
The baseline, measured in the same run, is the client's own round trip for the 200 (durable
acceptance): the ratio says how much later than its acknowledgement an event has produced its
send request; it also prints the server's CPU per event (all its work: HTTP, ingest, pipeline,
timers, delivery), which load changes less than wall time. With `--breakdown` the server runs
with timing probes and the script prints where the time goes: the ingest group commit,
accepted → read by the pipeline, events per pipeline step, the step's transaction and each
stage's share of it.

`timers`, `steady` and `events` run with the interpreter settings `legato serve` uses (the
start-up heap frozen out of the cyclic GC, fewer collections).

Not part of the test suite: CI never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

WAIT_JOURNEY = {
    "kind": "Journey",
    "key": "bench_wait",
    "trigger": {"event": "Signed Up"},
    "nodes": [
        {"id": "w", "type": "wait", "duration": "1h", "next": "m"},
        {"id": "m", "type": "message", "channel": "email", "template": "hello", "next": "end"},
        {"id": "end", "type": "exit"},
    ],
}
EVENT_JOURNEY = {
    "kind": "Journey",
    "key": "bench_event",
    "trigger": {"event": "Checkout Started"},
    "nodes": [{"id": "m", "type": "message", "channel": "push", "template": "cart"}],
}


def as_served() -> None:
    """The interpreter settings `legato serve` runs its workers with (cli/serve.py): what
    start-up built is frozen out of the cyclic GC, which collects less often. Without them the
    GC rescans every object the app holds many times per batch (about a quarter of the CPU of
    a timer batch)."""
    from legato.cli.context import settle_gc

    settle_gc()


def rss_mb() -> float:
    """This process's resident set size now (Linux), in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[int], fraction: float) -> int:
    from legato.runtime.timers import percentile as nearest_rank

    return nearest_rank(values, fraction)


class Database:
    """A fresh database (SQLite file or PostgreSQL database) for one measurement."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.dir = tempfile.mkdtemp(prefix="legato-bench-")
            self.url = f"sqlite:///{Path(self.dir) / 'legato.db'}"
        else:
            import psycopg

            self.name = f"legato_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        if self.kind == "sqlite":
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def legato_on(url: str, *, workers: bool = False, clock: Any = None) -> Any:
    from legato.app import Legato
    from legato.settings import Settings

    # NORMAL survives a process crash (FULL also survives power loss): what a benchmark of the
    # engine, not of the disk, should use on SQLite. PostgreSQL keeps its defaults.
    settings = Settings(database_url=url, run_workers=workers, sqlite_synchronous="NORMAL")
    legato = Legato(settings, clock=clock)
    legato.migrate()
    return legato


async def fill_waiting_runs(legato: Any, workspace_id: str, runs: int, due_ms: int) -> None:
    """`runs` runs waiting at node `w` of the wait journey, their timers all due at `due_ms`."""
    import dataclasses

    from legato.domain.conditions import EventFact, ProfileSnapshot
    from legato.domain.engine import Enter, advance
    from legato.ids import new_id
    from legato.store.runs import JourneyChanges

    async with legato.db.connect() as conn:
        version = await legato.versions.get(conn, workspace_id, "bench_wait", 1)
    template = advance(
        version,
        None,
        Enter("template", EventFact("Signed Up", due_ms, {})),
        due_ms - 3_600_000,
        ProfileSnapshot("p"),
    ).run
    assert template is not None and template.status == "waiting"
    batch = 20_000
    for start in range(0, runs, batch):
        changes = JourneyChanges()
        for _ in range(min(batch, runs - start)):
            run_id = new_id()
            profile = new_id()
            run = dataclasses.replace(template, run_id=run_id, profile_id=profile)
            changes.new_runs[run_id] = {
                "run_id": run_id,
                "workspace_id": workspace_id,
                "journey_key": run.journey_key,
                "version": run.version,
                "profile_id": profile,
                "entry_key": None,
                "status": run.status,
                "node_id": run.node_id,
                "state": run.to_dict(),
                "user_id": None,
                "anonymous_id": None,
                "entered_ms": run.entered_ms,
                "updated_ms": run.updated_ms,
            }
            changes.timers[(run_id, "w", due_ms)] = {
                "owner": run_id,
                "name": "w",
                "due_ms": due_ms,
                "kind": "run",
                "workspace_id": workspace_id,
                "journey_key": "bench_wait",
                "version": 1,
                "profile_id": profile,
                "payload": None,
            }
        changes.rollups[(workspace_id, "bench_wait", 1, "w", "waiting")] += len(changes.new_runs)
        async with legato.db.transaction() as conn:
            await legato.runs.write(conn, changes)


async def fill_bare_timers(legato: Any, workspace_id: str, count: int, due_ms: int) -> None:
    """Timer rows whose runs do not exist: claiming them is all the work there is."""
    from legato.ids import new_id
    from legato.store.runs import JourneyChanges

    for start in range(0, count, 20_000):
        changes = JourneyChanges()
        for _ in range(min(20_000, count - start)):
            owner = new_id()
            changes.timers[(owner, "w", due_ms)] = {
                "owner": owner,
                "name": "w",
                "due_ms": due_ms,
                "kind": "run",
                "workspace_id": workspace_id,
                "journey_key": "bench_wait",
                "version": 1,
                "profile_id": None,
                "payload": None,
            }
        async with legato.db.transaction() as conn:
            await legato.runs.write(conn, changes)


async def _fill(url: str, workspace_id: str, runs: int, due_ms: int) -> None:
    legato = legato_on(url)
    await fill_waiting_runs(legato, workspace_id, runs, due_ms)
    await legato.db.dispose()


async def timers_run(kind: str, runs: int, batch: int) -> dict[str, float]:
    from legato.clock import SystemClock
    from legato.runtime.timers import TimerWorker

    db = Database(kind)
    try:
        clock = SystemClock()
        legato = legato_on(db.url, clock=clock)
        created = await legato.workspaces.create("bench", clock.now_ms())
        ws = created.workspace.id
        saved = await legato.journeys.save_draft(ws, WAIT_JOURNEY)
        await legato.journeys.publish(ws, saved.key)
        # Written by a child process: this one never holds the runs, so its RSS shows what
        # the worker itself needs with N runs waiting.
        started = time.perf_counter()
        subprocess.run(  # noqa: ASYNC221 - nothing else runs meanwhile
            [
                sys.executable,
                __file__,
                "_fill",
                "--url",
                db.url,
                "--workspace",
                ws,
                "--runs",
                str(runs),
                "--due",
                str(clock.now_ms() - 1),
            ],
            check=True,
        )
        fill_s = time.perf_counter() - started
        rss_waiting = rss_mb()
        worker = TimerWorker(
            legato.db,
            legato.journey_store,
            legato.runs,
            legato.versions,
            legato.profiles,
            clock,
            batch_size=batch,
        )
        peak = rss_waiting

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mb())
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        as_served()
        started, cpu_started = time.perf_counter(), time.process_time()
        fired = await worker.drain()
        engine_s = time.perf_counter() - started
        engine_cpu_s = time.process_time() - cpu_started
        sampler.cancel()
        assert fired == runs, (fired, runs)
        # Every run put exactly one send request in the outbox (idempotency keys are unique):
        # counted in SQL, where draining a million through the recorder would take an hour.
        import sqlalchemy as sa

        from legato.store.journeys import outbox

        async with legato.db.connect() as conn:
            requests, distinct_runs = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.count(sa.distinct(outbox.c.run_id)))
                )
            ).one()
        assert requests == distinct_runs == runs, (requests, distinct_runs, runs)

        await fill_bare_timers(legato, ws, runs, clock.now_ms() - 1)
        started, cpu_started = time.perf_counter(), time.process_time()
        claimed = 0
        while True:
            async with legato.db.transaction() as conn:
                got = await legato.runs.claim_timers(conn, clock.now_ms(), batch)
            if not got:
                break
            claimed += len(got)
        bare_s = time.perf_counter() - started
        bare_cpu_s = time.process_time() - cpu_started
        assert claimed == runs
        await legato.db.dispose()
        return {
            "runs": runs,
            "fill_s": fill_s,
            "transitions_per_s": worker.transitions / engine_s,
            "claim_only_per_s": claimed / bare_s,
            # Per second of this process's CPU: what other load on the machine moves least
            # (on PostgreSQL the server's own CPU is not in it).
            "transitions_per_cpu_s": worker.transitions / engine_cpu_s,
            "claim_only_per_cpu_s": claimed / bare_cpu_s,
            "engine_s": engine_s,
            "rss_waiting_mb": rss_waiting,
            "rss_peak_mb": peak,
        }
    finally:
        db.drop()


async def steady_run(
    kind: str, rate: int, seconds: float, batch: int, head_start: float = 3.0
) -> dict[str, float]:
    from legato.clock import SystemClock
    from legato.runtime.timers import TimerWorker

    db = Database(kind)
    try:
        clock = SystemClock()
        legato = legato_on(db.url, clock=clock)
        created = await legato.workspaces.create("bench", clock.now_ms())
        ws = created.workspace.id
        saved = await legato.journeys.save_draft(ws, WAIT_JOURNEY)
        await legato.journeys.publish(ws, saved.key)
        # Timers spread evenly from `head_start` s from now, `rate` per second: written up
        # front, in slices of 1/10 s (each slice's runs share a due time).
        begin = clock.now_ms() + int(head_start * 1000)
        slices = int(seconds * 10)
        per_slice = max(1, rate // 10)
        for i in range(slices):
            await fill_waiting_runs(legato, ws, per_slice, begin + i * 100)
        if clock.now_ms() > begin:
            raise SystemExit("writing the timers took longer than the head start (--head-start)")
        worker = TimerWorker(
            legato.db,
            legato.journey_store,
            legato.runs,
            legato.versions,
            legato.profiles,
            clock,
            batch_size=batch,
        )
        stop = asyncio.Event()
        as_served()
        task = asyncio.create_task(worker.run(stop))
        total = slices * per_slice
        while worker.fired < total:  # noqa: ASYNC110 - polling a counter, on purpose
            await asyncio.sleep(0.1)
        stop.set()
        await task
        late = list(worker.lateness_ms)
        await legato.db.dispose()
        return {
            "timers": total,
            "rate": rate,
            "lateness_p50_ms": percentile(late, 0.5),
            "lateness_p99_ms": percentile(late, 0.99),
            "lateness_max_ms": max(late),
        }
    finally:
        db.drop()


async def events_run(kind: str, rate: int, seconds: float) -> dict[str, float]:
    import sqlalchemy as sa

    from legato.clock import SystemClock
    from legato.domain.messages import format_instant
    from legato.store.journeys import outbox
    from legato.store.tables import events

    db = Database(kind)
    try:
        clock = SystemClock()
        legato = legato_on(db.url, workers=True, clock=clock)
        # How long events waited in the log before the journey stage saw them (the rest of the
        # latency is the stage's own work and the commit).
        resolved: list[int] = []
        stage_process = legato.journey_stage.process

        async def timed(conn: Any, batch: Any) -> None:
            now = clock.now_ms()
            resolved.extend(now - item.row.received_ms for item in batch)
            await stage_process(conn, batch)

        legato.journey_stage.process = timed
        created = await legato.workspaces.create("bench", clock.now_ms())
        ws = created.workspace.id
        saved = await legato.journeys.save_draft(ws, EVENT_JOURNEY)
        await legato.journeys.publish(ws, saved.key)
        as_served()
        await legato.start()
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        sent = 0
        started = time.perf_counter()
        pending: set[asyncio.Task[Any]] = set()
        while time.perf_counter() - started < seconds:
            due = started + (sent // per_tick) * tick
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            batch = [
                {
                    "type": "track",
                    "userId": f"u{sent + i}",
                    "event": "Checkout Started",
                    "messageId": f"m{sent + i}",
                    "timestamp": format_instant(clock.now_ms()),
                    "properties": {"cart_id": f"c{sent + i}"},
                }
                for i in range(per_tick)
            ]
            sent += per_tick
            task = asyncio.create_task(legato.ingest.accept(ws, "batch", {"batch": batch}))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        offered = time.perf_counter() - started
        deadline = time.perf_counter() + 120
        while True:
            async with legato.db.connect() as conn:
                done = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
            if done >= sent or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.2)
        async with legato.db.connect() as conn:
            accepted = {
                row.message_id: row.received_ms
                for row in await conn.execute(sa.select(events.c.message_id, events.c.received_ms))
            }
            rows = (await conn.execute(sa.select(outbox.c.created_ms, outbox.c.payload))).all()

        await legato.stop()
        latencies = []
        for created_ms, payload in rows:
            cart = payload["trigger"]["properties"]["cart_id"]
            latencies.append(created_ms - accepted["m" + cart[1:]])
        return {
            "resolved_p50_ms": percentile(resolved, 0.5),
            "resolved_p99_ms": percentile(resolved, 0.99),
            "events": sent,
            "offered_per_s": sent / offered,
            "in_outbox": len(rows),
            "latency_p50_ms": percentile(latencies, 0.5),
            "latency_p99_ms": percentile(latencies, 0.99),
            "latency_max_ms": max(latencies),
        }
    finally:
        db.drop()


def probed_serve(argv: list[str]) -> None:
    """`legato serve` with timing probes (`serve --breakdown`): where accepted → outbox goes.

    Wraps, in this process only: the ingest group commit, the pipeline's log reads and step
    transactions, and every stage's `process`. On SIGUSR1 it writes what it measured as JSON
    to $LEGATO_BENCH_PROBE and exits.
    """
    import json
    import signal
    from collections import defaultdict

    from legato.cli import main as cli
    from legato.runtime import ingest, pipeline
    from legato.store.log import LogConsumer

    seen: dict[str, list[Any]] = defaultdict(list)

    def ms() -> float:
        return time.time() * 1000

    commit = ingest.GroupCommitWriter._commit

    async def timed_commit(self: Any, group: Any) -> None:
        began = ms()
        await commit(self, group)
        seen["commit"].append((ms() - began, sum(len(item.rows) for item in group)))

    read = LogConsumer.read

    async def timed_read(
        self: Any, partition: int, after: int, limit: int, conn: Any = None
    ) -> Any:
        rows = await read(self, partition, after, limit, conn)
        if rows:
            at = ms()
            seen["read"].append([at - row.received_ms for row in rows])
        return rows

    apply = pipeline.Pipeline._apply

    async def timed_apply(self: Any, chunks: Any) -> int:
        for stage in self.stages:
            if not hasattr(stage, "_untimed"):
                stage._untimed = stage.process

                async def process(conn: Any, batch: Any, stage: Any = stage) -> None:
                    began = ms()
                    await stage._untimed(conn, batch)
                    seen["stage:" + stage.name].append(ms() - began)

                stage.process = process
        began = ms()
        done = await apply(self, chunks)
        seen["chunk"].append((ms() - began, sum(len(chunk.rows) for chunk in chunks)))
        return done

    ingest.GroupCommitWriter._commit = timed_commit  # type: ignore[method-assign]
    LogConsumer.read = timed_read  # type: ignore[method-assign,assignment]
    pipeline.Pipeline._apply = timed_apply  # type: ignore[method-assign]

    def dump(*_: Any) -> None:
        Path(os.environ["LEGATO_BENCH_PROBE"]).write_text(json.dumps(seen))
        os._exit(0)

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["legato", "serve", *argv]
    cli()


def breakdown(path: Path) -> list[str]:
    """Lines describing what `probed_serve` measured."""
    import json

    seen = json.loads(path.read_text())

    def line(label: str, values: list[float]) -> str:
        ints = [round(v) for v in values]
        p50, p99 = percentile(ints, 0.5), percentile(ints, 0.99)
        return f"  {label:<44} p50 {p50:>6} p99 {p99:>6} (n={len(values)})"

    lines = [
        line("ingest group commit, ms", [d for d, _ in seen["commit"]]),
        line("events per ingest commit", [n for _, n in seen["commit"]]),
        line("accepted -> read by the pipeline, ms", [a for ages in seen["read"] for a in ages]),
        line("events per step (all partitions held)", [n for _, n in seen["chunk"]]),
        line("step transaction (all stages + commit), ms", [d for d, _ in seen["chunk"]]),
    ]
    for key in sorted(k for k in seen if k.startswith("stage:")):
        lines.append(line(f"  stage {key[6:]}, ms per step", seen[key]))
    return lines


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_run(
    kind: str, rate: int, seconds: float, per_request: int, probe: Path | None = None
) -> dict[str, float]:
    """Events at `rate`/s through a `legato serve` subprocess; accepted → outbox latency
    (with `probe`, the server is `probed_serve`, which writes its breakdown there)."""
    import httpx
    import sqlalchemy as sa

    from legato.clock import SystemClock
    from legato.domain.messages import format_instant
    from legato.store.journeys import outbox
    from legato.store.tables import events

    db = Database(kind)
    server: subprocess.Popen[bytes] | None = None
    log_path = Path(tempfile.mkdtemp(prefix="legato-bench-serve-")) / "serve.log"
    try:
        clock = SystemClock()
        legato = legato_on(db.url, clock=clock)
        created = await legato.workspaces.create("bench", clock.now_ms())
        ws, write_key = created.workspace.id, created.write_key
        saved = await legato.journeys.save_draft(ws, EVENT_JOURNEY)
        await legato.journeys.publish(ws, saved.key)
        await legato.ingest.close()
        await legato.db.dispose()
        port = _free_port()
        env = {**os.environ, "LEGATO_DATABASE_URL": db.url}
        command = [sys.executable, "-m", "legato", "serve"]
        if probe is not None:
            env["LEGATO_BENCH_PROBE"] = str(probe)
            command = [sys.executable, __file__, "_probed_serve"]
        with log_path.open("wb") as log_file:
            server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, auth=(write_key, ""), timeout=60, limits=httpx.Limits(max_connections=64)
        ) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get("/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("legato serve did not start:\n" + log_path.read_text())
                await asyncio.sleep(0.1)
            round_trips: list[int] = []
            failures: list[str] = []
            cpu_before = _process_cpu_s(server.pid)

            async def post(batch: list[dict[str, Any]]) -> None:
                began = time.perf_counter()
                try:
                    answer = await http.post("/v1/batch", json={"batch": batch})
                except httpx.TransportError as exc:  # counted and reported, not a crash
                    failures.append(f"{type(exc).__name__} {exc}")
                    return
                round_trips.append(round((time.perf_counter() - began) * 1000))
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

            # One request every `tick`, carrying `per_request` events (or fewer, at low rates).
            tick = max(0.01, per_request / rate)
            per_tick = max(1, round(rate * tick))
            sent = 0
            pending: set[asyncio.Task[None]] = set()
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                due = started + (sent // per_tick) * tick
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                for first in range(sent, sent + per_tick, per_request):
                    batch = [
                        {
                            "type": "track",
                            "userId": f"u{n}",
                            "event": "Checkout Started",
                            "messageId": f"m{n}",
                            "timestamp": format_instant(clock.now_ms()),
                            "properties": {"cart_id": f"c{n}"},
                        }
                        for n in range(first, min(first + per_request, sent + per_tick))
                    ]
                    task = asyncio.create_task(post(batch))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                sent += per_tick
            await asyncio.gather(*pending)
            offered = time.perf_counter() - started
        from legato.store.database import driver_urls

        engine = sa.create_engine(driver_urls(db.url)[1])
        try:
            deadline = time.monotonic() + 180
            while True:
                with engine.connect() as conn:
                    done = conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0
                if done >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # noqa: ASYNC251 - nothing else runs in this loop now
            server_cpu_s = _process_cpu_s(server.pid) - cpu_before
            with engine.connect() as conn:
                accepted = {
                    row.message_id: row.received_ms
                    for row in conn.execute(sa.select(events.c.message_id, events.c.received_ms))
                }
                rows = conn.execute(sa.select(outbox.c.created_ms, outbox.c.payload)).all()
        finally:
            engine.dispose()
        latencies = []
        for created_ms, payload in rows:
            if isinstance(payload, str):
                import orjson

                payload = orjson.loads(payload)
            cart = payload["trigger"]["properties"]["cart_id"]
            latencies.append(created_ms - accepted["m" + cart[1:]])
        return {
            "events": sent,
            "offered_per_s": sent / offered,
            "in_outbox": len(rows),
            "failed_requests": len(failures),
            "accept_p50_ms": percentile(round_trips, 0.5),
            "accept_p99_ms": percentile(round_trips, 0.99),
            "latency_p50_ms": percentile(latencies, 0.5),
            "latency_p99_ms": percentile(latencies, 0.99),
            "latency_max_ms": max(latencies),
            "server_cpu_us_per_event": server_cpu_s * 1e6 / max(1, sent),
        }
    finally:
        if server is not None:
            if probe is not None:
                import signal

                server.send_signal(signal.SIGUSR1)  # the probe writes its file and exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(timeout=30)
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        db.drop()


def main() -> None:
    if sys.argv[1:2] == ["_probed_serve"]:
        probed_serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["timers", "steady", "events", "serve", "_fill"])
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--due", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, action="append", help="waiting runs (repeatable)")
    parser.add_argument("--batch", type=int, default=1000, help="timers per transaction")
    parser.add_argument("--rate", type=int, default=1000, help="per second (steady, events)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-request", type=int, default=10, help="events per request (serve)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="serve: probe the server and print where accepted -> outbox goes",
    )
    parser.add_argument(
        "--head-start", type=float, default=3.0, help="seconds to write the timers (steady)"
    )
    args = parser.parse_args()
    if args.mode == "_fill":
        asyncio.run(_fill(args.url, args.workspace, args.runs[0], args.due))
        return
    load = os.getloadavg()[0]
    print(f"# {' '.join(sys.argv)}  (cpus: {os.cpu_count()}, load {load:.1f})", flush=True)
    if args.mode == "timers":
        for runs in args.runs or [100_000]:
            result = asyncio.run(timers_run(args.db, runs, args.batch))
            ratio = result["transitions_per_s"] / result["claim_only_per_s"]
            print(
                f"{args.db} timers: {runs:,} runs due at once: "
                f"{result['transitions_per_s']:,.0f} transitions/s "
                f"(claim-only baseline {result['claim_only_per_s']:,.0f}/s, ratio {ratio:.2f}); "
                f"per CPU-second of this process {result['transitions_per_cpu_s']:,.0f} "
                f"({1e6 / result['transitions_per_cpu_s']:.0f} µs CPU per transition; baseline "
                f"{result['claim_only_per_cpu_s']:,.0f}); "
                f"drained in {result['engine_s']:.1f} s; RSS with them waiting "
                f"{result['rss_waiting_mb']:.0f} MB, peak while draining "
                f"{result['rss_peak_mb']:.0f} MB (written in {result['fill_s']:.0f} s)",
                flush=True,
            )
    elif args.mode == "steady":
        result = asyncio.run(
            steady_run(args.db, args.rate, args.seconds, args.batch, args.head_start)
        )
        print(
            f"{args.db} steady: {result['timers']:,} timers due at {args.rate}/s: lateness "
            f"p50 {result['lateness_p50_ms']} ms, p99 {result['lateness_p99_ms']} ms, "
            f"max {result['lateness_max_ms']} ms",
            flush=True,
        )
    elif args.mode == "serve":
        probe = Path(tempfile.mkdtemp(prefix="legato-bench-probe-")) / "probe.json"
        result = asyncio.run(
            serve_run(
                args.db,
                args.rate,
                args.seconds,
                args.per_request,
                probe if args.breakdown else None,
            )
        )
        ratio = result["latency_p50_ms"] / max(1, result["accept_p50_ms"])
        print(
            f"{args.db} serve: {result['events']:,} events at {result['offered_per_s']:,.0f}/s "
            f"offered ({args.per_request} per request, {result['failed_requests']} requests "
            f"failed), {result['in_outbox']:,} send requests: "
            f"accepted → outbox p50 {result['latency_p50_ms']} ms, p99 "
            f"{result['latency_p99_ms']} ms, max {result['latency_max_ms']} ms; baseline "
            f"(the 200 itself, client round trip) p50 {result['accept_p50_ms']} ms, p99 "
            f"{result['accept_p99_ms']} ms; ratio p50 {ratio:.1f}; server CPU "
            f"{result['server_cpu_us_per_event']:,.0f} µs per event",
            flush=True,
        )
        if args.breakdown:
            print("where it goes (inside the server):\n" + "\n".join(breakdown(probe)), flush=True)
    else:
        result = asyncio.run(events_run(args.db, args.rate, args.seconds))
        print(
            f"{args.db} events: {result['events']:,} events at {result['offered_per_s']:,.0f}/s "
            f"offered, {result['in_outbox']:,} send requests: accepted → outbox p50 "
            f"{result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, "
            f"max {result['latency_max_ms']} ms (reached the journey stage: p50 "
            f"{result['resolved_p50_ms']} ms, p99 {result['resolved_p99_ms']} ms)",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# process max RSS {peak:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
