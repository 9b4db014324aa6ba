"""The eleven node types of a journey document and the edges between them.

Each node class knows its outgoing edges (`edges()`); executing a node belongs to the engine.
Pure document models, no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from legato.domain.journeys.fields import (
    BodyPath,
    ConditionField,
    DocModel,
    Duration,
    EventFilter,
    EventName,
    Key,
    NodeId,
    PropertyPath,
    Reference,
    SignedDuration,
    TimeOfDay,
    TraitName,
)
from legato.domain.local_time import Weekday

# ---------------------------------------------------------------------------------------------
# Nodes


class _Node(DocModel):
    id: NodeId
    label: str | None = Field(default=None, max_length=200, description="shown in the builder")

    def edges(self) -> tuple[tuple[str, str], ...]:
        """(field, target node id) for every outgoing edge, in document order."""
        return ()


def _edges(**targets: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((name.rstrip("_"), target) for name, target in targets.items() if target)


class MessageNode(_Node):
    """Ask delivery to send `template` on `channel` (consent to `topic` is checked at send)."""

    type: Literal["message"]
    channel: Key
    template: Key
    topic: Key | None = None
    next: NodeId | None = None

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `next` edge."""
        return _edges(next=self.next)


class WaitNode(_Node):
    """Wait a fixed duration."""

    type: Literal["wait"]
    duration: Annotated[Duration, Field(gt=0)]
    next: NodeId | None = None

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `next` edge."""
        return _edges(next=self.next)


class WaitUntilNode(_Node):
    """Wait until a local time of day on allowed weekdays, or until a date plus an offset.

    The date is a profile trait (`date_trait: renews_at`) or a value of the run (`date:
    trigger.properties.check_in`); a date without a time is local to the person (at `time`, or
    midnight), and the offset moves it in wall-clock time.
    """

    type: Literal["wait_until"]
    time: TimeOfDay | None = None
    weekdays: tuple[Weekday, ...] = ()
    date_trait: TraitName | None = None
    date: Reference | None = None
    offset: SignedDuration = 0
    next: NodeId | None = None
    on_missing: NodeId | None = Field(
        default=None, description="where to go when the date is missing (default: next)"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> WaitUntilNode:
        if self.date_trait is not None and self.date is not None:
            raise PydanticCustomError("wait_until", "give `date_trait` or `date`, not both")
        if self.date_trait is None and self.date is None:
            if self.time is None:
                raise PydanticCustomError(
                    "wait_until",
                    "wait_until needs `time` (and optional weekdays), `date_trait` or `date`",
                )
            if self.offset or self.on_missing:
                raise PydanticCustomError(
                    "wait_until", "`offset` and `on_missing` go with `date_trait` or `date`"
                )
        elif self.weekdays:
            raise PydanticCustomError("wait_until", "`weekdays` goes with `time`, not a date")
        return self

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `next` and `on_missing` edges."""
        return _edges(next=self.next, on_missing=self.on_missing)


class WaitForEventNode(_Node):
    """Wait for `event` (matching the trigger's properties) at most `timeout`."""

    type: Literal["wait_for_event"]
    event: EventName
    where: EventFilter | None = None
    match: dict[PropertyPath, Any] = Field(
        default_factory=dict, description="event property → trigger.properties.x / data.x / literal"
    )
    timeout: Annotated[Duration, Field(gt=0)]
    on_event: NodeId | None = None
    on_timeout: NodeId | None = None

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `on_event` and `on_timeout` edges."""
        return _edges(on_event=self.on_event, on_timeout=self.on_timeout)


class BranchNode(_Node):
    """If `condition` holds go to `then`, else to `else`."""

    type: Literal["branch"]
    condition: ConditionField
    then: NodeId | None = None
    else_: NodeId | None = Field(default=None, alias="else")

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `then` and `else` edges."""
        return _edges(then=self.then, else_=self.else_)


class SplitBranch(DocModel):
    """One ordered arm of a split: the first whose condition holds wins."""

    name: str | None = Field(default=None, max_length=100)
    condition: ConditionField
    next: NodeId | None = None


class SplitNode(_Node):
    """Ordered conditional arms with a default."""

    type: Literal["split"]
    branches: tuple[SplitBranch, ...] = Field(min_length=1)
    default: NodeId | None = None

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every arm's `next`, then `default`."""
        arms = tuple(
            (f"branches[{i}].next", arm.next) for i, arm in enumerate(self.branches) if arm.next
        )
        return arms + _edges(default=self.default)


class RandomBranch(DocModel):
    """One weighted arm of a random split."""

    name: str | None = Field(default=None, max_length=100)
    weight: float = Field(gt=0, le=1_000_000)
    next: NodeId | None = None


class RandomSplitNode(_Node):
    """Sticky weighted assignment by hash of (journey, node, person), with an optional holdout."""

    type: Literal["random_split"]
    branches: tuple[RandomBranch, ...] = Field(min_length=1)
    holdout: float | None = Field(
        default=None, gt=0, lt=100, description="percent of people who exit here as a control"
    )

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every arm's `next`."""
        return tuple(
            (f"branches[{i}].next", arm.next) for i, arm in enumerate(self.branches) if arm.next
        )

    def arm_names(self) -> tuple[str, ...]:
        """The arms' names (their `name`, else their position as a letter A, B, ...)."""
        return tuple(arm.name or chr(ord("A") + i) for i, arm in enumerate(self.branches))


class UpdateProfileNode(_Node):
    """Set, unset or increment traits of the person."""

    type: Literal["update_profile"]
    set: dict[TraitName, Any] = Field(default_factory=dict)
    unset: tuple[TraitName, ...] = ()
    increment: dict[TraitName, int | float] = Field(default_factory=dict)
    next: NodeId | None = None

    @model_validator(mode="after")
    def _some_change(self) -> UpdateProfileNode:
        if not (self.set or self.unset or self.increment):
            raise PydanticCustomError(
                "update_profile", "update_profile needs at least one of set, unset, increment"
            )
        seen: dict[str, str] = {}
        for op, names in (("set", self.set), ("unset", self.unset), ("increment", self.increment)):
            for name in names:
                if name in seen:
                    raise PydanticCustomError(
                        "update_profile",
                        f"trait {name!r} is changed twice ({seen[name]} and {op})",
                    )
                seen[name] = op
        return self

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `next` edge."""
        return _edges(next=self.next)


class WebhookResponse(DocModel):
    """What to keep from a successful webhook's JSON response."""

    traits: dict[TraitName, BodyPath] = Field(default_factory=dict)
    data: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], BodyPath] = Field(
        default_factory=dict
    )


class WebhookNode(_Node):
    """Call an HTTP endpoint; a 2xx answer goes to on_success (keeping mapped values)."""

    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+", max_length=2048)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="a Liquid template rendered at call time")
    response: WebhookResponse = WebhookResponse()
    timeout: Annotated[Duration, Field(gt=0, le=60_000)] = 10_000
    give_up_after: Annotated[Duration, Field(gt=0)] = Field(
        default=3_600_000, description="after this, retries stop and on_failure is taken"
    )
    on_success: NodeId | None = None
    on_failure: NodeId | None = None

    @field_validator("headers")
    @classmethod
    def _no_hop_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in {"host", "content-length", "transfer-encoding", "connection"}:
                raise PydanticCustomError(
                    "webhook", f"header {name!r} is set by Legato, not the journey"
                )
        return headers

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `on_success` and `on_failure` edges."""
        return _edges(on_success=self.on_success, on_failure=self.on_failure)


class EmitEventNode(_Node):
    """Record an event for the person (it flows through the pipeline like any other)."""

    type: Literal["emit_event"]
    event: EventName
    properties: dict[str, Any] = Field(default_factory=dict)
    next: NodeId | None = None

    def edges(self) -> tuple[tuple[str, str], ...]:
        """The `next` edge."""
        return _edges(next=self.next)


class ExitNode(_Node):
    """End the run here."""

    type: Literal["exit"]
    reason: str | None = Field(default=None, max_length=200)


Node: TypeAlias = Annotated[
    MessageNode
    | WaitNode
    | WaitUntilNode
    | WaitForEventNode
    | BranchNode
    | SplitNode
    | RandomSplitNode
    | UpdateProfileNode
    | WebhookNode
    | EmitEventNode
    | ExitNode,
    Field(discriminator="type"),
]

NODE_TYPES = (
    "message",
    "wait",
    "wait_until",
    "wait_for_event",
    "branch",
    "split",
    "random_split",
    "update_profile",
    "webhook",
    "emit_event",
    "exit",
)
#: Node types that end a step: a loop must pass through one of them.
WAIT_NODE_TYPES = frozenset({"wait", "wait_until", "wait_for_event"})
