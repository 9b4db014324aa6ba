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
The comparisons leaves hold are in `comparisons`; operands and their bounds (depth, node
count, list and string sizes) in `operands`. This
module never evaluates a condition (that is `predicates`) and never does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, get_args

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from legato.domain.conditions.comparisons import (
    Comparison,
    ComputedTraitCondition,
    CountComparison,
    DateComparison,
    KeyFirst,
    NodeModel,
    PropertyFilter,
    TraitCondition,
    field_error,
)
from legato.domain.conditions.instants import operand_span
from legato.domain.conditions.operands import (
    KINDS,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_FILTERS,
    MAX_NODES,
    DateOperand,
    Duration,
    EventName,
    Key,
    Percent,
    Seed,
    fail,
    kind_name,
)
from legato.errors import InvalidInput

__all__ = [
    "CONDITION_ADAPTER",
    "AllOf",
    "AnyOf",
    "BucketSpec",
    "Comparison",
    "ComputedTraitCondition",
    "Condition",
    "ConditionNode",
    "CountComparison",
    "DateComparison",
    "EventCondition",
    "Not",
    "PropertyFilter",
    "RandomBucket",
    "SegmentCondition",
    "TraitCondition",
    "dump_condition",
    "first_error",
    "parse_condition",
    "parse_event_filters",
    "render_path",
    "walk",
]

# ---------------------------------------------------------------------------------- nodes


class EventCondition(KeyFirst):
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
            field_error(("between",), "use within or between, not both", self.between)
        has_window = self.within is not None or self.between is not None
        if has_window and (self.first_performed or self.last_performed):
            window = "within" if self.within is not None else "between"
            field_error(
                (window,),
                f"{window} does not combine with first_performed or last_performed",
                getattr(self, window),
            )
        if self.between is not None:
            low, high = operand_span(self.between[0]), operand_span(self.between[1])
            if low.start_ms >= high.end_ms:
                field_error(("between",), "between ends before it starts", self.between)
        return self


class SegmentCondition(NodeModel):
    """Membership of another segment, now."""

    segment: Key


class BucketSpec(NodeModel):
    """A deterministic share of profiles, by hash of (seed, profile id)."""

    percent: Percent
    seed: Seed | None = None

    @property
    def basis_points(self) -> int:
        """The share in hundredths of a percent (0..10000)."""
        return round(self.percent * 100)


class RandomBucket(NodeModel):
    """True for a fixed share of profiles: the same profile always gets the same answer."""

    random_bucket: BucketSpec


class AllOf(NodeModel):
    """True when every condition holds (an empty list holds)."""

    all: tuple[Condition, ...] = Field(max_length=MAX_CHILDREN)


class AnyOf(NodeModel):
    """True when at least one condition holds (an empty list never does)."""

    any: tuple[Condition, ...] = Field(max_length=MAX_CHILDREN)


class Not(NodeModel):
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
