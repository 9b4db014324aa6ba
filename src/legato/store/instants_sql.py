"""The date grammar of `legato.domain.conditions.instants`, in SQL for SQLite and PostgreSQL.

Parsing is plain arithmetic on substrings (no casts that can fail, no session time zone):
the shape is tested first (a regular expression on PostgreSQL, GLOB patterns on SQLite, which
has no regex), then each field is cut only where the shape matched, then days_from_civil adds
it up. The property tests in `tests/properties/conditions` hold it to the Python grammar.
Builds expressions only; executes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from legato.domain.conditions.instants import (
    DAY_MS,
    ISO_PATTERN,
    MAX_EPOCH_NUMBER,
    MAX_FRACTION_DIGITS,
    SECONDS_BELOW,
)

Bool = ColumnElement[bool]
Int = ColumnElement[int]


def big(value: int) -> Int:
    """An integer literal typed BIGINT (PostgreSQL would make small ones int4 and overflow)."""
    return sa.literal(value, sa.BigInteger)


def number_instant(dialect: str, text: ColumnElement[Any]) -> Int:
    """The instant a JSON number denotes (`instants.number_ms`) or NULL; `text` is the value
    as SQLite's json_extract or PostgreSQL's `#>>` gives it, read only where it is a number."""
    limit = big(MAX_EPOCH_NUMBER)
    if dialect == "sqlite":
        number: ColumnElement[Any] = text
        whole: Int = sa.cast(number, sa.BigInteger)
        integral = sa.and_(number == whole, sa.func.abs(number) <= limit)
    else:
        number = sa.cast(text, sa.Numeric)
        whole = sa.cast(number, sa.BigInteger)
        integral = sa.and_(number == sa.func.trunc(number), sa.func.abs(number) <= limit)
    scaled = sa.case((sa.func.abs(number) < big(SECONDS_BELOW), whole * 1000), else_=whole)
    return sa.case((integral, scaled), else_=sa.null())


def iso_shape(dialect: str, text: ColumnElement[str]) -> Bool:
    """Whether text has the shape of `instants.ISO_PATTERN` (ranges are checked later)."""
    if dialect == "postgresql":
        return text.op("~", return_type=sa.Boolean)(f"^{ISO_PATTERN}$")
    return sa.or_(*(text.op("GLOB", return_type=sa.Boolean)(shape) for shape in _GLOBS))


def iso_fields(text: ColumnElement[str], ok: ColumnElement[bool]) -> list[sa.Label[Any]]:
    """The fields of a string of the date grammar, each read only where `ok` (casts of other
    text could fail on PostgreSQL); positions follow `instants.ISO_PATTERN`."""

    def guarded(name: str, expr: ColumnElement[Any]) -> sa.Label[Any]:
        return sa.case((ok == sa.true(), expr), else_=sa.null()).label(name)

    def part(start: ColumnElement[int] | int, length: int) -> Int:
        return sa.cast(sa.func.substr(text, start, length), sa.BigInteger)

    def char(position: ColumnElement[int] | int) -> ColumnElement[str]:
        return sa.func.substr(text, position, 1)

    size: Int = sa.func.length(text)
    has_time = size > 10
    zone_size = sa.case(
        (char(size) == "Z", 1),
        (sa.and_(has_time, char(size - 5).in_(("+", "-"))), 6),
        else_=0,
    )
    has_zone = sa.and_(has_time, char(size - 5).in_(("+", "-")))
    fraction = sa.func.substr(text, 21, size - zone_size - 20)
    return [
        guarded("year", part(1, 4)),
        guarded("month", part(6, 2)),
        guarded("day", part(9, 2)),
        guarded("hour", sa.case((has_time, part(12, 2)), else_=0)),
        guarded("minute", sa.case((has_time, part(15, 2)), else_=0)),
        guarded("second", sa.case((sa.and_(size >= 19, char(17) == ":"), part(18, 2)), else_=0)),
        guarded(
            "millis",
            sa.case(
                (
                    sa.and_(size >= 21, char(20) == "."),
                    sa.cast(sa.func.substr(fraction.concat("000"), 1, 3), sa.BigInteger),
                ),
                else_=0,
            ),
        ),
        guarded(
            "zone_sign", sa.case((has_zone, sa.case((char(size - 5) == "-", -1), else_=1)), else_=0)
        ),
        guarded("zone_hours", sa.case((has_zone, part(size - 4, 2)), else_=0)),
        guarded("zone_minutes", sa.case((has_zone, part(size - 1, 2)), else_=0)),
    ]


def iso_instant(f: Any) -> Int:
    """Epoch ms from the fields `_iso_fields` cut, or NULL when a field is out of range."""
    year, month, day = f.year, f.month, f.day
    leap = sa.or_(sa.and_(year % 4 == 0, year % 100 != 0), year % 400 == 0)
    month_days = sa.case(
        (month == 2, sa.case((leap, 29), else_=28)),
        (month.in_((4, 6, 9, 11)), 30),
        else_=31,
    )
    valid = sa.and_(
        year >= 1,
        month.between(1, 12),
        day.between(1, month_days),
        f.hour <= 23,
        f.minute <= 59,
        f.second <= 59,
        f.zone_hours <= 23,
        f.zone_minutes <= 59,
    )
    # days_from_civil (see instants): every operand is non-negative, so SQL's truncating
    # integer division is the floor division the Python side uses.
    shifted = year - sa.case((month <= 2, 1), else_=0)
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * (month + sa.case((month > 2, -3), else_=9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    offset = f.zone_sign * (f.zone_hours * 60 + f.zone_minutes)
    seconds = (f.hour * 60 + f.minute) * 60 + f.second - offset * 60
    return sa.case((valid, days * big(DAY_MS) + seconds * 1000 + f.millis), else_=sa.null())


def _glob_shapes() -> tuple[str, ...]:
    """SQLite GLOB patterns spelling out `instants.ISO_PATTERN` (SQLite has no regex)."""
    digit = "[0-9]"
    day = f"{digit * 4}-{digit * 2}-{digit * 2}"
    clock = f"[T ]{digit * 2}:{digit * 2}"
    times = [clock, f"{clock}:{digit * 2}"]
    times += [f"{clock}:{digit * 2}.{digit * n}" for n in range(1, MAX_FRACTION_DIGITS + 1)]
    zones = ["", "Z", f"[+-]{digit * 2}:{digit * 2}"]
    return (day, *(day + time + zone for time in times for zone in zones))


_GLOBS = _glob_shapes()
