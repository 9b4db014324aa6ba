"""The journey trigger: an event, a segment change, a schedule, or an API call.

Exactly one trigger starts a journey's runs; its kind is inferred from the key written (or from
`type:`). Pure document models, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from legato.domain.journeys.fields import (
    DocModel,
    EventFilter,
    EventName,
    Key,
    PropertyPath,
    TimeOfDay,
)
from legato.domain.local_time import Weekday

# ---------------------------------------------------------------------------------------------
# Trigger


class EventTrigger(DocModel):
    """Enter when the person performs `event` (optionally filtered by its properties)."""

    type: Literal["event"] = "event"
    event: EventName
    where: EventFilter | None = None
    key: PropertyPath | None = Field(
        default=None, description="entry key: one run per value (shorthand for entry.key)"
    )


class SegmentTrigger(DocModel):
    """Enter when the person enters (or exits) a segment."""

    type: Literal["segment"] = "segment"
    segment: Key
    change: Literal["entered", "exited"] = "entered"


class Schedule(DocModel):
    """When a scheduled journey enrols its audience: once (`at`) or recurring (`every`)."""

    at: datetime | None = Field(default=None, description="one-off local date-time, no offset")
    every: Literal["day", "week", "month"] | None = None
    time: TimeOfDay | None = None
    weekdays: tuple[Weekday, ...] = ()
    day_of_month: int | None = Field(default=None, ge=1, le=31)
    starts: date | None = None
    ends: date | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Schedule:
        if (self.at is None) == (self.every is None):
            raise PydanticCustomError("schedule", "a schedule has exactly one of `at` or `every`")
        if self.at is not None:
            if self.at.tzinfo is not None:
                raise PydanticCustomError(
                    "schedule",
                    "write `at` as a local date-time without offset; the timezone is "
                    "settings.timezone, or each profile's with local_time: true",
                )
            if self.time or self.weekdays or self.day_of_month or self.starts or self.ends:
                raise PydanticCustomError(
                    "schedule",
                    "a one-off schedule (`at`) takes no time/weekdays/day_of_month/starts/ends",
                )
            return self
        if self.time is None:
            raise PydanticCustomError(
                "schedule", "a recurring schedule needs `time` (e.g. '09:00')"
            )
        if self.every == "week" and not self.weekdays:
            raise PydanticCustomError("schedule", "a weekly schedule needs `weekdays`")
        if (self.every == "month") != (self.day_of_month is not None):
            raise PydanticCustomError(
                "schedule", "`day_of_month` goes with (and only with) every: month"
            )
        if self.every == "month" and self.weekdays:
            raise PydanticCustomError("schedule", "a monthly schedule takes no `weekdays`")
        if self.starts and self.ends and self.ends < self.starts:
            raise PydanticCustomError("schedule", "`ends` is before `starts`")
        return self


class ScheduleTrigger(DocModel):
    """Enrol a segment's members on a schedule, optionally at local time in each profile's zone."""

    type: Literal["schedule"] = "schedule"
    segment: Key
    schedule: Schedule
    local_time: bool = False


class ApiTrigger(DocModel):
    """Enter when an API call asks to enrol a person (with properties of its own)."""

    type: Literal["api"] = "api"
    api: Literal[True] = True


_TRIGGER_KINDS = ("event", "schedule", "api")


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return str(getattr(value, "type", None))
    if not isinstance(value, Mapping):
        return None
    if "type" in value:
        kind = value["type"]
        return kind if isinstance(kind, str) else None
    kinds = [kind for kind in _TRIGGER_KINDS if kind in value]
    if not kinds and "segment" in value:
        kinds = ["segment"]
    if "event" in kinds and "segment" in value:
        kinds.append("segment")
    return kinds[0] if len(kinds) == 1 else None


Trigger: TypeAlias = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[SegmentTrigger, Tag("segment")]
    | Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[ApiTrigger, Tag("api")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger",
        custom_error_message=(
            "a journey has exactly one trigger: one of event, segment, schedule or api"
        ),
    ),
]
