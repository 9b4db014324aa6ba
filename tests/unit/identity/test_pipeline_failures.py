"""Which failures the pipeline retries, which stop the worker, and which are the event's own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from legato.errors import Conflict, InvalidInput
from legato.store.log import classify_failure


class DriverError(Exception):
    """Stands for a psycopg / sqlite3 error: carries a SQLSTATE like psycopg's."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error, expected",
    [
        (Conflict("identifier claimed by a concurrent worker"), "transient"),
        (sa.exc.OperationalError("x", {}, DriverError("deadlock", "40P01")), "transient"),
        (sa.exc.OperationalError("x", {}, DriverError("serialize", "40001")), "transient"),
        (sa.exc.IntegrityError("x", {}, DriverError("duplicate key", "23505")), "transient"),
        (sa.exc.OperationalError("x", {}, DriverError("database is locked")), "transient"),
        (
            sa.exc.OperationalError("x", {}, DriverError("connection refused", "08006")),
            "infrastructure",
        ),
        (sa.exc.InterfaceError("x", {}, DriverError("connection closed")), "infrastructure"),
        (ConnectionResetError("reset"), "infrastructure"),
        (TimeoutError(), "infrastructure"),
        (sa.exc.DataError("x", {}, DriverError("value too long", "22001")), "event"),
        (sa.exc.IntegrityError("x", {}, DriverError("not null", "23502")), "event"),
        (ValueError("bad"), "event"),
        (KeyError("traits"), "event"),
        (InvalidInput("bad"), "event"),
    ],
)
def test_failures_are_sorted(error: BaseException, expected: str) -> None:
    assert classify_failure(error) == expected
