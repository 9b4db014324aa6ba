"""Admin API: unified profiles — get, look up by any identifier, list, and a profile's events.

Routes translate HTTP into calls on the profile store held by the composition root; they
never compose SQL. Every route takes a viewer key at least.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from legato.api.auth import Viewer
from legato.app import Legato
from legato.domain.identity import ANONYMOUS_ID, EMAIL, PHONE, USER_ID
from legato.domain.profiles import EventPage, ProfilePage
from legato.errors import InvalidInput
from legato.runtime.segment_service import ProfileDetail
from legato.store.profiles import MAX_PAGE

router = APIRouter(prefix="/api/v1/profiles", tags=["profiles"])

#: Query parameters of the profile list that filter on a trait: `trait.plan=pro`, or
#: `trait[plan]=pro` (OpenAPI's deepObject style, what the interactive docs send).
TRAIT_PREFIX = "trait."
TRAIT_OBJECT = "trait["

_TRAIT_PARAMETER = {
    "name": "trait",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    "description": (
        "Trait filters, all of which must match: `trait[plan]=pro` (or `trait.plan=pro`). A "
        "trait matches when its value written as text equals the parameter (`42`, `true`)."
    ),
}


def _trait_name(parameter: str) -> str | None:
    """The trait a query parameter filters on, or None if it is not a trait filter."""
    if parameter.startswith(TRAIT_PREFIX):
        return parameter[len(TRAIT_PREFIX) :]
    if parameter.startswith(TRAIT_OBJECT) and parameter.endswith("]"):
        return parameter[len(TRAIT_OBJECT) : -1]
    return None


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


@router.get("/lookup", response_model=ProfileDetail)
async def lookup_profile(
    request: Request,
    key: Viewer,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    email: Annotated[str | None, Query(description="Any case; compared lower-cased")] = None,
    phone: Annotated[str | None, Query(description="Any format; compared in E.164")] = None,
    kind: Annotated[
        str | None, Query(description="Another identifier kind, e.g. crm_id (with `value`)")
    ] = None,
    value: str | None = None,
) -> ProfileDetail:
    """The profile one identifier points at: give exactly one of them."""
    given = [
        (name, text)
        for name, text in (
            (USER_ID, user_id),
            (ANONYMOUS_ID, anonymous_id),
            (EMAIL, email),
            (PHONE, phone),
        )
        if text is not None
    ]
    if kind is not None or value is not None:
        if kind is None or value is None:
            raise InvalidInput("give `kind` and `value` together", field="kind")
        given.append((kind, value))
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one identifier: user_id, anonymous_id, email, phone, or kind+value",
            field="user_id",
        )
    (which, text) = given[0]
    legato = _legato(request)
    profile = await legato.profiles.lookup(key.workspace_id, which, text)
    return await legato.segments.with_segments(key.workspace_id, profile)


@router.get(
    "",
    response_model=ProfilePage,
    description=(
        "Live profiles, oldest first. Filter on traits with `trait.<key>=<value>` or "
        "`trait[<key>]=<value>` query parameters (repeatable, all must match); a trait matches "
        "when its value written as text equals the parameter (`trait.age=42`, `trait.vip=true`)."
    ),
    openapi_extra={"parameters": [_TRAIT_PARAMETER]},
)
async def list_profiles(
    request: Request, key: Viewer, limit: Limit = 50, cursor: Cursor = None
) -> ProfilePage:
    """List profiles, a page at a time, optionally filtered by trait values."""
    traits: dict[str, str] = {}
    for name, text in request.query_params.multi_items():
        trait = _trait_name(name)
        if trait is not None:
            if trait in traits and traits[trait] != text:
                raise InvalidInput(f"{name} is given twice with different values", field=name)
            traits[trait] = text
        elif name not in {"limit", "cursor"}:
            raise InvalidInput(
                f"unknown parameter {name!r}: use limit, cursor or trait.<key>", field=name
            )
    return await _legato(request).profiles.find(
        key.workspace_id, traits=traits, limit=limit, cursor=cursor
    )


@router.get("/{profile_id}", response_model=ProfileDetail)
async def get_profile(request: Request, profile_id: str, key: Viewer) -> ProfileDetail:
    """One profile by id (the id of a merged-away profile answers with the survivor), with
    its computed traits and segments."""
    legato = _legato(request)
    profile = await legato.profiles.get(key.workspace_id, profile_id)
    return await legato.segments.with_segments(key.workspace_id, profile)


@router.get("/{profile_id}/events", response_model=EventPage)
async def profile_events(
    request: Request, profile_id: str, key: Viewer, limit: Limit = 50, cursor: Cursor = None
) -> EventPage:
    """A profile's events (merged profiles' included), newest first, a page at a time."""
    return await _legato(request).profiles.events(
        key.workspace_id, profile_id, limit=limit, cursor=cursor
    )
