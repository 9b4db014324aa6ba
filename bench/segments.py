"""Benchmark: real-time segments — pipeline throughput, event → membership latency, backfill.

    python bench/segments.py                          # SQLite, and PostgreSQL if reachable
    python bench/segments.py --db sqlite --events 20000 --backfill-events 1000000

1. Throughput: the same `--events` (through real ingestion, `--people` persons, 10 event
   names, identify calls changing 2 traits) drained by the whole pipeline twice, on two fresh
   databases: with no segments, and with 100 segments (event counts in windows, trait
   comparisons, segment-of-segment). Prints events/s of both, their ratio, and the segment
   stage's own rate (its time measured around its `process`).
2. Latency: one event at a time, accepted by ingestion then drained, until the membership
   change is committed (in-process: no polling delay); p50/p95 over `--latency-samples`.
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


async def _world(url: str) -> tuple[Any, str]:
    from legato.app import Legato
    from legato.settings import Settings
    from legato.testing import FakeClock

    legato = Legato(Settings(database_url=url, run_workers=False), clock=FakeClock(T0))
    legato.migrate()
    created = await legato.workspaces.create(f"bench-{uuid.uuid4().hex[:6]}", T0)
    return legato, created.workspace.id


async def throughput(url: str, events: int, people: int, segments: int) -> tuple[float, float]:
    """(pipeline events/s, segment stage events/s)."""
    from legato.runtime.documents import apply_documents, parse_documents

    legato, ws = await _world(url)
    if segments:
        await apply_documents(
            parse_documents(segments_yaml(segments)), workspace_id=ws, services=legato
        )
    rng = random.Random(7)
    batch: list[dict[str, Any]] = []
    for n in range(events):
        user = f"u{rng.randrange(people)}"
        if n % 10 == 0:
            message = {
                "type": "identify",
                "userId": user,
                "traits": {"plan": f"p{rng.randrange(5)}", "score": rng.randrange(100)},
            }
        else:
            message = {"type": "track", "userId": user, "event": rng.choice(NAMES)}
        batch.append(message)
        if len(batch) == 500:
            await legato.ingest.accept(ws, "batch", {"batch": batch})
            batch = []
    if batch:
        await legato.ingest.accept(ws, "batch", {"batch": batch})
    stage = legato.segment_stage
    spent = [0.0]
    original = stage.process

    async def timed(conn: Any, items: Any) -> None:
        started = time.perf_counter()
        await original(conn, items)
        spent[0] += time.perf_counter() - started

    stage.process = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    done = 0
    while True:
        moved = await legato.pipeline.drain()
        if not moved:
            break
        done += moved
    elapsed = time.perf_counter() - started
    await legato.ingest.close()
    await legato.db.dispose()
    return done / elapsed, (done / spent[0] if spent[0] else float("inf"))


async def latency(url: str, samples: int) -> tuple[float, float]:
    """(p50, p95) ms from accepting an event to its membership change being committed."""
    from legato.runtime.documents import apply_documents, parse_documents

    legato, ws = await _world(url)
    await apply_documents(parse_documents(segments_yaml(100)), workspace_id=ws, services=legato)
    await legato.pipeline.drain()
    took: list[float] = []
    for n in range(samples):
        started = time.perf_counter()
        await legato.ingest.accept(
            ws, "batch", {"batch": [{"type": "track", "userId": f"l{n}", "event": NAMES[0]}]}
        )
        await legato.pipeline.drain()
        took.append((time.perf_counter() - started) * 1000)
    changes = legato.segment_evaluator.changes
    assert changes >= samples, changes  # each sample entered s0 (count >= 1 within 30d)
    await legato.ingest.close()
    await legato.db.dispose()
    took.sort()
    return took[len(took) // 2], took[int(len(took) * 0.95) - 1]


async def backfill(url: str, rows: int, profiles: int) -> tuple[float, float, int]:
    """(compiler seconds, hand-written seconds, members)."""
    import sqlalchemy as sa

    from legato.domain.conditions import parse_condition
    from legato.store.tables import events
    from legato.store.tables import profiles as profile_table

    legato, ws = await _world(url)
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--backfill-events", type=int, default=1_000_000)
    parser.add_argument("--backfill-profiles", type=int, default=100_000)
    args = parser.parse_args()
    dialects = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
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
            urls = [fresh() for _ in range(4)]
            if any(u is None for u in urls):
                print(f"{dialect}: not reachable, skipped")
                continue
            base, _ = await throughput(urls[0] or "", args.events, args.people, 0)
            with_segments, stage = await throughput(urls[1] or "", args.events, args.people, 100)
            print(
                f"{dialect}: pipeline {base:,.0f} ev/s without segments, "
                f"{with_segments:,.0f} ev/s with 100 segments "
                f"(ratio {with_segments / base:.2f}); segment stage alone {stage:,.0f} ev/s"
            )
            p50, p95 = await latency(urls[2] or "", args.latency_samples)
            print(f"{dialect}: event -> membership committed p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            ours, hand, members = await backfill(
                urls[3] or "", args.backfill_events, args.backfill_profiles
            )
            print(
                f"{dialect}: backfill of a 30d count segment over {args.backfill_events:,} "
                f"events: {ours:.2f} s (compiler) vs {hand:.2f} s (hand-written SQL), "
                f"ratio {ours / hand:.2f}, {members:,} members"
            )
        finally:
            for url in made:
                _drop(url)
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
