"""The comparisons of the condition language: one operator and its operand, typed.

A comparison (`eq`, `in`, `between`, `starts_with`, `before`, `within_last`...) is the body of
a trait, computed-trait or event-property leaf; event conditions also compare counts and the
first or last time they happened. Each model refuses a second operator, bounds the wrong way
round and operands its declared `type` cannot match, naming the field at fault. The node
kinds built from these are in `tree`; evaluation is elsewhere (`values`, `predicates`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from legato.domain.conditions.instants import operand_span
from legato.domain.conditions.operands import (
    COUNT_OPERATORS,
    DATE_OPERATORS,
    MAX_LIST,
    VALUE_OPERATORS,
    Count,
    DateOperand,
    Duration,
    Key,
    Ordered,
    Scalar,
    Text,
    TraitPath,
    ValueType,
    fail,
)


class NodeModel(BaseModel):
    """Base of every node: frozen, no unknown keys, fields by name or alias (`in`, `not`)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )


def field_error(loc: tuple[str | int, ...], message: str, value: object) -> NoReturn:
    """Fail naming a field inside the model being validated (its path, not the node's)."""
    raise ValidationError.from_exception_data(
        "Condition",
        [
            InitErrorDetails(
                type=PydanticCustomError("invalid_condition", message), loc=loc, input=value
            )
        ],
    )


def only_one(node: BaseModel, names: tuple[str, ...], what: str) -> tuple[str, Any] | None:
    """The one operator of `names` set on `node` (None if none); several is an error."""
    found = [(name, getattr(node, _attr(name))) for name in names]
    found = [(name, value) for name, value in found if value is not None]
    if len(found) > 1:
        listed = ", ".join(name for name, _ in found)
        fail(f"{what} takes one operator, not several ({listed}); combine with all: [...]")
    return found[0] if found else None


def _attr(name: str) -> str:
    return "in_" if name == "in" else name


def _exactly_one(operators: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema saying that exactly one of `operators` is present."""
    return {"oneOf": [{"required": [name]} for name in operators]}


class KeyFirst(NodeModel):
    """A leaf whose dumped shape starts with its kind key (`trait: ...` before the operator)."""

    _kind_key: ClassVar[str]

    @model_serializer(mode="wrap")
    def _key_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self._kind_key not in data:
            return data
        return {self._kind_key: data.pop(self._kind_key), **data}


class Comparison(KeyFirst):
    """One operator comparing a JSON value; the operand's type decides how (see `values`)."""

    _kind_key = ""
    model_config = ConfigDict(json_schema_extra=_exactly_one(VALUE_OPERATORS + DATE_OPERATORS))

    type: ValueType | None = Field(
        None, description="The value's declared type: limits the operators that make sense."
    )
    eq: Scalar | None = Field(None, description="Equal (same type; 1 equals 1.0).")
    ne: Scalar | None = Field(None, description="Not equal (true when missing).")
    gt: Ordered | None = None
    gte: Ordered | None = None
    lt: Ordered | None = None
    lte: Ordered | None = None
    between: tuple[Ordered, Ordered] | None = Field(None, description="Inclusive range.")
    in_: tuple[Scalar, ...] | None = Field(None, alias="in", max_length=MAX_LIST)
    not_in: tuple[Scalar, ...] | None = Field(None, max_length=MAX_LIST)
    contains: Scalar | None = Field(
        None, description="Substring of a string value, or an element of a list value."
    )
    starts_with: Text | None = None
    ends_with: Text | None = None
    exists: Literal[True] | None = Field(None, description="Present and not null.")
    not_exists: Literal[True] | None = Field(None, description="Missing or null.")
    before: DateOperand | None = None
    after: DateOperand | None = None
    between_dates: tuple[DateOperand, DateOperand] | None = Field(
        None, description="Inclusive; a YYYY-MM-DD end covers that whole day."
    )
    within_last: Duration | None = Field(None, description="In the past, less than this ago.")
    within_next: Duration | None = Field(None, description="In the future, at most this ahead.")

    @model_validator(mode="after")
    def _one_operator(self) -> Comparison:
        found = only_one(self, VALUE_OPERATORS + DATE_OPERATORS, "a comparison")
        if found is None:
            fail("needs one operator: " + ", ".join(VALUE_OPERATORS + DATE_OPERATORS))
        name, operand = found
        if name == "between":
            low, high = operand
            if isinstance(low, str) != isinstance(high, str):
                field_error(("between",), "between needs two numbers or two strings", operand)
            if low > high:
                field_error(("between",), "between's bounds are the wrong way round", operand)
        if name == "between_dates":
            low_span, high_span = operand_span(operand[0]), operand_span(operand[1])
            if low_span.start_ms >= high_span.end_ms:
                field_error(("between_dates",), "between_dates ends before it starts", operand)
        if self.type is not None:
            _check_declared_type(self.type, name, operand)
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = only_one(self, VALUE_OPERATORS + DATE_OPERATORS, "a comparison")
        assert found is not None
        return found


_ANY_TYPE = ("exists", "not_exists")
_TYPE_OPERATORS = {
    "string": (*VALUE_OPERATORS, *_ANY_TYPE),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", *_ANY_TYPE),
    "boolean": ("eq", "ne", "in", "not_in", *_ANY_TYPE),
    "date": (*DATE_OPERATORS, *_ANY_TYPE),
    "list": ("contains", *_ANY_TYPE),
}
_TYPE_TESTS: dict[str, Any] = {
    "string": lambda item: isinstance(item, str),
    "number": lambda item: isinstance(item, int | float) and not isinstance(item, bool),
    "boolean": lambda item: isinstance(item, bool),
}


def _check_declared_type(declared: str, name: str, operand: Any) -> None:
    """Refuse an operator or operand that cannot match a value of the declared type."""
    if name not in _TYPE_OPERATORS[declared]:
        allowed = ", ".join(_TYPE_OPERATORS[declared])
        field_error((name,), f"{name} does not apply to a {declared} value ({allowed} do)", operand)
    fits = _TYPE_TESTS.get(declared)
    if fits is None or name in _ANY_TYPE:
        return
    items = operand if isinstance(operand, tuple) else (operand,)
    if not all(fits(item) for item in items):
        field_error((name,), f"a {declared} value compares with {declared}s only", operand)


class TraitCondition(Comparison):
    """A profile trait (dotted path into nested objects) compared with one operator."""

    _kind_key = "trait"
    trait: TraitPath


class ComputedTraitCondition(Comparison):
    """A computed trait's current value compared with one operator."""

    _kind_key = "computed_trait"
    computed_trait: Key


class PropertyFilter(Comparison):
    """An event property (path under `properties`) compared with one operator."""

    _kind_key = "property"
    model_config = ConfigDict(json_schema_extra=_exactly_one(VALUE_OPERATORS + DATE_OPERATORS[:3]))
    property: TraitPath

    @model_validator(mode="after")
    def _no_relative_time(self) -> PropertyFilter:
        name, _ = self.operator
        if name in ("within_last", "within_next"):
            fail(
                f"{name} is not allowed in a property filter: put the window on the event "
                "(within: ...)"
            )
        return self


class CountComparison(NodeModel):
    """How many qualifying events: one operator."""

    model_config = ConfigDict(json_schema_extra=_exactly_one(COUNT_OPERATORS))

    eq: Count | None = None
    ne: Count | None = None
    gt: Count | None = None
    gte: Count | None = None
    lt: Count | None = None
    lte: Count | None = None
    between: tuple[Count, Count] | None = Field(None, description="Inclusive range.")

    @model_validator(mode="after")
    def _one_operator(self) -> CountComparison:
        found = only_one(self, COUNT_OPERATORS, "count")
        if found is None:
            fail("count needs one operator: " + ", ".join(COUNT_OPERATORS))
        if found[0] == "between" and found[1][0] > found[1][1]:
            field_error(("between",), "between's bounds are the wrong way round", found[1])
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = only_one(self, COUNT_OPERATORS, "count")
        assert found is not None
        return found


class DateComparison(NodeModel):
    """When an event was first or last performed: one date operator."""

    model_config = ConfigDict(json_schema_extra=_exactly_one(DATE_OPERATORS[:4]))

    before: DateOperand | None = None
    after: DateOperand | None = None
    between_dates: tuple[DateOperand, DateOperand] | None = None
    within_last: Duration | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> DateComparison:
        ops = ("before", "after", "between_dates", "within_last")
        found = only_one(self, ops, "a date comparison")
        if found is None:
            fail("needs one operator: " + ", ".join(ops))
        if found[0] == "between_dates":
            low_span, high_span = operand_span(found[1][0]), operand_span(found[1][1])
            if low_span.start_ms >= high_span.end_ms:
                field_error(("between_dates",), "between_dates ends before it starts", found[1])
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = only_one(self, ("before", "after", "between_dates", "within_last"), "date")
        assert found is not None
        return found
