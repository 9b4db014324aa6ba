"""When things happen in the person's own time: their zone, dates plus offsets, local starts.

Pure: the profile's timezone comes from its traits, instants are passed in; no clock is read.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from legato.domain.conditions import EventFact
from legato.domain.engine.compiled import CompiledJourney
from legato.domain.engine.runs import OCCURRENCE_PROPERTY
from legato.domain.journeys import ScheduleTrigger
from legato.domain.local_time import local_instant_ms, zone_or

if TYPE_CHECKING:
    from legato.domain.conditions import EvalContext


def profile_zone(version: CompiledJourney, ctx: EvalContext) -> ZoneInfo:
    """The person's timezone (their timezone trait), else the journey's default."""
    trait = version.journey.settings.timezone_trait
    return zone_or(ctx.traits.get(trait), version.timezone)


def local_start_ms(version: CompiledJourney, trigger: EventFact, ctx: EvalContext) -> int | None:
    """For a schedule sent at local time: the occurrence in the person's own timezone."""
    schedule = version.journey.trigger
    if not isinstance(schedule, ScheduleTrigger) or not schedule.local_time:
        return None
    raw = trigger.properties.get(OCCURRENCE_PROPERTY)
    if not isinstance(raw, str):
        return None
    try:
        occurrence = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if occurrence.tzinfo is not None:
        return None
    return local_instant_ms(occurrence, profile_zone(version, ctx))


def date_instant(value: Any, tz: ZoneInfo, at: time | None, offset_ms: int) -> int | None:
    """When a date plus offset falls: bare dates are local (offset in wall-clock time)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) + offset_ms
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            local = datetime.combine(day, at or time(0))
            return local_instant_ms(local + timedelta(milliseconds=offset_ms), tz)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return local_instant_ms(moment + timedelta(milliseconds=offset_ms), tz)
    return int(moment.timestamp() * 1000) + offset_ms
