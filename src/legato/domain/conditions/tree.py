"""The condition language's tree: frozen pydantic models of the very shape users write.

Which key a JSON object carries says what node it is:

    {all: [...]}  {any: [...]}  {not: {...}}                combinators
    {event: NAME, ...}                                      event conditions
    {trait: PATH, OP: OPERAND}                              trait comparisons
    {computed_trait: KEY, OP: OPERAND}                      computed-trait comparisons
    {segment: KEY}                                          segment membership
    {random_bucket: {percent: P, seed: S}}                  deterministic split by profile

`parse_condition` turns a JSON/YAML value into the tree and names the JSON path of whatever is
wrong; `dump_condition` gives the user shape back (`schema` publishes it as JSON Schema).
Operands and their bounds (depth, node count, list and string sizes) are in `operands`. This
module never evaluates a condition (that is `predicates`) and never does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, NoReturn, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from legato.domain.conditions.instants import operand_span
from legato.domain.conditions.operands import (
    COUNT_OPERATORS,
    DATE_OPERATORS,
    KINDS,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_FILTERS,
    MAX_LIST,
    MAX_NODES,
    VALUE_OPERATORS,
    Count,
    DateOperand,
    Duration,
    EventName,
    Key,
    Ordered,
    Percent,
    Scalar,
    Seed,
    Text,
    TraitPath,
    ValueType,
    fail,
    kind_name,
)
from legato.errors import InvalidInput

# ---------------------------------------------------------------------------------- models


class _Node(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )


def _field_error(loc: tuple[str | int, ...], message: str, value: object) -> NoReturn:
    """Fail naming a field inside the model being validated (its path, not the node's)."""
    raise ValidationError.from_exception_data(
        "Condition",
        [
            InitErrorDetails(
                type=PydanticCustomError("invalid_condition", message), loc=loc, input=value
            )
        ],
    )


def _only_one(node: BaseModel, names: tuple[str, ...], what: str) -> tuple[str, Any] | None:
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


class _KeyFirst(_Node):
    """A leaf whose dumped shape starts with its kind key (`trait: ...` before the operator)."""

    _kind_key: ClassVar[str]

    @model_serializer(mode="wrap")
    def _key_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self._kind_key not in data:
            return data
        return {self._kind_key: data.pop(self._kind_key), **data}


class Comparison(_KeyFirst):
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
        found = _only_one(self, VALUE_OPERATORS + DATE_OPERATORS, "a comparison")
        if found is None:
            fail("needs one operator: " + ", ".join(VALUE_OPERATORS + DATE_OPERATORS))
        name, operand = found
        if name == "between":
            low, high = operand
            if isinstance(low, str) != isinstance(high, str):
                _field_error(("between",), "between needs two numbers or two strings", operand)
            if low > high:
                _field_error(("between",), "between's bounds are the wrong way round", operand)
        if name == "between_dates":
            low_span, high_span = operand_span(operand[0]), operand_span(operand[1])
            if low_span.start_ms >= high_span.end_ms:
                _field_error(("between_dates",), "between_dates ends before it starts", operand)
        if self.type is not None:
            _check_declared_type(self.type, name, operand)
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = _only_one(self, VALUE_OPERATORS + DATE_OPERATORS, "a comparison")
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
        _field_error(
            (name,), f"{name} does not apply to a {declared} value ({allowed} do)", operand
        )
    fits = _TYPE_TESTS.get(declared)
    if fits is None or name in _ANY_TYPE:
        return
    items = operand if isinstance(operand, tuple) else (operand,)
    if not all(fits(item) for item in items):
        _field_error((name,), f"a {declared} value compares with {declared}s only", operand)


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


class CountComparison(_Node):
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
        found = _only_one(self, COUNT_OPERATORS, "count")
        if found is None:
            fail("count needs one operator: " + ", ".join(COUNT_OPERATORS))
        if found[0] == "between" and found[1][0] > found[1][1]:
            _field_error(("between",), "between's bounds are the wrong way round", found[1])
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = _only_one(self, COUNT_OPERATORS, "count")
        assert found is not None
        return found


class DateComparison(_Node):
    """When an event was first or last performed: one date operator."""

    model_config = ConfigDict(json_schema_extra=_exactly_one(DATE_OPERATORS[:4]))

    before: DateOperand | None = None
    after: DateOperand | None = None
    between_dates: tuple[DateOperand, DateOperand] | None = None
    within_last: Duration | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> DateComparison:
        ops = ("before", "after", "between_dates", "within_last")
        found = _only_one(self, ops, "a date comparison")
        if found is None:
            fail("needs one operator: " + ", ".join(ops))
        if found[0] == "between_dates":
            low_span, high_span = operand_span(found[1][0]), operand_span(found[1][1])
            if low_span.start_ms >= high_span.end_ms:
                _field_error(("between_dates",), "between_dates ends before it starts", found[1])
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        """The (operator name, operand) this comparison holds."""
        found = _only_one(self, ("before", "after", "between_dates", "within_last"), "date")
        assert found is not None
        return found


class EventCondition(_KeyFirst):
    """Events of one name a profile performed: at least once (the default), not at all
    (`performed: false`), a `count`, or when `first_performed`/`last_performed`; optionally
    only those matching `where` and inside `within` (a window ending now) or `between` dates.
    An event counts once its timestamp is not in the future."""

    _kind_key = "event"

    event: EventName
    where: tuple[PropertyFilter, ...] | None = Field(None, max_length=MAX_FILTERS)
    performed: StrictBool | None = None
    count: CountComparison | None = None
    first_performed: DateComparison | None = None
    last_performed: DateComparison | None = None
    within: Duration | None = None
    between: tuple[DateOperand, DateOperand] | None = Field(
        None, description="Absolute window, inclusive; a YYYY-MM-DD end covers that day."
    )

    @model_validator(mode="after")
    def _consistent(self) -> EventCondition:
        measures = [
            name
            for name in ("performed", "count", "first_performed", "last_performed")
            if getattr(self, name) is not None
        ]
        if len(measures) > 1:
            fail(
                "an event condition takes one of performed, count, first_performed, "
                f"last_performed; not {' and '.join(measures)}"
            )
        if self.within is not None and self.between is not None:
            _field_error(("between",), "use within or between, not both", self.between)
        has_window = self.within is not None or self.between is not None
        if has_window and (self.first_performed or self.last_performed):
            window = "within" if self.within is not None else "between"
            _field_error(
                (window,),
                f"{window} does not combine with first_performed or last_performed",
                getattr(self, window),
            )
        if self.between is not None:
            low, high = operand_span(self.between[0]), operand_span(self.between[1])
            if low.start_ms >= high.end_ms:
                _field_error(("between",), "between ends before it starts", self.between)
        return self


class SegmentCondition(_Node):
    """Membership of another segment, now."""

    segment: Key


class BucketSpec(_Node):
    """A deterministic share of profiles, by hash of (seed, profile id)."""

    percent: Percent
    seed: Seed | None = None

    @property
    def basis_points(self) -> int:
        """The share in hundredths of a percent (0..10000)."""
        return round(self.percent * 100)


class RandomBucket(_Node):
    """True for a fixed share of profiles: the same profile always gets the same answer."""

    random_bucket: BucketSpec


class AllOf(_Node):
    """True when every condition holds (an empty list holds)."""

    all: tuple[Condition, ...] = Field(max_length=MAX_CHILDREN)


class AnyOf(_Node):
    """True when at least one condition holds (an empty list never does)."""

    any: tuple[Condition, ...] = Field(max_length=MAX_CHILDREN)


class Not(_Node):
    """True when the condition does not hold."""

    not_: Condition = Field(alias="not")


ConditionNode = (
    AllOf
    | AnyOf
    | Not
    | EventCondition
    | TraitCondition
    | ComputedTraitCondition
    | SegmentCondition
    | RandomBucket
)
_NODE_TYPES = (
    AllOf,
    AnyOf,
    Not,
    EventCondition,
    TraitCondition,
    ComputedTraitCondition,
    SegmentCondition,
    RandomBucket,
)
_LEAF_TYPES: dict[str, type[BaseModel]] = {
    "event": EventCondition,
    "trait": TraitCondition,
    "computed_trait": ComputedTraitCondition,
    "segment": SegmentCondition,
    "random_bucket": RandomBucket,
}


def _validate_node(value: object, _handler: Any) -> ConditionNode:
    if isinstance(value, _NODE_TYPES):
        return value
    try:
        return _parse(value, (), 1, [0])
    except _ParseError as exc:
        raise ValidationError.from_exception_data(
            "Condition",
            [
                InitErrorDetails(
                    type=PydanticCustomError("invalid_condition", exc.message),
                    loc=exc.loc,
                    input=value,
                )
            ],
        ) from None


#: A condition: any node of the tree (validates from the user shape when used as a field).
Condition = Annotated[ConditionNode, WrapValidator(_validate_node)]

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()

#: Validates and dumps any condition (the JSON Schema is generated from it too).
CONDITION_ADAPTER: TypeAdapter[ConditionNode] = TypeAdapter(Condition)
_FILTERS: TypeAdapter[tuple[PropertyFilter, ...]] = TypeAdapter(
    Annotated[tuple[PropertyFilter, ...], Field(max_length=MAX_FILTERS)]
)


# ---------------------------------------------------------------------------------- parsing


class _ParseError(Exception):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def render_path(base: str, loc: tuple[str | int, ...]) -> str:
    """A JSON path: `$` plus `.key` and `[index]` steps."""
    out = [base]
    for step in loc:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step):
            out.append(f".{step}")
        else:
            out.append(f"[{step!r}]")
    return "".join(out)


def parse_condition(obj: object, path: str = "$") -> ConditionNode:
    """The condition tree of a JSON/YAML value; InvalidInput names the JSON path at fault."""
    try:
        return _parse(obj, (), 1, [0])
    except _ParseError as exc:
        raise InvalidInput(exc.message, path=render_path(path, exc.loc)) from None


def parse_event_filters(obj: object, path: str = "$") -> tuple[PropertyFilter, ...]:
    """Property filters (`where: [{property: revenue, gt: 100}, ...]`) for one event."""
    if not isinstance(obj, list | tuple):
        raise InvalidInput(f"property filters are a list, not {kind_name(obj)}", path=path)
    try:
        return _FILTERS.validate_python(tuple(obj))
    except ValidationError as exc:
        loc, message = first_error(exc, PropertyFilter)
        raise InvalidInput(message, path=render_path(path, loc)) from None


def _parse(obj: object, loc: tuple[str | int, ...], depth: int, nodes: list[int]) -> ConditionNode:
    if depth > MAX_DEPTH:
        raise _ParseError(loc, f"conditions nest at most {MAX_DEPTH} levels deep")
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise _ParseError(loc, f"a condition has at most {MAX_NODES} nodes")
    if not isinstance(obj, Mapping):
        raise _ParseError(loc, f"a condition is an object, not {kind_name(obj)}")
    kinds = [kind for kind in KINDS if kind in obj]
    if not kinds:
        keys = ", ".join(repr(str(key)) for key in list(obj)[:5]) or "none"
        raise _ParseError(loc, f"a condition needs one of {', '.join(KINDS)} (keys found: {keys})")
    if len(kinds) > 1:
        raise _ParseError(
            loc,
            f"a condition is one of {', '.join(KINDS)}; this one has "
            f"{' and '.join(kinds)}: wrap them in all: [...] or any: [...]",
        )
    kind = kinds[0]
    if kind in ("all", "any", "not"):
        extra = [key for key in obj if key != kind]
        if extra:
            raise _ParseError((*loc, str(extra[0])), f"unknown key {extra[0]!r} beside {kind}")
        if kind == "not":
            return Not.model_validate({"not": _parse(obj["not"], (*loc, "not"), depth + 1, nodes)})
        children = obj[kind]
        if not isinstance(children, list | tuple):
            raise _ParseError((*loc, kind), f"{kind} takes a list, not {kind_name(children)}")
        if len(children) > MAX_CHILDREN:
            raise _ParseError((*loc, kind), f"{kind} takes at most {MAX_CHILDREN} conditions")
        parsed = tuple(
            _parse(child, (*loc, kind, index), depth + 1, nodes)
            for index, child in enumerate(children)
        )
        return AllOf(all=parsed) if kind == "all" else AnyOf(any=parsed)
    model = _LEAF_TYPES[kind]
    try:
        node = model.model_validate(dict(obj))
    except ValidationError as exc:
        step, message = first_error(exc, model)
        raise _ParseError((*loc, *step), message) from None
    assert isinstance(node, _NODE_TYPES)
    return node


def first_error(exc: ValidationError, model: type[BaseModel]) -> tuple[tuple[str | int, ...], str]:
    error = exc.errors(include_url=False)[0]
    loc = tuple(step for step in error["loc"] if isinstance(step, str | int))
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = ", ".join(field.alias or name for name, field in owner.model_fields.items())
        return loc, f"unknown key {loc[-1]!r} (allowed here: {allowed})"
    if error["type"] == "missing":
        return loc, f"missing {loc[-1]!r}"
    if error["type"] == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        return loc, f"must be {expected.replace('True', 'true')}"
    return loc, _PLAIN_MESSAGES.get(error["type"], str(error["msg"]))


_PLAIN_MESSAGES = {
    "tuple_type": "needs a list",
    "bool_type": "needs true or false",
    "int_type": "needs a whole number",
    "model_type": "needs an object",
    "model_attributes_type": "needs an object",
    "dict_type": "needs an object",
}


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel]:
    """The model class that validates the object at `loc` inside `model`."""
    for step in loc:
        if isinstance(step, int):
            continue
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        found = _nested_model(fields[step].annotation) if step in fields else None
        if found is None:
            return model
        model = found
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def dump_condition(cond: ConditionNode) -> dict[str, Any]:
    """The JSON shape users write, for storage and display (parses back to an equal tree)."""
    data: dict[str, Any] = CONDITION_ADAPTER.dump_python(
        cond, mode="json", by_alias=True, exclude_none=True
    )
    return data


def walk(cond: ConditionNode, path: str = "$") -> Iterator[tuple[str, ConditionNode]]:
    """Every node of a condition with its JSON path, parents before children."""
    yield path, cond
    if isinstance(cond, AllOf):
        for index, child in enumerate(cond.all):
            yield from walk(child, f"{path}.all[{index}]")
    elif isinstance(cond, AnyOf):
        for index, child in enumerate(cond.any):
            yield from walk(child, f"{path}.any[{index}]")
    elif isinstance(cond, Not):
        yield from walk(cond.not_, f"{path}.not")
