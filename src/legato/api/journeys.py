"""Admin API: journeys — drafts, lifecycle, stats, simulation, the JSON Schema, API entry.

Routes translate HTTP into calls on the journey service held by the composition root; they
never compose SQL. A document that is not a valid journey is a 422 naming the node, the path
and the reason (every problem in `errors`). Reads take a viewer key, changes an admin key.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from legato.api.auth import Admin, Viewer
from legato.app import Legato
from legato.domain.durations import parse_duration_ms
from legato.domain.journeys import journey_schema, parse_journey
from legato.errors import InvalidInput
from legato.runtime.simulation import SimEvent, event_of_message

router = APIRouter(prefix="/api/v1/journeys", tags=["journeys"])

#: Most history events a simulation request may carry in its body.
MAX_BODY_EVENTS = 100_000


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


class TriggerBody(BaseModel):
    """Who enters an API-triggered journey, with the properties of the entry."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str | None = Field(default=None, max_length=26)
    user_id: str | None = Field(default=None, max_length=200)
    anonymous_id: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class SimulateBody(BaseModel):
    """What to replay through the journey's draft (or through `document`, when given)."""

    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] | None = None
    since: str | None = Field(default="30d", description="replay the log's last (e.g. 30d)")
    events: list[dict[str, Any]] | None = Field(
        default=None, description="tracking-spec messages to replay instead of the log"
    )
    until: str | None = Field(
        default=None, description="with events: how long to run on after the last one (e.g. 7d)"
    )


@router.get("")
async def list_journeys(request: Request, key: Viewer) -> dict[str, Any]:
    """Every journey of the workspace, with its lifecycle state."""
    return {"journeys": await _legato(request).journeys.list(key.workspace_id)}


@router.get("/schema")
async def get_schema(key: Viewer) -> dict[str, Any]:
    """The JSON Schema of the journey document (what the builder and editors validate)."""
    return journey_schema()


@router.get("/{journey_key}")
async def get_journey(request: Request, journey_key: str, key: Viewer) -> dict[str, Any]:
    """A journey: lifecycle state, its draft document and its versions."""
    return await _legato(request).journeys.get(key.workspace_id, journey_key)


@router.put("/{journey_key}")
async def put_journey(
    request: Request,
    journey_key: str,
    key: Admin,
    document: Annotated[dict[str, Any], Body(description="the journey document, as JSON")],
) -> dict[str, Any]:
    """Create or replace a journey's draft (422 naming the node and reason when invalid)."""
    legato = _legato(request)
    saved = await legato.journeys.save_draft(key.workspace_id, document, key=journey_key)
    return {"key": saved.key, "created": saved.created, "status": saved.status}


@router.post("/{journey_key}/publish")
async def publish_journey(request: Request, journey_key: str, key: Admin) -> dict[str, Any]:
    """Publish the draft as a new immutable version and accept entries."""
    return await _legato(request).journeys.publish(key.workspace_id, journey_key)


@router.post("/{journey_key}/pause")
async def pause_journey(request: Request, journey_key: str, key: Admin) -> dict[str, Any]:
    """Stop entries; runs in flight carry on."""
    return await _legato(request).journeys.pause(key.workspace_id, journey_key)


@router.post("/{journey_key}/resume")
async def resume_journey(request: Request, journey_key: str, key: Admin) -> dict[str, Any]:
    """Accept entries again."""
    return await _legato(request).journeys.resume(key.workspace_id, journey_key)


@router.post("/{journey_key}/archive")
async def archive_journey(request: Request, journey_key: str, key: Admin) -> dict[str, Any]:
    """Stop entries for good."""
    return await _legato(request).journeys.archive(key.workspace_id, journey_key)


@router.get("/{journey_key}/stats")
async def journey_stats(
    request: Request,
    journey_key: str,
    key: Viewer,
    version: Annotated[int | None, Query(ge=1, description="one version (default: all)")] = None,
) -> dict[str, Any]:
    """Per node: entered, exited, converted, waiting now; per journey: entries, exits by
    reason, refusals by reason, conversions."""
    return await _legato(request).journeys.stats(key.workspace_id, journey_key, version)


@router.post("/{journey_key}/trigger")
async def trigger_journey(
    request: Request, journey_key: str, key: Admin, body: TriggerBody
) -> dict[str, Any]:
    """Enter one person into an API-triggered journey (the entry rules apply)."""
    return await _legato(request).journeys.trigger(
        key.workspace_id,
        journey_key,
        profile_id=body.profile_id,
        user_id=body.user_id,
        anonymous_id=body.anonymous_id,
        properties=body.properties,
    )


@router.post("/{journey_key}/simulate")
async def simulate_journey(
    request: Request, journey_key: str, key: Viewer, body: SimulateBody | None = None
) -> dict[str, Any]:
    """Replay history through the draft (or `document`) on a simulated clock; sends nothing."""
    legato = _legato(request)
    body = body or SimulateBody()
    if body.document is not None:
        journey = parse_journey(body.document)
    else:
        stored = await legato.journeys.get(key.workspace_id, journey_key)
        journey = parse_journey(stored["draft"])
    if body.events is not None:
        if len(body.events) > MAX_BODY_EVENTS:
            raise InvalidInput(f"at most {MAX_BODY_EVENTS} events", path="$.events")
        replayed: list[SimEvent] = [
            event_of_message(message, f"$.events[{i}]") for i, message in enumerate(body.events)
        ]
        report = await legato.simulations.from_events(
            journey, replayed, until_ms=_duration(body.until, "$.until")
        )
    else:
        since = _duration(body.since or "30d", "$.since")
        report = await legato.simulations.from_log(key.workspace_id, journey, since)
    return orjson.loads(orjson.dumps(report.to_dict()))  # type: ignore[no-any-return]


def _duration(text: str | None, path: str) -> int:
    if text is None:
        return 0
    try:
        return parse_duration_ms(text)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, path=path) from exc
