"""Consent over HTTP: the admin API (change a person's consent, read it, export the evidence)
and the pages recipients reach from their messages, which need no JavaScript.

Public routes, authenticated by their signed tokens: `/u/{token}` (GET a page with one button;
POST unsubscribes — RFC 8058 one-click, `List-Unsubscribe=One-Click`, answers 200 without a
redirect), `/p/{token}` (the preference centre: a server-rendered form, POST saves it) and
`/c/{token}` (double opt-in confirmation). Every change records the request's IP address and
user agent as evidence. Routes never compose SQL.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from legato.api.auth import Admin, Viewer
from legato.app import Legato
from legato.domain.consent import ConsentStatus
from legato.errors import InvalidInput, NotFound
from legato.runtime.consent import Preference

router = APIRouter(tags=["consent"])

#: Largest form body the public pages read.
MAX_FORM_BYTES = 16 * 1024


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


def _evidence(request: Request, **extra: str | None) -> dict[str, str | None]:
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:300] or None,
        "path": request.url.path[:40],
        **extra,
    }


# -- admin --------------------------------------------------------------------------------------


class ConsentRequest(BaseModel):
    """A consent change said somewhere else (a signup form, a CRM, a support call)."""

    to: dict[str, str] = Field(description="One of profile_id, user_id, email, phone")
    channel: str = Field(description="A channel kind (email, sms...) or a channel key")
    topic: str | None = None
    status: Literal["subscribed", "unsubscribed"]
    source: str = Field(default="api", min_length=1, max_length=64)
    evidence: dict[str, str] = Field(default_factory=dict)


@router.post("/api/v1/consent")
async def change_consent(request: Request, body: ConsentRequest, key: Admin) -> dict[str, Any]:
    """Record a consent change; subscribing where double opt-in applies answers `pending` and
    sends the confirmation email."""
    legato = _legato(request)
    profile_id, _ = await legato.messages.resolve(key.workspace_id, body.to)
    if profile_id is None:
        raise NotFound("no profile for this recipient", path="to")
    outcome = await legato.consent.change(
        key.workspace_id,
        profile_id,
        channel=body.channel,
        topic=body.topic,
        status=ConsentStatus(body.status),
        source=body.source,
        evidence=body.evidence,
    )
    return {
        "profile_id": profile_id,
        "status": outcome.status.value,
        "recorded": outcome.record_id is not None,
        "record_id": outcome.record_id,
        "confirmation_message_id": outcome.confirmation_id,
    }


@router.get("/api/v1/consent/{profile_id}")
async def get_consent(request: Request, profile_id: str, key: Viewer) -> dict[str, Any]:
    """A person's consent now (per channel and topic) and every record behind it."""
    legato = _legato(request)
    lines = await legato.consent.preferences(key.workspace_id, profile_id)
    state = await legato.consent.state(key.workspace_id, profile_id)
    records = await legato.consent_store.history(key.workspace_id, profile_id)
    return {
        "profile_id": profile_id,
        "preferences": [_line(line) for line in lines],
        "latest": [
            {"channel": c.channel, "topic": c.topic, "status": c.status.value, "at_ms": c.at_ms}
            for c in state.latest.values()
        ],
        "records": [record.to_dict() for record in records],
    }


def _line(line: Preference) -> dict[str, Any]:
    return {
        "channel": line.channel,
        "topic": line.topic,
        "name": line.name,
        "subscribed": line.subscribed,
        "pending": line.pending,
    }


@router.get("/api/v1/consent-records")
async def export_consent(
    request: Request,
    key: Viewer,
    format: Literal["csv", "json"] = "csv",
    profile_id: str | None = None,
    since_ms: Annotated[int | None, Query(ge=0)] = None,
    until_ms: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """Every consent record (channel, topic, status, source, time, evidence), oldest first, as
    CSV or a JSON array: evidence for audits and data-subject requests."""
    stream = _legato(request).consent.export(
        key.workspace_id, fmt=format, profile_id=profile_id, since_ms=since_ms, until_ms=until_ms
    )
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    filename = f"consent-records.{format}"
    return StreamingResponse(
        stream,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


# -- public pages -------------------------------------------------------------------------------


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;"
    "color:#1f2933}h1{font-size:1.4rem}button{font-size:1rem;padding:.5rem 1rem}"
    "label{display:block;margin:.4rem 0}.topic{margin-left:1.5rem}.muted{color:#616e7c}"
)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small self-contained HTML page (no scripts, no external resources)."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        document,
        status_code=status,
        headers={
            "cache-control": "no-store",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
            "referrer-policy": "no-referrer",
        },
    )


def _invalid() -> HTMLResponse:
    return page(
        "This link is not valid",
        "<p>The link may be incomplete. Copy the whole link from the message and try again.</p>",
        400,
    )


async def _form(request: Request) -> list[tuple[str, str]]:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise InvalidInput("form too large", field="body")
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


@router.get("/u/{token}", include_in_schema=False)
async def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """The page an unsubscribe link opens: one button (a GET never unsubscribes, so link
    scanners cannot do it by visiting)."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_unsubscribe(token)
    except InvalidInput:
        return _invalid()
    what = claim.channel if claim.topic is None else f"{claim.topic} ({claim.channel})"
    tracker = await legato.links.tracker()
    preferences = tracker.preferences_url(
        workspace_id=claim.workspace_id, profile_id=claim.profile_id
    )
    body = (
        f"<p>Stop receiving <strong>{html.escape(what)}</strong> messages?</p>"
        f'<form method="post"><button type="submit">Unsubscribe</button></form>'
        f'<p class="muted"><a href="{html.escape(preferences)}">Manage all your preferences</a>'
        "</p>"
    )
    return page("Unsubscribe", body)


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """Unsubscribe: the RFC 8058 one-click POST of mail clients, or the page's button."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_unsubscribe(token)
    except InvalidInput:
        return _invalid()
    fields = dict(await _form(request))
    one_click = fields.get("List-Unsubscribe") == "One-Click"
    try:
        await legato.consent.change(
            claim.workspace_id,
            claim.profile_id,
            channel=claim.channel,
            topic=claim.topic,
            status=ConsentStatus.UNSUBSCRIBED,
            source="one_click" if one_click else "unsubscribe_link",
            evidence=_evidence(request),
            message_id=claim.message_id,
        )
    except NotFound:
        return page("Nothing to do", "<p>This subscription no longer exists.</p>", 404)
    what = claim.channel if claim.topic is None else claim.topic
    return page(
        "You are unsubscribed",
        f"<p>You will not receive {html.escape(what)} messages any more.</p>",
    )


def _preference_form(lines: Iterable[Preference], notice: str = "") -> str:
    rows: list[str] = []
    for line in lines:
        checked = " checked" if line.subscribed or line.pending else ""
        pending = (
            ' <span class="muted">(waiting for your confirmation)</span>' if line.pending else ""
        )
        css = ' class="topic"' if line.topic else ""
        description = (
            f' <span class="muted">{html.escape(line.description)}</span>'
            if line.description
            else ""
        )
        rows.append(
            f'<label{css}><input type="checkbox" name="subscribe" value="{html.escape(line.field)}"'
            f"{checked}> {html.escape(line.name)}{pending}{description}</label>"
        )
    banner = f'<p role="status"><strong>{html.escape(notice)}</strong></p>' if notice else ""
    listed = "".join(rows) or "<p>There is nothing to choose here yet.</p>"
    return (
        f'{banner}<form method="post">{listed}'
        '<input type="hidden" name="submitted" value="1">'
        '<p><button type="submit">Save my preferences</button></p></form>'
    )


@router.get("/p/{token}", include_in_schema=False)
async def preference_centre(request: Request, token: str) -> HTMLResponse:
    """The hosted preference centre: what the person receives, as a form."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_preferences(token)
        lines = await legato.consent.preferences(claim.workspace_id, claim.profile_id)
    except InvalidInput:
        return _invalid()
    except NotFound:
        return page("Nothing to do", "<p>This person is no longer known here.</p>", 404)
    return page("Your preferences", _preference_form(lines))


@router.post("/p/{token}", include_in_schema=False)
async def save_preferences(request: Request, token: str) -> HTMLResponse:
    """Save the preference form (unticked lines unsubscribe, ticked ones subscribe)."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_preferences(token)
    except InvalidInput:
        return _invalid()
    fields = await _form(request)
    checked = [value for name, value in fields if name == "subscribe"]
    try:
        outcomes = await legato.consent.save_preferences(
            claim.workspace_id, claim.profile_id, checked, evidence=_evidence(request)
        )
        lines = await legato.consent.preferences(claim.workspace_id, claim.profile_id)
    except NotFound:
        return page("Nothing to do", "<p>This person is no longer known here.</p>", 404)
    notice = "Your preferences are saved."
    if any(o.status is ConsentStatus.PENDING for o in outcomes):
        notice += " Check your inbox to confirm your new subscription."
    return page("Your preferences", _preference_form(lines, notice))


@router.get("/c/{token}", include_in_schema=False)
async def confirmation_page(request: Request, token: str) -> HTMLResponse:
    """The page a confirmation link opens: one button (link scanners that follow every link
    in an email must not confirm for the person)."""
    try:
        claim = (await _legato(request).links.tracker()).verify_confirm(token)
    except InvalidInput:
        return _invalid()
    what = claim.channel if claim.topic is None else claim.topic
    body = (
        f"<p>Confirm that you want to receive {html.escape(what)} messages.</p>"
        '<form method="post"><button type="submit">Confirm my subscription</button></form>'
    )
    return page("Confirm your subscription", body)


@router.post("/c/{token}", include_in_schema=False)
async def confirm_subscription(request: Request, token: str) -> HTMLResponse:
    """Double opt-in: confirm the pending subscription."""
    legato = _legato(request)
    try:
        claim = (await legato.links.tracker()).verify_confirm(token)
    except InvalidInput:
        return _invalid()
    try:
        await legato.consent.confirm(claim, _evidence(request))
    except InvalidInput as exc:
        return page("Nothing to confirm", f"<p>{html.escape(exc.message)}.</p>", 409)
    except NotFound:
        return page("Nothing to confirm", "<p>This person is no longer known here.</p>", 404)
    return page("Subscription confirmed", "<p>Thank you: your subscription is confirmed.</p>")
