"""Instants as conditions read them: the strict date grammar both compilers share.

A JSON value denotes an instant (epoch milliseconds, UTC) when it is
- a string in the grammar `ISO_PATTERN`: `YYYY-MM-DD`, optionally followed by `T` or a space,
  `HH:MM`, optional `:SS`, optional `.fraction` (1-9 digits, cut to milliseconds), and an
  optional zone `Z` or `+HH:MM`/`-HH:MM` (no zone means UTC). Fields must be in range (month
  1-12, the day within its month, hour 0-23, ...); year 0000 is refused. Anything else, even
  what `datetime.fromisoformat` would take, is not an instant;
- an integral number (JSON int, or a float with no fractional part) of magnitude at most
  2**53: seconds since the epoch when its magnitude is below 1e11, milliseconds otherwise.

The SQL compiler (`legato.store.conditions_sql`) implements exactly this grammar; the property
tests hold the two to it. This module never reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from legato.errors import InvalidInput

#: The grammar of instant strings (a PostgreSQL ARE and a Python regex alike; anchor it).
ISO_PATTERN = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
#: Most fractional-second digits the grammar takes (only the first three count).
MAX_FRACTION_DIGITS = 9
#: Numbers of smaller magnitude are epoch seconds; larger ones epoch milliseconds.
SECONDS_BELOW = 100_000_000_000
#: Largest magnitude a number may have and still be read as an instant.
MAX_EPOCH_NUMBER = 2**53
DAY_MS = 86_400_000

_ISO = re.compile(ISO_PATTERN)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm; year >= 1)."""
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(year: int, month: int) -> int:
    """Length of a month in the proleptic Gregorian calendar."""
    if month == 2:
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def parse_iso_ms(text: str) -> int | None:
    """The instant an ISO string denotes under the strict grammar, or None."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour = int(match[4] or 0)
    minute = int(match[5] or 0)
    second = int(match[6] or 0)
    millis = int(((match[7] or "") + "000")[:3])
    zone = match[8] or ""
    offset_min = 0
    if len(zone) == 6:
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 23 or zone_minutes > 59:
            return None
        offset_min = (zone_hours * 60 + zone_minutes) * (-1 if zone[0] == "-" else 1)
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = ((hour * 60 + minute) * 60 + second) - offset_min * 60
    return days_from_civil(year, month, day) * DAY_MS + seconds * 1000 + millis


def number_ms(value: int | float) -> int | None:
    """The instant an epoch number denotes (seconds below 1e11, else milliseconds), or None."""
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if abs(value) > MAX_EPOCH_NUMBER:
        return None
    return value * 1000 if abs(value) < SECONDS_BELOW else value


def instant_ms(value: object) -> int | None:
    """The instant a JSON value denotes, or None when it is not a date."""
    if isinstance(value, str):
        return parse_iso_ms(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return number_ms(value)
    return None


@dataclass(frozen=True, slots=True)
class Span:
    """The stretch of time a date operand names: [start_ms, end_ms)."""

    start_ms: int
    end_ms: int


def normalise_date_operand(value: object) -> str | int:
    """A date operand as stored: ISO text or an epoch int (YAML dates become ISO text)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        m = moment.astimezone(UTC)
        return (
            f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond // 1000:03d}Z"
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        if parse_iso_ms(value) is None:
            raise InvalidInput(
                f"not a date: {value!r} (write YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]][Z|+HH:MM])"
            )
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if number_ms(value) is None:
            raise InvalidInput(f"not an epoch time: {value} (at most 2**53 in magnitude)")
        return value
    raise InvalidInput(f"not a date: {value!r}")


def operand_span(value: str | int) -> Span:
    """The span a stored date operand names: a whole UTC day for `YYYY-MM-DD`, else one ms."""
    start = instant_ms(value)
    if start is None:
        raise InvalidInput(f"not a date: {value!r}")
    if isinstance(value, str) and len(value) == 10:
        return Span(start, start + DAY_MS)
    return Span(start, start + 1)
