"""Benchmark: the pipeline (identity + profile stages) in events/s, against a bare consumer.

    python bench/pipeline.py                         # SQLite and PostgreSQL (if reachable)
    python bench/pipeline.py --db sqlite --events 100000 --people 10000

For each database it fills the event log directly (as ingestion stores it) with a realistic
mix: `--people` persons, 30% browse anonymously and then sign in (identify with both ids, some
on a second device: real merges), 50% are known users, 20% stay anonymous; identify calls carry
traits with an email, a few people join groups. Then it times, on the same rows:

- the baseline: the same worker loop with no stages — read each chunk, renew the lease and
  write the offset in one transaction (what consuming the log costs by itself);
- the pipeline: identity + profile stages in those same transactions.

It prints both rates, their ratio, and the CPU time of this process per event (all its
threads; PostgreSQL's own CPU is not counted) — the figure other load on the machine moves
least — and the difference, what the two stages alone cost; then it checks that every event
was counted once. Like `legato serve` and `legato worker`,
it freezes what start-up built out of the cyclic GC's reach and collects less often
(`--no-gc-freeze` to measure without).
Not part of the test suite: CI never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_767_603_600_000


def mix(events: int, people: int, partitions: int, seed: int = 7) -> list[dict[str, Any]]:
    """`events` log rows for `people` persons, in a plausible arrival order."""
    from legato.domain.messages import partition_for

    rng = random.Random(seed)
    per_person = max(2, events // people)
    rows: list[dict[str, Any]] = []
    clock = T0

    def row(kind: str, user: str | None, anon: str | None, **payload: Any) -> None:
        nonlocal clock
        clock += 7
        body = {"type": kind, "messageId": uuid.UUID(int=rng.getrandbits(128)).hex, **payload}
        if user:
            body["userId"] = user
        if anon:
            body["anonymousId"] = anon
        name = payload.get("event") or payload.get("name")
        rows.append(
            {
                "workspace_id": "",  # set when inserted
                "message_id": body["messageId"],
                "partition": partition_for(user or anon or "", partitions),
                "type": kind,
                "event": name,
                "user_id": user,
                "anonymous_id": anon,
                "timestamp_ms": clock,
                "received_ms": clock,
                "payload": body,
            }
        )

    streams: list[list[tuple[str, str | None, str | None, dict[str, Any]]]] = []
    for p in range(people):
        user, anon, anon2 = f"user-{p}", f"anon-{p}", f"anon2-{p}"
        kind = rng.random()
        own: list[tuple[str, str | None, str | None, dict[str, Any]]] = []
        traits = {"email": f"{user}@example.com", "plan": rng.choice(["free", "pro"])}
        if kind < 0.3:  # anonymous, then identified (a third also used a second device)
            split = per_person // 2
            for i in range(split - 1):
                own.append(("track", None, anon, {"event": "Viewed", "properties": {"i": i}}))
            own.append(("identify", user, anon, {"traits": traits}))
            if p % 3 == 0:
                own.append(("page", None, anon2, {"name": "Pricing"}))
                own.append(("identify", user, anon2, {"traits": {"device": "phone"}}))
            while len(own) < per_person:
                own.append(("track", user, None, {"event": "Bought", "properties": {"v": 9}}))
        elif kind < 0.8:  # known users
            own.append(("identify", user, None, {"traits": traits}))
            if p % 10 == 0:
                own.append(("group", user, None, {"groupId": f"g{p % 50}", "traits": {"n": p}}))
            while len(own) < per_person:
                own.append(("track", user, None, {"event": "Played", "properties": {"s": 1}}))
        else:  # anonymous only
            while len(own) < per_person:
                own.append(("page", None, anon, {"name": "Home"}))
        streams.append(own)
    # Interleave people as traffic does, keeping each person's own order.
    cursors = [0] * len(streams)
    live = list(range(len(streams)))
    while live and len(rows) < events:
        i = rng.randrange(len(live))
        p = live[i]
        kind, user, anon, payload = streams[p][cursors[p]]
        row(kind, user, anon, **payload)
        cursors[p] += 1
        if cursors[p] == len(streams[p]):
            live[i] = live[-1]
            live.pop()
    return rows


async def run_one(
    url: str, events: int, people: int, chunk: int, gc_freeze: bool = True
) -> dict[str, float]:
    import sqlalchemy as sa

    from legato.app import Legato
    from legato.cli.context import settle_gc
    from legato.runtime.identity import IdentityStage
    from legato.runtime.pipeline import Pipeline
    from legato.runtime.profiles import ProfileStage
    from legato.settings import Settings
    from legato.store.log import LogConsumer
    from legato.store.tables import events as events_table
    from legato.store.tables import profiles

    legato = Legato(Settings(database_url=url, run_workers=False))
    await asyncio.to_thread(legato.migrate)
    created = await legato.workspaces.create("bench", T0)
    rows = mix(events, people, legato.settings.partitions)
    for r in rows:
        r["workspace_id"] = created.workspace.id
    started = time.perf_counter()
    async with legato.db.transaction() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(events_table.insert(), rows[start : start + 5000])
    print(f"  filled the log with {len(rows)} events in {time.perf_counter() - started:.1f}s")

    if gc_freeze:  # as `legato serve` and `legato worker` do once started
        settle_gc()
    exclusive = legato.settings.is_sqlite
    baseline = Pipeline(
        legato.db,
        LogConsumer(legato.db, "baseline", legato.settings.partitions),
        [],
        legato.clock,
        chunk_size=chunk,
        exclusive=exclusive,
    )
    started, cpu = time.perf_counter(), time.process_time()
    assert await baseline.drain() == len(rows)
    base_s, base_cpu = time.perf_counter() - started, time.process_time() - cpu

    # Only the two stages of this issue (the app's pipeline also carries later issues' stages).
    real = Pipeline(
        legato.db,
        LogConsumer(legato.db, "pipeline", legato.settings.partitions),
        [IdentityStage(legato.profiles, legato.clock), ProfileStage(legato.profiles, legato.clock)],
        legato.clock,
        chunk_size=chunk,
        exclusive=exclusive,
    )
    started, cpu = time.perf_counter(), time.process_time()
    assert await real.drain() == len(rows)
    pipe_s, pipe_cpu = time.perf_counter() - started, time.process_time() - cpu

    async with legato.db.connect() as conn:
        counted = await conn.scalar(
            sa.select(sa.func.sum(profiles.c.event_count)).where(profiles.c.merged_into.is_(None))
        )
        live = await conn.scalar(sa.select(sa.func.count()).where(profiles.c.merged_into.is_(None)))
        merged = await conn.scalar(
            sa.select(sa.func.count()).where(profiles.c.merged_into.is_not(None))
        )
    assert counted == len(rows), (counted, len(rows))
    await legato.db.dispose()
    return {
        "events": len(rows),
        "baseline_eps": len(rows) / base_s,
        "pipeline_eps": len(rows) / pipe_s,
        "baseline_cpu_us": base_cpu / len(rows) * 1e6,
        "pipeline_cpu_us": pipe_cpu / len(rows) * 1e6,
        "profiles": float(live or 0),
        "merges": float(merged or 0),
    }


def pg_reachable() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--no-gc-freeze", action="store_true", help="keep the default GC")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    targets = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for target in targets:
        if target == "sqlite":
            folder = tempfile.mkdtemp(prefix="legato-bench-")
            url = f"sqlite:///{folder}/bench.db"
            drop = None
        else:
            if not pg_reachable():
                print("postgres: not reachable on 127.0.0.1:5432, skipped")
                continue
            import psycopg

            name = f"legato_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
            drop = name
        print(f"{target}: {args.events} events, {args.people} people, chunks of {args.chunk}")
        try:
            result = asyncio.run(
                run_one(url, args.events, args.people, args.chunk, not args.no_gc_freeze)
            )
        finally:
            if drop is not None:
                import psycopg

                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
        ratio = result["pipeline_eps"] / result["baseline_eps"]
        print(
            f"  baseline (read + offsets only): {result['baseline_eps']:>9,.0f} events/s"
            f"  {result['baseline_cpu_us']:6.0f} us CPU/event\n"
            f"  pipeline (identity + profile):  {result['pipeline_eps']:>9,.0f} events/s"
            f"  {result['pipeline_cpu_us']:6.0f} us CPU/event  = {ratio:.2f} x baseline\n"
            f"  the two stages alone:"
            f"  {result['pipeline_cpu_us'] - result['baseline_cpu_us']:37.0f} us CPU/event\n"
            f"  {result['profiles']:,.0f} live profiles, {result['merges']:,.0f} merges; "
            "every event counted once"
        )


if __name__ == "__main__":
    main()
