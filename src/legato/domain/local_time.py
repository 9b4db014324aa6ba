"""Local-time arithmetic: turning "09:00 on weekdays in the person's timezone" into instants.

Journeys (`wait_until`, local-time schedules) and delivery (quiet hours) both need the next
allowed local moment, computed correctly across daylight-saving changes. Everything here is a
pure function of the instants and zone names it is given; it never reads the clock. Wall-clock
times that do not exist (the spring-forward gap) move forward by the gap; times that happen twice
(the autumn fall-back) mean their first occurrence, as PEP 495's `fold=0` does.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from legato.errors import InvalidInput

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The zone where every local date-time happens first (UTC+14); a schedule sent "at 09:00 in
#: each person's timezone" must start enrolling when it is 09:00 there.
EARLIEST_ZONE = "Etc/GMT-14"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone called `name`; InvalidInput when there is none."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise InvalidInput(f"unknown timezone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"unknown timezone: {name!r} (write an IANA name, e.g. Europe/Paris)"
        ) from exc


def zone_or(name: object, fallback: ZoneInfo) -> ZoneInfo:
    """The zone named by a profile trait, or `fallback` when the trait is missing or unknown."""
    if not isinstance(name, str):
        return fallback
    try:
        return zone(name)
    except InvalidInput:
        return fallback


def parse_time_of_day(text: str) -> time:
    """A wall-clock time written "HH:MM" (or "HH:MM:SS")."""
    match = _HHMM.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"not a time of day: {text!r} (write e.g. '09:00')")
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def format_time_of_day(value: time) -> str:
    """ "09:00", or "09:00:30" when seconds matter."""
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def to_local(instant_ms: int, tz: ZoneInfo) -> datetime:
    """The naive wall-clock date-time in `tz` at an instant."""
    return (_EPOCH + instant_ms * _ONE_MS).astimezone(tz).replace(tzinfo=None)


def local_instant_ms(local: datetime, tz: ZoneInfo) -> int:
    """The instant of a naive wall-clock date-time in `tz` (gap → shifted forward, fold → first)."""
    aware = local.replace(tzinfo=tz, fold=0)
    return (aware - _EPOCH) // _ONE_MS


def next_local_time_ms(
    after_ms: int, tz: ZoneInfo, at: time, weekdays: Collection[int] = range(7)
) -> int:
    """The first instant ≥ `after_ms` that is `at` local time on an allowed weekday (0 = Monday)."""
    allowed = frozenset(weekdays)
    if not allowed:
        raise InvalidInput("at least one weekday must be allowed")
    day = to_local(after_ms, tz).date()
    # Eight days always reach an allowed weekday; the first may already be past `at`.
    for offset in range(8):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.weekday() not in allowed:
            continue
        candidate = local_instant_ms(datetime.combine(candidate_day, at), tz)
        if candidate >= after_ms:
            return candidate
    raise AssertionError("unreachable: a week always holds an allowed weekday")


def next_schedule_occurrence(
    after: datetime,
    *,
    at: datetime | None = None,
    every: Literal["day", "week", "month"] | None = None,
    time_of_day: time | None = None,
    weekdays: Collection[int] = (),
    day_of_month: int | None = None,
    starts: date | None = None,
    ends: date | None = None,
) -> datetime | None:
    """The first wall-clock occurrence strictly after the naive local `after`, or None if over.

    One-off schedules give `at`; recurring ones give `every` with `time_of_day` (and `weekdays`
    for daily/weekly, `day_of_month` for monthly, clamped to the month's last day).
    """
    if at is not None:
        return at if at > after else None
    if every is None or time_of_day is None:
        raise InvalidInput("a recurring schedule needs `every` and `time`")
    first_day = after.date()
    if starts is not None and starts > first_day:
        first_day = starts
    allowed = frozenset(weekdays) or frozenset(range(7))
    if every == "month":
        if day_of_month is None:
            raise InvalidInput("a monthly schedule needs `day_of_month`")
        year, month = first_day.year, first_day.month
        for _ in range(14):
            last = calendar.monthrange(year, month)[1]
            candidate_day = date(year, month, min(day_of_month, last))
            candidate = datetime.combine(candidate_day, time_of_day)
            if ends is not None and candidate_day > ends:
                return None
            if candidate_day >= first_day and candidate > after:
                return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        raise AssertionError("unreachable: a monthly schedule recurs within 14 months")
    for offset in range(9):
        candidate_day = first_day + timedelta(days=offset)
        if ends is not None and candidate_day > ends:
            return None
        candidate = datetime.combine(candidate_day, time_of_day)
        if candidate_day.weekday() in allowed and candidate > after:
            return candidate
    raise AssertionError("unreachable: a daily or weekly schedule recurs within 9 days")


def weekday_numbers(names: Collection[Weekday]) -> frozenset[int]:
    """ "mon".."sun" as datetime weekday numbers (0 = Monday); all days when empty."""
    if not names:
        return frozenset(range(7))
    return frozenset(WEEKDAYS.index(name) for name in names)
