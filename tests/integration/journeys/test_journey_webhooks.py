"""Webhook nodes through the real outbox worker and a real HTTP server on loopback: the body is
rendered, the answer sets traits and data, failures retry until they succeed or the node gives
up — and a loopback or private address is never called unless settings allow it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from legato.channels.outbound import OutboundClient
from legato.runtime.outbox import WebhookWorker
from tests.integration.journeys.conftest import World


@dataclass
class Receiver:
    """A loopback HTTP server answering with the queued (status, body) pairs, then 200."""

    port: int = 0
    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            state.requests.append(
                {"headers": dict(self.headers), "body": self.rfile.read(length).decode()}
            )
            status, body = state.answers.pop(0) if state.answers else (200, {})
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def webhook_journey(url: str) -> dict[str, Any]:
    return {
        "kind": "Journey",
        "key": "j",
        "trigger": {"event": "Lead Created"},
        "nodes": [
            {
                "id": "crm",
                "type": "webhook",
                "url": url,
                "body": '{"email": "{{ profile.traits.email }}", '
                '"source": "{{ trigger.properties.source }}"}',
                "response": {"traits": {"crm_owner": "owner.email"}, "data": {"tier": "tier"}},
                "give_up_after": "1h",
                "on_success": "ok",
                "on_failure": "ko",
            },
            {"id": "ok", "type": "message", "channel": "email", "template": "assigned"},
            {"id": "ko", "type": "message", "channel": "email", "template": "unassigned"},
        ],
    }


ALLOWED = {"allow_private_webhooks": True}


@pytest.mark.parametrize("world", [ALLOWED], indirect=True)
async def test_a_webhook_answer_sets_traits_and_data_after_retries(
    world: World, receiver: Receiver
) -> None:
    receiver.answers = [(503, {}), (200, {"owner": {"email": "rep@crm"}, "tier": "gold"})]
    await world.identify("ann", email="ann@example.com")
    await world.publish(webhook_journey(receiver.url))
    await world.track("ann", "Lead Created", source="webinar")
    await world.settle()
    assert len(receiver.requests) == 1  # 503: retried after a backoff, not at once
    await world.wait("5s")
    assert [t for _, t, _ in await world.sent("j")] == ["assigned"]
    _, second = receiver.requests
    assert json.loads(second["body"]) == {"email": "ann@example.com", "source": "webinar"}
    keys = {r["headers"]["Idempotency-Key"] for r in receiver.requests}
    assert len(keys) == 1 and next(iter(keys)).endswith(":crm:1")
    profile = await world.legato.profiles.lookup(world.workspace_id, "user_id", "ann")
    assert profile.traits["crm_owner"] == "rep@crm"
    (run,) = await world.runs("j")
    assert run["state"]["data"] == {"tier": "gold"}


@pytest.mark.parametrize("world", [ALLOWED], indirect=True)
async def test_a_client_error_takes_on_failure_at_once(world: World, receiver: Receiver) -> None:
    receiver.answers = [(404, {"error": "no such lead"})]
    await world.publish(webhook_journey(receiver.url))
    await world.track("ann", "Lead Created")
    await world.settle()
    assert [t for _, t, _ in await world.sent("j")] == ["unassigned"]
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("world", [ALLOWED], indirect=True)
async def test_a_webhook_that_never_answers_well_gives_up(world: World, receiver: Receiver) -> None:
    receiver.answers = [(500, {})] * 50
    await world.publish(webhook_journey(receiver.url))
    await world.track("ann", "Lead Created")
    await world.wait("2h")
    assert [t for _, t, _ in await world.sent("j")] == ["unassigned"]
    assert 2 <= len(receiver.requests) < 20  # backoff doubles: a handful of calls in an hour


async def test_a_private_address_is_refused_when_settings_do_not_allow_it(
    world: World, receiver: Receiver
) -> None:
    """The URL's name looks public (publishing accepts it) but resolves to loopback."""

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.example.com"
        return ["127.0.0.1"]

    legato = world.legato
    legato.webhooks = WebhookWorker(
        legato.db,
        legato.outbox,
        legato.runs,
        legato.versions,
        lambda: OutboundClient(allow_private=False, resolver=resolver),
        world.clock,
    )
    await world.publish(webhook_journey(f"http://hooks.example.com:{receiver.port}/hook"))
    await world.track("ann", "Lead Created")
    await world.settle()
    assert receiver.requests == []  # never connected
    assert [t for _, t, _ in await world.sent("j")] == ["unassigned"]


async def test_a_literal_private_address_cannot_be_published(
    world: World, receiver: Receiver
) -> None:
    from legato.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        await world.publish(webhook_journey(receiver.url))
    assert caught.value.details["node"] == "crm"
    assert "loopback or private" in caught.value.message
