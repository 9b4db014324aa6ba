"""What the example journeys need the demo workspace to define: the computed traits and the
segment they read (see examples/journeys/ and /work/briefs/journey_references.md).

`lapsed_customers` is created empty (static) first, so that `win_back`, which enters people
when they join it, can be published; `activate_lapsed_customers` then gives it its condition,
and the backfill's entries start win-back runs for everyone lapsed today — a campaign launched
on an existing audience. Goes through `SegmentService` (what the admin API calls); no SQL.
"""

from __future__ import annotations

from typing import Any

from legato.app import Legato
from legato.demo.spec import LAPSED_AFTER_DAYS
from legato.errors import NotFound
from legato.runtime.segment_views import Progress

#: The CRM scores leads with "Lead Scored" events; the journey reads the latest score.
LEAD_SCORE: dict[str, Any] = {
    "kind": "ComputedTrait",
    "key": "lead_score",
    "name": "Lead score",
    "description": "The latest score the CRM gave this lead (0-100).",
    "aggregate": "last",
    "event": "Lead Scored",
    "property": "score",
}

#: The catalogue category (e.g. "Shoes > Sneakers") a person looked at most in 90 days.
FAVOURITE_CATEGORY: dict[str, Any] = {
    "kind": "ComputedTrait",
    "key": "favourite_category",
    "name": "Favourite category",
    "description": "The product category viewed most in the last 90 days.",
    "aggregate": "most_frequent",
    "event": "Product Viewed",
    "property": "category",
    "within": "90d",
}

LAPSED_KEY = "lapsed_customers"
LAPSED_NAME = "Lapsed customers"
#: Bought before, but not for LAPSED_AFTER_DAYS days (the demo's own notion of lapsed).
LAPSED_CONDITION: dict[str, Any] = {
    "all": [
        {"event": "Order Completed", "count": {"gte": 1}},
        {"not": {"event": "Order Completed", "within": f"{LAPSED_AFTER_DAYS}d"}},
    ]
}

COMPUTED_TRAITS = (LEAD_SCORE, FAVOURITE_CATEGORY)


async def define_audience(
    legato: Legato, workspace_id: str, *, progress: Progress | None = None
) -> list[str]:
    """The computed traits (computed over all history) and the empty `lapsed_customers`
    segment; returns the keys defined. Running it again replaces them with the same.
    `progress` gets (key, events folded, events in all) while a trait is computed."""
    keys: list[str] = []
    for document in COMPUTED_TRAITS:
        await legato.segments.put_computed_trait(
            workspace_id, document, key=document["key"], progress=progress
        )
        keys.append(str(document["key"]))
    try:
        existing = await legato.segments.get_segment(workspace_id, LAPSED_KEY)
    except NotFound:
        existing = None
    if existing is None or existing.static:
        placeholder = {"kind": "Segment", "key": LAPSED_KEY, "name": LAPSED_NAME, "static": True}
        await legato.segments.put_segment(workspace_id, placeholder, key=LAPSED_KEY)
    keys.append(LAPSED_KEY)
    return keys


async def activate_lapsed_customers(legato: Legato, workspace_id: str) -> int:
    """Give `lapsed_customers` its condition (a backfill over all history); returns how many
    people entered it (each one a `Segment Entered` event, which win-back listens to)."""
    document = {
        "kind": "Segment",
        "key": LAPSED_KEY,
        "name": LAPSED_NAME,
        "description": f"Bought before, but not in the last {LAPSED_AFTER_DAYS} days.",
        "condition": LAPSED_CONDITION,
    }
    saved = await legato.segments.put_segment(workspace_id, document, key=LAPSED_KEY)
    return saved.entered
