"""Benchmark: durable ingestion through `POST /v1/batch`, against a bare ASGI baseline.

    python bench/ingest.py                      # SQLite and PostgreSQL (if reachable), 10 s each
    python bench/ingest.py --db sqlite --seconds 20 --connections 32 --batch 20

For each database it starts a real `legato serve --no-workers` (uvicorn, uvloop, httptools: the
pipeline is left out so that only ingestion is measured) and a bare ASGI endpoint that only reads
and parses the same bodies with orjson, served by the same uvicorn settings. A load client runs
as a separate process (its own core): `--connections` keep-alive connections, each sending one
request after the other, `--batch` events per request, every messageId unique. It prints
events/s, requests/s, latency percentiles and the ratio to the bare endpoint measured in the
same run, then checks that the database holds exactly the events answered with 200.

Not part of the test suite: CI never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- the bare baseline: read the body, parse it, answer -----------------------------------------


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The baseline: an ASGI endpoint that only reads and parses the body."""
    import orjson

    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    orjson.loads(b"".join(chunks))
    body = b'{"success":true,"rejected":[]}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(
        bare_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


# --- the load client -----------------------------------------------------------------------------

_EVENT = (
    b'{"type":"%s","event":"Order Completed","userId":"user-%d","anonymousId":"anon-%d",'
    b'"messageId":"%s-%d","timestamp":"2026-01-05T09:00:00.000Z",'
    b'"properties":{"order_id":"o-%d","revenue":42.5,"currency":"EUR","products":'
    b'[{"sku":"SKU-1","price":20.5,"quantity":1},{"sku":"SKU-2","price":22,"quantity":1}]},'
    b'"context":{"library":{"name":"analytics-python","version":"2.3.0"},"ip":"203.0.113.7",'
    b'"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",'
    b'"locale":"en-GB","page":{"path":"/checkout","url":"https://shop.example/checkout"}}}'
)
_TYPES = (b"track", b"track", b"track", b"page", b"identify")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending requests one after the other."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        length = int(head[start + 15 :].split(b"\r\n", 1)[0]) if start >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    run = uuid.uuid4().hex[:8].encode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        f"Authorization: Basic {_basic(args.write_key)}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    counter = 0

    def next_request() -> bytes:
        nonlocal counter
        events = []
        for _ in range(args.batch):
            counter += 1
            user = counter % 10_000
            kind = _TYPES[counter % len(_TYPES)]
            events.append(_EVENT % (kind, user, user, run, counter, counter))
        body = b'{"batch":[' + b",".join(events) + b'],"sentAt":"2026-01-05T09:00:01.000Z"}'
        return head + str(len(body)).encode() + b"\r\n\r\n" + body

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acknowledged = 0
    measuring = False
    stop_at = 0.0

    async def worker() -> None:
        nonlocal acknowledged
        _, conn = await loop.create_connection(_Connection, args.host, args.port)
        try:
            while time.perf_counter() < stop_at:
                data = next_request()
                started = time.perf_counter()
                status = await conn.request(data)
                elapsed = time.perf_counter() - started
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    acknowledged += args.batch
                    if measuring:
                        latencies.append(elapsed)
        finally:
            assert conn.transport is not None
            conn.transport.close()

    # Warm up (connections, key cache, database pages), then measure.
    stop_at = time.perf_counter() + args.warmup
    await asyncio.gather(*(worker() for _ in range(args.connections)))
    measuring = True
    begin = time.perf_counter()
    stop_at = begin + args.seconds
    await asyncio.gather(*(worker() for _ in range(args.connections)))
    duration = time.perf_counter() - begin
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "requests_per_s": len(latencies) / duration,
        "events_per_s": len(latencies) * args.batch / duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0,
        "statuses": statuses,
        "acknowledged_events": acknowledged,
        "body_bytes": len(next_request()) - len(head),
    }


def _basic(key: str) -> str:
    import base64

    return base64.b64encode(f"{key}:".encode()).decode()


def run_client(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(_client(args))
    print(json.dumps(result))


# --- the orchestration -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    args: argparse.Namespace, port: int, write_key: str, server: subprocess.Popen[bytes]
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--client",
        "--port",
        str(port),
        "--write-key",
        write_key,
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
        "--connections",
        str(args.connections),
        "--batch",
        str(args.batch),
    ]
    cpu_before = _cpu_seconds(server.pid)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    cpu = _cpu_seconds(server.pid) - cpu_before
    result: dict[str, Any] = json.loads(done.stdout)
    # Server CPU per event answered: a measure that other load on the machine barely moves.
    result["server_cpu_us_per_event"] = cpu / max(1, result["acknowledged_events"]) * 1e6
    return result


def _count_events(database_url: str) -> int:
    import sqlalchemy as sa

    from legato.store.database import driver_urls

    engine = sa.create_engine(driver_urls(database_url)[1])
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.text("SELECT count(*) FROM events")) or 0)
    finally:
        engine.dispose()


def _pg_database() -> str | None:
    try:
        import psycopg

        name = f"legato_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return None


def _drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bench_legato(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "LEGATO_DATABASE_URL": database_url, "LEGATO_LOG_LEVEL": "warning"}
    legato = [sys.executable, "-m", "legato"]
    created = subprocess.run(
        [*legato, "workspace", "create", "bench", "--json"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    write_key = json.loads(created.stdout)["write_key"]
    port = _free_port()
    server = subprocess.Popen(
        [*legato, "serve", "--no-workers", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, server, "legato serve")
        result = _measure(args, port, write_key, server)
    finally:
        _stop(server)
    result["stored_events"] = _count_events(database_url)
    return result


def _bench_bare(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, server, "bare endpoint")
        return _measure(args, port, "bare", server)
    finally:
        _stop(server)


def _row(name: str, result: dict[str, Any], bare: dict[str, Any] | None) -> str:
    ratio = f"{result['events_per_s'] / bare['events_per_s']:.2f}" if bare else "1.00"
    errors = {k: v for k, v in result["statuses"].items() if str(k) != "200"}
    return (
        f"| {name} | {result['events_per_s']:,.0f} | {result['requests_per_s']:,.0f} "
        f"| {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {ratio} "
        f"| {result['server_cpu_us_per_event']:.1f} | {errors or '-'} |"
    )


def orchestrate(args: argparse.Namespace) -> None:
    targets = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the run; "
        f"{args.connections} connections, {args.batch} events/request, {args.seconds:g} s "
        f"measured after {args.warmup:g} s warm-up",
        flush=True,
    )
    bare = _bench_bare(args)
    print(f"request body: {bare['body_bytes']} bytes", flush=True)
    rows = [_row("bare ASGI endpoint (parse only)", bare, None)]
    checks = []
    with tempfile.TemporaryDirectory(prefix="legato-bench-") as tmp:
        for target in targets:
            if target == "sqlite":
                url: str | None = f"sqlite:///{Path(tmp) / 'bench.db'}"
            else:
                url = _pg_database()
                if url is None:
                    continue
            try:
                result = _bench_legato(args, url, Path(tmp))
            finally:
                if target == "postgres" and url is not None:
                    _drop_pg(url)
            rows.append(_row(f"legato /v1/batch, {target}", result, bare))
            durable = result["stored_events"] == result["acknowledged_events"]
            checks.append(
                f"{target}: {result['acknowledged_events']} events answered 200, "
                f"{result['stored_events']} in the events table -> "
                + ("OK" if durable else "MISMATCH")
            )
    print()
    print(
        "| endpoint | events/s | requests/s | p50 ms | p99 ms | ratio to bare "
        "| server CPU µs/event | non-200 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(row)
    print()
    for check in checks:
        print(check)
    print(f"load average {os.getloadavg()[0]:.1f} after the run (other processes share the cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=20)
    # Internal roles of this script, run as subprocesses.
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--write-key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        run_client(args)
    elif args.bare_server:
        serve_bare(args.port)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
