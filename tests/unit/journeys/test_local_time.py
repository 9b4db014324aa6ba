"""Local-time arithmetic across DST changes, weekdays and schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from legato.domain.local_time import (
    local_instant_ms,
    next_local_time_ms,
    next_schedule_occurrence,
    to_local,
    weekday_numbers,
    zone,
)
from legato.errors import InvalidInput


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("tz", "after", "at", "weekdays", "expected"),
    [
        # winter (CET, UTC+1): 09:00 local is 08:00Z the same day
        ("Europe/Paris", "2026-03-27T06:00:00+00:00", "09:00", (), "2026-03-27T08:00:00+00:00"),
        # already past 09:00 → tomorrow
        ("Europe/Paris", "2026-03-27T09:00:00+00:00", "09:00", (), "2026-03-28T08:00:00+00:00"),
        # the spring-forward day: 09:00 CEST is 07:00Z
        ("Europe/Paris", "2026-03-28T12:00:00+00:00", "09:00", (), "2026-03-29T07:00:00+00:00"),
        # 02:30 does not exist on 2026-03-29 in Paris: it moves forward by the gap (03:30 CEST)
        ("Europe/Paris", "2026-03-28T12:00:00+00:00", "02:30", (), "2026-03-29T01:30:00+00:00"),
        # 02:30 happens twice on 2026-10-25: the first one (CEST, 00:30Z)
        ("Europe/Paris", "2026-10-24T12:00:00+00:00", "02:30", (), "2026-10-25T00:30:00+00:00"),
        # after the fall-back, 09:00 CET is 08:00Z
        ("Europe/Paris", "2026-10-24T12:00:00+00:00", "09:00", (), "2026-10-25T08:00:00+00:00"),
        # New York spring forward (2026-03-08): 09:00 EDT is 13:00Z, the day before 14:00Z
        ("America/New_York", "2026-03-07T15:00:00+00:00", "09:00", (), "2026-03-08T13:00:00+00:00"),
        # weekdays only: Friday 10:00 local → Monday 09:00
        (
            "Europe/Madrid",
            "2026-01-09T09:00:00+00:00",
            "09:00",
            ("mon", "tue", "wed", "thu", "fri"),
            "2026-01-12T08:00:00+00:00",
        ),
        # exactly at the moment counts as reached
        ("UTC", "2026-01-05T09:00:00+00:00", "09:00", ("mon",), "2026-01-05T09:00:00+00:00"),
        # a half-hour zone
        ("Asia/Kolkata", "2026-01-05T00:00:00+00:00", "09:00", (), "2026-01-05T03:30:00+00:00"),
    ],
)
def test_next_local_time(
    tz: str, after: str, at: str, weekdays: tuple[str, ...], expected: str
) -> None:
    hour, minute = map(int, at.split(":"))
    due = next_local_time_ms(ms(after), zone(tz), time(hour, minute), weekday_numbers(weekdays))  # type: ignore[arg-type]
    assert due == ms(expected)


def test_local_round_trip_outside_transitions() -> None:
    tz = zone("Australia/Sydney")
    instant = ms("2026-07-01T03:15:00+00:00")
    assert local_instant_ms(to_local(instant, tz), tz) == instant


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Europe/"])
def test_unknown_timezone(name: str) -> None:
    with pytest.raises(InvalidInput, match="unknown timezone"):
        zone(name)


@pytest.mark.parametrize(
    ("after", "kwargs", "expected"),
    [
        ("2026-01-05T08:00", {"at": datetime(2026, 1, 5, 9)}, datetime(2026, 1, 5, 9)),
        ("2026-01-05T09:00", {"at": datetime(2026, 1, 5, 9)}, None),
        (
            "2026-01-05T09:00",
            {"every": "day", "time_of_day": time(9)},
            datetime(2026, 1, 6, 9),
        ),
        (
            "2026-01-06T10:00",  # a Tuesday
            {"every": "week", "time_of_day": time(9), "weekdays": {0, 3}},
            datetime(2026, 1, 8, 9),
        ),
        (
            "2026-02-01T00:00",
            {"every": "month", "time_of_day": time(9), "day_of_month": 31},
            datetime(2026, 2, 28, 9),  # clamped to the month's last day
        ),
        (
            "2026-12-31T10:00",
            {"every": "month", "time_of_day": time(9), "day_of_month": 31},
            datetime(2027, 1, 31, 9),
        ),
        (
            "2026-01-01T00:00",
            {"every": "day", "time_of_day": time(9), "starts": date(2026, 2, 1)},
            datetime(2026, 2, 1, 9),
        ),
        (
            "2026-02-01T10:00",
            {"every": "day", "time_of_day": time(9), "ends": date(2026, 2, 1)},
            None,
        ),
    ],
)
def test_schedule_occurrences(after: str, kwargs: dict[str, object], expected: object) -> None:
    assert next_schedule_occurrence(datetime.fromisoformat(after), **kwargs) == expected  # type: ignore[arg-type]
