"""The date grammar both compilers share: what is an instant, and which one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from legato.domain.conditions.instants import (
    DAY_MS,
    Span,
    days_from_civil,
    instant_ms,
    normalise_date_operand,
    operand_span,
    parse_iso_ms,
)
from legato.errors import InvalidInput


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


INSTANTS = [
    ("2024-01-05", ms(datetime(2024, 1, 5, tzinfo=UTC))),
    ("2024-01-05T10:20", ms(datetime(2024, 1, 5, 10, 20, tzinfo=UTC))),
    ("2024-01-05 10:20:30", ms(datetime(2024, 1, 5, 10, 20, 30, tzinfo=UTC))),
    ("2024-01-05T10:20:30.5Z", ms(datetime(2024, 1, 5, 10, 20, 30, 500_000, tzinfo=UTC))),
    ("2024-01-05T10:20:30.123999999Z", ms(datetime(2024, 1, 5, 10, 20, 30, 123_000, tzinfo=UTC))),
    ("2024-01-05T10:20:30+02:00", ms(datetime(2024, 1, 5, 8, 20, 30, tzinfo=UTC))),
    ("2024-01-05T00:10-05:30", ms(datetime(2024, 1, 5, 5, 40, tzinfo=UTC))),
    ("2024-02-29", ms(datetime(2024, 2, 29, tzinfo=UTC))),
    ("2000-02-29", ms(datetime(2000, 2, 29, tzinfo=UTC))),
    ("0001-01-01", ms(datetime(1, 1, 1, tzinfo=UTC))),
    ("9999-12-31T23:59:59.999Z", ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))),
    ("1969-12-31T23:59:59Z", -1000),
    # not instants
    ("2023-02-29", None),
    ("1900-02-29", None),
    ("2024-04-31", None),
    ("2024-13-01", None),
    ("2024-00-10", None),
    ("0000-01-01", None),
    ("2024-01-05T24:00", None),
    ("2024-01-05T10:60", None),
    ("2024-01-05T10:00:60", None),
    ("2024-01-05T10:00+24:00", None),
    ("2024-01-05T10:00+01:60", None),
    ("2024-01-05T10:00:00.Z", None),
    ("2024-01-05T10:00:00.1234567890Z", None),
    ("2024-01-05T10:00:00z", None),
    ("2024-01-05t10:00", None),
    ("2024-01-05Z", None),
    ("2024-1-5", None),
    ("2024-01-05T10", None),
    ("2024-01-05T10:00+0100", None),
    (" 2024-01-05", None),
    ("2024-01-05\n", None),
    ("２０２４-01-05", None),  # noqa: RUF001 - full-width digits are not digits here
    ("", None),
]


@pytest.mark.parametrize("text, expected", INSTANTS)
def test_the_strict_iso_grammar(text: str, expected: int | None) -> None:
    assert parse_iso_ms(text) == expected


NUMBERS = [
    (1_704_067_200, 1_704_067_200_000),  # seconds
    (1_704_067_200.0, 1_704_067_200_000),
    (1_704_067_200_000, 1_704_067_200_000),  # milliseconds
    (99_999_999_999, 99_999_999_999_000),  # the largest seconds
    (100_000_000_000, 100_000_000_000),  # the smallest milliseconds
    (-5, -5000),
    (0, 0),
    (2**53, 2**53),
    (2**53 + 1, None),
    (1.5, None),
    (True, None),
    (None, None),
    ([1], None),
]


@pytest.mark.parametrize("value, expected", NUMBERS, ids=str)
def test_numbers_are_epoch_seconds_or_milliseconds(value: object, expected: int | None) -> None:
    assert instant_ms(value) == expected


def test_days_from_civil_matches_the_calendar() -> None:
    day = date(1, 1, 1)
    epoch = date(1970, 1, 1)
    while day.year < 9999:
        assert days_from_civil(day.year, day.month, day.day) == (day - epoch).days
        day += timedelta(days=97)


OPERANDS = [
    (
        date(2024, 1, 5),
        "2024-01-05",
        Span(ms(datetime(2024, 1, 5, tzinfo=UTC)), ms(datetime(2024, 1, 6, tzinfo=UTC))),
    ),
    (datetime(2024, 1, 5, 10, 0, 0, 123_456), "2024-01-05T10:00:00.123Z", None),
    (
        datetime(2024, 1, 5, 10, tzinfo=timezone(timedelta(hours=2))),
        "2024-01-05T08:00:00.000Z",
        None,
    ),
    ("2024-01-05T10:00Z", "2024-01-05T10:00Z", None),
    (1_704_067_200, 1_704_067_200, Span(1_704_067_200_000, 1_704_067_200_001)),
]


@pytest.mark.parametrize("given, stored, span", OPERANDS, ids=str)
def test_date_operands_normalise(given: object, stored: object, span: Span | None) -> None:
    assert normalise_date_operand(given) == stored
    assert isinstance(stored, str | int)
    got = operand_span(stored)
    assert got.end_ms - got.start_ms in (1, DAY_MS)
    if span is not None:
        assert got == span


@pytest.mark.parametrize("bad", ["tomorrow", "2024-02-30", 2**60, 1.5, True, None, [2024]])
def test_bad_date_operands(bad: object) -> None:
    with pytest.raises(InvalidInput):
        normalise_date_operand(bad)
