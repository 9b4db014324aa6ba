"""Benchmark: real-time segments — pipeline throughput, event → membership latency, backfill.

    python bench/segments.py                          # SQLite, and PostgreSQL if reachable
    python bench/segments.py --db sqlite --events 20000 --backfill-events 1000000

1. Throughput: the same `--events` (through real ingestion, `--people` persons, 10 event
   names, 1 in 10 an identify resending 2 traits, 1 in 10 of those with a new score) drained
   by the whole pipeline twice, on two fresh databases: with no segments, and with 100
   segments (event counts in windows, trait comparisons, segment-of-segment). Prints customer
   events/s of both (wall clock and per CPU second of this process), their ratio, and the
   segment stage's own rate over every event it saw (its time measured around `process`).
2. Latency: a real `legato serve` (all workers, real clock) on a database with the same 100
   segments; events are posted to /v1/batch one at a time, each by a new user, and the time
   until the membership it causes is committed is read by polling the database every ms;
   p50/p95/max over `--latency-samples`.
3. Backfill: `--backfill-events` rows written straight into the log for 100,000 profiles,
   then a windowed count segment (>= 2 `Order Completed` within 30d) backfilled by the SQL
   compiler (INSERT ... SELECT) against a hand-written INSERT ... SELECT ... GROUP BY HAVING
   giving the same answer, timed in the same run; prints both and the ratio.
Not part of the test suite: CI never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_767_603_600_000
DAY = 86_400_000
NAMES = [f"Event {i}" for i in range(10)]


def segments_yaml(count: int) -> str:
    """`count` segments mixing event windows, trait tests and segment-of-segment."""
    docs = []
    for i in range(count):
        name = NAMES[i % len(NAMES)]
        if i % 4 == 0:
            cond = f"{{event: {name}, count: {{gte: {1 + i % 3}}}, within: 30d}}"
        elif i % 4 == 1:
            cond = f"{{all: [{{event: {name}}}, {{trait: plan, eq: p{i % 5}}}]}}"
        elif i % 4 == 2:
            cond = f"{{trait: score, gte: {i}}}"
        else:
            cond = f"{{all: [{{segment: s{i - 3}}}, {{not: {{event: {name}, within: 7d}}}}]}}"
        docs.append(f"kind: Segment\nkey: s{i}\ncondition: {cond}\n")
    return "---\n".join(docs)


async def _world(url: str) -> tuple[Any, str, str]:
    """A migrated Legato without workers on a fake clock, and a new workspace (id, write key)."""
    from legato.app import Legato
    from legato.settings import Settings
    from legato.testing import FakeClock

    legato = Legato(Settings(database_url=url, run_workers=False), clock=FakeClock(T0))
    legato.migrate()
    created = await legato.workspaces.create(f"bench-{uuid.uuid4().hex[:6]}", T0)
    return legato, created.workspace.id, created.write_key


async def throughput(url: str, events: int, people: int, segments: int) -> dict[str, float]:
    """Customer events/s through the whole pipeline (wall and CPU time), and the segment
    stage's own rate over every event it saw (internal Segment Entered/Exited included)."""
    from legato.runtime.documents import apply_documents, parse_documents

    legato, ws, _ = await _world(url)
    if segments:
        await apply_documents(
            parse_documents(segments_yaml(segments)), workspace_id=ws, services=legato
        )
    rng = random.Random(7)
    batch: list[dict[str, Any]] = []
    # Identify calls resend a person's traits; one in ten changes the score (as a CRM sync
    # would), so trait segments see real but not constant change.
    traits = {f"u{p}": {"plan": f"p{p % 5}", "score": p % 100} for p in range(people)}
    for n in range(events):
        user = f"u{rng.randrange(people)}"
        if n % 10 == 0:
            if rng.randrange(10) == 0:
                traits[user] = {**traits[user], "score": rng.randrange(100)}
            message = {"type": "identify", "userId": user, "traits": traits[user]}
        else:
            message = {"type": "track", "userId": user, "event": rng.choice(NAMES)}
        batch.append(message)
        if len(batch) == 500:
            await legato.ingest.accept(ws, "batch", {"batch": batch})
            batch = []
    if batch:
        await legato.ingest.accept(ws, "batch", {"batch": batch})
    stage = legato.segment_stage
    spent = [0.0, 0.0]  # wall, CPU (all threads: aiosqlite's included) inside the stage
    original = stage.process

    async def timed(conn: Any, items: Any) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        await original(conn, items)
        spent[0] += time.perf_counter() - started
        spent[1] += time.process_time() - cpu

    stage.process = timed  # type: ignore[method-assign]
    started, cpu = time.perf_counter(), time.process_time()
    done = 0
    while True:
        moved = await legato.pipeline.drain()
        if not moved:
            break
        done += moved
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    changes = legato.segment_evaluator.changes
    await legato.ingest.close()
    await legato.db.dispose()
    return {
        "pipeline": events / elapsed,
        "pipeline_cpu": events / cpu,
        "stage": done / spent[0] if spent[0] else float("inf"),
        "stage_cpu": done / spent[1] if spent[1] else float("inf"),
        "through_stage": done,
        "changes": changes,
    }


async def latency(url: str, samples: int, pause: float) -> tuple[float, float, float]:
    """(p50, p95, max) ms from sending an event to a running `legato serve` until the
    membership it causes is committed, read by polling the database every millisecond."""
    from legato.runtime.documents import apply_documents, parse_documents

    legato, ws, write_key = await _world(url)
    await apply_documents(parse_documents(segments_yaml(100)), workspace_id=ws, services=legato)
    await legato.ingest.close()
    await legato.db.dispose()
    took = await asyncio.to_thread(_through_server, url, ws, write_key, samples, pause)
    took.sort()
    return took[len(took) // 2], took[max(0, int(len(took) * 0.95) - 1)], took[-1]


def _through_server(url: str, ws: str, write_key: str, samples: int, pause: float) -> list[float]:
    """Start `legato serve` (all workers) on `url`; time each event to its membership (ms)."""
    import base64

    import httpx
    import sqlalchemy as sa

    from legato.store.database import driver_urls

    port = _free_port()
    env = {**os.environ, "LEGATO_DATABASE_URL": url}
    log_path = Path(tempfile.mkdtemp()) / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "legato", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    engine = sa.create_engine(driver_urls(url)[1])
    probe = sa.text(
        "SELECT 1 FROM segment_members m JOIN identities i ON i.profile_id = m.profile_id "
        "WHERE i.workspace_id = :ws AND i.kind = 'user_id' AND i.value = :user "
        "AND m.segment_key = 's0'"
    )
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    base = f"http://127.0.0.1:{port}"
    took: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("legato serve did not start: " + log_path.read_text())
            time.sleep(0.1)
        run_id = uuid.uuid4().hex[:6]
        headers = {"Authorization": f"Basic {token}"}
        with httpx.Client(base_url=base, headers=headers) as http, engine.connect() as conn:
            for n in range(samples):
                user = f"lat-{run_id}-{n}"
                started = time.perf_counter()
                answer = http.post(
                    "/v1/batch",
                    json={"batch": [{"type": "track", "userId": user, "event": NAMES[0]}]},
                )
                assert answer.status_code == 200, answer.text
                while conn.execute(probe, {"ws": ws, "user": user}).first() is None:
                    conn.rollback()  # a fresh snapshot for the next look
                    if time.perf_counter() - started > 30:
                        raise RuntimeError(f"{user} never entered s0: " + log_path.read_text())
                    time.sleep(0.001)
                conn.rollback()
                took.append((time.perf_counter() - started) * 1000)
                time.sleep(pause)  # events arrive one by one, not in a burst
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        engine.dispose()
    return took


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def backfill(url: str, rows: int, profiles: int) -> tuple[float, float, int]:
    """(compiler seconds, hand-written seconds, members)."""
    import sqlalchemy as sa

    from legato.domain.conditions import parse_condition
    from legato.store.tables import events
    from legato.store.tables import profiles as profile_table

    legato, ws, _ = await _world(url)
    rng = random.Random(3)
    ids = [f"p{n:025d}" for n in range(profiles)]
    async with legato.db.transaction() as conn:
        for start in range(0, profiles, 5000):
            await conn.execute(
                profile_table.insert(),
                [
                    {
                        "id": pid,
                        "workspace_id": ws,
                        "traits": {},
                        "trait_times": {},
                        "first_seen_ms": T0,
                        "last_seen_ms": T0,
                        "created_ms": T0,
                        "updated_ms": T0,
                    }
                    for pid in ids[start : start + 5000]
                ],
            )
    for start in range(0, rows, 20000):
        async with legato.db.transaction() as conn:
            await conn.execute(
                events.insert(),
                [
                    {
                        "workspace_id": ws,
                        "message_id": f"m{n}",
                        "partition": 0,
                        "type": "track",
                        "event": "Order Completed" if n % 3 else "Page Viewed",
                        "profile_id": ids[rng.randrange(profiles)],
                        "timestamp_ms": T0 - rng.randrange(120 * DAY),
                        "received_ms": T0,
                        "payload": {"properties": {}},
                    }
                    for n in range(start, min(rows, start + 20000))
                ],
            )
    # The log offsets stay at zero: the pipeline is not part of this measure.
    condition = parse_condition({"event": "Order Completed", "count": {"gte": 2}, "within": "30d"})
    hand = sa.text(
        "INSERT INTO bench_members (profile_id) SELECT e.profile_id FROM events e "
        "JOIN profiles p ON p.id = e.profile_id AND p.merged_into IS NULL "
        "WHERE e.workspace_id = :ws AND e.event = 'Order Completed' "
        "AND e.timestamp_ms <= :now AND e.timestamp_ms > :now - :span "
        "GROUP BY e.profile_id HAVING count(*) >= 2"
    )
    async with legato.db.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE bench_members (profile_id VARCHAR(26))"))
    timings: dict[str, float] = {}
    members = 0
    for _ in range(2):  # twice each, interleaved; the better of two counts (caches warm)
        async with legato.db.transaction() as conn:
            await conn.execute(sa.text("DELETE FROM bench_members"))
            started = time.perf_counter()
            await conn.execute(hand, {"ws": ws, "now": T0, "span": 30 * DAY})
            timings["hand"] = min(timings.get("hand", 1e9), time.perf_counter() - started)
            expected = (
                await conn.execute(sa.text("SELECT count(*) FROM bench_members"))
            ).scalar_one()
        async with legato.db.transaction() as conn:
            await conn.execute(sa.text("DELETE FROM segment_members"))
            started = time.perf_counter()
            members = await legato.memberships.replace_members(conn, ws, "probe", condition, T0)
            timings["ours"] = min(timings.get("ours", 1e9), time.perf_counter() - started)
        assert members == expected, (members, expected)
    await legato.ingest.close()
    await legato.db.dispose()
    return timings["ours"], timings["hand"], members


def _pg_url() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return None
    import psycopg

    name = f"legato_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--parts", default="throughput,latency,backfill", help="Comma-separated parts to run."
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--latency-pause", type=float, default=0.02, help="Seconds between.")
    parser.add_argument("--backfill-events", type=int, default=1_000_000)
    parser.add_argument("--backfill-profiles", type=int, default=100_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    dialects = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"machine: {_machine()}")
    for dialect in dialects:
        made: list[str] = []

        def fresh(dialect: str = dialect, made: list[str] = made) -> str | None:
            if dialect == "sqlite":
                return f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
            url = _pg_url()
            if url is not None:
                made.append(url)
            return url

        try:
            if fresh() is None:
                print(f"{dialect}: not reachable, skipped")
                continue
            if "throughput" in parts:
                base = await throughput(fresh() or "", args.events, args.people, 0)
                ours = await throughput(fresh() or "", args.events, args.people, 100)
                print(
                    f"{dialect}: pipeline, {args.events:,} customer events: "
                    f"{base['pipeline']:,.0f} ev/s without segments, "
                    f"{ours['pipeline']:,.0f} ev/s with 100 segments "
                    f"(ratio {ours['pipeline'] / base['pipeline']:.2f}); per CPU second "
                    f"{base['pipeline_cpu']:,.0f} vs {ours['pipeline_cpu']:,.0f} "
                    f"(ratio {ours['pipeline_cpu'] / base['pipeline_cpu']:.2f})"
                )
                print(
                    f"{dialect}: segment stage alone: {ours['stage']:,.0f} ev/s wall, "
                    f"{ours['stage_cpu']:,.0f} ev/s per CPU second, over "
                    f"{ours['through_stage']:,.0f} events ({ours['changes']:,.0f} membership "
                    "changes, each logged as an internal event that passes the stage too)"
                )
            if "latency" in parts:
                p50, p95, worst = await latency(
                    fresh() or "", args.latency_samples, args.latency_pause
                )
                print(
                    f"{dialect}: event -> membership committed, through legato serve: "
                    f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms "
                    f"({args.latency_samples} events, 100 segments)"
                )
            if "backfill" in parts:
                ours, hand, members = await backfill(
                    fresh() or "", args.backfill_events, args.backfill_profiles
                )
                print(
                    f"{dialect}: backfill of a 30d count segment over {args.backfill_events:,} "
                    f"events: {ours:.2f} s (compiler) vs {hand:.2f} s (hand-written SQL), "
                    f"ratio {ours / hand:.2f}, {members:,} members"
                )
        finally:
            for url in made:
                _drop(url)
        print(f"machine after {dialect}: {_machine()}")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
