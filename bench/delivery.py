"""Benchmark: sends/s through the whole delivery path — claim, gate (consent, suppression,
frequency caps, quiet hours), Liquid render, Standard Webhooks signing, HTTP provider call,
outcome rows and `Message Sent` events — against a bare loop posting the same payloads to the
same sink in the same run. SMTP to a local aiosmtpd server is measured the same way.

    python bench/delivery.py                          # SQLite and PostgreSQL (if reachable)
    python bench/delivery.py --db sqlite --messages 20000 --people 5000 --concurrency 64

The HTTP sink (uvicorn, uvloop, httptools, answering 200) and the SMTP sink (aiosmtpd) run in
their own processes. Legato runs its real `DeliveryWorker` on the real database with a webhook
channel pointed at the sink; the baseline posts each rendered payload with the same
`OutboundClient` and concurrency, signing nothing and writing nothing. Both run in one uvloop
event loop, as `legato serve` runs its workers (`--loop asyncio` for the standard one). The
sinks' counts are checked against the messages sent. Not part of the test suite: CI never
fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get("LEGATO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_767_603_600_000
#: The issue's target for the whole gate + render + provider path.
TARGET_PER_SECOND = 2_000
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789ab").decode()

HTTP_SINK = textwrap.dedent(
    """
    import sys, uvicorn
    count = 0
    async def app(scope, receive, send):
        global count
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["method"] == "POST":
            count += 1
            body = b'{"ok":true}'
        else:
            body = str(count).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                loop="uvloop", http="httptools", access_log=False)
    """
)

SMTP_SINK = textwrap.dedent(
    """
    import sys, time
    from aiosmtpd.controller import Controller
    class Sink:
        count = 0
        async def handle_DATA(self, server, session, envelope):
            Sink.count += 1
            with open(sys.argv[2], "w") as out:
                out.write(str(Sink.count))
            return "250 OK"
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    while True:
        time.sleep(3600)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def documents(sink_url: str, smtp_port: int) -> list[dict[str, Any]]:
    return [
        {
            "kind": "Channel",
            "key": "hooks",
            "provider": "webhook",
            "settings": {"url": f"{sink_url}/hook", "secrets": [SECRET]},
        },
        {
            "kind": "Channel",
            "key": "email",
            "provider": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from": "shop@example.com",
                "pool_size": 8,
                "max_messages_per_connection": 100_000,
            },
        },
        {"kind": "SubscriptionTopic", "key": "deals", "channel": "webhook"},
        {
            "kind": "Template",
            "key": "cart_hook",
            "channel": "hooks",
            "topic": "deals",
            "event_type": "cart.abandoned",
            "payload": {
                "to": "{{ profile.traits.first_name | capitalize }} <{{ profile.traits.email }}>",
                "cart": "{{ trigger.properties.cart_id }}",
                "total": "{{ trigger.properties.total | times: 1.2 | round: 2 }}",
                "items": "{% for i in trigger.properties.items %}{{ i.sku }} {% endfor %}",
                "plan": "{{ profile.traits.plan | default: 'free' }}",
            },
        },
        {
            "kind": "Template",
            "key": "receipt",
            "channel": "email",
            "category": "transactional",
            "subject": "Your order {{ trigger.properties.cart_id }}",
            "html": (
                "<html><body><p>Hello {{ profile.traits.first_name }},</p>"
                "<p>Total: {{ trigger.properties.total }}</p>"
                '<p><a href="https://shop.example/orders">Your orders</a></p></body></html>'
            ),
        },
        {
            "kind": "DeliveryPolicy",
            "frequency_caps": [{"limit": 1000, "window": "1d"}],
            "quiet_hours": [{"start": "23:00", "end": "23:30", "channels": ["sms"]}],
        },
    ]


async def seed(legato: Any, workspace_id: str, people: int) -> list[str]:
    """People with traits, written straight into the profile tables (no pipeline)."""
    from legato.ids import new_id
    from legato.store.tables import identities, profiles

    ids = [new_id() for _ in range(people)]
    rows = [
        {
            "id": pid,
            "workspace_id": workspace_id,
            "traits": {
                "first_name": f"person{n}",
                "email": f"person{n}@example.com",
                "plan": "pro" if n % 3 else "free",
                "timezone": "Europe/Paris",
            },
            "trait_times": {},
            "first_seen_ms": T0,
            "last_seen_ms": T0,
            "event_count": 1,
            "created_ms": T0,
            "updated_ms": T0,
        }
        for n, pid in enumerate(ids)
    ]
    async with legato.db.transaction() as conn:
        for start in range(0, people, 2000):
            await conn.execute(profiles.insert(), rows[start : start + 2000])
            await conn.execute(
                identities.insert(),
                [
                    {
                        "workspace_id": workspace_id,
                        "kind": "user_id",
                        "value": f"user-{start + i}",
                        "profile_id": pid,
                        "created_ms": T0,
                    }
                    for i, pid in enumerate(ids[start : start + 2000])
                ],
            )
    return ids


async def enqueue(legato: Any, workspace_id: str, people: list[str], n: int, **kw: Any) -> None:
    from legato.ids import new_id
    from legato.store.delivery import PRIORITY_BULK, NewDelivery

    run = uuid.uuid4().hex[:8]
    items = [
        NewDelivery(
            workspace_id=workspace_id,
            key=f"{run}:{i}",
            source="journey",
            priority=PRIORITY_BULK,
            profile_id=people[i % len(people)],
            channel=kw["channel"],
            template=kw["template"],
            topic=None,
            request={
                "trigger": {
                    "name": "Checkout Started",
                    "timestamp_ms": T0,
                    "properties": {
                        "cart_id": f"c{i}",
                        "total": 42.5,
                        "items": [{"sku": "a1"}, {"sku": "b2"}],
                    },
                },
                "data": {},
            },
        )
        for i in range(n)
    ]
    async with legato.db.transaction() as conn:
        for start in range(0, n, 2000):
            part = items[start : start + 2000]
            await legato.deliveries.enqueue(conn, part, [new_id() for _ in part], T0)


async def bare_http(client: Any, url: str, payloads: list[bytes], concurrency: int) -> float:
    """The baseline: post each payload with the same client and concurrency; nothing else."""
    queue = iter(payloads)

    async def lane() -> None:
        for body in queue:
            response = await client.request(
                "POST", url, content=body, headers={"content-type": "application/json"}
            )
            assert response.status == 200

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bare_smtp(port: int, count: int, pool: int) -> float:
    """The SMTP baseline: the same number of messages over `pool` reused connections."""
    from email.message import EmailMessage

    import aiosmtplib

    def mail(i: int) -> EmailMessage:
        message = EmailMessage()
        message["From"] = "shop@example.com"
        message["To"] = f"person{i}@example.com"
        message["Subject"] = f"Your order c{i}"
        message.set_content("Hello,\nTotal: 42.5")
        message.add_alternative("<p>Hello,</p><p>Total: 42.5</p>", subtype="html")
        return message

    queue = iter(range(count))

    async def lane() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await smtp.connect()
        for i in queue:
            await smtp.send_message(mail(i))
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(pool)))
    return time.perf_counter() - started


async def sink_count(sink_url: str) -> int:
    """How many POSTs the HTTP sink has answered."""
    import httpx

    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{sink_url}/count")).text)


def payloads_of(legato: Any, ws: str, people: list[str], rows: Any, n: int) -> list[bytes]:
    """The payloads Legato renders for the first `n` messages (for the bare loop)."""
    import orjson

    from legato.runtime.composer import render_context

    template = legato.delivery_config._configs[ws].templates["cart_hook"]
    renderer = legato.delivery.composer.renderer
    out = []
    for i in range(n):
        request = {
            "trigger": {
                "name": "Checkout Started",
                "timestamp_ms": T0,
                "properties": {
                    "cart_id": f"c{i}",
                    "total": 42.5,
                    "items": [{"sku": "a1"}, {"sku": "b2"}],
                },
            }
        }
        who = rows[people[i % len(people)]]
        context = render_context(
            message_id=str(i), channel="hooks", template="cart_hook", who=who, request=request
        )
        out.append(orjson.dumps(renderer.render(template.prepared, context).content.payload))
    return out


async def run_one(
    url: str, args: argparse.Namespace, sink_url: str, smtp: tuple[int, Path]
) -> None:
    from legato.app import Legato
    from legato.channels.outbound import OutboundClient
    from legato.runtime.channels import DeliveryConfig
    from legato.settings import Settings

    smtp_port, smtp_count = smtp
    legato = Legato(
        Settings(
            database_url=url,
            run_workers=False,
            allow_private_webhooks=True,
            tracking_secrets=("bench-tracking-secret-0123456789",),
            public_base_url="https://legato.example",
            delivery_batch_size=args.batch,
            delivery_concurrency=args.concurrency,
        )
    )
    if args.lanes:
        # Batches worked at once by the one worker (DeliveryOptions.lanes; not a setting).
        legato.delivery.options = dataclasses.replace(legato.delivery.options, lanes=args.lanes)
    await asyncio.to_thread(legato.migrate)
    created = await legato.workspaces.create(f"bench-{uuid.uuid4().hex[:6]}", T0)
    ws = created.workspace.id
    config: DeliveryConfig = legato.delivery_config
    for document in documents(sink_url, smtp_port):
        await config.apply(ws, document)
    people = await seed(legato, ws, args.people)

    # Warm-up (first connections, parsed-template cache), not measured.
    await enqueue(legato, ws, people, 200, channel="hooks", template="cart_hook")
    await legato.delivery.drain()

    await enqueue(legato, ws, people, args.messages, channel="hooks", template="cart_hook")
    before = await sink_count(sink_url)
    started, cpu = time.perf_counter(), time.process_time()
    await legato.delivery.drain()
    legato_s = time.perf_counter() - started
    legato_cpu = time.process_time() - cpu
    received = await sink_count(sink_url) - before
    counts = await legato.deliveries.counts(ws)
    assert received == args.messages, (received, counts)

    # The same payloads, rendered by Legato beforehand, posted by a bare loop.
    await config.snapshot(ws)
    async with legato.db.connect() as conn:
        rows = await legato.recipients.recipients(conn, ws, people)
    payloads = payloads_of(legato, ws, people, rows, args.messages)
    async with OutboundClient(allow_private=True) as client:
        before = await sink_count(sink_url)
        cpu = time.process_time()
        bare_s = await bare_http(client, f"{sink_url}/hook", payloads, args.concurrency)
        bare_cpu = time.process_time() - cpu
        assert await sink_count(sink_url) - before == args.messages

    n = args.messages
    print(
        f"  webhook: legato {n / legato_s:,.0f} sends/s ({legato_s:.2f}s for {n}), "
        f"bare loop {n / bare_s:,.0f} posts/s ({bare_s:.2f}s): "
        f"ratio {bare_s / legato_s:.2f} of the bare loop"
    )
    print(
        f"           CPU of this process per message: legato {legato_cpu / n * 1e6:,.0f} µs, "
        f"bare loop {bare_cpu / n * 1e6:,.0f} µs (one core: {n / legato_cpu:,.0f} sends/s)"
    )
    verdict = "met" if n / legato_s >= TARGET_PER_SECOND else "NOT met"
    print(f"           target >= {TARGET_PER_SECOND:,} sends/s: {verdict} in this run")

    # SMTP: transactional receipts through the same path, then the bare aiosmtplib loop.
    m = args.smtp_messages
    await enqueue(legato, ws, people, m, channel="email", template="receipt")
    before = int(smtp_count.read_text() or 0)
    started, cpu = time.perf_counter(), time.process_time()
    await legato.delivery.drain()
    smtp_s = time.perf_counter() - started
    smtp_cpu = time.process_time() - cpu
    assert int(smtp_count.read_text()) - before == m
    before = int(smtp_count.read_text())
    cpu = time.process_time()
    bare_smtp_s = await bare_smtp(smtp_port, m, 8)
    bare_smtp_cpu = time.process_time() - cpu
    assert int(smtp_count.read_text()) - before == m
    print(
        f"  smtp:    legato {m / smtp_s:,.0f} emails/s ({smtp_s:.2f}s for {m}), "
        f"bare aiosmtplib {m / bare_smtp_s:,.0f}/s: ratio {bare_smtp_s / smtp_s:.2f}"
    )
    print(
        f"           CPU per email: legato {smtp_cpu / m * 1e6:,.0f} µs, "
        f"bare {bare_smtp_cpu / m * 1e6:,.0f} µs"
    )
    await legato.stop()


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--smtp-messages", type=int, default=2_000)
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--lanes", type=int, default=0, help="worker lanes (0: its default)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    http_port, smtp_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="legato-bench-"))
    smtp_count = folder / "smtp-count"
    smtp_count.write_text("0")
    sinks = [
        subprocess.Popen([sys.executable, "-c", HTTP_SINK, str(http_port)]),
        subprocess.Popen([sys.executable, "-c", SMTP_SINK, str(smtp_port), str(smtp_count)]),
    ]
    try:
        wait_port(http_port)
        wait_port(smtp_port)
        sink_url = f"http://127.0.0.1:{http_port}"
        targets = ["sqlite", "postgres"] if args.db == "both" else [args.db]
        run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
        if args.loop == "uvloop":
            import uvloop

            run = uvloop.run
        for target in targets:
            if target == "postgres" and not pg_reachable():
                print("postgres: not reachable, skipped")
                continue
            print(
                f"{target}: {args.messages} webhook sends to {args.people} people, "
                f"batch {args.batch}, concurrency {args.concurrency}, {args.loop} loop"
            )
            if target == "sqlite":
                url = f"sqlite:///{folder / 'bench.db'}"
                run(run_one(url, args, sink_url, (smtp_port, smtp_count)))
                continue
            import psycopg

            name = f"legato_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
                run(run_one(url, args, sink_url, (smtp_port, smtp_count)))
            finally:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        for sink in sinks:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
