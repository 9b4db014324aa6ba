"""Fixtures every tier shares: databases (SQLite and PostgreSQL) and a running `legato serve`.

PostgreSQL tests get a database of their own (others may run tests at the same time) and must
run when CI=true; elsewhere they skip only if the server is unreachable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _admin_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def make_pg_database() -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    if not _pg_reachable():
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"legato_t_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    """Drop a database made by `make_pg_database`, closing what still uses it."""
    name = url.rsplit("/", 1)[1]
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's own directory."""
    return f"sqlite:///{tmp_path / 'legato.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legato.db'}"
        return
    url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `legato serve` subprocess with one workspace."""

    url: str
    database_url: str
    workspace_id: str
    write_key: str
    admin_key: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `legato` CLI against the same database."""
        return subprocess.run(
            [sys.executable, "-m", "legato", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def admin(self) -> httpx.Client:
        """An HTTP client for the admin API."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=30
        )

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")


def start_server(
    database_url: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    *,
    keys: Server | None = None,
    workers: bool = True,
) -> Server:
    """Start `legato serve` on a free port and wait until it answers: on a new workspace, or on
    the one `keys` names (a restart); `workers=False` leaves the background workers off."""
    env = {**os.environ, "LEGATO_DATABASE_URL": database_url, **(extra_env or {})}
    if keys is None:
        name = f"ws-{uuid.uuid4().hex[:6]}"
        created = subprocess.run(
            [sys.executable, "-m", "legato", "workspace", "create", name, "--json"],
            env=env, capture_output=True, text=True, check=True, timeout=120, cwd=workdir,
        )  # fmt: skip
        body = json.loads(created.stdout)
        ids = (body["workspace_id"], body["write_key"], body["admin_key"])
    else:
        ids = (keys.workspace_id, keys.write_key, keys.admin_key)
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if not workers:
        args.append("--no-workers")
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "legato", *args],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    # Generous: parallel test processes share two cores, and importing the app can take 10 s.
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError("legato serve did not start:\n" + log_path.read_text())
        time.sleep(0.1)
    return Server(url, database_url, *ids, process, env, log_path)


def stop_server(server: Server) -> None:
    """Stop the server gracefully (SIGTERM), killing it if it hangs."""
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    """`legato serve` on SQLite and on PostgreSQL."""
    srv = start_server(db_url, tmp_path)
    try:
        yield srv
    finally:
        stop_server(srv)
