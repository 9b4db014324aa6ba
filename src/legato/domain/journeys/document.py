"""The journey document: what a marketer draws in the builder or writes as YAML.

A journey is a trigger, entry rules, exit criteria, an optional goal, settings and a list of
nodes joined by node ids. This module holds the frozen pydantic models of that document, their
JSON Schema, and `parse_journey`, which turns user input into a `Journey` or raises
`InvalidInput` naming the node and field at fault. Graph checks (reachability, dangling edges,
loops) live in `journey_validation`; execution lives in `engine`. Nothing here does I/O.

Values written in the document may refer to the run: a string starting with `trigger.` reads the
event that started the run (`trigger.properties.cart_id`), one starting with `data.` reads the
run's journey data (set by webhook responses). Any other value is a literal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from legato.domain.journeys.fields import (
    DocModel,
    Key,
    NodeId,
)
from legato.domain.journeys.nodes import NODE_TYPES, Node
from legato.domain.journeys.rules import EntryRules, ExitCriterion, Goal, JourneySettings, as_list
from legato.domain.journeys.triggers import (
    ApiTrigger,
    EventTrigger,
    ScheduleTrigger,
    SegmentTrigger,
    Trigger,
)
from legato.errors import InvalidInput, LegatoError

# ---------------------------------------------------------------------------------------------
# The journey


class Journey(DocModel):
    """A journey document; immutable once parsed. Versions are assigned when it is published."""

    kind: Literal["Journey"] = "Journey"
    key: Key
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger: Trigger
    entry: EntryRules = EntryRules()
    exit_criteria: Annotated[tuple[ExitCriterion, ...], BeforeValidator(as_list)] = ()
    goal: Goal | None = None
    settings: JourneySettings = JourneySettings()
    start: NodeId | None = Field(default=None, description="first node (default: the first listed)")
    nodes: tuple[Node, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_trigger(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "triggers" in data:
            raise PydanticCustomError(
                "trigger", "a journey has exactly one trigger: write `trigger:` with one of them"
            )
        if isinstance(data, Mapping) and "trigger" not in data:
            raise PydanticCustomError(
                "trigger", "a journey has exactly one trigger: `trigger:` is missing"
            )
        return data

    @field_validator("nodes")
    @classmethod
    def _unique_ids(cls, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        seen: set[str] = set()
        for i, node in enumerate(nodes):
            if node.id in seen:
                raise PydanticCustomError(
                    "duplicate_node",
                    f"node id {node.id!r} is used twice",
                    {"node": node.id, "subpath": f"$[{i}].id"},
                )
            seen.add(node.id)
        return nodes

    @model_validator(mode="after")
    def _coherent(self) -> Journey:
        if isinstance(self.trigger, EventTrigger) and self.trigger.key and self.entry.key:
            raise PydanticCustomError(
                "entry_key",
                "give the entry key once: trigger.key or entry.key, not both",
                {"subpath": "$.entry.key"},
            )
        if self.entry.key and isinstance(self.trigger, SegmentTrigger | ScheduleTrigger):
            raise PydanticCustomError(
                "entry_key",
                "an entry key needs an event or api trigger (it reads its properties)",
                {"subpath": "$.entry.key"},
            )
        return self

    @property
    def entry_key(self) -> str | None:
        """The trigger property that keys runs (`properties.cart_id`), wherever it was written."""
        if isinstance(self.trigger, EventTrigger) and self.trigger.key:
            return self.trigger.key
        return self.entry.key

    @property
    def start_node(self) -> str:
        """The id of the first node a run visits."""
        return self.start or self.nodes[0].id

    def node(self, node_id: str) -> Node:
        """The node called `node_id`; NotFound-style InvalidInput when there is none."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise InvalidInput(f"no node {node_id!r} in journey {self.key!r}", node=node_id)

    def to_document(self) -> dict[str, Any]:
        """The JSON-ready document (what `parse_journey` accepts back unchanged)."""
        document = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if isinstance(self.trigger, ApiTrigger):
            # Every field of an API trigger is a default: keep the key that says its kind.
            document["trigger"] = {"api": True, **document.get("trigger", {})}
        return document


# ---------------------------------------------------------------------------------------------
# Parsing and schema


def parse_journey(obj: Any) -> Journey:
    """A `Journey` from a parsed YAML/JSON mapping (or YAML/JSON text); InvalidInput otherwise.

    The error names the JSON path and, inside `nodes`, the node id: `node 'push' (nodes[1]):
    field required: template`.
    """
    if isinstance(obj, str):
        try:
            obj = yaml.safe_load(obj)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"not valid YAML/JSON: {exc}", path="$") from exc
    if isinstance(obj, Journey):
        return obj
    if not isinstance(obj, Mapping):
        raise InvalidInput(
            "a journey document is a mapping (kind: Journey, key, trigger, nodes)", path="$"
        )
    kind = obj.get("kind", "Journey")
    if kind != "Journey":
        raise InvalidInput(f"kind must be Journey, not {kind!r}", path="$.kind")
    try:
        return Journey.model_validate(obj)
    except ValidationError as exc:
        raise _invalid(exc, obj) from None
    except LegatoError as exc:  # pragma: no cover - validators translate, this is a backstop
        raise InvalidInput(exc.message, path="$") from exc


def journey_schema() -> dict[str, Any]:
    """The JSON Schema of the journey document (what the builder and editors validate against)."""
    schema = Journey.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://legato.dev/schemas/journey.json"
    return schema


_TAGS = frozenset(NODE_TYPES) | {"event", "segment", "schedule", "api", "condition"}


def _invalid(exc: ValidationError, obj: Mapping[str, Any]) -> InvalidInput:
    """Turn pydantic's errors into one InvalidInput naming the path (and node) of each problem."""
    problems: list[dict[str, Any]] = []
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = list(error["loc"])
        if error["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and list(other["loc"][: len(loc)]) == loc
            for other in errors
        ):
            continue  # "nodes is empty" only because its items failed: the items say why
        parts: list[str] = ["$"]
        node_id: str | None = None
        for i, part in enumerate(loc):
            if isinstance(part, int):
                parts.append(f"[{part}]")
                if i == 1 and loc[0] == "nodes":
                    node_id = _node_id_at(obj, part)
            elif part == "[key]" or (part in _TAGS and _is_union_tag(loc, i)):
                continue
            else:
                parts.append(f".{part}")
        path = "".join(parts)
        ctx = error.get("ctx") or {}
        subpath = ctx.get("subpath")
        if isinstance(subpath, str) and subpath != "$":
            path = (path if path != "$" else "$") + subpath[1:]
        if isinstance(ctx.get("node"), str):
            node_id = ctx["node"]
        message = _message(error)
        problems.append({"path": path, "message": message, "node": node_id})
    first = problems[0]
    where = f"node {first['node']!r} ({first['path'][2:]})" if first["node"] else first["path"]
    text = f"{where}: {first['message']}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    details: dict[str, Any] = {"path": first["path"], "errors": problems}
    if first["node"]:
        details["node"] = first["node"]
    return InvalidInput(text, **details)


def _is_union_tag(loc: list[Any], i: int) -> bool:
    # pydantic puts the chosen member's tag after the list index of the top-level unions
    # (nodes, 1, "message", ...) and right after `trigger` (trigger, "event", ...).
    if i == 2 and loc[0] in {"nodes", "exit_criteria"}:
        return isinstance(loc[1], int)
    return i == 1 and loc[0] == "trigger"


def _node_id_at(obj: Mapping[str, Any], index: int) -> str | None:
    nodes = obj.get("nodes")
    if isinstance(nodes, list | tuple) and 0 <= index < len(nodes):
        node = nodes[index]
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            return str(node["id"])
    return None


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    field = str(loc[-1]) if loc else ""
    if field == "[key]" and len(loc) > 1:
        field = f"key {loc[-2]!r}"
    if kind == "missing":
        return f"field required: {field}"
    if kind == "extra_forbidden":
        return f"unknown field: {field}"
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {error['input'].get('type')!r} (expected one of {expected})"
    if kind == "union_tag_not_found":
        return f"field required: type (one of {', '.join(NODE_TYPES)})"
    if kind == "string_pattern_mismatch":
        return f"{field}: {error['input']!r} is not valid here ({error['msg']})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
