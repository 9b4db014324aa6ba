"""Entry rules, exit criteria, the goal and journey settings of a journey document.

They say who may enter and how often, when a run leaves early, what counts as a conversion and
which timezone and delivery policies apply. Pure document models, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    Discriminator,
    Field,
    Tag,
)

from legato.domain.journeys.fields import (
    ConditionField,
    DocModel,
    Duration,
    EventFilter,
    EventName,
    PropertyPath,
    TimeOfDay,
    TimeZoneName,
    TraitName,
)

# ---------------------------------------------------------------------------------------------
# Entry rules, exit criteria, goal, settings


class EntryRules(DocModel):
    """Who may enter, how often, and how runs are keyed."""

    re_entry: Literal["never", "after_exit", "always"] = Field(
        default="never",
        description="per person and entry key: never again / once the last run ended / always",
    )
    key: PropertyPath | None = Field(
        default=None, description="trigger property keying runs: one run per value per person"
    )
    max_entries: int | None = Field(default=None, ge=1, description="per person, all keys")
    enrollment_limit: int | None = Field(default=None, ge=1, description="runs in total")


class EventExit(DocModel):
    """Leave the journey when the person performs `event` (matching the trigger if asked)."""

    event: EventName
    where: EventFilter | None = None
    match: dict[PropertyPath, Any] = Field(default_factory=dict)


class ConditionExit(DocModel):
    """Leave the journey as soon as `condition` holds for the person."""

    condition: ConditionField


def _exit_kind(value: Any) -> str | None:
    if isinstance(value, EventExit):
        return "event"
    if isinstance(value, ConditionExit):
        return "condition"
    if isinstance(value, Mapping):
        kinds = [kind for kind in ("event", "condition") if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


ExitCriterion: TypeAlias = Annotated[
    Annotated[EventExit, Tag("event")] | Annotated[ConditionExit, Tag("condition")],
    Discriminator(
        _exit_kind,
        custom_error_type="exit_criterion",
        custom_error_message="an exit criterion has exactly one of `event` or `condition`",
    ),
]


def as_list(value: Any) -> Any:
    """Let a single mapping stand for a one-item list (`exit_criteria: {event: ...}`)."""
    return [value] if isinstance(value, Mapping) else value


class Goal(DocModel):
    """The conversion event; counted when it happens within `within` of entry."""

    event: EventName
    where: EventFilter | None = None
    match: dict[PropertyPath, Any] = Field(default_factory=dict)
    within: Duration | None = None
    exit: bool = Field(default=True, description="end the run when the person converts")


class QuietHours(DocModel):
    """Local hours in which delivery holds (or drops) this journey's messages."""

    start: TimeOfDay
    end: TimeOfDay
    action: Literal["defer", "drop"] = "defer"


class JourneySettings(DocModel):
    """Defaults for time and delivery; delivery enforces quiet hours and caps at send time."""

    timezone: TimeZoneName = "UTC"
    timezone_trait: TraitName = Field(
        default="timezone", description="profile trait holding the person's IANA timezone"
    )
    quiet_hours: QuietHours | None = None
    frequency_cap: Literal["apply", "exempt"] = Field(
        default="apply", description="exempt only for transactional journeys"
    )
