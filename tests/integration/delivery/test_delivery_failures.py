"""Provider failures: retries with exponential backoff, dead letters visible and re-playable
through the API, permanent errors recorded (invalid numbers suppressed, a STOP recorded as an
unsubscribe, an SMTP hard bounce suppressed), and failover between providers."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply
from tests.integration.delivery.conftest import Smtp, World

SMS = """
kind: Channel
key: sms
providers:
  - {{name: primary, provider: twilio, settings: {{account_sid: AC1, auth_token: t,
      from: "+14155550100", base_url: "{base}/primary"}}}}
  - {{name: backup, provider: twilio, settings: {{account_sid: AC2, auth_token: t,
      from: "+14155550100", base_url: "{base}/backup"}}}}
---
kind: Template
key: hello
channel: sms
body: Hello from the shop
---
kind: Journey
key: hello
trigger: {{event: Signed Up}}
nodes:
  - {{id: sms, type: message, channel: sms, template: hello, next: done}}
  - {{id: done, type: exit}}
"""

OK = json_reply(201, {"sid": "SM1", "status": "queued"})


def twilio_error(status: int, code: int) -> Reply:
    return json_reply(status, {"code": code, "message": f"error {code}", "status": status})


def scripted(primary: list[Reply], backup: list[Reply] | None = None) -> Callable[..., Reply]:
    """Answers of each provider in turn; the backup refuses unless told otherwise."""
    answers = {"primary": list(primary), "backup": list(backup or [])}

    def handle(request: Recorded) -> Reply:
        queue = answers[request.path.split("/")[1]]
        return queue.pop(0) if queue else twilio_error(500, 20500)

    return handle


async def start(world: World, vendor: VendorServer) -> str:
    await world.apply(SMS.format(base=vendor.base_url), publish=True)
    await world.identify("ann", phone="+14155550123")
    await world.settle()
    profile = await world.profile_of("ann")
    await world.legato.consent.change(
        world.workspace_id, profile, channel="sms", status="subscribed", source="test"
    )
    await world.track("ann", "Signed Up")
    await world.settle()
    return profile


async def test_retryable_errors_back_off_then_succeed(world: World, vendor: VendorServer) -> None:
    vendor.handler = scripted([twilio_error(503, 20503), twilio_error(429, 20429), OK])
    await start(world, vendor)
    (row,) = await world.deliveries()
    assert (row["status"], row["reason"], row["attempts"]) == ("queued", "retryable", 1)
    first_retry = row["next_attempt_ms"] - world.clock.now_ms()
    assert 30_000 <= first_retry <= 36_000
    await world.wait("10m")
    (row,) = await world.deliveries()
    assert (row["status"], row["attempts"], row["provider"]) == ("sent", 3, "primary")
    paths = [r.path.split("/")[1] for r in vendor.requests]
    assert paths == ["primary", "backup", "primary", "backup", "primary"]


async def test_failover_sends_through_the_next_provider(world: World, vendor: VendorServer) -> None:
    vendor.handler = scripted([twilio_error(500, 20500)], [OK])
    await start(world, vendor)
    (row,) = await world.deliveries()
    assert (row["status"], row["provider"], row["attempts"]) == ("sent", "backup", 1)
    (sent,) = await world.timeline("Message Sent")
    assert sent["failed_over"] == ["primary"]


async def test_dead_letters_are_listed_and_replayed(world: World, vendor: VendorServer) -> None:
    vendor.handler = scripted([])
    await start(world, vendor)
    await world.wait("12h")
    (row,) = await world.deliveries()
    assert (row["status"], row["reason"], row["attempts"]) == ("dead", "retries_exhausted", 8)
    assert [e["reason"] for e in await world.timeline("Message Failed")] == ["retries_exhausted"]
    async with world.admin() as admin:
        listed = (await admin.get("/api/v1/messages/dead-letters")).json()["messages"]
        assert [m["id"] for m in listed] == [row["id"]]
        assert "every provider failed" in listed[0]["detail"]
        vendor.handler = scripted([OK])
        replayed = await admin.post(f"/api/v1/messages/{row['id']}/replay")
        assert replayed.json() == {"replayed": [row["id"]]}
        again = await admin.post(f"/api/v1/messages/{row['id']}/replay")
        assert again.status_code == 422  # queued now: only failed or dead messages replay
    await world.settle()
    (row,) = await world.deliveries()
    assert (row["status"], row["attempts"]) == ("sent", 1)


async def test_invalid_number_is_suppressed(world: World, vendor: VendorServer) -> None:
    vendor.handler = scripted([twilio_error(400, 21211)])
    await start(world, vendor)
    (row,) = await world.deliveries()
    assert (row["status"], row["reason"]) == ("failed", "invalid_recipient")
    async with world.admin() as admin:
        failures = (await admin.get("/api/v1/messages/failures")).json()["messages"]
        assert [m["id"] for m in failures] == [row["id"]]
        listed = (await admin.get("/api/v1/suppressions?channel=sms")).json()["suppressions"]
        assert [(s["address"], s["reason"]) for s in listed] == [("+14155550123", "invalid")]
    # The journey runs once per person: the next attempt goes through the API.
    async with world.admin() as admin:
        await admin.post("/api/v1/messages", json={"template": "hello", "to": {"user_id": "ann"}})
    await world.settle()
    assert (await world.deliveries())[-1]["reason"] == "suppressed"
    assert len(vendor.requests) == 1


async def test_stop_reported_by_the_provider_unsubscribes(
    world: World, vendor: VendorServer
) -> None:
    vendor.handler = scripted([twilio_error(400, 21610)])
    profile = await start(world, vendor)
    (row,) = await world.deliveries()
    assert (row["status"], row["reason"]) == ("failed", "unsubscribed")
    state = await world.legato.consent.state(world.workspace_id, profile)
    assert state.status("sms") is not None and state.status("sms").value == "unsubscribed"
    subscribed, change = await world.timeline("Subscription Changed")
    assert subscribed["status"] == "subscribed"
    assert (change["status"], change["source"], change["message_id"]) == (
        "unsubscribed",
        "provider",
        row["id"],
    )


async def test_smtp_hard_bounce_suppresses_the_address(world: World, smtp: Smtp) -> None:
    smtp.sink.refuse["gone@example.com"] = "550 5.1.1 no such user"
    await world.apply(
        f"""
kind: Channel
key: email
provider: smtp
settings: {{host: 127.0.0.1, port: {smtp.port}, security: none, from: shop@example.com}}
---
kind: Template
key: receipt
channel: email
category: transactional
subject: Receipt
text: Thanks
"""
    )
    async with world.admin() as admin:
        for _ in range(2):
            sent = await admin.post(
                "/api/v1/messages",
                json={"template": "receipt", "to": {"email": "gone@example.com"}},
            )
            assert sent.status_code == 202
            await world.settle()
    rows = await world.deliveries()
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("bounced", "invalid_recipient"),
        ("skipped", "suppressed"),
    ]
    suppressed = await world.legato.consent_store.list_suppressions(world.workspace_id)
    assert [(s["address"], s["reason"]) for s in suppressed] == [
        ("gone@example.com", "hard_bounce")
    ]
