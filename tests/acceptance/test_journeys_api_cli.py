"""Journeys through a real `legato serve`: the admin API and the CLI, on SQLite and PostgreSQL.

A journey is written with `legato apply`, refused with a 422 naming the node when broken,
published, fed real events through the tracking API, reported on (stats, per node), simulated
on the workspace's history, and moved through its lifecycle.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow

JOURNEY = """
kind: Journey
key: welcome
name: Welcome
trigger: {event: Signed Up}
nodes:
  - {id: hello, type: message, channel: email, template: welcome, next: wait}
  - {id: wait, type: wait_for_event, event: Profile Completed, timeout: 1d,
     on_event: thanks, on_timeout: nudge}
  - {id: thanks, type: message, channel: email, template: thanks}
  - {id: nudge, type: message, channel: sms, template: nudge}
"""

API_JOURNEY = {
    "kind": "Journey",
    "key": "quote",
    "trigger": {"api": True},
    "entry": {"key": "properties.quote_id"},
    "nodes": [{"id": "send", "type": "message", "channel": "email", "template": "quote"}],
}


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_journeys_through_the_api_and_the_cli(server: Server, tmp_path: Path) -> None:
    admin = server.admin()
    track = httpx.Client(base_url=server.url, auth=(server.write_key, ""), timeout=30)

    # A broken document is a 422 naming the node and the reason.
    broken = {**API_JOURNEY, "nodes": [{"id": "send", "type": "message", "channel": "email"}]}
    answer = admin.put("/api/v1/journeys/quote", json=broken)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["node"] == "send"
    assert body["path"] == "$.nodes[0].template"
    assert "field required: template" in body["message"]
    dangling = {**API_JOURNEY, "nodes": [{**API_JOURNEY["nodes"][0], "next": "gone"}]}
    answer = admin.put("/api/v1/journeys/quote", json=dangling)
    assert answer.status_code == 422
    assert answer.json()["node"] == "send"
    assert "'gone' is not a node" in answer.json()["message"]
    wrong_key = admin.put("/api/v1/journeys/other", json=API_JOURNEY)
    assert wrong_key.status_code == 422

    # The CLI applies a file of documents: all valid or none.
    good = tmp_path / "journeys.yaml"
    good.write_text(JOURNEY + "---\n" + json.dumps(API_JOURNEY) + "\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(JOURNEY.replace("key: welcome", "key: other") + "---\nkind: Journey\nkey: x\n")
    refused = server.cli("apply", "-f", str(bad), check=False)
    assert refused.returncode == 2
    assert "document 1 (Journey 'x')" in refused.stderr
    applied = server.cli("apply", "-f", str(good), "--publish", "--json")
    outcomes = {row["key"]: row["outcome"] for row in json.loads(applied.stdout)}
    assert outcomes == {"welcome": "created, published v1", "quote": "created, published v1"}
    listed = admin.get("/api/v1/journeys").json()["journeys"]
    assert {(j["key"], j["status"], j["version"]) for j in listed} == {
        ("welcome", "published", 1),
        ("quote", "published", 1),
    }
    assert "other" not in {j["key"] for j in listed}

    # Real events flow through the pipeline into runs and recorded sends.
    for user in ("ann", "bob", "cy"):
        assert (
            track.post("/v1/track", json={"userId": user, "event": "Signed Up"}).status_code == 200
        )
    track.post("/v1/track", json={"userId": "ann", "event": "Profile Completed"})

    def welcome_stats() -> Any:
        stats = admin.get("/api/v1/journeys/welcome/stats").json()
        return stats if stats["nodes"]["thanks"]["entered"] == 1 else None

    stats = wait_for(welcome_stats)
    assert stats["journey"]["entered"] == 3
    assert stats["nodes"]["hello"] == {"entered": 3, "exited": 0, "converted": 0, "waiting": 0}
    assert stats["nodes"]["wait"]["waiting"] == 2
    cli_stats = json.loads(server.cli("journeys", "stats", "welcome", "--json").stdout)
    assert cli_stats["nodes"]["wait"]["waiting"] == 2

    # API-triggered entry: the entry rules apply (one run per quote).
    for quote, entered in (("q1", True), ("q1", False), ("q2", True)):
        answer = admin.post(
            "/api/v1/journeys/quote/trigger",
            json={"user_id": "bob", "properties": {"quote_id": quote}},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["entered"] is entered
    assert (
        admin.post("/api/v1/journeys/welcome/trigger", json={"user_id": "bob"}).status_code == 409
    )
    assert (
        admin.post("/api/v1/journeys/quote/trigger", json={"user_id": "nobody"}).status_code == 404
    )

    # Lifecycle through the API and the CLI.
    assert admin.post("/api/v1/journeys/welcome/pause").json()["status"] == "paused"
    assert admin.post("/api/v1/journeys/welcome/pause").status_code == 409
    resumed = json.loads(server.cli("journeys", "resume", "welcome", "--json").stdout)
    assert resumed["status"] == "published"
    v2 = JOURNEY.replace("template: nudge", "template: nudge_v2")
    (tmp_path / "v2.yaml").write_text(v2)
    server.cli("apply", "-f", str(tmp_path / "v2.yaml"))
    assert admin.get("/api/v1/journeys/welcome").json()["version"] == 1  # a draft only
    published = json.loads(server.cli("journeys", "publish", "welcome", "--json").stdout)
    assert (published["version"], published["created"]) == (2, True)
    again = admin.post("/api/v1/journeys/welcome/publish").json()
    assert (again["version"], again["created"]) == (2, False)  # nothing changed: no v3
    paused = json.loads(server.cli("journeys", "pause", "welcome", "--json").stdout)
    assert paused["status"] == "paused"
    refused = server.cli("journeys", "pause", "welcome", check=False)
    assert refused.returncode != 0 and "paused" in refused.stderr, refused
    assert "Traceback" not in refused.stderr
    assert json.loads(server.cli("journeys", "resume", "welcome", "--json").stdout)["version"] == 2
    for args in (("journeys", "stats", "nope"), ("journeys", "publish", "nope")):
        missing = server.cli(*args, check=False)
        assert missing.returncode != 0 and "nope" in missing.stderr, missing
        assert "Traceback" not in missing.stderr
    got = admin.get("/api/v1/journeys/welcome").json()
    assert [v["version"] for v in got["versions"]] == [1, 2]
    assert "nudge_v2" in json.dumps(got["draft"])

    # The schema, and a simulation on the workspace's own history (sends nothing).
    schema = admin.get("/api/v1/journeys/schema").json()
    assert schema["$schema"].endswith("2020-12/schema")
    simulated = admin.post("/api/v1/journeys/welcome/simulate", json={"since": "1d"}).json()
    assert simulated["entered"] == 3
    assert simulated["nodes"]["thanks"]["people"] == 1
    events = [
        {"userId": "zed", "event": "Signed Up", "timestamp": "2026-01-05T09:00:00Z"},
    ]
    offline = admin.post(
        "/api/v1/journeys/welcome/simulate", json={"events": events, "until": "2d"}
    ).json()
    assert offline["messages"] == {"email": {"2026-01-05": 1}, "sms": {"2026-01-06": 1}}
    history = tmp_path / "events.jsonl"
    history.write_text("\n".join(json.dumps(e) for e in events))
    printed = server.cli(
        "simulate", "-f", str(tmp_path / "v2.yaml"), "--events", str(history), "--until", "2d"
    ).stdout
    assert "messages per channel per day" in printed and "2026-01-06" in printed
    as_json = json.loads(
        server.cli(
            "simulate", "-f", str(good.with_name("v2.yaml")), "--since", "1d", "--json"
        ).stdout
    )
    assert as_json["entered"] == 3

    broken_file = tmp_path / "broken.yaml"
    broken_file.write_text(
        JOURNEY.replace("next: thanks", "next: gone").replace("on_event: thanks", "on_event: gone")
    )
    refused = server.cli("simulate", "-f", str(broken_file), "--since", "1d", check=False)
    assert refused.returncode != 0 and "'gone' is not a node" in refused.stderr, refused
    assert "Traceback" not in refused.stderr

    archived = json.loads(server.cli("journeys", "archive", "welcome", "--json").stdout)
    assert archived["status"] == "archived"
    assert admin.post("/api/v1/journeys/quote/archive").json()["status"] == "archived"
    assert admin.post("/api/v1/journeys/welcome/resume").status_code == 409
    listed = json.loads(server.cli("journeys", "list", "--json").stdout)
    assert {j["key"]: j["status"] for j in listed}["welcome"] == "archived"
    sends = wait_for(lambda: _recorded(server) >= 5 or None)
    assert sends
    admin.close()
    track.close()


def _recorded(server: Server) -> int:
    import sqlalchemy as sa

    url = server.database_url.replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM journey_sends")).scalar_one())
    finally:
        engine.dispose()
