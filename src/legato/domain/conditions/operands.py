"""The operands and names a condition may hold, each with the check that bounds it.

Strings, lists, paths, numbers and durations are all capped here, so that no condition can
make a worker do unbounded work; there are no user regular expressions anywhere. The
`Annotated` types carry their own validation and JSON Schema for `tree`'s models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from math import isfinite
from typing import Annotated, NoReturn

from pydantic import Field, PlainValidator, StrictInt
from pydantic_core import PydanticCustomError

from legato.domain.conditions.instants import normalise_date_operand
from legato.domain.durations import parse_duration_ms
from legato.errors import InvalidInput

#: Deepest nesting of combinators a condition may have.
MAX_DEPTH = 16
#: Most nodes (combinators and leaves) in one condition.
MAX_NODES = 256
#: Most children of one `all`/`any`.
MAX_CHILDREN = 100
#: Most items in an `in`/`not_in` list.
MAX_LIST = 1000
#: Longest string operand, event name or path.
MAX_STRING = 1000
#: Most property filters on one event condition.
MAX_FILTERS = 16
#: Most dotted segments in a trait or property path.
MAX_PATH_SEGMENTS = 8
#: Longest time window (100 years).
MAX_DURATION_MS = 36_500 * 86_400_000
#: Largest magnitude of a number operand: beyond it doubles and integers stop agreeing.
MAX_NUMBER = 2**53
#: Largest count a count comparison may name.
MAX_COUNT = 1_000_000_000

#: The key that says what kind a condition node is, in the order they are looked for.
KINDS = ("all", "any", "not", "event", "trait", "computed_trait", "segment", "random_bucket")
#: Operators that compare a value, whatever its time.
VALUE_OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "exists",
    "not_exists",
)
#: Operators that read the value as an instant (see `instants`).
DATE_OPERATORS = ("before", "after", "between_dates", "within_last", "within_next")
#: Types a comparison may declare for its value.
VALUE_TYPES = ("string", "number", "boolean", "date", "list")
#: Count comparisons of an event condition.
COUNT_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")

_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,99}")
_FORBIDDEN_IN_PATH = re.compile(r'["\\\[\]\x00-\x1f\x7f]')


# ---------------------------------------------------------------------------- operand types


def fail(message: str) -> NoReturn:
    """Refuse an operand: pydantic reports the message at the operand's path."""
    raise PydanticCustomError("invalid_condition", message)


def kind_name(value: object) -> str:
    """How an error message names the JSON type of a value."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _text(value: object) -> str:
    if not isinstance(value, str):
        fail(f"needs a string, not {kind_name(value)}")
    if len(value) > MAX_STRING:
        fail(f"is longer than {MAX_STRING} characters")
    if "\x00" in value:
        fail("contains a NUL character")
    return value


def _nonempty_text(value: object) -> str:
    text = _text(value)
    if not text:
        fail("needs a non-empty string")
    return text


def _number(value: int | float) -> int | float:
    if isinstance(value, float) and not isfinite(value):
        fail("needs a finite number")
    if abs(value) > MAX_NUMBER:
        fail("numbers in conditions must be within ±2**53")
    return value


def _scalar(value: object) -> str | int | float | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, date):
        # YAML reads an unquoted 2024-01-05 as a date: compare it as the text it was.
        return normalise_date_operand(value)
    fail(f"needs a string, number or boolean, not {kind_name(value)}")


def _ordered(value: object) -> str | int | float:
    if isinstance(value, date):
        fail("compares numbers or strings; for dates use before, after or between_dates")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        fail(f"needs a number or a string, not {kind_name(value)}")
    return _text(value) if isinstance(value, str) else _number(value)


def _duration(value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        fail(f"needs a duration such as 30m, 7d or 2w, not {kind_name(value)}")
    try:
        ms = parse_duration_ms(value)
    except InvalidInput as exc:
        fail(exc.message)
    if ms <= 0:
        fail("a duration must be longer than zero")
    if ms > MAX_DURATION_MS:
        fail("a duration may not pass 36500d")
    return value


def _date_operand(value: object) -> str | int:
    try:
        return normalise_date_operand(value)
    except InvalidInput as exc:
        fail(exc.message)


def _path(value: object) -> str:
    text = _nonempty_text(value)
    segments = text.split(".")
    if len(segments) > MAX_PATH_SEGMENTS:
        fail(f"a path has at most {MAX_PATH_SEGMENTS} dotted parts")
    for segment in segments:
        if not segment:
            fail(f"{text!r} has an empty part")
        if segment.isdigit():
            # PostgreSQL's path operators would read an all-digit part as an array index.
            fail(f"{text!r}: a path part cannot be all digits")
        if _FORBIDDEN_IN_PATH.search(segment):
            fail(f"{text!r}: quotes, backslashes, brackets and control characters are not allowed")
    return text


def _percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(f"percent needs a number from 0 to 100, not {kind_name(value)}")
    if not 0 <= value <= 100:
        fail("percent is from 0 to 100")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        fail("percent has at most two decimals")
    return float(value)


def _value_type(value: object) -> str:
    if not isinstance(value, str) or value not in VALUE_TYPES:
        fail(f"unknown type {value!r} (one of {', '.join(VALUE_TYPES)})")
    return value


def _key(value: object) -> str:
    text = _text(value)
    if not _KEY.fullmatch(text):
        fail(f"{text!r} is not a key (letters, digits, _ and -, at most 100)")
    return text


def _event_name(value: object) -> str:
    text = _nonempty_text(value)
    if len(text) > 200:
        fail("an event name has at most 200 characters")
    return text


Scalar = Annotated[
    str | int | float | bool, PlainValidator(_scalar, json_schema_input_type=str | float | bool)
]
Ordered = Annotated[str | int | float, PlainValidator(_ordered, json_schema_input_type=str | float)]
Text = Annotated[str, PlainValidator(_nonempty_text, json_schema_input_type=str)]
Duration = Annotated[
    str | int,
    PlainValidator(_duration, json_schema_input_type=str | int),
    Field(description="A duration: 90s, 15m, 1h, 7d, 2w (an integer is seconds)."),
]
DateOperand = Annotated[
    str | int,
    PlainValidator(_date_operand, json_schema_input_type=str | int),
    Field(description="YYYY-MM-DD (the whole UTC day), an ISO 8601 time, or epoch s/ms."),
]
TraitPath = Annotated[str, PlainValidator(_path, json_schema_input_type=str)]
Key = Annotated[str, PlainValidator(_key, json_schema_input_type=str)]
EventName = Annotated[str, PlainValidator(_event_name, json_schema_input_type=str)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
ValueType = Annotated[
    str,
    PlainValidator(_value_type, json_schema_input_type=str),
    Field(json_schema_extra={"enum": list(VALUE_TYPES)}),
]
Percent = Annotated[
    float, PlainValidator(_percent, json_schema_input_type=float), Field(ge=0, le=100)
]
Seed = Annotated[str, PlainValidator(_text, json_schema_input_type=str)]
