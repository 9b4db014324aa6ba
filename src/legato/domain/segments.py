"""Segment and computed-trait documents: what users write, parsed and checked.

    kind: Segment                      kind: ComputedTrait
    key: repeat_buyers                 key: lifetime_value
    name: Repeat buyers                aggregate: sum     # count sum avg min max first last
    condition: {all: [...]}            event: Order Completed      # distinct_count most_frequent
                                       property: revenue   # under the event's properties
                                       where: [...]        # optional property filters
                                       within: 365d        # optional window ending now

A static segment (`static: true`) has no condition: its members are uploaded. Parsing names the
JSON path of whatever is wrong; `validate_references` refuses unknown segments and computed
traits and cycles between segments. Maintaining values is `computed_traits`; this module does
no evaluation and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from legato.domain.conditions import (
    ComputedTraitCondition,
    Condition,
    PropertyFilter,
    SegmentCondition,
    walk,
)
from legato.domain.conditions.operands import MAX_FILTERS, Duration, EventName, Key, TraitPath
from legato.domain.conditions.tree import first_error, render_path
from legato.errors import InvalidInput

AGGREGATES = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "distinct_count",
    "most_frequent",
)
#: Aggregates that read a property (the others may: count counts events that carry it,
#: first/last give the property's value rather than the event's time).
NEEDS_PROPERTY = frozenset({"sum", "avg", "min", "max", "distinct_count", "most_frequent"})


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise PydanticCustomError("invalid_name", "needs a name of 1 to 200 characters")
    return value


Name = Annotated[str, PlainValidator(_name, json_schema_input_type=str)]
Description = Annotated[str, Field(max_length=2000)]


class _Document(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )


class Segment(_Document):
    """A named set of profiles: those for which `condition` holds (or uploaded, if static)."""

    kind: Literal["Segment"] = "Segment"
    key: Key
    name: Name | None = None
    description: Description | None = None
    static: bool = False
    condition: Condition | None = None

    @model_validator(mode="after")
    def _condition_or_static(self) -> Segment:
        if self.static and self.condition is not None:
            raise PydanticCustomError(
                "invalid_segment", "a static segment has no condition: its members are uploaded"
            )
        if not self.static and self.condition is None:
            raise PydanticCustomError(
                "invalid_segment", "a segment needs a condition (or static: true)"
            )
        return self

    @property
    def title(self) -> str:
        """What to show: the name, else the key."""
        return self.name or self.key


class ComputedTrait(_Document):
    """A per-profile value aggregated from events: kept up to date event by event."""

    kind: Literal["ComputedTrait"] = "ComputedTrait"
    key: Key
    name: Name | None = None
    description: Description | None = None
    aggregate: Literal[
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "first",
        "last",
        "distinct_count",
        "most_frequent",
    ]
    event: EventName
    property: TraitPath | None = Field(None, description="Path under the event's properties.")
    where: tuple[PropertyFilter, ...] | None = Field(None, max_length=MAX_FILTERS)
    within: Duration | None = None

    @model_validator(mode="after")
    def _property_when_needed(self) -> ComputedTrait:
        if self.aggregate in NEEDS_PROPERTY and self.property is None:
            raise PydanticCustomError(
                "invalid_computed_trait", f"aggregate {self.aggregate} needs a property"
            )
        return self


Document = Segment | ComputedTrait
_KINDS: dict[str, type[Segment] | type[ComputedTrait]] = {
    "Segment": Segment,
    "ComputedTrait": ComputedTrait,
}


def _parse(model: type[BaseModel], obj: object, path: str) -> Any:
    if not isinstance(obj, Mapping):
        raise InvalidInput(f"a {model.__name__} document is an object", path=path)
    try:
        return model.model_validate(dict(obj))
    except ValidationError as exc:
        loc, message = first_error(exc, model)
        raise InvalidInput(message, path=render_path(path, loc)) from None


def parse_segment(obj: object, path: str = "$") -> Segment:
    """A Segment document from its JSON/YAML value; InvalidInput names the JSON path."""
    segment: Segment = _parse(Segment, obj, path)
    return segment


def parse_computed_trait(obj: object, path: str = "$") -> ComputedTrait:
    """A ComputedTrait document from its JSON/YAML value; InvalidInput names the JSON path."""
    trait: ComputedTrait = _parse(ComputedTrait, obj, path)
    return trait


def parse_document(obj: object, path: str = "$") -> Document:
    """A Segment or ComputedTrait, by its `kind`."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("a document is an object", path=path)
    kind = obj.get("kind")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidInput(
            f"kind must be one of {', '.join(_KINDS)} (got {kind!r})", path=f"{path}.kind"
        )
    document: Document = _parse(model, obj, path)
    return document


def dump_document(doc: Document) -> dict[str, Any]:
    """The document in the shape users write (parses back to an equal document)."""
    data: dict[str, Any] = doc.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(doc, Segment) and not doc.static:
        data.pop("static", None)
    return data


def check_condition_references(
    doc: Segment,
    segments: AbstractSet[str],
    computed_traits: AbstractSet[str],
    path: str = "$",
) -> None:
    """Refuse a segment whose condition names a segment or computed trait not in the sets."""
    if doc.condition is None:
        return
    for node_path, node in walk(doc.condition, f"{path}.condition"):
        if isinstance(node, SegmentCondition) and node.segment not in segments:
            raise InvalidInput(f"unknown segment {node.segment!r}", path=f"{node_path}.segment")
        if isinstance(node, ComputedTraitCondition) and node.computed_trait not in computed_traits:
            raise InvalidInput(
                f"unknown computed trait {node.computed_trait!r}",
                path=f"{node_path}.computed_trait",
            )


def segment_dependencies(doc: Segment) -> frozenset[str]:
    """Keys of the segments a segment's condition reads."""
    if doc.condition is None:
        return frozenset()
    return frozenset(
        node.segment for _, node in walk(doc.condition) if isinstance(node, SegmentCondition)
    )


def validate_references(
    doc: Document,
    known_segments: Mapping[str, Segment],
    known_computed_traits: AbstractSet[str],
) -> None:
    """Refuse unknown references and cycles, `doc` replacing any known segment of its key."""
    if not isinstance(doc, Segment):
        return  # a computed trait's filters read event properties only
    others = {key for key in known_segments if key != doc.key}
    if doc.condition is not None:
        for node_path, node in walk(doc.condition, "$.condition"):
            if isinstance(node, SegmentCondition) and node.segment == doc.key:
                raise InvalidInput(
                    f"segment {doc.key!r} refers to itself", path=f"{node_path}.segment"
                )
    check_condition_references(doc, others, known_computed_traits)
    graph = {key: segment_dependencies(segment) for key, segment in known_segments.items()}
    graph[doc.key] = segment_dependencies(doc)
    cycle = _cycle_through(doc.key, graph)
    if cycle is not None:
        first_hop = cycle[1]
        assert doc.condition is not None
        where = next(
            node_path
            for node_path, node in walk(doc.condition, "$.condition")
            if isinstance(node, SegmentCondition) and node.segment == first_hop
        )
        raise InvalidInput(
            "segments refer to each other in a cycle: " + " -> ".join(cycle),
            path=f"{where}.segment",
        )


def _cycle_through(start: str, graph: Mapping[str, AbstractSet[str]]) -> list[str] | None:
    """A path start -> ... -> start in `graph`, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*trail, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None
