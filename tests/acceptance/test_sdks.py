"""Real, unmodified SDKs against a real `legato serve`, on SQLite and on PostgreSQL.

segment-analytics-python (gzip on), rudder-sdk-python (gzip by default), and from npm
`@segment/analytics-node` and `@rudderstack/rudder-sdk-node` each tell one person's story: a
page viewed anonymously on a phone, identify on a laptop (anonymousId + userId + email), a
track, and an alias of the phone's anonymousId to the userId. Between SDK and server sits a
proxy that lets the server store the first batch and then answers the SDK 503, as a load
balancer timing out would: the SDK retries the whole batch and the server must keep each
event exactly once. Then the profile must hold all four events and every identifier.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from legato.store.database import driver_urls
from tests.conftest import Server, drop_pg_database, make_pg_database, start_server, stop_server

pytestmark = pytest.mark.slow
NODE_DIR = Path(__file__).parent / "node"
HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


@dataclass
class FlakyProxy:
    """Forwards to `upstream`; answers 503 to the first `failures` batches after forwarding."""

    upstream: str
    failures: int = 1
    seen: list[tuple[str, int, int]] = field(default_factory=list)  # path, upstream, answered
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        proxy = self
        client = httpx.Client(base_url=self.upstream, timeout=30)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = client.post(self.path, content=body, headers=headers)
                status, content = answer.status_code, answer.content
                with lock:
                    if proxy.failures > 0 and "batch" in self.path and status == 200:
                        proxy.failures -= 1
                        status, content = 503, b'{"message":"injected by the test proxy"}'
                    proxy.seen.append((self.path, answer.status_code, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._client = client
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@dataclass(frozen=True)
class Ids:
    anonymous_id: str
    phone_anonymous_id: str
    user_id: str
    email: str

    @classmethod
    def fresh(cls) -> Ids:
        run = uuid.uuid4().hex[:10]
        return cls(f"anon-{run}", f"phone-{run}", f"user-{run}", f"{run}@example.com")


def send_segment_python(url: str, write_key: str, ids: Ids) -> list[str]:
    from segment.analytics import Client

    errors: list[str] = []
    client = Client(
        write_key,
        host=url,
        gzip=True,
        max_retries=5,
        upload_interval=0.1,
        on_error=lambda error, _batch: errors.append(str(error)),
    )
    send_python(client, ids)
    return errors


def send_rudder_python(url: str, write_key: str, ids: Ids) -> list[str]:
    from rudderstack.analytics.client import Client

    errors: list[str] = []
    client = Client(
        write_key,
        host=url,
        max_retries=5,
        on_error=lambda error, _batch: errors.append(str(error)),
    )
    assert client.gzip, "rudder-sdk-python gzips by default"
    send_python(client, ids)
    return errors


def send_python(client: Any, ids: Ids) -> None:
    client.page(
        anonymous_id=ids.phone_anonymous_id, name="Pricing", properties={"path": "/pricing"}
    )
    client.identify(ids.user_id, {"email": ids.email, "name": "Ada"}, anonymous_id=ids.anonymous_id)
    client.track(ids.user_id, "Order Completed", {"revenue": 42.5, "currency": "EUR"})
    client.alias(ids.phone_anonymous_id, ids.user_id)
    client.flush()
    client.shutdown()


def node_sender(sdk: str) -> Callable[[str, str, Ids], list[str]]:
    def send(url: str, write_key: str, ids: Ids) -> list[str]:
        if shutil.which("node") is None or not (NODE_DIR / "node_modules").is_dir():
            pytest.fail("Node SDKs are not installed: run `npm ci` in tests/acceptance/node")
        run = ids.user_id.removeprefix("user-")
        done = subprocess.run(
            ["node", "send.mjs", sdk, url, write_key, run],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert (report["userId"], report["anonymousId"]) == (ids.user_id, ids.anonymous_id)
        errors: list[str] = report["failures"]
        return errors

    return send


SDKS: dict[str, Callable[[str, str, Ids], list[str]]] = {
    "segment-analytics-python": send_segment_python,
    "rudder-sdk-python": send_rudder_python,
    "@segment/analytics-node": node_sender("segment"),
    "@rudderstack/rudder-sdk-node": node_sender("rudder"),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def legato_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One `legato serve` per backend for all the SDKs (each SDK uses its own ids)."""
    workdir = tmp_path_factory.mktemp(f"sdks-{request.param}")
    url = f"sqlite:///{workdir / 'legato.db'}" if request.param == "sqlite" else make_pg_database()
    try:
        server = start_server(url, workdir)
        try:
            yield server
        finally:
            stop_server(server)
    finally:
        if request.param == "postgres":
            drop_pg_database(url)


def stored_events(server: Server, ids: Ids) -> list[tuple[str, str]]:
    """(type, messageId) of the run's events, straight from the events table."""
    engine = sa.create_engine(driver_urls(server.database_url)[1])
    people = [ids.anonymous_id, ids.phone_anonymous_id, ids.user_id]
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT type, message_id FROM events WHERE workspace_id = :ws AND "
                    "(user_id IN (:a, :u, :n) OR anonymous_id IN (:a, :u, :n)) ORDER BY seq"
                ),
                {"ws": server.workspace_id, "a": people[0], "u": people[1], "n": people[2]},
            )
            return [(r.type, r.message_id) for r in rows]
    finally:
        engine.dispose()


def wait_for_profile(server: Server, ids: Ids, events: int) -> dict[str, Any]:
    """The person's profile once the pipeline has applied `events` events to it."""
    deadline = time.monotonic() + 60
    profile: dict[str, Any] = {}
    with server.admin() as admin:
        while time.monotonic() < deadline:
            answer = admin.get("/api/v1/profiles/lookup", params={"user_id": ids.user_id})
            if answer.status_code == 200:
                profile = answer.json()
                if profile["event_count"] >= events:
                    return profile
            time.sleep(0.2)
    raise AssertionError(f"profile not complete after 60 s: {profile}")


@pytest.mark.parametrize("sdk", list(SDKS))
def test_sdk_events_are_stored_once_and_unified(legato_server: Server, sdk: str) -> None:
    ids = Ids.fresh()
    with FlakyProxy(legato_server.url, failures=1) as proxy:
        errors = SDKS[sdk](proxy.url, legato_server.write_key, ids)
    assert errors == [], f"{sdk} reported failures: {errors}"
    batches = [s for s in proxy.seen if "batch" in s[0]]
    assert batches[0][1:] == (200, 503), "the first batch was stored, then answered 503"
    assert len(batches) >= 2, f"{sdk} did not retry: {proxy.seen}"

    stored = stored_events(legato_server, ids)
    assert sorted(t for t, _ in stored) == ["alias", "identify", "page", "track"], stored
    assert len({m for _, m in stored}) == 4, "no duplicates after the retry"

    profile = wait_for_profile(legato_server, ids, events=4)
    assert profile["event_count"] == 4
    identities = {(i["kind"], i["value"]) for i in profile["identities"]}
    assert {
        ("anonymous_id", ids.anonymous_id),
        ("anonymous_id", ids.phone_anonymous_id),
        ("user_id", ids.user_id),
        ("email", ids.email),
    } <= identities
    assert profile["traits"]["name"] == "Ada"

    shown = legato_server.cli("profiles", "get", "--email", ids.email.upper(), "--json")
    assert json.loads(shown.stdout)["id"] == profile["id"]
