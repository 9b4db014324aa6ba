"""What a step asks the runtime to do, as data, and the `Transition` carrying them.

The runtime applies a transition's effects atomically with the run's new state: sends and
webhook calls to the outbox, timers to the timer table, profile updates and emitted events to
their stores, and every effect to the rollups. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from legato.domain.conditions import (
    EventFact,
)
from legato.domain.journeys import (
    JourneySettings,
)

if TYPE_CHECKING:
    pass
from legato.domain.engine.runs import (
    Run,
)

# ---------------------------------------------------------------------------------------------
# Effects


@dataclass(frozen=True, slots=True)
class Entered:
    """A run started (journey-level "entered" rollup)."""

    run_id: str
    entry_key: str | None


@dataclass(frozen=True, slots=True)
class EntryRefused:
    """The trigger fired but the entry rules kept the person out."""

    profile_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class NodeVisited:
    """The run reached a node; `outcome` names the arm taken by a branch/split/random split."""

    node_id: str
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """A send request for the outbox; delivery applies consent, caps and quiet hours."""

    run_id: str
    journey_key: str
    version: int
    profile_id: str
    node_id: str
    channel: str
    template: str
    topic: str | None
    idempotency_key: str
    trigger: EventFact
    data: Mapping[str, Any]
    settings: JourneySettings


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Make a timer (`node_id` is a node id, `$start` or `$exit`) fire at `due_ms`."""

    node_id: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimers:
    """Drop every pending timer of the run (ScheduleTimer effects after it stand)."""


@dataclass(frozen=True, slots=True)
class TraitOp:
    """One profile change: set (to `value`), unset, or increment (by `value`)."""

    op: Literal["set", "unset", "increment"]
    trait: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    """Change the person's traits."""

    profile_id: str
    ops: tuple[TraitOp, ...]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Emit:
    """Record an event for the person; `idempotency_key` is its messageId."""

    profile_id: str
    event: str
    properties: Mapping[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An HTTP call to make; `body_template` is rendered with `trigger` and `data` at call time."""

    url: str
    method: str
    headers: Mapping[str, str]
    body_template: str | None
    timeout_ms: int
    give_up_at_ms: int
    trigger: EventFact
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallWebhook:
    """A webhook call for the outbox; its answer comes back as `WebhookDone`."""

    run_id: str
    node_id: str
    request: WebhookRequest
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Exit:
    """The run ended at `node_id` (one of the EXIT_* reasons)."""

    node_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Converted:
    """The person met the journey's goal (`event` is the converting event)."""

    goal: str
    event: EventFact
    node_id: str | None


Effect: TypeAlias = (
    Entered
    | EntryRefused
    | NodeVisited
    | Send
    | ScheduleTimer
    | CancelTimers
    | UpdateProfile
    | Emit
    | CallWebhook
    | Exit
    | Converted
)


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one `advance`: the run's new state (None if not entered) and its effects.

    `changed` is False when the stimulus did not concern the run (a stale timer, an unrelated
    event): nothing needs to be written.
    """

    run: Run | None
    effects: tuple[Effect, ...]
    changed: bool = True
