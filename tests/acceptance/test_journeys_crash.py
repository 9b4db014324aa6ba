"""A real `legato serve` killed with SIGKILL while many runs wait on short timers and events
keep arriving, then restarted: every run finishes, and every one of its sends is recorded
exactly once — nothing lost, nothing repeated."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow
PEOPLE = 120

JOURNEY = """
kind: Journey
key: drip
trigger: {event: Started}
nodes:
  - {id: first, type: message, channel: email, template: first, next: poked}
  - {id: poked, type: wait_for_event, event: Poke, timeout: 2s,
     on_event: answered, on_timeout: silent}
  - {id: answered, type: message, channel: sms, template: answered, next: pause}
  - {id: silent, type: message, channel: push, template: silent, next: pause}
  - {id: pause, type: wait, duration: 1s, next: last}
  - {id: last, type: message, channel: email, template: last}
"""


def query(database_url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def count(database_url: str, sql: str) -> int:
    return int(query(database_url, sql)[0][0])


def post(server: Server, messages: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30) as http:
        for start in range(0, len(messages), 40):
            answer = http.post("/v1/batch", json={"batch": messages[start : start + 40]})
            assert answer.status_code == 200, answer.text


def events(event: str, people: range) -> list[dict[str, Any]]:
    return [{"type": "track", "userId": f"user-{p}", "event": event} for p in people]


def test_kill_9_mid_runs_then_restart_loses_and_repeats_nothing(
    db_url: str, tmp_path: Path
) -> None:
    first = start_server(db_url, tmp_path)
    journey = tmp_path / "drip.yaml"
    journey.write_text(JOURNEY)
    first.cli("apply", "-f", str(journey), "--publish")
    killed_at: tuple[int, int] | None = None
    try:
        post(first, events("Started", range(PEOPLE // 2)))
        post(first, events("Poke", range(0, PEOPLE // 2, 3)))
        post(first, events("Started", range(PEOPLE // 2, PEOPLE)))
        deadline = time.monotonic() + 60
        while True:
            sent = count(db_url, "SELECT count(*) FROM journey_sends")
            waiting = count(db_url, "SELECT count(*) FROM timers")
            if sent >= PEOPLE // 2 and waiting:
                break
            assert time.monotonic() < deadline, first.log()
            time.sleep(0.02)
        first.process.kill()  # SIGKILL: no shutdown, transactions cut off
        first.process.wait()
        killed_at = (sent, waiting)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert killed_at is not None and killed_at[0] < 3 * PEOPLE, "the kill must land mid-runs"

    again = start_server(db_url, tmp_path, keys=first)
    try:
        post(again, events("Poke", range(PEOPLE // 2, PEOPLE, 3)))
        deadline = time.monotonic() + 120
        # Settled: every event through the pipeline (the dead worker's partitions are taken
        # over when its lease lapses), no run waiting, no request pending.
        while (
            count(db_url, "SELECT count(*) FROM events WHERE profile_id IS NULL")
            or count(db_url, "SELECT count(*) FROM runs WHERE status = 'waiting'")
            or count(db_url, "SELECT count(*) FROM outbox WHERE status <> 'done'")
        ):
            assert time.monotonic() < deadline, again.log()
            time.sleep(0.2)
        with again.admin() as admin:
            stats = admin.get("/api/v1/journeys/drip/stats").json()
    finally:
        stop_server(again)

    rows = query(
        db_url,
        "SELECT r.profile_id, s.node_id, s.idempotency_key FROM journey_sends s "
        "JOIN runs r ON r.run_id = s.run_id",
    )
    by_person: dict[str, list[str]] = defaultdict(list)
    for profile, node, _ in rows:
        by_person[profile].append(node)
    assert len(by_person) == PEOPLE
    keys = Counter(key for _, _, key in rows)
    assert all(n == 1 for n in keys.values())
    for nodes in by_person.values():
        assert len(nodes) == 3, nodes
        assert nodes.count("first") == nodes.count("last") == 1
        assert nodes.count("answered") + nodes.count("silent") == 1
    assert count(db_url, "SELECT count(*) FROM runs") == PEOPLE
    assert count(db_url, "SELECT count(*) FROM timers WHERE kind = 'run'") == 0
    assert stats["journey"]["entered"] == PEOPLE
    assert stats["nodes"]["last"]["entered"] == PEOPLE
    assert stats["journey"]["waiting"] == 0
    poked = stats["nodes"]["answered"]["entered"]
    assert poked + stats["nodes"]["silent"]["entered"] == PEOPLE
    assert json.dumps(stats)  # the report stays JSON
