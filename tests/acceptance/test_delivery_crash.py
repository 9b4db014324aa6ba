"""A real `legato serve` killed with SIGKILL while it hands emails to an SMTP server, then
restarted: no email is received twice (counted at the SMTP server). Messages whose outcome the
crash hid become dead letters ("interrupted"), never resent on their own; replaying the ones
that did not arrive completes the set, each exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from tests.conftest import Server, free_port, stop_server
from tests.integration.channels.channel_fakes import MailSink

pytestmark = pytest.mark.slow
API_SENDS = 60
JOURNEY_SENDS = 40


class SlowSink(MailSink):
    """An SMTP server that takes its time to accept each message (sends stay in flight)."""

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


def documents(port: int) -> str:
    return f"""
kind: Channel
key: email
provider: smtp
settings: {{host: 127.0.0.1, port: {port}, security: none, from: shop@example.com, pool_size: 4}}
---
kind: Template
key: receipt
channel: email
category: transactional
subject: "Receipt {{{{ data.n }}}}"
text: Thanks
---
kind: Template
key: welcome
channel: email
subject: Welcome
text: Hello
---
kind: Journey
key: welcome
trigger: {{event: Signed Up}}
nodes:
  - {{id: m, type: message, channel: email, template: welcome, next: done}}
  - {{id: done, type: exit}}
"""


def launch(database_url: str, workdir: Path, env: dict[str, str], keys: Any = None) -> Server:
    """`legato serve` on the database (a new workspace unless `keys` has one)."""
    if keys is None:
        created = subprocess.run(
            [sys.executable, "-m", "legato", "workspace", "create", "shop", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            cwd=workdir,
        )
        body = json.loads(created.stdout)
        keys = (body["workspace_id"], body["write_key"], body["admin_key"])
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "legato", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("legato serve did not start:\n" + log_path.read_text())
        time.sleep(0.1)
    return Server(url, database_url, *keys, process, env, log_path)


def counts(server: Server) -> dict[str, int]:
    with server.admin() as admin:
        return dict(admin.get("/api/v1/messages/counts").json())


def wait_settled(server: Server, total: int, timeout: float = 90) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = counts(server)
        busy = sum(found.get(s, 0) for s in ("queued", "claimed", "sending"))
        if sum(found.values()) >= total and not busy:
            return found
        assert time.monotonic() < deadline, (found, server.log()[-3000:])
        time.sleep(0.2)


def test_kill_9_while_sending_then_restart_sends_no_duplicate(db_url: str, tmp_path: Path) -> None:
    sink = SlowSink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {
        **os.environ,
        "LEGATO_DATABASE_URL": db_url,
        "LEGATO_TRACKING_SECRETS": "crash-test-secret-0123456789",
        "LEGATO_DELIVERY_LEASE_SECONDS": "2",
        "LEGATO_DELIVERY_CONCURRENCY": "8",
    }
    try:
        first = launch(db_url, tmp_path, env)
        try:
            (tmp_path / "docs.yaml").write_text(documents(smtp_port))
            first.cli("apply", "-f", str(tmp_path / "docs.yaml"), "--publish")
            with httpx.Client(base_url=first.url, auth=(first.write_key, ""), timeout=30) as sdk:
                batch = []
                for n in range(JOURNEY_SENDS):
                    user = f"user-{n}"
                    traits = {"email": f"{user}@example.com"}
                    batch.append({"type": "identify", "userId": user, "traits": traits})
                    batch.append({"type": "track", "userId": user, "event": "Signed Up"})
                assert sdk.post("/v1/batch", json={"batch": batch}).status_code == 200
            with first.admin() as admin:
                for n in range(API_SENDS):
                    message = {
                        "template": "receipt",
                        "to": {"email": f"buyer-{n}@example.com"},
                        "data": {"n": n},
                        "idempotency_key": f"order-{n}",
                    }
                    answer = admin.post("/api/v1/messages", json=message)
                    assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 60
            while len(sink.messages) < 15:
                assert time.monotonic() < deadline, first.log()[-3000:]
                time.sleep(0.01)
        finally:
            first.process.kill()  # SIGKILL: emails in flight, outcomes unrecorded
            first.process.wait()
        received_at_kill = len(sink.messages)
        total = API_SENDS + JOURNEY_SENDS
        assert received_at_kill < total, "the crash came too late to test anything"

        keys = (first.workspace_id, first.write_key, first.admin_key)
        second = launch(db_url, tmp_path, env, keys=keys)
        try:
            settled = wait_settled(second, total)
            received = Counter(rcpt for m in sink.messages for rcpt in m.rcpt_tos)
            assert max(received.values()) == 1, received.most_common(3)
            assert settled.get("sent", 0) + settled.get("dead", 0) == total, settled
            with second.admin() as admin:
                dead = admin.get("/api/v1/messages/dead-letters?limit=1000").json()["messages"]
                assert all(d["reason"] == "interrupted" for d in dead)
                lost = [d["id"] for d in dead if d["address"] not in received]
                if lost:
                    replayed = admin.post("/api/v1/messages/replay", json={"ids": lost})
                    assert sorted(replayed.json()["replayed"]) == sorted(lost)
            wait_settled(second, total)
            received = Counter(rcpt for m in sink.messages for rcpt in m.rcpt_tos)
            assert len(received) == total and set(received.values()) == {1}
            # The dead letters that did arrive stay listed, for the record (CLI).
            listed = json.loads(second.cli("messages", "dead-letters", "--json").stdout)
            assert sorted(m["id"] for m in listed["messages"]) == sorted(
                d["id"] for d in dead if d["id"] not in lost
            )
        finally:
            stop_server(second)
    finally:
        controller.stop()
