"""Ingestion against a real `legato serve`: durability under kill -9, a gzip bomb refused in
bounded memory, and rejected messages an operator can list with the CLI."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from legato.store.database import driver_urls
from tests.conftest import Server

pytestmark = pytest.mark.slow


def auth(server: Server) -> dict[str, str]:
    token = base64.b64encode(f"{server.write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def stored_ids(server: Server) -> set[str]:
    engine = sa.create_engine(driver_urls(server.database_url)[1])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT message_id FROM events"))
            return {r.message_id for r in rows}
    finally:
        engine.dispose()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def test_every_event_answered_200_survives_kill_9(server: Server) -> None:
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=auth(server), timeout=10) as client:
            n = 0
            while not stop.is_set():
                ids = [f"w{worker}-{n}-{i}" for i in range(20)]
                n += 1
                batch = [
                    {"type": "track", "event": "E", "userId": f"u{i}", "messageId": m}
                    for i, m in enumerate(ids)
                ]
                try:
                    answer = client.post("/v1/batch", json={"batch": batch})
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 200:
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)  # in the middle of the traffic
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 2000, "the server answered too few requests to mean anything"
    missing = set(acknowledged) - stored_ids(server)
    assert not missing, f"{len(missing)} events answered 200 were lost, e.g. {sorted(missing)[:3]}"


def test_gzip_bomb_is_refused_in_bounded_memory_and_rejections_are_listed(
    server: Server,
) -> None:
    # 300 MB of spaces inside a JSON object, as 300 gzip members of 1 MB each (a gzip body
    # may hold several): about 300 KB on the wire, under the compressed cap.
    megabyte = gzip.compress(b" " * (1024 * 1024), compresslevel=9)
    bomb = gzip.compress(b'{"batch":[') + megabyte * 300 + gzip.compress(b"]}")
    assert len(bomb) < 500 * 1024
    headers = {**auth(server), "Content-Encoding": "gzip"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        warm = client.post("/v1/batch", json={"batch": []}, headers=auth(server))
        assert warm.status_code == 200
        before = peak_rss_kb(server.process.pid)
        refused = client.post("/v1/batch", content=bomb, headers=headers)
        assert refused.status_code == 413, refused.text
        assert "decompressed body is over the limit" in refused.json()["message"]
        grown_mb = (peak_rss_kb(server.process.pid) - before) / 1024
        assert grown_mb < 40, f"the server's peak memory grew by {grown_mb:.0f} MB"

        batch = [
            {"type": "track", "event": "Kept", "userId": "u1", "messageId": "kept"},
            {"type": "track", "userId": "u1", "messageId": "no-event"},
            {"type": "identify", "traits": {"email": "x@example.com"}},
        ]
        answer = client.post("/v1/batch", json={"batch": batch}, headers=auth(server))
        assert answer.status_code == 200
        assert [r["index"] for r in answer.json()["rejected"]] == [1, 2]
    assert "kept" in stored_ids(server)

    listed = server.cli("rejections", "list", "--json")
    rejections = json.loads(listed.stdout)["rejections"]
    assert [(r["index"], r["field"]) for r in rejections] == [(2, "userId"), (1, "event")]
    assert "track needs event" in rejections[1]["reason"]
    assert '"messageId":"no-event"' in rejections[1]["payload"]
