"""The tracking API over HTTP (in-process ASGI) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import gzip
import random
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from legato.domain.messages import EventRow, RejectedMessage
from legato.store.events import EventLog
from tests.integration.ingest.conftest import Shop


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Bought", "userId": "u1", "messageId": message_id, **fields}


# (name, how to send, expected status, words in the answer's message)
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("malformed JSON", {"content": b'{"batch": [', "auth": "basic"}, 400, "malformed JSON"),
    ("empty body", {"content": b"", "auth": "basic"}, 400, "empty"),
    ("JSON list body", {"content": b"[]", "auth": "basic"}, 400, "JSON object"),
    ("batch not a list", {"json": {"batch": {"a": 1}}, "auth": "basic"}, 400, "batch"),
    ("no write key", {"json": {"batch": []}}, 401, "no write key"),
    ("unknown write key", {"json": {"batch": []}, "auth": "wk_nope"}, 401, "unknown"),
    ("admin key as write key", {"json": {"batch": []}, "auth": "admin"}, 401, "unknown"),
    ("malformed Basic", {"json": {"batch": []}, "auth": "raw:Basic %%%"}, 401, "malformed"),
    (
        "body over the limit",
        {"content": b'{"batch":[' + b" " * 70_000 + b"]}", "auth": "basic"},
        413,
        "limit",
    ),
    (
        "compressed body over the limit",
        {"gzip": random.Random(7).randbytes(600_000), "auth": "basic"},
        413,
        "the compressed body is",
    ),
    ("gzip bomb", {"gzip": b"{" + b" " * 5_000_000 + b"}", "auth": "basic"}, 413, "decompressed"),
    ("not gzip", {"content": b"{}", "encoding": "gzip", "auth": "basic"}, 400, "gzip"),
    ("unknown encoding", {"content": b"{}", "encoding": "br", "auth": "basic"}, 415, "br"),
]


def request_args(shop: Shop, how: dict[str, Any]) -> dict[str, Any]:
    headers: dict[str, str] = {}
    auth = how.get("auth")
    if auth == "basic":
        headers.update(shop.basic)
    elif auth == "admin":
        token = base64.b64encode(f"{shop.admin_key}:".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif isinstance(auth, str) and auth.startswith("raw:"):
        headers["Authorization"] = auth[4:]
    elif auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth}:".encode()).decode()
    args: dict[str, Any] = {"headers": headers}
    if "json" in how:
        args["content"] = orjson.dumps(how["json"])
    if "content" in how:
        args["content"] = how["content"]
    if "gzip" in how:
        args["content"] = gzip.compress(how["gzip"], compresslevel=9)
        headers["Content-Encoding"] = "gzip"
    if "encoding" in how:
        headers["Content-Encoding"] = how["encoding"]
    return args


@pytest.mark.parametrize("name, how, status, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_requests_get_a_clear_4xx(
    shop: Shop, name: str, how: dict[str, Any], status: int, words: str
) -> None:
    answer = await shop.http.post("/v1/batch", **request_args(shop, how))
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert words in body["message"] and body["code"]
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert await shop.message_ids() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-8",
        None,
    ],
)
async def test_json_is_read_whatever_the_content_type(shop: Shop, content_type: str | None) -> None:
    headers = dict(shop.basic)
    if content_type:
        headers["Content-Type"] = content_type
    body = orjson.dumps({"batch": [track("m1")]})
    answer = await shop.http.post("/v1/batch", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"success": True, "rejected": []}
    assert await shop.message_ids() == ["m1"]


@pytest.mark.parametrize("where", ["basic", "body", "query", "basic wins over body"])
async def test_the_write_key_is_found_where_sdks_put_it(shop: Shop, where: str) -> None:
    body: dict[str, Any] = {"batch": [track("m1")]}
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if where == "basic":
        headers = shop.basic
    elif where == "body":
        body["writeKey"] = shop.write_key
    elif where == "query":
        params["writeKey"] = shop.write_key
    else:
        headers = shop.basic
        body["writeKey"] = "wk_somebody_else"
    answer = await shop.http.post(
        "/v1/batch", content=orjson.dumps(body), headers=headers, params=params
    )
    assert answer.status_code == 200, answer.text
    assert await shop.message_ids() == ["m1"]
    stored = await shop.legato.events.get(shop.workspace_id, "m1")
    assert stored is not None and "writeKey" not in stored.payload


ROUTES = [
    ("/v1/identify", {"userId": "u", "traits": {"a": 1}}, "identify"),
    ("/v1/i", {"userId": "u"}, "identify"),
    ("/v1/track", {"userId": "u", "event": "E"}, "track"),
    ("/v1/t", {"anonymousId": "a", "event": "E"}, "track"),
    ("/v1/page", {"userId": "u", "name": "Home"}, "page"),
    ("/v1/p", {"userId": "u"}, "page"),
    ("/v1/screen", {"userId": "u", "name": "Main"}, "screen"),
    ("/v1/s", {"userId": "u"}, "screen"),
    ("/v1/group", {"userId": "u", "groupId": "g"}, "group"),
    ("/v1/g", {"userId": "u", "groupId": "g"}, "group"),
    ("/v1/alias", {"userId": "u", "previousId": "a"}, "alias"),
    ("/v1/a", {"userId": "u", "previousId": "a"}, "alias"),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "E"}]}, "track"),
    ("/v1/b", {"batch": [{"type": "page", "userId": "u"}]}, "page"),
    ("/beacon/v1/batch", {"batch": [{"type": "identify", "anonymousId": "a"}]}, "identify"),
    ("/v1/batch/", {"batch": [{"type": "screen", "userId": "u"}]}, "screen"),
]


@pytest.mark.parametrize("path, body, kind", ROUTES, ids=[r[0] for r in ROUTES])
async def test_every_route_stores_its_type(
    shop: Shop, path: str, body: dict[str, Any], kind: str
) -> None:
    answer = await shop.http.post(path, json=body, params={"writeKey": shop.write_key})
    assert answer.status_code == 200, answer.text
    (message_id,) = await shop.message_ids()
    stored = await shop.legato.events.get(shop.workspace_id, message_id)
    assert stored is not None and stored.type == kind and stored.payload["type"] == kind
    assert stored.payload["receivedAt"].endswith("Z")


async def test_gzip_bodies_are_accepted(shop: Shop) -> None:
    body = gzip.compress(orjson.dumps({"batch": [track("m1"), track("m2")]}))
    headers = {**shop.basic, "Content-Encoding": "gzip"}
    answer = await shop.http.post("/v1/batch", content=body, headers=headers)
    assert answer.status_code == 200
    assert await shop.message_ids() == ["m1", "m2"]


async def test_a_partly_invalid_batch_keeps_the_valid_and_records_the_rest(shop: Shop) -> None:
    batch = [
        track("ok-1"),
        {"type": "track", "userId": "u1", "messageId": "no-event"},
        track("too-big", properties={"blob": "x" * 40_000}),
        "not an object",
        {"type": "identify", "messageId": "nobody"},
        track("ok-2"),
    ]
    answer = await shop.http.post("/v1/batch", json={"batch": batch}, headers=shop.basic)
    assert answer.status_code == 200
    rejected = answer.json()["rejected"]
    assert [(r["index"], r["field"]) for r in rejected] == [
        (1, "event"),
        (2, None),
        (3, None),
        (4, "userId"),
    ]
    assert "the limit is 32768 bytes" in rejected[1]["reason"]
    assert await shop.message_ids() == ["ok-1", "ok-2"]

    listed = await shop.http.get("/api/v1/rejections", headers=shop.admin)
    assert listed.status_code == 200
    kept = listed.json()["rejections"]
    assert sorted((r["index"], r["reason"]) for r in kept) == sorted(
        (r["index"], r["reason"]) for r in rejected
    )
    big = next(r for r in kept if r["index"] == 2)
    assert len(big["payload"]) == 32 * 1024 and '"messageId":"too-big"' in big["payload"]
    assert (await shop.http.get("/api/v1/rejections")).status_code == 401


async def test_an_invalid_single_message_is_400_and_still_recorded(shop: Shop) -> None:
    answer = await shop.http.post("/v1/track", json={"userId": "u1"}, headers=shop.basic)
    assert answer.status_code == 400
    body = answer.json()
    assert body["field"] == "event" and "track needs event" in body["message"]
    assert body["rejected"] == [{"index": 0, "reason": body["message"], "field": "event"}]
    page = await shop.legato.rejections.list(shop.workspace_id)
    assert [item["field"] for item in page.items] == ["event"]


async def test_duplicates_within_and_across_batches_are_stored_once(shop: Shop) -> None:
    first = {"batch": [track("a"), track("b"), track("a")]}
    for _ in range(3):  # an SDK retrying the whole batch
        answer = await shop.http.post("/v1/batch", json=first, headers=shop.basic)
        assert answer.status_code == 200
    again = await shop.http.post("/v1/track", json=track("b", event="Other"), headers=shop.basic)
    assert again.status_code == 200
    assert await shop.message_ids() == ["a", "b"]
    stored = await shop.legato.events.get(shop.workspace_id, "b")
    assert stored is not None and stored.event == "Bought"


async def test_concurrent_requests_are_all_stored(shop: Shop) -> None:
    async def send(n: int) -> int:
        batch = [track(f"r{n}-{i}", userId=f"u{i}") for i in range(20)]
        answer = await shop.http.post("/v1/batch", json={"batch": batch}, headers=shop.basic)
        return answer.status_code

    statuses = await asyncio.gather(*(send(n) for n in range(40)))
    assert statuses == [200] * 40
    assert len(set(await shop.message_ids())) == 800
    assert shop.legato.ingest.writer.commits < 40, "requests shared transactions"


async def test_cors_preflight_and_answers(shop: Shop) -> None:
    origin = "https://shop.example"
    preflight = await shop.http.options(
        "/v1/t",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, anonymousid, sentat, "
            "x-retry-count, rsa-request-id",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "anonymousid", "sentat", "x-retry-count", "rsa-request-id"):
        assert header in allowed
    answer = await shop.http.post(
        "/v1/t", json={"anonymousId": "a", "event": "E"}, headers={**shop.basic, "Origin": origin}
    )
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin
    refused = await shop.http.post("/v1/t", json={}, headers={"Origin": origin})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin


async def test_sent_at_header_corrects_clock_skew(shop: Shop) -> None:
    received = shop.legato.clock.now_ms()
    headers = {**shop.basic, "SentAt": "2020-01-01T00:00:10.000Z"}
    body = {"batch": [track("m1", originalTimestamp="2020-01-01T00:00:00.000Z")]}
    assert (await shop.http.post("/v1/batch", json=body, headers=headers)).status_code == 200
    stored = await shop.legato.events.get(shop.workspace_id, "m1")
    assert stored is not None
    assert abs(stored.timestamp_ms - (stored.received_ms - 10_000)) == 0
    assert stored.received_ms >= received


async def test_browser_sdks_get_their_settings(shop: Shop) -> None:
    settings = await shop.http.get(f"/v1/projects/{shop.write_key}/settings")
    assert settings.status_code == 200
    segment = settings.json()["integrations"]["Segment.io"]
    assert segment == {"apiKey": shop.write_key, "apiHost": "legato.test/v1", "protocol": "http"}
    config = await shop.http.get(
        "/sourceConfig/", params={"p": "npm", "v": "3.0.0", "writeKey": shop.write_key}
    )
    assert config.status_code == 200
    source = config.json()["source"]
    assert source["writeKey"] == shop.write_key and source["destinations"] == []
    assert source["workspaceId"] == shop.workspace_id and source["enabled"] is True
    assert isinstance(source["config"], dict) and source["id"]
    assert (await shop.http.get("/v1/projects/wk_nope/settings")).status_code == 401
    assert (await shop.http.get("/sourceConfig")).status_code == 401
    assert (await shop.http.post("/sourceConfig")).status_code == 405
    assert (await shop.http.get("/v1/batch")).status_code == 405


class StalledLog(EventLog):
    """The real log, held back until the test lets it go (a slow disk, a locked table)."""

    def __init__(self, inner: EventLog) -> None:
        super().__init__(inner.db)
        self.go = asyncio.Event()

    async def append(
        self, rows: Sequence[EventRow], rejected: Sequence[RejectedMessage] = ()
    ) -> None:
        await self.go.wait()
        await super().append(rows, rejected)


async def test_overload_is_503_with_retry_after_and_nothing_lost(shop: Shop) -> None:
    writer = shop.legato.ingest.writer
    stalled = StalledLog(shop.legato.events)
    writer.log = stalled
    writer.max_pending_rows = 30

    async def send(message_id: str) -> Any:
        return await shop.http.post(
            "/v1/batch",
            json={"batch": [track(f"{message_id}-{i}") for i in range(20)]},
            headers=shop.basic,
        )

    first = asyncio.create_task(send("first"))  # taken by the writer, stalled
    await asyncio.sleep(0.05)
    second = asyncio.create_task(send("second"))  # queued: 20 of 30 rows
    await asyncio.sleep(0.05)
    third = await send("third")  # 40 > 30: refused
    assert third.status_code == 503 and third.headers["retry-after"] == "1"
    assert third.json()["code"] == "unavailable"
    stalled.go.set()
    assert [(await t).status_code for t in (first, second)] == [200, 200]
    stored = await shop.message_ids()
    assert len(stored) == 40 and not any(m.startswith("third") for m in stored)
    stalled.close()
