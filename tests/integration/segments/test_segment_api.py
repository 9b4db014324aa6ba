"""Segments through `legato serve` and the CLI: apply, 422 with the node's path, members,
counts, CSV export and static upload, and the profile API's computed traits and segments."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow

DOCUMENTS = """
kind: ComputedTrait
key: lifetime_value
aggregate: sum
event: Order Completed
property: revenue
within: 365d
---
kind: Segment
key: repeat_buyers
name: Repeat buyers
condition:
  all:
    - {event: Order Completed, count: {gte: 2}, within: 30d}
    - {trait: country, in: [ES, MX, FR]}
---
kind: Segment
key: big_spenders
condition: {all: [{segment: repeat_buyers}, {computed_trait: lifetime_value, gte: 100}]}
---
kind: Segment
key: hand_picked
static: true
"""


def _track(server: Server, batch: list[dict[str, Any]]) -> None:
    token = base64.b64encode(f"{server.write_key}:".encode()).decode()
    answer = httpx.post(
        server.url + "/v1/batch",
        json={"batch": batch},
        headers={"Authorization": f"Basic {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _eventually(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_segments_end_to_end(server: Server, tmp_path: Path) -> None:
    file = tmp_path / "segments.yaml"
    file.write_text(DOCUMENTS)
    applied = server.cli("apply", "-f", str(file), "--json")
    # Each backfill draws its progress on stderr (stdout stays JSON).
    for key in ("lifetime_value", "repeat_buyers", "big_spenders", "hand_picked"):
        assert f"backfill {key}" in applied.stderr, applied.stderr
    assert [row["key"] for row in json.loads(applied.stdout)] == [
        "lifetime_value",
        "repeat_buyers",
        "big_spenders",
        "hand_picked",
    ]
    _track(
        server,
        [
            {"type": "identify", "userId": "ana", "traits": {"country": "ES", "email": "a@x.io"}},
            {"type": "identify", "userId": "bob", "traits": {"country": "US", "email": "b@x.io"}},
            *[
                {
                    "type": "track",
                    "userId": u,
                    "event": "Order Completed",
                    "properties": {"revenue": r},
                }
                for u, r in (("ana", 60), ("ana", 45), ("bob", 500), ("bob", 1))
            ],
        ],
    )
    with server.admin() as admin:
        assert _eventually(
            lambda: admin.get("/api/v1/segments/big_spenders/count").json()["count"] == 1
        )
        assert admin.get("/api/v1/segments/repeat_buyers/count").json() == {"count": 1}
        listed = {s["key"]: s["members"] for s in admin.get("/api/v1/segments").json()}
        assert listed == {"big_spenders": 1, "hand_picked": 0, "repeat_buyers": 1}

        members = json.loads(server.cli("segments", "members", "repeat_buyers", "--json").stdout)
        assert [m["user_id"] for m in members["members"]] == ["ana"]
        ana = members["members"][0]["profile_id"]

        shown = json.loads(server.cli("profiles", "get", "--user-id", "ana", "--json").stdout)
        assert shown["computed_traits"] == {"lifetime_value": 105}
        assert shown["segments"] == ["big_spenders", "repeat_buyers"]
        api_view = admin.get(f"/api/v1/profiles/{ana}").json()
        assert api_view["segments"] == shown["segments"]
        assert api_view["computed_traits"] == {"lifetime_value": 105}

        history = admin.get(f"/api/v1/profiles/{ana}/segment-history").json()
        assert sorted((h["segment"], h["entered"]) for h in history) == [
            ("big_spenders", True),
            ("repeat_buyers", True),
        ]

        exported = admin.get("/api/v1/segments/repeat_buyers/export.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        assert exported.text.splitlines()[1].split(",")[:2] == [ana, "ana"]

        # Static segment from a CSV: by email or user id; unknown rows are counted, not fatal.
        upload = admin.post(
            "/api/v1/segments/hand_picked/upload",
            files={"file": ("picked.csv", b"email,user_id\nB@x.io,\n,nobody\n", "text/csv")},
        )
        assert upload.status_code == 200, upload.text
        assert upload.json() == {"members": 1, "matched": 1, "unmatched": 1}
        picked = json.loads(server.cli("segments", "members", "hand_picked", "--json").stdout)
        assert [m["user_id"] for m in picked["members"]] == ["bob"]

        # Bad input: the JSON path of the offending node; unknown references; cycles.
        bad = admin.put(
            "/api/v1/segments/broken",
            json={
                "condition": {
                    "all": [{"trait": "a", "eq": 1}, {"event": "X", "count": {"gte": "two"}}]
                }
            },
        )
        assert bad.status_code == 422
        assert bad.json()["path"].startswith("$.condition.all[1].count")
        unknown = admin.put("/api/v1/segments/broken", json={"condition": {"segment": "nope"}})
        assert unknown.status_code == 422 and "nope" in unknown.json()["message"]
        cyclic = admin.put(
            "/api/v1/segments/repeat_buyers",
            json={"condition": {"segment": "big_spenders"}},
        )
        assert cyclic.status_code == 422 and "cycle" in cyclic.json()["message"]

        preview = admin.post(
            "/api/v1/segments/preview", json={"condition": {"trait": "country", "eq": "US"}}
        )
        assert preview.json() == {"count": 1}
        schema = admin.get("/api/v1/conditions/schema").json()
        assert schema["title"] == "Condition"
        traits = admin.get("/api/v1/computed-traits").json()
        assert [t["key"] for t in traits] == ["lifetime_value"]
        refused = admin.delete("/api/v1/segments/repeat_buyers")
        assert refused.status_code == 409
        assert admin.delete("/api/v1/segments/big_spenders").status_code == 204
        assert admin.get("/api/v1/segments/big_spenders").status_code == 404

    count = server.cli("segments", "count", "repeat_buyers", "--json")
    assert json.loads(count.stdout) == {"key": "repeat_buyers", "count": 1}
