"""Per-provider rate limits through the delivery worker, on the real clock: a webhook channel
limited to 10 sends a second (burst 1) spaces its calls across several claimed batches — the
token bucket lives with the provider, not with a batch — and everything still arrives once."""

from __future__ import annotations

import base64
import time
from typing import Any

from legato.app import Legato
from legato.ids import new_id
from legato.settings import Settings
from legato.store.delivery import PRIORITY_TRANSACTIONAL, NewDelivery
from tests.integration.channels.channel_fakes import VendorServer, json_reply
from tests.integration.delivery.conftest import BASE_URL, SECRET

HOOK_SECRET = "whsec_" + base64.b64encode(b"rate-limit-test-secret-0123456789").decode()


async def queue(legato: Legato, workspace_id: str, count: int) -> None:
    items = [
        NewDelivery(
            workspace_id=workspace_id,
            key=f"order-{n}",
            source="api",
            priority=PRIORITY_TRANSACTIONAL,
            profile_id=None,
            channel="hooks",
            template="order_hook",
            topic=None,
            request={"data": {"n": n}},
        )
        for n in range(count)
    ]
    now = legato.clock.now_ms()
    async with legato.db.transaction() as conn:
        await legato.deliveries.enqueue(conn, items, [new_id() for _ in items], now)


async def test_a_rate_limited_provider_spaces_its_sends_across_batches(
    db_url: str, vendor: VendorServer
) -> None:
    vendor.handler = lambda request: json_reply(200, {"ok": True})
    # Real time: the limit is in sends a second. Batches of 2, so 6 messages take 3 claims.
    legato = Legato(
        Settings(
            database_url=db_url,
            run_workers=False,
            allow_private_webhooks=True,
            tracking_secrets=(SECRET,),
            public_base_url=BASE_URL,
            delivery_batch_size=2,
        )
    )
    legato.migrate()
    try:
        created = await legato.workspaces.create("shop", legato.clock.now_ms())
        workspace_id = created.workspace.id
        documents: list[dict[str, Any]] = [
            {
                "kind": "Channel",
                "key": "hooks",
                "provider": "webhook",
                "settings": {"url": f"{vendor.base_url}/orders", "secrets": [HOOK_SECRET]},
                "rate_per_second": 10,
                "burst": 1,
            },
            {
                "kind": "Template",
                "key": "order_hook",
                "channel": "hooks",
                "category": "transactional",
                "payload": {"n": "{{ data.n }}"},
            },
        ]
        for document in documents:
            await legato.delivery_config.apply(workspace_id, document)
        await queue(legato, workspace_id, 6)

        started = time.monotonic()
        assert await legato.delivery.drain() == 6
        elapsed = time.monotonic() - started

        # 6 sends at 10/s from one token: 5 waits of 100 ms. Had each batch of 2 started with
        # a full bucket, 3 waits would have sufficed.
        assert elapsed >= 0.45, elapsed
        assert sorted(int(r.json()["n"]) for r in vendor.requests) == list(range(6))
        counts = await legato.deliveries.counts(workspace_id)
        assert counts.get("sent") == 6, counts
    finally:
        await legato.stop()
