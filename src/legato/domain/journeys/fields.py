"""The scalar types of the journey document: durations, times, keys, references, conditions.

Every field a user writes is one of these annotated types; each validates, serialises back to
what the user wrote, and publishes its JSON Schema. `DocModel` is the frozen base of every part
of the document. Pure: nothing here does I/O.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from legato.domain.conditions import (
    Condition,
    PropertyFilter,
    parse_condition,
    parse_event_filters,
)
from legato.domain.durations import format_duration_ms, parse_duration_ms
from legato.domain.local_time import format_time_of_day, parse_time_of_day, zone
from legato.errors import InvalidInput

# ---------------------------------------------------------------------------------------------
# Scalars users write


def _duration(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_duration_ms(value)
    if not isinstance(value, str):
        raise PydanticCustomError("duration", f"not a duration: {value!r} (write e.g. 30m, 1h, 7d)")
    try:
        return parse_duration_ms(value)
    except InvalidInput as exc:
        raise PydanticCustomError("duration", exc.message) from exc


def _signed_duration(value: Any) -> int:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -_duration(value.strip()[1:])
    return _duration(value)


def _format_signed(ms: int) -> str:
    return f"-{format_duration_ms(-ms)}" if ms < 0 else format_duration_ms(ms)


def _time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 10:30 as the base-60 integer 630.
        raise PydanticCustomError(
            "time_of_day",
            "a time of day must be a quoted string such as '10:30' "
            "(YAML read it as the number {value})",
            {"value": value},
        )
    if not isinstance(value, str):
        raise PydanticCustomError("time_of_day", f"not a time of day: {value!r}")
    try:
        return parse_time_of_day(value)
    except InvalidInput as exc:
        raise PydanticCustomError("time_of_day", exc.message) from exc


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("timezone", "a timezone is an IANA name such as Europe/Paris")
    try:
        zone(value)
    except InvalidInput as exc:
        raise PydanticCustomError("timezone", exc.message) from exc
    return value


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+\s*(ms|s|m|h|d|w)\s*)+$"},
        {"type": "integer", "minimum": 0, "description": "seconds"},
    ],
    "description": 'a duration such as "90s", "15m", "1h", "7d", "2w"',
}

Duration: TypeAlias = Annotated[
    int,
    BeforeValidator(_duration),
    PlainSerializer(format_duration_ms, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
SignedDuration: TypeAlias = Annotated[
    int,
    BeforeValidator(_signed_duration),
    PlainSerializer(_format_signed, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?(\d+(ms|s|m|h|d|w))+$",
            "description": 'e.g. "-1d", "2h"',
        }
    ),
]
TimeOfDay: TypeAlias = Annotated[
    time,
    BeforeValidator(_time_of_day),
    PlainSerializer(format_time_of_day, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"}),
]
TimeZoneName: TypeAlias = Annotated[str, BeforeValidator(_timezone)]

Key: TypeAlias = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-.]{0,127}$")]
NodeId: TypeAlias = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")]
EventName: TypeAlias = Annotated[str, Field(min_length=1, max_length=200)]
TraitName: TypeAlias = Annotated[str, Field(pattern=r"^[A-Za-z_$][A-Za-z0-9_\-.$]{0,127}$")]
PropertyPath: TypeAlias = Annotated[
    str, Field(pattern=r"^properties(\.[^.\s][^.]*)+$", description="e.g. properties.cart_id")
]
BodyPath: TypeAlias = Annotated[
    str, Field(pattern=r"^[^.\s][^.]*(\.[^.\s][^.]*)*$", description="dotted path in the response")
]

REFERENCE_PREFIXES = ("trigger.", "data.")
Reference: TypeAlias = Annotated[
    str,
    Field(
        pattern=r"^(trigger\.properties|data)(\.[^.\s][^.]*)+$",
        description="trigger.properties.<path> or data.<path>",
    ),
]


def reference_path(value: Any) -> tuple[str, ...] | None:
    """The path a document value refers to (`("trigger", "properties", "cart_id")`), or None."""
    if isinstance(value, str) and value.startswith(REFERENCE_PREFIXES):
        return tuple(value.split("."))
    return None


# ---------------------------------------------------------------------------------------------
# Conditions and event filters come from the shared condition language


def _condition(value: Any) -> Condition:
    if isinstance(value, BaseModel):
        return value  # type: ignore[return-value]
    try:
        return parse_condition(value)
    except InvalidInput as exc:
        raise PydanticCustomError(
            "condition",
            "{message}",
            {"message": exc.message, "subpath": exc.details.get("path", "$")},
        ) from exc


def _event_filter(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(item, PropertyFilter) for item in value):
        return value
    try:
        return parse_event_filters(value)
    except InvalidInput as exc:
        raise PydanticCustomError(
            "event_filter",
            "{message}",
            {"message": exc.message, "subpath": exc.details.get("path", "$")},
        ) from exc


ConditionField: TypeAlias = Annotated[Condition, BeforeValidator(_condition)]
#: Property filters on an event, the condition language's `where:` list
#: (`[{property: total, gt: 50}]`).
EventFilter: TypeAlias = Annotated[tuple[PropertyFilter, ...], BeforeValidator(_event_filter)]


class DocModel(BaseModel):
    """The frozen base of every part of a journey document: unknown fields are errors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
