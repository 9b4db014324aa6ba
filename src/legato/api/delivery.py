"""Admin API of delivery: channels, templates (with previews), subscription topics, the
delivery policy, messages (the transactional send API, the list of deliveries, failures, dead
letters and replay) and the suppression list.

Template syntax errors answer 422 with `path`, `line` and `column`. Routes translate HTTP into
calls on the services of the composition root; they never compose SQL.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from legato.api.auth import Admin, Viewer
from legato.api.errors import json_response
from legato.app import Legato
from legato.errors import InvalidInput
from legato.runtime.channels import DOCUMENT_KINDS
from legato.store.delivery import STATUSES

router = APIRouter(prefix="/api/v1", tags=["delivery"])

#: URL segment → (document kind in `DeliveryConfig`, the `kind:` value of its documents).
DOCUMENT_ROUTES = {
    "channels": ("channel", "Channel"),
    "templates": ("template", "Template"),
    "topics": ("topic", "SubscriptionTopic"),
}

Document = Annotated[dict[str, Any], Body(description="The document, as `legato apply` takes it")]


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


# -- documents ---------------------------------------------------------------------------------


def _document_routes(segment: str, kind: str, kind_name: str) -> None:
    """GET (list, one), PUT and DELETE routes of one document collection."""

    async def list_documents(request: Request, key: Viewer) -> dict[str, Any]:
        found = await _legato(request).delivery_config.documents(kind, key.workspace_id)
        return {segment: found}

    async def get_document(request: Request, item: str, key: Viewer) -> dict[str, Any]:
        return await _legato(request).delivery_config.document(kind, key.workspace_id, item)

    async def put_document(
        request: Request, item: str, document: Document, key: Admin
    ) -> dict[str, Any]:
        body = {"kind": kind_name, **document, "key": document.get("key", item)}
        if body["key"] != item:
            raise InvalidInput(f"the document's key {body['key']!r} is not {item!r}", path="key")
        if DOCUMENT_KINDS.get(str(body["kind"])) != kind:
            raise InvalidInput(f"this collection holds {kind_name} documents", path="kind")
        return await _legato(request).delivery_config.apply(key.workspace_id, body)

    async def delete_document(request: Request, item: str, key: Admin) -> None:
        await _legato(request).delivery_config.delete(kind, key.workspace_id, item)

    what = kind_name
    router.add_api_route(
        f"/{segment}", list_documents, methods=["GET"], summary=f"List {what} documents"
    )
    router.add_api_route(
        f"/{segment}/{{item}}", get_document, methods=["GET"], summary=f"Get one {what}"
    )
    router.add_api_route(
        f"/{segment}/{{item}}",
        put_document,
        methods=["PUT"],
        summary=f"Create or replace a {what} (422 names the field; Liquid: line and column)",
    )
    router.add_api_route(
        f"/{segment}/{{item}}",
        delete_document,
        methods=["DELETE"],
        status_code=204,
        summary=f"Delete a {what}",
    )


for _segment, (_kind_key, _kind_name) in DOCUMENT_ROUTES.items():
    _document_routes(_segment, _kind_key, _kind_name)


@router.get("/delivery-policy")
async def get_policy(request: Request, key: Viewer) -> dict[str, Any]:
    """The workspace's delivery policy (caps, quiet hours, channel consent modes)."""
    return await _legato(request).delivery_config.document("policy", key.workspace_id, "")


@router.put("/delivery-policy")
async def put_policy(request: Request, document: Document, key: Admin) -> dict[str, Any]:
    """Replace the workspace's delivery policy."""
    body = {**document, "kind": "DeliveryPolicy"}
    return await _legato(request).delivery_config.apply(key.workspace_id, body)


class RenderingInput(BaseModel):
    """What a preview renders with, besides the person."""

    data: dict[str, Any] = Field(default_factory=dict, description="Journey or API data")
    event: dict[str, Any] = Field(
        default_factory=dict, description="The trigger event: {name, properties, timestamp_ms}"
    )
    locale: str | None = Field(default=None, description="Overrides the profile's locale")


class PreviewRequest(RenderingInput):
    """Whom to render a saved template for, and with what."""

    to: dict[str, str] = Field(description="One of profile_id, user_id, email, phone")


class DraftPreviewRequest(RenderingInput):
    """An unsaved template document, and whom to render it for (nobody: only its syntax)."""

    template: dict[str, Any] = Field(
        description="The Template document as it would be saved (`key` may be left out)"
    )
    to: dict[str, str] | None = Field(
        default=None, description="One of profile_id, user_id, email, phone; omit for nobody"
    )


@router.post("/templates/preview")
async def preview_draft_template(
    request: Request, body: DraftPreviewRequest, key: Viewer
) -> dict[str, Any]:
    """An unsaved template rendered for a chosen person exactly as sending would render it
    (MJML compiled, locale variant, Liquid sandbox limits), saving nothing: the console's live
    preview while editing. 422 naming field, line and column on a syntax or rendering error."""
    return await _legato(request).messages.preview(
        key.workspace_id,
        None,
        draft=body.template,
        to=body.to,
        data=body.data,
        event=body.event,
        locale=body.locale,
    )


@router.post("/templates/{item}/preview")
async def preview_template(
    request: Request, item: str, body: PreviewRequest, key: Viewer
) -> dict[str, Any]:
    """The template rendered for a chosen person (422 naming field, line and column when
    rendering fails)."""
    return await _legato(request).messages.preview(
        key.workspace_id, item, to=body.to, data=body.data, event=body.event, locale=body.locale
    )


# -- messages -----------------------------------------------------------------------------------


class SendRequest(BaseModel):
    """A transactional message."""

    template: str
    to: dict[str, str] = Field(description="One of profile_id, user_id, email, phone")
    data: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = Field(default=None, description="Defaults to the template's channel")
    idempotency_key: str | None = Field(
        default=None, max_length=200, description="A retried request with it sends once"
    )


@router.post("/messages", status_code=202)
async def send_message(
    request: Request,
    body: SendRequest,
    key: Admin,
) -> Response:
    """Queue a transactional message, served ahead of bulk traffic. 202 with its id; 200 when
    the idempotency key (`idempotency_key` or the `Idempotency-Key` header) was used before:
    the first message stands."""
    header = request.headers.get("idempotency-key")
    row, created = await _legato(request).messages.send(
        key.workspace_id,
        template=body.template,
        to=body.to,
        data=body.data,
        channel=body.channel,
        idempotency_key=body.idempotency_key or header,
    )
    return json_response(
        {"id": row.id, "status": row.status, "created": created}, 202 if created else 200
    )


@router.get("/messages")
async def list_messages(
    request: Request,
    key: Viewer,
    status: Annotated[list[str] | None, Query(description=f"Any of {', '.join(STATUSES)}")] = None,
    channel: str | None = None,
    profile_id: str | None = None,
    journey: str | None = None,
    template: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: str | None = None,
) -> dict[str, Any]:
    """Messages newest first, filtered; pass `next` as `before` for the next page."""
    rows, following = await _legato(request).messages.search(
        key.workspace_id,
        statuses=status or (),
        channel=channel,
        profile_id=profile_id,
        journey_key=journey,
        template=template,
        limit=limit,
        before=before,
    )
    return {"messages": [row.public() for row in rows], "next": following}


@router.get("/messages/counts")
async def message_counts(request: Request, key: Viewer) -> dict[str, int]:
    """How many messages are in each status."""
    return await _legato(request).messages.counts(key.workspace_id)


@router.get("/messages/failures")
async def list_failures(
    request: Request,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: str | None = None,
) -> dict[str, Any]:
    """Messages that failed permanently (replayable once the cause is fixed)."""
    rows, following = await _legato(request).messages.search(
        key.workspace_id, statuses=("failed",), limit=limit, before=before
    )
    return {"messages": [row.public() for row in rows], "next": following}


@router.get("/messages/dead-letters")
async def list_dead_letters(
    request: Request,
    key: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: str | None = None,
) -> dict[str, Any]:
    """Dead letters: retries exhausted, or interrupted while the provider had them."""
    rows, following = await _legato(request).messages.search(
        key.workspace_id, statuses=("dead",), limit=limit, before=before
    )
    return {"messages": [row.public() for row in rows], "next": following}


class ReplayRequest(BaseModel):
    """Which failed messages or dead letters to queue again."""

    ids: list[str] | None = Field(default=None, description="Omit (with all=true) for every one")
    all: bool = False


@router.post("/messages/replay")
async def replay_messages(request: Request, body: ReplayRequest, key: Admin) -> dict[str, Any]:
    """Queue failed messages and dead letters again; answers the ids queued."""
    if body.ids is None and not body.all:
        raise InvalidInput("give `ids`, or `all: true` to replay every one", path="ids")
    moved = await _legato(request).messages.replay(key.workspace_id, body.ids)
    return {"replayed": moved}


@router.get("/messages/{message_id}")
async def get_message(request: Request, message_id: str, key: Viewer) -> dict[str, Any]:
    """One message with its status, attempts, provider and last error."""
    return (await _legato(request).messages.get(key.workspace_id, message_id)).public()


@router.post("/messages/{message_id}/replay")
async def replay_message(request: Request, message_id: str, key: Admin) -> dict[str, Any]:
    """Queue one failed message or dead letter again."""
    moved = await _legato(request).messages.replay(key.workspace_id, [message_id])
    if not moved:
        row = await _legato(request).messages.get(key.workspace_id, message_id)
        raise InvalidInput(
            f"only failed messages and dead letters are replayed; this one is {row.status}",
            field="id",
        )
    return {"replayed": moved}


# -- suppressions -------------------------------------------------------------------------------


class NewSuppression(BaseModel):
    """An address that must receive nothing on a channel."""

    channel: str
    address: str
    reason: Literal["manual", "hard_bounce", "complaint", "invalid"] = "manual"
    note: str = Field(default="", max_length=1000)


@router.get("/suppressions")
async def list_suppressions(
    request: Request,
    key: Viewer,
    channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = Query(default=None, description="`next` of the previous page"),
) -> dict[str, Any]:
    """Suppressed addresses, by channel and address."""
    items = await _legato(request).consent_store.list_suppressions(
        key.workspace_id, channel=channel, limit=limit, after=after
    )
    following = None
    if len(items) == limit:
        last = items[-1]
        following = f"{last['channel']}:{last['address_key']}"
    return {"suppressions": items, "next": following}


@router.post("/suppressions", status_code=201)
async def add_suppression(request: Request, body: NewSuppression, key: Admin) -> Response:
    """Suppress an address (201; 200 when it already was)."""
    added = await _legato(request).consent.suppress(
        key.workspace_id, body.channel, body.address, reason=body.reason, note=body.note
    )
    return json_response({"channel": body.channel, "added": added}, 201 if added else 200)


@router.delete("/suppressions/{channel}/{address:path}", status_code=204)
async def remove_suppression(request: Request, channel: str, address: str, key: Admin) -> None:
    """Take an address off the suppression list (a web push endpoint is a URL: the address
    may hold slashes)."""
    await _legato(request).consent.unsuppress(key.workspace_id, channel, address)
