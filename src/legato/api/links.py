"""Public routes messages lead to, and provider status callbacks.

`/t/c/{token}` records a click and redirects to the link's target (the target is inside the
signed token: no open redirect); `/t/o/{token}.gif` records an open and answers a 1x1 GIF.
Provider callbacks verify who sent them before anything is recorded: `/hooks/twilio/
{workspace}/{channel}` checks `X-Twilio-Signature` against the auth tokens of the channel's
Twilio providers; `/hooks/whatsapp/{workspace}/{channel}` answers Meta's subscription handshake
(GET, the providers' `verify_token`) and checks `X-Hub-Signature-256` against their
`app_secret` (POST); `/hooks/status/{workspace}/{channel}` checks a Standard Webhooks signature
by the channel's `status_secret`. Routes never compose SQL.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse

from legato.api.errors import json_response
from legato.app import Legato
from legato.channels.status import (
    parse_generic,
    parse_twilio,
    parse_whatsapp,
    verify_meta,
    verify_standard_webhook,
    verify_twilio,
)
from legato.errors import InvalidInput, NotFound, Unauthorized

router = APIRouter(tags=["tracking links"])

#: A transparent 1x1 GIF.
PIXEL = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
#: Largest callback body read.
MAX_HOOK_BYTES = 64 * 1024


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


def _who(request: Request) -> dict[str, Any]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:300] or None,
    }


@router.get("/t/c/{token}", include_in_schema=False)
async def click(request: Request, token: str) -> Response:
    """Record a click, then send the reader to the link's target."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_click(token)
    except InvalidInput:
        return Response("This link is not valid.", status_code=404, media_type="text/plain")
    await legato.outcomes.clicked(
        claim.workspace_id, claim.message_id, claim.url, claim.link, **_who(request)
    )
    return RedirectResponse(claim.url, status_code=302, headers={"cache-control": "no-store"})


@router.get("/t/o/{token}", include_in_schema=False)
async def open_pixel(request: Request, token: str) -> Response:
    """Record an open; always answers the pixel (an image error would show in the message)."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_open(token)
    except InvalidInput:
        claim = None
    if claim is not None:
        await legato.outcomes.opened(claim.workspace_id, claim.message_id, **_who(request))
    return Response(PIXEL, media_type="image/gif", headers={"cache-control": "no-store, max-age=0"})


async def _body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_HOOK_BYTES:
        raise InvalidInput("callback body too large", field="body")
    return body


async def _provider_settings(
    legato: Legato, workspace_id: str, channel: str, provider: str, setting: str
) -> list[str]:
    """The values of `setting` across the channel's providers of kind `provider`."""
    config = await legato.delivery_config.snapshot(workspace_id)
    entry = config.channels.get(channel)
    if entry is None:
        raise NotFound(f"no channel {channel!r}", field="channel")
    return [
        str(settings[setting])
        for kind, settings in _providers(entry.document)
        if kind == provider and settings.get(setting)
    ]


@router.post("/hooks/twilio/{workspace_id}/{channel}", include_in_schema=False)
async def twilio_status(request: Request, workspace_id: str, channel: str) -> Response:
    """Twilio's message status callback (set the channel's `status_callback` to this URL)."""
    legato = _legato(request)
    tokens = await _provider_settings(legato, workspace_id, channel, "twilio", "auth_token")
    if not tokens:
        raise Unauthorized("this channel has no Twilio auth token to verify callbacks with")
    params = parse_qsl((await _body(request)).decode("utf-8", "replace"), keep_blank_values=True)
    query = request.url.query
    url = legato.links.base_url + request.url.path + (f"?{query}" if query else "")
    verify_twilio(url, params, request.headers.get("x-twilio-signature"), tokens)
    update = parse_twilio(dict(params))
    if update is not None:
        await legato.outcomes.status(workspace_id, update)
    return Response(status_code=204)


@router.get("/hooks/whatsapp/{workspace_id}/{channel}", include_in_schema=False)
async def whatsapp_handshake(request: Request, workspace_id: str, channel: str) -> Response:
    """Meta's webhook registration: echo `hub.challenge` when `hub.verify_token` is ours."""
    tokens = await _provider_settings(
        _legato(request), workspace_id, channel, "whatsapp", "verify_token"
    )
    query = request.query_params
    if query.get("hub.mode") != "subscribe" or query.get("hub.verify_token") not in tokens:
        return PlainTextResponse("verification failed", status_code=403)
    return PlainTextResponse(query.get("hub.challenge", ""))


@router.post("/hooks/whatsapp/{workspace_id}/{channel}", include_in_schema=False)
async def whatsapp_status(request: Request, workspace_id: str, channel: str) -> Response:
    """The WhatsApp Cloud API's message status webhook (delivered, read, failed)."""
    legato = _legato(request)
    secrets = await _provider_settings(legato, workspace_id, channel, "whatsapp", "app_secret")
    if not secrets:
        raise Unauthorized("this channel has no WhatsApp app_secret to verify webhooks with")
    body = await _body(request)
    verify_meta(body, request.headers.get("x-hub-signature-256"), secrets)
    recorded = 0
    for update in parse_whatsapp(body):
        recorded += await legato.outcomes.status(workspace_id, update) is not None
    return json_response({"recorded": recorded}, 200)


@router.post("/hooks/status/{workspace_id}/{channel}", include_in_schema=False)
async def generic_status(request: Request, workspace_id: str, channel: str) -> Response:
    """A status callback in Legato's generic shape, signed per Standard Webhooks."""
    legato = _legato(request)
    config = await legato.delivery_config.snapshot(workspace_id)
    entry = config.channels.get(channel)
    secret = entry.status_secret if entry is not None else None
    if secret is None:
        raise NotFound(f"channel {channel!r} takes no status callbacks", field="channel")
    body = await _body(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    verify_standard_webhook([secret], headers, body, now_ms=legato.clock.now_ms())
    row = await legato.outcomes.status(workspace_id, parse_generic(body))
    if row is None:
        return json_response({"recorded": False, "reason": "unknown message"}, 202)
    return json_response({"recorded": True, "message_id": row.id}, 200)


def _providers(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """(provider kind, settings) of each provider configuration of a channel document."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(document.get("provider"), str):
        found.append((document["provider"], dict(document.get("settings") or {})))
    for item in document.get("providers") or []:
        if isinstance(item, dict) and isinstance(item.get("provider"), str):
            found.append((item["provider"], dict(item.get("settings") or {})))
    return found
