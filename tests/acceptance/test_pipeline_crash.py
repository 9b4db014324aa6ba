"""A real `legato serve` killed with SIGKILL in the middle of the pipeline, then restarted:
every event ends up counted exactly once on its person's profile."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.slow
PEOPLE = 400
BATCH = 100


def messages() -> list[dict[str, Any]]:
    """Each person browses anonymously, signs in (identify with both ids), then acts known."""
    out: list[dict[str, Any]] = []
    for p in range(PEOPLE):
        anon, user = f"anon-{p}", f"user-{p}"
        n = 0

        def add(body: dict[str, Any], person: int = p) -> None:
            nonlocal n
            n += 1
            out.append({**body, "messageId": f"msg-{person}-{n}"})

        for i in range(p % 7 + 3):
            add({"type": "track", "anonymousId": anon, "event": "Viewed", "properties": {"i": i}})
        add({"type": "page", "anonymousId": anon, "name": "Login"})
        add(
            {
                "type": "identify",
                "userId": user,
                "anonymousId": anon,
                "traits": {"email": f"{user}@example.com", "n": p},
            }
        )
        for _ in range(p % 5 + 2):
            add({"type": "track", "userId": user, "event": "Bought"})
    return out


def expected_counts(sent: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for body in sent:
        person = body["messageId"].split("-")[1]
        counts[f"user-{person}"] += 1
    return counts


def attributed(database_url: str) -> int:
    """Events the pipeline has applied (they carry a profile id)."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM events WHERE profile_id IS NOT NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_kill_9_mid_pipeline_then_restart_counts_every_event_once(
    db_url: str, tmp_path: Path
) -> None:
    sent = messages()
    # Ingest with the pipeline off, so that a large backlog is waiting for it.
    first = start_server(db_url, tmp_path, workers=False)
    try:
        with httpx.Client(base_url=first.url, auth=(first.write_key, ""), timeout=30) as http:
            for start in range(0, len(sent), BATCH):
                answer = http.post("/v1/batch", json={"batch": sent[start : start + BATCH]})
                assert answer.status_code == 200, answer.text
            # An SDK retrying a whole batch: stored once.
            assert http.post("/v1/batch", json={"batch": sent[:BATCH]}).status_code == 200
    finally:
        stop_server(first)
    assert attributed(db_url) == 0

    busy = start_server(db_url, tmp_path, keys=first)
    try:
        deadline = time.monotonic() + 60
        while (done := attributed(db_url)) < 200:
            assert time.monotonic() < deadline, busy.log()
            time.sleep(0.005)
        busy.process.kill()  # SIGKILL: no shutdown, no lease given back
        busy.process.wait()
    finally:
        if busy.process.poll() is None:
            busy.process.kill()
    assert done < len(sent), "the kill should land in the middle of the backlog"

    again = start_server(db_url, tmp_path, keys=first)
    try:
        deadline = time.monotonic() + 90
        while attributed(db_url) < len(sent):
            assert time.monotonic() < deadline, again.log()
            time.sleep(0.2)
        with again.admin() as admin:
            counts: dict[str, int] = {}
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = admin.get("/api/v1/profiles", params=params).json()
                for profile in page["profiles"]:
                    users = [i["value"] for i in profile["identities"] if i["kind"] == "user_id"]
                    assert len(users) == 1, profile
                    counts[users[0]] = profile["event_count"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        assert counts == dict(expected_counts(sent))
        shown = again.cli("profiles", "get", "--user-id", "user-3", "--json")
        body = json.loads(shown.stdout)
        assert body["event_count"] == expected_counts(sent)["user-3"]
        assert {(i["kind"], i["value"]) for i in body["identities"]} == {
            ("anonymous_id", "anon-3"),
            ("user_id", "user-3"),
            ("email", "user-3@example.com"),
        }
        assert body["traits"] == {"email": "user-3@example.com", "n": 3}
    finally:
        stop_server(again)
