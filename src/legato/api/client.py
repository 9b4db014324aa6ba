"""The client API that apps and web pages call for their user, authenticated with the
workspace's write key (Basic-auth username, or `?writeKey=` where headers cannot be set) and the
user's id (`userId`, else `anonymousId`).

- Web push: `GET /v1/push/vapid-public-key` (the `applicationServerKey` browsers subscribe
  with), `POST`/`DELETE /v1/push/subscriptions`; mobile push: `POST`/`DELETE /v1/push/tokens`.
- In-app inbox: `GET /v1/inbox` (newest first, with the unread count), `POST /v1/inbox/{id}/read`
  and `/dismiss`, and `GET /v1/inbox/stream`, server-sent events delivering new messages live.
- Web personalisation: `GET /v1/placements/{placement}`, the content decided for the user.

Browsers call these from other origins, so answers carry CORS headers and preflights are
answered. Routes never compose SQL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from legato.api.errors import json_response
from legato.app import Legato
from legato.channels.webpush import WebPushSettings, public_key
from legato.domain.delivery import validate_address
from legato.errors import InvalidInput, NotFound, Unauthorized
from legato.store.devices import ClientIdentity
from legato.store.workspaces import KeyInfo

router = APIRouter(tags=["client"])

_ALLOWED_HEADERS = "authorization, content-type"


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


async def write_key(request: Request) -> KeyInfo:
    """The write key of the call: Basic-auth username, else `?writeKey=`."""
    presented: str | None = None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            presented = base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("the Basic authorization header is malformed") from None
    presented = presented or request.query_params.get("writeKey")
    if not presented:
        raise Unauthorized("send the write key as the Basic-auth username or ?writeKey=")
    info = await _legato(request).keys.resolve(presented)
    if info is None or info.kind != "write":
        raise Unauthorized("unknown or revoked write key")
    return info


WriteKey = Annotated[KeyInfo, Depends(write_key)]


def _identity(user_id: str | None, anonymous_id: str | None) -> ClientIdentity:
    for kind, value in (("user_id", user_id), ("anonymous_id", anonymous_id)):
        if value is not None:
            text = value.strip()
            if not text or len(text) > 200:
                raise InvalidInput(f"{kind} has 1 to 200 characters", field=kind)
            return ClientIdentity(kind, text)
    raise InvalidInput("give userId (or anonymousId)", field="userId")


def _cors(request: Request, response: Response) -> None:
    origin = request.headers.get("origin")
    if origin:
        response.headers["access-control-allow-origin"] = origin
        response.headers["access-control-allow-credentials"] = "true"
        response.headers["vary"] = "Origin"


def _json(request: Request, body: Any, status: int = 200) -> Response:
    response = json_response(body, status)
    _cors(request, response)
    return response


@router.options("/v1/push/{rest:path}", include_in_schema=False)
@router.options("/v1/inbox", include_in_schema=False)
@router.options("/v1/inbox/{rest:path}", include_in_schema=False)
@router.options("/v1/placements/{rest:path}", include_in_schema=False)
async def preflight(request: Request) -> Response:
    """CORS preflight of the client routes."""
    response = Response(status_code=204)
    _cors(request, response)
    response.headers["access-control-allow-methods"] = "GET, POST, DELETE, OPTIONS"
    response.headers["access-control-allow-headers"] = _ALLOWED_HEADERS
    response.headers["access-control-max-age"] = "86400"
    return response


# -- push devices -------------------------------------------------------------------------------


@router.get("/v1/push/vapid-public-key")
async def vapid_public_key(request: Request, key: WriteKey, channel: str = "webpush") -> Response:
    """The VAPID public key browsers pass as `applicationServerKey` when subscribing."""
    config = await _legato(request).delivery_config.snapshot(key.workspace_id)
    entry = config.channels.get(channel)
    if entry is None or entry.kind != "webpush":
        raise NotFound(f"no web push channel {channel!r}", field="channel")
    document = entry.document
    settings = document.get("settings") or (document.get("providers") or [{}])[0].get(
        "settings", {}
    )
    found = public_key(WebPushSettings.model_validate(settings))
    return _json(request, {"channel": channel, "publicKey": found})


class PushSubscription(BaseModel):
    """A browser's PushSubscription (as `subscription.toJSON()` gives it) for a user."""

    userId: str | None = None
    anonymousId: str | None = None
    subscription: dict[str, Any]


@router.post("/v1/push/subscriptions", status_code=201)
async def add_subscription(request: Request, body: PushSubscription, key: WriteKey) -> Response:
    """Register a browser push subscription for the user."""
    who = _identity(body.userId, body.anonymousId)
    try:
        validate_address("webpush", orjson.dumps(body.subscription).decode())
    except InvalidInput as exc:
        raise InvalidInput(exc.message, path="$.subscription") from exc
    subscription = {
        "endpoint": body.subscription["endpoint"],
        "keys": {
            "p256dh": body.subscription["keys"]["p256dh"],
            "auth": body.subscription["keys"]["auth"],
        },
    }
    legato = _legato(request)
    await legato.devices.add_webpush(key.workspace_id, who, subscription, legato.clock.now_ms())
    return _json(request, {"registered": True}, 201)


class Unsubscription(BaseModel):
    """The endpoint of a browser push subscription to forget."""

    endpoint: str = Field(min_length=1, max_length=2048)


@router.delete("/v1/push/subscriptions")
async def remove_subscription(request: Request, body: Unsubscription, key: WriteKey) -> Response:
    """Forget a browser push subscription (the user turned notifications off)."""
    removed = await _legato(request).devices.remove_webpush(key.workspace_id, body.endpoint)
    return _json(request, {"removed": removed})


class PushToken(BaseModel):
    """A mobile app's FCM registration token for a user."""

    userId: str | None = None
    anonymousId: str | None = None
    token: str = Field(min_length=8, max_length=512)
    platform: Literal["android", "ios", "web"] = "android"


@router.post("/v1/push/tokens", status_code=201)
async def add_token(request: Request, body: PushToken, key: WriteKey) -> Response:
    """Register a mobile push token for the user."""
    who = _identity(body.userId, body.anonymousId)
    legato = _legato(request)
    await legato.devices.add_token(
        key.workspace_id, who, body.token, body.platform, legato.clock.now_ms()
    )
    return _json(request, {"registered": True}, 201)


@router.delete("/v1/push/tokens/{token}")
async def remove_token(request: Request, token: str, key: WriteKey) -> Response:
    """Forget a mobile push token."""
    removed = await _legato(request).devices.remove_token(key.workspace_id, token)
    return _json(request, {"removed": removed})


# -- in-app inbox -------------------------------------------------------------------------------

UserId = Annotated[str | None, Query(alias="userId")]
AnonymousId = Annotated[str | None, Query(alias="anonymousId")]


@router.get("/v1/inbox")
async def inbox(
    request: Request,
    key: WriteKey,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: str | None = None,
    unread: bool = False,
) -> Response:
    """The user's inbox, newest first, with the unread count; `next` pages on (`before`)."""
    found = await _legato(request).inbox.messages(
        key.workspace_id,
        _identity(user_id, anonymous_id),
        limit=limit,
        before=before,
        unread_only=unread,
    )
    return _json(request, found)


@router.post("/v1/inbox/{message_id}/{action}")
async def inbox_action(
    request: Request,
    message_id: str,
    action: Literal["read", "dismiss"],
    key: WriteKey,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
) -> Response:
    """Mark a message read (recorded as its open) or dismiss it."""
    legato = _legato(request)
    who = _identity(user_id, anonymous_id)
    what = "read" if action == "read" else "dismissed"
    changed = await legato.inbox.mark(key.workspace_id, who, message_id, what)
    if changed and action == "read":
        await legato.outcomes.opened(key.workspace_id, message_id, source="inbox")
    return _json(request, {"id": message_id, action: True, "changed": changed})


@router.get("/v1/inbox/stream")
async def inbox_stream(
    request: Request,
    key: WriteKey,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
    after: str | None = Query(default=None, description="Last message id the client has"),
) -> StreamingResponse:
    """Server-sent events: each new inbox message as `event: message`, keep-alive comments
    in between. `Last-Event-ID` (sent by EventSource when it reconnects) resumes."""
    legato = _legato(request)
    who = _identity(user_id, anonymous_id)
    resume = request.headers.get("last-event-id") or after
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            if await request.is_disconnected():
                stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def events() -> AsyncIterator[bytes]:
        watcher = asyncio.create_task(watch())
        try:
            yield b"retry: 3000\n\n"
            async for message in legato.inbox.stream(
                key.workspace_id, who, after=resume, stop=stop
            ):
                if message is None:
                    yield b": keep-alive\n\n"
                    continue
                data = orjson.dumps(message.public())
                yield b"id: " + message.id.encode() + b"\nevent: message\ndata: " + data + b"\n\n"
        finally:
            stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    response = StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
    _cors(request, response)
    return response


# -- web personalisation ------------------------------------------------------------------------


@router.get("/v1/placements/{placement}")
async def placement(
    request: Request,
    placement: str,
    key: WriteKey,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
) -> Response:
    """The content decided for the user at a placement (`content` null when there is none);
    serving it counts as the message's open."""
    legato = _legato(request)
    found = await legato.inbox.placement(
        key.workspace_id, _identity(user_id, anonymous_id), placement
    )
    if found is not None:
        await legato.outcomes.opened(key.workspace_id, found.id, source="placement")
    return _json(
        request, {"placement": placement, "content": None if found is None else found.public()}
    )
